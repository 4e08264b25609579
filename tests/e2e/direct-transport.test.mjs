// The direct transport's own rules (no bridge): certificate verification,
// SNI, the `ca` option, the bridge's error codes and words, and STLS upgraded
// in place with injected bytes dropped. Scripted TLS servers use the test
// Dovecot's certificate (CN=localhost, SAN DNS:localhost, IP:127.0.0.1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';
import { startInjectingStlsServer } from '../fixtures/stls-server.mjs';

let dc;
let key;
let cert;
const servers = [];

before(async () => {
  dc = await startDovecot();
  key = fs.readFileSync(path.join(dc.dir, 'server.key'));
  cert = fs.readFileSync(dc.certFile);
});

after(async () => {
  for (const s of servers) s.close();
  await dc?.stop();
});

/** A TLS POP3 server with the Dovecot certificate; records the SNI it saw. */
async function tlsServer(address = '127.0.0.1') {
  const seen = [];
  const srv = tls.createServer({ key, cert }, (s) => {
    seen.push(s.servername);
    s.write('+OK tls ready\r\n');
    s.on('data', (d) => {
      if (d.toString().startsWith('CAPA')) s.write('+OK\r\nUSER\r\n.\r\n');
    });
    s.on('error', () => {});
  });
  await new Promise((r) => srv.listen(0, address, r));
  servers.push(srv);
  return { port: srv.address().port, seen };
}

test('without the test CA the certificate is not trusted: TLS_FAILED, in the bridge words', async () => {
  const e = await rejectsWith(Pop3Client.connect({ host: dc.host, port: dc.ports.pop3s }), 'TLS_FAILED');
  assert.equal(e.message, 'certificate not trusted (unknown issuer)');
  // STLS: the same after the upgrade.
  await rejectsWith(Pop3Client.connect({ host: dc.host, port: dc.ports.pop3, tls: 'starttls' }), 'TLS_FAILED');
});

test('`ca` takes a PEM string, a Buffer or an array; anything else is INVALID_ARGUMENT', async () => {
  for (const ca of [dc.ca.toString(), dc.ca, [dc.ca]]) {
    const c = await Pop3Client.connect({ host: dc.host, port: dc.ports.pop3s, ca });
    assert.match(c.tls.certificate.subject, /CN=localhost$/);
    c.close();
  }
  await rejectsWith(Pop3Client.connect({ host: dc.host, port: dc.ports.pop3s, ca: 42 }), 'INVALID_ARGUMENT');
});

test('TLS details have the bridge shapes', async () => {
  const c = await Pop3Client.connect({ host: 'localhost', port: dc.ports.pop3s, ca: dc.ca });
  assert.match(c.tls.protocol, /^TLSv1\.[23]$/);
  assert.match(c.tls.cipher, /^TLS(13)?_[A-Z0-9_]+$/);
  assert.equal(c.tls.certificate.subject, 'O=pop3-wasm tests, CN=localhost');
  assert.equal(c.tls.certificate.issuer, 'O=pop3-wasm tests, CN=pop3-wasm test CA');
  assert.match(c.tls.certificate.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  c.close();
});

test('SNI is the host name, and none for an IP literal', async () => {
  const srv = await tlsServer();
  for (const host of ['localhost', '127.0.0.1']) {
    const c = await Pop3Client.connect({ host, port: srv.port, ca: dc.ca });
    assert.equal(c.greeting, 'tls ready');
    c.close();
  }
  assert.deepEqual(srv.seen, ['localhost', false]);
});

test('a certificate for another name is TLS_FAILED', async () => {
  // 127.0.0.2 is loopback too, but the certificate names only 127.0.0.1.
  const srv = await tlsServer('127.0.0.2');
  const e = await rejectsWith(Pop3Client.connect({ host: '127.0.0.2', port: srv.port, ca: dc.ca }), 'TLS_FAILED');
  assert.equal(e.message, 'certificate not valid for the host name');
});

test('CONNECT_FAILED: a closed port, a name that does not resolve', async () => {
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const e = await rejectsWith(Pop3Client.connect({ host: '127.0.0.1', port, tls: 'none' }), 'CONNECT_FAILED');
  assert.equal(e.message, 'connection refused', 'no "bridge:" in direct mode');
  const n = await rejectsWith(Pop3Client.connect({ host: 'no-such-host.invalid', port: 110, tls: 'none' }), 'CONNECT_FAILED');
  assert.equal(n.message, 'host name did not resolve');
});

test('no allowlist applies: loopback on any port is fine direct', async () => {
  const c = await Pop3Client.connect({ host: '127.0.0.1', port: dc.ports.pop3, tls: 'none' });
  assert.equal(c.tls, null);
  c.close();
});

test('STLS: bytes after +OK are dropped, then TLS over the same socket', async () => {
  const lines = [];
  // An attacker's line in the same packet as +OK: must never be read as the server's.
  const srv = await startInjectingStlsServer({ key, cert, inject: '+OK INJECTED\r\n' });
  servers.push({ close: srv.close });
  const c = await Pop3Client.connect({
    host: '127.0.0.1',
    port: srv.port,
    tls: 'starttls',
    ca: dc.ca,
    onTranscript: (l) => lines.push(`${l.dir}: ${l.line}`),
  });
  assert.match(c.tls.protocol, /^TLSv1\.[23]$/);
  assert.deepEqual((await c.capa()).sasl, ['PLAIN']);
  const text = lines.join('\n');
  assert.ok(text.includes('S: +OK go ahead'), text);
  assert.ok(!text.includes('INJECTED'), text);
  // The dropped bytes are reported as a tolerated deviation.
  assert.deepEqual(c.deviations.map((d) => d.id), ['data-after-stls']);
  c.close();
});

test('close() drops the connection: the server sees the end, no QUIT', async () => {
  let got = '';
  const ended = new Promise((resolve) => {
    const srv = net.createServer((s) => {
      s.write('+OK hi\r\n');
      s.on('data', (d) => {
        got += d;
        if (String(d).startsWith('CAPA')) s.write('-ERR no CAPA\r\n');
      });
      s.on('close', resolve);
      s.on('error', () => {});
    });
    servers.push(srv);
    srv.listen(0, '127.0.0.1', () => {
      Pop3Client.connect({ host: '127.0.0.1', port: srv.address().port, tls: 'none' }).then((c) => c.close());
    });
  });
  await ended;
  assert.equal(got, 'CAPA\r\n');
});
