// diagnose(): the analyzer, one session step by step (connect, TLS,
// greeting, CAPA, STLS, login, STAT, UIDL; never QUIT) and a report of
// each step with its time, what it saw and what to do about a failure.
//
// The session and every judgement are the core's (pop3_wasm::diagnose, in
// the analyzer's wasm module, pop3_wasm_diag, loaded on the first call):
// the steps are the driver's own phases, the hints its rules. This file
// only starts the sessions (a second one in the other TLS mode when the
// core asks for it: the probe), keeps the redacted transcript, and writes
// the report as text or Markdown for the CLI, the checker page and tickets.
import { ErrorCode, Pop3Error } from './errors.js';

const invalid = (message) => new Pop3Error(message, { code: ErrorCode.INVALID_ARGUMENT });

/**
 * Makes an entry's `diagnose`. `load()` resolves the analyzer's module,
 * initialised (called once, on the first diagnosis); `prepare(opts)` adds
 * the entry's own options (the Node entry's direct transport), as for
 * `Pop3Client.connect`.
 */
export function makeDiagnose(load, prepare = (opts) => opts) {
  let loading = null;
  const analyzer = () => {
    loading ??= load().catch((e) => {
      loading = null;
      throw new Pop3Error(`the analyzer's module did not load: ${e?.message ?? e}`, { code: ErrorCode.UNSUPPORTED });
    });
    return loading;
  };
  return async function diagnose(opts) {
    if (!opts || typeof opts !== 'object') throw invalid('diagnose() takes an options object');
    if (opts.onTranscript !== undefined && typeof opts.onTranscript !== 'function') throw invalid('`onTranscript` must be a function');
    const direct = opts.bridge === undefined || opts.bridge === null || opts.bridge === 'direct:';
    const base = { ...opts };
    // Direct (Node), TLS in the client by default: the report then has the
    // chain as the server sent it and the core's own words for a failure.
    if (direct && base.endToEnd === undefined && base.tls !== 'none') base.endToEnd = true;
    const m = await analyzer();
    const startedAt = new Date().toISOString();
    const transcript = [];
    const onTranscript = (l) => {
      transcript.push(l.latencyMs === undefined ? { dir: l.dir, line: l.line } : { dir: l.dir, line: l.line, latencyMs: l.latencyMs });
      opts.onTranscript?.(l);
    };
    const d = await m.runDiagnosis(prepare({ ...base, onTranscript }));
    try {
      const mode = d.probeMode();
      if (mode) {
        const { port } = JSON.parse(d.report()).target;
        const probeOpts = { ...base, tls: mode, port, onTranscript: undefined, onPhase: undefined };
        for (const k of ['user', 'password', 'oauthToken', 'mechanism']) delete probeOpts[k];
        try {
          const probe = await m.runDiagnosis(prepare(probeOpts));
          try {
            d.addProbe(probe);
          } finally {
            probe.free();
          }
        } catch {
          // The probe only sharpens a hint; the report stands without it.
        }
      }
      const report = JSON.parse(d.report());
      report.startedAt = startedAt;
      report.transcript = transcript;
      return report;
    } finally {
      d.free();
    }
  };
}

// ------------------------------------------------------------------ writing

const MARK = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };
const ICON = { pass: '✅ pass', warn: '⚠️ warn', fail: '❌ fail', skip: '⏭ skip' };
const TLS_MODE = { implicit: 'implicit TLS', starttls: 'STLS', none: 'no TLS' };

/** A report's `target.tls` in words: `implicit TLS`, `STLS`, `no TLS`. */
export function tlsModeText(mode) {
  return TLS_MODE[mode] ?? mode;
}

/** `12.5 ms`, or '' when the step was not timed apart. */
export function formatMs(ms) {
  if (ms === null || ms === undefined) return '';
  return `${ms < 10 ? Math.round(ms * 10) / 10 : Math.round(ms)} ms`;
}

function where(r) {
  const t = r.target;
  return `${t.host}:${t.port} (${tlsModeText(t.tls)}${t.endToEnd ? ', end to end' : ''})`;
}

/** How the steps came out: `{ status: 'fail', step }` for the first failed one, else `warn` or `pass`. */
export function outcome(r) {
  const failed = r.steps.find((s) => s.status === 'fail');
  if (failed) return { status: 'fail', step: failed.name };
  return { status: r.steps.some((s) => s.status === 'warn') ? 'warn' : 'pass', step: null };
}

/** `OK`, or `FAILED at <step>`. */
export function verdict(r) {
  const o = outcome(r);
  if (o.status === 'fail') return `FAILED at ${o.step}`;
  return o.status === 'warn' ? 'OK, with warnings' : 'OK';
}

