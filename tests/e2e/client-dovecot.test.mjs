// The client end to end: Node → pop3-wasm (wasm) → WebSocket → ws-bridge →
// a real Dovecot on loopback, and the same suite again direct (no bridge:
// the Node entry's node:net/node:tls transport). Imports the package by its
// name, as users do.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor } from '../fixtures/bridge.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';

let dc;
let bridge;

const alice = () => dc.users.alice;

/** The whole suite, through the bridge or direct. */
function suite(via) {
  // A fresh Dovecot per transport: the DELE tests change bob's mailbox.
  before(async () => {
    dc = await startDovecot();
    bridge = via === 'bridge' ? await startBridgeFor(dc) : null;
  });

  after(async () => {
    await bridge?.stop();
    await dc?.stop();
  });

  function opts(extra = {}) {
    // Direct: no `bridge`, and the test CA given as `ca`.
    const route = via === 'bridge' ? { bridge: bridge.url } : { ca: dc.ca };
    return { ...route, host: dc.host, port: dc.ports.pop3s, tls: 'implicit', timeoutMs: 10000, ...extra };
  }

  async function loggedIn(user = 'alice', extra = {}) {
    const c = await Pop3Client.connect(opts(extra));
    await c.login(dc.users[user].name, dc.users[user].password);
    return c;
  }

  test('implicit TLS: greeting, TLS details and capabilities', async () => {
    const c = await Pop3Client.connect(opts());
    assert.match(c.greeting, /^Dovecot \(Debian\) ready\. <[^<>]+@[^<>]+>$/);
    assert.equal(c.state, 'AUTHORIZATION');
    assert.match(c.tls.protocol, /^TLSv1\.[23]$/);
    assert.ok(c.tls.cipher.length > 0);
    assert.match(c.tls.certificate.subject, /(^|, )CN=localhost$/);
    assert.match(c.tls.certificate.issuer, /CN=/);
    assert.ok(new Date(c.tls.certificate.notAfter) > new Date());
    const caps = await c.capa();
    assert.equal(caps.top, true);
    assert.equal(caps.uidl, true);
    assert.equal(caps.user, true);
    assert.equal(caps.pipelining, true);
    assert.equal(caps.respCodes, true);
    assert.ok(caps.sasl.includes('PLAIN'), caps.raw.join('|'));
    assert.ok(caps.raw.includes('TOP'));
    c.close();
  });

  test('STLS: the plain port is upgraded and reports TLS details', async () => {
    const c = await Pop3Client.connect(opts({ port: dc.ports.pop3, tls: 'starttls' }));
    assert.match(c.tls.protocol, /^TLSv1\.[23]$/);
    assert.match(c.tls.certificate.subject, /(^|, )CN=localhost$/);
    const caps = await c.capa();
    assert.equal(caps.stls, false, 'STLS is not offered again inside TLS');
    assert.equal(await c.login(alice().name, alice().password), 'SCRAM-SHA-256');
    assert.deepEqual(await c.stat(), { count: alice().count, size: alice().size });
    await c.quit();
  });

  test('STLS by hand (raw): resolves with TLS up; a second STLS is INVALID_STATE and the session goes on', async () => {
    const transcript = [];
    const c = await Pop3Client.connect(opts({ port: dc.ports.pop3, tls: 'none', onTranscript: (l) => transcript.push(`${l.dir}: ${l.line}`) }));
    assert.equal(c.tls, null);
    const r = await c.raw('STLS');
    assert.equal(r.ok, true);
    assert.match(r.text, /^Begin TLS negotiation now\.$/);
    // raw() resolved after the handshake and the CAPA asked under TLS.
    assert.match(c.tls?.protocol ?? '', /^TLSv1\.[23]$/);
    assert.equal(c.capabilities.stls, false, 'the capabilities are the ones under TLS');
    const e = await rejectsWith(c.raw('STLS'), 'INVALID_STATE');
    assert.match(e.message, /^STLS is not allowed in the TLS-protected AUTHORIZATION state; nothing was sent$/);
    assert.equal(c.state, 'AUTHORIZATION');
    assert.equal(transcript.filter((l) => l === 'C: STLS').length, 1, transcript.join('\n'));
    // Readable credentials are fine now: TLS is up.
    assert.equal((await c.raw('USER alice')).ok, true);
    assert.equal((await c.raw(`PASS ${alice().password}`)).ok, true);
    assert.deepEqual(await c.stat(), { count: alice().count, size: alice().size });
    await c.quit();
  });

  test('what the client learnt: capabilities per step, the mechanisms login() would use, APOP', async () => {
    const c = await Pop3Client.connect(opts({ port: dc.ports.pop3, tls: 'starttls' }));
    // Dovecot's greeting carries a valid msg-id: APOP is usable.
    assert.equal(c.apopUsable, true);
    const h = c.capaHistory;
    assert.ok(h.beforeStls.stls && h.beforeStls.raw.includes('STLS'), JSON.stringify(h.beforeStls));
    assert.ok(!h.afterStls.stls && h.afterStls.sasl.includes('SCRAM-SHA-256'), JSON.stringify(h.afterStls));
    assert.equal(h.afterLogin, null);
    assert.deepEqual(c.capabilities, h.afterStls);
    assert.deepEqual(c.loginMechanisms, ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5', 'APOP', 'PLAIN', 'LOGIN', 'USER']);
    assert.equal(await c.login(alice().name, alice().password), 'SCRAM-SHA-256');
    assert.deepEqual(c.loginMechanisms, [], 'logged in: nothing left to log in with');
    assert.ok(c.capaHistory.afterLogin.raw.includes('PIPELINING'));
    assert.deepEqual(c.capabilities, c.capaHistory.afterLogin);
    c.close();
    // Plain text: the readable mechanisms are out unless allowInsecureAuth.
    const plain = await Pop3Client.connect(opts({ port: dc.ports.pop3, tls: 'none' }));
    assert.deepEqual(plain.loginMechanisms, ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5', 'APOP']);
    assert.equal(plain.capaHistory.afterStls, null);
    plain.close();
    const allowed = await Pop3Client.connect(opts({ port: dc.ports.pop3, tls: 'none', allowInsecureAuth: true }));
    assert.deepEqual(allowed.loginMechanisms.slice(-3), ['PLAIN', 'LOGIN', 'USER']);
    allowed.close();
  });

  test('every command: STAT, LIST, UIDL, TOP, RETR byte-exact against the sources', async () => {
    const c = await loggedIn();
    assert.equal(c.state, 'TRANSACTION');
    const a = alice();
    assert.deepEqual(await c.stat(), { count: a.count, size: a.size });
    assert.deepEqual(await c.list(), a.sizes.map((size, i) => ({ id: i + 1, size })));
    assert.deepEqual(await c.list(2), { id: 2, size: a.sizes[1] });
    assert.deepEqual(await c.uidl(), a.uids.map((uid, i) => ({ id: i + 1, uid })));
    assert.deepEqual(await c.uidl(3), { id: 3, uid: a.uids[2] });
    for (let n = 1; n <= a.count; n++) {
      const body = await c.retr(n);
      assert.ok(body instanceof Uint8Array);
      assert.ok(Buffer.from(body).equals(dc.expected('alice', n)), `RETR ${n} (${a.messages[n - 1].name}) differs`);
      for (const lines of [0, 1, 3]) {
        const top = await c.top(n, lines);
        assert.ok(Buffer.from(top).equals(dc.expectedTop('alice', n, lines)), `TOP ${n} ${lines} differs`);
      }
    }
    assert.equal(typeof (await c.noop()), 'string');
    await c.quit();
    assert.equal(c.state, 'CLOSED');
  });

  test('pipelined calls: commands go out before earlier replies arrive', async () => {
    const lines = [];
    const c = await loggedIn('alice', { onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`) });
    const a = alice();
    await c.noop(); // the CAPA the client asks after login is answered by now
    lines.length = 0;
    const ids = [1, 2, 3, 4];
    const results = await Promise.all(ids.flatMap((n) => [c.list(n), c.uidl(n), c.top(n, 0)]));
    for (const [k, n] of ids.entries()) {
      assert.deepEqual(results[3 * k], { id: n, size: a.sizes[n - 1] });
      assert.deepEqual(results[3 * k + 1], { id: n, uid: a.uids[n - 1] });
      assert.ok(Buffer.from(results[3 * k + 2]).equals(dc.expectedTop('alice', n, 0)));
    }
    // Every command was written before the first reply was read.
    const firstS = lines.findIndex((l) => l.startsWith('S: '));
    assert.equal(lines.slice(0, firstS).filter((l) => l.startsWith('C: ')).length, 12, lines.join('\n'));
    c.close();
  });

  test('empty mailbox', async () => {
    const c = await loggedIn('empty');
    assert.deepEqual(await c.stat(), { count: 0, size: 0 });
    assert.deepEqual(await c.list(), []);
    assert.deepEqual(await c.uidl(), []);
    await c.quit();
  });

  test('UTF-8 user name and password', async () => {
    const c = await loggedIn('jürgen');
    const body = await c.retr(1);
    assert.ok(Buffer.from(body).equals(dc.expected('jürgen', 1)));
    await c.quit();
  });

  test('tls none: readable credentials are refused unless allowInsecureAuth', async () => {
    const c = await Pop3Client.connect(opts({ port: dc.ports.pop3, tls: 'none' }));
    assert.equal(c.tls, null);
    await rejectsWith(c.auth('PLAIN', { username: alice().name, password: alice().password }), 'INSECURE_AUTH_REFUSED');
    await rejectsWith(c.raw(`PASS ${alice().password}`), 'INSECURE_AUTH_REFUSED');
    c.close();
    const ok = await Pop3Client.connect(opts({ port: dc.ports.pop3, tls: 'none', allowInsecureAuth: true }));
    assert.equal(await ok.auth('PLAIN', { username: alice().name, password: alice().password }), 'PLAIN');
    assert.equal((await ok.stat()).count, alice().count);
    await ok.quit();
  });

  test('USER/PASS through raw(): the transcript redacts the password', async () => {
    const lines = [];
    const c = await Pop3Client.connect(opts({ onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`) }));
    const u = await c.raw(`USER ${alice().name}`);
    assert.equal(u.ok, true);
    const p = await c.raw(`PASS ${alice().password}`);
    assert.equal(p.ok, true);
    assert.equal(p.status, '+OK');
    assert.equal(c.state, 'TRANSACTION');
    const list = await c.raw('LIST');
    assert.equal(list.ok, true);
    assert.equal(Buffer.from(list.body).toString(), alice().sizes.map((s, i) => `${i + 1} ${s}\r\n`).join(''));
    await c.quit();
    assert.ok(lines.includes(`C: USER ${alice().name}`), lines.join('\n'));
    assert.ok(lines.includes('C: PASS [redacted]'), lines.join('\n'));
    assert.ok(!lines.join('\n').includes(alice().password));
    assert.ok(lines.includes('C: QUIT'));
  });

  test('wrong password is AUTH_FAILED with the server response code', async () => {
    const c = await Pop3Client.connect(opts());
    const e = await rejectsWith(c.login(alice().name, 'not-the-password'), 'AUTH_FAILED');
    assert.equal(e.respCode, 'AUTH');
    assert.ok(e.serverText.length > 0);
    assert.ok(!e.message.includes('not-the-password'));
    // The session is still usable: the right password works.
    assert.equal(await c.login(alice().name, alice().password), 'SCRAM-SHA-256');
    c.close();
  });

  test('RETR of a missing message is SERVER_ERROR and the session goes on', async () => {
    const c = await loggedIn();
    const e = await rejectsWith(c.retr(999), 'SERVER_ERROR');
    assert.ok(e.serverText.length > 0);
    assert.equal((await c.stat()).count, alice().count);
    c.close();
  });

  test('maxBodyBytes: a body over the limit ends the session, nothing is lost; one at the limit passes', async () => {
    const a = alice();
    const big = a.count; // the 5 MB message is the last one
    const expected = dc.expected('alice', big);
    assert.ok(expected.length > 1 << 20);
    const lines = [];
    let c = await loggedIn('alice', { maxBodyBytes: 1 << 20, onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`) });
    await c.dele(1);
    const e = await rejectsWith(c.retr(big), 'PROTOCOL_ERROR');
    assert.match(e.message, /longer than 1048576 octets/);
    // The session is over: every later call fails the same way.
    await rejectsWith(c.stat(), 'PROTOCOL_ERROR');
    assert.ok(!lines.some((l) => l.startsWith('C: QUIT')), 'no QUIT went out');
    // Nothing was deleted. A limit the message fits in exactly: read whole.
    c = await loggedIn('alice', { maxBodyBytes: expected.length });
    assert.equal((await c.stat()).count, a.count);
    assert.ok(Buffer.from(await c.retr(big)).equals(expected));
    c.close();
  });

  test('commands in the wrong state are refused without being sent', async () => {
    const lines = [];
    const c = await Pop3Client.connect(opts({ onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`) }));
    const before = lines.length;
    await rejectsWith(c.stat(), 'INVALID_STATE');
    await rejectsWith(c.retr(1), 'INVALID_STATE');
    await rejectsWith(c.dele(1), 'INVALID_STATE');
    assert.equal(lines.length, before, 'nothing went on the wire');
    await rejectsWith(c.retr(0), 'INVALID_ARGUMENT');
    await rejectsWith(c.raw('NOOP\r\nDELE 1'), 'INVALID_ARGUMENT');
    c.close();
  });

  test('DELE then quit() deletes; DELE then close() deletes nothing; RSET undoes', async () => {
    const bob = dc.users.bob;
    // close(): nothing committed.
    let c = await loggedIn('bob');
    await c.dele(1);
    c.close();
    await rejectsWith(c.stat(), 'CONNECTION_CLOSED');
    c = await loggedIn('bob');
    assert.equal((await c.stat()).count, bob.count);
    // RSET undoes the mark, QUIT then commits nothing.
    await c.dele(1);
    assert.equal((await c.stat()).count, bob.count - 1);
    await c.rset();
    assert.equal((await c.stat()).count, bob.count);
    await c.quit();
    c = await loggedIn('bob');
    assert.equal((await c.stat()).count, bob.count);
    // DELE + QUIT: gone.
    await c.dele(1);
    await c.quit();
    c = await loggedIn('bob');
    assert.deepEqual(await c.uidl(), bob.uids.slice(1).map((uid, i) => ({ id: i + 1, uid })));
    await c.quit();
  });

  if (via === 'bridge')
  test('the bridge refuses the metadata address and a non-POP3 port', async () => {
    await rejectsWith(Pop3Client.connect(opts({ host: '169.254.169.254', port: 110, tls: 'none' })), 'BRIDGE_REJECTED');
    const e = await rejectsWith(Pop3Client.connect(opts({ host: '127.0.0.1', port: 22, tls: 'none' })), 'BRIDGE_REJECTED');
    assert.match(e.message, /not allowed/);
  });

  if (via === 'bridge')
  test('an unreachable bridge is BRIDGE_UNREACHABLE', async () => {
    const srv = net.createServer();
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const port = srv.address().port;
    await new Promise((r) => srv.close(r));
    await rejectsWith(Pop3Client.connect(opts({ bridge: `ws://127.0.0.1:${port}/pop3` })), 'BRIDGE_UNREACHABLE');
  });

  test('bad options are INVALID_ARGUMENT', async () => {
    // (In Node, leaving `bridge` out now means direct: a missing host is the error.)
    await rejectsWith(Pop3Client.connect(opts({ host: undefined })), 'INVALID_ARGUMENT');
    await rejectsWith(Pop3Client.connect(opts({ tls: 'sometimes' })), 'INVALID_ARGUMENT');
    await rejectsWith(Pop3Client.connect(opts({ port: 70000 })), 'INVALID_ARGUMENT');
    for (const maxBodyBytes of [0, -1, 1.5, 2 ** 31, '1048576']) {
      const e = await rejectsWith(Pop3Client.connect(opts({ maxBodyBytes })), 'INVALID_ARGUMENT');
      assert.equal(e.message, '`maxBodyBytes` must be an integer from 1 to 2147483647');
    }
    for (const pipelineWindow of [0, 4097, 2.5, '64']) {
      const e = await rejectsWith(Pop3Client.connect(opts({ pipelineWindow })), 'INVALID_ARGUMENT');
      assert.equal(e.message, '`pipelineWindow` must be an integer from 1 to 4096');
    }
  });

  if (via === 'bridge')
  test('the bridge logs carry no password and no message content', () => {
    const logs = bridge.logs();
    assert.ok(logs.length > 0, 'the bridge logged something');
    for (const u of Object.values(dc.users)) assert.ok(!logs.includes(u.password), `password of ${u.name} in logs`);
    assert.ok(!logs.includes('Subject:'));
  });
}

for (const via of ['bridge', 'direct']) describe(`via ${via}`, () => suite(via));
