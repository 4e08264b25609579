// Hostile POP3 servers (scripted, on loopback, through the bridge): every
// case ends in the documented Pop3Error code (a code other than TIMEOUT
// came before the client's own deadline), the client's memory stays
// bounded, and the session is dropped without QUIT.
// The cases that must *succeed* under hostile framing (a terminator split at
// every byte, NULs and invalid UTF-8) check the bytes instead.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Pop3Client, Pop3Error } from 'pop3-wasm';
// The same module instance the package entry loaded: its internal export.
import { wasmMemoryBytes } from '../../pop3-wasm/pkg/pop3_wasm.js';
import { startScripted, preamble } from '../fixtures/scripted.mjs';
import { startBridge } from '../fixtures/bridge.mjs';
import { runCleanups } from '../fixtures/cleanup.mjs';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cleanups = [];
after(() => runCleanups(cleanups));

// A scripted server (Nagle off: small writes go out as they are) and, via
// the bridge, a bridge allowing it; direct: the Node transport, no bridge.
async function scriptedVia(via, script) {
  const srv = await startScripted(async (c) => {
    c.socket.setNoDelay(true);
    return script(c);
  });
  cleanups.push(() => srv.stop());
  let bridge = null;
  if (via === 'bridge') {
    bridge = await startBridge({ allow: [`127.0.0.1:${srv.port}`] });
    cleanups.push(() => bridge.stop());
  }
  const connect = (extra = {}) =>
    Pop3Client.connect({
      ...(bridge ? { bridge: bridge.url } : {}),
      host: '127.0.0.1',
      port: srv.port,
      tls: 'none',
      allowInsecureAuth: true,
      timeoutMs: 3000,
      ...extra,
    });
  return { srv, bridge, connect };
}

const MiB = 1024 * 1024;
/** What the Node process itself may keep on top (socket buffers, JIT code). */
const RSS_SLACK = 32 * MiB;

/** Memory where it is measured, after a forced GC: the process (RSS) and the wasm module's linear memory. */
function memory() {
  gc();
  gc();
  return { rss: process.memoryUsage().rss, wasm: wasmMemoryBytes() };
}

/**
 * Runs `body`, which must reject with Pop3Error `code`; then checks that no
 * QUIT reached the server and that neither the wasm memory grew by more
 * than `maxGrowth` bytes nor the process by more than that plus RSS_SLACK.
 */
async function endsWith(srv, code, body, { maxGrowth = 16 * MiB } = {}) {
  const before = memory();
  const e = await body().then(
    () => assert.fail(`expected ${code}, the call succeeded`),
    (e) => e,
  );
  assert.ok(e instanceof Pop3Error, String(e?.stack ?? e));
  assert.equal(e.code, code, e.message);
  await sleep(100);
  assert.ok(!srv.received.includes('QUIT'), `QUIT was sent: ${srv.received.join(' | ')}`);
  const after = memory();
  const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;
  assert.ok(after.wasm - before.wasm <= maxGrowth, `the wasm memory grew by ${mib(after.wasm - before.wasm)}`);
  assert.ok(after.rss - before.rss <= maxGrowth + RSS_SLACK, `RSS grew by ${mib(after.rss - before.rss)}`);
  return e;
}

/** Greeting + CAPA + USER/PASS + the CAPA after login. */
async function loggedIn(c, caps = ['USER']) {
  await preamble(c, { capa: caps });
  assert.equal(await c.line(), 'USER u');
  await c.send('+OK\r\n');
  assert.equal(await c.line(), 'PASS p');
  await c.send('+OK\r\n');
  assert.equal(await c.line(), 'CAPA');
  await c.send(`+OK\r\n${caps.map((x) => `${x}\r\n`).join('')}.\r\n`);
}

async function login(c) {
  await c.auth('USER', { username: 'u', password: 'p' });
  return c;
}

function cases(via) {
const scripted = (script) => scriptedVia(via, script);

test('gibberish instead of a greeting is PROTOCOL_ERROR', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await c.send('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    await c.line();
  });
  const e = await endsWith(srv, 'PROTOCOL_ERROR', () => connect());
  assert.match(e.message, /greeting/);
});

