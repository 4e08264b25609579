// End-to-end TLS: the client's own TLS (rustls, the TLS-capable module)
// between the POP3 core and the transport, so a bridge relays ciphertext
// only and never holds a key; STLS done by the client too.
//
// - Against Dovecot, implicit TLS and STLS, byte-exact RETR and TOP of every
//   edge-case message: directly (rustls over node:net) and through a v2
//   bridge, with a recording TCP relay between the bridge and Dovecot that
//   shows no readable command after the handshake starts (and never the
//   password, nor its base64 forms).
// - Certificate failures with certificates made here (untrusted, expired,
//   wrong name): TLS_FAILED with `reason` and the names or dates quoted.
// - The wire format's rules the client keeps: a v1 bridge is refused before
//   anything is sent to it, `endToEnd` with tls: 'none' is INVALID_ARGUMENT.
// - In Chromium: a page that never asks does not fetch the TLS-capable
//   module; one that asks loads it under the bridge's Content-Security-Policy
//   and RETRs byte-exact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { WebSocketServer } from 'ws';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startRelay } from '../fixtures/relay.mjs';
import { startEndToEndBridge } from '../fixtures/e2e-bridge.mjs';
import { makeTestCertificates } from '../fixtures/certs.mjs';
import { startInjectingStlsServer } from '../fixtures/stls-server.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';
import { REPO_ROOT } from '../fixtures/bridge.mjs';
import { launchChromium, collectPageErrors, screenshot, checkerConnect, checkerRows, playgroundType, writeTestPage, testPageResult } from '../fixtures/browser.mjs';
import { runCleanups } from '../fixtures/cleanup.mjs';

let dc;
let certs;
const cleanups = [];

before(async () => {
  dc = await startDovecot();
  certs = makeTestCertificates();
  cleanups.push(certs.remove);
});

after(async () => {
  try {
    await runCleanups(cleanups);
  } finally {
    await dc?.stop();
  }
});

const ALICE = () => dc.users.alice;

/** RETR and TOP n 2 of every message of alice's, byte for byte. */
async function everyMessageByteExact(c) {
  const a = ALICE();
  for (let n = 1; n <= a.count; n++) {
    assert.ok(Buffer.from(await c.retr(n)).equals(dc.expected('alice', n)), `RETR ${n} (${a.messages[n - 1].name})`);
    assert.ok(Buffer.from(await c.top(n, 2)).equals(dc.expectedTop('alice', n, 2)), `TOP ${n} 2`);
  }
}

function assertEndToEnd(c) {
  assert.equal(c.tls.endToEnd, true);
  assert.match(c.tls.protocol, /^TLSv1\.[23]$/);
  assert.equal(c.tls.certificate.subject, 'O=pop3-wasm tests, CN=localhost');
  assert.deepEqual(c.tls.chain[0].dnsNames, ['localhost']);
  assert.deepEqual(c.tls.chain[0].ipAddresses, ['127.0.0.1']);
}

test('direct, TLS in the client: implicit and STLS against Dovecot, RETR and TOP byte-exact', async () => {
  for (const mode of ['implicit', 'starttls']) {
    const port = mode === 'implicit' ? dc.ports.pop3s : dc.ports.pop3;
    const c = await Pop3Client.connect({ host: dc.host, port, tls: mode, endToEnd: true, ca: dc.ca });
    assertEndToEnd(c);
    assert.equal(c instanceof Pop3Client, true, 'a session of the TLS-capable module is a Pop3Client');
    const steps = c.phases.map((p) => p.name);
    assert.deepEqual(steps, mode === 'implicit' ? ['connect', 'tls', 'greeting', 'capa'] : ['connect', 'greeting', 'capa', 'stls', 'capa']);
    assert.equal(await c.login(ALICE().name, ALICE().password), 'SCRAM-SHA-256');
    await everyMessageByteExact(c);
    await c.quit();
  }
});

/** Client → server bytes the relay recorded for one session, and where TLS started. */
function recorded(relay, since) {
  const [sent] = relay.sent(since);
  assert.ok(sent !== undefined, 'the session went through the relay');
  const hello = sent.indexOf('\x16\x03');
  assert.ok(hello >= 0, 'a TLS handshake record');
  return { sent, plain: sent.slice(0, hello), after: sent.slice(hello) };
}

