// The checker's "Diagnose": diagnose() with the form's settings, shown as
// a timeline (each step pass/warn/fail/skip with its time, what it saw and
// what to do), the certificate chain, the capabilities before and after
// STLS and login, and a report to copy or download (Markdown or JSON) for
// a ticket. Everything judged here comes from the core's report; this file
// only lays it out. Printing shows the report without the controls
// (style.css, @media print).
import { diagnose, reportMarkdown, Pop3Error } from '../pop3-wasm/js/browser.js';
import { formatMs as msText, outcome, tlsModeText } from '../pop3-wasm/js/diagnose.js';
import { $, el, connectOptions, explain, errorBox, formatSize } from './common.js';

let report = null;

const STATUS_WORD = { pass: 'Pass', warn: 'Warning', fail: 'Failed', skip: 'Skipped' };

function verdict(r) {
  const o = outcome(r);
  const text = { fail: `Failed at ${o.step}`, warn: 'Passed, with warnings', pass: 'Passed' }[o.status];
  return { cls: o.status, text };
}

function status(text) {
  $('diag-status').textContent = text;
}

function timeline(r) {
  const longest = Math.max(1, ...r.steps.map((s) => s.ms ?? 0));
  return el('ol', { class: 'timeline', id: 'timeline' },
    r.steps.map((s) => {
      const bar = el('span', { class: 'bar', 'aria-hidden': 'true' });
      // CSSOM, not a style attribute: allowed under the bridge's CSP.
      bar.style.width = `${s.ms ? Math.max(1, Math.round((100 * s.ms) / longest)) : 0}%`;
      return el('li', { class: `step ${s.status}`, 'data-step': s.name },
        el('span', { class: 'badge', text: STATUS_WORD[s.status] }),
        el('span', { class: 'name', text: s.name }),
        el('span', { class: 'ms', text: msText(s.ms) }),
        el('span', { class: 'track' }, bar),
        el('div', { class: 'detail', text: s.detail }),
        s.hint ? el('div', { class: 'hint-text' }, el('strong', { text: 'What to do: ' }), s.hint) : null,
      );
    }),
  );
}

function facts(pairs) {
  const dl = el('dl', { class: 'facts' });
  for (const [k, v] of pairs) if (v !== null && v !== undefined && v !== '') dl.append(el('dt', { text: k }), el('dd', {}, v));
  return dl;
}

function certificate(c, i) {
  const names = [...c.dnsNames, ...c.ipAddresses];
  return el('li', { class: 'cert' },
    el('h4', { text: `${i + 1}. ${c.subject || '(not parsed)'}` }),
    facts([
      ['Issuer', c.issuer],
      ['Names', names.join(', ') || '(none)'],
      ['Valid', c.notBefore ? `${c.notBefore} to ${c.notAfter}` : null],
      ['Key', c.keyType ? `${c.keyType}${c.keyBits ? ` ${c.keyBits} bits` : ''}${c.curve ? ` (${c.curve})` : ''}` : null],
      ['Signature', c.signatureAlgorithm],
      ['SHA-256', el('span', { class: 'mono', text: c.sha256 })],
      ['Problem', c.parseError],
    ]),
  );
}

function tlsSection(r) {
  const t = r.tls;
  if (!t) return el('p', { text: r.target.tls === 'none' ? 'No TLS: everything, the password included, travels readable.' : 'No TLS session.' });
  const ends = { bridge: 'At the bridge (it could read everything)', client: 'In this browser (end to end: the bridge relayed only ciphertext)', transport: "In Node's TLS" }[t.ends];
  const days = t.days === null ? '' : t.days < 0 ? ` (expired ${-t.days} days ago)` : ` (${t.days} days left)`;
  const match = t.nameMatches === null ? 'unknown' : t.nameMatches ? 'yes' : 'no';
  return el('div', {},
    facts([
      ['Protocol', t.protocol ? `${t.protocol}, ${t.cipher}` : 'the handshake failed'],
      ['TLS ends', ends],
      ['Certificate', t.certificate ? `${t.certificate.subject}; valid until ${t.certificate.notAfter}${days}` : null],
      [`Names ${r.target.host}`, `${match}${t.names.length ? ` (the certificate names ${t.names.join(', ')})` : ''}`],
    ]),
    t.chain
      ? el('div', {}, el('h3', { text: `Certificate chain as the server sent it (${t.chain.length}, leaf first)` }), el('ol', { class: 'certs', id: 'diag-chain' }, t.chain.map(certificate)))
      : el('p', { class: 'note', id: 'chain-note', text: t.chainNote }),
  );
}

