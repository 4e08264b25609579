// Types of diagnose.js and of the report the core writes
// (pop3-wasm/src/diagnose/report.rs: the JSON's fields one for one).
import type { CertificateDetails, ConnectOptions, Mechanism, TlsMode, TranscriptLine } from '../pkg/pop3_wasm.js';
import type { ErrorCode, TlsReason } from './error-codes.js';

/** `connect`'s options (`token` is still the bridge's access token) plus what to log in with. */
export interface DiagnoseOptions extends Omit<ConnectOptions, 'manualStls'> {
  /** The user to log in as; without one the diagnosis stops after CAPA. */
  user?: string;
  password?: string;
  /** An OAuth 2.0 access token (XOAUTH2, OAUTHBEARER) instead of a password. */
  oauthToken?: string;
  /** A mechanism to force (`auto`: the strongest usable, or OAUTHBEARER/XOAUTH2 with a token). */
  mechanism?: Mechanism | 'auto' | string;
}

export type DiagnosisStepName =
  | 'connect'
  | 'tls'
  | 'greeting'
  | 'capa'
  | 'stls'
  | 'capa-after-stls'
  | 'auth'
  | 'capa-after-login'
  | 'stat'
  | 'uidl';

export interface DiagnosisStep {
  name: DiagnosisStepName;
  /** It ran and passed (maybe with a warning). */
  ok: boolean;
  status: 'pass' | 'warn' | 'fail' | 'skip';
  /** The client's own time for the step; null where it cannot tell it apart or it did not run. */
  ms: number | null;
  detail: string;
  /** What to do about a failure or a warning. */
  hint: string | null;
}

export interface CapabilityChange {
  from: 'beforeStls' | 'afterStls';
  to: 'afterStls' | 'afterLogin';
  added: string[];
  removed: string[];
  changed: Array<{ before: string; after: string }>;
}

export interface Diagnosis {
  /** No step failed. */
  ok: boolean;
  target: {
    host: string;
    port: number;
    tls: TlsMode;
    endToEnd: boolean;
    via: 'bridge' | 'direct';
    bridge: string | null;
    user: string | null;
    /** What was given to log in with (never the value). */
    credential: 'password' | 'token' | null;
    mechanism: string | null;
  };
  /** The session's time, from the start to the end of its last step, in ms. */
  ms: number | null;
  /** In the order they ran. */
  steps: DiagnosisStep[];
  /** The greeting line, `+OK …`. */
  greeting: string | null;
  provider: { id: 'gmail' | 'microsoft' | 'yahoo'; name: string } | null;
  tls: {
    /** Null when the handshake failed (the chain is then what the server showed). */
    protocol: string | null;
    cipher: string | null;
    endToEnd: boolean;
    /** Where TLS ends: the bridge, this client (end to end), or Node's TLS. */
    ends: 'bridge' | 'client' | 'transport';
    certificate: { subject: string; issuer: string; notAfter: string } | null;
    /** Whole days until the certificate expires (negative: expired). */
    days: number | null;
    /** The names the leaf certificate has (DNS, then IP addresses), when known. */
    names: string[];
    /** Whether the certificate names the host; null when nobody could tell. */
    nameMatches: boolean | null;
    /** End to end: every certificate as the server sent it, leaf first; else null. */
    chain: CertificateDetails[] | null;
    /** Why there is no chain (the bridge and Node report the leaf only). */
    chainNote: string | null;
  } | null;
  capabilities: {
    beforeStls: string[] | null;
    afterStls: string[] | null;
    afterLogin: string[] | null;
    changes: CapabilityChange[];
  };
  mechanisms: { offered: Mechanism[]; usable: Mechanism[]; sasl: string[]; used: string | null; forced: string | null };
  apop: { usable: boolean };
  extensions: {
    pipelining: boolean;
    pipeliningUsed: boolean;
    respCodes: boolean;
    authRespCode: boolean;
    top: boolean;
    uidl: boolean;
    user: boolean;
    stls: boolean;
    utf8: boolean;
    loginDelay: { seconds: number; perUser: boolean } | null;
    expire: { value: string; perUser: boolean } | null;
    implementation: string | null;
  };
  mailbox: { count: number; size: number } | null;
  /** UIDL sanity (RFC 1939 § 7: unique, 0x21-0x7E, at most 70 characters). */
  uidl:
    | {
        supported: true;
        ok: boolean;
        count: number;
        longest: number;
        duplicates: Array<{ uid: string; ids: number[] }>;
        duplicateCount: number;
        unprintable: number[];
        unprintableCount: number;
        tooLong: number[];
        tooLongCount: number;
        malformed: string[];
        malformedCount: number;
      }
    | { supported: false; serverText: string }
    | null;
  deviations: Array<{ id: string; description: string }>;
  /** What ended the diagnosis early. */
  error: { code: ErrorCode; message: string; respCode: string | null; serverText: string | null; reason: TlsReason | null } | null;
  /** A second connection in the other TLS mode, when a failure hinted at it. */
  probe: { tls: TlsMode; saw: 'plain' | 'tls' | 'nothing'; greeting?: string; stls?: boolean; detail?: string } | null;
  notes: string[];
  /** Always true: a diagnosis never sends QUIT, so nothing is committed. */
  closedWithoutQuit: true;
  /** When the diagnosis started (ISO 8601). */
  startedAt: string;
  /** The dialogue, secrets redacted. */
  transcript: TranscriptLine[];
}

export declare function makeDiagnose(
  load: () => Promise<unknown>,
  prepare?: (options: object) => object,
): (options: DiagnoseOptions) => Promise<Diagnosis>;

/** The report as plain text (what `pop3-check --serverinfo` prints). */
export declare function reportText(report: Diagnosis): string;
/** The report as Markdown, for a ticket. */
export declare function reportMarkdown(report: Diagnosis): string;
/** `OK`, `OK, with warnings`, or `FAILED at <step>`. */
export declare function verdict(report: Diagnosis): string;
export declare function formatMs(ms: number | null | undefined): string;
/** How the steps came out: the first failed step, else whether any warned. */
export declare function outcome(report: Diagnosis): { status: 'pass' | 'warn' | 'fail'; step: string | null };
/** A report's `target.tls` in words: `implicit TLS`, `STLS`, `no TLS`. */
export declare function tlsModeText(mode: string): string;
