// `ws-bridge demo`: the demo POP3 server on its own (raw sockets, as a
// postmaster with nc/telnet sees it) and through the bridge with the
// package's Node entry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Pop3Client } from 'pop3-wasm';
import { startDemo } from '../fixtures/demo.mjs';
import { RawPop3 } from '../fixtures/rawpop3.mjs';

let demo;

before(async () => {
  demo = await startDemo();
});

after(async () => {
  await demo?.stop();
});

/** A line-by-line telnet: send a line, read one reply line. */
async function telnet(port) {
  const sock = net.connect({ host: '127.0.0.1', port });
  let buf = '';
  const waiting = [];
  sock.setEncoding('latin1');
  sock.on('data', (d) => {
    buf += d;
    let i;
    while (waiting.length && (i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      waiting.shift()(line);
    }
  });
  const line = () => new Promise((resolve) => {
    const i = buf.indexOf('\r\n');
    if (i >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 2);
      resolve(l);
    } else waiting.push(resolve);
  });
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  return {
    line,
    async say(text) {
      sock.write(`${text}\r\n`);
      return line();
    },
    close: () => sock.destroy(),
  };
}

test('the demo prints the URL, the POP3 ports and the user, and serves demo.json', () => {
  const out = demo.stdout();
  assert.match(out, /^ws-bridge listening on 127\.0\.0\.1:\d+$/m);
  assert.match(out, new RegExp(`mailbox checker: http://127\\.0\\.0\\.1:${demo.port}/`));
  assert.match(out, new RegExp(`127\\.0\\.0\\.1:${demo.info.ports.pop3} \\(plain, STLS\\)`));
  assert.match(out, new RegExp(`127\\.0\\.0\\.1:${demo.info.ports.pop3s} \\(implicit TLS\\)`));
  assert.match(out, /user: +demo +password: demo/);
  assert.deepEqual(
    { host: demo.info.host, port: demo.info.port, tls: demo.info.tls, user: demo.info.user, password: demo.info.password },
    { host: '127.0.0.1', port: demo.info.ports.pop3s, tls: 'implicit', user: 'demo', password: 'demo' },
  );
});

test('nc to the plain port shows the seed page dialogue: banner, USER, PASS, LIST, QUIT', async () => {
  const t = await telnet(demo.info.ports.pop3);
  assert.match(await t.line(), /^\+OK POP3 localhost ws-bridge-demo server ready <[^>]+@localhost>$/);
  assert.equal(await t.say('USER demo'), '+OK User name accepted, password please');
  assert.equal(await t.say('PASS demo'), '+OK Mailbox open, 15 messages');
  assert.match(await t.say('LIST'), /^\+OK 15 messages \(\d+ octets\)$/);
  const sizes = [];
  for (let l = await t.line(); l !== '.'; l = await t.line()) sizes.push(l);
  assert.equal(sizes.length, 15);
  assert.match(await t.say('QUIT'), /^\+OK POP3 server signing off/);
  t.close();
});

test('the demo server stuffs dots on the wire, and RETR matches LIST and TOP', async () => {
  const c = await RawPop3.connect({ port: demo.info.ports.pop3 });
  await c.command('USER demo');
  assert.match(await c.command('PASS demo'), /^\+OK/);
  const list = (await c.multi('LIST')).lines.map((l) => l.split(' ').map(Number));
  const dots = list.find(([n]) => n === 14);
  const r = await c.multi('RETR 14');
  assert.equal(r.body.length, dots[1]);
  assert.match(r.raw.toString('latin1'), /\r\n\.\.forward\r\n\.\.procmailrc\r\n\.\.\.two dots\r\n\.\.\r\nThe line above/);
  assert.match(r.body.toString('latin1'), /\r\n\.forward\r\n\.procmailrc\r\n\.\.two dots\r\n\.\r\n/);
  const top = await c.multi('TOP 14 0');
  assert.ok(r.body.subarray(0, top.body.length).equals(top.body));
  assert.ok(top.body.toString('latin1').endsWith('\r\n\r\n'));
  const large = list.reduce((a, b) => (b[1] > a[1] ? b : a));
  assert.ok(large[1] > 1_000_000 && large[1] < 2_000_000, `largest message is ${large[1]} octets`);
  assert.equal((await c.multi(`RETR ${large[0]}`)).body.length, large[1]);
  assert.match(await c.command('RETR 99'), /^-ERR/);
  await c.quit();
});

test('through the bridge: every mechanism logs in, on implicit TLS and after STLS', async () => {
  const { host, ports, user, password } = demo.info;
  for (const [port, tls] of [[ports.pop3s, 'implicit'], [ports.pop3, 'starttls']]) {
    for (const mech of ['SCRAM-SHA-256', 'PLAIN', 'USER', 'APOP']) {
      const c = await Pop3Client.connect({ bridge: demo.url, host, port, tls });
      assert.equal(c.tls?.certificate.subject, 'CN=localhost, O=pop3-wasm demo');
      assert.equal(await c.auth(mech, { username: user, password }), mech, `${mech} over ${tls}`);
      assert.equal((await c.stat()).count, 15);
      await c.quit();
    }
    const c = await Pop3Client.connect({ bridge: demo.url, host, port, tls });
    assert.equal(await c.login(user, password), 'SCRAM-SHA-256');
    c.close();
  }
});

test('through the bridge: a wrong password is AUTH_FAILED with [AUTH], and other targets are refused', async () => {
  const { host, port } = demo.info;
  const c = await Pop3Client.connect({ bridge: demo.url, host, port });
  await assert.rejects(c.login('demo', 'wrong'), (e) => e.code === 'AUTH_FAILED' && e.respCode === 'AUTH');
  c.close();
  await assert.rejects(Pop3Client.connect({ bridge: demo.url, host, port: 22, tls: 'none' }), (e) => e.code === 'BRIDGE_REJECTED');
  await assert.rejects(Pop3Client.connect({ bridge: demo.url, host: 'localhost', port }), (e) => e.code === 'BRIDGE_REJECTED');
});

test('deletions are real for the run: DELE + close keeps, DELE + QUIT removes', async () => {
  const { host, port, user, password } = demo.info;
  const open = async () => {
    const c = await Pop3Client.connect({ bridge: demo.url, host, port });
    await c.login(user, password);
    return c;
  };
  let c = await open();
  const before = await c.uidl();
  await c.dele(2);
  c.close();
  c = await open();
  assert.deepEqual(await c.uidl(), before);
  await c.dele(2);
  await c.quit();
  c = await open();
  const after = (await c.uidl()).map((u) => u.uid);
  assert.deepEqual(after, before.filter((u) => u.id !== 2).map((u) => u.uid));
  await c.quit();
});
