// Browser entry (no bundler needed; Vite handles it too): fetches the .wasm
// next to this module and uses the page's WebSocket. The TLS-capable module
// is fetched only by the first session that asks for `endToEnd`.
import init, * as plain from '../pkg/pop3_wasm.js';
import { ErrorCode, Pop3Error, TlsReason } from './errors.js';
import { makeDiagnose, reportMarkdown, reportText } from './diagnose.js';
import { pop3Client } from './entry.js';

await init({ module_or_path: new URL('../pkg/pop3_wasm_bg.wasm', import.meta.url) });
plain.configure(Pop3Error, undefined);

const Pop3Client = pop3Client(plain, async () => {
  const m = await import('../pkg/pop3_wasm_tls.js');
  await m.default({ module_or_path: new URL('../pkg/pop3_wasm_tls_bg.wasm', import.meta.url) });
  m.configure(Pop3Error, undefined);
  return m;
});

/** The analyzer (diagnose.js): its module is fetched by the first call only. */
const diagnose = makeDiagnose(async () => {
  const m = await import('../pkg/pop3_wasm_diag.js');
  await m.default({ module_or_path: new URL('../pkg/pop3_wasm_diag_bg.wasm', import.meta.url) });
  m.configure(Pop3Error, undefined);
  return m;
});

export { ErrorCode, Pop3Client, Pop3Error, TlsReason, diagnose, reportMarkdown, reportText };
