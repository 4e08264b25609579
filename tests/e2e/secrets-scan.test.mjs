// Secrets never leak: with the bridge at its most verbose (--log-level
// trace) and requiring access tokens, run full sessions with every
// mechanism Dovecot offers (SCRAM-SHA-256/1, CRAM-MD5, APOP, PLAIN, LOGIN,
// USER), over implicit TLS, STLS and plain TCP (so the bridge relays the
// readable ones in the clear), with right and wrong passwords and tokens.
// Then scan the bridge's stdout/stderr, every transcript line and every
// error message for the passwords (and their base64 forms), the tokens and
// the message bodies retrieved.
//
// Every log filter a user can write must keep that promise, not only a
// plain level: more bridges run with span directives (`[session]=trace`
// enables every event inside a session, whoever emits it) and directives
// naming the crates that log frame payloads (tungstenite, hyper, rustls),
// in text and JSON, each with a session per TLS mode, a wrong password and
// a forged token; their logs are scanned too.
//
// End-to-end sessions (TLS in the client, the bridge relaying ciphertext)
// run too, with the same checks on their transcripts and errors, and on the
// logs of the bridge that relayed them at trace level.
//
// Transcripts show a retrieved body's lines on purpose (the playground's
// `S:` data lines): there, body text may appear only as server data lines
// answering RETR/TOP, never in a command, a status line or an error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pop3Client, Pop3Error } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridge, bridgeBinary } from '../fixtures/bridge.mjs';
import { startEndToEndBridge } from '../fixtures/e2e-bridge.mjs';

let dc;
let bridge;
/** A bridge relaying end-to-end sessions, at trace level. */
let e2eBridge;
let dir;
/** The bridges with other log filters: [{ filter, format, bridge }]. */
const others = [];
const OTHER_FILTERS = [
  ['info,[session]=trace', 'text'],
  ['info,[session]=trace', 'json'],
  ['tungstenite=trace,tokio_tungstenite=trace', 'text'],
  ['info,tungstenite=trace,tokio_tungstenite=trace,hyper=trace,hyper_util=trace,rustls=trace,tokio_rustls=trace,axum=trace', 'json'],
];
/** Tokens by `${port}/${tls}`: a token is bound to host, port and TLS mode. */
const tokens = {};
const transcript = [];
const errors = [];
const WRONG_PASSWORD = 'wrong-Pw-Zq9-never-shown';
const WRONG_TOKEN = 'forged-token-Xk7.never-shown';

before(async () => {
  dc = await startDovecot();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-wasm-secrets-'));
  const secretFile = path.join(dir, 'token-secret');
  fs.writeFileSync(secretFile, 'a-bridge-token-secret-of-enough-length-31415926\n', { mode: 0o600 });
  for (const [port, tls] of [[dc.ports.pop3s, 'implicit'], [dc.ports.pop3, 'starttls'], [dc.ports.pop3, 'none']]) {
    tokens[`${port}/${tls}`] = execFileSync(bridgeBinary(), ['token', '--host', dc.host, '--port', String(port), '--tls', tls, '--token-secret-file', secretFile], {
      encoding: 'utf8',
    }).trim();
  }
  // End to end, a token says so (it opens no bridge-side session, nor the other way round).
  for (const [port, tls] of [[dc.ports.pop3s, 'implicit'], [dc.ports.pop3, 'starttls']]) {
    tokens[`${port}/${tls}/e2e`] = execFileSync(
      bridgeBinary(),
      ['token', '--host', dc.host, '--port', String(port), '--tls', tls, '--end-to-end', '--token-secret-file', secretFile],
      { encoding: 'utf8' },
    ).trim();
  }
  const start = (filter, format) =>
    startBridge({
      allow: [`${dc.host}:${dc.ports.pop3},${dc.ports.pop3s}`],
      caFiles: [dc.caFile],
      extraArgs: ['--log-level', filter, '--log-format', format, '--token-secret-file', secretFile],
    });
  bridge = await start('trace', 'text');
  e2eBridge = await startEndToEndBridge(dc, { extraArgs: ['--log-level', 'trace', '--token-secret-file', secretFile] });
  for (const [filter, format] of OTHER_FILTERS) others.push({ filter, format, bridge: await start(filter, format) });
});

