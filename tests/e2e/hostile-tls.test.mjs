// Hostile TLS on the upstream side, through the bridge: STLS "+OK" followed
// by injected plaintext, and certificates that are self-signed, expired or
// for another host. Each is TLS_FAILED unless the CA is given (and an
// expired or misnamed certificate stays TLS_FAILED even then).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Pop3Client, Pop3Error } from 'pop3-wasm';
import { startBridge } from '../fixtures/bridge.mjs';
import { makeTestCertificates } from '../fixtures/certs.mjs';
import { runCleanups } from '../fixtures/cleanup.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cleanups = [];
after(() => runCleanups(cleanups));

// ------------------------------------------------------------ certificates

let certs;

before(() => {
  certs = makeTestCertificates();
  cleanups.push(certs.remove);
});

// ------------------------------------------------------------ servers

/** A line reader over any duplex stream. */
function lines(sock, received) {
  let buf = '';
  const waiting = [];
  let ended = false;
  const pump = () => {
    for (;;) {
      const i = buf.indexOf('\n');
      if (i < 0 || !waiting.length) break;
      const l = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      received.push(l);
      waiting.shift()(l);
    }
    if (ended) while (waiting.length) waiting.shift()(null);
  };
  const onData = (d) => {
    buf += d.toString('latin1');
    pump();
  };
  sock.on('data', onData);
  sock.on('end', () => {
    ended = true;
    pump();
  });
  sock.on('close', () => {
    ended = true;
    pump();
  });
  return { next: () => new Promise((r) => { waiting.push(r); pump(); }), detach: () => sock.off('data', onData) };
}

/** Implicit TLS POP3 that answers CAPA and NOOP. */
async function implicitServer(keyCert) {
  const received = [];
  const server = tls.createServer({ ...keyCert }, async (s) => {
    s.on('error', () => {});
    const r = lines(s, received);
    s.write('+OK tls ready\r\n');
    for (;;) {
      const l = await r.next();
      if (l === null) return;
      if (l === 'CAPA') s.write('+OK\r\nUSER\r\n.\r\n');
      else if (l === 'QUIT') return s.end('+OK bye\r\n');
      else s.write('+OK\r\n');
    }
  });
  server.on('tlsClientError', () => {});
  const open = track(server);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => closeServer(server, open));
  return { port: server.address().port, received, open };
}

/** The TCP connections a server holds open right now. */
function track(server) {
  const open = new Set();
  server.on('connection', (c) => {
    open.add(c);
    c.on('close', () => open.delete(c));
  });
  return open;
}

function closeServer(server, open) {
  for (const c of open) c.destroy();
  return new Promise((r) => server.close(r));
}

/** Waits until the client side hung up every connection to `open`. */
async function allClosed(open, ms = 2000) {
  const deadline = Date.now() + ms;
  while (open.size && Date.now() < deadline) await sleep(20);
  return open.size === 0;
}

/**
 * Plain POP3 with STLS. After `reply` ("+OK Begin TLS") to STLS it writes
 * `inject` in the same segment, then (unless `handshake` is false) upgrades
 * with `keyCert`.
 */
