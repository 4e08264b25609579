// Writes the seed corpora in fuzz/corpus/<target>/ from the transcript
// tests (pop3-wasm/tests/transcript.rs: every `S:` dialogue) plus the RFC
// examples the unit tests use. Run again after adding transcripts:
//   node fuzz/seeds.mjs
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const transcript = fs.readFileSync(path.join(HERE, '..', 'pop3-wasm', 'tests', 'transcript.rs'), 'utf8');

function write(target, bytes) {
  const dir = path.join(HERE, 'corpus', target);
  fs.mkdirSync(dir, { recursive: true });
  const buf = Buffer.from(bytes);
  fs.writeFileSync(path.join(dir, createHash('sha1').update(buf).digest('hex')), buf);
}

// Every string literal holding S: lines is one dialogue: its server side.
const dialogues = [];
for (const m of transcript.matchAll(/"((?:[^"\\]|\\.)*)"/gs)) {
  const lines = m[1].split('\n').map((l) => l.trim());
  const server = lines.filter((l) => l.startsWith('S:')).map((l) => l.replace(/^S: ?/, ''));
  if (server.length) dialogues.push(Buffer.from(server.map((l) => `${l}\r\n`).join(''), 'latin1'));
}

// A server that answers everything response_session enqueues, in order.
const perfect = Buffer.from(
  [
    '+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>',
    '+OK user', '+OK logged in', '+OK', 'TOP', 'UIDL', 'PIPELINING', 'RESP-CODES', '.',
    '+OK 2 320', '+OK 2 messages', '1 120', '2 200', '.', '+OK 1 120',
    '+OK', '1 whqtswO00WBw418f9t5JxYwZ', '2 QhdPYR:00WBw1Ph7x7', '.', '+OK 2 QhdPYR:00WBw1Ph7x7',
    '+OK top', 'Subject: x', '', '.', '+OK 120 octets', 'From: a@example.org', '', '..dot', 'body', '.',
    '+OK deleted', '-ERR [SYS/PERM] no UTF8', '+OK xtnd', 'data', '.', '+OK reset', '+OK', '+OK bye',
  ].map((l) => `${l}\r\n`).join(''),
  'latin1',
);

// response_session: [flags, chunk, stream_mask, wire…]
for (const wire of [...dialogues, perfect]) {
  for (const [flags, chunk, mask] of [[0x00, 0, 0], [0x18, 7, 0x40], [0x01, 1, 0], [0x82, 13, 0xff], [0x7c, 3, 0]]) {
    write('response_session', Buffer.concat([Buffer.from([flags, chunk, mask]), wire]));
  }
}
write('response_session', Buffer.concat([Buffer.from([0xff, 0, 0]), Buffer.from('1 120\r\n2 200\r\n')]));
write('response_session', Buffer.concat([Buffer.from([0xff, 0, 0]), Buffer.from('TOP\r\nSASL PLAIN SCRAM-SHA-256\r\nLOGIN-DELAY 900\r\nEXPIRE 60 USER\r\n')]));
write('response_session', Buffer.from([0x60, 5, 0, ...Buffer.from('+OK hi\r\n+OK\r\nSTLS\r\n.\r\n+OK begin\r\ninjected\r\n+OK\r\nUSER\r\n.\r\n')]));

// multiline: [chunk, body wire…]
const bodies = [
  '..leading\r\n..\r\n\r\n...\r\n\xff\xfe\x00 bytes\r\n.\r\n+OK next',
  'line\n.\n', '.hidden\r\n.\r\n', '.\rx\r\n.\r\n', '.\r\n', 'a\r\n.\r\n.\r\n',
  ...dialogues.map((d) => d.toString('latin1').split('\r\n').slice(1).join('\r\n')),
];
for (const b of bodies) for (const chunk of [1, 3, 64]) write('multiline', Buffer.concat([Buffer.from([chunk]), Buffer.from(b, 'latin1')]));

