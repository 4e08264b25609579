// What the checker and the playground share: the connection form, the
// demo's settings, and errors in words a postmaster understands.
import { respCodeHint } from '../pop3-wasm/js/resp-codes.js';
import { ErrorCode, TlsReason } from '../pop3-wasm/js/error-codes.js';

export const $ = (id) => document.getElementById(id);

/** A DOM element with text (never HTML) and attributes. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c);
  return e;
}

export function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * `/demo.json` exists only under `ws-bridge demo`: the demo server's
 * host, ports and credentials. Anywhere else the fetch fails and the
 * form starts empty.
 */
export async function loadDemo() {
  try {
    const r = await fetch('./demo.json', { cache: 'no-store' });
    if (!r.ok) return null;
    const d = await r.json();
    return d && d.demo ? d : null;
  } catch {
    return null;
  }
}

/**
 * What the bridge serving this page says about itself (`/bridge.json`:
 * `{ wire, endToEndOnly }`); null where it says nothing (an older bridge,
 * another server).
 */
export async function loadBridgeInfo() {
  try {
    const r = await fetch('./bridge.json');
    if (!r.ok) return null;
    const b = await r.json();
    return b && Array.isArray(b.wire) ? b : null;
  } catch {
    return null;
  }
}

/**
 * Fills the connection form: query parameters win (a shared link), then
 * the demo's settings, then defaults. The password comes only from the
 * demo (its password is public); nothing is ever stored. End-to-end TLS is
 * on by default when the bridge requires it (`bridge.endToEndOnly`).
 */
