#!/usr/bin/env node
// pop3-exporter: see exporter.js, or `pop3-exporter --help`.
import { main } from './exporter.js';

let code;
try {
  code = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`pop3-exporter: internal error: ${e?.stack ?? e}\n`);
  code = 1;
}
process.stderr.write('', () => process.exit(code));