// sasl_server_messages: [selector, message…]
const sasl = [
  [0, 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096\nv=rmF9pqV8S7suAoZWja4dJRkFsKQ='],
  [1, 'r=fyko+d2lbbFgONRv9qkxdawL%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096\nv=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='],
  [0, 'e=invalid-proof'], [1, 'm=ext,r=fyko+d2lbbFgONRv9qkxdawLx,s=AA==,i=1'],
  [2, '{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}'],
  [3, '{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}'],
  [4, '<1896.697170952@postoffice.reston.mci.net>'], [5, 'Username:'],
];
for (const [sel, msg] of sasl) write('sasl_server_messages', Buffer.concat([Buffer.from([sel]), Buffer.from(msg, 'latin1')]));

// bridge_wire: control messages as the README and pop3-wasm/src/wire.rs's tests write them.
for (const m of [
  '{"type":"connect","v":1,"host":"pop.example.com","port":995,"tls":"implicit","token":"s3cret"}',
  '{"type":"connect","v":1,"host":"h","port":110,"tls":"starttls"}',
  '{"type":"connect","v":1,"host":"[::1]","port":110,"tls":"none"}',
  '{"type":"connect","v":1,"host":"0x7f.1","port":110,"tls":"none"}',
  '{"type":"connect","v":1,"host":"2130706433","port":995,"tls":"implicit","extra":[1,2,{"a":null}]}',
  '{"type":"stls"}', '{"type":"nope"}', '{}', '127.1', 'pop.example.com.',
]) write('bridge_wire', m);
// bridge_stls_reply: [read size, what the server sent after STLS…]
for (const [size, reply] of [
  [0, '+OK Begin TLS negotiation\r\n'], [1, '+OK\r\n'], [5, '+OK go ahead\r\n+OK injected\r\n'],
  [0, '-ERR TLS not available\r\n'], [3, '-ERR [SYS/TEMP] later\r\n+OK\r\n'], [7, '+OK no CR\n\x16\x03\x01'],
  [0, '+OK cut sh'], [200, `+OK ${'x'.repeat(4100)}\r\n`], [0, `-ERR ${'y'.repeat(4089)}\r\n`],
]) write('bridge_stls_reply', Buffer.concat([Buffer.from([size]), Buffer.from(reply, 'latin1')]));
// bridge_forwarded_for: [peer pick (0, 1: trusted; 2: not), header lines separated by LF…]
for (const [pick, lines] of [
  [0, '198.51.100.7'], [0, '6.6.6.6, 198.51.100.7, 10.1.1.1'], [0, '\xff, 198.51.100.7'], [0, '198.51.100.7, \xff'],
  [0, 'junk\n198.51.100.7,10.0.0.2'], [1, '[2001:db8::7]:4711, ::1'], [0, '198.51.100.7:5123'], [0, 'unknown'], [0, ''],
  [0, '10.9.9.9, 10.1.1.1'], [0, '::ffff:198.51.100.7'], [2, '198.51.100.7'], [0, '198.51.100.7,,10.0.0.2'],
]) write('bridge_forwarded_for', Buffer.concat([Buffer.from([pick]), Buffer.from(lines, 'latin1')]));
// bridge_wire, v2: end-to-end connects, good and bad.
for (const m of [
  '{"type":"connect","v":2,"host":"pop.example.com","port":995,"tls":"implicit","endToEnd":true,"token":"s3cret"}',
  '{"type":"connect","v":2,"host":"192.0.2.7","port":110,"tls":"starttls","endToEnd":true}',
  '{"type":"connect","v":2,"host":"h","port":110,"tls":"none","endToEnd":true}',
  '{"type":"connect","v":1,"host":"h","port":995,"tls":"implicit","endToEnd":true}',
  '{"type":"connect","v":2,"host":"h\\u0000\\"x","port":995,"tls":"implicit","endToEnd":false}',
]) write('bridge_wire', m);
// bridge_e2e_guard: [flags (bit 0: STLS; bits 1-2: host pop.example.com, localhost, an IP), frame size, client bytes…].
// The ClientHellos are openssl s_client's, captured once (ws-bridge/tests/data).
const data = path.join(HERE, '..', 'ws-bridge', 'tests', 'data');
const hello = fs.readFileSync(path.join(data, 'openssl-clienthello-sni.bin'));
const helloNoSni = fs.readFileSync(path.join(data, 'openssl-clienthello-nosni.bin'));
const record = (type, body) => Buffer.concat([Buffer.from([type, 3, 3, body.length >> 8, body.length & 255]), body]);
const refragment = (records, size) => {
  const parts = [];
  for (let at = 0; at < records.length; at += 5 + records.readUInt16BE(at + 3)) parts.push(records.subarray(at + 5, at + 5 + records.readUInt16BE(at + 3)));
  const handshake = Buffer.concat(parts);
  const out = [];
  for (let at = 0; at < handshake.length; at += size) out.push(record(22, handshake.subarray(at, at + size)));
  return Buffer.concat(out);
};
const app = record(23, Buffer.alloc(40, 0xab));
for (const [flags, size, bytes] of [
  [0, 0, hello], [0, 1, Buffer.concat([hello, record(20, Buffer.from([1])), app])], [0, 7, refragment(hello, 50)],
  [4, 0, helloNoSni], [0, 0, helloNoSni], [2, 9, hello], [4, 3, hello],
  [1, 6, Buffer.concat([Buffer.from('CAPA\r\nstls\r\n'), hello, app])], [5, 1, Buffer.concat([Buffer.from('STLS\r\n'), helloNoSni])],
  [0, 0, Buffer.from('USER bob\r\nPASS secret\r\n')], [1, 3, Buffer.from('CAPA\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n')],
  [1, 0, Buffer.from('STLS\r\nPASS secret\r\n')], [0, 0, Buffer.concat([hello, Buffer.from('QUIT\r\n')])],
  [0, 0, Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10])],
]) write('bridge_e2e_guard', Buffer.concat([Buffer.from([flags, size]), bytes]));
// driver_input: [flags, chunk, server bytes…] (see the target for the flags):
// a server that answers the whole sequence, in each TLS mode, in lockstep
// and pipelined, and one STLS session that gets injected bytes.
const session = (stls) =>
  Buffer.from(
    [
      '+OK ready',
      '+OK', 'USER', 'SASL PLAIN', 'PIPELINING', 'TOP', 'UIDL', ...(stls ? ['STLS'] : []), '.',
      ...(stls ? ['+OK begin TLS', '+OK', 'USER', 'PIPELINING', '.'] : []),
      '+OK', '+OK logged in', '+OK', 'PIPELINING', 'TOP', '.',
      '+OK 2 messages', '1 120', '2 200', '.', '+OK', '1 uid-1', '2 uid-2', '.',
      '+OK', 'Subject: one', '', '.', '+OK', 'Subject: two', '', '.',
      '+OK 120 octets', 'From: a@example.org', '', '..dotted', 'body', '.',
      '-ERR unknown command',
    ].map((l) => `${l}\r\n`).join(''),
    'latin1',
  );
for (const [flags, chunk] of [[0x00, 63], [0x01, 7], [0x02, 1], [0x06, 20], [0x81, 63], [0x52, 3], [0x48, 63]]) {
  write('driver_input', Buffer.concat([Buffer.from([flags, chunk]), session((flags & 3) === 1)]));
}
console.log(`seeds written from ${dialogues.length} transcript dialogues`);
