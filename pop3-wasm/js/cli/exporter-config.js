// pop3-exporter's configuration: a YAML file of modules, as
// blackbox_exporter's. Every mistake is found at start (or reload) and
// named with its place: `modules.fleet.tls: expected implicit, starttls or
// none`. Secrets never stand in the file: a key that looks like one is
// refused, and the credentials come from the environment or from files.
//
//   per_server_concurrency: 4        # probes at once per server (host:port); more wait
//   modules:
//     NAME:
//       tls: implicit | starttls | none      (default implicit)
//       user: monitor                        (none: connect, greeting, CAPA only)
//       user_from_target: false              (true: target user@host:port names the mailbox)
//       auth: SCRAM-SHA-256                  (force a mechanism; default the strongest offered)
//       password_env / password_file / passwords_file (user:password lines)
//       oauth_token_env / oauth_token_file / oauth_token_command
//       ca_file, bridge, bridge_token_env, insecure_auth, timeout (10s)
//       allow: [ "pop.example.com:995", "*.mail.example.com:995,110" ]
//       send_via: smtp://mx.example.com:587  (the delivery round trip)
//       send_from, send_to ("{user}@example.com"), smtp_user,
//       smtp_password_env / smtp_password_file, smtp_ca_file,
//       delivery_timeout (60s), delivery_poll (2s)
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { UsageError, credentials, parseDuration } from './common.js';
import { parseSendVia, smtpAuth } from './delivery.js';

const TLS_MODES = ['implicit', 'starttls', 'none'];
const TOP_KEYS = ['modules', 'per_server_concurrency'];
const MODULE_KEYS = [
  'tls', 'user', 'user_from_target', 'auth',
  'password_env', 'password_file', 'passwords_file',
  'oauth_token_env', 'oauth_token_file', 'oauth_token_command',
  'ca_file', 'bridge', 'bridge_token_env', 'insecure_auth', 'timeout', 'allow',
  'send_via', 'send_from', 'send_to', 'smtp_user', 'smtp_password_env', 'smtp_password_file', 'smtp_ca_file',
  'delivery_timeout', 'delivery_poll',
];
/** Keys that would hold a secret itself: refused, with the right key to use instead. */
const SECRET_KEYS = /^(password|passwd|pass|secret|token|oauth_token|access_token|bearer_token|bridge_token|smtp_password|smtp_pass|api_key)$/i;

/** How the credential sources are called in this file, for common.js's messages. */
const NAMES = Object.freeze({
  passwordEnv: 'password_env',
  passwordFile: 'password_file',
  oauthTokenEnv: 'oauth_token_env',
  oauthTokenFile: 'oauth_token_file',
  oauthTokenCommand: 'oauth_token_command',
  auth: 'auth',
  smtpUser: 'smtp_user',
  smtpPasswordEnv: 'smtp_password_env',
  smtpPasswordFile: 'smtp_password_file',
});

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_PER_SERVER = 4;

/** A config mistake, with where it is. */
export class ConfigError extends Error {}

const isMap = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * One `allow` entry: `host:port[,port…]`, host `*.example.com` (any name
 * below) or `*` (any host), IPv6 in brackets. Returns a matcher.
 */
export function allowEntry(text) {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d+(?:,\d+)*)$/.exec(String(text).trim());
  if (!m) throw new UsageError(`"${text}" is not HOST:PORT[,PORT…]`);
  const host = m[1].replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
  const ports = new Set(m[2].split(',').map(Number));
  for (const p of ports) if (p < 1 || p > 65535) throw new UsageError(`"${text}": bad port ${p}`);
  const suffix = host.startsWith('*.') ? host.slice(1) : null;
  return (h, p) => ports.has(p) && (host === '*' || h === host || (suffix !== null && h.endsWith(suffix) && h.length > suffix.length));
}

/**
 * `[user@]host[:port]` (IPv6 in brackets) → { user, host, port }; the
 * user is whatever stands before the last `@`.
 */
export function parseTarget(text, tls) {
  const s = String(text ?? '').trim();
  const at = s.lastIndexOf('@');
  const user = at >= 0 ? s.slice(0, at) : undefined;
  const hostport = at >= 0 ? s.slice(at + 1) : s;
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(hostport);
  if (!m || user === '' || /[\s\0]/.test(user ?? '')) throw new UsageError('target must be HOST:PORT or USER@HOST:PORT');
  const host = m[1].replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
  const port = m[2] === undefined ? (tls === 'implicit' ? 995 : 110) : Number(m[2]);
  if (port < 1 || port > 65535) throw new UsageError(`bad port ${m[2]}`);
  return { user, host, port };
}

