// Every login mechanism Dovecot offers, through the bridge and direct: the
// password mechanisms, and OAuth 2.0 bearer tokens (XOAUTH2, OAUTHBEARER) that
// Dovecot's oauth2 passdb checks against the fixture's introspection endpoint.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridge } from '../fixtures/bridge.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';
import { startRelay } from '../fixtures/relay.mjs';

let dc; // every mechanism, OAuth 2.0 included
let plainOnly; // readable mechanisms only
let bridge;
let tap; // a relay to dc's plain port: what clients send there (the transcript redacts SASL lines)

before(async () => {
  // auth_debug: the auth process logs each reply it sends (the nodelay checks).
  dc = await startDovecot({ oauth2: true, extraConfig: 'auth_debug = yes\n' });
  plainOnly = await startDovecot({ extraConfig: 'auth_mechanisms = plain login\n' });
  tap = await startRelay(dc.ports.pop3);
  bridge = await startBridge({
    allow: [`127.0.0.1:${dc.ports.pop3},${dc.ports.pop3s},${plainOnly.ports.pop3},${plainOnly.ports.pop3s},${tap.port}`],
    caFiles: [dc.caFile, plainOnly.caFile],
  });
});

after(async () => {
  await bridge?.stop();
  await tap?.stop();
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

  // ---------------------------------------------------------------- OAuth 2.0

  const OAUTH = {
    // What Dovecot 2.3.19 sends as the "+ <base64>" challenge when it refuses a token.
    XOAUTH2: { json: '{"status":"401","schemes":"bearer","scope":"mail"}' },
    OAUTHBEARER: { json: '{"status":"invalid_token"}' },
  };

  for (const mech of Object.keys(OAUTH)) {
    test(`${mech} logs in with alice's bearer token, which Dovecot checked at the introspection endpoint`, async () => {
      const a = dc.users.alice;
      const token = dc.oauth.tokenFor('alice');
      const before = dc.oauth.calls().length;
      const lines = [];
      const c = await connect({ onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`) });
      assert.ok((await c.capa()).sasl.includes(mech));
      assert.equal(await c.auth(mech, { username: a.name, token }), mech);
      assert.equal(c.state, 'TRANSACTION');
      const st = await c.stat();
      assert.equal(st.count, a.count);
      assert.equal(st.size, a.size);
      await c.quit();
      // Dovecot asked the endpoint about exactly this token, once, and got alice.
      const calls = dc.oauth.calls().slice(before);
      assert.equal(calls.length, 1, JSON.stringify(calls));
      assert.equal(calls[0].token, token);
      assert.equal(calls[0].user, 'alice');
      assert.equal(calls[0].method, 'POST'); // introspection_mode = post
      assert.match(calls[0].userAgent, /^dovecot-oauth2-passdb\//);
      const text = lines.join('\n');
      assert.ok(!text.includes(token), `token in the transcript:\n${text}`);
      assert.match(dc.log(), new RegExp(`Login: user=<alice>, method=${mech},`));
    });

    test(`${mech}: a wrong token is AUTH_FAILED at once, and the right one then logs in`, async () => {
      const a = dc.users.alice;
      const wrong = `not-a-token-${mech.toLowerCase()}-${Date.now()}`;
      const since = dc.log().length;
      const c = await connect();
      const e = await rejectsWith(c.auth(mech, { username: a.name, token: wrong }), 'AUTH_FAILED');
      assert.equal(e.respCode, 'AUTH');
      // The error JSON Dovecot sent as a challenge before its -ERR.
      assert.ok(e.message.includes(OAUTH[mech].json), e.message);
      // The SASL exchange is over, not left half-way: the session answers.
      assert.equal(c.state, 'AUTHORIZATION');
      assert.ok((await c.capa()).sasl.includes(mech));
      c.close();
      assert.equal(dc.oauth.seen(wrong), 1, 'Dovecot asked the endpoint about the wrong token');

      const ok = await connect();
      assert.equal(await ok.auth(mech, { username: a.name, token: dc.oauth.tokenFor('alice') }), mech);
      assert.equal((await ok.stat()).count, a.count);
      await ok.quit();
      // A guard on the fixture (as fixture-dovecot's for passwords): without
      // its nodelay passdb Dovecot holds the -ERR back (~0.5 s) and, with the
      // anvil penalty socket, the next login from 127.0.0.1 waits it out.
      const fails = dc.log().slice(since).match(/client passdb out: FAIL\t[^\n]*/g) ?? [];
      assert.equal(fails.length, 1, dc.log().slice(since));
      assert.match(fails[0], /\tnodelay(\t|$)/);
      assert.equal(fs.existsSync(path.join(dc.dir, 'run', 'anvil-auth-penalty')), false, 'no auth penalty');
      assert.ok(!dc.log().includes(wrong), 'the debug log shows no token');
    });
  }

  test('XOAUTH2/OAUTHBEARER on the wire: the answers to the error challenge are an empty line and \\x01', async () => {
    // Plain text through a recording relay, so the SASL lines can be read.
    const wrong = `wire-wrong-${Date.now()}`;
    const since = tap.count();
    for (const mech of Object.keys(OAUTH)) {
      const c = await connect({ port: tap.port, tls: 'none', allowInsecureAuth: true });
      await rejectsWith(c.auth(mech, { username: 'alice', token: wrong }), 'AUTH_FAILED');
      assert.equal(c.state, 'AUTHORIZATION');
      await c.quit();
    }
    const [x, o] = tap.sent(since);
    const b64 = (s) => Buffer.from(s, 'latin1').toString('base64');
    // XOAUTH2: AUTH, then the token after the empty "+ " challenge, then the
    // empty response that lets Dovecot finish with -ERR (Google's protocol).
    assert.equal(x, `CAPA\r\nAUTH XOAUTH2\r\n${b64(`user=alice\x01auth=Bearer ${wrong}\x01\x01`)}\r\n\r\nQUIT\r\n`);
    // OAUTHBEARER (RFC 7628): initial response on the AUTH line, then "\x01".
    assert.equal(
      o,
      `CAPA\r\nAUTH OAUTHBEARER ${b64(`n,a=alice,\x01host=127.0.0.1\x01port=${tap.port}\x01auth=Bearer ${wrong}\x01\x01`)}\r\n${b64('\x01')}\r\nQUIT\r\n`,
    );
    assert.equal(dc.oauth.seen(wrong), 2);
  });

  test("a token is only good for its own user, and a password is no token", async () => {
    const before = dc.oauth.calls().length;
    for (const mech of Object.keys(OAUTH)) {
      const c = await connect();
      // alice's valid token, presented as bob: the endpoint says "alice", Dovecot refuses.
      await rejectsWith(c.auth(mech, { username: 'bob', token: dc.oauth.tokenFor('alice') }), 'AUTH_FAILED');
      // alice's password as a token: the passwd-file passdb does not serve the token
      // mechanisms, so it goes to the endpoint, which does not know it.
      await rejectsWith(c.auth(mech, { username: 'alice', token: dc.users.alice.password }), 'AUTH_FAILED');
      assert.equal(await c.auth(mech, { username: 'bob', token: dc.oauth.tokenFor('bob') }), mech);
      assert.equal((await c.stat()).count, dc.users.bob.count);
      await c.quit();
    }
    const calls = dc.oauth.calls().slice(before);
    assert.deepEqual(
      calls.map((k) => k.user),
      ['alice', null, 'bob', 'alice', null, 'bob'],
    );
    assert.match(dc.log(), /oauth2\(bob,.*Username 'bob' did not match 'alice'/);
  });

  test('password logins never reach the introspection endpoint', async () => {
    const before = dc.oauth.count();
    const a = dc.users.alice;
    for (const mech of ['PLAIN', 'SCRAM-SHA-256', 'USER']) {
      const c = await connect();
      await rejectsWith(c.auth(mech, { username: a.name, password: 'wrong-password' }), 'AUTH_FAILED');
      await rejectsWith(c.auth(mech, { username: 'no-such-user', password: 'wrong-password' }), 'AUTH_FAILED');
      assert.equal(await c.auth(mech, { username: a.name, password: a.password }), mech);
      await c.quit();
    }
    assert.equal(dc.oauth.count(), before);
  });

  test('the UTF-8 user name logs in with OAUTHBEARER', async () => {
    const j = dc.users['jürgen'];
    const c = await connect();
    assert.equal(await c.auth('OAUTHBEARER', { username: j.name, token: dc.oauth.tokenFor(j.name) }), 'OAUTHBEARER');
    assert.equal((await c.stat()).count, 1);
    await c.quit();
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
