// Scenario 7 of `npm run bench`: pop3-exporter holding a fleet. Dovecot
// with N generated mailboxes (2000; --quick: 50), every one probed once per
// interval (60 s; --quick: 5 s) through GET /probe, spread evenly over the
// interval as Prometheus spreads its targets, after a short warm-up. Side by
// side, the baseline: the same checks (TLS, USER/PASS, STAT, close) by
// Python's poplib with nothing around them, at the same rate
// (bench/poplib_fleet.py). Reported: probes per second kept up, errors,
// the exporter's CPU and memory (its process, from /proc), and the probe
// time as Prometheus sees it against the bare session's: p50, p99 and the
// p99 overhead (exporter p99 − poplib p99).
//
//   node bench/exporter-scale.mjs [--quick]     on its own (prints its rows)
//   bench/run.mjs runs it as scenario 7 (--only exporter)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDovecot } from '../tests/fixtures/dovecot.mjs';
import { startExporter, parseMetrics } from '../tests/fixtures/exporter.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCENARIO = '7 exporter scale';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs, q) => {
  const s = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] : NaN;
};
const CLK_TCK = 100; // Linux USER_HZ

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

function statusKiB(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** GET /probe for every target, each at its offset in `intervalMs`; resolves [{ ms, success, probeSeconds, queueSeconds, error }]. */
async function cycle(exporterUrl, module, targets, intervalMs, agent) {
  const t0 = performance.now();
  return Promise.all(
    targets.map(async (target, i) => {
      await sleep(t0 + (i * intervalMs) / targets.length - performance.now());
      const started = performance.now();
      try {
        const text = await new Promise((resolve, reject) => {
          const q = new URLSearchParams({ module, target });
          const req = http.get(`${exporterUrl}/probe?${q}`, { agent, headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '15' } }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (body += d));
            res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}: ${body}`))));
          });
          req.on('error', reject);
          req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
        });
        const ms = performance.now() - started;
        const m = parseMetrics(text);
        const success = m.get('probe_success') === 1;
        const error = success ? null : [...m.keys()].find((k) => k.startsWith('pop3_probe_error_info')) ?? 'probe_success 0';
        return { ms, success, probeSeconds: m.get('probe_duration_seconds'), queueSeconds: m.get('pop3_probe_queue_seconds'), error };
      } catch (e) {
        return { ms: performance.now() - started, success: false, error: String(e.message ?? e) };
      }
    }),
  );
}

/** The poplib baseline over the same mailboxes at the same rate. */
function poplib(dc, boxes, intervalMs) {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [path.join(HERE, 'poplib_fleet.py'), '--port', String(dc.ports.pop3s), '--ca', dc.caFile, '--interval', String(intervalMs / 1000)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`poplib_fleet.py exited ${code}: ${err.slice(-2000)}`))));
    child.stdin.end(JSON.stringify(boxes.map((g) => [g.name, g.password])));
  });
}

/**
 * Runs the scenario. `row(scenario, measure, fields)` and `raw` are
 * bench/run.mjs's table and raw figures; `log` its progress line.
 */
export async function exporterScale({ quick = false, row, raw, log = () => {} }) {
  const P = quick ? { mailboxes: 50, intervalMs: 5_000, warmup: 20 } : { mailboxes: 2000, intervalMs: 60_000, warmup: 200 };
  const cleanup = [];
  try {
    log(`exporter scale: Dovecot with ${P.mailboxes} generated mailboxes`);
    const dc = await startDovecot({ generatedUsers: P.mailboxes });
    cleanup.push(() => dc.stop());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-bench-fleet-'));
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const passwords = path.join(dir, 'passwords');
    fs.writeFileSync(passwords, dc.generated.map((g) => `${g.name}:${g.password}\n`).join(''));
    const boxes = dc.generated;
    const targets = boxes.map((g) => `${g.name}@127.0.0.1:${dc.ports.pop3s}`);

    // The baseline first, on a quiet machine.
    log(`exporter scale: poplib baseline, ${P.mailboxes} sessions over ${P.intervalMs / 1000} s`);
    const base = await poplib(dc, boxes, P.intervalMs);
    if (base.errors.length) throw new Error(`poplib baseline: ${base.errors.length} errors, e.g. ${base.errors[0]}`);

    // USER/PASS as poplib does, so both run the same dialogue; the exporter's
    // extra steps (the CAPA around the login) are its overhead.
    const ex = await startExporter({
      config: {
        per_server_concurrency: 8,
        modules: { fleet: { user_from_target: true, auth: 'USER', passwords_file: passwords, ca_file: dc.caFile, allow: [`127.0.0.1:${dc.ports.pop3s}`] } },
      },
    });
    cleanup.push(() => ex.stop());
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    cleanup.push(() => agent.destroy());

    log(`exporter scale: warm-up (${P.warmup} probes)`);
    await cycle(ex.url, 'fleet', targets.slice(0, P.warmup), P.intervalMs / 6, agent);
    const rssBefore = statusKiB(ex.pid, 'VmRSS');
    log(`exporter scale: ${P.mailboxes} probes over ${P.intervalMs / 1000} s`);
    const rss = [];
    const sampler = setInterval(() => rss.push(statusKiB(ex.pid, 'VmRSS')), 500);
    const cpu0 = cpuSeconds(ex.pid);
    const t0 = performance.now();
    const results = await cycle(ex.url, 'fleet', targets, P.intervalMs, agent);
    const wall = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(ex.pid) - cpu0;
    clearInterval(sampler);
    const hwm = statusKiB(ex.pid, 'VmHWM');
    const own = parseMetrics((await ex.get('/metrics')).text);

    const failed = results.filter((r) => !r.success);
    const ours = results.map((r) => r.ms);
    const baseMs = base.durations.map((s) => s * 1000);
    const p50 = quantile(ours, 0.5);
    const p99 = quantile(ours, 0.99);
    const b50 = quantile(baseMs, 0.5);
    const b99 = quantile(baseMs, 0.99);
    const queue99 = quantile(results.map((r) => (r.queueSeconds ?? 0) * 1000), 0.99);
    const errorKinds = {};
    for (const f of failed) errorKinds[f.error] = (errorKinds[f.error] ?? 0) + 1;
    raw.exporterScale = {
      params: P,
      wallSeconds: wall,
      exporterCpuSeconds: cpu,
      rssBeforeKiB: rssBefore,
      rssMaxSampledKiB: Math.max(...rss),
      rssHighWaterKiB: hwm,
      errors: failed.length,
      errorKinds,
      probeMs: { p50, p90: quantile(ours, 0.9), p99, max: Math.max(...ours) },
      poplibMs: { p50: b50, p90: quantile(baseMs, 0.9), p99: b99, max: Math.max(...baseMs) },
      poplibCpuSeconds: base.cpu,
      queueMsP99: queue99,
      exporterCounters: Object.fromEntries([...own].filter(([k]) => k.startsWith('pop3_exporter_probes_total'))),
    };

    const need = P.mailboxes / (P.intervalMs / 1000);
    const rate = results.length / wall;
    row(SCENARIO, `${P.mailboxes} mailboxes, each every ${P.intervalMs / 1000} s: probes/s answered (needed ${need.toFixed(1)})`, {
      ours: rate,
      targetText: `≥ ${need.toFixed(1)}, all in the interval`,
      pass: failed.length === 0 && wall <= (P.intervalMs / 1000) * 1.1,
    });
    row(SCENARIO, 'failed probes', { ours: String(failed.length), targetText: '0', pass: failed.length === 0 });
    row(SCENARIO, 'CPU, % of one core (exporter vs the poplib client)', {
      ours: (cpu / wall) * 100,
      base: (base.cpu / base.wall) * 100,
      ratio: cpu / wall / (base.cpu / base.wall),
      targetText: '(reported)',
    });
    row(SCENARIO, 'exporter CPU per probe, ms', { ours: (cpu * 1000) / results.length, targetText: '(reported)' });
    row(SCENARIO, `exporter RSS, peak (idle after warm-up ${(rssBefore / 1024).toFixed(0)} MB), MB`, {
      ours: hwm / 1024,
      targetText: '≤ 256 MB',
      pass: hwm / 1024 <= 256,
    });
    row(SCENARIO, 'probe time as Prometheus sees it vs the bare session, p50 ms', { ours: p50, base: b50, ratio: p50 / b50, targetText: '(reported)' });
    row(SCENARIO, 'same, p99 ms', { ours: p99, base: b99, ratio: p99 / b99, targetText: '(reported)' });
    row(SCENARIO, 'p99 overhead beyond the server’s own time (exporter p99 − poplib p99), ms', {
      ours: p99 - b99,
      targetText: '(reported)',
    });
    row(SCENARIO, 'waiting for the per-server budget (8 at once), p99 ms', { ours: queue99, targetText: '(reported)' });
  } finally {
    for (const f of cleanup.reverse()) {
      try {
        await f();
      } catch {}
    }
  }
}

// On its own: `node bench/exporter-scale.mjs [--quick]`.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const rows = [];
  const raw = {};
  await exporterScale({
    quick: process.argv.includes('--quick'),
    row: (scenario, measure, f) => rows.push({ scenario, measure, ...f }),
    raw,
    log: (...a) => process.stderr.write(`bench: ${a.join(' ')}\n`),
  });
  for (const r of rows) {
    const f = (x) => (typeof x === 'number' ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2)) : (x ?? ''));
    process.stdout.write(`| ${r.scenario} | ${r.measure} | ${f(r.ours)} | ${f(r.base)} | ${r.ratio === undefined ? '' : `${f(r.ratio)}×`} | ${r.targetText ?? ''} | ${r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL'} |\n`);
  }
  process.stdout.write(`${JSON.stringify(raw.exporterScale, null, 1)}\n`);
  process.exit(0);
}
