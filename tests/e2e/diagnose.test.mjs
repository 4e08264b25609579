// diagnose(), the analyzer, from Node against the real Dovecot — through
// ws-bridge and directly, and end to end — and scripted servers for what
// Dovecot will not do (a provider's greeting and XOAUTH2 after a
// continuation, IN-USE). Each case checks the steps in order, the failing
// step's hint, and that no password or token is in the report, its JSON or
// its Markdown. The rules themselves are tested natively
// (pop3-wasm/tests/diagnose.rs); this is the package a user calls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose, reportMarkdown, reportText } from 'pop3-wasm';
import { startDovecot, freePort } from '../fixtures/dovecot.mjs';
import { startBridge, startBridgeFor } from '../fixtures/bridge.mjs';
import { startEndToEndBridge } from '../fixtures/e2e-bridge.mjs';
import { startScripted } from '../fixtures/scripted.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';
import { runCleanups } from '../fixtures/cleanup.mjs';

let dc;
let bridge;
/** A bridge that does not trust the test CA. */
let bare;
/** A bridge that relays end-to-end TLS (ws-bridge once it speaks v2, else a stand-in). */
let e2e;
let closed;
const cleanups = [];

before(async () => {
  dc = await startDovecot();
  closed = await freePort();
  [bridge, bare, e2e] = await Promise.all([
    startBridgeFor(dc, { allow: [`127.0.0.1:${closed}`, 'no-such-host.invalid:110'] }),
    startBridge({ allow: [`127.0.0.1:${dc.ports.pop3},${dc.ports.pop3s}`] }),
    startEndToEndBridge(dc),
  ]);
});

after(async () => {
  try {
    await runCleanups(cleanups);
  } finally {
    await Promise.all([bridge?.stop(), bare?.stop(), e2e?.stop()]);
    await dc?.stop();
  }
});

const ALICE = () => ({ user: 'alice', password: dc.users.alice.password });
const viaBridge = (extra = {}) => ({ bridge: bridge.url, host: dc.host, port: dc.ports.pop3s, tls: 'implicit', timeoutMs: 10_000, ...extra });
const direct = (extra = {}) => ({ host: dc.host, port: dc.ports.pop3s, tls: 'implicit', ca: dc.ca, timeoutMs: 10_000, ...extra });

const statuses = (r) => r.steps.map((s) => `${s.name} ${s.status}`);
const step = (r, name) => r.steps.find((s) => s.name === name);

/** No secret anywhere: the report, its JSON, its text and Markdown. */
function noSecrets(r, ...secrets) {
  const all = [JSON.stringify(r), reportText(r), reportMarkdown(r)].join('\n');
  for (const s of secrets) {
    assert.ok(!all.includes(s), `a secret in the report: ${s}`);
    assert.ok(!all.includes(Buffer.from(s).toString('base64')), 'a secret in base64 in the report');
  }
}

test('healthy through the bridge: every step passes, in order, timed, with the session closed without QUIT', async () => {
  const r = await diagnose(viaBridge(ALICE()));
  assert.equal(r.ok, true, reportText(r));
  assert.deepEqual(statuses(r), ['connect pass', 'tls pass', 'greeting pass', 'capa pass', 'auth pass', 'capa-after-login pass', 'stat pass', 'uidl pass']);
  for (const s of r.steps.filter((x) => x.name !== 'tls')) assert.equal(typeof s.ms, 'number', s.name);
  assert.equal(step(r, 'tls').ms, null, "the bridge's handshake is inside its connect");
  assert.equal(step(r, 'auth').detail, 'logged in as alice with SCRAM-SHA-256');
  assert.equal(step(r, 'stat').detail, `${dc.users.alice.count} messages, ${dc.users.alice.size} octets`);
  assert.deepEqual(r.mailbox, { count: dc.users.alice.count, size: dc.users.alice.size });
  assert.equal(r.uidl.ok, true);
  assert.equal(r.uidl.count, dc.users.alice.count);
  assert.match(r.greeting, /^\+OK Dovecot \(Debian\) ready\. </);
  assert.equal(r.apop.usable, true);
  assert.equal(r.tls.ends, 'bridge');
  assert.equal(r.tls.chain, null);
  assert.match(r.tls.chainNote, /^The bridge reports the leaf certificate only/);
  assert.equal(r.tls.nameMatches, true);
  assert.deepEqual(r.capabilities.changes[0].removed, ['USER', 'SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256']);
  assert.equal(r.extensions.pipelining, true);
  assert.equal(r.extensions.respCodes, true);
  assert.equal(r.closedWithoutQuit, true);
  const commands = r.transcript.filter((l) => l.dir === 'C').map((l) => l.line);
  assert.deepEqual(commands, ['CAPA', 'AUTH SCRAM-SHA-256 [redacted]', '[redacted]', '[redacted]', 'CAPA', 'STAT', 'UIDL']);
  assert.ok(!Number.isNaN(Date.parse(r.startedAt)));
  noSecrets(r, dc.users.alice.password);
  // Nothing was committed: the mailbox is whole.
  const again = await diagnose(viaBridge(ALICE()));
  assert.deepEqual(again.mailbox, r.mailbox);
});

