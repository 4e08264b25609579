// Browser entry (no bundler needed; Vite handles it too): fetches the .wasm
// next to this module and uses the page's WebSocket.
import init, { configure, Pop3Client } from '../pkg/pop3_wasm.js';
import { Pop3Error } from './errors.js';

await init({ module_or_path: new URL('../pkg/pop3_wasm_bg.wasm', import.meta.url) });
configure(Pop3Error, undefined);

export { Pop3Client, Pop3Error };
