// Starts what `npm start` shows: see scripts/run.sh.
import { startDovecot } from '../tests/fixtures/dovecot.mjs';
import { startBridge, startBridgeFor } from '../tests/fixtures/bridge.mjs';

const listen = `127.0.0.1:${process.env.PORT || 8080}`;
const args = process.argv.slice(2);
const stops = [];

if (args.length > 0) {
  // A server the user names: pass the flags through to ws-bridge.
  const bridge = await startBridge({ listen, serve: 'web', extraArgs: args });
  stops.push(bridge);
  console.log(`ws-bridge is running with: ${args.join(' ')}`);
  console.log(`  page:      ${bridge.httpUrl}/`);
  console.log(`  WebSocket: ${bridge.url}`);
} else {
  const dc = await startDovecot();
  const bridge = await startBridgeFor(dc, { listen, serve: 'web' });
  stops.push(bridge, dc);
  const a = dc.users.alice;
  console.log('pop3-wasm demo: a local Dovecot with a demo mailbox, ws-bridge, and the page');
  console.log(`  page:      ${bridge.httpUrl}/?host=${dc.host}&port=${dc.ports.pop3s}&tls=implicit&user=${a.name}`);
  console.log(`  user:      ${a.name}   password: ${a.password}`);
  console.log(`  POP3:      ${dc.host}:${dc.ports.pop3} (plain, STLS)   ${dc.host}:${dc.ports.pop3s} (implicit TLS)`);
  console.log(`  WebSocket: ${bridge.url}`);
  console.log('From Node:');
  console.log(`  node -e "import('pop3-wasm').then(async ({ Pop3Client }) => { const c = await Pop3Client.connect({ bridge: '${bridge.url}', host: '${dc.host}', port: ${dc.ports.pop3s} }); await c.login('${a.name}', '${a.password}'); console.log(await c.stat()); await c.quit(); })"`);
}
console.log('Ctrl-C stops everything.');

const stop = async () => {
  for (const s of stops) await s.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