test('an -ERR greeting is SERVER_ERROR with its response code', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await c.send('-ERR [SYS/TEMP] too busy, come back later\r\n');
    await c.line();
  });
  const e = await endsWith(srv, 'SERVER_ERROR', () => connect());
  assert.equal(e.respCode, 'SYS/TEMP');
  assert.equal(e.serverText, 'too busy, come back later');
});

test('a greeting trickling forever without CRLF is TIMEOUT on the greeting deadline', async () => {
  let sent = 0;
  const { srv, connect } = await scripted(async (c) => {
    await c.send('+OK ');
    while (!c.socket.destroyed && sent < 2000) {
      await c.send('x');
      sent++;
      await sleep(5);
    }
  });
  const e = await endsWith(srv, 'TIMEOUT', () => connect({ timeouts: { greeting: 800 } }));
  // The greeting's own deadline, not the 3 s of every other step.
  assert.match(e.message, /^no answer to the server greeting within 800 ms/);
  assert.ok(sent > 20, `only ${sent} bytes trickled`);
});

test('an answer trickling forever without CRLF is TIMEOUT on the command deadline', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c);
    assert.equal(await c.line(), 'STAT');
    await c.send('+OK 1');
    for (let i = 0; i < 2000 && !c.socket.destroyed; i++) {
      await c.send('0');
      await sleep(5);
    }
  });
  const c = await login(await connect({ timeouts: { command: 800 } }));
  const e = await endsWith(srv, 'TIMEOUT', () => c.stat());
  assert.match(e.message, /^no answer to STAT within 800 ms/);
  // Sticky: the session is gone.
  await assert.rejects(c.noop(), (e) => e instanceof Pop3Error);
});

test('a 10 MB status line is PROTOCOL_ERROR, memory bounded', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c);
    assert.equal(await c.line(), 'STAT');
    await c.send('+OK ');
    const block = Buffer.alloc(64 * 1024, 0x41);
    for (let i = 0; i < 160 && !c.socket.destroyed; i++) await c.send(block);
    await c.send('\r\n');
  });
  const c = await login(await connect());
  const e = await endsWith(srv, 'PROTOCOL_ERROR', () => c.stat(), { maxGrowth: 8 * MiB });
  assert.match(e.message, /longer than/);
  assert.ok(e.message.length < 1000, 'the error does not carry the line');
});

test('a 10 MB greeting line is PROTOCOL_ERROR, memory bounded', async () => {
  const { srv, connect } = await scripted(async (c) => {
    const block = Buffer.alloc(64 * 1024, 0x42);
    await c.send('+OK ');
    for (let i = 0; i < 160 && !c.socket.destroyed; i++) await c.send(block);
    await c.send('\r\n');
  });
  await endsWith(srv, 'PROTOCOL_ERROR', () => connect(), { maxGrowth: 8 * MiB });
});

test('a multi-line answer cut before its terminator is CONNECTION_CLOSED (retr and retrStream)', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c);
    const l = await c.line();
    assert.match(l, /^RETR [12]$/);
    await c.send('+OK 300 octets\r\nFrom: a@example.org\r\n\r\nfirst line\r\n..stuffed\r\n.');
    await sleep(50);
    c.close();
  });
  const c = await login(await connect());
  const e = await endsWith(srv, 'CONNECTION_CLOSED', () => c.retr(1));
  assert.match(e.message, /middle of a multi-line answer/);

  const c2 = await login(await connect());
  const stream = await c2.retrStream(2);
  await endsWith(srv, 'CONNECTION_CLOSED', async () => {
    for await (const chunk of stream) void chunk;
  });
});

