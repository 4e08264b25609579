// Node entry: loads the .wasm synchronously from disk. Node 20 has no global
// WebSocket, so the `ws` package stands in for it (the global one is used
// where present, and a `WebSocket` option always wins).
//
// Without `bridge`, `Pop3Client.connect` connects directly: the client
// drives a byte pipe over node:net (direct.js), with Node's TLS, or its
// own (rustls, the TLS-capable module) when `endToEnd: true`.
import { readFileSync } from 'node:fs';
import * as plain from '../pkg/pop3_wasm.js';
import { ErrorCode, Pop3Error, TlsReason } from './errors.js';
import { directTransport } from './direct.js';
import { makeDiagnose, reportMarkdown, reportText } from './diagnose.js';
import { pop3Client } from './entry.js';

const WebSocketImpl = globalThis.WebSocket ?? (await import('ws')).WebSocket;

function ready(m, name) {
  m.initSync({ module: readFileSync(new URL(`../pkg/${name}_bg.wasm`, import.meta.url)) });
  m.configure(Pop3Error, WebSocketImpl);
  return m;
}

ready(plain, 'pop3_wasm');

/** What `bridge` reads in direct mode (only ever seen in messages). */
export const DIRECT = 'direct:';

/** Without `bridge` (or with DIRECT): a byte pipe over node:net. */
function direct(opts) {
  if (!opts || typeof opts !== 'object' || (opts.bridge !== undefined && opts.bridge !== null && opts.bridge !== DIRECT)) {
    return opts;
  }
  const { bridge, ...rest } = opts;
  return { ...rest, transport: directTransport({ ca: opts.ca }) };
}

const Pop3Client = pop3Client(plain, async () => ready(await import('../pkg/pop3_wasm_tls.js'), 'pop3_wasm_tls'), direct);

/** The analyzer (diagnose.js): its module is loaded by the first call. */
const diagnose = makeDiagnose(async () => ready(await import('../pkg/pop3_wasm_diag.js'), 'pop3_wasm_diag'), direct);

export { ErrorCode, Pop3Client, Pop3Error, TlsReason, diagnose, reportMarkdown, reportText };
