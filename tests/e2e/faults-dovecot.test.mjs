// Faults with the real Dovecot: the bridge killed in the middle of a RETR,
// the server's side of the connection cut mid-answer (a TCP proxy we
// control, and the Dovecot pop3 process killed), the client vanishing after
// DELE (WebSocket dropped without a close frame; a child process killed).
// Every time: CONNECTION_CLOSED (or the bridge closes the upstream) and no
// message is deleted, checked by logging in again. A restarted bridge on the
// same port serves the same client code again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Pop3Client, Pop3Error } from 'pop3-wasm';
import WebSocket from 'ws';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridge, startBridgeFor, REPO_ROOT } from '../fixtures/bridge.mjs';
import { startRelay } from '../fixtures/relay.mjs';
import { runCleanups } from '../fixtures/cleanup.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dc;
const cleanups = [];
// A message too big for the socket buffers on the way (loopback buffers can
// hold alice's whole 5 MB message), so that a fault is always mid-answer.
const HUGE_BYTES = 48 * 1024 * 1024;
let huge; // its message number; alice has dc.users.alice.count + 1 messages
let aliceCount;

before(async () => {
  dc = await startDovecot();
  const maildir = path.join(dc.dir, 'home', 'alice', 'Maildir');
  const line = Buffer.from(`${'x'.repeat(76)}\r\n`);
  const body = Buffer.concat([Buffer.from('Subject: huge\r\n\r\n'), Buffer.alloc(HUGE_BYTES - (HUGE_BYTES % line.length), line)]);
  const file = path.join(maildir, 'new', '1999999999.M1P1.huge');
  fs.writeFileSync(file, body);
  const { uid, gid } = fs.statSync(path.join(maildir, 'cur'));
  fs.chownSync(file, uid, gid);
  huge = dc.users.alice.count + 1;
  aliceCount = dc.users.alice.count + 1;
});
after(async () => {
  try {
    await runCleanups(cleanups);
  } finally {
    await dc?.stop();
  }
});

async function closedWith(promise, code = 'CONNECTION_CLOSED') {
  const e = await promise.then(() => assert.fail(`expected ${code}`), (e) => e);
  assert.ok(e instanceof Pop3Error, String(e?.stack ?? e));
  assert.equal(e.code, code, e.message);
  return e;
}

/** How many messages `user` has, from a fresh session (QUIT: nothing marked). */
async function countOf(bridgeUrl, user, port = dc.ports.pop3s) {
  const c = await Pop3Client.connect({ bridge: bridgeUrl, host: dc.host, port, tls: 'implicit', timeoutMs: 10000 });
  await c.login(user, dc.users[user].password);
  const { count } = await c.stat();
  await c.quit();
  return count;
}

