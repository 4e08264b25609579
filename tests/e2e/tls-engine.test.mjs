// The TLS engine inside the TLS-capable wasm module (pkg/pop3_wasm_tls*,
// `TlsEngine`), with real randomness (crypto.getRandomValues) and the real
// clock (Date.now()): a few lines of JS move its bytes to and from node:net.
// Against the test Dovecot's implicit-TLS port (the greeting and a CAPA
// answer byte for byte as node:tls reads them; the TLS details as the bridge
// reports them for the same certificate), and against Node TLS servers with
// certificates made here (wrong name, untrusted: TLS_FAILED with the reason,
// and the alert reaches the server).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Pop3Client } from 'pop3-wasm';
import { Pop3Error } from '../../pop3-wasm/js/errors.js';
import { initSync, configure, TlsEngine } from '../../pop3-wasm/pkg/pop3_wasm_tls.js';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor } from '../fixtures/bridge.mjs';

initSync({ module: fs.readFileSync(new URL('../../pop3-wasm/pkg/pop3_wasm_tls_bg.wasm', import.meta.url)) });
configure(Pop3Error, null);

let dc;
let tmp;
const servers = [];

before(async () => {
  dc = await startDovecot();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-engine-'));
});

after(async () => {
  for (const s of servers) s.close();
  await dc?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/**
 * The engine over a TCP connection: everything the engine has to send goes
 * out, everything that arrives goes in. `read(done)` resolves the plaintext
 * once `done(bytes)` says it is complete; errors reject it.
 */
function over(socket, engine) {
  let plain = Buffer.alloc(0);
  let waiter = null;
  const flush = () => {
    const out = engine.takeCiphertext();
    if (out.length) socket.write(out);
  };
  const settle = (err) => {
    if (!waiter) return;
    const w = waiter;
    if (err) {
      waiter = null;
      w.reject(err);
    } else if (w.done(plain)) {
      waiter = null;
      const got = plain;
      plain = Buffer.alloc(0);
      w.resolve(got);
    }
  };
  socket.on('data', (d) => {
    try {
      engine.feed(d);
    } catch (e) {
      flush(); // the alert that tells the server why
      return settle(e);
    }
    flush();
    plain = Buffer.concat([plain, engine.takePlaintext()]);
    settle();
  });
  socket.on('close', () => {
    try {
      engine.transportClosed();
      settle(new Error('connection closed'));
    } catch (e) {
      settle(e);
    }
  });
  socket.on('error', (e) => settle(e));
  flush(); // the ClientHello
  return {
    read: (done) => new Promise((resolve, reject) => {
      waiter = { done, resolve, reject };
      settle();
    }),
    write: (bytes) => {
      engine.write(bytes);
      flush();
    },
  };
}

const line = (b) => b.includes('\r\n');
const multiline = (b) => b.includes('\r\n.\r\n');

async function connect(port) {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** What node:tls reads for the same exchange: the reference bytes. */
async function reference(host) {
  const s = tls.connect({ host: '127.0.0.1', servername: host, port: dc.ports.pop3s, ca: dc.ca });
  let buf = Buffer.alloc(0);
  const until = (done) => new Promise((resolve, reject) => {
    const check = () => {
      if (done(buf)) {
        s.off('data', onData);
        const got = buf;
        buf = Buffer.alloc(0);
        resolve(got);
      }
    };
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      check();
    };
    s.on('data', onData);
    s.once('error', reject);
    check();
  });
  const greeting = await until(line);
  s.write('CAPA\r\n');
  const capa = await until(multiline);
  s.end('QUIT\r\n');
  return { greeting, capa };
}

for (const host of ['localhost', '127.0.0.1']) {
  test(`Dovecot over implicit TLS in the engine (${host}): greeting and CAPA byte for byte, a clean close`, async () => {
    const engine = new TlsEngine(host, dc.ca, Date.now());
    const socket = await connect(dc.ports.pop3s);
    const io = over(socket, engine);
    const greeting = await io.read(line);
    assert.equal(engine.established, true);
    const ref = await reference('localhost');
    assert.match(greeting.toString('latin1'), /^\+OK Dovecot \(Debian\) ready\. <[^>]+>\r\n$/);
    assert.equal(greeting.length, ref.greeting.length);
    io.write(Buffer.from('CAPA\r\n'));
    const capa = await io.read(multiline);
    assert.deepEqual(capa, ref.capa);
    assert.match(capa.toString('latin1'), /^\+OK[^\r]*\r\nCAPA\r\nTOP\r\nUIDL\r\n/);

    const info = engine.info;
    assert.equal(info.protocol, 'TLSv1.3');
    assert.deepEqual(info.chain[0].dnsNames, ['localhost']);
    assert.deepEqual(info.chain[0].ipAddresses, ['127.0.0.1']);
    assert.equal(info.chain[0].keyType, 'EC');
    assert.equal(info.chain[0].curve, 'P-256');
    assert.equal(info.chain[0].signatureAlgorithm, 'ecdsa-with-SHA256');
    // The fingerprint openssl gives for the same certificate.
    const openssl = execFileSync('openssl', ['x509', '-in', dc.certFile, '-noout', '-fingerprint', '-sha256']);
    assert.equal(`sha256 Fingerprint=${info.chain[0].sha256}\n`, openssl.toString());

    io.write(Buffer.from('QUIT\r\n'));
    const bye = await io.read(line);
    assert.match(bye.toString(), /^\+OK/);
    engine.close();
    socket.end(engine.takeCiphertext());
    await new Promise((resolve) => socket.once('close', resolve));
    assert.equal(engine.error, null);
  });
}

test('the engine reports protocol, cipher and certificate as the bridge does for the same server', async () => {
  const br = await startBridgeFor(dc);
  try {
    const c = await Pop3Client.connect({ bridge: br.url, host: dc.host, port: dc.ports.pop3s, tls: 'implicit' });
    // c.tls adds where TLS ends (here: in the bridge) to the three fields.
    const { endToEnd, ...bridged } = c.tls;
    assert.equal(endToEnd, false);
    c.close();
    const engine = new TlsEngine(dc.host, dc.ca, Date.now());
    const socket = await connect(dc.ports.pop3s);
    await over(socket, engine).read(line);
    socket.destroy();
    const { protocol, cipher, certificate } = engine.info;
    assert.deepEqual({ protocol, cipher, certificate }, bridged);
    assert.equal(certificate.subject, 'O=pop3-wasm tests, CN=localhost');
    assert.match(certificate.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  } finally {
    await br.stop();
  }
});

/** A CA and a server certificate for `names`, made with openssl here. */
function makeCert(dir, names) {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tls-engine test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  run(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${names[0]}`]);
  fs.writeFileSync(path.join(dir, 'server.ext'), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'server.ext', '-out', 'server.pem']);
  const read = (f) => fs.readFileSync(path.join(dir, f));
  return { ca: read('ca.pem'), cert: read('server.pem'), key: read('server.key') };
}

/** A Node TLS server; resolves its port and the client errors it saw. */
async function tlsServer({ cert, key }) {
  const clientErrors = [];
  const srv = tls.createServer({ cert, key }, (s) => {
    s.write('+OK ready\r\n');
    s.on('error', () => {});
  });
  srv.on('tlsClientError', (e) => clientErrors.push(e));
  servers.push(srv);
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { port: srv.address().port, clientErrors };
}

async function failure(host, ca, port) {
  const engine = new TlsEngine(host, ca, Date.now());
  const socket = await connect(port);
  const err = await over(socket, engine).read(line).then(
    () => assert.fail('the handshake succeeded'),
    (e) => e,
  );
  socket.destroy();
  return { err, engine };
}

async function alertSeen(server) {
  for (let i = 0; i < 100 && server.clientErrors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  return server.clientErrors.map((e) => e.code);
}

test('a certificate for other names: TLS_FAILED, wrong-name, the names quoted, and the server told', async () => {
  const pki = makeCert(path.join(tmp, 'wrong-name'), ['pop.example.org', 'mail.example.org']);
  const server = await tlsServer(pki);
  const { err, engine } = await failure('localhost', pki.ca, server.port);
  assert.ok(err instanceof Pop3Error, String(err));
  assert.equal(err.code, 'TLS_FAILED');
  assert.equal(err.reason, 'wrong-name');
  assert.equal(
    err.message,
    'certificate not valid for the host name localhost (it is for pop.example.org, mail.example.org)',
  );
  assert.equal(engine.established, false);
  assert.equal(engine.error.reason, 'wrong-name');
  assert.deepEqual(engine.presentedChain[0].dnsNames, ['pop.example.org', 'mail.example.org']);
  assert.deepEqual(await alertSeen(server), ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE']);
});

test('a certificate from a CA nobody gave: TLS_FAILED, untrusted, the issuer named, and the server told', async () => {
  const pki = makeCert(path.join(tmp, 'untrusted'), ['localhost']);
  const server = await tlsServer(pki);
  // The Dovecot CA instead of the one that signed it.
  const { err } = await failure('localhost', dc.ca, server.port);
  assert.ok(err instanceof Pop3Error, String(err));
  assert.equal(err.code, 'TLS_FAILED');
  assert.equal(err.reason, 'untrusted');
  assert.equal(err.message, 'certificate not trusted (unknown issuer: CN=tls-engine test CA)');
  assert.deepEqual(await alertSeen(server), ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA']);
});

test('bad arguments are INVALID_ARGUMENT before anything is sent', () => {
  assert.throws(() => new TlsEngine('bad host!', null, Date.now()), (e) => e.code === 'INVALID_ARGUMENT' && e.reason === 'invalid-host');
  assert.throws(() => new TlsEngine('localhost', 'not a PEM', Date.now()), (e) => e.code === 'INVALID_ARGUMENT' && e.reason === 'invalid-ca');
  assert.throws(() => new TlsEngine('localhost', 42, Date.now()), (e) => e.code === 'INVALID_ARGUMENT');
});
