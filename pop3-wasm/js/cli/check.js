// pop3-check: a Nagios-compatible POP3 check (Nagios, Icinga, Zabbix,
// Prometheus' script exporter). Exit 0 OK, 1 WARNING, 2 CRITICAL,
// 3 UNKNOWN; one status line with performance data
// ('label'=value[UOM];[warn];[crit];[min];[max]), then, with --serverinfo,
// the diagnosis as long output: the check then runs as diagnose() (the
// package's analyzer, one session step by step, never QUIT) and its status
// comes from the report; with --json it prints the report itself, exactly
// as diagnose() resolves it, and says the status by the exit code only.
import { Command, CommanderError, Option } from 'commander';
import fs from 'node:fs';
import { ErrorCode, Pop3Error, UsageError, connectOptions, daysUntil, parseDuration, parsePort, credentials, target } from './common.js';
import { diagnose, reportText } from '../node.js';
import { checkMailbox } from './probe.js';
import { DeliveryProbe, parseSendVia, smtpAuth } from './delivery.js';
import { respCodeHint } from '../resp-codes.js';

export const OK = 0;
export const WARNING = 1;
export const CRITICAL = 2;
export const UNKNOWN = 3;
const NAMES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'];

/** Phases a --warn/--crit threshold may name; `total` is the whole check. */
const PHASES = ['total', 'connect', 'tls', 'greeting', 'auth', 'stat', 'list'];

/** Error codes that say the check could not run, not that the server is bad. */
const UNKNOWN_CODES = new Set([ErrorCode.INVALID_ARGUMENT, ErrorCode.BRIDGE_UNREACHABLE, ErrorCode.BRIDGE_REJECTED, ErrorCode.INSECURE_AUTH_REFUSED, ErrorCode.UNSUPPORTED]);

/** `5` (the total) or `total=5,auth=1.5,connect=500ms` → { phase: ms }. */
function parseTimes(v) {
  const out = {};
  for (const part of String(v).split(',').filter(Boolean)) {
    const [k, val] = part.includes('=') ? part.split('=', 2) : ['total', part];
    if (!PHASES.includes(k)) throw new UsageError(`--warn/--crit: unknown phase ${k} (one of ${PHASES.join(', ')})`);
    out[k] = parseDuration(val);
  }
  return out;
}

/** `100`, `10k`, `5M`, `1G` (1024-based; a trailing B is allowed) → bytes. */
function parseBytes(v) {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?$/.exec(String(v).trim());
  if (!m) throw new UsageError(`bad size ${v} (e.g. 500k, 100M)`);
  return Math.round(Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase()]);
}

function parseCount(v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`expected a whole number, got ${v}`);
  return n;
}

const arg = (parse) => (v) => {
  try {
    return parse(v);
  } catch (e) {
    throw new UsageError(e.message);
  }
};

