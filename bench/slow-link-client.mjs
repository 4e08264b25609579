// The near side of the benchmark's slow link (scenario 1): pop3-wasm in
// Node, through the bridge across the link, run by bench/slow-link.mjs in the
// client namespace (or, in the fallback, on loopback through delay relays).
//
//   node bench/slow-link-client.mjs '{"mode":"scan"|"retr","bridge":URL,"port":N,"user":{…},"count":N,"reps":N,"options":{}}'
//
// `bridge` null: straight to `host` (end to end, `options` say so: endToEnd,
// tls, ca as a file name).
//
// Each repetition connects and logs in (SASL PLAIN, not timed), then times
// summaries() or retrMany(1..count) with the default options (plus
// `options`, given to connect()), checks the result and sends QUIT. Prints
// {"seconds":[…],"bytes":N} (bytes: the LIST sizes of what retrMany fetched).
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Pop3Client } from '../pop3-wasm/js/node.js';

const { mode, bridge, host = '127.0.0.1', port, user, count, reps, options = {} } = JSON.parse(process.argv[2]);
if (options.caFile) options.ca = fs.readFileSync(options.caFile);
delete options.caFile;
const seconds = [];
let bytes = 0;
for (let i = 0; i < reps; i++) {
  const c = await Pop3Client.connect({ bridge, host, port, tls: 'none', allowInsecureAuth: true, timeoutMs: 600_000, ...options });
  await c.auth('PLAIN', { username: user.name, password: user.password });
  if (!c.pipelining) throw new Error('the server did not offer PIPELINING');
  if (mode === 'scan') {
    const t0 = performance.now();
    const s = await c.summaries();
    seconds.push((performance.now() - t0) / 1000);
    if (s.length !== count || s.some((e) => e.error || !e.subject || !e.uid)) throw new Error('summaries() came back incomplete');
  } else {
    const ids = Array.from({ length: count }, (_, k) => k + 1);
    bytes = (await c.list()).reduce((a, e) => a + e.size, 0);
    const t0 = performance.now();
    const got = await c.retrMany(ids);
    seconds.push((performance.now() - t0) / 1000);
    if (got.length !== count || got.some((g) => g.error || !g.body?.length)) throw new Error('retrMany() had errors');
  }
  await c.quit();
}
process.stdout.write(`${JSON.stringify({ seconds, bytes })}\n`);
