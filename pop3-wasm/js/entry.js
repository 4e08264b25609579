// What the Node and browser entries share: one `Pop3Client` over the two
// wasm modules. The default module (no TLS inside) serves every session
// that does not ask for `endToEnd`; the TLS-capable one (rustls, ~300 KiB
// more) is loaded by the first session that does, and only then.
import { ErrorCode, Pop3Error } from './errors.js';

/**
 * `plain`: the default module, ready. `loadTls()`: resolves the TLS-capable
 * module, ready (called once, on the first end-to-end session).
 * `prepare(opts)`: the entry's own options (the Node entry's direct
 * transport). Returns the `Pop3Client` to export.
 */
export function pop3Client(plain, loadTls, prepare = (opts) => opts) {
  const Pop3Client = plain.Pop3Client;
  let loading = null;
  let tls = null; // the TLS-capable module, once loaded
  const connect = Pop3Client.connect;
  Pop3Client.connect = function (opts) {
    let prepared;
    try {
      prepared = prepare(opts);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!opts?.endToEnd) return connect.call(Pop3Client, prepared);
    loading ??= loadTls().then(
      (m) => (tls = m),
      (e) => {
        loading = null;
        throw new Pop3Error(`the TLS-capable module did not load: ${e?.message ?? e}`, { code: ErrorCode.UNSUPPORTED });
      },
    );
    return loading.then((m) => m.Pop3Client.connect(prepared));
  };
  // A session of either module is a Pop3Client.
  Object.defineProperty(Pop3Client, Symbol.hasInstance, {
    value: (x) => Function.prototype[Symbol.hasInstance].call(Pop3Client, x) || (tls !== null && x instanceof tls.Pop3Client),
  });
  return Pop3Client;
}