/** Waits until Dovecot logged that `user`'s session ended, returns the line. */
async function disconnected(user, since, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = dc.log().slice(since).split('\n');
    const hit = lines.find((l) => l.includes(`pop3(${user})`) && /Disconnected|Connection closed|Killed/.test(l));
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no disconnect logged for ${user}:\n${dc.log().slice(since)}`);
    await sleep(50);
  }
}

/** Reads `reader` slowly until it fails; resolves with the error (fails the test if it ends normally). */
function failureOf(reader) {
  return (async () => {
    for (;;) {
      await sleep(5);
      if ((await reader.read()).done) return;
    }
  })().then(() => assert.fail('the stream ended normally'), (e) => e);
}

test('the bridge killed in the middle of a RETR: CONNECTION_CLOSED, the DELE before it is not committed; a restarted bridge serves the same code', async () => {
  let bridge = await startBridgeFor(dc);
  const port = bridge.port;
  const url = bridge.url;
  // The "same client code": one function, the same options, before and after.
  const session = async () => {
    const c = await Pop3Client.connect({ bridge: url, host: dc.host, port: dc.ports.pop3s, tls: 'implicit', timeoutMs: 10000 });
    await c.login('alice', dc.users.alice.password);
    return c;
  };
  const c = await session();
  assert.equal((await c.stat()).count, aliceCount);
  await c.dele(1);
  const stream = await c.retrStream(huge);
  const reader = stream.getReader();
  let got = 0;
  const first = await reader.read();
  got += first.value.byteLength;
  process.kill(bridge.pid, 'SIGKILL');
  await bridge.exited;
  const e = await (async () => {
    for (;;) {
      await sleep(5); // a slow reader: the bridge dies with most of the body unsent
      const { value, done } = await reader.read();
      if (done) return null;
      got += value.byteLength;
    }
  })().then(() => assert.fail('the stream ended normally'), (e) => e);
  assert.equal(e.code, 'CONNECTION_CLOSED', e.message);
  assert.ok(got < HUGE_BYTES, `only part of the body arrived (${got} bytes)`);
  await closedWith(c.noop());

  // Same port, same code.
  bridge = await startBridge({
    listen: `127.0.0.1:${port}`,
    allow: [`${dc.host}:${dc.ports.pop3},${dc.ports.pop3s}`],
    caFiles: [dc.caFile],
  });
  cleanups.push(() => bridge.stop());
  const again = await session();
  assert.equal((await again.stat()).count, aliceCount, 'the DELE was not committed');
  assert.deepEqual(Buffer.from(await again.retr(1)), dc.expected('alice', 1));
  await again.quit();
});

test('the server side cut mid-answer (a proxy between bridge and Dovecot): CONNECTION_CLOSED, nothing deleted', async () => {
  const proxy = await startRelay(dc.ports.pop3);
  cleanups.push(() => proxy.stop());
  const bridge = await startBridge({ allow: [`127.0.0.1:${proxy.port}`, `${dc.host}:${dc.ports.pop3s}`], caFiles: [dc.caFile] });
  cleanups.push(() => bridge.stop());
  const c = await Pop3Client.connect({ bridge: bridge.url, host: '127.0.0.1', port: proxy.port, tls: 'starttls', timeoutMs: 10000 });
  await c.login('alice', dc.users.alice.password);
  await c.dele(2);
  const stream = await c.retrStream(huge);
  const reader = stream.getReader();
  await reader.read();
  proxy.cut();
  const e = await failureOf(reader);
  assert.equal(e.code, 'CONNECTION_CLOSED', e.message);
  await closedWith(c.noop());
  assert.equal(await countOf(bridge.url, 'alice'), aliceCount);
});

/** The PIDs of this Dovecot instance's pop3 processes (children of its master). */
function pop3Pids() {
  const master = fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .find((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dc.configFile);
      } catch {
        return false;
      }
    });
  assert.ok(master, 'the Dovecot master is running');
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
        const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
        return ppid === master && fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'pop3';
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('the Dovecot pop3 process killed mid-RETR: CONNECTION_CLOSED, nothing deleted', async () => {
  const bridge = await startBridgeFor(dc);
  cleanups.push(() => bridge.stop());
  const before = new Set(pop3Pids());
  const c = await Pop3Client.connect({ bridge: bridge.url, host: dc.host, port: dc.ports.pop3s, tls: 'implicit', timeoutMs: 10000 });
  await c.login('alice', dc.users.alice.password);
  await c.dele(3);
  const mine = pop3Pids().filter((p) => !before.has(p));
  assert.equal(mine.length, 1, `one new pop3 process (${mine})`);
  const stream = await c.retrStream(huge);
  const reader = stream.getReader();
  await reader.read();
  process.kill(mine[0], 'SIGKILL');
  const e = await failureOf(reader);
  assert.equal(e.code, 'CONNECTION_CLOSED', e.message);
  assert.equal(await countOf(bridge.url, 'alice'), aliceCount);
});

test('the client vanishes after DELE (WebSocket dropped, no close frame): the bridge closes the upstream, nothing deleted', async () => {
  const bridge = await startBridgeFor(dc);
  cleanups.push(() => bridge.stop());
  const since = dc.log().length;
  // A raw WebSocket speaking the wire format, so it can vanish mid-session.
  const ws = new WebSocket(bridge.url, 'pop3-bridge.v1');
  const incoming = [];
  let wake = () => {};
  ws.on('message', (d, isBinary) => {
    incoming.push(isBinary ? Buffer.from(d).toString('latin1') : `CTRL ${d}`);
    wake();
  });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  const until = async (re) => {
    const deadline = Date.now() + 5000;
    while (!re.test(incoming.join(''))) {
      if (Date.now() > deadline) throw new Error(`waited for ${re}: ${incoming.join('')}`);
      await new Promise((r) => ((wake = r), setTimeout(r, 50)));
    }
  };
  ws.send(JSON.stringify({ type: 'connect', v: 1, host: dc.host, port: dc.ports.pop3s, tls: 'implicit' }));
  await until(/\+OK Dovecot/);
  ws.send(Buffer.from(`USER bob\r\nPASS ${dc.users.bob.password}\r\n`));
  await until(/Logged in/);
  ws.send(Buffer.from('DELE 1\r\nDELE 2\r\n'));
  await until(/deleted[\s\S]*deleted/);
  ws.terminate(); // TCP destroyed: no close frame, no QUIT
  const line = await disconnected('bob', since);
  assert.ok(!/QUIT|Logged out/.test(line) || /del=0/.test(line), line);
  assert.equal(await countOf(bridge.url, 'bob'), dc.users.bob.count);
});

test('the client process killed after DELE: the bridge closes the upstream, nothing deleted', async () => {
  const bridge = await startBridgeFor(dc);
  cleanups.push(() => bridge.stop());
  const since = dc.log().length;
  const script = `
    import { Pop3Client } from 'pop3-wasm';
    const c = await Pop3Client.connect(${JSON.stringify({ bridge: bridge.url, host: dc.host, port: dc.ports.pop3s, tls: 'implicit', timeoutMs: 10000 })});
    await c.login('bob', ${JSON.stringify(dc.users.bob.password)});
    await c.dele(1);
    await c.dele(3);
    console.log('deleted');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => child.kill('SIGKILL'));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('deleted') && resolve());
    child.once('exit', (code) => reject(new Error(`the client exited early (${code})`)));
  });
  child.kill('SIGKILL');
  await disconnected('bob', since);
  assert.equal(await countOf(bridge.url, 'bob'), dc.users.bob.count);
});
