// The bridge's end-to-end mode (wire v2) with the real Dovecot, the client's
// TLS played by Node's own (OpenSSL, the other TLS stack besides the rustls
// of ws-bridge/tests/end_to_end.rs): a bridge started with
// --end-to-end-only, holding no key and trusting no test CA, relays
// implicit TLS and STLS sessions whose handshake and login the client does
// itself. A recording relay between the bridge and Dovecot shows what
// reached the server: CAPA/STLS and TLS records, never a command or a
// password; plaintext before the ClientHello ends the session (4400) before
// it gets there. The package's client asking for bridge-side TLS gets
// BRIDGE_REJECTED from that bridge, and its trace-level logs hold no
// password.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import { Pop3Client, Pop3Error } from 'pop3-wasm';
import WebSocket from 'ws';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridge } from '../fixtures/bridge.mjs';
import { startRelay } from '../fixtures/relay.mjs';

let dc;
let bridge;
let relay110;
let relay995;

before(async () => {
  dc = await startDovecot();
  relay110 = await startRelay(dc.ports.pop3);
  relay995 = await startRelay(dc.ports.pop3s);
  // No --ca-file: this bridge could not verify Dovecot's certificate itself.
  bridge = await startBridge({
    allow: [`localhost:${relay110.port},${relay995.port}`, `127.0.0.1:${relay995.port}`],
    extraArgs: ['--end-to-end-only', '--log-level', 'trace'],
  });
});
after(async () => {
  await bridge?.stop();
  await relay110?.stop();
  await relay995?.stop();
  await dc?.stop();
});

/**
 * Opens an end-to-end session and returns it as a byte stream (BINARY
 * frames) with what else the bridge said: `control` (its TEXT messages)
 * and `closed` (resolves with the close code).
 */
async function openE2e(host, port, mode) {
  const ws = new WebSocket(bridge.url, ['pop3-bridge.v2', 'pop3-bridge.v1']);
  ws.binaryType = 'nodebuffer';
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  assert.equal(ws.protocol, 'pop3-bridge.v2');
  const control = [];
  // One listener from the start: the bridge's first BINARY frame (the
  // greeting, for STLS) can come in the same read as `connected` and is
  // emitted in the same tick, before an `await` would let a later listener on.
  const stream = new Duplex({
    read() {},
    write(chunk, _enc, done) {
      if (ws.readyState !== WebSocket.OPEN) return done(new Error('the bridge closed the session'));
      ws.send(chunk, { binary: true }, done);
    },
    final(done) {
      done();
    },
  });
  let connected;
  const first = new Promise((resolve) => {
    connected = resolve;
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) stream.push(data);
    else if (connected) {
      connected(JSON.parse(data));
      connected = null;
    } else control.push(JSON.parse(data));
  });
  const closed = new Promise((resolve) => ws.once('close', (code) => {
    stream.push(null);
    resolve(code);
  }));
  ws.send(JSON.stringify({ type: 'connect', v: 2, host, port, tls: mode, endToEnd: true }));
  assert.deepEqual(await first, { type: 'connected', tls: null, endToEnd: true });
  return { stream, control, closed, ws };
}

/** Reads CRLF lines from `stream` until `done(lines)` is true. */
function readLines(stream, done) {
  return new Promise((resolve, reject) => {
    let text = '';
    const off = () => {
      stream.off('data', onData);
      stream.off('error', onError);
      stream.off('end', onEnd);
    };
    const onData = (d) => {
      text += d.toString('latin1');
      const lines = text.split('\r\n').slice(0, -1);
      if (done(lines)) {
        off();
        resolve(lines);
      }
    };
    const onError = (e) => {
      off();
      reject(e);
    };
    const onEnd = () => onError(new Error(`the stream ended after ${JSON.stringify(text)}`));
    stream.on('data', onData);
    stream.on('error', onError);
    stream.on('end', onEnd);
  });
}

/** Over an established TLS socket: USER/PASS as alice, STAT, QUIT. */
async function loginAndStat(socket) {
  const alice = dc.users.alice;
  const say = async (line, until) => {
    const got = readLines(socket, until);
    socket.write(`${line}\r\n`);
    return got;
  };
  await say('USER alice', (l) => l.length === 1);
  const [pass] = await say(`PASS ${alice.password}`, (l) => l.length === 1);
  assert.match(pass, /^\+OK/);
  const [stat] = await say('STAT', (l) => l.length === 1);
  assert.equal(stat, `+OK ${alice.count} ${alice.size}`);
  const [bye] = await say('QUIT', (l) => l.length === 1);
  assert.match(bye, /^\+OK/);
}

