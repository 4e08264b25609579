// Types for the `pop3-wasm` package (Node and browser entries share them).

export type TlsMode = 'implicit' | 'starttls' | 'none';

export type ErrorCode =
  | 'BRIDGE_UNREACHABLE'
  | 'BRIDGE_REJECTED'
  | 'CONNECT_FAILED'
  | 'TLS_FAILED'
  | 'AUTH_FAILED'
  | 'SERVER_ERROR'
  | 'PROTOCOL_ERROR'
  | 'TIMEOUT'
  | 'CONNECTION_CLOSED'
  | 'INVALID_STATE'
  | 'UNSUPPORTED'
  | 'INSECURE_AUTH_REFUSED'
  | 'INVALID_ARGUMENT';

export class Pop3Error extends Error {
  constructor(message: string, fields?: { code: ErrorCode; respCode?: string | null; serverText?: string | null });
  readonly name: 'Pop3Error';
  /** What went wrong, from the documented list. */
  readonly code: ErrorCode;
  /** RFC 2449/3206 response code the server sent (`SYS/TEMP`, `IN-USE`, `AUTH`, …). */
  readonly respCode: string | null;
  /** The server's text after `-ERR`, when the server said something. */
  readonly serverText: string | null;
}

export interface TranscriptLine {
  /** `C`: client to server; `S`: server to client. */
  dir: 'C' | 'S';
  /** The line without CRLF; passwords and SASL data read `[redacted]`. */
  line: string;
  /** On the status line that answers a command: ms since the command was sent. */
  latencyMs?: number;
}

/** Options every call takes as its last argument. */
export interface CallOptions {
  /** Aborting drops the session (no QUIT) and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** This call's deadline; default: the connection's `timeouts.command`. */
  timeoutMs?: number;
}

export interface ConnectOptions {
  /**
   * The ws-bridge URL, e.g. `ws://127.0.0.1:8080/pop3`. Required in browsers;
   * in Node, leaving it out connects directly (node:net / node:tls).
   */
  bridge?: string;
  host: string;
  /** Default: 995 for `implicit`, 110 otherwise. */
  port?: number;
  /** Default: `implicit`. */
  tls?: TlsMode;
  /** Bridge access token, when the bridge requires one. */
  token?: string;
  /** Deadline for each step and each command, in ms. Default 30000. */
  timeoutMs?: number;
  /** Per phase deadlines, each defaulting to `timeoutMs`. */
  timeouts?: { connect?: number; tls?: number; greeting?: number; command?: number };
  /** Aborts connecting (and drops the session). */
  signal?: AbortSignal;
  /** Set false to stay in lockstep even when the server offers PIPELINING. */
  pipelining?: boolean;
  /**
   * The most commands in flight at once when pipelining (1–4096, default
   * 4096). Below this cap, at most 16 KiB of commands are sent and not yet
   * answered, which is what decides with the default.
   */
  pipelineWindow?: number;
  /**
   * The longest body `retr()` and `top()` collect whole, in octets (an
   * integer up to 2147483647). Default 134217728 (128 MiB). A longer body
   * ends the session with `PROTOCOL_ERROR` (no QUIT, nothing deleted);
   * `retrStream()` and `topStream()` have no such limit.
   */
  maxBodyBytes?: number;
  /** Send NOOP after this many idle ms in TRANSACTION state. */
  keepaliveMs?: number;
  /** A WebSocket constructor for runtimes without a global one. */
  WebSocket?: unknown;
  onTranscript?: (line: TranscriptLine) => void;
  /** Allow readable credentials (USER/PASS, PLAIN) without TLS to the server. */
  allowInsecureAuth?: boolean;
  /**
   * Node, direct mode only (no `bridge`): CA certificates (PEM) trusted for
   * the server's certificate besides Node's built-in roots.
   */
  ca?: string | Uint8Array | Array<string | Uint8Array>;
}

export interface TlsInfo {
  protocol: string;
  cipher: string;
  certificate: { subject: string; issuer: string; notAfter: string };
}

export interface Capabilities {
  /** Every CAPA line as sent. */
  raw: string[];
  top: boolean;
  uidl: boolean;
  user: boolean;
  pipelining: boolean;
  respCodes: boolean;
  authRespCode: boolean;
  stls: boolean;
  /** SASL mechanisms, upper case. */
  sasl: string[];
  utf8: boolean;
  utf8Args: string[];
  loginDelay: number | null;
  /** `NEVER` or a number of days. */
  expire: string | null;
  implementation: string | null;
}

/** The latest CAPA of each step of a session (null where there was none). */
export interface CapaHistory {
  /** In AUTHORIZATION before any STLS (on implicit TLS: before login). */
  beforeStls: Capabilities | null;
  /** In AUTHORIZATION after STLS upgraded the connection. */
  afterStls: Capabilities | null;
  /** In TRANSACTION. */
  afterLogin: Capabilities | null;
}

export interface RawReply {
  ok: boolean;
  status: '+OK' | '-ERR';
  respCode: string | null;
  text: string;
  /** The unstuffed body of a multi-line answer, else null. */
  body: Uint8Array | null;
}

