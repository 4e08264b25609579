// Generated from the Rust side (pop3_wasm::proto::ErrorCode, pop3_wasm::wire::TlsReason)
// by pop3-wasm/tests/js_codes.rs: do not edit. After changing the lists, run
// `POP3_WASM_BLESS=1 cargo test -p pop3-wasm --test js_codes`.

/** `Pop3Error.code`: what went wrong. */
export const ErrorCode = Object.freeze({
  /** The WebSocket to the bridge could not be opened. */
  BRIDGE_UNREACHABLE: 'BRIDGE_UNREACHABLE',
  /** The bridge refused the session: policy, origin, token, limits, or end-to-end TLS required. */
  BRIDGE_REJECTED: 'BRIDGE_REJECTED',
  /** The TCP connection to the server failed. */
  CONNECT_FAILED: 'CONNECT_FAILED',
  /** TLS to the server failed (`reason` says why: untrusted, expired, wrong-name, …). */
  TLS_FAILED: 'TLS_FAILED',
  /** The server refused the credentials, or the SASL exchange failed. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** The server answered -ERR (`respCode`, `serverText`). */
  SERVER_ERROR: 'SERVER_ERROR',
  /** The server (or the bridge) sent something that is not the protocol. */
  PROTOCOL_ERROR: 'PROTOCOL_ERROR',
  /** No answer within the deadline; the session was dropped. */
  TIMEOUT: 'TIMEOUT',
  /** The connection ended; nothing marked was deleted. */
  CONNECTION_CLOSED: 'CONNECTION_CLOSED',
  /** The command is not valid in this state; nothing was sent. */
  INVALID_STATE: 'INVALID_STATE',
  /** The server, the bridge or this runtime does not offer what was asked. */
  UNSUPPORTED: 'UNSUPPORTED',
  /** A readable password was not sent over a connection without TLS. */
  INSECURE_AUTH_REFUSED: 'INSECURE_AUTH_REFUSED',
  /** An argument or option is not valid; nothing was sent. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
});

/** `Pop3Error.reason` on TLS_FAILED: why, in one word. */
export const TlsReason = Object.freeze({
  /** Pop3Error.reason on TLS_FAILED: certificate not trusted (unknown issuer). */
  UNTRUSTED: 'untrusted',
  /** Pop3Error.reason on TLS_FAILED: certificate expired. */
  EXPIRED: 'expired',
  /** Pop3Error.reason on TLS_FAILED: certificate not yet valid. */
  NOT_YET_VALID: 'not-yet-valid',
  /** Pop3Error.reason on TLS_FAILED: certificate not valid for the host name. */
  WRONG_NAME: 'wrong-name',
  /** Pop3Error.reason on TLS_FAILED: invalid certificate. */
  BAD_CERTIFICATE: 'bad-certificate',
  /** Pop3Error.reason on TLS_FAILED: server sent a TLS alert. */
  ALERT: 'alert',
  /** Pop3Error.reason on TLS_FAILED: TLS handshake failed. */
  PROTOCOL: 'protocol',
  /** Pop3Error.reason on TLS_FAILED: server closed the connection during the TLS handshake. */
  TRUNCATED: 'truncated',
});