/** The client's own TLS over the session, verifying Dovecot's certificate for `host` (SNI: a name only). */
function tlsOver(stream, host) {
  return new Promise((resolve, reject) => {
    const sni = net.isIP(host) ? {} : { servername: host };
    const socket = tls.connect({ socket: stream, host, ca: dc.ca, ...sni }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** No command and no password in what reached Dovecot. */
function assertUnreadable(sent) {
  for (const readable of ['USER', 'PASS', 'STAT', 'QUIT', 'alice', dc.users.alice.password]) {
    assert.ok(!sent.includes(readable), `${readable} reached the server`);
  }
}

test('implicit TLS end to end: OpenSSL through the bridge to Dovecot, the bridge relaying TLS records only', async () => {
  const since = relay995.count();
  const s = await openE2e('localhost', relay995.port, 'implicit');
  const socket = await tlsOver(s.stream, 'localhost');
  const [greeting] = await readLines(socket, (l) => l.length === 1);
  assert.match(greeting, /^\+OK/);
  await loginAndStat(socket);
  assert.equal(await s.closed, 1000);
  const [sent] = relay995.sent(since);
  assert.equal(sent.charCodeAt(0), 22, 'a TLS handshake record first');
  assertUnreadable(sent);
});

test('an IP host end to end: OpenSSL sends no SNI for it, and the bridge wants none', async () => {
  const s = await openE2e('127.0.0.1', relay995.port, 'implicit');
  const socket = await tlsOver(s.stream, '127.0.0.1');
  assert.ok(socket.authorized, 'the IP SAN verified by the client');
  const [greeting] = await readLines(socket, (l) => l.length === 1);
  assert.match(greeting, /^\+OK/);
  await loginAndStat(socket);
  assert.equal(await s.closed, 1000);
});

test('STLS end to end: CAPA and STLS in the clear, then the client\'s own handshake with Dovecot', async () => {
  const since = relay110.count();
  const s = await openE2e('localhost', relay110.port, 'starttls');
  const [greeting] = await readLines(s.stream, (l) => l.length === 1);
  assert.match(greeting, /^\+OK/);
  let capa = readLines(s.stream, (l) => l.at(-1) === '.');
  s.stream.write('CAPA\r\n');
  assert.ok((await capa).includes('STLS'), 'Dovecot offers STLS');
  const ok = readLines(s.stream, (l) => l.length === 1);
  s.stream.write('STLS\r\n');
  assert.match((await ok)[0], /^\+OK/);
  const socket = await tlsOver(s.stream, 'localhost');
  capa = readLines(socket, (l) => l.at(-1) === '.');
  socket.write('CAPA\r\n');
  assert.ok(!(await capa).includes('STLS'), 'no STLS over TLS');
  await loginAndStat(socket);
  assert.equal(await s.closed, 1000);
  const [sent] = relay110.sent(since);
  assert.ok(sent.startsWith('CAPA\r\nSTLS\r\n\x16\x03'), JSON.stringify(sent.slice(0, 20)));
  assertUnreadable(sent.slice(12));
});

test('plaintext before the ClientHello ends the session with 4400 and never reaches Dovecot', async () => {
  for (const [port, mode, frames, reached] of [
    [() => relay995.port, 'implicit', [`USER alice\r\n`, `PASS ${dc.users.alice.password}\r\n`], ''],
    [() => relay110.port, 'starttls', ['CAPA\r\n', `AUTH PLAIN ${Buffer.from(`\0alice\0${dc.users.alice.password}`).toString('base64')}\r\n`], 'CAPA\r\n'],
    [() => relay110.port, 'starttls', ['STLS\r\n', `PASS ${dc.users.alice.password}\r\n`], 'STLS\r\n'],
  ]) {
    const relay = mode === 'implicit' ? relay995 : relay110;
    const since = relay.count();
    const s = await openE2e('localhost', port(), mode);
    if (mode === 'starttls') await readLines(s.stream, (l) => l.length === 1);
    for (const [i, frame] of frames.entries()) {
      if (i === 1 && reached) {
        // The first frame went on: wait for Dovecot's answer before the second.
        await readLines(s.stream, (l) => l.length >= 1);
      }
      s.ws.send(Buffer.from(frame));
    }
    assert.equal(await s.closed, 4400);
    assert.deepEqual(s.control, [{ type: 'error', code: 'PROTOCOL_ERROR', message: 'plaintext not allowed before TLS' }]);
    assert.equal(relay.sent(since)[0] ?? '', reached, `${mode}: ${frames.join('|')}`);
  }
});

test('the package\'s client without endToEnd gets BRIDGE_REJECTED from an end-to-end-only bridge, and /bridge.json says why', async () => {
  for (const [port, mode] of [[relay995.port, 'implicit'], [relay110.port, 'starttls']]) {
    const e = await Pop3Client.connect({ bridge: bridge.url, host: 'localhost', port, tls: mode, WebSocket, timeoutMs: 10000 })
      .then(() => assert.fail('connected'), (e) => e);
    assert.ok(e instanceof Pop3Error, String(e));
    assert.equal(e.code, 'BRIDGE_REJECTED');
    assert.match(e.message, /end-to-end TLS required/);
  }
  const response = await fetch(`${bridge.httpUrl}/bridge.json`);
  assert.equal(response.headers.get('cache-control'), 'public, max-age=60');
  assert.deepEqual(await response.json(), { endToEndOnly: true, wire: ['pop3-bridge.v1', 'pop3-bridge.v2'] });
});

test('the bridge at trace level logged the end-to-end sessions and no password', async () => {
  const logs = bridge.logs();
  assert.match(logs, /e2e=true/);
  assert.match(logs, /TRACE|DEBUG/);
  const pw = dc.users.alice.password;
  for (const secret of [pw, Buffer.from(`\0alice\0${pw}`).toString('base64')]) {
    assert.ok(!logs.includes(secret), `the logs contain ${secret}`);
  }
});
