// What pop3-check and pop3 shell share: the target (flags or a pop3s:// URL),
// the password (environment, file or a prompt without echo; never a flag)
// or an OAuth 2.0 access token (environment, file or a command), and
// opening a session directly or through ws-bridge with phase marks.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { ErrorCode, Pop3Client, Pop3Error } from '../node.js';

export { ErrorCode, Pop3Client, Pop3Error };

/** A usage mistake: reported as UNKNOWN by pop3-check, as an error by pop3. */
export class UsageError extends Error {}

const TLS_MODES = ['implicit', 'starttls', 'none'];

/**
 * `pop3s://user@host:995`, `pop3://user@host:110?tls=starttls|none`
 * (RFC 2384 style; `;AUTH=MECH` after the user forces a mechanism).
 * `pop3://` defaults to STLS: credentials never travel readable by default.
 */
export function parseUrl(text) {
  let u;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`not a URL: ${text}`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme !== 'pop3' && scheme !== 'pop3s') throw new UsageError(`the URL must start with pop3s:// or pop3://, not ${scheme}://`);
  if (u.password) throw new UsageError('never put the password in the URL: use POP3_PASSWORD, --password-env or --password-file');
  let tls = scheme === 'pop3s' ? 'implicit' : 'starttls';
  const q = u.searchParams.get('tls');
  if (q) {
    if (!TLS_MODES.includes(q)) throw new UsageError(`tls=${q}: expected implicit, starttls or none`);
    if (scheme === 'pop3s' && q !== 'implicit') throw new UsageError(`pop3s:// is implicit TLS; use pop3://…?tls=${q}`);
    tls = q;
  }
  let user;
  let auth;
  if (u.username) {
    const [name, ...params] = decodeURIComponent(u.username).split(';');
    user = name || undefined;
    for (const p of params) {
      const m = /^auth=(.+)$/i.exec(p);
      if (m && m[1] !== '*') auth = m[1].toUpperCase();
    }
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new UsageError('the URL names no host');
  return { host, port: u.port ? Number(u.port) : undefined, tls, user, auth };
}

/** Merges the URL and the flags (flags win) into one target. */
export function target(url, o) {
  const fromUrl = url ? parseUrl(url) : {};
  const t = {
    host: o.host ?? fromUrl.host,
    port: o.port ?? fromUrl.port,
    tls: o.tls ?? fromUrl.tls ?? 'implicit',
    user: o.user ?? fromUrl.user,
    auth: o.auth?.toUpperCase() ?? fromUrl.auth,
    bridge: o.bridge,
    endToEnd: Boolean(o.endToEnd),
    token: o.tokenEnv ? process.env[o.tokenEnv] : undefined,
    ca: undefined,
    caFile: o.caFile,
    insecureAuth: Boolean(o.insecureAuth),
  };
  if (!t.host) throw new UsageError('no server: give a pop3s://user@host URL or --host');
  if (!TLS_MODES.includes(t.tls)) throw new UsageError(`--tls ${t.tls}: expected implicit, starttls or none`);
  if (t.port === undefined) t.port = t.tls === 'implicit' ? 995 : 110;
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new UsageError(`bad port ${t.port}`);
  if (o.tokenEnv && !t.token) throw new UsageError(`--token-env ${o.tokenEnv}: that variable is not set`);
  if (t.caFile) {
    if (t.bridge && !t.endToEnd) {
      throw new UsageError('--ca-file is for direct connections and --end-to-end; a bridge doing TLS trusts what its own --ca-file names');
    }
    try {
      t.ca = fs.readFileSync(t.caFile);
    } catch (e) {
      throw new UsageError(`--ca-file ${t.caFile}: ${e.code ?? e.message}`);
    }
  }
  return t;
}

export function parsePort(v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`bad port ${v}`);
  return n;
}