test('a terminator split at every byte boundary still ends the body byte-exactly', async () => {
  // Body, terminator and the next answer, each split into two writes at
  // every position (plus one run of one byte per write).
  const wire = Buffer.from('+OK 20 octets\r\n..dot\r\nx\r\n\r\n.\r\n+OK noop done\r\n', 'latin1');
  const expected = Buffer.from('.dot\r\nx\r\n\r\n', 'latin1');
  const splits = [];
  for (let k = 1; k < wire.length; k++) splits.push([k]);
  splits.push([...Array(wire.length - 1).keys()].map((i) => i + 1)); // every byte alone
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c, ['USER', 'PIPELINING']);
    for (const cuts of splits) {
      const l = await c.line();
      assert.match(l, /^RETR \d+$/);
      assert.equal(await c.line(), 'NOOP');
      let from = 0;
      for (const to of [...cuts, wire.length]) {
        await c.send(wire.subarray(from, to));
        from = to;
        await sleep(2);
      }
    }
    await c.line();
  });
  const c = await login(await connect({ timeoutMs: 10000 }));
  assert.equal(c.pipelining, true);
  for (let i = 0; i < splits.length; i++) {
    const [body, noop] = await Promise.all([c.retr(i + 1), c.noop()]);
    assert.deepEqual(Buffer.from(body), expected, `split ${splits[i].join(',')}`);
    assert.equal(noop, 'noop done');
  }
  c.close();
  assert.deepEqual(srv.errors, []);
});

test('NUL bytes: kept in bodies, tolerated inside status text, refused before a status', async () => {
  const body = Buffer.from('Subject: \0nul\r\n\r\n\0\0\0\r\n..\0\r\n', 'latin1');
  const { srv, connect } = await scripted(async (c) => {
    await c.send('+OK ready\0 <1.2@host>\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\n.\r\n');
    assert.equal(await c.line(), 'USER u');
    await c.send('+OK \0\r\n');
    assert.equal(await c.line(), 'PASS p');
    await c.send('+OK\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\n.\r\n');
    assert.equal(await c.line(), 'RETR 1');
    await c.send(Buffer.concat([Buffer.from('+OK\r\n'), body, Buffer.from('.\r\n')]));
    assert.equal(await c.line(), 'NOOP');
    await c.send('\0+OK\r\n');
    await c.line();
  });
  const c = await login(await connect());
  assert.equal(c.greeting, 'ready\0 <1.2@host>');
  assert.deepEqual(Buffer.from(await c.retr(1)), Buffer.from('Subject: \0nul\r\n\r\n\0\0\0\r\n.\0\r\n', 'latin1'));
  await endsWith(srv, 'PROTOCOL_ERROR', () => c.noop());
});

test('invalid UTF-8 in status lines is shown lossily, never fatal', async () => {
  const lines = [];
  const { srv, connect } = await scripted(async (c) => {
    await c.send(Buffer.from('+OK \xff\xfe ready \xc3\x28\r\n', 'latin1'));
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\n.\r\n');
    assert.equal(await c.line(), 'USER u');
    await c.send(Buffer.from('+OK \xe2\x82\r\n', 'latin1'));
    assert.equal(await c.line(), 'PASS p');
    await c.send('+OK\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\n.\r\n');
    assert.equal(await c.line(), 'DELE 1');
    await c.send(Buffer.from('-ERR [SYS/PERM] \xc0\xaf no\r\n', 'latin1'));
    assert.equal(await c.line(), 'NOOP');
    await c.send(Buffer.from('+OK \xed\xa0\x80 surrogate\r\n', 'latin1'));
    await c.line();
  });
  const c = await login(await connect({ onTranscript: (l) => lines.push(l) }));
  assert.match(c.greeting, /\uFFFD/);
  const e = await c.dele(1).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(e.code, 'SERVER_ERROR');
  assert.equal(e.respCode, 'SYS/PERM');
  assert.match(e.serverText, /\uFFFD/);
  assert.match(await c.noop(), /surrogate/);
  assert.ok(lines.some((l) => l.dir === 'S' && /\uFFFD/.test(l.line)));
  c.close();
  await sleep(50);
  assert.ok(!srv.received.includes('QUIT'));
});