function capaList(title, lines) {
  return el('div', { class: 'capa-col' },
    el('h4', { text: title }),
    lines === null ? el('p', { class: 'muted', text: '—' }) : el('ul', { class: 'caps' }, lines.map((l) => el('li', { text: l }))),
  );
}

function capabilities(r) {
  const c = r.capabilities;
  const cols = [capaList(r.target.tls === 'starttls' ? 'Before STLS' : 'Before login', c.beforeStls)];
  if (r.target.tls === 'starttls') cols.push(capaList('After STLS', c.afterStls));
  cols.push(capaList('After login', c.afterLogin));
  const changes = c.changes.map((ch) => {
    const items = [
      ...ch.added.map((l) => el('li', { class: 'added', text: `+ ${l}` })),
      ...ch.removed.map((l) => el('li', { class: 'removed', text: `− ${l}` })),
      ...ch.changed.map((x) => el('li', { class: 'changed', text: `${x.before} → ${x.after}` })),
    ];
    return el('div', {}, el('h4', { text: `What changed from ${ch.from} to ${ch.to}` }), items.length ? el('ul', { class: 'diff' }, items) : el('p', { class: 'muted', text: 'Nothing.' }));
  });
  return el('div', {}, el('div', { class: 'capa-cols', id: 'capa-cols' }, cols), el('div', { id: 'capa-diff' }, changes));
}

function serverFacts(r) {
  const e = r.extensions;
  const m = r.mechanisms;
  const u = r.uidl;
  return facts([
    ['Greeting', r.greeting ? el('span', { class: 'mono', text: r.greeting }) : null],
    ['Provider', r.provider?.name],
    ['Mechanisms offered', m.offered.join(' ') || (r.greeting ? '(none known)' : null)],
    ['Usable here', r.greeting ? m.usable.join(' ') || '(none)' : null],
    ['Logged in with', m.used],
    ['APOP', r.greeting ? (r.apop.usable ? 'usable (valid timestamp in the greeting)' : 'not usable (no valid timestamp)') : null],
    ['Extensions', r.greeting ? `PIPELINING ${e.pipelining ? 'yes' : 'no'} · RESP-CODES ${e.respCodes ? 'yes' : 'no'} · LOGIN-DELAY ${e.loginDelay ? `${e.loginDelay.seconds} s` : 'none'} · EXPIRE ${e.expire ? e.expire.value : 'none'}` : null],
    ['Implementation', e.implementation],
    ['Mailbox', r.mailbox ? `${r.mailbox.count} messages, ${formatSize(r.mailbox.size)}` : null],
    ['UIDL', u ? (u.supported ? `${u.count} unique-ids, ${u.ok ? 'sane (RFC 1939 § 7)' : 'problems (see the uidl step)'}` : `not supported (${u.serverText})`) : null],
    ['Tolerated', r.deviations.length ? r.deviations.map((d) => d.description).join('; ') : r.greeting ? 'no deviation' : null],
  ]);
}

