// The mailbox checker: connect, show what the server offers, list the
// messages (pipelined summaries), open one, mark and commit deletions.
import { ErrorCode, Pop3Client } from '../pop3-wasm/js/browser.js';
import { $, el, formatSize, loadDemo, loadBridgeInfo, fillForm, showDemoBanner, connectOptions, explain, errorBox, daysUntil, whereTlsEnds } from './common.js';

/** Transcript lines kept on the page (a 1.5 MB RETR alone has ~20 000). */
const TRANSCRIPT_MAX = 4000;
/** Raw source shown at most (the rest is summarised). */
const SOURCE_MAX = 256 * 1024;

let client = null;
let ctx = {};
let rows = [];                 // [{ id, uid, size, from, to, subject, date, messageId }]
let sort = { key: 'id', dir: 1 };
const marked = new Set();
let transcriptCount = 0;
let openId = null;

// MIME decoding (postal-mime, copied next to the pages by scripts/build.sh).
// Without it the list and the raw source still work.
const mime = await Promise.all([
  import('../vendor/postal-mime/postal-mime.js'),
  import('../vendor/postal-mime/text-format.js'),
]).then(([p, t]) => ({ PostalMime: p.default, htmlToText: t.htmlToText }), () => null);

const [demo, bridgeInfo] = await Promise.all([loadDemo(), loadBridgeInfo()]);
fillForm(demo, bridgeInfo);
showDemoBanner(demo);

function status(text) {
  $('status').textContent = text;
}

function showError(err) {
  $('error').replaceChildren(errorBox(explain(err, ctx)));
}

function clearError() {
  $('error').replaceChildren();
}

function transcript({ dir, line }) {
  transcriptCount += 1;
  const pre = $('transcript');
  if (transcriptCount <= TRANSCRIPT_MAX) pre.append(`${dir}: ${line}\n`);
  else if (transcriptCount === TRANSCRIPT_MAX + 1) pre.append('… (further lines not shown)\n');
}

function setConnected(on) {
  for (const e of $('connect').elements) e.disabled = on;
  $('session').classList.toggle('hidden', !on && rows.length === 0);
  $('keep').disabled = !on;
  updateMarks();
}

/** Session over (QUIT, close, or a fatal error): back to the form. */
function ended() {
  client = null;
  setConnected(false);
  $('commit').disabled = true;
  $('keep').disabled = true;
  for (const box of document.querySelectorAll('#messages td.mark input')) box.disabled = true;
  for (const b of document.querySelectorAll('#messages td.subject button')) b.disabled = true;
}

const FATAL = new Set([ErrorCode.CONNECTION_CLOSED, ErrorCode.TIMEOUT, ErrorCode.PROTOCOL_ERROR, ErrorCode.BRIDGE_UNREACHABLE, ErrorCode.TLS_FAILED]);

function failed(err) {
  showError(err);
  status('');
  if (FATAL.has(err?.code) || client?.state === 'CLOSED') {
    client?.close();
    ended();
  }
}

$('connect').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (client) return;
  clearError();
  const opts = connectOptions({ onTranscript: transcript });
  ctx = { host: opts.host, port: opts.port, bridge: opts.bridge };
  rows = [];
  marked.clear();
  openId = null;
  transcriptCount = 0;
  $('transcript').replaceChildren();
  $('viewer').classList.add('hidden');
  renderTable();
  status(`Connecting to ${opts.host}:${opts.port} through ${opts.bridge}…`);
  $('connect-btn').disabled = true;
  let c = null;
  try {
    c = await Pop3Client.connect(opts);
    client = c;
    setConnected(true);
    $('session').classList.remove('hidden');
    // What the client learnt at connect: the CAPA it asked (after STLS,
    // when there was one; null: a server without CAPA, RFC 1939 only) and
    // the mechanisms login() would use. Nothing is asked again for them.
    const caps = c.capabilities;
    const mechanisms = c.loginMechanisms;
    renderServer(c, null, null, caps, mechanisms);
    renderTls(c.tls);
    renderCaps(caps);
    status('Logging in…');
    const mech = $('mechanism').value;
    const user = $('user').value;
    const password = $('password').value;
    const used = mech === 'auto' ? await c.login(user, password) : await c.auth(mech, { username: user, password });
    const stat = await c.stat();
    renderServer(c, used, stat, caps, mechanisms);
    status(`Logged in with ${used}. Loading ${stat.count} message summaries…`);
    await loadList(c, stat.count);
    status(`Logged in with ${used}. ${stat.count} messages, ${formatSize(stat.size)}.`);
    $('messages').querySelector('td.subject button')?.focus();
  } catch (e) {
    // Connecting, logging in or listing failed: drop the session (no QUIT).
    showError(e);
    status('');
    c?.close();
    ended();
    $('connect-btn').focus();
  }
});

