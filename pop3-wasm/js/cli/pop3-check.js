#!/usr/bin/env node
// pop3-check: see check.js, or `pop3-check --help`.
import { main, UNKNOWN } from './check.js';

let code;
try {
  code = await main(process.argv.slice(2));
} catch (e) {
  process.stdout.write(`POP3 UNKNOWN - internal error: ${e?.message ?? e}\n`);
  code = UNKNOWN;
}
// Exit at once, with every line written: a monitoring run must not linger.
process.stdout.write('', () => process.exit(code));