function render(r) {
  const v = verdict(r);
  const t = r.target;
  $('diag-summary').replaceChildren(
    el('span', { class: `verdict ${v.cls}`, id: 'diag-verdict', text: v.text }),
    ` ${t.host}:${t.port}, ${tlsModeText(t.tls)}${t.endToEnd ? ' end to end' : ''}, ${t.via === 'bridge' ? `through ${t.bridge}` : 'direct'}; ${msText(r.ms) || '0 ms'}; started ${r.startedAt}.`,
  );
  $('diag-timeline').replaceChildren(timeline(r));
  $('diag-server').replaceChildren(serverFacts(r));
  $('diag-tls').replaceChildren(tlsSection(r));
  $('diag-capa').replaceChildren(r.greeting ? capabilities(r) : el('p', { class: 'muted', text: 'The server was not reached.' }));
  $('diag-notes').replaceChildren(...r.notes.map((n) => el('li', { text: n })));
  $('diag-transcript').textContent = r.transcript.map((l) => `${l.dir}: ${l.line}`).join('\n');
  $('diagnosis').classList.remove('hidden');
}

async function run() {
  const form = $('connect');
  const opts = connectOptions();
  const user = $('user').value.trim();
  const password = $('password').value;
  const mechanism = $('mechanism').value;
  $('diag-error').replaceChildren();
  $('diagnose-btn').disabled = true;
  $('diagnose-btn').setAttribute('aria-busy', 'true');
  status(`Diagnosing ${opts.host}:${opts.port}…`);
  try {
    report = await diagnose({
      ...opts,
      timeoutMs: 15000,
      user: user || undefined,
      password: user && password ? password : undefined,
      mechanism: user && password && mechanism !== 'auto' ? mechanism : undefined,
    });
    render(report);
    status(`Diagnosis done: ${verdict(report).text}.`);
    $('diagnosis').focus();
  } catch (e) {
    // Only the options can be wrong here: the server's faults are in the report.
    $('diag-error').replaceChildren(errorBox(explain(e instanceof Pop3Error ? e : new Pop3Error(String(e?.message ?? e), {}), opts)));
    status('');
  } finally {
    $('diagnose-btn').disabled = form.elements.namedItem('host')?.disabled ?? false;
    $('diagnose-btn').removeAttribute('aria-busy');
  }
}

function fileName(ext) {
  const t = report.target;
  return `pop3-diagnosis-${t.host}-${t.port}-${report.startedAt.replace(/[:.]/g, '-')}.${ext}`;
}

const asJson = () => `${JSON.stringify(report, null, 2)}\n`;

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    status(`${what} copied to the clipboard.`);
  } catch {
    status(`The browser did not allow copying: use Download ${what} instead.`);
  }
}

function download(text, ext, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el('a', { href: url, download: fileName(ext), class: 'hidden' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

$('diagnose-btn').addEventListener('click', run);
$('copy-md').addEventListener('click', () => copy(reportMarkdown(report), 'the report (Markdown)'));
$('copy-json').addEventListener('click', () => copy(asJson(), 'the report (JSON)'));
$('download-md').addEventListener('click', () => download(reportMarkdown(report), 'md', 'text/markdown'));
$('download-json').addEventListener('click', () => download(asJson(), 'json', 'application/json'));
$('print-report').addEventListener('click', () => print());

// A printed report shows the transcript too.
let wasOpen = false;
addEventListener('beforeprint', () => {
  wasOpen = $('diag-transcript-box').open;
  $('diag-transcript-box').open = true;
});
addEventListener('afterprint', () => {
  $('diag-transcript-box').open = wasOpen;
});

// Ready once the checker is: it fills the form (query, demo, the bridge's
// /bridge.json) and then enables Connect; until then a click would diagnose
// an empty form.
await new Promise((resolve) => {
  const btn = $('connect-btn');
  if (!btn.disabled) return resolve();
  const watch = new MutationObserver(() => {
    if (btn.disabled) return;
    watch.disconnect();
    resolve();
  });
  watch.observe(btn, { attributes: true, attributeFilter: ['disabled'] });
});
$('diagnose-btn').disabled = false;

// Linked from the playground (…#diagnose): say what the button does.
if (location.hash === '#diagnose') {
  status('The settings are filled in: add the password to check the login too, then press Diagnose.');
  $('diagnose-btn').focus();
}