/** `60s`, `5m`, `500ms`, `1h`, or a bare number of seconds → milliseconds. */
export function parseDuration(v) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(v).trim());
  if (!m) throw new UsageError(`bad duration ${v} (e.g. 60s, 5m, 500ms, 1.5)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'];
  return Number(m[1]) * scale;
}

/**
 * Reads one line from the terminal without echoing it. `rl`: an existing
 * readline interface to borrow (the shell's); otherwise a temporary one.
 */
export function askHidden(prompt, { rl, input = process.stdin, output = process.stderr } = {}) {
  return new Promise((resolve, reject) => {
    const own = !rl;
    const r = rl ?? readline.createInterface({ input, output, terminal: Boolean(input.isTTY), historySize: 0 });
    const out = r.output ?? output;
    const write = r._writeToOutput;
    // Only the prompt is shown (question() writes it, once); the characters
    // typed are not.
    r._writeToOutput = (s) => {
      if (s.startsWith(prompt)) out.write(prompt);
    };
    // A terminal that readline does not drive (no terminal to draw on)
    // would echo the password itself: switch its echo off meanwhile.
    const tty = r.input ?? input;
    const raw = !r.terminal && tty.isTTY && typeof tty.setRawMode === 'function' && !tty.isRaw;
    if (raw) tty.setRawMode(true);
    let done = false;
    const finish = (err, answer) => {
      if (done) return;
      done = true;
      if (raw) tty.setRawMode(false);
      r._writeToOutput = write;
      r.off('SIGINT', onInt);
      r.off('close', onClose);
      out.write('\n');
      if (Array.isArray(r.history) && r.history[0] === answer) r.history.shift();
      if (own) r.close();
      if (err) reject(err);
      else resolve(answer);
    };
    const onInt = () => finish(new UsageError('cancelled'));
    const onClose = () => finish(new UsageError('no password given (end of input)'));
    r.on('SIGINT', onInt);
    r.on('close', onClose);
    r.question(prompt, (answer) => finish(null, answer));
  });
}

/**
 * How the credential sources are called where the user wrote them: the
 * command-line flags here, the YAML keys in pop3-exporter's config. Every
 * message about a source names it this way.
 */
export const FLAG_NAMES = Object.freeze({
  passwordEnv: '--password-env',
  passwordFile: '--password-file',
  oauthTokenEnv: '--oauth-token-env',
  oauthTokenFile: '--oauth-token-file',
  oauthTokenCommand: '--oauth-token-command',
  auth: '--auth',
});

/** The first line of a secret file, without its line end. */
export function readSecretFile(file, name) {
  try {
    return fs.readFileSync(file, 'utf8').split(/\r?\n/)[0];
  } catch (e) {
    throw new UsageError(`${name} ${file}: ${e.code ?? e.message}`);
  }
}

/**
 * The password: --password-file, then the variable --password-env names
 * (default POP3_PASSWORD), then a prompt when stdin is a terminal. With
 * `implicit: false` (a daemon) only a source that was named counts.
 */
export async function password(o, user, { names = FLAG_NAMES, implicit = true } = {}) {
  if (o.passwordFile) return readSecretFile(o.passwordFile, names.passwordFile);
  if (!implicit && o.passwordEnv === undefined) {
    throw new UsageError(`no password: give ${names.passwordEnv}, ${names.passwordFile} or an OAuth token source`);
  }
  const name = o.passwordEnv ?? 'POP3_PASSWORD';
  if (process.env[name] !== undefined) return process.env[name];
  if (o.passwordEnv) throw new UsageError(`${names.passwordEnv} ${name}: that variable is not set`);
  if (process.stdin.isTTY) return askHidden(`Password for ${user}: `);
  throw new UsageError('no password: set POP3_PASSWORD, or use --password-env NAME or --password-file FILE');
}

const OAUTH_MECHANISMS = ['OAUTHBEARER', 'XOAUTH2'];
const OAUTH_SOURCES = ['oauthTokenEnv', 'oauthTokenFile', 'oauthTokenCommand'];
/** RFC 6750's b64token: what a bearer token may be made of. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const TOKEN_COMMAND_TIMEOUT_MS = 30_000;

/** The first line of `text`, without its line end; a usable bearer token or a UsageError. */
function bearerToken(text, from) {
  const token = text.split(/\r?\n/)[0].trim();
  if (!token) throw new UsageError(`${from} gave no OAuth token`);
  // Never quote it: a malformed token may still be mostly secret.
  if (!BEARER_TOKEN.test(token)) throw new UsageError(`${from} gave something that is not an OAuth bearer token (RFC 6750)`);
  return token;
}

/** Runs `command` with /bin/sh; resolves with its standard output. */
function runTokenCommand(command, name) {
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { timeout: TOKEN_COMMAND_TIMEOUT_MS, maxBuffer: 1 << 16 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      // Its standard error says why; its standard output may hold the token.
      const why = err.killed ? `no answer in ${TOKEN_COMMAND_TIMEOUT_MS / 1000} s` : `exit ${err.code ?? err.signal}`;
      const said = String(stderr).trim().split(/\r?\n/).pop()?.slice(0, 200);
      reject(new UsageError(`${name} failed (${why})${said ? `: ${said}` : ''}`));
    });
  });
}

/** The access token, from the one source given (read anew at every call). */
async function oauthToken(o, names) {
  if (o.oauthTokenEnv !== undefined) {
    const v = process.env[o.oauthTokenEnv];
    if (v === undefined) throw new UsageError(`${names.oauthTokenEnv} ${o.oauthTokenEnv}: that variable is not set`);
    return bearerToken(v, `${names.oauthTokenEnv} ${o.oauthTokenEnv}`);
  }
  if (o.oauthTokenFile !== undefined) {
    let text;
    try {
      text = fs.readFileSync(o.oauthTokenFile, 'utf8');
    } catch (e) {
      throw new UsageError(`${names.oauthTokenFile} ${o.oauthTokenFile}: ${e.code ?? e.message}`);
    }
    return bearerToken(text, `${names.oauthTokenFile} ${o.oauthTokenFile}`);
  }
  return bearerToken(await runTokenCommand(o.oauthTokenCommand, names.oauthTokenCommand), names.oauthTokenCommand);
}

/**
 * What to log in with, as `{ get }`: `get()` resolves to `{ password }`, or
 * to `{ token }` when --oauth-token-env, --oauth-token-file or
 * --oauth-token-command is given. A token is read again at every `get()`
 * (a monitoring loop picks up a refreshed one); the first read happens
 * here, so that a usage mistake shows at once. `names`: how the sources
 * are called in messages (FLAG_NAMES, or a config file's keys);
 * `implicit`: whether $POP3_PASSWORD and a prompt may stand in when no
 * source is named (not for a daemon).
 */
export async function credentials(o, t, { names = FLAG_NAMES, implicit = true } = {}) {
  const given = OAUTH_SOURCES.filter((k) => o[k] !== undefined);
  if (given.length > 1) throw new UsageError(`give one token source, not ${given.map((k) => names[k]).join(' and ')}`);
  if (given.length === 0) {
    const pw = await password(o, t.user, { names, implicit });
    return { get: async () => ({ password: pw }) };
  }
  if (o.passwordEnv !== undefined || o.passwordFile !== undefined) {
    throw new UsageError(`${names[given[0]]} logs in with a token: drop ${names.passwordEnv}/${names.passwordFile}`);
  }
  if (t.auth && !OAUTH_MECHANISMS.includes(t.auth)) {
    throw new UsageError(`${names.auth} ${t.auth} takes a password; with an OAuth token use OAUTHBEARER or XOAUTH2`);
  }
  await oauthToken(o, names);
  return { get: async () => ({ token: await oauthToken(o, names) }) };
}

/**
 * Connects to `t` (direct, or through `t.bridge`). `marks.phases` collects
 * the connect sequence's steps as the client times them (`onPhase`:
 * `{ name, startMs, ms, ok }`), `marks.start` when it began.
 */
export async function open(t, { marks = {}, timeoutMs = 10_000, signal, onTranscript } = {}) {
  marks.start ??= performance.now();
  marks.phases ??= [];
  return Pop3Client.connect(connectOptions(t, { timeoutMs, signal, onTranscript, onPhase: (p) => marks.phases.push(p) }));
}

/** `Pop3Client.connect`'s (and diagnose()'s) options for target `t`, plus `extra`. */
export function connectOptions(t, extra = {}) {
  return {
    bridge: t.bridge,
    host: t.host,
    port: t.port,
    tls: t.tls,
    endToEnd: t.endToEnd,
    token: t.token,
    ca: t.ca,
    allowInsecureAuth: t.insecureAuth,
    ...extra,
  };
}

/**
 * Logs in with `{ password }` or `{ token }` (what `credentials().get()`
 * gives): the forced mechanism, else the strongest offered; with a token,
 * OAUTHBEARER (RFC 7628) when the server offers it, else XOAUTH2.
 */
export async function login(c, t, { password: pw, token }) {
  if (token === undefined) return t.auth ? c.auth(t.auth, { username: t.user, password: pw }) : c.login(t.user, pw);
  // What the server offers, as the client learnt it at connect (no CAPA again).
  const mech = t.auth ?? (c.capabilities?.sasl.includes('OAUTHBEARER') ? 'OAUTHBEARER' : 'XOAUTH2');
  return c.auth(mech, { username: t.user, token });
}

/** Days from now until an ISO date (fractional). */
export function daysUntil(iso) {
  return (Date.parse(iso) - Date.now()) / 86_400_000;
}
