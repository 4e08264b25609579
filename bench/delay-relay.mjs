// A TCP relay on loopback that adds half a round-trip time in each
// direction: the benchmark's slow link where network namespaces cannot be
// made (bench/slow-link.mjs; the real link is TCP across namespaces). It
// delays a byte stream, so it hides TCP's slow start and ACK clock: both
// legs are loopback connections that never wait for the delay.
//
//   const relay = await startDelayRelay({ host, port, rttMs: 50 });
//   relay.port  // connect here instead of host:port
//   relay.rttMs = 200;  // for what is read from now on
//   await relay.close();
//
// Every chunk read on one side is written to the other rttMs/2 later, in
// the order it was read. A direction holding more than `highWater` bytes
// stops reading its source until it has delivered half of them, so a fast
// sender meets backpressure instead of filling memory.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

function pipeDelayed(src, dst, delayMs, highWater) {
  const queue = [];
  let queued = 0;
  let timer = null;
  let draining = false;
  const schedule = () => {
    if (timer || draining || queue.length === 0) return;
    timer = setTimeout(flush, Math.max(0, queue[0].at - performance.now()));
  };
  const flush = () => {
    timer = null;
    const now = performance.now();
    while (queue.length && queue[0].at <= now + 0.25) {
      const item = queue.shift();
      if (item.end) {
        dst.end();
        return;
      }
      queued -= item.buf.length;
      if (!dst.write(item.buf)) {
        draining = true;
        dst.once('drain', () => {
          draining = false;
          schedule();
        });
        break;
      }
    }
    if (src.isPaused() && queued <= highWater / 2) src.resume();
    schedule();
  };
  src.on('data', (buf) => {
    queue.push({ at: performance.now() + delayMs(), buf });
    queued += buf.length;
    if (queued > highWater) src.pause();
    schedule();
  });
  src.on('end', () => {
    queue.push({ at: performance.now() + delayMs(), end: true });
    schedule();
  });
}

export async function startDelayRelay({ host, port, rttMs, highWater = 4 << 20 }) {
  const sockets = new Set();
  const half = () => relay.rttMs / 2;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    pipeDelayed(client, upstream, half, highWater);
    pipeDelayed(upstream, client, half, highWater);
  });
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 2048 }, resolve));
  const relay = {
    host: '127.0.0.1',
    port: server.address().port,
    rttMs,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  return relay;
}
