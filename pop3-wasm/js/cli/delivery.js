// The delivery round trip, shared by `pop3-check --send-via` and
// pop3-exporter's `send_via`: a probe message carrying a unique token goes
// out by SMTP (nodemailer; STARTTLS required on smtp://, implicit TLS on
// smtps://), the mailbox is polled until the message is there or a deadline
// passes, and exactly that message is deleted: DELE of the messages whose
// own top-level X-Pop3-Probe header is the token, then QUIT. Every other
// message stays untouched, and a poll that finds nothing ends without QUIT.
//
//   const dp = new DeliveryProbe({ via, auth, ca, from, to, prefix: 'pop3-check' });
//   await dp.send({ timeoutMs });                       // records the SMTP time
//   await checkMailbox(t, getSecret, { afterStat: dp.scan });  // a first look
//   await dp.poll(t, getSecret, { deadline, pollMs, timeoutMs });
//   dp.result();  // { token, sent, smtpSeconds, found, seconds, polls, deleted, error }
import crypto from 'node:crypto';
import net from 'node:net';
import nodemailer from 'nodemailer';
import PostalMime from 'postal-mime';
import { ErrorCode, UsageError, readSecretFile } from './common.js';
import { checkMailbox } from './probe.js';

/** The header that carries the token; the Subject carries it too, for people. */
export const TOKEN_HEADER = 'X-Pop3-Probe';

/** Error codes after which polling again cannot help. */
const FINAL = new Set([ErrorCode.AUTH_FAILED, ErrorCode.INSECURE_AUTH_REFUSED, ErrorCode.UNSUPPORTED, ErrorCode.INVALID_ARGUMENT, ErrorCode.BRIDGE_REJECTED]);

/**
 * `smtp://host[:587]` (STARTTLS, required) or `smtps://host[:465]`
 * (implicit TLS). `name`: how the option is called, for messages.
 */
export function parseSendVia(text, name = '--send-via') {
  let u;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`${name}: not a URL: ${text} (e.g. smtp://mx.example.com:587)`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme !== 'smtp' && scheme !== 'smtps') throw new UsageError(`${name}: smtp:// (STARTTLS) or smtps:// (implicit TLS), not ${scheme}://`);
  if (u.username || u.password) throw new UsageError(`${name}: no user or password in the URL; the SMTP login comes from the environment or a file`);
  if (u.pathname.replace(/^\/+/, '') || u.search) throw new UsageError(`${name}: only smtp[s]://host:port, got ${text}`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new UsageError(`${name}: no host in ${text}`);
  const secure = scheme === 'smtps';
  return { host, port: u.port ? Number(u.port) : secure ? 465 : 587, secure };
}

/**
 * The SMTP login, or null: the user from `o.smtpUser` or $SMTP_USER, the
 * password from the file `o.smtpPasswordFile`, else the variable
 * `o.smtpPasswordEnv` names (default SMTP_PASSWORD). With `implicit: false`
 * (a daemon) the SMTP_* defaults do not apply. `names`: the option names,
 * for messages.
 */
export function smtpAuth(o, { names = SMTP_FLAGS, implicit = true } = {}) {
  const user = o.smtpUser ?? (implicit ? process.env.SMTP_USER : undefined);
  const named = o.smtpPasswordFile !== undefined || o.smtpPasswordEnv !== undefined;
  if (!user) {
    if (named) throw new UsageError(`${names.smtpPasswordEnv}/${names.smtpPasswordFile} without an SMTP user: give ${names.smtpUser}${implicit ? ' or $SMTP_USER' : ''}`);
    return null;
  }
  if (o.smtpPasswordFile !== undefined) return { user, password: readSecretFile(o.smtpPasswordFile, names.smtpPasswordFile) };
  const env = o.smtpPasswordEnv ?? (implicit ? 'SMTP_PASSWORD' : undefined);
  if (env === undefined) throw new UsageError(`the SMTP user needs ${names.smtpPasswordEnv} or ${names.smtpPasswordFile}`);
  const password = process.env[env];
  if (password === undefined) {
    throw new UsageError(o.smtpPasswordEnv !== undefined ? `${names.smtpPasswordEnv} ${env}: that variable is not set` : `an SMTP user but no password: set $SMTP_PASSWORD, or use ${names.smtpPasswordEnv} or ${names.smtpPasswordFile}`);
  }
  return { user, password };
}

