#!/usr/bin/env node
// pop3: `pop3 shell [url]`, the interactive console (see shell.js, or `pop3 shell --help`).
import { main } from './shell.js';

let code;
try {
  code = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`pop3: ${e?.stack ?? e}\n`);
  code = 1;
}
process.stdout.write('', () => process.exit(code));
