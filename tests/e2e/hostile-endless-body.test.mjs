// A server that answers RETR with a body that never ends, as fast as it
// can. retr() collects bodies whole, so without a bound the client grew by
// gigabytes before its deadline (2.8 GB RSS in 3 s). Now the body stops at
// the core's max_body (128 MiB): PROTOCOL_ERROR, no QUIT, and memory
// bounded where it is measured: the process (RSS) and the wasm module's
// linear memory, which never shrinks once grown. A collected body goes to
// JavaScript piece by piece (it once sat in the wasm memory, doubling as it
// grew: 472 MB of RSS for a 128 MiB limit, and the wasm memory stayed at
// ~400 MiB for good). retrStream() of the same body is bounded by
// backpressure instead; the reader decides when to stop.
import { test, describe, after } from 'node:test';
import fs from 'node:fs';
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

const MiB = 1024 * 1024;
const MAX_BODY = 128 * MiB;
// What the process holds besides the body while one arrives: socket read
// buffers not yet collected, the bridge's frames (measured: peaks 14-22 MiB
// above the 128 MiB limit).
const PEAK_SLACK = 32 * MiB;
// Node's allocator keeps some freed socket buffers instead of handing them
// back (measured 50-86 MiB after a 128 MiB body): "given back" means the
// body itself is no longer held.
const AFTER_SLACK = MAX_BODY / 2 + 64 * MiB;
const cleanups = [];
after(() => runCleanups(cleanups));

async function endlessServer() {
  const state = { sent: 0 };
  const srv = await startScripted(async (c) => {
    await preamble(c, { capa: ['USER'] });
    await c.line();
    await c.send('+OK\r\n');
    await c.line();
    await c.send('+OK\r\n');
    await c.line();
    await c.send('+OK\r\nUSER\r\n.\r\n');
    if (!/^RETR /.test(await c.line())) return;
    await c.send('+OK 1000 octets (not really)\r\n');
    const block = Buffer.alloc(1 << 20, 0x61);
    for (let i = 99; i < block.length; i += 100) block[i] = 0x0a;
    while (!c.socket.destroyed) {
      await c.send(block);
      state.sent += block.length;
    }
  });
  cleanups.push(() => srv.stop());
  return { srv, state };
}

function peakRss() {
  let peak = process.memoryUsage().rss;
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  return () => {
    clearInterval(t);
    return Math.max(peak, process.memoryUsage().rss);
  };
}

for (const via of ['bridge', 'direct']) {
  describe(`via ${via}`, () => {
    async function connect(port, extra = {}) {
      let route = {};
      if (via === 'bridge') {
        const bridge = await startBridge({ allow: [`127.0.0.1:${port}`] });
        cleanups.push(() => bridge.stop());
        route = { bridge: bridge.url };
      }
      const c = await Pop3Client.connect({ ...route, host: '127.0.0.1', port, tls: 'none', allowInsecureAuth: true, timeoutMs: 60000, ...extra });
      await c.auth('USER', { username: 'u', password: 'p' });
      return c;
    }

    for (const how of ['retr', 'retr with onProgress']) {
      test(`an endless body to ${how}: PROTOCOL_ERROR at 128 MiB, RSS within 1.25× the limit and given back, wasm memory not grown, no QUIT`, { timeout: 120_000 }, async () => {
        const { srv, state } = await endlessServer();
        const c = await connect(srv.port);
        gc();
        const before = process.memoryUsage().rss;
        const wasmBefore = wasmMemoryBytes();
        const stop = peakRss();
        let progress = 0;
        const opts = how === 'retr' ? {} : { onProgress: (n) => (progress = n) };
        const e = await c.retr(1, opts).then(() => assert.fail('resolved'), (e) => e);
        const peak = stop();
        assert.ok(e instanceof Pop3Error, String(e?.stack ?? e));
        assert.equal(e.code, 'PROTOCOL_ERROR', e.message);
        assert.match(e.message, /longer than 134217728 octets/);
        assert.ok(state.sent >= MAX_BODY, `the server sent ${state.sent} octets`);
        if (how !== 'retr') assert.ok(progress > MAX_BODY / 2 && progress <= MAX_BODY, `progress ${progress}`);
        await new Promise((r) => setTimeout(r, 200));
        gc();
        gc();
        const afterRss = process.memoryUsage().rss;
        const wasmGrew = wasmMemoryBytes() - wasmBefore;
        const mib = (n) => `${(n / MiB).toFixed(0)} MiB`;
        console.log(`${how} via ${via}: the server sent ${mib(state.sent)}; RSS +${mib(peak - before)} at the peak, +${mib(afterRss - before)} after GC; wasm memory +${(wasmGrew / MiB).toFixed(1)} MiB`);
        assert.ok(peak - before <= 1.25 * MAX_BODY + PEAK_SLACK, `RSS peaked ${mib(peak - before)} above where it was`);
        assert.ok(afterRss - before <= AFTER_SLACK, `RSS still ${mib(afterRss - before)} up after GC`);
        // The body never passed through the wasm memory (it would have
        // grown by at least the limit, for good).
        assert.ok(wasmGrew <= 4 * MiB, `the wasm memory grew by ${mib(wasmGrew)}`);
        assert.ok(!srv.received.includes('QUIT'));
      });
    }

    test('an endless body with maxBodyBytes 1 MiB: PROTOCOL_ERROR at the limit, no QUIT', { timeout: 60_000 }, async () => {
      const { srv, state } = await endlessServer();
      const c = await connect(srv.port, { maxBodyBytes: 1 << 20 });
      const e = await c.retr(1).then(() => assert.fail('resolved'), (e) => e);
      assert.equal(e.code, 'PROTOCOL_ERROR', e.message);
      assert.match(e.message, /longer than 1048576 octets/);
      // The client stopped at its limit, not at the default's 128 MiB: the
      // server sent that much plus what the socket buffers on the way held
      // when the session ended (tcp_rmem/tcp_wmem maxima per TCP hop).
      const maxOf = (name) => Number(fs.readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
      const buffers = (via === 'bridge' ? 2 : 1) * (maxOf('tcp_rmem') + maxOf('tcp_wmem'));
      assert.ok(buffers + (2 << 20) < 128 * 1024 * 1024, 'the check below could not tell the limits apart');
      assert.ok(state.sent < buffers + (2 << 20), `the server sent ${state.sent} octets`);
      await assert.rejects(c.noop(), { code: 'PROTOCOL_ERROR' });
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(!srv.received.includes('QUIT'));
    });

    test('an endless body to retrStream: a slow reader holds memory down; close() ends it without QUIT', { timeout: 60_000 }, async () => {
      const { srv, state } = await endlessServer();
      const c = await connect(srv.port);
      const before = process.memoryUsage().rss;
      const stop = peakRss();
      const stream = await c.retrStream(1);
      let got = 0;
      const t0 = Date.now();
      for await (const chunk of stream) {
        got += chunk.byteLength;
        await new Promise((r) => setTimeout(r, 5));
        if (Date.now() - t0 > 1500) break; // cancels the stream
      }
      c.close();
      const grew = (stop() - before) / 1048576;
      console.log(`retrStream via ${via}: read ${(got / 1048576).toFixed(1)} MiB, the server got ${(state.sent / 1048576).toFixed(1)} MiB out; RSS grew by at most ${grew.toFixed(0)} MiB`);
      assert.ok(got > 0);
      assert.ok(grew < 256, `RSS grew by ${grew.toFixed(0)} MiB`);
      await assert.rejects(c.noop(), { code: 'CONNECTION_CLOSED' });
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(!srv.received.includes('QUIT'));
    });
  });
}