test('through a v2 bridge: the relay between bridge and server sees no readable command after the handshake starts', async () => {
  const relays = { implicit: await startRelay(dc.ports.pop3s), starttls: await startRelay(dc.ports.pop3) };
  cleanups.push(() => relays.implicit.stop(), () => relays.starttls.stop());
  const bridge = await startEndToEndBridge(dc, { allow: [relays.implicit.port, relays.starttls.port] });
  cleanups.push(() => bridge.stop());
  const a = ALICE();
  const b64 = Buffer.from(`\0${a.name}\0${a.password}`).toString('base64');
  for (const [mode, relay] of Object.entries(relays)) {
    const since = relay.count();
    const lines = [];
    const c = await Pop3Client.connect({
      bridge: bridge.url, host: '127.0.0.1', port: relay.port, tls: mode, endToEnd: true, ca: dc.ca.toString(),
      onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`),
    });
    assert.equal(c.tls.endToEnd, true);
    // PLAIN on purpose: the password itself (in base64) would be on the wire.
    assert.equal(await c.auth('PLAIN', { username: a.name, password: a.password }), 'PLAIN');
    assert.ok(Buffer.from(await c.retr(3)).equals(dc.expected('alice', 3)));
    assert.ok(Buffer.from(await c.top(3, 1)).equals(dc.expectedTop('alice', 3, 1)));
    await c.quit();
    assert.ok(lines.includes('C: AUTH PLAIN [redacted]'), lines.join('\n'));
    const { plain, after } = recorded(relay, since);
    // Before the ClientHello: nothing (implicit), or exactly CAPA and STLS.
    assert.equal(plain, mode === 'implicit' ? '' : 'CAPA\r\nSTLS\r\n');
    for (const word of ['USER', 'PASS', 'AUTH', 'RETR', 'TOP ', 'CAPA', 'QUIT', a.password, b64, a.name]) {
      assert.ok(!after.includes(word), `${word} readable on the wire after the handshake started (${mode})`);
    }
  }
});

test('certificates made here: untrusted, expired, wrong name are TLS_FAILED with the reason, directly and through the bridge', async () => {
  const servers = {};
  for (const [name, keyCert] of Object.entries({ expired: certs.expired, wrong: certs.wrong, self: certs.self })) {
    const srv = tls.createServer(keyCert, (s) => {
      s.on('error', () => {});
      s.end('+OK should never be read\r\n');
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => srv.close(r)));
    servers[name] = srv.address().port;
  }
  const bridge = await startEndToEndBridge(dc, { allow: Object.values(servers) });
  cleanups.push(() => bridge.stop());
  for (const via of [{}, { bridge: bridge.url }]) {
    const at = (port, more = {}) => Pop3Client.connect({ ...via, host: 'localhost', port, tls: 'implicit', endToEnd: true, ca: certs.ca, ...more });
    const expired = await rejectsWith(at(servers.expired), 'TLS_FAILED');
    assert.equal(expired.reason, 'expired');
    assert.match(expired.message, /^certificate expired at 2020-02-01T00:00:00Z \(the client's clock says \d{4}-/);
    const wrong = await rejectsWith(at(servers.wrong), 'TLS_FAILED');
    assert.equal(wrong.reason, 'wrong-name');
    assert.equal(wrong.message, 'certificate not valid for the host name localhost (it is for wrong.example)');
    const self = await rejectsWith(at(servers.self, { ca: undefined }), 'TLS_FAILED');
    assert.equal(self.reason, 'untrusted');
    assert.equal(self.message, 'certificate not trusted (unknown issuer: CN=localhost)');
  }
});

test('STLS in the client: bytes the server sends after +OK are dropped and reported', async () => {
  // An attacker's line after +OK, before the handshake: never read as the server's.
  const srv = await startInjectingStlsServer({ ...certs.valid, inject: '-ERR INJECTED\r\n' });
  cleanups.push(srv.close);
  const lines = [];
  const c = await Pop3Client.connect({
    host: 'localhost', port: srv.port, tls: 'starttls', endToEnd: true, ca: certs.ca,
    onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`),
  });
  assert.equal(c.tls.endToEnd, true);
  assert.deepEqual(c.capabilities.sasl, ['PLAIN']);
  assert.ok(lines.includes('S: +OK go ahead'), lines.join('\n'));
  assert.ok(!lines.join('\n').includes('INJECTED'));
  assert.deepEqual(c.deviations.map((d) => d.id), ['data-after-stls']);
  c.close();
});