async function stlsServer({ keyCert, inject, handshake = true, closeAfterInject = false, reply = '+OK Begin TLS\r\n' }) {
  const received = [];
  const sockets = new Set();
  const server = net.createServer(async (raw) => {
    sockets.add(raw);
    raw.setNoDelay(true);
    raw.on('error', () => {});
    const r = lines(raw, received);
    raw.write('+OK plain ready\r\n');
    if ((await r.next()) !== 'CAPA') return raw.destroy();
    raw.write('+OK\r\nSTLS\r\nUSER\r\n.\r\n');
    if ((await r.next()) !== 'STLS') return raw.destroy();
    r.detach();
    raw.write(Buffer.concat([Buffer.from(reply, 'latin1'), Buffer.from(inject, 'latin1')]));
    if (closeAfterInject) return raw.end();
    if (!handshake) return;
    const s = new tls.TLSSocket(raw, { isServer: true, ...keyCert });
    s.on('error', () => {});
    const t = lines(s, received);
    for (;;) {
      const l = await t.next();
      if (l === null) return;
      if (l === 'CAPA') s.write('+OK\r\nUSER\r\nPIPELINING\r\n.\r\n');
      else s.write('+OK the real server\r\n');
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return { port: server.address().port, received };
}

/** The route to `port`: a bridge trusting `caFiles`, or (direct) the Node transport given them as `ca`. */
let VIA = 'bridge';
async function bridgeFor(port, caFiles = []) {
  if (VIA === 'direct') return { direct: true, ca: caFiles.map((f) => fs.readFileSync(f)) };
  const b = await startBridge({ allow: [`127.0.0.1:${port}`], caFiles });
  cleanups.push(() => b.stop());
  return b;
}

const connect = (route, port, tlsMode, extra = {}) =>
  Pop3Client.connect({
    ...(route.direct ? (route.ca.length ? { ca: route.ca } : {}) : { bridge: route.url }),
    host: '127.0.0.1', port, tls: tlsMode, timeoutMs: 4000, ...extra,
  });

/** TLS_FAILED, and not a TIMEOUT: the failure came before any deadline. */
async function tlsFailed(promise) {
  const e = await promise.then(() => assert.fail('expected TLS_FAILED'), (e) => e);
  assert.ok(e instanceof Pop3Error, String(e?.stack ?? e));
  assert.equal(e.code, 'TLS_FAILED', e.message);
  return e;
}

// ------------------------------------------------------------ tests

function cases(via) {
before(() => {
  VIA = via;
});

test('STLS +OK followed by injected plaintext: the injection is dropped, the session goes on under TLS', async () => {
  const srv = await stlsServer({ keyCert: certs.valid, inject: '+OK injected\r\n-ERR injected\r\n+OK\r\nUSER\r\n.\r\n' });
  const bridge = await bridgeFor(srv.port, [certs.caFile]);
  const transcript = [];
  const c = await connect(bridge, srv.port, 'starttls', { onTranscript: (l) => transcript.push(l) });
  assert.ok(c.tls, 'TLS is up');
  assert.equal(c.tls.certificate.subject, 'CN=localhost');
  assert.equal(c.pipelining, true, 'the capabilities come from the CAPA under TLS');
  await c.auth('USER', { username: 'u', password: 'p' });
  assert.equal(await c.noop(), 'the real server');
  assert.ok(!transcript.some((l) => /injected/.test(l.line)), JSON.stringify(transcript));
  c.close();
});

test('STLS +OK, injected plaintext, then a close instead of TLS: TLS_FAILED, nothing injected is believed', async () => {
  const srv = await stlsServer({ keyCert: certs.valid, inject: '+OK injected\r\n', closeAfterInject: true });
  const bridge = await bridgeFor(srv.port, [certs.caFile]);
  const transcript = [];
  await tlsFailed(connect(bridge, srv.port, 'starttls', { onTranscript: (l) => transcript.push(l) }));
  assert.ok(!transcript.some((l) => /injected/.test(l.line)));
  assert.ok(!srv.received.includes('QUIT'));
});

test('STLS +OK, injected plaintext, then silence: TIMEOUT on the TLS deadline', async () => {
  const srv = await stlsServer({ keyCert: certs.valid, inject: '+OK injected\r\n', handshake: false });
  const bridge = await bridgeFor(srv.port, [certs.caFile]);
  const transcript = [];
  const e = await connect(bridge, srv.port, 'starttls', { onTranscript: (l) => transcript.push(l), timeouts: { tls: 1000 } }).then(
    () => assert.fail('connected'),
    (e) => e,
  );
  assert.equal(e.code, 'TIMEOUT', e.message);
  // The client's own TLS deadline ended it, not the command deadline (4 s).
  assert.match(e.message, /^no answer to the TLS handshake within 1000 ms; the session was dropped$/);
  assert.ok(!transcript.some((l) => /injected/.test(l.line)));
  assert.ok(!srv.received.includes('QUIT'));
});

// One rule for the answer to STLS (the core's stls_verdict, used by the
// bridge and the direct transport alike): `+ok` is `+OK`, as everywhere;
// anything else ends the session as TLS_FAILED at once, never a stall.
test('STLS answered "+ok" in lower case: TLS comes up and the deviation is recorded', async () => {
  const srv = await stlsServer({ keyCert: certs.valid, inject: '', reply: '+ok begin TLS\r\n' });
  const c = await connect(await bridgeFor(srv.port, [certs.caFile]), srv.port, 'starttls', { timeoutMs: 30000 });
  assert.equal(c.tls?.certificate.subject, 'CN=localhost');
  assert.ok(c.deviations.some((d) => d.id === 'status-case'), JSON.stringify(c.deviations));
  await c.auth('USER', { username: 'u', password: 'p' });
  assert.equal(await c.noop(), 'the real server');
  c.close();
});

test('STLS answered with something that is not POP3: TLS_FAILED naming it, not a TIMEOUT', async () => {
  const srv = await stlsServer({ keyCert: certs.valid, inject: '', reply: 'HTTP/1.1 400 Bad Request\r\n\r\n', handshake: false });
  const transcript = [];
  const route = await bridgeFor(srv.port, [certs.caFile]);
  const e = await tlsFailed(connect(route, srv.port, 'starttls', { timeoutMs: 30000, onTranscript: (l) => transcript.push(`${l.dir}: ${l.line}`) }));
  assert.equal(e.message, 'TLS failed: the server\'s answer to STLS is neither +OK nor -ERR: "HTTP/1.1 400 Bad Request"');
  assert.deepEqual(transcript.slice(-2), ['C: STLS', 'S: HTTP/1.1 400 Bad Request']);
  assert.ok(!srv.received.includes('QUIT'));
});

test('STLS answered with a line that does not end: TLS_FAILED at the limit', async () => {
  const srv = await stlsServer({ keyCert: certs.valid, inject: '', reply: `+OK ${'x'.repeat(5000)}`, handshake: false });
  const e = await tlsFailed(connect(await bridgeFor(srv.port, [certs.caFile]), srv.port, 'starttls', { timeoutMs: 30000 }));
  assert.match(e.message, /the server's answer to STLS has no line end within 4096 octets$/);
  assert.ok(!srv.received.includes('QUIT'));
});

test('STLS to a server with a self-signed certificate: TLS_FAILED', async () => {
  const srv = await stlsServer({ keyCert: certs.self, inject: '' });
  const bridge = await bridgeFor(srv.port);
  await tlsFailed(connect(bridge, srv.port, 'starttls'));
  assert.ok(!srv.received.includes('QUIT'));
});

test('implicit TLS, self-signed certificate: TLS_FAILED, accepted once it is given as the CA', async () => {
  const srv = await implicitServer(certs.self);
  const untrusting = await bridgeFor(srv.port);
  const e = await tlsFailed(connect(untrusting, srv.port, 'implicit'));
  assert.match(e.message, /certificate|issuer|trust/i);
  const trusting = await bridgeFor(srv.port, [certs.selfFile]);
  const c = await connect(trusting, srv.port, 'implicit');
  assert.equal(c.tls.certificate.subject, 'CN=localhost');
  c.close();
});

test('implicit TLS, certificate from an unknown CA: TLS_FAILED, accepted with the CA', async () => {
  const srv = await implicitServer(certs.valid);
  await tlsFailed(connect(await bridgeFor(srv.port), srv.port, 'implicit'));
  const c = await connect(await bridgeFor(srv.port, [certs.caFile]), srv.port, 'implicit');
  assert.match(c.tls.protocol, /^TLSv1\.[23]$/);
  c.close();
});

test('implicit TLS, expired certificate: TLS_FAILED even with the CA', async () => {
  const srv = await implicitServer(certs.expired);
  await tlsFailed(connect(await bridgeFor(srv.port), srv.port, 'implicit'));
  const e = await tlsFailed(connect(await bridgeFor(srv.port, [certs.caFile]), srv.port, 'implicit'));
  assert.match(e.message, /expired|not valid|certificate/i);
  assert.ok(!srv.received.length, 'nothing was sent to an unverified server');
});

test('implicit TLS, certificate for another host: TLS_FAILED even with the CA', async () => {
  const srv = await implicitServer(certs.wrong);
  await tlsFailed(connect(await bridgeFor(srv.port), srv.port, 'implicit'));
  const e = await tlsFailed(connect(await bridgeFor(srv.port, [certs.caFile]), srv.port, 'implicit'));
  assert.match(e.message, /name|host|certificate/i);
  assert.ok(!srv.received.length, 'nothing was sent to an unverified server');
});

test('implicit TLS to a server that speaks plaintext: TLS_FAILED within the deadline', async () => {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.resume(); // read, so that the client's FIN is seen
    s.write('+OK plaintext where TLS was expected\r\n');
  });
  const open = track(server);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => closeServer(server, open));
  const port = server.address().port;
  await tlsFailed(connect(await bridgeFor(port), port, 'implicit'));
});

test('a failed TLS handshake closes the TCP connection to the server', async () => {
  // A certificate the client refuses, and a server that answers in plaintext.
  const srv = await implicitServer(certs.expired);
  await tlsFailed(connect(await bridgeFor(srv.port, [certs.caFile]), srv.port, 'implicit'));
  assert.ok(await allClosed(srv.open), `${srv.open.size} connection(s) still open (refused certificate)`);
  const plain = net.createServer((s) => {
    s.on('error', () => {});
    s.resume(); // read, so that the client's FIN is seen
    s.write('+OK plaintext where TLS was expected\r\n');
  });
  const open = track(plain);
  await new Promise((r) => plain.listen(0, '127.0.0.1', r));
  cleanups.push(() => closeServer(plain, open));
  const port = plain.address().port;
  await tlsFailed(connect(await bridgeFor(port), port, 'implicit'));
  assert.ok(await allClosed(open), `${open.size} connection(s) still open (plaintext answer)`);
});
}

for (const via of ['bridge', 'direct']) describe(`via ${via}`, () => cases(via));
