// The far end of the bridge-alone benchmark (scenario 4) and of the idle
// sessions (scenario 5): a TCP server on loopback, run as its own process so
// its event loop never competes with the WebSocket client's.
//
// The first byte a connection sends picks its job:
//   'E'                echo every byte back (latency; idle sessions never send it)
//   'D' + u64 BE n     send n bytes and stay open (download throughput;
//                      websockify drops the tail of what it relays when the
//                      target closes right after sending, so it does not close)
//   'U' + u64 BE n     read n bytes, then send 'K' (upload throughput)
// A connection that sends nothing is held open until the peer leaves.
//
//   node bench/workload-server.mjs   → prints {"port":N} on stdout, runs until stdin closes
import net from 'node:net';

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

function download(socket, n) {
  let left = n;
  const pump = () => {
    while (left > 0) {
      const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= piece.length;
      if (!socket.write(piece)) return socket.once('drain', pump);
    }
  };
  pump();
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  let head = Buffer.alloc(0);
  let mode = null;
  let want = 0;
  let got = 0;
  socket.on('data', (d) => {
    if (mode === 'E') return socket.write(d);
    if (mode === 'U') {
      got += d.length;
      if (got >= want) socket.write('K');
      return;
    }
    head = Buffer.concat([head, d]);
    const m = String.fromCharCode(head[0]);
    if (m === 'E') {
      mode = 'E';
      if (head.length > 1) socket.write(head.subarray(1));
      return;
    }
    if (head.length < 9) return;
    const n = Number(head.readBigUInt64BE(1));
    if (m === 'D') {
      mode = 'D';
      download(socket, n);
    } else if (m === 'U') {
      mode = 'U';
      want = n;
      got = head.length - 9;
      if (got >= want) socket.write('K');
    } else socket.destroy();
  });
});
server.maxConnections = 100_000;
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
