// Child process of scenario 6: a fresh `node` that loads pop3-wasm, connects,
// logs in and prints the first STAT result. The parent times spawn → line.
//
//   node bench/start-client.mjs '{"bridge"?,"host","port","user","password"}'
import { Pop3Client } from '../pop3-wasm/js/node.js';

const o = JSON.parse(process.argv[2]);
const c = await Pop3Client.connect({
  ...(o.bridge ? { bridge: o.bridge } : {}),
  host: o.host,
  port: o.port,
  tls: 'none',
  allowInsecureAuth: true,
});
await c.auth('PLAIN', { username: o.user, password: o.password });
const stat = await c.stat();
process.stdout.write(JSON.stringify(stat) + '\n');
c.close();
process.exit(0);
