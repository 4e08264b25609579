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
}

export interface ConnectOptions {
  /** The ws-bridge URL, e.g. `ws://127.0.0.1:8080/pop3`. */
  bridge: string;
  host: string;
  /** Default: 995 for `implicit`, 110 otherwise. */
  port?: number;
  /** Default: `implicit`. */
  tls?: TlsMode;
  /** Bridge access token, when the bridge requires one. */
  token?: string;
  /** Deadline for each step and each command, in ms. Default 30000. */
  timeoutMs?: number;
  /** A WebSocket constructor for runtimes without a global one. */
  WebSocket?: unknown;
  onTranscript?: (line: TranscriptLine) => void;
  /** Allow readable credentials (USER/PASS, PLAIN) without TLS to the server. */
  allowInsecureAuth?: boolean;
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

export class Pop3Client {
  private constructor();
  static connect(options: ConnectOptions): Promise<Pop3Client>;
  /** The greeting text after `+OK `. */
  readonly greeting: string | undefined;
  readonly tls: TlsInfo | null;
  readonly state: 'AUTHORIZATION' | 'TRANSACTION' | 'CLOSED';
  /** Spec deviations of the server that the client tolerated. */
  readonly deviations: Deviation[];
  capa(): Promise<Capabilities>;
  /** Logs in with the strongest mechanism offered; resolves to its name. */
  login(user: string, password: string): Promise<string>;
  auth(mechanism: string, credentials: { username: string; password?: string; token?: string }): Promise<string>;
  apop(user: string, password: string): Promise<string>;
  stat(): Promise<{ count: number; size: number }>;
  list(): Promise<Array<{ id: number; size: number }>>;
  list(id: number): Promise<{ id: number; size: number }>;
  uidl(): Promise<Array<{ id: number; uid: string }>>;
  uidl(id: number): Promise<{ id: number; uid: string }>;
  top(id: number, lines: number): Promise<Uint8Array>;
  retr(id: number): Promise<Uint8Array>;
  dele(id: number): Promise<string>;
  rset(): Promise<string>;
  noop(): Promise<string>;
  /** One command line as typed; `-ERR` resolves (ok: false) rather than rejects. */
  raw(line: string): Promise<RawReply>;
  /** QUIT: commits deletions and closes. */
  quit(): Promise<string>;
  /** Drops the session without QUIT: nothing marked is deleted. */
  close(): void;
  /** Frees the wasm side (closes without QUIT). */
  free(): void;
}