test('"+OK" with nothing after: a greeting is fine, a STAT or LIST n answer is PROTOCOL_ERROR', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await c.send('+OK\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\n.\r\n');
    assert.equal(await c.line(), 'USER u');
    await c.send('+OK\r\n');
    assert.equal(await c.line(), 'PASS p');
    await c.send('+OK\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\n.\r\n');
    for (;;) {
      const l = await c.line();
      if (l === null) break;
      await c.send('+OK\r\n');
    }
  });
  const c = await login(await connect());
  assert.equal(c.greeting, '');
  const e1 = await c.stat().then(() => assert.fail('resolved'), (e) => e);
  assert.equal(e1.code, 'PROTOCOL_ERROR');
  const e2 = await c.list(1).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(e2.code, 'PROTOCOL_ERROR');
  const e3 = await c.uidl(1).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(e3.code, 'PROTOCOL_ERROR');
  c.close();
  await sleep(50);
  assert.ok(!srv.received.includes('QUIT'));
});

test('too many replies (one more than asked) is PROTOCOL_ERROR and ends the session', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c, ['USER', 'PIPELINING']);
    assert.equal(await c.line(), 'NOOP');
    await c.send('+OK\r\n+OK one too many\r\n');
    await c.line();
  });
  const c = await login(await connect());
  await c.noop();
  await sleep(100);
  await endsWith(srv, 'PROTOCOL_ERROR', () => c.noop());
});

test('a multi-line answer to a single-line command is PROTOCOL_ERROR', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c, ['USER', 'PIPELINING']);
    assert.equal(await c.line(), 'STAT');
    await c.send('+OK 2 320\r\n1 120\r\n2 200\r\n.\r\n');
    await c.line();
  });
  const c = await login(await connect());
  assert.deepEqual(await c.stat(), { count: 2, size: 320 });
  await sleep(100);
  await endsWith(srv, 'PROTOCOL_ERROR', () => c.noop());
});

test('pipelined replies out of order are PROTOCOL_ERROR where they cannot fit, no QUIT', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c, ['USER', 'PIPELINING']);
    assert.equal(await c.line(), 'LIST 1');
    assert.equal(await c.line(), 'UIDL 1');
    assert.equal(await c.line(), 'RETR 1');
    // UIDL's answer first, then LIST's, then a body where RETR's status belongs.
    await c.send('+OK 1 whqtswO00WBw418f9t5JxYwZ\r\n+OK 1 120\r\nSubject: x\r\n\r\nbody\r\n.\r\n');
    await c.line();
  });
  const c = await login(await connect());
  const [list, uidl, retr] = await Promise.allSettled([c.list(1), c.uidl(1), c.retr(1)]);
  assert.equal(list.status, 'rejected');
  assert.equal(list.reason.code, 'PROTOCOL_ERROR', list.reason.message);
  // The body line where a status must be ends the session.
  assert.equal(retr.status, 'rejected');
  assert.equal(retr.reason.code, 'PROTOCOL_ERROR', retr.reason.message);
  void uidl;
  await endsWith(srv, 'PROTOCOL_ERROR', () => c.noop());
});

test('a server that closes right after the greeting is CONNECTION_CLOSED', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await c.send('+OK ready\r\n');
    c.close();
  });
  await endsWith(srv, 'CONNECTION_CLOSED', () => connect());
});

test('a server that resets the connection after login is CONNECTION_CLOSED for every pending call', async () => {
  const { srv, connect } = await scripted(async (c) => {
    await loggedIn(c, ['USER', 'PIPELINING']);
    assert.equal(await c.line(), 'DELE 1');
    await c.send('+OK marked\r\n');
    await c.line();
    c.destroy();
  });
  const c = await login(await connect());
  await c.dele(1);
  // Every one of them, not just the first to reject.
  const pending = [c.stat(), c.noop(), c.uidl()];
  const all = Promise.allSettled(pending);
  await endsWith(srv, 'CONNECTION_CLOSED', () => pending[0]);
  const settled = await all;
  assert.deepEqual(settled.map((r) => [r.status, r.reason?.code]), Array(3).fill(['rejected', 'CONNECTION_CLOSED']));
  assert.ok(settled.every((r) => r.reason instanceof Pop3Error));
  await assert.rejects(c.noop(), { code: 'CONNECTION_CLOSED' });
});
}

for (const via of ['bridge', 'direct']) describe(`via ${via}`, () => cases(via));
