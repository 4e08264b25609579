// The client against scripted servers, for what Dovecot will not do:
// OAuth mechanisms, servers without PIPELINING, bare continuations, a
// SCRAM server that cannot prove itself, silence, a 50 MB body.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Pop3Client } from 'pop3-wasm';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
import { startScripted, preamble } from '../fixtures/scripted.mjs';
import { startBridge } from '../fixtures/bridge.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';
import { runCleanups } from '../fixtures/cleanup.mjs';

const cleanups = [];
after(() => runCleanups(cleanups));

const b64 = (s) => Buffer.from(s, 'latin1').toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64').toString('latin1');

/**
 * A scripted server and, `via` the bridge, a bridge allowing it (direct:
 * none); returns connect().
 */
async function scriptedVia(via, script) {
  const srv = await startScripted(script);
  const bridge = via === 'bridge' ? await startBridge({ allow: [`127.0.0.1:${srv.port}`] }) : null;
  cleanups.push(() => bridge?.stop(), () => srv.stop());
  const route = bridge ? { bridge: bridge.url } : {};
  const connect = (extra = {}) =>
    Pop3Client.connect({ ...route, host: '127.0.0.1', port: srv.port, tls: 'none', allowInsecureAuth: true, timeoutMs: 5000, ...extra });
  return { srv, bridge, connect };
}

/** Answers the CAPA the client asks after a login. */
async function recapa(c, caps = ['USER']) {
  assert.equal(await c.line(), 'CAPA');
  await c.send(`+OK\r\n${caps.map((x) => `${x}\r\n`).join('')}.\r\n`);
}

/** The USER/PASS login many scripts share, then the CAPA asked after it. */
async function userPass(c, caps = ['USER']) {
  assert.equal(await c.line(), 'USER u');
  await c.send('+OK\r\n');
  assert.equal(await c.line(), 'PASS p');
  await c.send('+OK\r\n');
  await recapa(c, caps);
}


