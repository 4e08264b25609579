// The playground: a telnet-like console over pop3-wasm. What is shown is
// the client's transcript (C:/S:, secrets redacted), so it is exactly
// what went over the wire.
import { Pop3Client } from '../pop3-wasm/js/browser.js';
import { respCodeHint } from '../pop3-wasm/js/resp-codes.js';
import { $, el, loadDemo, loadBridgeInfo, fillForm, showDemoBanner, connectOptions, explain, errorBox, whereTlsEnds } from './common.js';

/** The seed page's one-line explanations (and RFC 1939/2449/5034 for the rest). */
const COMMANDS = [
  ['USER', 'USER name', 'First half of the user login credentials. Supply the username of the mailbox.'],
  ['PASS', 'PASS password', 'Second half of the user login credentials. Supply the mailbox account password (sent in clear text: use TLS).'],
  ['STLS', 'STLS', 'Requests that the server start TLS, communication channel encryption.'],
  ['CAPA', 'CAPA', 'Lists what the server supports (RFC 2449): TOP, UIDL, SASL mechanisms, STLS, PIPELINING…'],
  ['APOP', 'APOP name', 'Logs in with an MD5 digest of the greeting’s timestamp and the password, so the password is not sent.'],
  ['AUTH', 'AUTH SCRAM-SHA-256', 'Logs in with a SASL mechanism (RFC 5034); plain AUTH lists the mechanisms.'],
  ['STAT', 'STAT', 'The number of messages in the mailbox and their total size in bytes.'],
  ['LIST', 'LIST', 'Lists all the message numbers and their size (headers and content) in bytes; LIST n only that message.'],
  ['UIDL', 'UIDL', 'Similar to LIST and reports a unique identifier for a message.'],
  ['TOP', 'TOP 1 0', 'Display the top N given lines of a given message number. Handy to review just message headers.'],
  ['RETR', 'RETR 1', 'Retrieve a complete message (headers and content).'],
  ['DELE', 'DELE 1', 'Marks a given message for deletion.'],
  ['RSET', 'RSET', 'Unmarks all messages marked for deletion.'],
  ['NOOP', 'NOOP', 'Does nothing; the server answers +OK. Keeps an idle session alive.'],
  ['QUIT', 'QUIT', 'End the POP connection, deleting marked messages.'],
];

let client = null;
const lines = [];          // the transcript as text, for copying
const history = [];        // typed lines for ↑/↓, never one with a password
let historyAt = 0;
let ctx = {};

/** Lines that carry a password or SASL data stay out of the history (as in `pop3 shell`). */
const SECRET = /^\s*(PASS|APOP|AUTH)\b/i;

const [demo, bridgeInfo] = await Promise.all([loadDemo(), loadBridgeInfo()]);
fillForm(demo, bridgeInfo);
showDemoBanner(demo);

function show(cls, text) {
  lines.push(text);
  const con = $('console');
  const stick = con.scrollTop + con.clientHeight >= con.scrollHeight - 30;
  con.append(el('div', { class: cls, text }));
  if (stick) con.scrollTop = con.scrollHeight;
}

function onTranscript({ dir, line }) {
  const err = dir === 'S' && line.startsWith('-ERR');
  show(dir === 'C' ? 'c' : err ? 's err' : 's', `${dir}: ${line}`);
}

function note(text) {
  show('note', `-- ${text}`);
}

function setConnected(on) {
  for (const e of $('connect').elements) e.disabled = on;
  $('disconnect-btn').disabled = !on;
  $('line').disabled = !on;
  $('send').disabled = !on;
  for (const b of document.querySelectorAll('#commands button')) b.disabled = !on;
  $('line').placeholder = on ? 'Type a command, e.g. CAPA, then Enter' : 'Connect first, then type a command, e.g. CAPA';
}

function explainNote(e) {
  const info = explain(e, ctx);
  note(`${info.title}: ${info.text}${info.detail ? ` (${info.detail})` : ''}`);
}

$('connect').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (client) return;
  $('error').replaceChildren();
  // "STLS by hand": the connection starts in plain text and the user types
  // STLS; the client must not do it on its own.
  const byHand = $('tls').value === 'starttls';
  const opts = connectOptions({ onTranscript, manualStls: byHand });
  ctx = { host: opts.host, port: opts.port, bridge: opts.bridge };
  const e2e = opts.endToEnd ? ', end-to-end TLS in this browser' : '';
  note(`connecting to ${opts.host}:${opts.port} (${opts.tls === 'implicit' ? 'implicit TLS' : 'plain text'}${e2e}) through ${opts.bridge}`);
  $('connect-btn').disabled = true;
  try {
    client = await Pop3Client.connect(opts);
    if (client.tls) tlsNote(client.tls);
    if (byHand) {
      note(opts.endToEnd
        ? 'plain text so far: type STLS to start TLS in this browser; only CAPA and STLS are sent before it'
        : 'plain text so far: type STLS to start TLS before you log in');
    }
    setConnected(true);
    $('line').focus();
  } catch (e) {
    client = null;
    $('error').replaceChildren(errorBox(explain(e, ctx)));
    explainNote(e);
    setConnected(false);
  }
});