export function program() {
  const p = new Command('pop3-check')
    .description(
      'Check a POP3 server the way Nagios and Icinga expect: exit 0 OK, 1 WARNING, 2 CRITICAL, ' +
        '3 UNKNOWN, and one status line with performance data. Connects directly, or through ' +
        'ws-bridge with --bridge.',
    )
    .argument('[url]', 'pop3s://user@host[:995] or pop3://user@host[:110][?tls=starttls|none]')
    .option('-H, --host <host>', 'server host name or address')
    .option('-p, --port <port>', 'server port (default 995 for implicit TLS, else 110)', arg(parsePort))
    .addOption(new Option('--tls <mode>', 'implicit (default), starttls or none').choices(['implicit', 'starttls', 'none']))
    .option('-u, --user <name>', 'log in as this user (without one: connect, greeting and CAPA only)')
    .option('--auth <mechanism>', 'force a login mechanism (default: the strongest offered)')
    .option('--password-env <name>', 'read the password from this environment variable (default POP3_PASSWORD)')
    .option('--password-file <file>', 'read the password from the first line of this file')
    .option('--oauth-token-env <name>', 'log in with the OAuth 2.0 access token in this environment variable (OAUTHBEARER when offered, else XOAUTH2)')
    .option('--oauth-token-file <file>', 'the same, from the first line of this file (read again at every check)')
    .option('--oauth-token-command <command>', 'the same, from the first line this shell command prints (run at every check)')
    .option('--bridge <url>', 'go through ws-bridge, e.g. ws://127.0.0.1:8080/pop3')
    .option('--token-env <name>', 'environment variable holding the bridge access token')
    .option('--end-to-end', 'TLS in this client: a bridge relays only ciphertext (direct: the client\'s TLS instead of Node\'s)')
    .option('--ca-file <pem>', 'extra CA certificates to trust (direct connections, or --end-to-end)')
    .option('--insecure-auth', 'allow readable credentials (USER/PASS, PLAIN) without TLS')
    .option('-w, --warn <times>', 'WARNING above these seconds: 5 (total) or total=5,connect=1,tls=1,greeting=1,auth=2,stat=1,list=5', arg(parseTimes))
    .option('-c, --crit <times>', 'CRITICAL above these seconds (same form as --warn)', arg(parseTimes))
    .addOption(
      new Option('-t, --timeout <duration>', 'deadline of each step (connect, TLS, greeting, each command)')
        .argParser(arg(parseDuration))
        .default(10_000, '10s'),
    )
    .option('--cert-warn-days <days>', 'WARNING when the certificate expires in fewer days', arg(parseCount), 14)
    .option('--cert-crit-days <days>', 'CRITICAL when the certificate expires in fewer days', arg(parseCount), 7)
    .option('--count-warn <n>', 'WARNING when more than n messages wait', arg(parseCount))
    .option('--count-crit <n>', 'CRITICAL when more than n messages wait', arg(parseCount))
    .option('--size-warn <bytes>', 'WARNING when the mailbox is larger (500k, 100M, 1G)', arg(parseBytes))
    .option('--size-crit <bytes>', 'CRITICAL when the mailbox is larger', arg(parseBytes))
    .option('--expect <text>', 'CRITICAL unless a message whose Subject contains text (any case) is there')
    .option('--delete-match', 'with --expect: delete the matching messages (DELE, then QUIT)')
    .option('--send-via <url>', 'delivery round trip: send a probe message by smtp://host:587 (STARTTLS required) or smtps://host:465, wait for it, delete it')
    .option('--send-to <address>', 'where the probe message goes (default: the user, when it is an address)')
    .option('--send-from <address>', 'its sender (default: --send-to)')
    .option('--smtp-user <name>', 'SMTP AUTH user (default $SMTP_USER; none: no AUTH)')
    .option('--smtp-password-env <name>', 'read the SMTP password from this environment variable (default SMTP_PASSWORD)')
    .option('--smtp-password-file <file>', 'read the SMTP password from the first line of this file')
    .option('--smtp-ca-file <pem>', 'extra CA certificates to trust for the SMTP server (default: --ca-file)')
    .addOption(new Option('--delivery-timeout <duration>', 'CRITICAL when the probe message has not arrived by then').argParser(arg(parseDuration)).default(60_000, '60s'))
    .option('--delivery-warn <duration>', 'WARNING when it took longer', arg(parseDuration))
    .addOption(new Option('--poll <duration>', 'how often to look for it (at least the server\'s LOGIN-DELAY)').argParser(arg(parseDuration)).default(2000, '2s'))
    .option('--every <duration>', 'loop: check every duration (60s, 5m), one JSON line per check', arg(parseDuration))
    .option('--count <n>', 'with --every: stop after n checks', arg(parseCount))
    .option('--serverinfo', 'run the check as a diagnosis and print its report: each step timed with what to do about a failure, the certificate chain, capabilities before/after STLS and login, mechanisms, UIDL sanity, deviations')
    .option('--json', 'print the result as one JSON object instead of the status line (with --serverinfo: the report exactly as diagnose() gives it; the status is the exit code)')
    .option('-v, --verbose', 'print the POP3 dialogue (C:/S:, secrets redacted) on stderr')
    .addHelpText(
      'after',
      `
Password: never a flag. --password-file, else $POP3_PASSWORD (or --password-env NAME),
else a prompt without echo when stdin is a terminal.
OAuth 2.0 (Microsoft 365, Gmail, Dovecot's oauth2 passdb): instead of a password, an
access token from --oauth-token-env, --oauth-token-file or --oauth-token-command, e.g.
  --oauth-token-command 'oauth2l fetch --credentials /etc/nagios/sa.json --scope mail'
The file is read again and the command run again at every check, so a loop keeps
working when the token is refreshed; a failing command is UNKNOWN, not CRITICAL.

Phases (perfdata labels, seconds):
  connect   TCP connect (through a bridge: WebSocket + the bridge's connect, and the
            handshake too for implicit TLS, which the bridge does not time apart)
  tls       the TLS handshake (implicit, direct) or STLS + handshake (starttls)
  greeting  from the connection being ready to the server's greeting
  auth      the login, including the CAPA asked after it
  stat      STAT
  list      LIST + UIDL + TOP n 0 of every message (--expect only)
  time      the whole check, from start to disconnect
  delivery  --send-via: from sending the probe message to seeing it in the mailbox
  smtp      --send-via: sending it (connect, STARTTLS, AUTH, DATA)
Other perfdata: messages, size (B), cert_days, matches (--expect).

Delivery round trip (--send-via): the probe message carries a unique token in its
Subject and in an X-Pop3-Probe header; the mailbox is looked at every --poll until
it is there or --delivery-timeout passes (CRITICAL), and exactly that message is
deleted (DELE + QUIT): never a message whose header holds another token. SMTP AUTH:
--smtp-user or $SMTP_USER, the password from $SMTP_PASSWORD, --smtp-password-env or
--smtp-password-file, never a flag; AUTH and the message only travel inside TLS.

The check never deletes anything and ends without QUIT, so nothing is committed;
only --delete-match and --send-via (its own probe message) send DELE and QUIT. In loop mode the exit status is that of
the last check.

Examples:
  POP3_PASSWORD=… pop3-check pop3s://monitor@pop.example.com -w 2 -c 5
  pop3-check -H pop.example.com --tls starttls -u monitor --password-file /etc/nagios/pop3.pw \\
             --expect "probe-$(date +%F)" --delete-match
  SMTP_USER=monitor SMTP_PASSWORD=… pop3-check pop3s://monitor@pop.example.com \\
             --send-via smtp://mx.example.com:587 --send-to monitor@example.com --delivery-warn 30s
  pop3-check pop3s://pop.example.com --serverinfo
  POP3_PASSWORD=… pop3-check pop3://monitor@pop.example.com --serverinfo --json   # the report exactly as diagnose() gives it
  pop3-check pop3s://monitor@pop.example.com --every 60s    # one JSON line per minute`,
    );
  return p;
}

