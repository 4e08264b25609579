// Node entry: loads the .wasm synchronously from disk. Node 20 has no global
// WebSocket, so the `ws` package stands in for it (the global one is used
// where present, and a `WebSocket` option always wins).
//
// Without `bridge`, `Pop3Client.connect` connects directly (node:net /
// node:tls) through the direct transport, which speaks the bridge's wire
// format in-process: the same wasm client, the same errors.
import { readFileSync } from 'node:fs';
import { initSync, configure, Pop3Client } from '../pkg/pop3_wasm.js';
import { Pop3Error } from './errors.js';
import { directError, directWebSocket } from './direct.js';

initSync({ module: readFileSync(new URL('../pkg/pop3_wasm_bg.wasm', import.meta.url)) });
const WebSocketImpl = globalThis.WebSocket ?? (await import('ws')).WebSocket;
configure(Pop3Error, WebSocketImpl);

/** What `bridge` reads in direct mode (only ever seen in messages). */
export const DIRECT = 'direct:';

function validCa(ca) {
  const one = (x) => typeof x === 'string' || Buffer.isBuffer(x) || x instanceof Uint8Array;
  return ca === undefined || ca === null || one(ca) || (Array.isArray(ca) && ca.every(one));
}

const bridged = Pop3Client.connect;
Pop3Client.connect = function connect(opts) {
  if (!opts || typeof opts !== 'object' || (opts.bridge !== undefined && opts.bridge !== null)) {
    return bridged.call(this, opts);
  }
  const { ca, ...rest } = opts;
  if (!validCa(ca)) {
    return Promise.reject(
      new Pop3Error('`ca` must be a PEM string or Buffer, or an array of them', { code: 'INVALID_ARGUMENT' }),
    );
  }
  const WebSocket = directWebSocket({ ca });
  return bridged.call(this, { ...rest, bridge: DIRECT, WebSocket }).catch((e) => {
    // The transport answers in the bridge's words; there is no bridge here.
    throw e instanceof Pop3Error ? directError(e) : e;
  });
};

export { Pop3Client, Pop3Error };