$('disconnect-btn').addEventListener('click', () => {
  client?.close();
  client = null;
  note('connection dropped without QUIT: nothing marked for deletion was deleted');
  setConnected(false);
  $('connect-btn').focus();
});

/** Runs one typed line. APOP and AUTH <mechanism> go through the typed calls. */
async function run(line) {
  const c = client;
  const [verb, ...args] = line.trim().split(/\s+/);
  const upper = (verb ?? '').toUpperCase();
  const user = $('user').value;
  const password = $('password').value;
  if (upper === 'APOP' && args.length <= 1) {
    await c.apop(args[0] || user, password);
  } else if (upper === 'AUTH' && args.length >= 1) {
    await c.auth(args[0].toUpperCase(), { username: args[1] || user, password });
  } else {
    const r = await c.raw(line);
    // -ERR is the server's answer, shown as is; a response code gets its meaning.
    const hint = r.ok ? null : respCodeHint(r.respCode);
    if (hint) note(`${hint.title}: ${hint.text}`);
  }
  if (upper === 'QUIT' || c.state === 'CLOSED') {
    note('connection closed');
    client = null;
    setConnected(false);
  }
  // raw('STLS') resolves once the handshake is done (or with -ERR).
  if (upper === 'STLS' && c.tls) tlsNote(c.tls);
}

function tlsNote(tls) {
  note(`TLS: ${tls.protocol}, ${tls.cipher}, certificate ${tls.certificate.subject}`);
  note(`TLS ends: ${whereTlsEnds(tls)}`);
}

// Lines typed while a command is still running wait their turn: nothing
// typed is ever dropped, and the dialogue stays one command at a time.
let queue = Promise.resolve();

$('cmd').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const line = $('line').value;
  if (!client || !line.trim()) return;
  if (!SECRET.test(line)) history.push(line);
  historyAt = history.length;
  $('line').value = '';
  $('line').classList.remove('masked');
  queue = queue.then(async () => {
    if (!client) return note(`not sent (not connected): ${/^pass /i.test(line) ? 'PASS [redacted]' : line}`);
    $('console').setAttribute('aria-busy', 'true');
    try {
      await run(line);
    } catch (e) {
      explainNote(e);
      if (client && client.state === 'CLOSED') {
        client = null;
        setConnected(false);
        note('connection closed');
      }
    } finally {
      $('console').removeAttribute('aria-busy');
      if (client) $('line').focus();
    }
  });
});

$('line').addEventListener('input', () => {
  $('line').classList.toggle('masked', /^pass /i.test($('line').value));
});

$('line').addEventListener('keydown', (e) => {
  if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
  e.preventDefault();
  historyAt = Math.max(0, Math.min(history.length, historyAt + (e.key === 'ArrowUp' ? -1 : 1)));
  $('line').value = history[historyAt] ?? '';
  $('line').classList.toggle('masked', /^pass /i.test($('line').value));
});

function template(name, example) {
  const user = $('user').value || 'name';
  switch (name) {
    case 'USER': return `USER ${user}`;
    case 'PASS': return `PASS ${$('password').value}`;
    case 'APOP': return `APOP ${user}`;
    default: return example;
  }
}

for (const [name, example, help] of COMMANDS) {
  const id = `help-${name}`;
  const b = el('button', { type: 'button', 'aria-describedby': id, disabled: true, text: name, onclick: () => {
    const line = $('line');
    line.value = template(name, example);
    line.classList.toggle('masked', name === 'PASS');
    line.focus();
    // Select the part to edit (a message number), if any.
    const m = /\s(\d+)(\s\d+)?$/.exec(line.value);
    if (m) line.setSelectionRange(m.index + 1, m.index + 1 + m[1].length);
  } });
  $('commands').append(el('li', {}, b, el('span', { id, text: help })));
}

$('copy').addEventListener('click', async () => {
  const text = lines.join('\n') + '\n';
  try {
    await navigator.clipboard.writeText(text);
    $('copy-status').textContent = `Copied ${lines.length} lines.`;
  } catch {
    // No clipboard permission: select the text for Ctrl-C instead.
    const range = document.createRange();
    range.selectNodeContents($('console'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $('copy-status').textContent = 'Selected: press Ctrl-C (⌘-C) to copy.';
  }
});

$('clear').addEventListener('click', () => {
  lines.length = 0;
  $('console').replaceChildren();
  $('copy-status').textContent = '';
});

addEventListener('pagehide', () => client?.close());

// Ready: until now Connect stayed disabled (a click would have submitted
// the form natively, a reload that looks like nothing happened).
$('connect-btn').disabled = false;