function certLines(c, i) {
  const names = [...c.dnsNames, ...c.ipAddresses];
  const key = c.keyType ? `${c.keyType}${c.keyBits ? ` ${c.keyBits} bits` : ''}${c.curve ? ` (${c.curve})` : ''}` : '';
  return [
    `${i + 1}. ${c.subject || '(unparsed)'}`,
    `   issued by ${c.issuer}`,
    names.length ? `   names: ${names.join(', ')}` : null,
    c.notBefore ? `   valid ${c.notBefore} to ${c.notAfter}` : null,
    key || c.signatureAlgorithm ? `   key ${key || '?'}; signed with ${c.signatureAlgorithm || '?'}` : null,
    `   SHA-256 ${c.sha256}`,
    c.parseError ? `   (${c.parseError})` : null,
  ].filter(Boolean);
}

function tlsLines(r) {
  const t = r.tls;
  if (!t) return [r.target.tls === 'none' ? 'TLS: none' : 'TLS: no session'];
  const out = [];
  if (t.protocol) out.push(`TLS: ${t.protocol}, ${t.cipher}; ends in ${{ bridge: 'the bridge', client: 'this client (end to end)', transport: "Node's TLS" }[t.ends]}`);
  else out.push('TLS: the handshake failed');
  if (t.certificate) {
    const days = t.days === null ? '' : t.days < 0 ? ` (expired ${-t.days} days ago)` : ` (${t.days} days left)`;
    out.push(`Certificate: ${t.certificate.subject}; issuer ${t.certificate.issuer}; valid until ${t.certificate.notAfter}${days}`);
  }
  const checker = { bridge: ' (checked by the bridge)', transport: " (checked by Node's TLS)" }[t.ends] ?? '';
  const match = t.nameMatches === null ? 'unknown' : t.nameMatches ? `yes${t.chain ? '' : checker}` : 'no';
  out.push(`Names the host (${r.target.host}): ${match}${t.names.length ? ` (the certificate names ${t.names.join(', ')})` : ''}`);
  if (t.chain) {
    out.push(`Chain as the server sent it (${t.chain.length} certificate${t.chain.length === 1 ? '' : 's'}, leaf first):`);
    t.chain.forEach((c, i) => out.push(...certLines(c, i).map((l) => `  ${l}`)));
  } else if (t.chainNote) {
    out.push(t.chainNote);
  }
  return out;
}

const list = (a) => (a === null ? '(none)' : a.length ? a.join(' · ') : '(empty)');

function changeText(c) {
  const parts = [...c.added.map((l) => `+${l}`), ...c.removed.map((l) => `-${l}`), ...c.changed.map((x) => `${x.before} → ${x.after}`)];
  return parts.length ? parts.join('; ') : 'unchanged';
}

function capaLines(r) {
  const c = r.capabilities;
  const out = [];
  if (c.afterStls !== null || r.target.tls === 'starttls') out.push(`Capabilities before STLS: ${list(c.beforeStls)}`, `Capabilities after STLS: ${list(c.afterStls)}`);
  else out.push(`Capabilities before login: ${list(c.beforeStls)}`);
  out.push(`Capabilities after login: ${c.afterLogin === null ? '(not logged in, or none)' : list(c.afterLogin)}`);
  for (const ch of c.changes) out.push(`Changed from ${ch.from} to ${ch.to}: ${changeText(ch)}`);
  return out;
}

function extensionLines(r) {
  const e = r.extensions;
  const m = r.mechanisms;
  const out = [
    `Login mechanisms offered: ${m.offered.join(' ') || '(none)'}${m.sasl.length ? ` (SASL ${m.sasl.join(' ')})` : ''}; usable here: ${m.usable.join(' ') || '(none)'}; used: ${m.used ?? '(none)'}`,
    `APOP: ${r.apop.usable ? 'usable (the greeting has a valid timestamp)' : 'not usable (no valid timestamp in the greeting)'}`,
    `PIPELINING: ${e.pipelining ? 'yes' : 'no'} · RESP-CODES: ${e.respCodes ? 'yes' : 'no'} · AUTH-RESP-CODE: ${e.authRespCode ? 'yes' : 'no'} · LOGIN-DELAY: ${e.loginDelay ? `${e.loginDelay.seconds} s${e.loginDelay.perUser ? ' (per user)' : ''}` : 'none'} · EXPIRE: ${e.expire ? `${e.expire.value}${e.expire.perUser ? ' (per user)' : ''}` : 'none'} · UIDL: ${e.uidl ? 'yes' : 'no'} · TOP: ${e.top ? 'yes' : 'no'} · UTF8: ${e.utf8 ? 'yes' : 'no'}`,
  ];
  if (e.implementation) out.push(`Implementation: ${e.implementation}`);
  if (r.mailbox) out.push(`Mailbox: ${r.mailbox.count} messages, ${r.mailbox.size} octets`);
  const u = r.uidl;
  if (u?.supported) out.push(`UIDL sanity (RFC 1939 § 7): ${u.ok ? 'ok' : 'problems'}: ${u.count} unique-ids, longest ${u.longest}, ${u.duplicateCount} duplicated, ${u.unprintableCount} unprintable, ${u.tooLongCount} over 70 characters`);
  else if (u) out.push(`UIDL: not supported (${u.serverText})`);
  if (r.deviations.length) {
    out.push(`Deviations tolerated (${r.deviations.length}):`);
    for (const d of r.deviations) out.push(`  ${d.id}: ${d.description}`);
  } else {
    out.push('Deviations tolerated: none');
  }
  return out;
}