/** `user:password` lines (# comments), re-read when the file changes. */
function passwordsFile(file, where) {
  let cache = { mtimeMs: -1, map: new Map() };
  const load = () => {
    const st = fs.statSync(file);
    if (st.mtimeMs === cache.mtimeMs && st.size === cache.size) return cache.map;
    const map = new Map();
    for (const line of fs.readFileSync(file, 'utf8').split(/\r?\n/)) {
      if (!line || line.startsWith('#')) continue;
      const i = line.indexOf(':');
      if (i <= 0) continue;
      map.set(line.slice(0, i), line.slice(i + 1));
    }
    cache = { mtimeMs: st.mtimeMs, size: st.size, map };
    return map;
  };
  try {
    load();
  } catch (e) {
    throw new ConfigError(`${where}: ${file}: ${e.code ?? e.message}`);
  }
  return (user) => {
    const pw = load().get(user);
    if (pw === undefined) throw new UsageError(`passwords_file has no line for ${user}`);
    return pw;
  };
}

function str(v, where) {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${where}: expected a non-empty string`);
  return v;
}

function bool(v, where) {
  if (typeof v !== 'boolean') throw new ConfigError(`${where}: expected true or false`);
  return v;
}

function duration(v, where) {
  try {
    const ms = parseDuration(v);
    if (!(ms > 0)) throw new UsageError('must be more than 0');
    return ms;
  } catch (e) {
    throw new ConfigError(`${where}: ${e.message}`);
  }
}

function readFile(file, where) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new ConfigError(`${where}: ${file}: ${e.code ?? e.message}`);
  }
}

/** Validates one module; resolves what a probe needs (credentials read once here). */
async function loadModule(name, raw, base) {
  const at = `modules.${name}`;
  if (!isMap(raw)) throw new ConfigError(`${at}: expected a map of settings`);
  for (const k of Object.keys(raw)) {
    if (SECRET_KEYS.test(k)) {
      const instead = /smtp/i.test(k) ? 'smtp_password_env or smtp_password_file' : /token/i.test(k) ? 'oauth_token_env, oauth_token_file or oauth_token_command' : 'password_env (an environment variable) or password_file';
      throw new ConfigError(`${at}.${k}: secrets never go in the config file; use ${instead}`);
    }
    if (!MODULE_KEYS.includes(k)) throw new ConfigError(`${at}.${k}: unknown setting (known: ${MODULE_KEYS.join(', ')})`);
  }
  const rel = (f, where) => path.resolve(base, str(f, where));
  const m = { name, raw };
  m.tls = raw.tls ?? 'implicit';
  if (!TLS_MODES.includes(m.tls)) throw new ConfigError(`${at}.tls: expected implicit, starttls or none, not ${m.tls}`);
  m.user = raw.user === undefined ? undefined : str(raw.user, `${at}.user`);
  m.userFromTarget = raw.user_from_target === undefined ? false : bool(raw.user_from_target, `${at}.user_from_target`);
  m.auth = raw.auth === undefined ? undefined : str(raw.auth, `${at}.auth`).toUpperCase();
  m.insecureAuth = raw.insecure_auth === undefined ? false : bool(raw.insecure_auth, `${at}.insecure_auth`);
  m.timeoutMs = raw.timeout === undefined ? DEFAULT_TIMEOUT_MS : duration(raw.timeout, `${at}.timeout`);
  m.bridge = raw.bridge === undefined ? undefined : str(raw.bridge, `${at}.bridge`);
  if (m.bridge && !/^wss?:\/\//.test(m.bridge)) throw new ConfigError(`${at}.bridge: expected a ws:// or wss:// URL`);
  if (raw.bridge_token_env !== undefined) {
    const v = str(raw.bridge_token_env, `${at}.bridge_token_env`);
    m.bridgeToken = process.env[v];
    if (m.bridgeToken === undefined) throw new ConfigError(`${at}.bridge_token_env ${v}: that variable is not set`);
  }
  if (raw.ca_file !== undefined) {
    if (m.bridge) throw new ConfigError(`${at}.ca_file: is for direct connections; the bridge trusts what its own --ca-file names`);
    m.ca = readFile(rel(raw.ca_file, `${at}.ca_file`), `${at}.ca_file`);
  }

  // Credentials: from the environment or files only.
  const logsIn = m.user !== undefined || m.userFromTarget;
  const o = {
    passwordEnv: raw.password_env === undefined ? undefined : str(raw.password_env, `${at}.password_env`),
    passwordFile: raw.password_file === undefined ? undefined : rel(raw.password_file, `${at}.password_file`),
    oauthTokenEnv: raw.oauth_token_env === undefined ? undefined : str(raw.oauth_token_env, `${at}.oauth_token_env`),
    oauthTokenFile: raw.oauth_token_file === undefined ? undefined : rel(raw.oauth_token_file, `${at}.oauth_token_file`),
    oauthTokenCommand: raw.oauth_token_command === undefined ? undefined : str(raw.oauth_token_command, `${at}.oauth_token_command`),
  };
  const sources = Object.entries(o).filter(([, v]) => v !== undefined);
  if (raw.passwords_file !== undefined) {
    if (sources.length) throw new ConfigError(`${at}.passwords_file: give it alone, not with ${sources.map(([k]) => NAMES[k]).join(', ')}`);
    if (!logsIn) throw new ConfigError(`${at}.passwords_file: needs user or user_from_target`);
    const lookup = passwordsFile(rel(raw.passwords_file, `${at}.passwords_file`), `${at}.passwords_file`);
    m.secretFor = (user) => async () => ({ password: lookup(user) });
  } else if (logsIn) {
    if (!sources.length) throw new ConfigError(`${at}: logs in, so it needs password_env, password_file, passwords_file or an oauth_token_* source`);
    let cred;
    try {
      cred = await credentials(o, { user: m.user, auth: m.auth }, { names: NAMES, implicit: false });
    } catch (e) {
      throw new ConfigError(`${at}: ${e.message}`);
    }
    m.secretFor = () => cred.get;
  } else if (sources.length) {
    throw new ConfigError(`${at}.${NAMES[sources[0][0]]}: without user (or user_from_target) the module does not log in`);
  }

  // Where it may connect: with credentials, only where the file says.
  if (raw.allow !== undefined) {
    const list = Array.isArray(raw.allow) ? raw.allow : [raw.allow];
    m.allow = list.map((e, i) => {
      try {
        return allowEntry(e);
      } catch (err) {
        throw new ConfigError(`${at}.allow[${i}]: ${err.message}`);
      }
    });
  } else if (logsIn) {
    throw new ConfigError(`${at}: a module that logs in needs allow: [HOST:PORT, …], the servers its credentials may be sent to`);
  }

  // The delivery round trip.
  const dk = ['send_from', 'send_to', 'smtp_user', 'smtp_password_env', 'smtp_password_file', 'smtp_ca_file', 'delivery_timeout', 'delivery_poll'];
  if (raw.send_via === undefined) {
    const stray = dk.find((k) => raw[k] !== undefined);
    if (stray) throw new ConfigError(`${at}.${stray}: only with send_via`);
  } else {
    if (!logsIn) throw new ConfigError(`${at}.send_via: the round trip needs a mailbox to log in to (user or user_from_target)`);
    const d = {};
    try {
      d.via = parseSendVia(str(raw.send_via, `${at}.send_via`), `${at}.send_via`);
      d.auth = smtpAuth(
        {
          smtpUser: raw.smtp_user === undefined ? undefined : str(raw.smtp_user, `${at}.smtp_user`),
          smtpPasswordEnv: raw.smtp_password_env === undefined ? undefined : str(raw.smtp_password_env, `${at}.smtp_password_env`),
          smtpPasswordFile: raw.smtp_password_file === undefined ? undefined : rel(raw.smtp_password_file, `${at}.smtp_password_file`),
        },
        { names: Object.fromEntries(Object.entries(NAMES).map(([k, v]) => [k, `${at}.${v}`])), implicit: false },
      );
    } catch (e) {
      throw new ConfigError(e.message);
    }
    d.to = raw.send_to === undefined ? m.user : str(raw.send_to, `${at}.send_to`);
    if (!d.to?.includes('@')) throw new ConfigError(`${at}.send_to: needed (the mailbox's address; "{user}" stands for the target's user)`);
    d.from = raw.send_from === undefined ? undefined : str(raw.send_from, `${at}.send_from`);
    d.ca = raw.smtp_ca_file === undefined ? m.ca : readFile(rel(raw.smtp_ca_file, `${at}.smtp_ca_file`), `${at}.smtp_ca_file`);
    d.timeoutMs = raw.delivery_timeout === undefined ? 60_000 : duration(raw.delivery_timeout, `${at}.delivery_timeout`);
    d.pollMs = raw.delivery_poll === undefined ? 2000 : duration(raw.delivery_poll, `${at}.delivery_poll`);
    if (raw.timeout === undefined) m.timeoutMs = d.timeoutMs + 15_000;
    if (d.timeoutMs >= m.timeoutMs) throw new ConfigError(`${at}.delivery_timeout: must be shorter than timeout (${m.timeoutMs / 1000} s), which bounds the whole probe`);
    m.delivery = d;
  }
  return m;
}

