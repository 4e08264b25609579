// Child process of scenario 3: streams one big message through the bridge
// while its parent samples this process' memory from /proc.
//
//   node bench/stream-client.mjs '{"bridge","host","port","user","password","msg"}'
// stdout: "idle" once logged in and settled; then, after the parent writes a
// line on stdin: {"seconds","bytes"}.
import readline from 'node:readline';
import { performance } from 'node:perf_hooks';
import { Pop3Client } from '../pop3-wasm/js/node.js';

const o = JSON.parse(process.argv[2]);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const c = await Pop3Client.connect({ bridge: o.bridge, host: o.host, port: o.port, tls: 'implicit', timeoutMs: 300_000 });
await c.login(o.user, o.password);
await c.stat();
await new Promise((r) => setTimeout(r, 300));
process.stdout.write('idle\n');
await lines.next();
const t0 = performance.now();
let bytes = 0;
for await (const chunk of await c.retrStream(o.msg)) bytes += chunk.length;
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ seconds, bytes }) + '\n');
await c.quit();
process.exit(0);
