// `npm run bench`: every scenario of BENCHMARKS.md side by side with its
// baseline, in one run. Prints a table of medians and ratios with each
// target marked PASS/FAIL and writes the raw figures to
// bench/results/<timestamp>.json. Run it through scripts/bench.sh, which
// builds the bridge in release mode and raises the file-descriptor limit
// first.
//
//   node bench/run.mjs [--quick] [--only slow,scan,bulk,bridge,scale,size,exporter,e2e] [--strict]
//
// slow: scenario 1, the slow link (real TCP between network namespaces,
// bench/slow-link.mjs); scan: 2, the header scan on loopback; bulk: 3;
// bridge: 4; scale: 5; size: 6; exporter: 7; e2e: 8 (end-to-end TLS,
// bench/end-to-end.mjs). A new scenario is one more
// `if (want('name')) await scenario('…', async () => { … row(…) … })` block
// below, its own module if it is long.
//
// --quick: every scenario at small sizes (the smoke mode the tests run; the
// slow link at 50 ms only).
// --strict: exit 2 when a target fails (otherwise only errors fail the run).
// Everything is bounded: fixed counts, per-call timeouts, and a watchdog
// that ends the run (cleaning up its children, namespaces included) after
// MAX_RUN_MS.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { startDovecot, bulkMessage, bigMessage } from '../tests/fixtures/dovecot.mjs';
import { startBridge, bridgeBinary, REPO_ROOT } from '../tests/fixtures/bridge.mjs';
import { onExit } from '../tests/fixtures/cleanup.mjs';
import { addUser } from './mailbox.mjs';
import { startSlowLink, startServer, startFloorServer } from './slow-link.mjs';
import { exporterScale } from './exporter-scale.mjs';
import { endToEndScenario } from './end-to-end.mjs';
import { Pop3Client } from '../pop3-wasm/js/node.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const STRICT = argv.includes('--strict');
const onlyArg = argv.find((a) => a.startsWith('--only='))?.slice(7) ?? argv[argv.indexOf('--only') + 1];
const ONLY = argv.some((a) => a.startsWith('--only')) ? new Set(onlyArg.split(',')) : null;
const want = (s) => !ONLY || ONLY.has(s);

// Sizes and repetitions. Quick: the same code paths, small.
const P = QUICK
  ? { scanCount: 100, bigBytes: 5 << 20, scanReps: 1, slowReps: 1, slowLimit: 10, bulkReps: 1, bigReps: 1,
      nativeBytes: 64 << 20, nativeReps: 1, nativeEchoN: 2000,
      concurrent: 100, idle: 300, startReps: 2 }
  : { scanCount: 1000, bigBytes: 50 << 20, scanReps: 5, slowReps: 3, slowLimit: 100, bulkReps: 3, bigReps: 3,
      nativeBytes: 1 << 30, nativeReps: 3, nativeEchoN: 20000,
      concurrent: 1000, idle: 5000, startReps: 5 };
const SLOW_RTTS = QUICK ? [50] : [50, 200];
const MAX_RUN_MS = QUICK ? 110_000 : 25 * 60_000;
const CALL_TIMEOUT_MS = QUICK ? 60_000 : 300_000;

const SCAN_USER = { name: 'benchscan', password: 'bench-scan-Pw5' };
const BIG_USER = { name: 'benchbig', password: 'bench-big-Pw6' };

// ------------------------------------------------------------------ helpers

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`bench: ${a.join(' ')}\n`);

function rssKiB(pid, field = 'VmRSS') {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU seconds used by a process, its threads and its reaped children. */
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // fields after "pid (comm) ": state=0 … utime=11 stime=12 cutime=13 cstime=14
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}
const CLK_TCK = Number(version('getconf', ['CLK_TCK'])) || 100;

const children = new Set();
onExit(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Runs a command to its end; resolves { code, stdout, stderr, ms }. */
function run(cmd, args, { timeoutMs = CALL_TIMEOUT_MS, input } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: code ?? signal, stdout, stderr, ms: performance.now() - t0 });
    });
    child.stdin.end(input ?? '');
  });
}