function fact(dl, term, value, cls) {
  dl.append(el('dt', { text: term }), el('dd', cls ? { class: cls } : {}, value));
}

function renderServer(c, used, stat, caps, mechanisms) {
  const dl = $('server-facts');
  dl.replaceChildren();
  fact(dl, 'Greeting', el('span', { class: 'mono', text: c.greeting ?? '' }));
  if (caps?.implementation) fact(dl, 'Implementation', caps.implementation);
  fact(dl, 'Login mechanisms', mechanisms.length ? mechanisms.join(', ') : 'none usable here');
  fact(dl, 'APOP', c.apopUsable ? 'usable (the greeting has a valid timestamp)' : 'not usable (no valid timestamp in the greeting)');
  if (used) fact(dl, 'Logged in with', used);
  if (stat) fact(dl, 'Mailbox', `${stat.count} messages, ${formatSize(stat.size)} (${stat.size.toLocaleString('en')} octets)`);
  if (c.deviations?.length) fact(dl, 'Tolerated', c.deviations.map((d) => d.description).join('; '));
}

function renderTls(tls) {
  const dl = $('tls-facts');
  dl.replaceChildren();
  if (!tls) {
    fact(dl, 'Encryption', 'None: everything, the password included, travels readable.', 'expiry-bad');
    return;
  }
  fact(dl, 'TLS ends', el('span', { id: 'tls-ends', text: whereTlsEnds(tls) }), tls.endToEnd ? undefined : 'expiry-warn');
  fact(dl, 'Protocol', tls.protocol);
  fact(dl, 'Cipher', el('span', { class: 'mono', text: tls.cipher }));
  const cert = tls.certificate ?? {};
  fact(dl, 'Subject', cert.subject ?? '');
  fact(dl, 'Issuer', cert.issuer ?? '');
  if (cert.notAfter) {
    const days = daysUntil(cert.notAfter);
    const when = new Date(cert.notAfter).toISOString().slice(0, 10);
    const text = days < 0 ? `expired ${-days} days ago (${when})` : `${days} days left (until ${when})`;
    const cls = days < 7 ? 'expiry-bad' : days < 21 ? 'expiry-warn' : undefined;
    fact(dl, 'Expires', el('span', { class: cls, id: 'expiry', text }));
  }
  // End to end, the client saw the chain itself: each certificate as sent.
  if (tls.chain?.length) {
    const list = el('ol', { class: 'chain', id: 'tls-chain' },
      tls.chain.map((c) => el('li', {},
        el('span', { class: 'mono', text: c.subject || '(unparsed)' }),
        ` — issued by ${c.issuer}; ${[...c.dnsNames, ...c.ipAddresses].join(', ') || 'no names'}; ${c.keyType}${c.keyBits ? ` ${c.keyBits}` : ''}; until ${c.notAfter.slice(0, 10)}`,
      )));
    fact(dl, 'Chain sent', list);
  }
}

function renderCaps(caps) {
  const ul = $('caps');
  ul.replaceChildren();
  if (!caps) {
    ul.append(el('li', { text: 'no CAPA (RFC 1939 only)' }));
    return;
  }
  for (const line of caps.raw) ul.append(el('li', { text: line }));
}

async function loadList(c, count) {
  const wrap = $('progress-wrap');
  const bar = $('progress');
  wrap.classList.remove('hidden');
  bar.max = Math.max(count, 1);
  bar.value = 0;
  $('progress-label').textContent = `Loading ${count} message summaries…`;
  try {
    rows = await c.summaries(undefined, {
      onProgress: (done, total) => {
        bar.max = Math.max(total || count, 1);
        bar.value = done;
        $('progress-label').textContent = `Loaded ${done} of ${total || count} message summaries…`;
      },
    });
  } finally {
    wrap.classList.add('hidden');
  }
  renderTable();
}

function cmp(a, b) {
  const { key, dir } = sort;
  let x = a[key];
  let y = b[key];
  if (key === 'date') {
    x = Date.parse(x ?? '') || 0;
    y = Date.parse(y ?? '') || 0;
  }
  if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir || a.id - b.id;
  return String(x ?? '').localeCompare(String(y ?? ''), undefined, { sensitivity: 'base' }) * dir || a.id - b.id;
}

function shortDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString('en-GB', { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' });
}

function displayName(from) {
  if (!from) return '';
  const m = /^(.*?)\s*<([^>]*)>$/.exec(from);
  return m && m[1] ? m[1].replace(/^"|"$/g, '') : from;
}

function renderTable() {
  const tbody = $('messages').tBodies[0];
  tbody.replaceChildren();
  for (const th of $('messages').tHead.rows[0].cells) {
    if (th.dataset.key) th.setAttribute('aria-sort', th.dataset.key === sort.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  const live = !!client;
  for (const r of [...rows].sort(cmp)) {
    const isMarked = marked.has(r.id);
    const box = el('input', {
      type: 'checkbox', checked: isMarked, disabled: !live,
      'aria-label': `Mark message ${r.id} for deletion`,
      onchange: (e) => toggleMark(r.id, e.target.checked),
    });
    const open = el('button', {
      type: 'button', class: 'link', disabled: !live, text: r.subject || '(no subject)',
      'aria-label': `Open message ${r.id}: ${r.subject || 'no subject'}`, onclick: () => openMessage(r.id),
    });
    const tr = el('tr', { 'data-id': r.id, class: [isMarked ? 'marked' : '', r.id === openId ? 'current' : ''].join(' ').trim() || undefined },
      el('td', { class: 'mark' }, box),
      el('td', { class: 'num', text: String(r.id) }),
      el('td', { class: 'from', title: r.from ?? '', text: displayName(r.from) }),
      el('td', { class: 'subject' }, open),
      el('td', { class: 'date opt-phone', text: shortDate(r.date) }),
      el('td', { class: 'num size', text: formatSize(r.size) }),
      el('td', { class: 'uid opt', text: r.uid ?? '' }),
    );
    tbody.append(tr);
  }
  if (rows.length === 0 && client) tbody.append(el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'The mailbox is empty.' })));
}

for (const th of $('messages').tHead.rows[0].cells) {
  const key = th.dataset.key;
  if (!key) continue;
  th.querySelector('button').addEventListener('click', () => {
    sort = { key, dir: sort.key === key ? -sort.dir : key === 'date' || key === 'size' ? -1 : 1 };
    renderTable();
    th.querySelector('button').focus();
  });
}

function toggleMark(id, on) {
  if (on) marked.add(id);
  else marked.delete(id);
  const tr = $('messages').querySelector(`tr[data-id="${id}"]`);
  tr?.classList.toggle('marked', on);
  updateMarks();
}

function updateMarks() {
  const n = marked.size;
  const ids = [...marked].sort((a, b) => a - b);
  $('mark-summary').textContent = n === 0
    ? 'No message is marked for deletion.'
    : `${n} message${n === 1 ? '' : 's'} marked for deletion (${ids.map((i) => `#${i}`).join(', ')}). Nothing is deleted until you choose “Quit and delete marked”.`;
  $('commit').disabled = !client || n === 0;
  $('commit').textContent = n === 0 ? 'Quit and delete marked' : `Quit and delete ${n} marked`;
}

$('keep').addEventListener('click', () => {
  if (!client) return;
  client.close();
  ended();
  clearError();
  status('Disconnected without QUIT: the server deleted nothing.');
  $('connect-btn').focus();
});

$('commit').addEventListener('click', async () => {
  if (!client || marked.size === 0) return;
  const c = client;
  const ids = [...marked].sort((a, b) => a - b);
  status(`Deleting ${ids.length} message(s): DELE ${ids.join(', ')}, then QUIT…`);
  $('commit').disabled = true;
  $('keep').disabled = true;
  try {
    await Promise.all(ids.map((id) => c.dele(id)));
    const text = await c.quit();
    client = null;
    rows = rows.filter((r) => !marked.has(r.id));
    marked.clear();
    ended();
    renderTable();
    status(`Deleted ${ids.length} message(s) and quit. The server said: ${text}`);
    $('connect-btn').focus();
  } catch (e) {
    failed(e);
    if (client) {
      // DELE failed before QUIT: nothing was committed; drop the session.
      client.close();
      ended();
      status('Nothing was deleted: the session was dropped without QUIT.');
    }
  }
});

// ---- the message view -------------------------------------------------

async function openMessage(id) {
  if (!client) return;
  const r = rows.find((x) => x.id === id);
  openId = id;
  for (const tr of $('messages').tBodies[0].rows) tr.classList.toggle('current', Number(tr.dataset.id) === id);
  const viewer = $('viewer');
  viewer.classList.remove('hidden');
  $('viewer-h').textContent = r?.subject || '(no subject)';
  $('pane-message').replaceChildren(el('p', { class: 'muted', text: `Retrieving message ${id} (${formatSize(r?.size ?? 0)})…` }));
  $('pane-headers').replaceChildren();
  $('pane-source').replaceChildren();
  selectTab('tab-message');
  let bytes;
  try {
    bytes = await client.retr(id);
  } catch (e) {
    failed(e);
    $('pane-message').replaceChildren();
    return;
  }
  if (openId !== id) return;
  let email = null;
  try {
    email = mime ? await mime.PostalMime.parse(bytes) : null;
  } catch {
    email = null;
  }
  renderMessage(id, email, bytes);
  if (!email) selectTab('tab-source');
  viewer.focus();
}

