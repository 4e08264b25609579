// The far side of the benchmark's slow link (scenario 1): a Dovecot with the
// bench user's mailbox and a bridge beside it, both reachable on `address`.
// Run by bench/slow-link.mjs, in the server namespace (or, in the fallback,
// on loopback behind delay relays).
//
//   node bench/slow-link-server.mjs '{"address":"10.199.0.2","user":{…},"count":1000}'
//
// Prints {"pop3":N,"bridgePort":N,"caFile":PATH} once both listen; runs until stdin closes
// (the fixtures stop Dovecot and the bridge on exit).
import { startDovecot, bulkMessage } from '../tests/fixtures/dovecot.mjs';
import { startBridge } from '../tests/fixtures/bridge.mjs';
import { addUser } from './mailbox.mjs';
import { Pop3Client } from '../pop3-wasm/js/node.js';

const { address, user, count } = JSON.parse(process.argv[2]);
// The fixture listens on 127.0.0.1 (the bridge's side); poplib, the
// baseline, comes over the link, so POP3 listens on `address` as well.
const dc = await startDovecot({
  extraConfig:
    address === '127.0.0.1'
      ? ''
      : `
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1, ${address}
  }
}
`,
});
addUser(dc, user, Array.from({ length: count }, (_, k) => bulkMessage(k + 1)));
// Warm Dovecot up (its index and cache of the new mailbox, the page cache)
// on loopback, so the first timed session does not pay for it.
const warm = await Pop3Client.connect({ host: '127.0.0.1', port: dc.ports.pop3, tls: 'none', allowInsecureAuth: true });
await warm.auth('PLAIN', { username: user.name, password: user.password });
await warm.summaries();
await warm.retrMany(Array.from({ length: count }, (_, k) => k + 1));
await warm.quit();
const bridge = await startBridge({
  listen: `${address}:0`,
  allow: [`127.0.0.1:${dc.ports.pop3}`],
  // One client over the link, timed round after round: no per-client
  // transfer allowance or rate may cut a measured session.
  extraArgs: ['--log-level', 'warn', '--max-bytes-per-ip-hour', String(2 ** 50), '--connect-burst', '100000', '--global-connect-burst', '100000'],
});
process.stdout.write(`${JSON.stringify({ pop3: dc.ports.pop3, bridgePort: bridge.port, caFile: dc.caFile })}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await bridge.stop();
  await dc.stop();
  process.exit(0);
});