export interface Deviation {
  id: string;
  description: string;
}

export interface Summary {
  id: number;
  uid: string | null;
  size: number | null;
  /** `Name <address>` or the bare address, decoded (RFC 2047). */
  from: string | null;
  to: string | null;
  subject: string | null;
  /** RFC 3339 with the header's own offset. */
  date: string | null;
  /** Without angle brackets. */
  messageId: string | null;
  /** Set when the server refused one of this message's commands. */
  error: string | null;
}

export type Progress = (done: number, total: number | null) => void;

export type Mechanism =
  | 'SCRAM-SHA-256'
  | 'SCRAM-SHA-1'
  | 'CRAM-MD5'
  | 'APOP'
  | 'PLAIN'
  | 'LOGIN'
  | 'USER'
  | 'XOAUTH2'
  | 'OAUTHBEARER';

export class Pop3Client {
  private constructor();
  static connect(options: ConnectOptions): Promise<Pop3Client>;
  /** The greeting text after `+OK `. */
  readonly greeting: string | undefined;
  readonly tls: TlsInfo | null;
  readonly state: 'AUTHORIZATION' | 'TRANSACTION' | 'CLOSED';
  /** Whether commands are pipelined (the server announced PIPELINING). */
  readonly pipelining: boolean;
  /** Spec deviations of the server that the client tolerated. */
  readonly deviations: Deviation[];
  /** The latest CAPA the client has (it asks at connect, after STLS and after login), or null. */
  readonly capabilities: Capabilities | null;
  /** The latest CAPA of each step: before STLS, after STLS, after login. */
  readonly capaHistory: CapaHistory;
  /**
   * The mechanisms `login()` would try now, strongest first: those offered,
   * less the readable ones without TLS unless `allowInsecureAuth` (none once
   * logged in).
   */
  readonly loginMechanisms: Mechanism[];
  /** Whether the greeting has a valid RFC 1939 timestamp: the only case APOP is used (CVE-2007-1558). */
  readonly apopUsable: boolean;
  capa(options?: CallOptions): Promise<Capabilities>;
  /**
   * Logs in with the strongest mechanism offered (SCRAM-SHA-256 > SCRAM-SHA-1 >
   * CRAM-MD5 > APOP > PLAIN > LOGIN > USER; readable ones only over TLS unless
   * allowInsecureAuth); resolves to its name.
   */
  login(user: string, password: string, options?: CallOptions): Promise<Mechanism>;
  /** A forced mechanism; OAuth ones take `token` instead of `password`. */
  auth(
    mechanism: Mechanism | string,
    credentials: { username: string; password?: string; token?: string },
    options?: CallOptions,
  ): Promise<Mechanism>;
  apop(user: string, password: string, options?: CallOptions): Promise<'APOP'>;
  stat(options?: CallOptions): Promise<{ count: number; size: number }>;
  list(options?: CallOptions): Promise<Array<{ id: number; size: number }>>;
  list(id: number, options?: CallOptions): Promise<{ id: number; size: number }>;
  uidl(options?: CallOptions): Promise<Array<{ id: number; uid: string }>>;
  uidl(id: number, options?: CallOptions): Promise<{ id: number; uid: string }>;
  top(id: number, lines: number, options?: CallOptions): Promise<Uint8Array>;
  retr(id: number, options?: CallOptions & { onProgress?: (received: number, total: number | null) => void }): Promise<Uint8Array>;
  /** The body as a stream (resolves on `+OK`); the socket pauses while the stream is full. */
  retrStream(id: number, options?: CallOptions): Promise<ReadableStream<Uint8Array>>;
  topStream(id: number, lines: number, options?: CallOptions): Promise<ReadableStream<Uint8Array>>;
  /** LIST + UIDL + TOP n 0, pipelined, headers decoded. */
  summaries(options?: CallOptions & { onProgress?: Progress }): Promise<Summary[]>;
  summaries(ids: number[], options?: CallOptions & { onProgress?: Progress }): Promise<Summary[]>;
  retrMany(
    ids: number[],
    options?: CallOptions & { onProgress?: Progress },
  ): Promise<Array<{ id: number; body: Uint8Array | null; error: Pop3Error | null }>>;
  /** Marks many messages; nothing is deleted until `quit()`. */
  deleMany(ids: number[], options?: CallOptions): Promise<Array<{ id: number; error: Pop3Error | null }>>;
  dele(id: number, options?: CallOptions): Promise<string>;
  rset(options?: CallOptions): Promise<string>;
  noop(options?: CallOptions): Promise<string>;
  /** One command line as typed; `-ERR` resolves (ok: false) rather than rejects. */
  raw(line: string, options?: CallOptions): Promise<RawReply>;
  /** QUIT: commits deletions and closes. */
  quit(options?: CallOptions): Promise<string>;
  /** Drops the session without QUIT: nothing marked is deleted. */
  close(): void;
  /** Frees the wasm side (closes without QUIT). */
  free(): void;
}