function addressList(list) {
  if (!list) return '';
  const arr = Array.isArray(list) ? list : [list];
  return arr.map((a) => (a.group ? `${a.name}: ${addressList(a.group)}` : a.name ? `${a.name} <${a.address}>` : a.address)).join(', ');
}

function renderMessage(id, email, bytes) {
  const pane = $('pane-message');
  pane.replaceChildren();
  if (!email) {
    pane.append(el('p', { class: 'note', text: mime
      ? 'This message could not be decoded as MIME; see the raw source.'
      : 'The MIME decoder (web/vendor/postal-mime) is missing: run scripts/build.sh. The raw source is shown instead.' }));
  } else {
    $('viewer-h').textContent = email.subject || '(no subject)';
    const dl = el('dl', { class: 'facts' });
    fact(dl, 'From', addressList(email.from));
    if (email.to) fact(dl, 'To', addressList(email.to));
    if (email.cc) fact(dl, 'Cc', addressList(email.cc));
    if (email.date) fact(dl, 'Date', shortDate(email.date) || email.date);
    fact(dl, 'Subject', email.subject || '(no subject)');
    fact(dl, 'Size', `${formatSize(bytes.length)} (${bytes.length.toLocaleString('en')} octets), message ${id}`);
    pane.append(dl);

    let text = email.text;
    if (email.html) {
      pane.append(el('p', { class: 'note', text: text
        ? 'This message also has an HTML version. It is never rendered here (no scripts, no remote images).'
        : 'HTML-only message, shown as plain text: it is never rendered here (no scripts, no remote images).' }));
    }
    if (!text && email.html) text = mime.htmlToText(email.html);
    pane.append(el('h3', { text: 'Body' }), el('pre', { class: 'body', id: 'message-body', text: text ?? '' }));

    const files = email.attachments ?? [];
    if (files.length) {
      const ul = el('ul', { class: 'attachments' });
      for (const a of files) {
        const size = a.content?.byteLength ?? a.content?.length ?? 0;
        const name = a.filename || '(unnamed)';
        // Downloaded as opaque bytes: never opened in this page's origin.
        const url = URL.createObjectURL(new Blob([a.content], { type: 'application/octet-stream' }));
        ul.append(el('li', {},
          el('a', { href: url, download: a.filename || `attachment-${id}`, text: name }),
          ` — ${a.mimeType}, ${formatSize(size)}${a.disposition === 'inline' ? ', inline' : ''}`));
      }
      pane.append(el('h3', { text: `Attachments (${files.length})` }), ul);
    }

    const hdl = el('dl', { class: 'facts' });
    for (const h of email.headers ?? []) fact(hdl, h.originalKey ?? h.key, h.value);
    $('pane-headers').replaceChildren(hdl);
  }

  const shown = bytes.length > SOURCE_MAX ? bytes.subarray(0, SOURCE_MAX) : bytes;
  const src = new TextDecoder('utf-8', { fatal: false }).decode(shown);
  $('pane-source').replaceChildren(
    bytes.length > SOURCE_MAX ? el('p', { class: 'note', text: `First ${formatSize(SOURCE_MAX)} of ${formatSize(bytes.length)} shown.` }) : '',
    el('pre', { class: 'source', id: 'message-source', text: src }),
  );
}

function selectTab(id) {
  for (const tab of document.querySelectorAll('#viewer [role=tab]')) {
    const on = tab.id === id;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute('aria-controls')).classList.toggle('hidden', !on);
  }
}

const tabs = [...document.querySelectorAll('#viewer [role=tab]')];
for (const tab of tabs) {
  tab.addEventListener('click', () => selectTab(tab.id));
  tab.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(tab);
    const next = e.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length] : e.key === 'ArrowLeft' ? tabs[(i + tabs.length - 1) % tabs.length] : null;
    if (next) {
      e.preventDefault();
      selectTab(next.id);
      next.focus();
    }
  });
}

// Leaving the page drops the session without QUIT: nothing is deleted.
addEventListener('pagehide', () => client?.close());

// Ready: until now Connect stayed disabled (a click would have submitted
// the form natively, a reload that looks like nothing happened).
$('connect-btn').disabled = false;