test('a v1 bridge is refused before anything is sent to it; endToEnd with tls none is INVALID_ARGUMENT', async () => {
  const received = [];
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('pop3-bridge.v1') ? 'pop3-bridge.v1' : false) });
  server.on('connection', (ws, req) => {
    received.push(req.headers['sec-websocket-protocol'].split(/,\s*/).join(' '));
    ws.on('message', (m) => received.push(String(m)));
  });
  await new Promise((r) => server.once('listening', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const url = `ws://127.0.0.1:${server.address().port}/pop3`;
  const e = await rejectsWith(Pop3Client.connect({ bridge: url, host: 'localhost', tls: 'implicit', endToEnd: true }), 'UNSUPPORTED');
  assert.equal(e.message, 'this bridge does not relay end-to-end TLS (wire v1)');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(received, ['pop3-bridge.v2 pop3-bridge.v1'], 'offered v2 then v1, and sent nothing');
  const none = await rejectsWith(Pop3Client.connect({ bridge: url, host: 'localhost', tls: 'none', endToEnd: true }), 'INVALID_ARGUMENT');
  assert.match(none.message, /needs tls: 'implicit' or 'starttls'/);
});

// ------------------------------------------------------------- Chromium

/**
 * The pages (web/, as build.sh leaves them) plus a test page that RETRs
 * through the browser entry and reports what it got, in a directory of
 * their own, served by the bridge with its Content-Security-Policy.
 */
function pagesWithTestPage() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-wasm-e2e-pages-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.cpSync(path.join(REPO_ROOT, 'web'), dir, { recursive: true });
  writeTestPage(
    dir,
    'e2e',
    `import { Pop3Client } from './pop3-wasm/js/browser.js';
const q = new URLSearchParams(location.search);
const out = document.getElementById('result');
const b64 = (u8) => btoa(Array.from(u8, (b) => String.fromCharCode(b)).join(''));
try {
  const c = await Pop3Client.connect({ bridge: q.get('bridge'), host: '127.0.0.1', port: Number(q.get('port')), tls: q.get('tls'), endToEnd: true, ca: q.get('ca') ?? undefined });
  await c.login(q.get('user'), q.get('password'));
  const retr = [];
  const top = [];
  for (let n = 1; n <= Number(q.get('count')); n++) {
    retr.push(b64(await c.retr(n)));
    top.push(b64(await c.top(n, 2)));
  }
  await c.quit();
  out.textContent = JSON.stringify({ ok: true, tls: c.tls, retr, top, phases: c.phases.map((p) => p.name) });
} catch (e) {
  out.textContent = JSON.stringify({ ok: false, code: e.code ?? null, reason: e.reason ?? null, message: String(e.message ?? e) });
}
`,
  );
  return dir;
}

