// Scenario 8 of bench/run.mjs: end-to-end TLS (the client's rustls, in the
// TLS-capable wasm module) against the baselines.
//
// - Direct mode, Node's TLS against the client's own (the choice the direct
//   transport makes by default): CPU per TLS session set up (connect,
//   handshake, greeting, CAPA) and bulk RETR MB/s over implicit TLS.
// - Bulk RETR over end-to-end TLS through a bridge, in Node and in Chromium,
//   against poplib over POP3S (target ≥ 0.5× poplib's MB/s).
//
// The bridge is ws-bridge relaying end to end (wire v2): it holds no key,
// so what it adds is the WebSocket framing of ciphertext.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Pop3Client } from '../pop3-wasm/js/node.js';
import { retrRates } from './retr-rate.mjs';
import { REPO_ROOT } from '../tests/fixtures/bridge.mjs';
import { startEndToEndBridge } from '../tests/fixtures/e2e-bridge.mjs';
import { launchChromium, testPageResult, writeTestPage } from '../tests/fixtures/browser.mjs';

const G = '8 end-to-end TLS';
const HERE = path.dirname(fileURLToPath(import.meta.url));

/** CPU ms (user + system) and wall ms per session set up over implicit TLS, directly. */
async function setupCost(dc, n, extra) {
  // One session first: modules loaded, caches warm.
  (await Pop3Client.connect({ host: '127.0.0.1', port: dc.ports.pop3s, tls: 'implicit', ca: dc.ca, ...extra })).close();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const c = await Pop3Client.connect({ host: '127.0.0.1', port: dc.ports.pop3s, tls: 'implicit', ca: dc.ca, ...extra });
    c.close();
  }
  const wall = (performance.now() - t0) / n;
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000 / n, wallMs: wall };
}

/** retrMany() of `count` messages over implicit TLS: MB/s per repetition. */
function bulk(dc, user, count, reps, extra) {
  return retrRates(Pop3Client, { host: '127.0.0.1', port: dc.ports.pop3s, tls: 'implicit', ca: dc.ca, ...extra }, user, count, reps);
}

/** The same in Chromium, through the bridge, from a page the bridge serves. */
async function chromiumBulk(bridge, serve, dc, user, count, reps) {
  fs.copyFileSync(path.join(HERE, 'retr-rate.mjs'), path.join(serve, 'retr-rate.mjs'));
  writeTestPage(
    serve,
    'bench-e2e',
    `import { Pop3Client } from './pop3-wasm/js/browser.js';
import { retrRates } from './retr-rate.mjs';
const q = new URLSearchParams(location.search);
const out = document.getElementById('result');
try {
  const o = { bridge: q.get('bridge'), host: '127.0.0.1', port: Number(q.get('port')), tls: 'implicit', endToEnd: true, ca: q.get('ca') };
  const rates = await retrRates(Pop3Client, o, { name: q.get('user'), password: q.get('password') }, Number(q.get('count')), Number(q.get('reps')));
  out.textContent = JSON.stringify({ ok: true, rates });
} catch (e) {
  out.textContent = JSON.stringify({ ok: false, message: String(e.message ?? e) });
}
`,
  );
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const q = new URLSearchParams({ bridge: bridge.url, port: String(dc.ports.pop3s), ca: dc.ca.toString(), user: user.name, password: user.password, count: String(count), reps: String(reps) });
    const r = await testPageResult(page, `${bridge.httpUrl}/bench-e2e.html?${q}`, 600_000);
    if (!r.ok) throw new Error(`Chromium: ${r.message}`);
    return r.rates;
  } finally {
    await browser.close();
  }
}

/**
 * `dc`: the bench's Dovecot; `user`: the scan user ({ name, password },
 * `count` messages); `poplib()`: resolves poplib's MB/s over POP3S for the
 * same RETRs (the baseline, median).
 */
export async function endToEndScenario({ quick, dc, user, count, reps, poplib, row, raw, log, median }) {
  const r = (raw.endToEnd = {});
  const base = await poplib();
  r.poplibMBps = base;

  // Direct mode: Node's TLS (the default) against the client's own.
  const n = quick ? 10 : 100;
  r.setup = { nodeTls: await setupCost(dc, n, {}), clientTls: await setupCost(dc, n, { endToEnd: true }) };
  for (const [k, label] of [['nodeTls', "Node's TLS (direct default)"], ['clientTls', "the client's rustls (endToEnd)"]]) {
    row(G, `direct, ${label}: CPU per session set up (TCP, TLS 1.3, greeting, CAPA), ms`, {
      ours: r.setup[k].cpuMs, unit: 'ms', targetText: `(reported; wall ${r.setup[k].wallMs.toFixed(1)} ms)`,
    });
  }
  r.direct = { nodeTls: await bulk(dc, user, count, reps, {}), clientTls: await bulk(dc, user, count, reps, { endToEnd: true }) };
  for (const [k, label] of [['nodeTls', "Node's TLS"], ['clientTls', "the client's rustls"]]) {
    const o = median(r.direct[k]);
    row(G, `direct, ${label}: RETR ×${count}, MB/s`, { ours: o, base, ratio: o / base, targetText: '(reported: the direct default is chosen on these)' });
  }

  // Through a bridge, end to end: Node, then Chromium.
  const serve = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-wasm-bench-e2e-'));
  try {
    fs.cpSync(path.join(REPO_ROOT, 'web'), serve, { recursive: true });
    const bridge = await startEndToEndBridge(dc, { serve, extraArgs: ['--log-level', 'warn', '--max-bytes-per-ip-hour', String(2 ** 50)] });
    try {
      log('end-to-end bulk through ws-bridge');
      r.node = await bulk(dc, user, count, reps, { bridge: bridge.url, endToEnd: true });
      const o = median(r.node);
      row(G, `Node through a bridge, end to end: RETR ×${count}, MB/s`, {
        ours: o, base, ratio: o / base, targetText: '≥ 0.5× poplib MB/s', pass: o / base >= 0.5,
      });
      r.chromium = await chromiumBulk(bridge, serve, dc, user, count, reps);
      const c = median(r.chromium);
      row(G, `Chromium through a bridge, end to end: RETR ×${count}, MB/s`, {
        ours: c, base, ratio: c / base, targetText: '≥ 0.5× poplib MB/s', pass: c / base >= 0.5,
      });
    } finally {
      await bridge.stop();
    }
  } finally {
    fs.rmSync(serve, { recursive: true, force: true });
  }
}
