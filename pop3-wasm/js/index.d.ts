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
export { reportMarkdown, reportText } from './diagnose.js';
export type { CapabilityChange, DiagnoseOptions, Diagnosis, DiagnosisStep, DiagnosisStepName } from './diagnose.js';

import type { DiagnoseOptions, Diagnosis } from './diagnose.js';
/**
 * The analyzer: one session step by step (connect, TLS, greeting, CAPA,
 * STLS, login, STAT, UIDL; never QUIT), each step timed by the client, with
 * what to do about a failure. Resolves whatever the server does; rejects
 * only for invalid options (INVALID_ARGUMENT). Loads its own wasm module
 * (the TLS-capable client plus the rules) on the first call.
 */
export declare function diagnose(options: DiagnoseOptions): Promise<Diagnosis>;