test('Chromium: the TLS-capable module is fetched only by a session that asks; end to end under the CSP, byte-exact; an untrusted certificate is TLS_FAILED', async () => {
  const serve = pagesWithTestPage();
  const bridge = await startEndToEndBridge(dc, { serve });
  cleanups.push(() => bridge.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const tlsModule = (requests) => requests.filter((u) => /pop3_wasm_tls/.test(u));
  const open = async () => {
    const page = collectPageErrors(await browser.newPage({ viewport: { width: 1200, height: 900 } }));
    page.requests = [];
    page.on('request', (r) => page.requests.push(r.url()));
    return page;
  };

  // The checker, used without end-to-end TLS: never fetches it.
  const plain = await open();
  await plain.goto(`${bridge.httpUrl}/`);
  await plain.waitForSelector('#connect-btn:not([disabled])');
  assert.equal(await plain.isChecked('#e2e'), false, 'off: this bridge does not require it');
  await plain.selectOption('#tls', 'none');
  assert.equal(await plain.isDisabled('#e2e'), true, 'no end-to-end TLS without TLS');
  assert.ok(plain.requests.some((u) => /pop3_wasm_bg\.wasm$/.test(u)), plain.requests.join('\n'));
  assert.deepEqual(tlsModule(plain.requests), []);
  assert.deepEqual(plain.errors, []);

  // A page that asks: every message, RETR and TOP, byte for byte.
  const a = ALICE();
  const page = await open();
  for (const [mode, port] of [['implicit', dc.ports.pop3s], ['starttls', dc.ports.pop3]]) {
    const q = new URLSearchParams({ bridge: bridge.url, port: String(port), tls: mode, ca: dc.ca.toString(), user: a.name, password: a.password, count: String(a.count) });
    const r = await testPageResult(page, `${bridge.httpUrl}/e2e.html?${q}`);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.tls.endToEnd, true);
    assert.deepEqual(r.tls.chain[0].dnsNames, ['localhost']);
    for (let n = 1; n <= a.count; n++) {
      assert.ok(Buffer.from(r.retr[n - 1], 'base64').equals(dc.expected('alice', n)), `RETR ${n} in Chromium (${mode})`);
      assert.ok(Buffer.from(r.top[n - 1], 'base64').equals(dc.expectedTop('alice', n, 2)), `TOP ${n} 2 in Chromium (${mode})`);
    }
  }
  // Without the test CA, the browser's engine does not trust Dovecot: TLS_FAILED, untrusted, the issuer named.
  for (const [mode, port] of [['implicit', dc.ports.pop3s], ['starttls', dc.ports.pop3]]) {
    const q = new URLSearchParams({ bridge: bridge.url, port: String(port), tls: mode, user: a.name, password: a.password, count: '1' });
    const r = await testPageResult(page, `${bridge.httpUrl}/e2e.html?${q}`);
    assert.deepEqual(r, {
      ok: false, code: 'TLS_FAILED', reason: 'untrusted',
      message: 'certificate not trusted (unknown issuer: O=pop3-wasm tests, CN=pop3-wasm test CA)',
    });
  }
  assert.ok(tlsModule(page.requests).some((u) => /pop3_wasm_tls_bg\.wasm$/.test(u)), page.requests.join('\n'));
  assert.deepEqual(page.errors, [], 'no CSP violation loading or running the TLS-capable module');

  // The checker with end-to-end TLS: the TLS panel says where TLS ends and shows the chain.
  const checker = await open();
  await checker.goto(`${bridge.httpUrl}/?e2e=1`);
  await checker.waitForSelector('#connect-btn:not([disabled])');
  await checker.setInputFiles('#ca', dc.caFile);
  await checkerConnect(checker, bridge.httpUrl, { host: '127.0.0.1', port: dc.ports.pop3, tls: 'starttls', user: a.name, password: a.password, query: '?e2e=1', keepPage: true });
  assert.deepEqual((await checkerRows(checker)).map((r) => r.uid), a.uids);
  assert.equal(await checker.textContent('#tls-ends'), 'In this browser (end to end): the bridge relayed only ciphertext and never held a key.');
  assert.match(await checker.textContent('#tls-chain'), /CN=localhost — issued by O=pop3-wasm tests, CN=pop3-wasm test CA; localhost, 127\.0\.0\.1/);
  await screenshot(checker, 'e2e-checker');
  assert.deepEqual(checker.errors, []);
  await checker.click('#keep');

  // The playground: STLS by hand, end to end; nothing readable but CAPA and STLS before it.
  const pg = await open();
  await pg.goto(`${bridge.httpUrl}/playground.html?host=127.0.0.1&port=${dc.ports.pop3}&tls=starttls&e2e=1&user=alice`);
  await pg.waitForSelector('#connect-btn:not([disabled])');
  await pg.setInputFiles('#ca', dc.caFile);
  await pg.click('#connect-btn');
  await pg.waitForSelector('#line:not([disabled])');
  // Refused by the client before anything is sent: no C: line, an explanation.
  await pg.focus('#line');
  await pg.keyboard.type('USER alice');
  await pg.keyboard.press('Enter');
  await pg.waitForFunction(() => /USER is not sent before TLS in an end-to-end session; send STLS first/.test(document.querySelector('#console').textContent));
  assert.ok(!(await pg.textContent('#console')).includes('C: USER'));
  const stls = await playgroundType(pg, 'STLS');
  assert.deepEqual(stls.slice(0, 2), ['C: STLS', 'S: +OK Begin TLS negotiation now.']);
  assert.equal(stls.at(-1), '-- TLS ends: In this browser (end to end): the bridge relayed only ciphertext and never held a key.');
  assert.deepEqual(await playgroundType(pg, 'USER alice'), ['C: USER alice', 'S: +OK']);
  await screenshot(pg, 'e2e-playground-stls-by-hand');
  assert.deepEqual(pg.errors, []);
});
