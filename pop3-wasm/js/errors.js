export { ErrorCode, TlsReason } from './error-codes.js';

// The one error class every failing call rejects with. `code` is one of the
// documented codes (see README); `respCode` and `serverText` carry what the
// server said, when it said something; `reason`, on TLS_FAILED, says why in
// one word (untrusted, expired, not-yet-valid, wrong-name, …).
export class Pop3Error extends Error {
  constructor(message, { code, respCode = null, serverText = null, reason } = {}) {
    super(message);
    this.name = 'Pop3Error';
    this.code = code;
    this.respCode = respCode;
    this.serverText = serverText;
    if (reason !== undefined) this.reason = reason;
  }
}