export function fillForm(demo, bridge = null) {
  const q = new URLSearchParams(location.search);
  const set = (id, v) => {
    const e = $(id);
    if (e && v !== undefined && v !== null && v !== '') e.value = String(v);
  };
  set('bridge', q.get('bridge') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/pop3`);
  set('host', q.get('host') ?? demo?.host);
  set('tls', q.get('tls') ?? demo?.tls ?? 'implicit');
  set('port', q.get('port') ?? demo?.port ?? defaultPort($('tls').value));
  set('user', q.get('user') ?? demo?.user);
  if (demo && !q.get('host')) set('password', demo.password);
  const caInput = $('ca');
  caInput?.addEventListener('change', async () => {
    const file = caInput.files?.[0];
    caPem = file ? await file.text() : null;
  });
  const e2e = $('e2e');
  if (e2e) {
    e2e.checked = q.has('e2e') ? q.get('e2e') === '1' : bridge?.endToEndOnly === true;
    // TLS in the browser needs TLS: not with "none".
    const sync = () => {
      const none = $('tls').value === 'none';
      e2e.disabled = none;
      if (none) e2e.checked = false;
      if (caInput) caInput.disabled = !e2e.checked;
    };
    $('tls').addEventListener('change', sync);
    e2e.addEventListener('change', sync);
    sync();
  }

  // Switching security switches the port when it still is the standard one
  // (or the demo's) of the previous choice.
  let previous = $('tls').value;
  $('tls').addEventListener('change', () => {
    const next = $('tls').value;
    const port = Number($('port').value);
    if (!port || port === defaultPort(previous, demo) || port === defaultPort(previous)) {
      $('port').value = String(defaultPort(next, demo));
    }
    previous = next;
  });
}

export function defaultPort(tls, demo) {
  if (demo?.ports) return tls === 'implicit' ? demo.ports.pop3s : demo.ports.pop3;
  return tls === 'implicit' ? 995 : 110;
}

/** The demo banner, when running under `ws-bridge demo`. */
export function showDemoBanner(demo) {
  const b = $('demo-banner');
  if (!b || !demo) return;
  b.replaceChildren(
    el('strong', { text: 'Demo mailbox. ' }),
    `A POP3 server on this machine (${demo.host}, port ${demo.ports.pop3} plain/STLS, ${demo.ports.pop3s} implicit TLS), user `,
    el('code', { text: demo.user }),
    ', password ',
    el('code', { text: demo.password }),
    ' — filled in below. It starts fresh every time the demo starts; what you delete here is really deleted until then.',
  );
  b.classList.remove('hidden');
}

/** The CA certificate picked in the form (PEM text), for end-to-end TLS. */
let caPem = null;

/** The connection options from the form. */
export function connectOptions(extra = {}) {
  const endToEnd = $('e2e')?.checked ?? false;
  return {
    bridge: $('bridge').value.trim(),
    host: $('host').value.trim(),
    port: Number($('port').value),
    tls: $('tls').value,
    endToEnd,
    ca: endToEnd && caPem ? caPem : undefined,
    timeoutMs: 30000,
    allowInsecureAuth: $('insecure')?.checked ?? false,
    ...extra,
  };
}

/** Where TLS ends, in a sentence, for `c.tls` (null: no TLS). */
export function whereTlsEnds(tls) {
  if (!tls) return 'Nowhere: there is no TLS, everything travels readable.';
  return tls.endToEnd
    ? 'In this browser (end to end): the bridge relayed only ciphertext and never held a key.'
    : 'At the bridge: it decrypts the session and could read everything, the password included.';
}

/** The title of a TLS failure by `err.reason` (the detail quotes names and dates). */
const TLS_TITLES = {
  [TlsReason.UNTRUSTED]: 'Certificate not trusted',
  [TlsReason.EXPIRED]: 'Certificate expired',
  [TlsReason.NOT_YET_VALID]: 'Certificate not yet valid',
  [TlsReason.WRONG_NAME]: 'Certificate for another name',
};

/**
 * An error in words: `{ title, text, detail }`, keyed on the error's
 * `code` (see the README's list). Never a stack trace.
 */
export function explain(err, ctx = {}) {
  const target = ctx.host ? `${ctx.host}:${ctx.port}` : 'the server';
  const said = err?.serverText ? `The server said: “${err.serverText}”` : null;
  const code = err?.code;
  const m = (title, text, detail) => ({ title, text, detail, code });
  switch (code) {
    case ErrorCode.BRIDGE_UNREACHABLE:
      return m('Cannot reach the bridge', `Nothing answered at ${ctx.bridge || 'the bridge URL'}. Check that ws-bridge is running and that the URL is right (ws:// or wss://, ending in /pop3).`);
    case ErrorCode.BRIDGE_REJECTED:
      return m('The bridge refused this server', `ws-bridge will not connect to ${target}. A bridge relays only to the servers it allows (by default public hosts on ports 110 and 995, never private addresses); an access token or this page's origin may also be refused. Ask whoever runs the bridge to allow it.`);
    case ErrorCode.CONNECT_FAILED:
      return m('Cannot connect to the server', `The bridge could not open a TCP connection to ${target}: the server is down, the port is closed, or a firewall drops the connection.`, err?.message);
    case ErrorCode.TLS_FAILED:
      return m(TLS_TITLES[err?.reason] ?? 'TLS certificate problem', `The secure connection to ${target} failed: the certificate is not trusted, has expired, or does not name this host — or the port does not speak TLS (implicit TLS is usually port 995; STLS upgrades port 110).`, err?.message);
    case ErrorCode.AUTH_FAILED: {
      // [AUTH] or no code: the credentials (IN-USE, LOGIN-DELAY and SYS/*
      // on a login are SERVER_ERROR, below).
      const hint = respCodeHint(err?.respCode);
      if (hint) return m(hint.title, hint.text, said);
      return m('Wrong user name or password', 'The server refused the login: the password is wrong, the user does not exist, or the account is locked.', said ?? err?.message);
    }
    case ErrorCode.INSECURE_AUTH_REFUSED:
      return m('Password not sent: no TLS', 'This session has no TLS to the server, so the password would travel readable. Choose implicit TLS or STLS — or, for a test server only, tick “Send the password without TLS”.');
    case ErrorCode.TIMEOUT:
      return m('The server did not answer in time', `No answer from ${target} within the time limit: the server or the network is slow, or packets are being dropped.`);
    case ErrorCode.CONNECTION_CLOSED:
      return m('The connection closed', 'The server or the bridge closed the connection unexpectedly (the server hung up, an idle timeout, or the bridge stopped). Nothing marked for deletion was deleted.', said ?? err?.message);
    case ErrorCode.SERVER_ERROR: {
      const rc = err?.respCode ? `Response code: ${err.respCode}` : null;
      const hint = respCodeHint(err?.respCode);
      if (hint) return m(hint.title, hint.text, [said, rc].filter(Boolean).join(' — '));
      return m('The server refused the command', said ?? 'The server answered -ERR.', rc);
    }
    case ErrorCode.PROTOCOL_ERROR:
      return m('Not a POP3 answer', `What came back from ${target} does not follow the POP3 protocol. Is this really a POP3 port (and the right security setting for it)?`, err?.message);
    case ErrorCode.UNSUPPORTED:
      return m('Not supported', `${target} does not offer this: ${err?.message ?? ''}`);
    case ErrorCode.INVALID_STATE:
      return m('Not possible right now', `That command is not valid in this state of the session (nothing was sent): ${err?.message ?? ''}`);
    case ErrorCode.INVALID_ARGUMENT:
      return m('Check the form', err?.message ?? 'A value is not valid.');
    default:
      return m('Something went wrong', err?.message ?? String(err));
  }
}

/** An error box for `explain()`'s result. */
export function errorBox(info) {
  return el('div', { class: 'error', role: 'alert' },
    el('strong', { text: info.title }),
    el('span', { text: info.text }),
    info.detail ? el('div', { class: 'detail', text: info.detail }) : null,
    info.code ? el('div', { class: 'detail' }, 'Error code: ', el('code', { text: info.code })) : null,
  );
}

/** Whole days from now until `iso`. */
export function daysUntil(iso) {
  return Math.floor((Date.parse(iso) - Date.now()) / 86400000);
}
