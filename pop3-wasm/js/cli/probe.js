// One timed mailbox check, the part pop3-check and pop3-exporter share:
// connect (directly or through ws-bridge), log in, STAT, with the time of
// each phase, then drop the connection without QUIT, so a check commits
// nothing. The callers add their own steps through two hooks and turn the
// result into a status line (pop3-check) or metrics (pop3-exporter).
import { ErrorCode, Pop3Error, login, open } from './common.js';

/**
 * Milliseconds each phase took (null: not measured). The connect sequence's
 * steps are the client's own (`onPhase`, the core's phases):
 *   connect   the transport (through a bridge: WebSocket + the bridge's
 *             connect, and the bridge's handshake too for implicit TLS)
 *   tls       the implicit TLS handshake done by the client or Node (direct,
 *             or end to end), or STLS + handshake (starttls)
 *   greeting  from the connection being ready to the server's greeting
 *   auth      the login, including the CAPA the client asks after it
 *   stat      STAT
 *   list      what the afterStat hook timed as `list` (pop3-check --expect)
 *   total     the whole check, from start to disconnect
 */
export function phases(marks, t) {
  const d = (a, b) => (a !== undefined && b !== undefined ? b - a : null);
  const step = (name) => marks.phases?.find((p) => p.name === name)?.ms ?? null;
  return {
    connect: step('connect'),
    tls: t.tls === 'starttls' ? step('stls') : step('tls'),
    greeting: step('greeting'),
    auth: marks.auth ?? null,
    stat: marks.stat ?? null,
    list: marks.list ?? null,
    total: d(marks.start, marks.end),
  };
}

/**
 * Why a login was refused, as a metric label: `auth` (the credentials),
 * `in_use` (RFC 2449 IN-USE: another session holds the mailbox),
 * `login_delay` (RFC 2449 LOGIN-DELAY: too soon after the last login),
 * `sys_temp` / `sys_perm` (RFC 3206: the server's own trouble), `server`
 * (another code). The client reports a -ERR to PASS, APOP or AUTH as
 * AUTH_FAILED unless its response code says the credentials were not the
 * problem; then it is SERVER_ERROR with that `respCode`.
 */
export function loginFailureReason(e) {
  if (e?.code === ErrorCode.AUTH_FAILED) return 'auth';
  if (e?.code !== ErrorCode.SERVER_ERROR) return null;
  const code = String(e.respCode ?? '').toUpperCase();
  return { 'IN-USE': 'in_use', 'LOGIN-DELAY': 'login_delay', 'SYS/TEMP': 'sys_temp', 'SYS/PERM': 'sys_perm' }[code] ?? 'server';
}

/** The plain-object form of a failure, for results and JSON. */
export function errorOf(e) {
  const out = { code: e?.code ?? 'INTERNAL', message: e?.message ?? String(e) };
  if (e?.respCode) out.respCode = e.respCode;
  return out;
}

/**
 * Runs one check of target `t` (common.js's target shape) logging in with
 * what `getSecret()` resolves (`{ password }` or `{ token }`, as
 * credentials().get() gives; asked before the clock starts, since a token
 * command's time is not the server's). Without it: connect, greeting and
 * whatever the hooks do. Never throws: a failure is `r.error`, with
 * `r.step` saying where it happened (connect, login, stat, or a hook's
 * name). The connection is always dropped without QUIT; a hook that wants
 * to commit (DELE + QUIT) does that itself.
 *
 *   timeoutMs       deadline of each step
 *   deadlineMs      deadline of the whole check (then TIMEOUT, session dropped)
 *   onTranscript    the C:/S: lines, secrets redacted by the client
 *   beforeLogin(c)  after the greeting, before the login
 *   afterStat(c, r, timed)  in TRANSACTION state, after STAT; `timed(name, f)`
 *                   records f's duration in the marks
 *
 * Resolves `r`: { greeting, tls, mechanism, messages, size, error, step,
 * timings } plus whatever the hooks put in it, and, not enumerable,
 * `r.client` (the closed session) and `r.exception` (the Pop3Error).
 */
export async function checkMailbox(t, getSecret, { timeoutMs = 10_000, deadlineMs, onTranscript, beforeLogin, afterStat } = {}) {
  const marks = {};
  const r = { greeting: null, tls: null, mechanism: null, messages: null, size: null, error: null, step: null, timings: null };
  let c;
  let step = 'connect';
  const timed = async (name, f) => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      marks[name] = performance.now() - t0;
    }
  };
  const ac = new AbortController();
  let expired = false;
  const timer =
    deadlineMs === undefined
      ? null
      : setTimeout(() => {
          expired = true;
          ac.abort(new Pop3Error(`no answer within ${deadlineMs / 1000} s`, { code: ErrorCode.TIMEOUT }));
          c?.close();
        }, Math.max(0, deadlineMs));
  try {
    step = 'credentials';
    const secret = getSecret ? await getSecret() : undefined;
    step = 'connect';
    c = await open(t, { marks, timeoutMs, signal: ac.signal, onTranscript });
    if (expired) c.close();
    r.greeting = c.greeting ?? null;
    r.tls = c.tls ?? null;
    if (beforeLogin) {
      step = 'beforeLogin';
      await beforeLogin(c, r);
    }
    if (secret) {
      step = 'login';
      r.mechanism = await timed('auth', () => login(c, t, secret));
      step = 'stat';
      const s = await timed('stat', () => c.stat());
      r.messages = s.count;
      r.size = s.size;
    }
    if (afterStat) {
      step = 'afterStat';
      await afterStat(c, r, timed);
    }
  } catch (e) {
    // After the deadline, whatever the dropped session said is the deadline's doing.
    const err = expired ? new Pop3Error(`no answer within ${deadlineMs / 1000} s`, { code: ErrorCode.TIMEOUT }) : e;
    r.error = errorOf(err);
    // A password file or token command that failed: no server was asked.
    if (step === 'credentials' && !(err instanceof Pop3Error)) r.error.code = 'CREDENTIALS';
    r.step = step;
    Object.defineProperty(r, 'exception', { value: err, configurable: true });
  } finally {
    if (timer) clearTimeout(timer);
    c?.close(); // no QUIT: nothing marked is committed
    marks.end = performance.now();
  }
  // The session, closed, for what it learnt (deviations, pipelining): not data.
  Object.defineProperty(r, 'client', { value: c ?? null, configurable: true });
  r.timings = phases(marks, t);
  return r;
}
