// Generated from the Rust side (pop3_wasm::proto::ErrorCode, pop3_wasm::wire::TlsReason)
// by pop3-wasm/tests/js_codes.rs: do not edit. After changing the lists, run
// `POP3_WASM_BLESS=1 cargo test -p pop3-wasm --test js_codes`.

/** `Pop3Error.code`: what went wrong. */
export declare const ErrorCode: {
  /** The WebSocket to the bridge could not be opened. */
  readonly BRIDGE_UNREACHABLE: 'BRIDGE_UNREACHABLE';
  /** The bridge refused the session: policy, origin, token, limits, or end-to-end TLS required. */
  readonly BRIDGE_REJECTED: 'BRIDGE_REJECTED';
  /** The TCP connection to the server failed. */
  readonly CONNECT_FAILED: 'CONNECT_FAILED';
  /** TLS to the server failed (`reason` says why: untrusted, expired, wrong-name, …). */
  readonly TLS_FAILED: 'TLS_FAILED';
  /** The server refused the credentials, or the SASL exchange failed. */
  readonly AUTH_FAILED: 'AUTH_FAILED';
  /** The server answered -ERR (`respCode`, `serverText`). */
  readonly SERVER_ERROR: 'SERVER_ERROR';
  /** The server (or the bridge) sent something that is not the protocol. */
  readonly PROTOCOL_ERROR: 'PROTOCOL_ERROR';
  /** No answer within the deadline; the session was dropped. */
  readonly TIMEOUT: 'TIMEOUT';
  /** The connection ended; nothing marked was deleted. */
  readonly CONNECTION_CLOSED: 'CONNECTION_CLOSED';
  /** The command is not valid in this state; nothing was sent. */
  readonly INVALID_STATE: 'INVALID_STATE';
  /** The server, the bridge or this runtime does not offer what was asked. */
  readonly UNSUPPORTED: 'UNSUPPORTED';
  /** A readable password was not sent over a connection without TLS. */
  readonly INSECURE_AUTH_REFUSED: 'INSECURE_AUTH_REFUSED';
  /** An argument or option is not valid; nothing was sent. */
  readonly INVALID_ARGUMENT: 'INVALID_ARGUMENT';
};
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** `Pop3Error.reason` on TLS_FAILED: why, in one word. */
export declare const TlsReason: {
  /** Pop3Error.reason on TLS_FAILED: certificate not trusted (unknown issuer). */
  readonly UNTRUSTED: 'untrusted';
  /** Pop3Error.reason on TLS_FAILED: certificate expired. */
  readonly EXPIRED: 'expired';
  /** Pop3Error.reason on TLS_FAILED: certificate not yet valid. */
  readonly NOT_YET_VALID: 'not-yet-valid';
  /** Pop3Error.reason on TLS_FAILED: certificate not valid for the host name. */
  readonly WRONG_NAME: 'wrong-name';
  /** Pop3Error.reason on TLS_FAILED: invalid certificate. */
  readonly BAD_CERTIFICATE: 'bad-certificate';
  /** Pop3Error.reason on TLS_FAILED: server sent a TLS alert. */
  readonly ALERT: 'alert';
  /** Pop3Error.reason on TLS_FAILED: TLS handshake failed. */
  readonly PROTOCOL: 'protocol';
  /** Pop3Error.reason on TLS_FAILED: server closed the connection during the TLS handshake. */
  readonly TRUNCATED: 'truncated';
};
export type TlsReason = (typeof TlsReason)[keyof typeof TlsReason];