test('healthy with STLS directly: TLS in the client, the chain as the server sent it, capabilities before and after STLS', async () => {
  const r = await diagnose(direct({ ...ALICE(), port: dc.ports.pop3, tls: 'starttls' }));
  assert.equal(r.ok, true, reportText(r));
  assert.deepEqual(statuses(r), [
    'connect pass', 'greeting pass', 'capa pass', 'stls pass', 'tls pass', 'capa-after-stls pass', 'auth pass', 'capa-after-login pass', 'stat pass', 'uidl pass',
  ]);
  assert.equal(r.target.endToEnd, true, 'direct: TLS in the client by default');
  assert.equal(r.tls.ends, 'client');
  assert.equal(r.tls.chain.length, 1);
  const [leaf] = r.tls.chain;
  assert.equal(leaf.subject, 'O=pop3-wasm tests, CN=localhost');
  assert.deepEqual([...leaf.dnsNames, ...leaf.ipAddresses], ['localhost', '127.0.0.1']);
  assert.match(leaf.sha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.ok(leaf.keyType && leaf.signatureAlgorithm, JSON.stringify(leaf));
  assert.equal(r.tls.nameMatches, true);
  assert.deepEqual(r.capabilities.changes[0], { from: 'beforeStls', to: 'afterStls', added: [], removed: ['STLS'], changed: [] });
  assert.ok(r.capabilities.beforeStls.includes('STLS'));
  noSecrets(r, dc.users.alice.password);
});

test('a wrong password: auth fails with the server\'s words and a hint; nothing after it runs', async () => {
  const r = await diagnose(viaBridge({ user: 'alice', password: 'not-the-password' }));
  assert.equal(r.ok, false);
  assert.deepEqual(statuses(r).slice(4), ['auth fail', 'capa-after-login skip', 'stat skip', 'uidl skip']);
  assert.equal(step(r, 'auth').detail, '-ERR [AUTH] Authentication failed.');
  assert.match(step(r, 'auth').hint, /the password is wrong, the user does not exist, or the account is locked/);
  assert.equal(r.error.code, 'AUTH_FAILED');
  assert.equal(r.error.respCode, 'AUTH');
  noSecrets(r, 'not-the-password');
});

for (const [via, opts] of [
  ['through the bridge', () => viaBridge()],
  ['directly', () => direct()],
]) {
  test(`implicit TLS on the plain port, ${via}: the tls step fails and the hint names a plain POP3 port with STLS`, async () => {
    const r = await diagnose({ ...opts(), ...ALICE(), port: dc.ports.pop3 });
    assert.deepEqual(statuses(r).slice(0, 3), ['connect pass', 'tls fail', 'greeting skip']);
    const hint = step(r, 'tls').hint;
    assert.match(hint, new RegExp(`^Port ${dc.ports.pop3} (answered in plain text \\("\\+OK Dovecot \\(Debian\\) ready\\.|speaks plain POP3: a second connection without TLS got its greeting \\("\\+OK Dovecot)`), hint);
    assert.match(hint, /tls: 'starttls'/);
    // Directly the client's own TLS saw the greeting; through the bridge a probe in plain text did.
    if (via === 'directly') assert.equal(r.probe, null);
    else assert.deepEqual([r.probe.tls, r.probe.saw, r.probe.stls], ['none', 'plain', true]);
    noSecrets(r, dc.users.alice.password);
  });

  test(`plain text (STLS) on the implicit-TLS port, ${via}: no greeting, and a probe finds TLS there`, async () => {
    const r = await diagnose({ ...opts(), ...ALICE(), tls: 'starttls', timeouts: { greeting: 1500 } });
    assert.deepEqual(statuses(r).slice(0, 3), ['connect pass', 'greeting fail', 'capa skip']);
    assert.equal(step(r, 'greeting').ms >= 1500, true);
    assert.equal(r.probe.tls, 'implicit');
    assert.equal(r.probe.saw, 'tls');
    assert.equal(
      step(r, 'greeting').hint,
      `Port ${dc.ports.pop3s} sends nothing in plain text, and a second connection with implicit TLS got a TLS handshake (${r.probe.detail}): it is an implicit-TLS port (usually 995), where the client starts with a TLS handshake. Use tls: 'implicit'.`,
    );
    assert.match(r.probe.detail, /^TLSv1\.[23], /);
  });
}

test('an untrusted certificate through a bridge that does not know the CA: --ca-file named', async () => {
  const r = await diagnose({ ...viaBridge(ALICE()), bridge: bare.url });
  assert.deepEqual(statuses(r).slice(0, 3), ['connect pass', 'tls fail', 'greeting skip']);
  assert.equal(r.error.reason, 'untrusted');
  assert.match(step(r, 'tls').hint, /make the bridge trust it \(--ca-file CA\.pem\)\.$/);
  assert.equal(r.probe, null, 'a certificate problem needs no probe');
});

test('an untrusted certificate directly: the chain is laid out and the CA named', async () => {
  const r = await diagnose(direct({ ...ALICE(), ca: undefined }));
  assert.equal(step(r, 'tls').status, 'fail');
  assert.equal(step(r, 'tls').detail, 'certificate not trusted (unknown issuer: O=pop3-wasm tests, CN=pop3-wasm test CA)');
  assert.match(step(r, 'tls').hint, /^The server sent 1 certificate\(s\); the last one was issued by "O=pop3-wasm tests, CN=pop3-wasm test CA", a CA this client does not trust\. The server sends only its own certificate/);
  assert.equal(r.tls.protocol, null);
  assert.equal(r.tls.chain[0].subject, 'O=pop3-wasm tests, CN=localhost');
  assert.equal(r.tls.nameMatches, true, 'the name is right; only the issuer is unknown');
});

test('end to end through a v2 bridge: healthy, then untrusted (the chain the client saw, the bridge never held a key)', async () => {
  const ok = await diagnose({ bridge: e2e.url, host: dc.host, port: dc.ports.pop3s, tls: 'implicit', endToEnd: true, ca: dc.ca, ...ALICE(), timeoutMs: 10_000 });
  assert.equal(ok.ok, true, reportText(ok));
  assert.equal(ok.target.via, 'bridge');
  assert.equal(ok.tls.ends, 'client');
  assert.equal(ok.tls.endToEnd, true);
  assert.match(step(ok, 'connect').detail, /\(pop3-bridge\.v2\); the bridge connected to .* and relays the bytes as they are \(end to end: it holds no key\)$/);
  assert.match(step(ok, 'tls').detail, /TLS ends in this client \(end to end: the bridge relays ciphertext only\)/);
  assert.equal(typeof step(ok, 'tls').ms, 'number', 'the client times its own handshake');
  assert.equal(ok.tls.chain[0].dnsNames[0], 'localhost');
  noSecrets(ok, dc.users.alice.password);

  const bad = await diagnose({ bridge: e2e.url, host: dc.host, port: dc.ports.pop3, tls: 'starttls', endToEnd: true, ...ALICE(), timeoutMs: 10_000 });
  assert.deepEqual(statuses(bad).slice(0, 6), ['connect pass', 'greeting pass', 'capa pass', 'stls pass', 'tls fail', 'capa-after-stls skip']);
  assert.equal(bad.error.reason, 'untrusted');
  assert.match(step(bad, 'tls').hint, /trust it with the `ca` option/);
  assert.equal(bad.tls.chain.length, 1);
  assert.ok(!bad.transcript.some((l) => l.dir === 'C' && /^(AUTH|USER|PASS)/.test(l.line)), 'no credentials before TLS');
});

test('nothing listening, a name that does not resolve, a port the bridge does not allow', async () => {
  let r = await diagnose(direct({ ...ALICE(), port: closed }));
  assert.deepEqual(statuses(r).slice(0, 2), ['connect fail', 'tls skip']);
  assert.equal(step(r, 'connect').hint, `Nothing listens on ${dc.host}:${closed}: the connection was refused. Is the POP3 server running, and is this its port? POP3 uses 110 (plain, STLS) and 995 (implicit TLS).`);
  r = await diagnose(viaBridge({ ...ALICE(), port: closed }));
  assert.match(step(r, 'connect').hint, new RegExp(`^Nothing listens on ${dc.host}:${closed} \\(as the bridge's machine sees it\\)`));
  r = await diagnose({ host: 'no-such-host.invalid', port: 110, tls: 'none', timeoutMs: 10_000 });
  assert.equal(step(r, 'connect').hint, 'The name no-such-host.invalid does not resolve: check its spelling and its DNS records (A/AAAA).');
  r = await diagnose({ bridge: bridge.url, host: 'no-such-host.invalid', port: 110, tls: 'none', timeoutMs: 10_000 });
  assert.match(step(r, 'connect').hint, /^The name no-such-host\.invalid does not resolve \(as the bridge's machine sees it\)/);
  r = await diagnose(viaBridge({ port: dc.ports.pop3s + 1 === closed ? dc.ports.pop3s + 2 : dc.ports.pop3s + 1 }));
  assert.equal(step(r, 'connect').detail, 'bridge: not allowed');
  assert.match(step(r, 'connect').hint, /^The bridge's policy refused/);
});

test('only invalid options reject, and with INVALID_ARGUMENT', async () => {
  await rejectsWith(diagnose(viaBridge({ password: 'x' })), 'INVALID_ARGUMENT');
  await rejectsWith(diagnose(viaBridge({ user: 'u', password: 'x', oauthToken: 'y' })), 'INVALID_ARGUMENT');
  await rejectsWith(diagnose(viaBridge({ user: 'u', password: 'x', mechanism: 'XOAUTH2' })), 'INVALID_ARGUMENT');
  await rejectsWith(diagnose(viaBridge({ tls: 'sometimes' })), 'INVALID_ARGUMENT');
  await rejectsWith(diagnose(null), 'INVALID_ARGUMENT');
});

// ---- scripted servers: what Dovecot will not do ---------------------------

const TOKEN = `eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.${'a'.repeat(300)}.sig`;

test('Microsoft 365: XOAUTH2 after the "+" continuation logs in; a password gets the basic-auth hint', async () => {
  const srv = await startScripted(async (c) => {
    await c.send('+OK The Microsoft Exchange POP3 service is ready. [TQBOADIAUABSADAA]\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\n.\r\n');
    const auth = await c.line();
    if (auth === 'AUTH XOAUTH2') {
      await c.send('+ \r\n');
      const response = Buffer.from(await c.line(), 'base64').toString();
      assert.equal(response, `user=alice@contoso.example\x01auth=Bearer ${TOKEN}\x01\x01`);
      await c.send('+OK User successfully authenticated.\r\n');
      assert.equal(await c.line(), 'CAPA');
      await c.send('+OK\r\nTOP\r\nUIDL\r\n.\r\n');
      assert.equal(await c.line(), 'STAT');
      await c.send('+OK 1 100\r\n');
      assert.equal(await c.line(), 'UIDL');
      await c.send('+OK\r\n1 AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AnSEeCm6PZUCP\r\n.\r\n');
    } else {
      assert.match(auth, /^AUTH PLAIN /);
      await c.send('-ERR Logon failure: unknown user name or bad password.\r\n');
    }
    assert.equal(await c.line(), null);
  });
  cleanups.push(() => srv.stop());
  const base = { host: '127.0.0.1', port: srv.port, tls: 'none', allowInsecureAuth: true, user: 'alice@contoso.example', timeoutMs: 5000 };
  const ok = await diagnose({ ...base, oauthToken: TOKEN });
  assert.equal(ok.ok, true, reportText(ok));
  assert.equal(ok.provider.id, 'microsoft');
  assert.equal(ok.mechanisms.used, 'XOAUTH2');
  assert.ok(ok.notes.some((n) => n.startsWith('Exchange Online has turned basic authentication')));
  noSecrets(ok, TOKEN);
  const bad = await diagnose({ ...base, password: 'account-password' });
  assert.equal(step(bad, 'auth').detail, '-ERR Logon failure: unknown user name or bad password.');
  assert.match(step(bad, 'auth').hint, /^Microsoft 365 and Outlook\.com refuse passwords for POP \(basic authentication is off\)/);
  noSecrets(bad, 'account-password');
  assert.deepEqual(srv.errors, []);
});

test('IN-USE and a Gmail greeting: the response code is not the password, Gmail\'s ways are noted', async () => {
  const srv = await startScripted(async (c) => {
    await c.send('+OK Gpop ready for requests from 192.0.2.7 u5mb1234567abc\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\nRESP-CODES\r\nEXPIRE 0\r\nLOGIN-DELAY 300\r\nTOP\r\nUIDL\r\nX-GOOGLE-RICO\r\nSASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n');
    assert.match(await c.line(), /^AUTH PLAIN /);
    await c.send('-ERR [IN-USE] Do you have another POP session running?\r\n');
    assert.equal(await c.line(), null);
  });
  cleanups.push(() => srv.stop());
  const r = await diagnose({ host: '127.0.0.1', port: srv.port, tls: 'none', allowInsecureAuth: true, user: 'recent:alice@gmail.com', password: 'app-password', timeoutMs: 5000 });
  assert.equal(r.provider.id, 'gmail');
  assert.equal(r.error.code, 'SERVER_ERROR');
  assert.match(step(r, 'auth').hint, /^Another session has this mailbox open \(IN-USE\)/);
  assert.ok(r.notes.some((n) => n.includes('"popped"')));
  assert.ok(r.notes.some((n) => n.startsWith("This session is in Gmail's recent mode")));
  assert.ok(r.notes.some((n) => n.startsWith('EXPIRE 0:')));
  noSecrets(r, 'app-password');
  assert.deepEqual(srv.errors, []);
});