/** A threshold range as Nagios writes it: "10" = alert above 10, "10:" = below 10. */
function perf(label, value, uom = '', warn = '', crit = '', min = '0') {
  if (value === null || value === undefined || Number.isNaN(value)) return null;
  const v = uom === 's' ? value.toFixed(6).replace(/0+$/, '').replace(/\.$/, '') : String(Math.round(value * 1000) / 1000);
  return `${label}=${v}${uom};${warn};${crit};${min}`.replace(/;+$/, '');
}

const secs = (ms) => (ms === undefined || ms === null ? '' : String(ms / 1000));

/** Everything one check found out; `status` is one of OK…UNKNOWN. */
async function checkOnce(t, o, cred) {
  const time = new Date().toISOString();
  const r = o.serverinfo ? await diagnosisCheck(t, o, cred) : await plainCheck(t, o, cred);
  r.time = time;
  r.status = OK;
  r.problems = [];
  r.certDays = r.tls?.certificate?.notAfter ? daysUntil(r.tls.certificate.notAfter) : null;
  r.matches ??= null;
  r.deleted ??= null;
  r.serverinfo ??= null;
  if (r.error) {
    r.status = r.exception instanceof Pop3Error && !UNKNOWN_CODES.has(r.error.code) ? CRITICAL : UNKNOWN;
    if (r.exception?.serverText) r.error.serverText = r.exception.serverText;
    // What a response code means (IN-USE, SYS/TEMP…): Nagios long output, `explanation` in JSON.
    const hint = respCodeHint(r.error.respCode);
    if (hint) r.error.explanation = hint.text;
  }
  evaluate(r, o);
  return r;
}