/** Runs bench/poplib_baseline.py (`cmd` `args`: possibly wrapped to run in a namespace); resolves its JSON. */
async function pythonRun(cmd, args) {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`poplib_baseline.py failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}
const python = (args) => pythonRun('python3', [path.join(HERE, 'poplib_baseline.py'), ...args]);

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await sleep(50);
  }
}

function version(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0];
  } catch (e) {
    return (e.stderr || e.stdout || '').toString().trim().split('\n')[0] || 'unknown';
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: `${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${version('sh', ['-c', '. /etc/os-release; echo $PRETTY_NAME'])}, Linux ${os.release()}`,
    node: process.version,
    rustc: version('rustc', ['--version']),
    python: version('python3', ['--version']),
    dovecot: version('/usr/sbin/dovecot', ['--version']),
    bridgeBinary: path.relative(REPO_ROOT, bridgeBinary()),
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

// ------------------------------------------------------------------ results

const rows = [];
const raw = {};
const errors = [];

/**
 * One table row. `better`: 'lower' (times) or 'higher' (rates); ratio is
 * ours ÷ baseline; `target(ratio, ours)` → boolean, with `targetText`.
 */
function row(scenario, measure, { ours, base, unit, ratio, targetText, pass, note }) {
  rows.push({ scenario, measure, ours, base, unit, ratio, targetText: targetText ?? '', pass, note });
}

const fmt = (x, unit) => {
  if (x === undefined || x === null || Number.isNaN(x)) return '—';
  if (typeof x === 'string') return x;
  const v = Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
  return unit ? `${v} ${unit}` : v;
};

function table() {
  const head = ['scenario', 'measure', 'pop3-wasm', 'baseline', 'ratio', 'target', 'result'];
  const body = rows.map((r) => [
    r.scenario,
    r.measure,
    fmt(r.ours, r.unit),
    fmt(r.base, r.unit),
    r.ratio === undefined ? '' : `${fmt(r.ratio)}×`,
    r.targetText,
    r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL',
  ]);
  const lines = [head, head.map(() => '---'), ...body].map((c) => `| ${c.join(' | ')} |`);
  return lines.join('\n');
}

async function scenario(name, fn) {
  const t0 = performance.now();
  log(`── ${name}`);
  try {
    await fn();
  } catch (e) {
    errors.push({ scenario: name, error: String(e?.stack ?? e) });
    log(`${name} FAILED: ${e?.stack ?? e}`);
    row(name, 'error', { ours: String(e?.message ?? e).slice(0, 80), pass: false });
  }
  log(`   ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// ------------------------------------------------------------------ set-up

// Dovecot limits for 1000 concurrent logins (one pop3 process each).
const DOVECOT_SCALE = `
default_process_limit = 1500
default_client_limit = 12000
mail_max_userip_connections = 5000
service pop3 {
  process_limit = 1500
}
service anvil {
  client_limit = 12000
}
service auth {
  client_limit = 12000
}
`;

const BRIDGE_LIMITS = [
  '--max-sessions', '20000',
  '--max-sessions-per-ip', '20000',
  '--connect-rate', '1000000',
  '--connect-burst', '100000',
  '--max-sessions-per-dest', '20000',
  '--global-connect-rate', '1000000',
  '--global-connect-burst', '100000',
  '--max-connections', '20000',
  '--max-connections-per-ip', '20000',
  '--max-bytes-per-ip-hour', String(2 ** 50),
  '--log-level', 'warn',
];

// ------------------------------------------------------------------ clients

async function popClient(bridge, port, user, { tls = 'none' } = {}) {
  const c = await Pop3Client.connect({
    bridge,
    host: '127.0.0.1',
    port,
    tls,
    allowInsecureAuth: true,
    timeoutMs: CALL_TIMEOUT_MS,
  });
  if (tls === 'none') await c.auth('PLAIN', { username: user.name, password: user.password });
  else await c.login(user.name, user.password);
  return c;
}

/** A raw WebSocket (the `ws` package) open to the bridge, after its connect message (scenario 5's idle sessions). */
async function openWs(url, target) {
  const ws = new WebSocket(url, target ? ['pop3-bridge.v1'] : [], { perMessageDeflate: false });
  ws.binaryType = 'nodebuffer';
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  if (target) {
    ws.send(JSON.stringify({ type: 'connect', v: 1, host: '127.0.0.1', port: target, tls: 'none' }));
    await new Promise((resolve, reject) => {
      ws.once('message', (data, isBinary) => {
        const m = !isBinary && JSON.parse(data.toString());
        if (m && m.type === 'connected') resolve();
        else reject(new Error(`bridge said ${data}`));
      });
      ws.once('close', (code) => reject(new Error(`closed ${code}`)));
    });
  }
  ws.on('error', () => {});
  return ws;
}

/**
 * The native load client and workload server of scenario 4
 * (ws-bridge/examples/relay_load.rs): RELAY_LOAD_BIN, else the release
 * build (scripts/bench.sh makes it), or in quick mode the debug build
 * `cargo test` makes if that is newer, else it is built here.
 */
async function relayLoadBinary() {
  if (process.env.RELAY_LOAD_BIN) return process.env.RELAY_LOAD_BIN;
  const release = path.join(REPO_ROOT, 'target', 'release', 'examples', 'relay_load');
  const debug = path.join(REPO_ROOT, 'target', 'debug', 'examples', 'relay_load');
  const mtime = (f) => (fs.existsSync(f) ? fs.statSync(f).mtimeMs : 0);
  if (QUICK && mtime(debug) > mtime(release)) return debug;
  if (mtime(release)) return release;
  log('building ws-bridge/examples/relay_load (release)');
  const r = await run('cargo', ['build', '--quiet', '--release', '-p', 'ws-bridge', '--example', 'relay_load'], { timeoutMs: QUICK ? 90_000 : 900_000 });
  if (r.code !== 0 || !fs.existsSync(release)) throw new Error(`cargo build of relay_load failed: ${r.stderr.slice(-2000)}`);
  return release;
}

/** Runs relay_load to its end (optionally pinned to `cpu`) and parses its JSON line. */
async function relayLoad(bin, args, cpu) {
  const [cmd, argv] = cpu === undefined || !TASKSET ? [bin, args] : ['taskset', ['-c', String(cpu), bin, ...args]];
  const r = await run(cmd, argv);
  if (r.code !== 0) throw new Error(`relay_load ${args.join(' ')}: exit ${r.code}: ${r.stderr.slice(-1000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** Starts a long-running relay_load (serve, forward); resolves { port, child }. */
async function relayLoadServer(bin, args) {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(JSON.parse(d.toString()).port));
    child.once('exit', (c) => reject(new Error(`relay_load ${args[0]} exited ${c}`)));
  });
  return { port, child, stop: () => child.stdin.end() };
}

const TASKSET = (() => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const ALL_CPUS = `0-${os.cpus().length - 1}`;
/** Sets the CPU affinity of every thread of a running process (no-op without taskset). */
function pin(pid, cpus) {
  if (!TASKSET) return;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(cpus), String(pid)], { stdio: 'ignore' });
  } catch {}
}

// ------------------------------------------------------------------ main

const watchdog = setTimeout(() => {
  log(`the run took longer than ${MAX_RUN_MS / 1000} s; stopping`);
  process.exit(3);
}, MAX_RUN_MS);
watchdog.unref();

const started = new Date();
const t0Run = performance.now();
log(`${QUICK ? 'quick' : 'full'} run, bridge ${bridgeBinary()}`);
const info = machine();

let workload;
let workloadPort;
let native; // relay_load serve: scenario 4's far end
let relayLoadBin;
const cleanup = [];

try {
  // The workload server (echo/sink/source; the idle sessions' far end).
  workload = spawn(process.execPath, [path.join(HERE, 'workload-server.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(workload);
  workloadPort = await new Promise((resolve, reject) => {
    workload.stdout.once('data', (d) => resolve(JSON.parse(d.toString()).port));
    workload.once('exit', (c) => reject(new Error(`workload server exited ${c}`)));
  });

  if (want('bridge')) {
    relayLoadBin = await relayLoadBinary();
    native = await relayLoadServer(relayLoadBin, ['serve']);
    cleanup.push(() => native.stop());
  }

  const needDovecot = want('scan') || want('bulk') || want('scale') || want('size') || want('e2e');
  let dc;
  if (needDovecot) {
    log('starting Dovecot, writing the bench mailboxes');
    dc = await startDovecot({ extraConfig: DOVECOT_SCALE });
    cleanup.push(() => dc.stop());
    addUser(dc, SCAN_USER, Array.from({ length: P.scanCount }, (_, k) => bulkMessage(k + 1)));
    addUser(dc, BIG_USER, [bigMessage(P.bigBytes)]);
  }
  const allow = [`127.0.0.1:${[workloadPort, ...(native ? [native.port] : [])].join(',')}`];
  if (dc) allow.push(`127.0.0.1:${[dc.ports.pop3, dc.ports.pop3s].join(',')}`);
  const bridge = await startBridge({ allow, caFiles: dc ? [dc.caFile] : [], extraArgs: BRIDGE_LIMITS });
  cleanup.push(() => bridge.stop());

  // ---------------------------------------------------------------- 1
  if (want('slow')) {
    await scenario('slow link', async () => {
      const link = await startSlowLink({ rttMs: SLOW_RTTS[0], log });
      cleanup.push(() => link.close());
      log(`slow link: ${link.description}`);
      const far = await startServer(link, { user: SCAN_USER, count: P.scanCount });
      cleanup.push(() => far.stop());
      const floorServer = await startFloorServer(link);
      cleanup.push(() => floorServer.stop());
      const G = '1 slow link';
      /** pop3-wasm in Node on the client side: `mode` 'scan' (summaries()) or 'retr' (retrMany()). */
      const slowClient = async (mode, options = {}, to = { bridge: far.bridgeUrl, port: far.pop3 }) => {
        const [cmd, args] = link.clientCommand(process.execPath, [path.join(HERE, 'slow-link-client.mjs'), JSON.stringify({
          mode, ...to, user: SCAN_USER, count: P.scanCount, reps: P.slowReps, options,
        })]);
        const r = await run(cmd, args);
        if (r.code !== 0) throw new Error(`slow-link-client.mjs ${mode} failed (${r.code}): ${r.stderr.slice(-2000)}`);
        return JSON.parse(r.stdout.trim().split('\n').pop());
      };
      raw.slow = { link: { kind: link.kind, description: link.description, reason: link.reason, congestionControl: link.congestionControl }, rtts: {} };
      row(G, `link: ${link.kind === 'netns' ? 'real TCP between network namespaces (TUN + tun-delay.py)' : `delay relay, the fallback (${link.reason})`}`, {
        ours: link.congestionControl ? `TCP ${link.congestionControl}` : '—',
      });
      for (const rtt of SLOW_RTTS) {
        await link.setRtt(rtt);
        const r = (raw.slow.rtts[rtt] = {});
        // The round trip as measured: TCP connects to Dovecot across the link.
        const [pc, pa] = link.clientCommand('python3', [path.join(HERE, 'poplib_baseline.py'), 'rtt', '--host', far.pop3Addr.host, '--port', String(far.pop3Addr.port)]);
        r.connectMs = (await pythonRun(pc, pa)).milliseconds;
        // poplib in lockstep takes (N + 2) round trips: where it would take
        // minutes, it runs the first `limit` and the rest is extrapolated.
        const limit = QUICK ? P.slowLimit : rtt >= 200 ? P.slowLimit : 0;
        for (const mode of ['scan', 'retr']) {
          const o = await slowClient(mode);
          const [bc, ba] = link.clientCommand('python3', [path.join(HERE, 'poplib_baseline.py'), mode, '--host', far.pop3Addr.host,
            '--port', String(far.pop3Addr.port), '--user', SCAN_USER.name, '--password', SCAN_USER.password, '--limit', String(limit),
            '--ids', `1-${P.scanCount}`]);
          const b = await pythonRun(bc, ba);
          const scale = (x) => (limit ? (x * P.scanCount) / b.messages : x);
          const base = b.listSeconds + scale(b.seconds - b.listSeconds);
          r[mode] = { ours: o.seconds, bytes: o.bytes, poplib: base, poplibMeasured: b, poplibExtrapolatedFrom: limit || null };
          const speedup = base / median(o.seconds);
          const what = mode === 'scan' ? `summaries() of ${P.scanCount}` : `retrMany() of ${P.scanCount} (${(o.bytes / 1e6).toFixed(1)} MB)`;
          const target = mode === 'scan' && rtt === 50;
          row(G, `${what}, ${rtt} ms RTT (${r.connectMs.toFixed(1)} measured)${limit ? `, poplib est. from ${limit}` : ''}`, {
            ours: median(o.seconds), base, unit: 's', ratio: speedup,
            targetText: target ? 'poplib time ≥ 120× ours' : '(reported)',
            pass: target ? speedup >= 120 : undefined,
          });
          // Plain TCP, the floor: the same answers' octets as one answer to
          // one request on a fresh TCP connection across the link, slow start
          // included; the scan needs one more round trip (LIST and UIDL before
          // the TOPs). Ours can come out a little under it: the session's
          // connection has carried the login already, so its window has
          // opened a little.
          const wire = Math.round((b.listWireBytes ?? 0) + scale(b.wireBytes - (b.listWireBytes ?? 0)));
          const fetched = await floorServer.fetch(wire, P.slowReps);
          const floor = median(fetched) + (mode === 'scan' ? r.connectMs / 1000 : 0);
          r[mode].floor = { wireBytes: wire, fetchSeconds: fetched, seconds: floor };
          row(G, `… against plain TCP: the same ${(wire / 1e6).toFixed(2)} MB as one answer on a fresh connection${mode === 'scan' ? ', + 1 RTT' : ''}`, {
            ours: median(o.seconds), base: floor, unit: 's', ratio: median(o.seconds) / floor, targetText: '(reported: ours ÷ TCP)',
          });
        }
        if (rtt === SLOW_RTTS[0]) {
          // The handshake in the client: end-to-end TLS, STLS by the client,
          // its rustls in wasm, through the far bridge relaying ciphertext.
          const e2e = { endToEnd: true, tls: 'starttls', caFile: far.caFile };
          const o = await slowClient('scan', e2e);
          r.scanEndToEnd = o.seconds;
          const speedup = r.scan.poplib / median(o.seconds);
          row(G, `summaries() of ${P.scanCount}, end-to-end TLS in the client (STLS, through the bridge), ${rtt} ms RTT`, {
            ours: median(o.seconds), base: r.scan.poplib, unit: 's', ratio: speedup, targetText: 'poplib time ≥ 120× ours', pass: speedup >= 120,
          });
        }
        if (!QUICK && rtt === SLOW_RTTS[0]) {
          // For comparison: the window before it was counted in octets.
          const o = await slowClient('scan', { pipelineWindow: 64 });
          r.scanWindow64 = o.seconds;
          row(G, `summaries() of ${P.scanCount} with pipelineWindow: 64 (the earlier default), ${rtt} ms RTT`, {
            ours: median(o.seconds), base: r.scan.poplib, unit: 's', ratio: r.scan.poplib / median(o.seconds), targetText: '(reported)',
          });
        }
      }
    });
  }

  // ---------------------------------------------------------------- 2
  if (want('scan')) {
    await scenario('header scan, loopback', async () => {
      const ours = [];
      for (let i = 0; i < P.scanReps; i++) {
        const c = await popClient(bridge.url, dc.ports.pop3, SCAN_USER);
        const t0 = performance.now();
        const s = await c.summaries();
        ours.push((performance.now() - t0) / 1000);
        if (s.length !== P.scanCount || !s[0].subject || !s.at(-1).uid) throw new Error('summaries() came back incomplete');
        await c.quit();
      }
      const base = [];
      for (let i = 0; i < P.scanReps; i++) {
        base.push((await python(['scan', '--port', String(dc.ports.pop3), '--user', SCAN_USER.name, '--password', SCAN_USER.password])).seconds);
      }
      raw.scan = { ours, poplib: base };
      const o = median(ours);
      const b = median(base);
      row('2 header scan, loopback', `summaries() of ${P.scanCount}, 0 ms RTT`, {
        ours: o, base: b, unit: 's', ratio: o / b, targetText: 'time ≤ 1.5× poplib', pass: o / b <= 1.5,
      });
    });
  }

  // ---------------------------------------------------------------- 3
  if (want('bulk')) {
    await scenario('bulk download', async () => {
      const total = dc.users.bulk ? null : null; // sizes come from LIST below
      raw.bulk = { ours: [], poplib: [], big: { ours: [], poplib: [], memory: [] } };
      const ids = Array.from({ length: P.scanCount }, (_, k) => k + 1);
      let bytes = 0;
      for (let i = 0; i < P.bulkReps; i++) {
        const c = await popClient(bridge.url, dc.ports.pop3s, SCAN_USER, { tls: 'implicit' });
        const sizes = await c.list();
        bytes = sizes.reduce((a, e) => a + e.size, 0);
        const t0 = performance.now();
        const got = await c.retrMany(ids);
        const s = (performance.now() - t0) / 1000;
        if (got.some((g) => g.error || !g.body?.length)) throw new Error('retrMany() had errors');
        raw.bulk.ours.push(bytes / 2 ** 20 / s);
        await c.quit();
      }
      for (let i = 0; i < P.bulkReps; i++) {
        const r = await python(['retr', '--ssl', '--ca', dc.caFile, '--port', String(dc.ports.pop3s),
          '--user', SCAN_USER.name, '--password', SCAN_USER.password, '--ids', `1-${P.scanCount}`]);
        raw.bulk.poplib.push(r.bytes / 2 ** 20 / r.seconds);
      }
      const o = median(raw.bulk.ours);
      const b = median(raw.bulk.poplib);
      row('3 bulk download, TLS', `RETR ×${P.scanCount} (${(bytes / 2 ** 20).toFixed(1)} MB), MB/s`, {
        ours: o, base: b, ratio: o / b, targetText: '≥ 0.5× poplib MB/s', pass: o / b >= 0.5,
      });

      // The big message: streamed in a child process whose memory we watch.
      const bigSize = dc.users.alice ? null : null;
      for (let i = 0; i < P.bigReps; i++) {
        const child = spawn(process.execPath, [path.join(HERE, 'stream-client.mjs'), JSON.stringify({
          bridge: bridge.url, host: '127.0.0.1', port: dc.ports.pop3s, user: BIG_USER.name, password: BIG_USER.password, msg: 1,
        })], { stdio: ['pipe', 'pipe', 'inherit'] });
        children.add(child);
        const out = child.stdout.setEncoding('utf8');
        const lineOf = () => new Promise((resolve, reject) => {
          let buf = '';
          const on = (d) => {
            buf += d;
            const j = buf.indexOf('\n');
            if (j >= 0) {
              out.off('data', on);
              resolve(buf.slice(0, j));
            }
          };
          out.on('data', on);
          child.once('exit', (c) => reject(new Error(`stream client exited ${c}`)));
        });
        if ((await lineOf()) !== 'idle') throw new Error('stream client did not get ready');
        const idle = rssKiB(child.pid);
        fs.writeFileSync(`/proc/${child.pid}/clear_refs`, '5'); // reset VmHWM
        let sampled = idle;
        const sampler = setInterval(() => {
          try {
            sampled = Math.max(sampled, rssKiB(child.pid));
          } catch {}
        }, 5);
        const done = lineOf();
        child.stdin.write('go\n');
        const r = JSON.parse(await done);
        const hwm = rssKiB(child.pid, 'VmHWM');
        clearInterval(sampler);
        await new Promise((res) => (child.exitCode !== null ? res() : child.once('exit', res)));
        children.delete(child);
        if (r.bytes < P.bigBytes * 0.99) throw new Error(`streamed only ${r.bytes} bytes`);
        raw.bulk.big.ours.push(P.bigBytes / 2 ** 20 / r.seconds);
        raw.bulk.big.memory.push({ idleKiB: idle, peakKiB: Math.max(hwm, sampled), hwmKiB: hwm, sampledKiB: sampled });
      }
      for (let i = 0; i < P.bigReps; i++) {
        const r = await python(['retr', '--ssl', '--ca', dc.caFile, '--port', String(dc.ports.pop3s),
          '--user', BIG_USER.name, '--password', BIG_USER.password, '--ids', '1']);
        raw.bulk.big.poplib.push(r.bytes / 2 ** 20 / r.seconds);
      }
      const mb = P.bigBytes / 2 ** 20;
      const bo = median(raw.bulk.big.ours);
      const bb = median(raw.bulk.big.poplib);
      row('3 bulk download, TLS', `retrStream() of ${mb} MB, MB/s`, {
        ours: bo, base: bb, ratio: bo / bb, targetText: '≥ 0.5× poplib MB/s', pass: bo / bb >= 0.5,
      });
      const worst = raw.bulk.big.memory.reduce((a, m) => (m.peakKiB - (2 * m.idleKiB + 8192) > a.peakKiB - (2 * a.idleKiB + 8192) ? m : a));
      const limitMiB = (2 * worst.idleKiB + 8192) / 1024;
      row('3 bulk download, TLS', `Node peak RSS streaming ${mb} MB (idle ${(worst.idleKiB / 1024).toFixed(1)} MB)`, {
        ours: worst.peakKiB / 1024, base: `limit ${limitMiB.toFixed(1)} MB`, unit: 'MB',
        targetText: '< 2× idle + 8 MB', pass: worst.peakKiB / 1024 < limitMiB,
      });
    });
  }

  // ---------------------------------------------------------------- 4
  if (want('bridge')) {
    await scenario('bridge alone', async () => {
      // The same native client and TCP server (relay_load) through the
      // bridge (WebSocket: masked 64 KiB messages in, frames out) and
      // through a bare TCP forwarder (tokio's copy_bidirectional, 256 KiB
      // buffers, no WebSocket, no checks): what any relay that opens its own
      // connection costs. Plain TCP with no relay is the reference under both.
      const fwd = await relayLoadServer(relayLoadBin, ['forward', String(native.port)]);
      cleanup.push(() => fwd.stop());
      const raw4 = (raw.bridge = { pinnedCpu: TASKSET ? os.cpus().length - 1 : null, client: relayLoadBin, bridge: {}, forwarder: {}, tcp: {} });
      const bytes = [String(P.nativeBytes), String(P.nativeReps)];
      const sides = {
        bridge: { pid: bridge.pid, download: ['download', bridge.url, String(native.port)], upload: ['upload', bridge.url, String(native.port)],
          latency: ['latency', bridge.url, String(native.port)] },
        forwarder: { pid: fwd.child.pid, download: ['tcp-download', String(fwd.port)], upload: ['tcp-upload', String(fwd.port)],
          latency: ['tcp-latency', String(fwd.port)] },
        tcp: { pid: null, download: ['tcp-download', String(native.port)], upload: ['tcp-upload', String(native.port)],
          latency: ['tcp-latency', String(native.port)] },
      };
      // Round trips with the client, the relay and the echo server pinned
      // to one core: a ping-pong between idle vCPUs otherwise measures their
      // wake-up time (tens of µs, varying run to run), not the relay.
      const cpu = os.cpus().length - 1;
      const pinned = [native.child.pid, fwd.child.pid, bridge.pid];
      for (const [name, side] of Object.entries(sides)) {
        const r = raw4[name];
        await relayLoad(relayLoadBin, [...side.download, String(16 << 20), '1']); // warm-up
        r.cpuMsPerGiB = {};
        for (const dir of ['download', 'upload']) {
          const cpu0 = side.pid && cpuSeconds(side.pid);
          r[dir] = (await relayLoad(relayLoadBin, [...side[dir], ...bytes])).mbps;
          if (side.pid) r.cpuMsPerGiB[dir] = ((cpuSeconds(side.pid) - cpu0) * 1000) / ((P.nativeReps * P.nativeBytes) / 2 ** 30);
        }
        r.latencyUnpinned = await relayLoad(relayLoadBin, [...side.latency, String(Math.min(P.nativeEchoN, 5000)), '32']);
        pinned.forEach((p) => pin(p, cpu));
        try {
          r.latency = await relayLoad(relayLoadBin, [...side.latency, String(P.nativeEchoN), '32'], cpu);
        } finally {
          pinned.forEach((p) => pin(p, ALL_CPUS));
        }
      }
      fwd.stop();
      const G = '4 bridge vs bare forwarder';
      const b = raw4.bridge;
      const f = raw4.forwarder;
      const t = raw4.tcp;
      const size = P.nativeBytes >= 1 << 30 ? `${P.nativeBytes / 2 ** 30} GiB` : `${P.nativeBytes >> 20} MB`;
      for (const dir of ['download', 'upload']) {
        const arrow = dir === 'download' ? 'server → client (TCP → WS)' : 'client → server (WS → TCP)';
        const o = median(b[dir]);
        const x = median(f[dir]);
        row(G, `${arrow} ${size}, MB/s (plain TCP, no relay: ${fmt(median(t[dir]))})`, { ours: o, base: x, ratio: o / x, targetText: '(reported)' });
        row(G, `${arrow}: relay CPU ms per GiB`, { ours: b.cpuMsPerGiB[dir], base: f.cpuMsPerGiB[dir], ratio: b.cpuMsPerGiB[dir] / f.cpuMsPerGiB[dir], targetText: '(reported)' });
      }
      const pinnedNote = TASKSET ? 'all on one core' : 'unpinned: no taskset';
      row(G, `echo round trip, 32 B × ${P.nativeEchoN}, ${pinnedNote}, median µs (plain TCP: ${fmt(t.latency.medianUs)})`, {
        ours: b.latency.medianUs, base: f.latency.medianUs, ratio: b.latency.medianUs / f.latency.medianUs, targetText: '(reported)',
      });
      row(G, `echo round trip, same, p99 µs`, {
        ours: b.latency.p99Us, base: f.latency.p99Us, ratio: b.latency.p99Us / f.latency.p99Us, targetText: '(reported)',
      });
      row(G, `echo round trip, unpinned, median µs (plain TCP: ${fmt(t.latencyUnpinned.medianUs)})`, {
        ours: b.latencyUnpinned.medianUs, base: f.latencyUnpinned.medianUs,
        ratio: b.latencyUnpinned.medianUs / f.latencyUnpinned.medianUs, targetText: '(reported)',
      });
    });
  }

  // ---------------------------------------------------------------- 5
  if (want('scale')) {
    await scenario('scale', async () => {
      raw.scale = {};
      const n = P.concurrent;
      let errs = 0;
      const errorKinds = {};
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: n }, async () => {
          try {
            const c = await popClient(bridge.url, dc.ports.pop3, SCAN_USER);
            const st = await c.stat();
            if (st.count !== P.scanCount) throw new Error(`STAT said ${st.count}`);
            await c.quit();
          } catch (e) {
            errs++;
            const k = `${e.code ?? ''} ${String(e.message).slice(0, 100)}`;
            errorKinds[k] = (errorKinds[k] ?? 0) + 1;
          }
        }),
      );
      const s = (performance.now() - t0) / 1000;
      raw.scale.concurrent = { sessions: n, seconds: s, errors: errs, errorKinds };
      row('5 scale', `${n} concurrent login+STAT+QUIT: sessions/s`, { ours: n / s });
      row('5 scale', `${n} concurrent: errors`, { ours: String(errs), targetText: '0', pass: errs === 0 });

      // Idle sessions: a fresh bridge, so its memory is not that of earlier scenarios.
      const idleBridge = await startBridge({ allow: [`127.0.0.1:${workloadPort}`], extraArgs: BRIDGE_LIMITS });
      cleanup.push(() => idleBridge.stop());
      // Warm the runtime up (worker threads, first allocations) before the baseline.
      for (const ws of await Promise.all(Array.from({ length: 20 }, () => openWs(idleBridge.url, workloadPort)))) ws.terminate();
      await sleep(500);
      const before = rssKiB(idleBridge.pid);
      const open = [];
      const batch = 250;
      let idleErrors = 0;
      const t1 = performance.now();
      for (let i = 0; i < P.idle; i += batch) {
        const got = await Promise.allSettled(Array.from({ length: Math.min(batch, P.idle - i) }, () => openWs(idleBridge.url, workloadPort)));
        for (const g of got) g.status === 'fulfilled' ? open.push(g.value) : idleErrors++;
      }
      const openSeconds = (performance.now() - t1) / 1000;
      await sleep(1000);
      const after = rssKiB(idleBridge.pid);
      const perKiB = (after - before) / open.length;
      raw.scale.idle = { sessions: open.length, errors: idleErrors, openSeconds, rssBeforeKiB: before, rssAfterKiB: after, perSessionKiB: perKiB };
      for (const ws of open) ws.terminate();
      await idleBridge.stop();
      row('5 scale', `${P.idle} idle sessions open: errors`, { ours: String(idleErrors), targetText: '0', pass: idleErrors === 0 });
      row('5 scale', `bridge RSS per idle plain session (${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MB)`, {
        ours: perKiB, unit: 'KiB', targetText: '≤ 32 KiB', pass: perKiB <= 32,
      });
    });
  }

  // ---------------------------------------------------------------- 6
  if (want('size')) {
    await scenario('size and start', async () => {
      const pkg = path.join(REPO_ROOT, 'pop3-wasm', 'pkg');
      // `gzip -9` (what a server's precompressed asset is); Node's zlib at
      // level 9 is recorded too (it comes out about 1 % larger).
      const gzipCli = (f) => {
        try {
          return execFileSync('gzip', ['-9c', f], { maxBuffer: 1 << 26 }).length;
        } catch {
          return null;
        }
      };
      const sizesOf = (files) => files.map((f) => {
        const b = fs.readFileSync(path.join(pkg, f));
        const zl = zlib.gzipSync(b, { level: 9 }).length;
        return { file: f, raw: b.length, gzip: gzipCli(path.join(pkg, f)) ?? zl, zlib9: zl };
      });
      // The default module, the TLS-capable one (end-to-end TLS, loaded
      // only by sessions that ask for it) and the analyzer's (the
      // TLS-capable one plus the diagnosis rules, loaded only by diagnose()).
      const modules = [
        { name: 'pop3_wasm', label: '', limit: 150, key: 'files' },
        { name: 'pop3_wasm_tls', label: 'TLS-capable module: ', limit: 450, key: 'tlsFiles' },
        { name: 'pop3_wasm_diag', label: 'Analyzer module (diagnose()): ', limit: 500, key: 'diagFiles' },
      ];
      raw.size = {};
      for (const m of modules) {
        const sizes = sizesOf([`${m.name}_bg.wasm`, `${m.name}.js`]);
        const rawSum = sizes.reduce((a, s) => a + s.raw, 0);
        const gz = sizes.reduce((a, s) => a + s.gzip, 0);
        raw.size[m.key] = sizes;
        row('6 size and start', `${m.label}.wasm + JS glue, raw (${sizes.map((s) => `${(s.raw / 1024).toFixed(0)}`).join(' + ')} KiB)`, { ours: rawSum / 1024, unit: 'KiB' });
        row('6 size and start', `${m.label}.wasm + JS glue, gzip -9 (${sizes.map((s) => `${(s.gzip / 1024).toFixed(1)}`).join(' + ')} KiB)`, {
          ours: gz / 1024, unit: 'KiB', targetText: `≤ ${m.limit} KiB`, pass: gz / 1024 <= m.limit,
        });
      }
      raw.start = {};
      for (const [mode, bridgeUrl] of [['bridge', bridge.url], ['direct', null]]) {
        const ms = [];
        for (let i = 0; i < P.startReps; i++) {
          const arg = JSON.stringify({ bridge: bridgeUrl, host: '127.0.0.1', port: dc.ports.pop3, user: SCAN_USER.name, password: SCAN_USER.password });
          const r = await run(process.execPath, [path.join(HERE, 'start-client.mjs'), arg], { timeoutMs: 30_000 });
          if (r.code !== 0 || !r.stdout.includes('"count"')) throw new Error(`start client failed: ${r.stderr.slice(-500)}`);
          ms.push(r.ms);
        }
        raw.start[mode] = ms;
        row('6 size and start', `node start → first STAT (${mode === 'bridge' ? 'through the bridge' : 'direct'}), ms`, { ours: median(ms) });
      }
    });
  }

  // ---------------------------------------------------------------- 8 (bench/end-to-end.mjs)
  if (want('e2e')) {
    await scenario('end-to-end TLS', () => endToEndScenario({
      quick: QUICK, dc, user: SCAN_USER, count: P.scanCount, reps: P.bulkReps, row, raw, log, median,
      // poplib over POP3S, the same RETRs: scenario 3's figures when it ran.
      poplib: async () => {
        if (!raw.bulk?.poplib?.length) {
          const r = await python(['retr', '--ssl', '--ca', dc.caFile, '--port', String(dc.ports.pop3s),
            '--user', SCAN_USER.name, '--password', SCAN_USER.password, '--ids', `1-${P.scanCount}`]);
          raw.bulk = { ...raw.bulk, poplib: [r.bytes / 2 ** 20 / r.seconds] };
        }
        return median(raw.bulk.poplib);
      },
    }));
  }

  // ---------------------------------------------------------------- 7 (bench/exporter-scale.mjs)
  if (want('exporter')) await scenario('exporter scale', () => exporterScale({ quick: QUICK, row, raw, log }));
} catch (e) {
  errors.push({ scenario: 'set-up', error: String(e?.stack ?? e) });
  log(`set-up failed: ${e?.stack ?? e}`);
} finally {
  for (const f of cleanup.reverse()) {
    try {
      await f();
    } catch {}
  }
  if (workload) workload.stdin.end();
}

const seconds = (performance.now() - t0Run) / 1000;
const result = { startedAt: started.toISOString(), quick: QUICK, seconds, machine: info, params: P, rows, raw, errors };
const dir = path.join(HERE, 'results');
fs.mkdirSync(dir, { recursive: true });
const file = path.join(dir, `${started.toISOString().replace(/[:.]/g, '-')}${QUICK ? '-quick' : ''}.json`);
fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');

process.stdout.write(`\n${QUICK ? 'Quick run (small sizes: the figures are not the benchmark)' : 'Full run'}, ${seconds.toFixed(0)} s, ${info.cpu}, load ${info.loadavg}\n\n`);
process.stdout.write(table() + '\n\n');
process.stdout.write(`raw figures: ${path.relative(process.cwd(), file)}\n`);
const failed = rows.filter((r) => r.pass === false).length;
if (errors.length) {
  process.stdout.write(`${errors.length} scenario(s) failed to run\n`);
  process.exit(1);
}
if (failed) process.stdout.write(`${failed} target(s) not met\n`);
process.exit(STRICT && failed ? 2 : 0);
