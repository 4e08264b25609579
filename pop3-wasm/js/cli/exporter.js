// pop3-exporter: POP3 checks for Prometheus, in the style of
// blackbox_exporter, so its relabelling recipes and dashboards carry over.
//
//   GET /probe?module=NAME&target=[USER@]HOST:PORT   one check, Prometheus text,
//       a fresh registry per probe: probe_success, probe_duration_seconds,
//       probe_ssl_earliest_cert_expiry, pop3_* (see README "Monitoring a fleet").
//       Unknown module or malformed target: 400; a target the module's
//       `allow` does not name: 403; a failing mailbox: 200 with probe_success 0.
//       &debug=true: the probe's dialogue (secrets redacted) and its metrics.
//   GET /metrics      the exporter's own metrics
//   GET /-/healthy    200 OK;  POST /-/reload (or SIGHUP): read the config again
//
// What a mail server asks of its monitors: at most `per_server_concurrency`
// probes at once per host:port (the rest wait in line); probes of the same
// mailbox that overlap share one login (two would be refused [IN-USE]);
// a probe sooner than the server's LOGIN-DELAY allows answers from the last
// result and says so (pop3_probe_cached 1). A probe never commits anything:
// it ends by dropping the connection, never QUIT, so even a server that
// deletes retrieved mail at QUIT (EXPIRE 0) loses nothing. The one
// exception is the delivery round trip, which deletes its own probe
// message (found by its token) with DELE + QUIT.
import http from 'node:http';
import { createRequire } from 'node:module';
import client from 'prom-client';
import { Command, CommanderError } from 'commander';
import { ErrorCode, UsageError, parseDuration } from './common.js';
import { checkMailbox, loginFailureReason } from './probe.js';
import { DeliveryProbe } from './delivery.js';
import { ConfigError, loadConfig, parseTarget } from './exporter-config.js';

const VERSION = createRequire(import.meta.url)('../../../package.json').version;
const LOGIN_FAILURE_REASONS = ['auth', 'in_use', 'login_delay', 'sys_temp', 'sys_perm', 'server'];
const PHASES = ['connect', 'tls', 'greeting', 'auth', 'stat'];
const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 };
/** Late probe messages remembered per mailbox, to delete when they turn up. */
const MAX_PENDING_TOKENS = 32;

// ------------------------------------------------------------------ logging