/**
 * --serverinfo: the check is a diagnosis (diagnose(), one session, never
 * QUIT), and the check's result is read from its report: the same fields
 * a plain check has, timed by the client's phases, and `serverinfo` = the
 * report exactly as diagnose() resolves it.
 */
async function diagnosisCheck(t, o, cred) {
  const r = { greeting: null, tls: null, mechanism: null, messages: null, size: null, error: null, step: null, timings: null };
  let secret = {};
  try {
    secret = t.user ? await cred.get() : {};
  } catch (e) {
    r.error = { code: 'CREDENTIALS', message: e?.message ?? String(e) };
    r.step = 'credentials';
    r.timings = { connect: null, tls: null, greeting: null, auth: null, stat: null, list: null, total: null };
    Object.defineProperty(r, 'exception', { value: e, configurable: true });
    return r;
  }
  // Without --end-to-end, diagnose()'s own default: directly, TLS in the
  // client (the report then has the chain as the server sent it); through
  // a bridge, the bridge's TLS.
  const report = await diagnose(
    connectOptions({ ...t, endToEnd: t.endToEnd || undefined }, {
      timeoutMs: o.timeout,
      user: t.user,
      password: secret.password,
      oauthToken: secret.token,
      mechanism: t.auth,
      onTranscript: o.verbose ? (l) => process.stderr.write(`${l.dir}: ${l.line}\n`) : undefined,
    }),
  );
  const step = (name) => report.steps.find((s) => s.name === name);
  const ms = (name) => step(name)?.ms ?? null;
  const sum = (...v) => (v.every((x) => x === null) ? null : v.reduce((a, x) => a + (x ?? 0), 0));
  r.greeting = report.greeting?.replace(/^\+OK ?/, '') ?? null;
  const tls = report.tls;
  r.tls = tls?.protocol ? { protocol: tls.protocol, cipher: tls.cipher, certificate: tls.certificate, endToEnd: tls.endToEnd } : null;
  r.mechanism = report.mechanisms.used;
  r.messages = report.mailbox?.count ?? null;
  r.size = report.mailbox?.size ?? null;
  r.timings = {
    connect: ms('connect'),
    tls: t.tls === 'starttls' ? ms('stls') : ms('tls'),
    greeting: ms('greeting'),
    // As in a plain check: the login with the CAPA the client asks after it.
    auth: sum(ms('auth'), ms('capa-after-login')),
    stat: ms('stat'),
    list: null,
    total: report.ms,
  };
  if (report.error) {
    const e = report.error;
    r.error = { code: e.code, message: e.message };
    if (e.respCode) r.error.respCode = e.respCode;
    r.step = report.steps.find((s) => s.status === 'fail')?.name ?? null;
    const exception = new Pop3Error(e.message, { code: e.code, respCode: e.respCode, serverText: e.serverText });
    Object.defineProperty(r, 'exception', { value: exception, configurable: true });
  }
  r.serverinfo = report;
  return r;
}

