// Types for the `pop3-wasm` package (Node and browser entries share them).
// Generated from the Rust side: the client's API and the shapes it returns
// are declared next to the code that makes them (typescript_custom_section
// in pop3-wasm/src/wasm, written into pkg/pop3_wasm.d.ts by wasm-bindgen);
// the error codes come from the Rust lists (error-codes.d.ts).
export { Pop3Client } from '../pkg/pop3_wasm.js';
export type {
  CallOptions,
  CapaHistory,
  Capabilities,
  CertificateDetails,
  ConnectOptions,
  Deviation,
  Mechanism,
  Phase,
  Progress,
  RawReply,
  Summary,
  TlsInfo,
  TlsMode,
  TranscriptLine,
} from '../pkg/pop3_wasm.js';
export { Pop3Error } from './errors.js';
export { ErrorCode, TlsReason } from './error-codes.js';