/** Reads and checks the file; resolves { file, modules: Map, perServer }. Throws ConfigError. */
export async function loadConfig(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: ${e.code ?? e.message}`);
  }
  let doc;
  try {
    doc = YAML.parse(text, { prettyErrors: true });
  } catch (e) {
    const pos = e.linePos?.[0];
    const what = String(e.message).split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${what}`);
  }
  if (!isMap(doc)) throw new ConfigError(`${file}: expected a map with modules:`);
  for (const k of Object.keys(doc)) if (!TOP_KEYS.includes(k)) throw new ConfigError(`${file}: ${k}: unknown setting (known: ${TOP_KEYS.join(', ')})`);
  if (!isMap(doc.modules) || !Object.keys(doc.modules).length) throw new ConfigError(`${file}: modules: expected at least one module`);
  const perServer = doc.per_server_concurrency ?? DEFAULT_PER_SERVER;
  if (!Number.isInteger(perServer) || perServer < 1) throw new ConfigError(`${file}: per_server_concurrency: expected a whole number ≥ 1`);
  const base = path.dirname(path.resolve(file));
  const modules = new Map();
  for (const [name, raw] of Object.entries(doc.modules)) {
    try {
      modules.set(name, await loadModule(name, raw, base));
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(`${file}: ${e.message}`);
      throw e;
    }
  }
  return { file, modules, perServer };
}