/** A plain check: connect, log in, STAT, and the --expect/--send-via hooks. */
async function plainCheck(t, o, cred) {
  const onTranscript = (l) => process.stderr.write(`${l.dir}: ${l.line}\n`);
  // In a loop (--every), a probe message that came too late is deleted by a later round.
  const dp = o.delivery ? new DeliveryProbe({ ...o.delivery, prefix: 'pop3-check', pending: o.pendingTokens ?? [] }) : null;
  if (dp) await dp.send({ timeoutMs: o.timeout });
  const r = await checkMailbox(t, t.user ? cred.get : undefined, {
    timeoutMs: o.timeout,
    onTranscript: o.verbose ? onTranscript : undefined,
    afterStat: async (c, res, timed) => {
      if (o.expect !== undefined) {
        const needle = o.expect.toLowerCase();
        const list = await timed('list', () => c.summaries());
        const hits = list.filter((m) => (m.subject ?? '').toLowerCase().includes(needle));
        res.matches = hits.length;
        res.matched = hits.map((m) => ({ id: m.id, uid: m.uid, subject: m.subject }));
        if (o.deleteMatch && hits.length) {
          const marked = await c.deleMany(hits.map((m) => m.id));
          const failed = marked.filter((m) => m.error);
          if (failed.length) throw failed[0].error;
          await c.quit();
          res.deleted = hits.length;
        }
      }
      // The check's own session is the round trip's first look.
      if (dp && c.state === 'TRANSACTION') await dp.scan(c);
    },
  });
  if (dp) {
    dp.noteCheck(r);
    await dp.poll(t, cred.get, { deadline: dp.sentAt + o.deliveryTimeout, pollMs: o.poll, timeoutMs: o.timeout });
    r.delivery = dp.result();
    o.pendingTokens = dp.stillPending();
  }
  return r;
}

/** Applies the thresholds to a finished check. */
function evaluate(r, o) {
  if (r.error) return;
  const raise = (level, why) => {
    r.status = Math.max(r.status, level);
    r.problems.push(why);
  };
  for (const [phase, s] of Object.entries(r.timings)) {
    if (s === null) continue;
    if (o.crit[phase] !== undefined && s > o.crit[phase]) raise(CRITICAL, `${phase} took ${(s / 1000).toFixed(3)} s (crit > ${o.crit[phase] / 1000})`);
    else if (o.warn[phase] !== undefined && s > o.warn[phase]) raise(WARNING, `${phase} took ${(s / 1000).toFixed(3)} s (warn > ${o.warn[phase] / 1000})`);
  }
  if (r.certDays !== null) {
    const days = Math.floor(r.certDays);
    if (o.certCritDays && r.certDays < o.certCritDays) raise(CRITICAL, `certificate expires in ${days} days (crit < ${o.certCritDays})`);
    else if (o.certWarnDays && r.certDays < o.certWarnDays) raise(WARNING, `certificate expires in ${days} days (warn < ${o.certWarnDays})`);
  }
  if (r.messages !== null) {
    if (o.countCrit !== undefined && r.messages > o.countCrit) raise(CRITICAL, `${r.messages} messages (crit > ${o.countCrit})`);
    else if (o.countWarn !== undefined && r.messages > o.countWarn) raise(WARNING, `${r.messages} messages (warn > ${o.countWarn})`);
    if (o.sizeCrit !== undefined && r.size > o.sizeCrit) raise(CRITICAL, `mailbox ${r.size} B (crit > ${o.sizeCrit})`);
    else if (o.sizeWarn !== undefined && r.size > o.sizeWarn) raise(WARNING, `mailbox ${r.size} B (warn > ${o.sizeWarn})`);
  }
  if (o.expect !== undefined && r.matches === 0) raise(CRITICAL, `no message with "${o.expect}" in the subject`);
  const d = r.delivery;
  if (d) {
    if (d.error?.stage === 'smtp') raise(CRITICAL, `sending the probe message failed: ${d.error.message}`);
    else if (!d.found) {
      raise(CRITICAL, `probe message not delivered within ${o.deliveryTimeout / 1000} s${d.error ? ` (last look: ${d.error.message})` : ''}`);
    } else if (o.deliveryWarn !== undefined && d.seconds * 1000 > o.deliveryWarn) {
      raise(WARNING, `delivery took ${d.seconds.toFixed(3)} s (warn > ${o.deliveryWarn / 1000})`);
    }
  }
}