/** logfmt lines on stderr (ts=… level=… msg=… key=value). Never a secret: callers pass names, codes, targets. */
export function logger(level = 'info', out = process.stderr) {
  const min = LEVELS[level];
  const q = (v) => {
    const s = String(v);
    return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
  };
  const log = (lvl, msg, fields = {}) => {
    if (LEVELS[lvl] < min) return;
    const kv = Object.entries(fields)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${k}=${q(v)}`);
    out.write(`ts=${new Date().toISOString()} level=${lvl} msg=${q(msg)}${kv.length ? ` ${kv.join(' ')}` : ''}\n`);
  };
  return { debug: (m, f) => log('debug', m, f), info: (m, f) => log('info', m, f), warn: (m, f) => log('warn', m, f), error: (m, f) => log('error', m, f) };
}

// ------------------------------------------------------------------ per-server budget

/** At most `limit` holders per key; the others wait in line (FIFO), or give up when their signal aborts. */
export class Budget {
  constructor(limit, onChange = () => {}) {
    this.limit = limit;
    this.keys = new Map(); // key -> { active, waiting: [] }
    this.onChange = onChange;
    this.active = 0;
    this.queued = 0;
  }

  acquire(key, signal) {
    let k = this.keys.get(key);
    if (!k) this.keys.set(key, (k = { active: 0, waiting: [] }));
    if (k.active < this.limit) {
      k.active++;
      this.active++;
      this.onChange();
      return Promise.resolve();
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      const abort = () => {
        const i = k.waiting.indexOf(w);
        if (i >= 0) {
          k.waiting.splice(i, 1);
          this.queued--;
          this.onChange();
          reject(signal.reason);
        }
      };
      w.resolve = () => {
        signal?.removeEventListener('abort', abort);
        resolve();
      };
      signal?.addEventListener('abort', abort, { once: true });
      k.waiting.push(w);
      this.queued++;
      this.onChange();
    });
  }

  release(key) {
    const k = this.keys.get(key);
    const next = k.waiting.shift();
    if (next) {
      this.queued--;
      next.resolve(); // the slot passes on: active stays
    } else {
      k.active--;
      this.active--;
      if (k.active === 0) this.keys.delete(key);
    }
    this.onChange();
  }
}

// ------------------------------------------------------------------ the exporter's own metrics

function ownMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const r = [registry];
  const m = {
    registry,
    build: new client.Gauge({ name: 'pop3_exporter_build_info', help: 'pop3-exporter version and Node.js version; always 1.', labelNames: ['version', 'nodejs'], registers: r }),
    probes: new client.Counter({ name: 'pop3_exporter_probes_total', help: 'Probes answered, by module and result (success, failure, cached: answered from an earlier login).', labelNames: ['module', 'result'], registers: r }),
    loginFailures: new client.Counter({ name: 'pop3_exporter_login_failures_total', help: 'Logins refused, by module and reason (auth, in_use, login_delay, sys_temp, sys_perm, server).', labelNames: ['module', 'reason'], registers: r }),
    duration: new client.Histogram({ name: 'pop3_exporter_probe_duration_seconds', help: 'How long probes took, queueing included.', labelNames: ['module'], buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers: r }),
    inFlight: new client.Gauge({ name: 'pop3_exporter_probes_in_flight', help: 'Probes talking to a server now.', registers: r }),
    queued: new client.Gauge({ name: 'pop3_exporter_probes_queued', help: 'Probes waiting for a free slot of their server (per_server_concurrency).', registers: r }),
    unknownModule: new client.Counter({ name: 'pop3_exporter_module_unknown_total', help: 'Probe requests naming a module the config does not have.', registers: r }),
    badTarget: new client.Counter({ name: 'pop3_exporter_target_rejected_total', help: 'Probe requests refused for their target (malformed, not_allowed).', labelNames: ['reason'], registers: r }),
    reloadOk: new client.Gauge({ name: 'pop3_exporter_config_last_reload_successful', help: 'Whether the last configuration (re)load worked.', registers: r }),
    reloadAt: new client.Gauge({ name: 'pop3_exporter_config_last_reload_success_timestamp_seconds', help: 'When the configuration was last loaded successfully.', registers: r }),
  };
  m.build.set({ version: VERSION, nodejs: process.version }, 1);
  return m;
}

// ------------------------------------------------------------------ one probe's metrics

const gauge = (reg, name, help, labelNames = []) => new client.Gauge({ name, help, labelNames, registers: [reg] });

/**
 * Where and why a probe failed, or null: a POP3 step (connect, login,
 * stat, …) with the client's error code; `smtp` with nodemailer's code
 * (EAUTH, ETLS, ESOCKET, …) when the probe message was not accepted;
 * `delivery` NOT_DELIVERED when it did not arrive in time.
 */
function failureOf(p) {
  const r = p.check;
  if (r.error) {
    // After STAT the exporter asks CAPA (LOGIN-DELAY) and looks for the round trip's message.
    const step = r.step === 'afterStat' ? (p.delivery ? 'delivery' : 'capa') : (r.step ?? 'connect');
    return { step, code: r.error.code, respCode: r.error.respCode, message: r.error.message };
  }
  const d = p.delivery;
  if (!d || d.found) return null;
  if (d.error?.stage === 'smtp') return { step: 'smtp', code: d.error.code, message: d.error.message };
  return { step: 'delivery', code: 'NOT_DELIVERED', message: d.error ? `last look: ${d.error.message}` : 'the probe message did not arrive in time' };
}

/** The Prometheus text of a probe result `p` (see Exporter#run), in a registry of its own. */
export async function render(p, { cached = false, ageSeconds = 0 } = {}) {
  const reg = new client.Registry();
  const r = p.check;
  gauge(reg, 'probe_success', 'Whether the probe succeeded.').set(p.success ? 1 : 0);
  gauge(reg, 'probe_duration_seconds', 'How long the probe took, in seconds.').set(p.durationMs / 1000);
  if (r.tls) {
    const notAfter = Date.parse(r.tls.certificate?.notAfter);
    if (Number.isFinite(notAfter)) gauge(reg, 'probe_ssl_earliest_cert_expiry', "When the server's certificate expires (Unix time).").set(notAfter / 1000);
    gauge(reg, 'probe_tls_version_info', 'The TLS version the session used.', ['version']).set({ version: r.tls.protocol.replace(/^TLSv/, 'TLS ') }, 1);
  }
  const ph = gauge(reg, 'pop3_phase_duration_seconds', 'Duration of each phase of the POP3 session.', ['phase']);
  for (const name of PHASES) if (r.timings[name] !== null) ph.set({ phase: name }, r.timings[name] / 1000);
  if (r.messages !== null) {
    gauge(reg, 'pop3_messages', 'Messages in the mailbox (STAT).').set(r.messages);
    gauge(reg, 'pop3_mailbox_bytes', 'Size of the mailbox in octets (STAT).').set(r.size);
  }
  if (r.mechanism) gauge(reg, 'pop3_login_mechanism_info', 'The login mechanism used.', ['mechanism']).set({ mechanism: r.mechanism }, 1);
  if (p.loginAttempted) {
    const lf = gauge(reg, 'pop3_login_failure', 'Why the login was refused (1 for the reason; all 0 after a good login). in_use and sys_temp are not a wrong password.', ['reason']);
    for (const reason of LOGIN_FAILURE_REASONS) lf.set({ reason }, p.loginFailure === reason ? 1 : 0);
  }
  const failure = failureOf(p);
  if (failure) {
    gauge(reg, 'pop3_probe_error_info', 'What made the probe fail: the step, the error code and the server response code.', ['step', 'code', 'resp_code']).set(
      { step: failure.step, code: failure.code, resp_code: failure.respCode ?? '' },
      1,
    );
  }
  if (p.loginDelay !== null && p.loginDelay !== undefined) gauge(reg, 'pop3_login_delay_seconds', 'The LOGIN-DELAY the server announced after login (RFC 2449).').set(p.loginDelay);
  gauge(reg, 'pop3_probe_queue_seconds', "Time the probe waited for a free slot of its server's budget.").set(cached ? 0 : p.queueMs / 1000);
  gauge(reg, 'pop3_probe_cached', 'Whether this answer repeats an earlier login (LOGIN-DELAY, or a probe of the same mailbox already running).').set(cached ? 1 : 0);
  if (cached) gauge(reg, 'pop3_probe_cached_age_seconds', 'How old the repeated answer is.').set(ageSeconds);
  const d = p.delivery;
  if (d) {
    gauge(reg, 'pop3_delivery_sent', 'Whether the SMTP server accepted the probe message.').set(d.sent ? 1 : 0);
    if (d.smtpSeconds !== null) gauge(reg, 'pop3_delivery_smtp_seconds', 'How long sending the probe message took.').set(d.smtpSeconds);
    gauge(reg, 'pop3_delivery_arrived', 'Whether the probe message arrived in the mailbox before the deadline.').set(d.found ? 1 : 0);
    if (d.found) gauge(reg, 'pop3_delivery_seconds', 'From sending the probe message to seeing it in the mailbox.').set(d.seconds);
    gauge(reg, 'pop3_delivery_polls', 'Mailbox looks the round trip took.').set(d.polls);
    gauge(reg, 'pop3_delivery_deleted', 'Probe messages deleted (this one, and late ones of earlier probes).').set(d.deleted + d.lateDeleted);
  }
  return { text: await reg.metrics(), contentType: reg.contentType };
}

// ------------------------------------------------------------------ the exporter

export class Exporter {
  constructor(config, { log = logger(), timeoutOffsetMs = 500 } = {}) {
    this.log = log;
    this.timeoutOffsetMs = timeoutOffsetMs;
    this.metrics = ownMetrics();
    this.inFlight = 0;
    this.budget = new Budget(config.perServer, () => this.metrics.queued.set(this.budget.queued));
    this.running = new Map(); // module\0target -> promise of a result
    this.lastLogin = new Map(); // module\0target -> { at, delay, result }
    this.pending = new Map(); // module\0target -> tokens of late probe messages
    this.setConfig(config);
  }

  setConfig(config) {
    this.config = config;
    this.budget.limit = config.perServer;
    this.metrics.reloadOk.set(1);
    this.metrics.reloadAt.set(Date.now() / 1000);
  }

  async reload() {
    try {
      this.setConfig(await loadConfig(this.config.file));
      this.log.info('configuration reloaded', { file: this.config.file });
      return null;
    } catch (e) {
      this.metrics.reloadOk.set(0);
      this.log.error('configuration reload failed; keeping the old one', { err: e.message });
      return e;
    }
  }

  /** The probe's deadline: the module's timeout, or Prometheus' scrape timeout less the offset when shorter. */
  deadlineMs(mod, header) {
    const scrape = Number(header);
    if (header !== undefined && Number.isFinite(scrape) && scrape > 0) {
      const room = scrape * 1000 - this.timeoutOffsetMs;
      if (room > 0 && room < mod.timeoutMs) return room;
    }
    return mod.timeoutMs;
  }

  /**
   * One probe of `target` with module `mod`, or the answer of the one
   * already running for the same mailbox, or the last one while the
   * server's LOGIN-DELAY has not passed. Resolves { result, cached, ageSeconds }.
   */
  async probe(mod, target, deadlineMs, { onTranscript } = {}) {
    const key = `${mod.name}\0${target.user ?? ''}\0${target.host}:${target.port}`;
    const last = this.lastLogin.get(key);
    if (last && Date.now() - last.at < last.delay * 1000) {
      return { result: last.result, cached: true, ageSeconds: (Date.now() - last.at) / 1000 };
    }
    const running = this.running.get(key);
    if (running && !onTranscript) {
      const result = await running;
      return { result, cached: true, ageSeconds: (Date.now() - result.endedAt) / 1000 };
    }
    const run = this.run(mod, target, key, deadlineMs, onTranscript);
    if (!onTranscript) this.running.set(key, run);
    try {
      return { result: await run, cached: false, ageSeconds: 0 };
    } finally {
      if (this.running.get(key) === run) this.running.delete(key);
    }
  }

  async run(mod, target, key, deadlineMs, onTranscript) {
    const started = performance.now();
    const deadline = started + deadlineMs;
    const user = mod.userFromTarget ? (target.user ?? mod.user) : mod.user;
    const t = {
      host: target.host,
      port: target.port,
      tls: mod.tls,
      user,
      auth: mod.auth,
      bridge: mod.bridge,
      token: mod.bridgeToken,
      ca: mod.ca,
      insecureAuth: mod.insecureAuth,
    };
    const server = `${target.host}:${target.port}`;
    const p = { success: false, durationMs: 0, queueMs: 0, check: null, delivery: null, loginAttempted: false, loginFailure: null, loginDelay: null };

    // Wait for a slot of this server's budget (bounded by the deadline).
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new UsageError('deadline passed while waiting for a free slot of this server')), deadlineMs);
    try {
      await this.budget.acquire(server, ac.signal);
    } catch (e) {
      clearTimeout(timer);
      p.durationMs = performance.now() - started;
      p.queueMs = p.durationMs;
      p.check = { error: { code: ErrorCode.TIMEOUT, message: e.message }, step: 'queue', timings: Object.fromEntries(PHASES.map((k) => [k, null])), tls: null, messages: null, mechanism: null };
      p.endedAt = Date.now();
      return p;
    }
    clearTimeout(timer);
    p.queueMs = performance.now() - started;
    this.inFlight++;
    this.metrics.inFlight.set(this.inFlight);
    try {
      let dp = null;
      if (mod.delivery && user) {
        const d = mod.delivery;
        const to = d.to.replaceAll('{user}', user);
        dp = new DeliveryProbe({ via: d.via, auth: d.auth, ca: d.ca, from: (d.from ?? to).replaceAll('{user}', user), to, prefix: 'pop3-exporter', pending: this.pending.get(key) ?? [] });
        await dp.send({ timeoutMs: Math.min(mod.timeoutMs, deadline - performance.now()) });
      }
      const getSecret = user && mod.secretFor ? mod.secretFor(user) : undefined;
      p.check = await checkMailbox(t, getSecret, {
        timeoutMs: mod.timeoutMs,
        deadlineMs: deadline - performance.now(),
        onTranscript,
        afterStat: async (c, res) => {
          if (res.mechanism) {
            // The user's own LOGIN-DELAY (RFC 2449) is announced after login.
            const caps = await c.capa().catch((e) => (e?.code === ErrorCode.SERVER_ERROR ? null : Promise.reject(e)));
            p.loginDelay = caps?.loginDelay ?? null;
            if (dp) dp.loginDelay = p.loginDelay;
          }
          if (dp) await dp.scan(c);
        },
      });
      const r = p.check;
      p.loginAttempted = Boolean(getSecret) && (r.step === null || ['login', 'stat', 'afterStat'].includes(r.step));
      p.loginFailure = r.error && r.step === 'login' ? loginFailureReason(r.exception) : null;
      if (p.loginFailure) this.metrics.loginFailures.inc({ module: mod.name, reason: p.loginFailure });
      if (dp) {
        dp.noteCheck(r);
        const until = Math.min(dp.sentAt + mod.delivery.timeoutMs, deadline - 250);
        await dp.poll(t, getSecret, { deadline: until, pollMs: mod.delivery.pollMs, timeoutMs: mod.timeoutMs });
        p.delivery = dp.result();
        this.notePending(key, dp);
      }
      p.success = !r.error && (!p.delivery || p.delivery.found);
      // The result may be kept (LOGIN-DELAY): not the session with it.
      delete r.client;
      delete r.exception;
      if (r.mechanism && p.loginDelay > 0) this.lastLogin.set(key, { at: Date.now(), delay: p.loginDelay, result: p });
      else this.lastLogin.delete(key);
    } finally {
      this.inFlight--;
      this.metrics.inFlight.set(this.inFlight);
      this.budget.release(server);
    }
    p.durationMs = performance.now() - started;
    p.endedAt = Date.now();
    return p;
  }

  /** Remembers probe messages that did not arrive in time, to delete them when they do. */
  notePending(key, dp) {
    const keep = dp.stillPending(MAX_PENDING_TOKENS);
    if (keep.length) this.pending.set(key, keep);
    else this.pending.delete(key);
  }

  /** node:http request handler. */
  async handle(req, res) {
    const url = new URL(req.url, 'http://exporter');
    const send = (code, type, body) => {
      res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(body);
    };
    const text = (code, body) => send(code, 'text/plain; charset=utf-8', `${body}\n`);
    try {
      if (url.pathname === '/probe' && (req.method === 'GET' || req.method === 'HEAD')) return await this.handleProbe(url, req, send, text);
      if (url.pathname === '/metrics' && req.method === 'GET') return send(200, this.metrics.registry.contentType, await this.metrics.registry.metrics());
      if (url.pathname === '/-/healthy') return text(200, 'OK');
      if (url.pathname === '/-/reload') {
        if (req.method !== 'POST') return text(405, 'use POST');
        const e = await this.reload();
        return e ? text(500, `reload failed: ${e.message}`) : text(200, 'OK');
      }
      if (url.pathname === '/') {
        return text(200, `pop3-exporter ${VERSION}\n\nGET /probe?module=NAME&target=[USER@]HOST:PORT\nGET /metrics\n\nmodules: ${[...this.config.modules.keys()].join(', ')}`);
      }
      return text(404, 'not found');
    } catch (e) {
      this.log.error('request failed', { path: url.pathname, err: e?.message });
      this.log.debug('request failure', { stack: e?.stack });
      if (!res.headersSent) text(500, 'internal error');
      else res.destroy();
    }
  }

  async handleProbe(url, req, send, text) {
    const name = url.searchParams.get('module');
    const mod = this.config.modules.get(name ?? '');
    if (!mod) {
      if (name) this.metrics.unknownModule.inc();
      this.log.debug('unknown module', { module: name });
      return text(400, name ? `Unknown module ${JSON.stringify(name)}` : 'Module parameter is missing');
    }
    const raw = url.searchParams.get('target');
    if (!raw) {
      this.metrics.badTarget.inc({ reason: 'malformed' });
      return text(400, 'Target parameter is missing');
    }
    let target;
    try {
      target = parseTarget(raw, mod.tls);
    } catch (e) {
      this.metrics.badTarget.inc({ reason: 'malformed' });
      return text(400, `Bad target: ${e.message}`);
    }
    if (target.user !== undefined && !mod.userFromTarget) {
      this.metrics.badTarget.inc({ reason: 'malformed' });
      return text(400, `Bad target: module ${mod.name} names its user itself (set user_from_target: true to take it from the target)`);
    }
    if (mod.userFromTarget && target.user === undefined && mod.user === undefined) {
      this.metrics.badTarget.inc({ reason: 'malformed' });
      return text(400, `Bad target: module ${mod.name} takes the user from the target: USER@HOST:PORT`);
    }
    if (mod.allow && !mod.allow.some((ok) => ok(target.host, target.port))) {
      this.metrics.badTarget.inc({ reason: 'not_allowed' });
      this.log.warn('target not allowed', { module: mod.name, target: raw });
      return text(403, `Target ${target.host}:${target.port} is not in the allow list of module ${mod.name}`);
    }
    const deadlineMs = this.deadlineMs(mod, req.headers['x-prometheus-scrape-timeout-seconds']);
    const debug = url.searchParams.get('debug') === 'true';
    const transcript = [];
    // Status lines only: data lines (headers of other mail in a round trip) stay out.
    const onTranscript = debug ? (l) => (l.dir === 'C' || /^(\+OK|-ERR|\+ |\+$)/.test(l.line) ? transcript.push(`${l.dir}: ${l.line}`) : null) : undefined;
    const { result: p, cached, ageSeconds } = await this.probe(mod, target, deadlineMs, { onTranscript });
    const out = await render(p, { cached, ageSeconds });
    const result = cached ? 'cached' : p.success ? 'success' : 'failure';
    this.metrics.probes.inc({ module: mod.name, result });
    if (!cached) this.metrics.duration.observe({ module: mod.name }, p.durationMs / 1000);
    const fields = { module: mod.name, target: raw, duration_seconds: (p.durationMs / 1000).toFixed(3) };
    if (cached) this.log.debug('probe answered from an earlier login', { ...fields, age_seconds: ageSeconds.toFixed(1) });
    else if (p.success) this.log.debug('probe succeeded', fields);
    else {
      const f = failureOf(p);
      this.log.info('probe failed', { ...fields, step: f.step, code: f.code, resp_code: f.respCode, reason: p.loginFailure, err: f.message });
    }
    if (debug) {
      const cfg = Object.entries(mod.raw).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n');
      return send(
        200,
        'text/plain; charset=utf-8',
        `Dialogue of the probe (secrets redacted):\n${transcript.join('\n')}\n\n\nMetrics that would have been returned:\n${out.text}\n\n\nModule configuration:\n${cfg}\n`,
      );
    }
    return send(200, out.contentType, out.text);
  }
}

// ------------------------------------------------------------------ command line

function program() {
  return new Command('pop3-exporter')
    .description('Prometheus exporter for POP3 mailboxes, in the style of blackbox_exporter: GET /probe?module=NAME&target=[USER@]HOST:PORT, GET /metrics.')
    .option('--listen <address>', 'HOST:PORT to listen on', '127.0.0.1:9150')
    .option('--config <file>', 'the YAML file of modules', 'pop3-exporter.yml')
    .option('--check-config', 'check the configuration, print a summary and exit (0: good, 1: not)')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .option('--timeout-offset <duration>', "subtracted from Prometheus' scrape timeout to give the probe's deadline", '0.5s')
    .addHelpText(
      'after',
      `
Secrets never go in the YAML: password_env / password_file / passwords_file, or
oauth_token_env / oauth_token_file / oauth_token_command; smtp_password_env /
smtp_password_file for the delivery round trip. A key such as "password:" is refused.
SIGHUP (or POST /-/reload) reads the file again; a broken file keeps the old one.`,
    );
}

/** Parses HOST:PORT ([::1]:9150 for IPv6). */
function listenAddress(s) {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  if (!m) throw new UsageError(`--listen ${s}: expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}

/** Runs pop3-exporter; resolves the exit code when it stops (or at once for --check-config and errors). */
export async function main(argv, { stdout = process.stdout, stderr = process.stderr, signals = true } = {}) {
  const p = program();
  p.exitOverride();
  p.configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s) });
  let o;
  let addr;
  let timeoutOffsetMs;
  try {
    p.parse(argv, { from: 'user' });
    o = p.opts();
    if (!(o.logLevel in LEVELS)) throw new UsageError(`--log-level ${o.logLevel}: expected debug, info, warn or error`);
    addr = listenAddress(o.listen);
    timeoutOffsetMs = parseDuration(o.timeoutOffset);
  } catch (e) {
    if (e instanceof CommanderError) return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    stderr.write(`pop3-exporter: ${e.message}\n`);
    return 2;
  }
  let config;
  try {
    config = await loadConfig(o.config);
  } catch (e) {
    if (!(e instanceof ConfigError || e instanceof UsageError)) throw e;
    stderr.write(`pop3-exporter: configuration error: ${e.message}\n`);
    return 1;
  }
  if (o.checkConfig) {
    for (const m of config.modules.values()) {
      const who = m.userFromTarget ? `user from target${m.user ? ` (default ${m.user})` : ''}` : m.user ? `user ${m.user}` : 'no login';
      stdout.write(`module ${m.name}: tls ${m.tls}, ${who}, timeout ${m.timeoutMs / 1000} s${m.delivery ? `, round trip via ${m.delivery.via.secure ? 'smtps' : 'smtp'}://${m.delivery.via.host}:${m.delivery.via.port}` : ''}\n`);
    }
    stdout.write(`${o.config}: OK (${config.modules.size} module${config.modules.size === 1 ? '' : 's'}, ${config.perServer} probes at once per server)\n`);
    return 0;
  }
  const log = logger(o.logLevel, stderr);
  const exporter = new Exporter(config, { log, timeoutOffsetMs });
  const server = http.createServer((req, res) => exporter.handle(req, res));
  server.keepAliveTimeout = 65_000; // longer than Prometheus' idle connection reuse
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host, resolve);
    });
  } catch (e) {
    stderr.write(`pop3-exporter: cannot listen on ${o.listen}: ${e.code ?? e.message}\n`);
    return 1;
  }
  const bound = server.address();
  log.info('listening', { address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`, config: o.config, modules: config.modules.size, version: VERSION });
  if (!signals) return { server, exporter };
  return new Promise((resolve) => {
    const onHup = () => exporter.reload();
    const stop = () => {
      log.info('stopping');
      process.off('SIGHUP', onHup);
      server.close(() => resolve(0));
      server.closeAllConnections?.();
    };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
