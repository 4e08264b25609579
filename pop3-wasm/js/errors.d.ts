// Types of errors.js (hand-written: it is a small JS class; the codes are
// generated from the Rust side, error-codes.d.ts).
import type { ErrorCode, TlsReason } from './error-codes.js';
export { ErrorCode, TlsReason } from './error-codes.js';

export class Pop3Error extends Error {
  constructor(
    message: string,
    fields?: { code: ErrorCode; respCode?: string | null; serverText?: string | null; reason?: TlsReason },
  );
  readonly name: 'Pop3Error';
  /** What went wrong, from the documented list (`ErrorCode`). */
  readonly code: ErrorCode;
  /** RFC 2449/3206 response code the server sent (`SYS/TEMP`, `IN-USE`, `AUTH`, …). */
  readonly respCode: string | null;
  /** The server's text after `-ERR`, when the server said something. */
  readonly serverText: string | null;
  /** `TLS_FAILED` only: why (untrusted, expired, not-yet-valid, wrong-name, …). */
  readonly reason?: TlsReason;
}