function summary(r, o) {
  if (r.error) {
    // A response code says what kind of refusal it was (IN-USE, SYS/TEMP…).
    const hint = respCodeHint(r.error.respCode);
    const said = hint ? `${hint.title} [${r.error.respCode.toUpperCase()}]: ${r.error.serverText ?? r.error.message}` : r.error.message;
    const what = { CONNECT_FAILED: 'connect failed', TLS_FAILED: 'TLS failed', AUTH_FAILED: 'login failed', TIMEOUT: 'timeout' }[r.error.code];
    return `${what ? `${what}: ` : ''}${said} (${r.error.code})`;
  }
  const parts = [...r.problems];
  if (r.messages !== null) parts.push(`${r.messages} message${r.messages === 1 ? '' : 's'} (${r.size} B)`);
  if (r.matches !== null && r.matches > 0) parts.push(`${r.matches} matching "${o.expect}"${r.deleted ? `, ${r.deleted} deleted` : ''}`);
  if (r.delivery?.found) parts.push(`probe message delivered in ${r.delivery.seconds.toFixed(3)} s and deleted`);
  if (r.mechanism) parts.push(`login ${r.mechanism}`);
  if (r.tls) parts.push(`${r.tls.protocol}, certificate valid ${Math.floor(r.certDays)} days`);
  else if (!r.error) parts.push('no TLS');
  if (r.timings.total !== null) parts.push(`${(r.timings.total / 1000).toFixed(3)} s`);
  return [...new Set(parts)].join(', ');
}

function perfdata(r, o) {
  const t = r.timings;
  const th = (phase) => [secs(o.warn[phase]), secs(o.crit[phase])];
  const out = [
    perf('time', t.total / 1000, 's', ...th('total')),
    ...['connect', 'tls', 'greeting', 'auth', 'stat', 'list'].map((p) => (t[p] === null ? null : perf(p, t[p] / 1000, 's', ...th(p)))),
    perf('messages', r.messages, '', o.countWarn ?? '', o.countCrit ?? ''),
    perf('size', r.size, 'B', o.sizeWarn ?? '', o.sizeCrit ?? ''),
    r.certDays === null
      ? null
      : perf('cert_days', Math.floor(r.certDays), '', o.certWarnDays ? `${o.certWarnDays}:` : '', o.certCritDays ? `${o.certCritDays}:` : '', ''),
    o.expect !== undefined && r.matches !== null ? perf('matches', r.matches, '', '', '1:') : null,
    r.delivery?.found ? perf('delivery', r.delivery.seconds, 's', secs(o.deliveryWarn), secs(o.deliveryTimeout)) : null,
    r.delivery?.smtpSeconds !== null && r.delivery?.smtpSeconds !== undefined ? perf('smtp', r.delivery.smtpSeconds, 's') : null,
  ];
  return out.filter(Boolean).join(' ');
}

/** The JSON form of a result (loop mode and --json). */
function json(r, o) {
  const t = Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, v === null ? null : Math.round(v * 1000) / 1e6]));
  return {
    time: r.time,
    status: NAMES[r.status],
    exitCode: r.status,
    summary: summary(r, o),
    error: r.error,
    timings: t,
    messages: r.messages,
    size: r.size,
    mechanism: r.mechanism,
    tls: r.tls,
    certDays: r.certDays === null ? null : Math.floor(r.certDays),
    ...(o.expect !== undefined ? { matches: r.matches, matched: r.matched ?? [], deleted: r.deleted ?? 0 } : {}),
    ...(r.serverinfo ? { serverinfo: r.serverinfo } : {}),
    ...(r.delivery ? { delivery: r.delivery } : {}),
  };
}

function statusLine(r, o) {
  const pd = perfdata(r, o);
  return `POP3 ${NAMES[r.status]} - ${summary(r, o).replace(/\|/g, '/')}${pd ? ` | ${pd}` : ''}`;
}

