// Node entry: loads the .wasm synchronously from disk. Node 20 has no global
// WebSocket, so the `ws` package stands in for it (the global one is used
// where present, and a `WebSocket` option always wins).
import { readFileSync } from 'node:fs';
import { initSync, configure, Pop3Client } from '../pkg/pop3_wasm.js';
import { Pop3Error } from './errors.js';

initSync({ module: readFileSync(new URL('../pkg/pop3_wasm_bg.wasm', import.meta.url)) });
const WebSocketImpl = globalThis.WebSocket ?? (await import('ws')).WebSocket;
configure(Pop3Error, WebSocketImpl);

export { Pop3Client, Pop3Error };