after(async () => {
  for (const o of others) await o.bridge.stop();
  await e2eBridge?.stop();
  await bridge?.stop();
  await dc?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const MODES = {
  implicit: () => ({ port: dc.ports.pop3s, tls: 'implicit' }),
  starttls: () => ({ port: dc.ports.pop3, tls: 'starttls' }),
  none: () => ({ port: dc.ports.pop3, tls: 'none', allowInsecureAuth: true }),
};

function connect(mode, extra = {}, via = bridge) {
  const m = MODES[mode]();
  return Pop3Client.connect({
    bridge: via.url,
    host: dc.host,
    token: tokens[`${m.port}/${m.tls}${extra.endToEnd ? '/e2e' : ''}`],
    timeoutMs: 15000,
    onTranscript: (l) => transcript.push({ ...l, mode }),
    ...m,
    ...extra,
  });
}

async function expectError(promise, code) {
  const e = await promise.then(() => assert.fail(`expected ${code}`), (e) => e);
  assert.ok(e instanceof Pop3Error, String(e?.stack ?? e));
  errors.push(e);
  assert.equal(e.code, code, e.message);
  return e;
}

/** Logs in with `mech`; everything the mailbox has is read (UIDL, TOP, RETR), then QUIT. */
async function fullSession(mode, user, mech, via = bridge) {
  const c = await connect(mode, {}, via);
  const { name, password } = dc.users[user];
  const used = mech === 'APOP' ? await c.apop(name, password) : mech === 'login' ? await c.login(name, password) : await c.auth(mech, { username: name, password });
  if (mech !== 'login') assert.equal(used, mech);
  await c.uidl();
  const n = dc.users[user].count;
  for (let i = 1; i <= Math.min(n, 8); i++) {
    assert.deepEqual(Buffer.from(await c.retr(i)), dc.expected(user, i));
    await c.top(i, 2);
  }
  await c.summaries();
  await c.quit();
}

const MECHS = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5', 'APOP', 'PLAIN', 'LOGIN', 'USER', 'login'];

test('full sessions with every mechanism, over implicit TLS, STLS and plain TCP', async () => {
  for (const mode of Object.keys(MODES)) {
    for (const mech of MECHS) await fullSession(mode, mech === 'APOP' || mech === 'USER' ? 'alice' : mech === 'PLAIN' ? 'jürgen' : 'alice', mech);
  }
  await fullSession('implicit', 'jürgen', 'SCRAM-SHA-256');
  await fullSession('none', 'jürgen', 'LOGIN');
});

test('wrong passwords with every mechanism, and a forged token', async () => {
  for (const mode of ['implicit', 'none']) {
    for (const mech of MECHS) {
      const c = await connect(mode);
      const p = mech === 'APOP' ? c.apop('alice', WRONG_PASSWORD) : mech === 'login' ? c.login('alice', WRONG_PASSWORD) : c.auth(mech, { username: 'alice', password: WRONG_PASSWORD });
      await expectError(p, 'AUTH_FAILED');
      c.close();
    }
  }
  await expectError(connect('implicit', { token: WRONG_TOKEN }), 'BRIDGE_REJECTED');
  await expectError(connect('implicit', { token: tokens[`${dc.ports.pop3}/starttls`] }), 'BRIDGE_REJECTED'); // a real token, for another port
  await expectError(connect('none', { token: tokens[`${dc.ports.pop3}/starttls`] }), 'BRIDGE_REJECTED'); // a real token, for STLS, on plain text
});

test('other log filters: span directives and the payload-logging crates named', async () => {
  for (const { bridge: via } of others) {
    await fullSession('implicit', 'alice', 'SCRAM-SHA-256', via);
    await fullSession('starttls', 'jürgen', 'PLAIN', via);
    await fullSession('none', 'alice', 'USER', via);
    const c = await connect('none', {}, via);
    await expectError(c.login('alice', WRONG_PASSWORD), 'AUTH_FAILED');
    c.close();
    await expectError(connect('implicit', { token: WRONG_TOKEN }, via), 'BRIDGE_REJECTED');
  }
});

test('end-to-end sessions: TLS in the client, the bridge relaying ciphertext at trace level', async () => {
  const e2e = { endToEnd: true, ca: dc.ca };
  for (const mode of ['implicit', 'starttls']) {
    for (const mech of ['SCRAM-SHA-256', 'PLAIN', 'USER']) {
      const c = await connect(mode, e2e, e2eBridge);
      assert.equal(c.tls.endToEnd, true);
      await c.auth(mech, { username: 'alice', password: dc.users.alice.password });
      for (let i = 1; i <= 3; i++) assert.deepEqual(Buffer.from(await c.retr(i)), dc.expected('alice', i));
      await c.quit();
    }
    const c = await connect(mode, e2e, e2eBridge);
    await expectError(c.auth('PLAIN', { username: 'alice', password: WRONG_PASSWORD }), 'AUTH_FAILED');
    c.close();
  }
});

test('a session cut in the middle of a body: the error carries no body text', async () => {
  const c = await connect('implicit');
  await c.login('alice', dc.users.alice.password);
  const n = dc.users.alice.count; // the 5 MB message: not all there when close() comes
  const stream = await c.retrStream(n);
  const reader = stream.getReader();
  let got = (await reader.read()).value.byteLength;
  c.close();
  // The stream must fail: ending normally would report a cut body as whole.
  const e = await (async () => {
    for (;;) {
      const r = await reader.read();
      if (r.done) return null;
      got += r.value.byteLength;
    }
  })().then(() => assert.fail(`the stream ended normally after ${got} of ${dc.expected('alice', n).length} octets`), (e) => e);
  assert.ok(e instanceof Pop3Error, String(e?.stack ?? e));
  assert.equal(e.code, 'CONNECTION_CLOSED', e.message);
  assert.ok(got < dc.expected('alice', n).length);
  errors.push(e);
  errors.push(await c.noop().then(() => assert.fail('open'), (e) => e));
});

/** Distinctive text from the bodies that were retrieved (ASCII lines of 16+ characters after the header). */
function bodyNeedles() {
  const needles = new Set();
  for (const user of ['alice', 'jürgen']) {
    for (let n = 1; n <= Math.min(dc.users[user].count, 8); n++) {
      const text = dc.expected(user, n).toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      if (sep < 0) continue;
      for (const line of text.slice(sep + 4).split(/\r?\n/)) {
        const t = line.trim();
        if (t.length >= 16 && /^[\x20-\x7e]+$/.test(t) && !/^-{2}|^Content-/.test(t)) needles.add(t);
      }
    }
  }
  return [...needles];
}

function secretNeedles() {
  const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
  const out = [WRONG_PASSWORD, WRONG_TOKEN, ...Object.values(tokens)];
  for (const u of ['alice', 'jürgen', 'bob']) {
    const { name, password } = dc.users[u];
    out.push(password, b64(password), b64(`\0${name}\0${password}`), b64(`\0${name}\0${WRONG_PASSWORD}`));
  }
  out.push(b64(WRONG_PASSWORD));
  // The token's signature part alone is a secret too.
  for (const t of Object.values(tokens)) out.push(t.split('.').pop());
  return out;
}

test('no password, token or body text in the bridge logs, the transcripts or the errors', async () => {
  await new Promise((r) => setTimeout(r, 200)); // the bridges' last log lines
  assert.ok(bridge.logs().length > 10_000, `trace logging is on (${bridge.logs().length} bytes)`);
  for (const o of others) {
    // Those with a level log their sessions (and so could have leaked).
    if (/^(info|debug|trace)/.test(o.filter)) assert.match(o.bridge.logs(), /session closed/, `${o.filter} (${o.format})`);
  }
  const logs = [bridge, e2eBridge, ...others.map((o) => o.bridge)].map((b) => b.logs() + b.stdout()).join('\n');
  assert.ok(transcript.length > 500, `${transcript.length} transcript lines`);
  assert.ok(errors.length >= 18 + 2 * others.length, `${errors.length} errors`);
  const errorText = errors.map((e) => [e.message, e.serverText ?? '', e.respCode ?? '', e.stack ?? ''].join('\n')).join('\n');
  const transcriptText = transcript.map((l) => `${l.dir}: ${l.line}`).join('\n');
  const secrets = secretNeedles();
  for (const s of secrets) {
    assert.ok(!logs.includes(s), `the bridge logged a secret (${s.slice(0, 4)}…)`);
    assert.ok(!transcriptText.includes(s), `a transcript shows a secret (${s.slice(0, 4)}…)`);
    assert.ok(!errorText.includes(s), `an error shows a secret (${s.slice(0, 4)}…)`);
  }
  const bodies = bodyNeedles();
  assert.ok(bodies.length >= 5, `${bodies.length} body needles`);
  // Transcript lines that may carry body text: server data lines after RETR/TOP.
  const notData = [];
  let inBody = false;
  for (const l of transcript) {
    if (l.dir === 'C') {
      inBody = false;
      notData.push(l.line);
      continue;
    }
    if (/^(\+OK|-ERR)/.test(l.line) && !inBody) {
      notData.push(l.line);
      const cmd = [...transcript.slice(0, transcript.indexOf(l))].reverse().find((x) => x.dir === 'C');
      inBody = /^(RETR|TOP) /.test(cmd?.line ?? '') && l.line.startsWith('+OK');
    }
  }
  const notDataText = notData.join('\n');
  for (const b of bodies) {
    assert.ok(!logs.includes(b), `the bridge logged body text: ${b}`);
    assert.ok(!errorText.includes(b), `an error shows body text: ${b}`);
    assert.ok(!notDataText.includes(b), `a command or status line shows body text: ${b}`);
  }
  // Every credential-bearing command line is redacted.
  for (const l of transcript.filter((l) => l.dir === 'C')) {
    if (/^(PASS|APOP|AUTH \S+ \S)/.test(l.line)) assert.match(l.line, /\[redacted\]/, l.line);
  }
});