/** The round trip's settings from the flags; usage mistakes throw. */
function delivery(o, t) {
  const via = parseSendVia(o.sendVia);
  if (!t.user) throw new UsageError('--send-via needs a user (--user or user@ in the URL): the mailbox the probe message goes to');
  if (o.deleteMatch) throw new UsageError('--send-via deletes its own probe message; it does not go with --delete-match');
  const to = o.sendTo ?? t.user;
  if (!to.includes('@')) throw new UsageError('--send-via needs --send-to (the mailbox\'s address)');
  let ca = t.ca;
  if (o.smtpCaFile) {
    try {
      ca = fs.readFileSync(o.smtpCaFile);
    } catch (e) {
      throw new UsageError(`--smtp-ca-file ${o.smtpCaFile}: ${e.code ?? e.message}`);
    }
  }
  if (o.deliveryWarn !== undefined && o.deliveryWarn >= o.deliveryTimeout) throw new UsageError('--delivery-warn must be shorter than --delivery-timeout');
  return { via, auth: smtpAuth(o), ca, from: o.sendFrom ?? to, to };
}

/** Runs pop3-check with `argv` (without node and the script); resolves the exit code. */
export async function main(argv, { stdout = process.stdout, stderr = process.stderr } = {}) {
  const p = program();
  p.exitOverride();
  // Usage errors come out as the UNKNOWN status line, on stdout, once.
  p.configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s), outputError: () => {} });
  let o;
  let t;
  let cred;
  try {
    p.parse(argv, { from: 'user' });
    o = p.opts();
    o.warn ??= {};
    o.crit ??= {};
    t = target(p.args[0], o);
    if (o.deleteMatch && o.expect === undefined) throw new UsageError('--delete-match needs --expect');
    if (o.serverinfo && (o.expect !== undefined || o.sendVia !== undefined)) {
      throw new UsageError('--serverinfo runs the check as a diagnosis (its own session, never QUIT): it does not go with --expect or --send-via');
    }
    if (o.count !== undefined && o.every === undefined) throw new UsageError('--count needs --every');
    if (o.expect !== undefined && !t.user) throw new UsageError('--expect needs a user (--user or user@ in the URL)');
    if (t.user) cred = await credentials(o, t);
    if (o.sendVia !== undefined) o.delivery = delivery(o, t);
    else {
      const stray = ['sendTo', 'sendFrom', 'smtpUser', 'smtpPasswordEnv', 'smtpPasswordFile', 'smtpCaFile', 'deliveryWarn'].find((k) => o[k] !== undefined);
      if (stray) throw new UsageError(`--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --send-via`);
    }
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return OK;
      stdout.write(`POP3 UNKNOWN - ${e.message.replace(/^error: /, '')}\n`);
      return UNKNOWN;
    }
    if (e instanceof UsageError) {
      stdout.write(`POP3 UNKNOWN - ${e.message}\n`);
      return UNKNOWN;
    }
    throw e;
  }

  if (o.every === undefined) {
    const r = await checkOnce(t, o, cred);
    // --serverinfo --json: the report exactly as diagnose() resolves it (the
    // status is the exit code); the check's JSON only when no diagnosis ran
    // (the password could not be read).
    if (o.json) stdout.write(`${JSON.stringify(r.serverinfo ?? json(r, o))}\n`);
    else {
      stdout.write(`${statusLine(r, o)}\n`);
      // Long output (Nagios' lines after the first): what the code means.
      if (r.error?.explanation) stdout.write(`${r.error.explanation}\n`);
      if (r.serverinfo) stdout.write(`${reportText(r.serverinfo)}\n`);
    }
    return r.status;
  }

  // Loop mode: one JSON line per check, until --count or a signal.
  let stop = false;
  let wake = null;
  const onSignal = () => {
    stop = true;
    wake?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let last = UNKNOWN;
  try {
    for (let n = 0; !stop && (o.count === undefined || n < o.count); n++) {
      const started = Date.now();
      const r = await checkOnce(t, o, cred);
      last = r.status;
      stdout.write(`${JSON.stringify(json(r, o))}\n`);
      if (o.count !== undefined && n + 1 >= o.count) break;
      const wait = Math.max(0, o.every - (Date.now() - started));
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, wait);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return last;
}
