// Every login mechanism Dovecot offers, through the bridge and direct.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridge } from '../fixtures/bridge.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';

let dc; // every mechanism
let plainOnly; // readable mechanisms only
let bridge;

before(async () => {
  dc = await startDovecot();
  plainOnly = await startDovecot({ extraConfig: 'auth_mechanisms = plain login\n' });
  bridge = await startBridge({
    allow: [`127.0.0.1:${dc.ports.pop3},${dc.ports.pop3s},${plainOnly.ports.pop3},${plainOnly.ports.pop3s}`],
    caFiles: [dc.caFile, plainOnly.caFile],
  });
});

after(async () => {
  await bridge?.stop();
  await dc?.stop();
  await plainOnly?.stop();
});

// Through the bridge, or direct (no `bridge`; both test CAs given as `ca`).
function connector(via) {
  return (extra = {}) =>
    Pop3Client.connect({
      ...(via === 'bridge' ? { bridge: bridge.url } : { ca: [dc.ca, plainOnly.ca] }),
      host: '127.0.0.1',
      port: dc.ports.pop3s,
      timeoutMs: 10000,
      ...extra,
    });
}

function suite(via) {
  const connect = connector(via);

  const MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5', 'APOP', 'PLAIN', 'LOGIN', 'USER'];

  for (const mech of MECHANISMS) {
    test(`${mech} logs in, and a wrong password is AUTH_FAILED`, async () => {
      const a = dc.users.alice;
      const lines = [];
      const c = await connect({ onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`) });
      await rejectsWith(c.auth(mech, { username: a.name, password: 'wrong-password' }), 'AUTH_FAILED');
      assert.equal(await c.auth(mech, { username: a.name, password: a.password }), mech);
      assert.equal(c.state, 'TRANSACTION');
      assert.equal((await c.stat()).count, a.count);
      await c.quit();
      const text = lines.join('\n');
      assert.ok(!text.includes(a.password), `password in the transcript:\n${text}`);
      assert.ok(!text.includes('wrong-password'));
    });
  }

  test('login() picks SCRAM-SHA-256, the strongest Dovecot offers', async () => {
    const c = await connect();
    assert.ok((await c.capa()).sasl.includes('SCRAM-SHA-256'));
    assert.equal(await c.login(dc.users.alice.name, dc.users.alice.password), 'SCRAM-SHA-256');
    await c.quit();
  });

  test('UTF-8 user name and password with SCRAM and PLAIN', async () => {
    const j = dc.users['jürgen'];
    for (const mech of ['SCRAM-SHA-256', 'PLAIN', 'CRAM-MD5']) {
      const c = await connect();
      assert.equal(await c.auth(mech, { username: j.name, password: j.password }), mech);
      assert.equal((await c.stat()).count, 1);
      await c.quit();
    }
  });

  test('without TLS, login() uses a mechanism that does not reveal the password', async () => {
    const c = await connect({ port: dc.ports.pop3, tls: 'none' });
    assert.equal(await c.login(dc.users.alice.name, dc.users.alice.password), 'SCRAM-SHA-256');
    await c.quit();
  });

  test('without TLS, a server with only readable mechanisms gets INSECURE_AUTH_REFUSED', async () => {
    const opts = { port: plainOnly.ports.pop3, tls: 'none' };
    const c = await connect(opts);
    const caps = await c.capa();
    assert.deepEqual(caps.sasl, ['PLAIN', 'LOGIN']);
    const e = await rejectsWith(c.login('alice', plainOnly.users.alice.password), 'INSECURE_AUTH_REFUSED');
    assert.match(e.message, /PLAIN, LOGIN, USER/);
    for (const m of ['PLAIN', 'LOGIN', 'USER']) {
      await rejectsWith(c.auth(m, { username: 'alice', password: plainOnly.users.alice.password }), 'INSECURE_AUTH_REFUSED');
    }
    c.close();
    const ok = await connect({ ...opts, allowInsecureAuth: true });
    assert.equal(await ok.login('alice', plainOnly.users.alice.password), 'PLAIN');
    await ok.quit();
    // With STLS the same server is fine.
    const tls = await connect({ port: plainOnly.ports.pop3, tls: 'starttls' });
    assert.equal(await tls.login('alice', plainOnly.users.alice.password), 'PLAIN');
    await tls.quit();
  });

  test('an unknown mechanism is UNSUPPORTED, missing credentials INVALID_ARGUMENT', async () => {
    const c = await connect();
    await rejectsWith(c.auth('KERBEROS_V4', { username: 'alice', password: 'x' }), 'UNSUPPORTED');
    await rejectsWith(c.auth('PLAIN', { username: 'alice' }), 'INVALID_ARGUMENT');
    await rejectsWith(c.auth('XOAUTH2', { username: 'alice', password: 'x' }), 'INVALID_ARGUMENT');
    c.close();
  });
}

for (const via of ['bridge', 'direct']) describe(`via ${via}`, () => suite(via));