/** Every scenario through the bridge, then direct. */
function suite(via) {
  const scripted = (script) => scriptedVia(via, script);

  test('XOAUTH2: two-step by default, byte-exact, success', async () => {
    const token = 'ya29.' + 'x'.repeat(4096);
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['SASL XOAUTH2'] });
      assert.equal(await c.line(), 'AUTH XOAUTH2');
      await c.send('+ \r\n');
      assert.equal(await c.line(), b64(`user=me@example.com\x01auth=Bearer ${token}\x01\x01`));
      await c.send('+OK Welcome\r\n');
      await recapa(c);
      assert.equal(await c.line(), 'STAT');
      await c.send('+OK 0 0\r\n');
    });
    const c = await connect();
    assert.equal(await c.auth('XOAUTH2', { username: 'me@example.com', token }), 'XOAUTH2');
    assert.deepEqual(await c.stat(), { count: 0, size: 0 });
    c.close();
    assert.deepEqual(srv.errors, []);
  });

  test('XOAUTH2: the error JSON is answered with an empty line and reported', async () => {
    const json = '{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}';
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['SASL XOAUTH2'] });
      assert.equal(await c.line(), 'AUTH XOAUTH2');
      await c.send('+ \r\n');
      await c.line();
      await c.send(`+ ${b64(json)}\r\n`);
      assert.equal(await c.line(), '');
      await c.send('-ERR [AUTH] Invalid credentials\r\n');
    });
    const c = await connect();
    const e = await rejectsWith(c.auth('XOAUTH2', { username: 'me', token: 'expired' }), 'AUTH_FAILED');
    assert.equal(e.respCode, 'AUTH');
    assert.ok(e.message.includes('"status":"401"'), e.message);
    assert.ok(!e.message.includes('expired'), 'the token never shows');
    c.close();
    assert.deepEqual(srv.errors, []);
  });

  test('OAUTHBEARER: success inline, failure with the \\x01 reply', async () => {
    let round = 0;
    const { srv, connect, bridge } = await scripted(async (c) => {
      round++;
      await preamble(c, { capa: ['SASL OAUTHBEARER'] });
      const line = await c.line();
      if (round === 1) {
        const ir = `n,a=me,\x01host=127.0.0.1\x01port=${srv.port}\x01auth=Bearer short\x01\x01`;
        assert.equal(line, `AUTH OAUTHBEARER ${b64(ir)}`);
        await c.send('+OK\r\n');
        await recapa(c);
      } else {
        assert.equal(line, 'AUTH OAUTHBEARER', '4 KiB token: the initial response waits for the challenge');
        await c.send('+\r\n'); // bare "+"
        assert.ok(unb64(await c.line()).includes('auth=Bearer ' + 't'.repeat(4096)));
        await c.send(`+ ${b64('{"status":"invalid_token"}')}\r\n`);
        assert.equal(await c.line(), 'AQ==');
        await c.send('-ERR Authentication failed\r\n');
      }
    });
    void bridge;
    const c1 = await connect();
    assert.equal(await c1.auth('OAUTHBEARER', { username: 'me', token: 'short' }), 'OAUTHBEARER');
    c1.close();
    const c2 = await connect();
    const e = await rejectsWith(c2.auth('OAUTHBEARER', { username: 'me', token: 't'.repeat(4096) }), 'AUTH_FAILED');
    assert.match(e.message, /invalid_token/);
    assert.deepEqual(c2.deviations.map((d) => d.id), ['bare-continuation']);
    c2.close();
    assert.deepEqual(srv.errors, []);
  });

  // ---- pipelining: what the server had received before it answered ----

  /** Octets the client sends up to the commands under test: CAPA, USER u, PASS p, CAPA. */
  const LOGIN_OCTETS = ['CAPA', 'USER u', 'PASS p', 'CAPA'].reduce((a, l) => a + l.length + 2, 0);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  /** Octets of command lines, CRLF included. */
  const octets = (lines) => lines.reduce((a, l) => a + l.length + 2, 0);

  /**
   * Reads `n` lines, then, after `settleMs` in which a client that was not
   * holding back would have sent more, asserts that the server has received
   * exactly the login and the `seen` commands so far: nothing else.
   */
  async function readExactly(c, n, seen, expected, settleMs = 150) {
    for (let i = 0; i < n; i++) seen.push(await c.line());
    await sleep(settleMs);
    assert.equal(c.socket.bytesRead, LOGIN_OCTETS + octets(seen), `after ${seen.length} commands: ${expected}`);
  }

  test('without PIPELINING: lockstep, the server never holds a second command before it answers the first', async () => {
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER'] });
      await userPass(c, ['USER']);
      const seen = [];
      for (let i = 0; i < 5; i++) {
        await readExactly(c, 1, seen, 'one command at a time');
        await c.send('+OK\r\n');
      }
      assert.deepEqual(seen, ['NOOP', 'NOOP', 'NOOP', 'NOOP', 'NOOP']);
    });
    const c = await connect();
    await c.auth('USER', { username: 'u', password: 'p' });
    assert.equal(c.pipelining, false);
    await Promise.all([c.noop(), c.noop(), c.noop(), c.noop(), c.noop()]);
    c.close();
    assert.deepEqual(srv.errors, []);
  });

  test('with PIPELINING: every command reaches the server before it answers the first', async () => {
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER', 'PIPELINING'] });
      await userPass(c, ['USER', 'PIPELINING']);
      // No answer until all five are in: a client in lockstep would never
      // send the second, and its calls would time out.
      const seen = [];
      await readExactly(c, 5, seen, 'all five, and nothing else');
      assert.deepEqual(seen, ['NOOP', 'STAT', 'LIST 1', 'UIDL 2', 'NOOP']);
      await c.send('+OK one\r\n+OK 2 20\r\n+OK 1 10\r\n-ERR no such message\r\n+OK five\r\n');
    });
    const c = await connect();
    await c.auth('USER', { username: 'u', password: 'p' });
    assert.equal(c.pipelining, true);
    const got = await Promise.allSettled([c.noop(), c.stat(), c.list(1), c.uidl(2), c.noop()]);
    // Each answer matched to its command, in order.
    assert.deepEqual(got.map((g) => g.value ?? g.reason.code), ['one', { count: 2, size: 20 }, { id: 1, size: 10 }, 'SERVER_ERROR', 'five']);
    c.close();
    assert.deepEqual(srv.errors, []);
  });

  test('pipelineWindow: 3 holds exactly three commands in flight', async () => {
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER', 'PIPELINING'] });
      await userPass(c, ['USER', 'PIPELINING']);
      const seen = [];
      await readExactly(c, 3, seen, 'the first three');
      // Each answer lets exactly one more in.
      for (let i = 0; i < 4; i++) {
        await c.send('+OK\r\n');
        await readExactly(c, 1, seen, 'one more per answer');
      }
      assert.equal(seen.length, 7);
      await c.send('+OK\r\n+OK\r\n+OK\r\n');
    });
    const c = await connect({ pipelineWindow: 3 });
    await c.auth('USER', { username: 'u', password: 'p' });
    const got = await Promise.allSettled(Array.from({ length: 7 }, () => c.noop()));
    assert.deepEqual(got.map((g) => g.status), Array(7).fill('fulfilled'));
    c.close();
    assert.deepEqual(srv.errors, []);
  });

  test('a server that reads slowly and answers late: no deadlock, 16 KiB in flight at most, every answer matched', async () => {
    const N = 2000;
    const retr = (n) => `RETR ${n}`;
    const body = (n) => `message ${n}\r\n` + `${'x'.repeat(62)}\r\n`.repeat(63);
    // The first flight with default options: the longest run of RETR 1, 2, …
    // that fits 16 384 octets (RETR 1..1590: 16 383).
    let first = 0;
    for (let sum = 0; sum + retr(first + 1).length + 2 <= 16384; first++) sum += retr(first + 1).length + 2;
    let most = 0;
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER', 'PIPELINING'] });
      await userPass(c, ['USER', 'PIPELINING']);
      const seen = [];
      await readExactly(c, first, seen, 'the first flight, 16 383 octets');
      let answered = 0; // commands answered so far
      let answeredOctets = 0; // counted before the answer is written: never an overcount
      const unanswered = () => c.socket.bytesRead - LOGIN_OCTETS - answeredOctets;
      most = unanswered();
      const reader = (async () => {
        while (seen.length < N) {
          seen.push(await c.line());
          most = Math.max(most, unanswered());
          // Reads slowly: every 100 lines, stop reading for a while.
          if (seen.length % 100 === 0) {
            c.socket.pause();
            await sleep(5);
            c.socket.resume();
          }
        }
      })();
      // Answers late: every 10 ms, what has come in (up to 6 MB at once,
      // more than the socket buffers take, so the writes wait for the client).
      while (answered < N) {
        await sleep(10);
        const upto = seen.length;
        for (; answered < upto; answered++) {
          const n = Number(seen[answered].slice(5));
          answeredOctets += seen[answered].length + 2;
          await c.send(`+OK ${body(n).length} octets\r\n${body(n)}.\r\n`);
        }
      }
      await reader;
      assert.deepEqual(seen, Array.from({ length: N }, (_, k) => retr(k + 1)));
      assert.equal(await c.line(), 'QUIT');
      await c.send('+OK bye\r\n');
    });
    const c = await connect({ timeoutMs: 60_000 });
    await c.auth('USER', { username: 'u', password: 'p' });
    const ids = Array.from({ length: N }, (_, k) => k + 1);
    const got = await c.retrMany(ids);
    assert.deepEqual(got.map((g) => g.id), ids);
    for (const g of got) assert.equal(Buffer.from(g.body).toString('latin1'), body(g.id), `RETR ${g.id}`);
    await c.quit();
    assert.deepEqual(srv.errors, []);
    assert.ok(most <= 16384, `${most} octets of commands unanswered at the server`);
    assert.ok(most > 16384 - 11, `the window filled (${most} octets)`);
  });

  test('AUTH PLAIN too long for one line answers a bare "+" continuation', async () => {
    const password = 'p'.repeat(300);
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['SASL PLAIN'] });
      assert.equal(await c.line(), 'AUTH PLAIN');
      await c.send('+\r\n');
      assert.equal(await c.line(), b64(`\0u\0${password}`));
      await c.send('+OK\r\n');
      await recapa(c);
    });
    const c = await connect();
    assert.equal(await c.auth('PLAIN', { username: 'u', password }), 'PLAIN');
    assert.deepEqual(c.deviations, [{ id: 'bare-continuation', description: "SASL continuation '+' without a space" }]);
    c.close();
    assert.deepEqual(srv.errors, []);
  });

  /** A SCRAM-SHA-256 server that knows the password but signs wrong (or not at all). */
  function scramServer(mode) {
    return async (c) => {
      await preamble(c, { capa: ['SASL SCRAM-SHA-256'] });
      const [cmd, mech, ir] = (await c.line()).split(' ');
      assert.equal(`${cmd} ${mech}`, 'AUTH SCRAM-SHA-256');
      const clientFirst = unb64(ir);
      assert.match(clientFirst, /^n,,n=u,r=[A-Za-z0-9+/=]+$/);
      const bare = clientFirst.slice(3);
      const nonce = bare.split('r=')[1] + 'SERVER';
      const salt = Buffer.from('salty-salt');
      const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=4096`;
      await c.send(`+ ${b64(serverFirst)}\r\n`);
      const clientFinal = unb64(await c.line());
      const withoutProof = clientFinal.replace(/,p=.*$/, '');
      assert.equal(withoutProof, `c=biws,r=${nonce}`);
      const salted = pbkdf2Sync('pencil', salt, 4096, 32, 'sha256');
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const clientKey = createHmac('sha256', salted).update('Client Key').digest();
      const stored = createHash('sha256').update(clientKey).digest();
      const sig = createHmac('sha256', stored).update(authMessage).digest();
      const proof = Buffer.from(clientFinal.split(',p=')[1], 'base64');
      assert.ok(Buffer.from(proof.map((b, i) => b ^ sig[i])).equals(clientKey), 'the client proof verifies');
      if (mode === 'wrong-signature') {
        await c.send(`+ ${b64('v=' + Buffer.alloc(32, 7).toString('base64'))}\r\n`);
        assert.equal(await c.line(), '*');
        await c.send('-ERR [AUTH] cancelled\r\n');
      } else {
        await c.send('+OK no proof needed\r\n');
      }
      assert.equal(await c.line(), null, 'the client hangs up without QUIT');
    };
  }

  for (const mode of ['wrong-signature', 'ok-without-signature']) {
    test(`SCRAM: a server that cannot prove it knows the password (${mode}) is AUTH_FAILED`, async () => {
      const { srv, connect } = await scripted(scramServer(mode));
      const c = await connect();
      const e = await rejectsWith(c.auth('SCRAM-SHA-256', { username: 'u', password: 'pencil' }), 'AUTH_FAILED');
      assert.match(e.message, /signature|proving/);
      // The session is not trusted after that: it is closed.
      if (mode === 'ok-without-signature') await rejectsWith(c.stat(), 'AUTH_FAILED');
      c.close();
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(srv.errors, []);
      assert.ok(!srv.received.includes('QUIT'));
    });
  }

  test('a server that never answers: TIMEOUT within the deadline, no QUIT', async () => {
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER'] });
      await c.line(); // USER: never answered
      await c.line();
    });
    const c = await connect({ timeouts: { command: 300.5 } });
    const e = await rejectsWith(c.auth('USER', { username: 'u', password: 'p' }), 'TIMEOUT');
    // The command deadline ended it (not the 5 s of the other steps).
    assert.match(e.message, /^no answer to USER within 300\.5 ms; the session was dropped$/);
    await rejectsWith(c.noop(), 'TIMEOUT');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(srv.received, ['CAPA', 'USER u']);
  });

  test('a server that never greets: TIMEOUT on the greeting deadline', async () => {
    const { connect } = await scripted(async (c) => {
      await c.line();
    });
    const e = await rejectsWith(connect({ timeouts: { greeting: 300 } }), 'TIMEOUT');
    assert.match(e.message, /greeting within 300 ms/);
  });

  test('AbortSignal: an aborted call rejects with the reason and drops the session without QUIT', async () => {
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER'] });
      await userPass(c);
      assert.equal(await c.line(), 'DELE 1');
      await c.send('+OK marked\r\n');
      assert.equal(await c.line(), 'RETR 1'); // never answered
      assert.equal(await c.line(), null);
    });
    const c = await connect();
    await c.auth('USER', { username: 'u', password: 'p' });
    await c.dele(1);
    const ac = new AbortController();
    const pending = c.retr(1, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('user gave up')), 100);
    const e = await pending.then(() => assert.fail('resolved'), (e) => e);
    assert.equal(e.message, 'user gave up');
    await rejectsWith(c.noop(), 'CONNECTION_CLOSED');
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!srv.received.includes('QUIT'), 'the DELE was never committed');
    // An already aborted signal on connect.
    const e2 = await connect({ signal: AbortSignal.abort(new Error('not today')) }).then(() => assert.fail(), (e) => e);
    assert.equal(e2.message, 'not today');
  });

  test('keepalive: NOOP after the idle time, only in TRANSACTION', async () => {
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER'] });
      await userPass(c);
      for (;;) {
        const l = await c.line();
        if (l === null) break;
        await c.send('+OK\r\n');
      }
    });
    // The client's own clock: when each line went out or came in.
    const lines = [];
    const c = await connect({ keepaliveMs: 150, onTranscript: (l) => lines.push({ at: Date.now(), line: `${l.dir}: ${l.line}` }) });
    await new Promise((r) => setTimeout(r, 600)); // four idle periods
    assert.ok(!srv.received.includes('NOOP'), 'no NOOP before login');
    await c.auth('USER', { username: 'u', password: 'p' });
    const noops = () => lines.filter((l) => l.line === 'C: NOOP');
    for (let wait = 0; noops().length < 3; wait += 50) {
      assert.ok(wait < 30_000, `${noops().length} NOOPs so far`);
      await new Promise((r) => setTimeout(r, 50));
    }
    c.close();
    // Each NOOP went out only after the session had been idle for 150 ms
    // by the client's clock (±2 ms: the clock is read just before and
    // after a line is transcribed), and each was answered.
    for (const noop of noops()) {
      const k = lines.indexOf(noop);
      const idle = noop.at - lines[k - 1].at;
      assert.ok(idle >= 148, `NOOP after ${idle} ms idle: ${lines.slice(k - 2, k + 1).map((l) => l.line).join(' | ')}`);
      if (k + 1 < lines.length) assert.equal(lines[k + 1].line, 'S: +OK');
    }
  });

  test('the transcript carries each command latency', async () => {
    const lines = [];
    const { connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER'] });
      await c.line();
      await new Promise((r) => setTimeout(r, 120));
      await c.send('+OK\r\n');
      await c.line();
    });
    const c = await connect({ onTranscript: (l) => lines.push(l) });
    await c.raw('USER u');
    const status = lines[lines.findIndex((l) => l.line === 'USER u') + 1];
    assert.ok(status, JSON.stringify(lines));
    assert.ok(status.latencyMs >= 100, `latency ${status.latencyMs}`);
    assert.equal(lines.find((l) => l.line === 'USER u').dir, 'C');
    c.close();
  });

  test('a message larger than every buffer on the way streams with bounded memory, byte-exact', async () => {
    // What the kernel may hold between the server and the reader: per TCP
    // connection, the sender's and the receiver's buffers at their largest
    // (autotuning grows them up to tcp_wmem/tcp_rmem's maximum: 4 and 32
    // MiB here, so a loaded machine once saw the server 36.9 MiB ahead
    // through the bridge); two connections through the bridge, one direct;
    // plus 4 MiB for the bridge's frames and the stream's high-water mark.
    // The body is 24 MiB longer, so a client or bridge that stopped pushing
    // back would let the server finish far ahead and fail the check.
    const maxOf = (name) => Number(fs.readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
    const kernelBound = (via === 'bridge' ? 2 : 1) * (maxOf('tcp_rmem') + maxOf('tcp_wmem')) + 4 * 1024 * 1024;
    const bodyBytes = Math.max(50 * 1024 * 1024, kernelBound + 24 * 1024 * 1024);
    const LINE = Buffer.from('..' + 'x'.repeat(74) + '\r\n'); // stuffed: each line starts with one "."
    const LINES = Math.ceil(bodyBytes / (LINE.length - 1));
    let sent = 0;
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER', 'PIPELINING'] });
      await userPass(c);
      assert.equal(await c.line(), 'RETR 1');
      await c.send(`+OK ${LINES * (LINE.length - 1)} octets\r\n`);
      const block = Buffer.concat(Array(1024).fill(LINE));
      for (let i = 0; i < LINES; i += 1024) {
        await c.send(i + 1024 <= LINES ? block : Buffer.concat(Array(LINES - i).fill(LINE)));
        sent += block.length;
      }
      await c.send('.\r\n');
      assert.equal(await c.line(), 'NOOP');
      await c.send('+OK still here\r\n');
    });
    const c = await connect();
    await c.auth('USER', { username: 'u', password: 'p' });
    gc();
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    let ahead = 0;
    let largest = 0;
    let total = 0;
    const hash = createHash('sha256');
    let n = 0;
    for await (const chunk of await c.retrStream(1)) {
      assert.ok(chunk instanceof Uint8Array);
      largest = Math.max(largest, chunk.byteLength);
      total += chunk.byteLength;
      hash.update(chunk);
      if (++n % 32 === 0) {
        gc(); // live memory only: garbage grows with the frame size and is not what is bounded
        peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
        ahead = Math.max(ahead, sent - total);
        await new Promise((r) => setTimeout(r, 10)); // a slow consumer: ~50 MB/s
      }
    }
    const expected = createHash('sha256');
    const unstuffed = LINE.subarray(1);
    for (let i = 0; i < LINES; i++) expected.update(unstuffed);
    assert.equal(total, LINES * unstuffed.length);
    assert.equal(hash.digest('hex'), expected.digest('hex'));
    // A chunk is at most one WebSocket frame (the bridge frames 64 KiB,
    // UPSTREAM_CHUNK) or one socket read (the direct transport).
    assert.ok(largest <= 64 * 1024, `largest chunk ${largest}`);
    console.log(`${via}: ${(bodyBytes / 1048576).toFixed(0)} MiB body; peak live buffers ${(peak / 1048576).toFixed(1)} MiB; server ahead of the reader by at most ${(ahead / 1048576).toFixed(1)} MiB (bound ${(kernelBound / 1048576).toFixed(0)} MiB)`);
    assert.ok(peak < 24 * 1024 * 1024, `peak buffered ${(peak / 1048576).toFixed(1)} MiB for a ${(bodyBytes / 1048576).toFixed(0)} MiB body`);
    // Backpressure reaches the server: it cannot run further ahead of a slow
    // reader than the socket buffers on the way can hold.
    assert.ok(ahead < kernelBound, `the server got ${(ahead / 1048576).toFixed(1)} MiB ahead (the buffers on the way hold ${(kernelBound / 1048576).toFixed(0)} MiB)`);
    assert.equal(await c.noop(), 'still here', 'the session goes on after the stream');
    c.close();
    assert.deepEqual(srv.errors, []);
  });

  test('UTF8 (RFC 6856) is sent before non-ASCII credentials; PIPELINING seen only after login', async () => {
    const { srv, connect } = await scripted(async (c) => {
      await preamble(c, { capa: ['USER', 'UTF8 USER'] });
      assert.equal(await c.line(), 'UTF8');
      await c.send('+OK UTF8 enabled\r\n');
      assert.equal(Buffer.from(await c.line(), 'latin1').toString('utf8'), 'USER jürgen');
      await c.send('+OK\r\n');
      assert.equal(Buffer.from(await c.line(), 'latin1').toString('utf8'), 'PASS pässwörd-Ω9');
      await c.send('+OK\r\n');
      await recapa(c, ['USER', 'PIPELINING']); // Gmail-style: PIPELINING only after login
      assert.equal(await c.line(), 'NOOP');
      assert.equal(await c.line(), 'NOOP', 'the second NOOP arrives before the first is answered');
      await c.send('+OK\r\n+OK\r\n');
    });
    const c = await connect();
    assert.equal(c.pipelining, false);
    await c.auth('USER', { username: 'jürgen', password: 'pässwörd-Ω9' });
    assert.equal(c.pipelining, true);
    await Promise.all([c.noop(), c.noop()]);
    c.close();
    assert.deepEqual(srv.errors, []);
  });
}

for (const via of ['bridge', 'direct']) describe(`via ${via}`, () => suite(via));