export const SMTP_FLAGS = Object.freeze({
  smtpUser: '--smtp-user',
  smtpPasswordEnv: '--smtp-password-env',
  smtpPasswordFile: '--smtp-password-file',
});

/** `prefix-<time>-<96 random bits>`: unique, and says who sent it. */
export function newToken(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${crypto.randomBytes(12).toString('hex')}`;
}

/** The token a message's own header block carries, or null (none, or more than one). */
export async function tokenOf(head) {
  const { headers } = await PostalMime.parse(head);
  const values = headers.filter((h) => h.key === TOKEN_HEADER.toLowerCase()).map((h) => h.value.trim());
  return values.length === 1 ? values[0] : null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class DeliveryProbe {
  /**
   * via: parseSendVia()'s; auth: smtpAuth()'s; ca: extra CA (PEM) for the
   * SMTP server; from, to: envelope and header addresses; prefix: the
   * token's first word; pending: tokens of earlier probes that did not
   * arrive in time, deleted too when they turn up (a late probe message
   * must not stay in the mailbox for ever).
   */
  constructor({ via, auth = null, ca, from, to, prefix, pending = [] }) {
    this.via = via;
    this.auth = auth;
    this.ca = ca;
    this.from = from;
    this.to = to;
    this.token = newToken(prefix);
    this.pending = new Set(pending);
    this.sent = false;
    this.sentAt = null;
    this.smtpMs = null;
    this.foundAt = null;
    this.polls = 0;
    this.deleted = 0;
    this.lateDeleted = [];
    this.error = null;
    this.loginDelay = null;
    this.seen = new Set();
    this.scan = this.scan.bind(this);
  }

  /** Sends the probe message; a failure is recorded in `error` (stage smtp), not thrown. */
  async send({ timeoutMs = 30_000 } = {}) {
    const t0 = performance.now();
    this.sentAt = t0;
    const { host, port, secure } = this.via;
    const transport = nodemailer.createTransport({
      host,
      port,
      secure,
      // smtp:// is STARTTLS or nothing: never the message (or AUTH) in clear text.
      requireTLS: !secure,
      auth: this.auth ? { user: this.auth.user, pass: this.auth.password } : undefined,
      tls: { ca: this.ca, servername: net.isIP(host) ? undefined : host, minVersion: 'TLSv1.2' },
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      dnsTimeout: timeoutMs,
      logger: false,
      debug: false,
    });
    const domain = /@([^@>\s]+)>?$/.exec(this.from)?.[1] ?? 'pop3-wasm.invalid';
    try {
      await transport.sendMail({
        from: this.from,
        to: this.to,
        subject: `POP3 delivery probe ${this.token}`,
        messageId: `<${this.token}@${domain}>`,
        headers: { [TOKEN_HEADER]: this.token },
        text:
          'This message times the delivery from SMTP to the POP3 mailbox.\r\n' +
          'The monitor that sent it deletes it when it arrives (only this one,\r\n' +
          `found by its ${TOKEN_HEADER} header).\r\n`,
      });
      this.sent = true;
    } catch (e) {
      // nodemailer's message quotes the server's reply, never the password.
      this.error = { stage: 'smtp', code: e?.code ?? 'SMTP', message: e?.message ?? String(e) };
      if (e?.responseCode) this.error.responseCode = e.responseCode;
    } finally {
      transport.close();
      this.smtpMs = performance.now() - t0;
    }
  }

  /**
   * checkMailbox's afterStat hook: looks at the messages not seen yet (UIDL,
   * then TOP n 0 of each, pipelined) and, when one carries the token (or an
   * earlier probe's), deletes exactly those (DELE) and commits (QUIT).
   */
  async scan(c) {
    if (!this.sent || this.foundAt !== null) return;
    this.polls++;
    const first = this.polls === 1;
    // The first look also learns the user's LOGIN-DELAY (RFC 2449): polling
    // faster than that would be refused.
    const capa = first ? c.capa().catch(() => null) : null;
    let list;
    try {
      list = (await c.uidl()).map((m) => ({ id: m.id, key: m.uid }));
    } catch (e) {
      if (e?.code !== ErrorCode.SERVER_ERROR) throw e;
      // No UIDL: look at every message each time.
      list = (await c.list()).map((m) => ({ id: m.id, key: null }));
    }
    if (capa) this.loginDelay = (await capa)?.loginDelay ?? null;
    const fresh = list.filter((m) => m.key === null || !this.seen.has(m.key));
    const heads = await Promise.all(fresh.map((m) => c.top(m.id, 0).then((b) => ({ m, b }), (e) => ({ m, e }))));
    const seenAt = performance.now();
    const ours = [];
    for (const { m, b, e } of heads) {
      if (e) continue; // gone meanwhile, or refused: not ours to touch
      const token = await tokenOf(b);
      if (token === this.token || this.pending.has(token)) ours.push({ id: m.id, token });
      // Ours is looked at again if deleting it fails; the others never.
      else if (m.key !== null) this.seen.add(m.key);
    }
    if (!ours.length) return;
    const marked = await c.deleMany(ours.map((m) => m.id));
    const failed = marked.find((m) => m.error);
    if (failed) throw failed.error; // the session is dropped: nothing is deleted
    await c.quit();
    for (const m of ours) {
      if (m.token === this.token) {
        this.deleted++;
        this.foundAt ??= seenAt;
      } else {
        this.lateDeleted.push(m.token);
        this.pending.delete(m.token);
      }
    }
  }

  /**
   * Polls until the probe message is found or `deadline` (performance.now()
   * time) passes: one session per poll, `pollMs` apart (or the server's
   * LOGIN-DELAY, when longer).
   */
  async poll(t, getSecret, { deadline, pollMs = 2000, timeoutMs = 10_000 }) {
    while (this.sent && this.foundAt === null && !this.finalError()) {
      const wait = Math.max(pollMs, (this.loginDelay ?? 0) * 1000);
      if (performance.now() + wait >= deadline) break;
      await sleep(wait);
      const r = await checkMailbox(t, getSecret, { timeoutMs, deadlineMs: deadline - performance.now(), afterStat: this.scan });
      if (r.error) this.error = { stage: 'pop3', ...r.error };
      else if (this.error?.stage === 'pop3') this.error = null;
    }
  }

  /**
   * The tokens a later round trip to the same mailbox should delete when
   * they turn up: the earlier ones not found yet, and this one if it was
   * sent and did not arrive in time (the last `max`).
   */
  stillPending(max = 32) {
    const left = [...this.pending];
    if (this.sent && this.foundAt === null) left.push(this.token);
    return left.slice(-max);
  }

  finalError() {
    return this.error && (this.error.stage === 'smtp' || FINAL.has(this.error.code));
  }

  /** Records a failed POP3 look (the first one, made by the caller's own check). */
  noteCheck(r) {
    if (r.error && this.sent) this.error = { stage: 'pop3', ...r.error };
  }

  result() {
    return {
      token: this.token,
      sent: this.sent,
      smtpSeconds: this.smtpMs === null ? null : this.smtpMs / 1000,
      found: this.foundAt !== null,
      seconds: this.foundAt === null ? null : (this.foundAt - this.sentAt) / 1000,
      polls: this.polls,
      deleted: this.deleted,
      lateDeleted: this.lateDeleted.length,
      loginDelay: this.loginDelay,
      error: this.error,
    };
  }
}