/** The report as plain text (pop3-check --serverinfo). */
export function reportText(r) {
  const out = [`Diagnosis of ${where(r)}${r.target.via === 'bridge' ? ` through ${r.target.bridge}` : ', direct'}: ${verdict(r)}`];
  const w = Math.max(...r.steps.map((s) => s.name.length));
  for (const s of r.steps) {
    out.push(`  ${MARK[s.status]}  ${s.name.padEnd(w)}  ${formatMs(s.ms).padStart(8)}  ${s.detail}`);
    if (s.hint) out.push(`        ${' '.repeat(w)}            → ${s.hint}`);
  }
  if (r.greeting) out.push(`Greeting: ${r.greeting}`);
  if (r.provider) out.push(`Provider: ${r.provider.name}`);
  out.push(...tlsLines(r));
  // What the server offers, once it said anything.
  if (r.greeting) out.push(...capaLines(r), ...extensionLines(r));
  if (r.probe) out.push(`Probe with tls: '${r.probe.tls}': ${r.probe.saw}${r.probe.greeting ? ` (${r.probe.greeting})` : r.probe.detail ? ` (${r.probe.detail})` : ''}`);
  for (const n of r.notes) out.push(`Note: ${n}`);
  return out.join('\n');
}

/** Transcript lines a Markdown report shows (a UIDL listing can be long). */
const TRANSCRIPT_LINES = 300;

/** A Markdown table cell: one line, pipes escaped. */
const cell = (s) => String(s ?? '').replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** The report as Markdown, for a ticket. */
export function reportMarkdown(r) {
  const t = r.target;
  const out = [
    `# POP3 diagnosis: ${where(r)}`,
    '',
    `- Result: **${verdict(r)}**`,
    `- When: ${r.startedAt ?? '(not recorded)'}, ${formatMs(r.ms) || '0 ms'} in all`,
    `- Route: ${t.via === 'bridge' ? `through the bridge ${t.bridge}` : 'direct'}; ${r.tls ? `TLS ends ${{ bridge: 'in the bridge', client: 'in the client (end to end)', transport: "in Node's TLS" }[r.tls.ends]}` : t.tls === 'none' ? 'no TLS' : 'no TLS session'}`,
    `- User: ${t.user ?? '(none)'}${t.credential ? ` (with a ${t.credential}, not shown)` : ''}${t.mechanism ? `, mechanism ${t.mechanism}` : ''}`,
    '',
    '| Step | Result | Time | Detail |',
    '|---|---|---:|---|',
    ...r.steps.map((s) => `| ${s.name} | ${ICON[s.status]} | ${formatMs(s.ms)} | ${cell(s.detail)} |`),
    '',
  ];
  const hints = r.steps.filter((s) => s.hint);
  if (hints.length) out.push('## What to do', '', ...hints.map((s) => `- **${s.name}**: ${s.hint}`), '');
  if (r.greeting) {
    out.push('## Server', '', `- Greeting: \`${r.greeting}\``, ...(r.provider ? [`- Provider: ${r.provider.name}`] : []));
    out.push(...extensionLines(r).map((l) => (l.startsWith('  ') ? `  - ${l.trim()}` : `- ${l}`)), '');
  }
  out.push('## TLS', '', ...tlsLines(r).map((l) => (l.startsWith('  ') ? `  ${l.trimStart()}` : `- ${l}`)), '');
  if (r.greeting) out.push('## Capabilities', '', ...capaLines(r).map((l) => `- ${l}`), '');
  if (r.probe) out.push('## Probe', '', `- A second connection with tls: '${r.probe.tls}' saw ${r.probe.saw}${r.probe.greeting ? `: \`${r.probe.greeting}\`` : r.probe.detail ? `: ${r.probe.detail}` : ''}`, '');
  if (r.notes.length) out.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  if (r.transcript?.length) {
    const shown = r.transcript.slice(0, TRANSCRIPT_LINES).map((l) => `${l.dir}: ${l.line}`);
    if (r.transcript.length > TRANSCRIPT_LINES) shown.push(`… ${r.transcript.length - TRANSCRIPT_LINES} more lines (in the JSON report)`);
    // A fence longer than any run of backticks in the lines.
    const fence = '`'.repeat(Math.max(3, ...shown.map((l) => Math.max(0, ...(l.match(/`+/g) ?? []).map((b) => b.length + 1)))));
    out.push('## Transcript (passwords and tokens redacted)', '', `${fence}text`, ...shown, fence, '');
  }
  return out.join('\n');
}
