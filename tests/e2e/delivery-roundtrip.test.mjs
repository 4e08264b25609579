// The delivery round trip through a real MTA: `pop3-check --send-via` and
// pop3-exporter's `send_via` send a probe message to a private Postfix on
// loopback (STARTTLS, SMTP AUTH checked by Dovecot's auth service), which
// delivers it by LMTP into the test Dovecot; the check finds it by its token
// and deletes exactly it (DELE + QUIT). Other mail stays, including messages
// carrying a similar but different token, the token in the Subject or body
// only, or the header inside a bounce. Postfix's hold queue makes a probe
// message late on purpose, so "late" and "missing" are structural here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import nodemailer from 'nodemailer';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startPostfix } from '../fixtures/postfix.mjs';
import { startExporter } from '../fixtures/exporter.mjs';
import { REPO_ROOT } from '../fixtures/bridge.mjs';
import { runNode } from '../fixtures/cli.mjs';
import { until } from '../fixtures/assert.mjs';

const BIN = `${REPO_ROOT}/pop3-wasm/js/cli/pop3-check.js`;
let dc;
let mx;

before(async () => {
  dc = await startDovecot({ lmtp: true });
  mx = await startPostfix({ dovecot: dc, hold: ['bob+hold@example.org', 'empty+hold@example.org'] });
});

after(async () => {
  await mx?.stop();
  await dc?.stop();
});

/** Runs pop3-check; resolves { code, stdout, stderr }. */
const check = (args, env = {}) => runNode(BIN, args, { env });

const bobEnv = () => ({ POP3_PASSWORD: dc.users.bob.password, SMTP_USER: 'bob', SMTP_PASSWORD: dc.users.bob.password });
const bobCheck = (...extra) => [
  `pop3s://bob@127.0.0.1:${dc.ports.pop3s}`,
  '--ca-file', dc.caFile,
  '--send-via', `smtp://127.0.0.1:${mx.port}`,
  '--smtp-ca-file', mx.caFile,
  '--send-to', 'bob@example.org',
  '--poll', '0.2s',
  ...extra,
];

/** What the mailbox holds now: [{ uid, messageId, probe: the X-Pop3-Probe header when there is exactly one }]. */
async function mailbox(user) {
  const c = await Pop3Client.connect({ host: '127.0.0.1', port: dc.ports.pop3s, ca: dc.ca });
  try {
    await c.login(user, dc.users[user].password);
    const out = [];
    for (const { id, uid } of await c.uidl()) {
      const head = Buffer.from(await c.top(id, 0)).toString('latin1');
      const probes = [...head.matchAll(/^X-Pop3-Probe:[ \t]*(.*)$/gim)].map((x) => x[1].trim());
      const probe = probes.length === 1 ? probes[0] : null;
      out.push({ uid, messageId: /^Message-ID:\s*(\S+)/im.exec(head)?.[1] ?? null, probe });
    }
    return out;
  } finally {
    c.close(); // no QUIT
  }
}

/** Sends one message as bob through the Postfix under test. */
async function send(mail) {
  const t = nodemailer.createTransport({
    host: '127.0.0.1',
    port: mx.port,
    requireTLS: true,
    auth: { user: 'bob', pass: dc.users.bob.password },
    tls: { ca: fs.readFileSync(mx.caFile) },
  });
  try {
    return await t.sendMail({ from: 'bob@example.org', to: 'bob@example.org', ...mail });
  } finally {
    t.close();
  }
}

test('pop3-check --send-via: the probe arrives through Postfix and LMTP, exactly it is deleted, OK with delivery perfdata', async () => {
  const before = await mailbox('bob');
  assert.equal(before.length, 3);
  const r = await check(bobCheck('--json'), bobEnv());
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.status, 'OK');
  assert.equal(j.delivery.sent, true);
  assert.equal(j.delivery.found, true);
  assert.equal(j.delivery.deleted, 1);
  assert.ok(j.delivery.seconds > 0 && j.delivery.seconds < 60);
  assert.match(j.delivery.token, /^pop3-check-[0-9a-z]+-[0-9a-f]{24}$/);
  assert.match(j.summary, /probe message delivered in \d+\.\d{3} s and deleted/);
  assert.deepEqual(await mailbox('bob'), before, 'the other messages are untouched, the probe is gone');
  // Postfix took it over TLS with AUTH, and handed it to Dovecot's LMTP.
  assert.match(mx.log(), /sasl_method=PLAIN, sasl_username=bob/);
  assert.match(mx.log(), /ESMTPSA|starttls=1/);
  assert.match(mx.log(), new RegExp(`relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${dc.ports.lmtp}, .*status=sent`));
  // Exactly one session committed one deletion (pop3_logout_format: del=%d/%m).
  const commits = dc.log().split('\n').filter((l) => /pop3\(bob\).*Logged out .*del=[1-9]/.test(l));
  assert.equal(commits.length, 1, dc.log());
  assert.match(commits[0], /del=1\/4,/);

  // The status line form: delivery and smtp perfdata.
  const line = await check(bobCheck('--delivery-warn', '30s', '--delivery-timeout', '45s'), bobEnv());
  assert.equal(line.code, 0, line.stdout);
  assert.match(line.stdout, /^POP3 OK - .* \| time=.* delivery=\d+(\.\d+)?s;30;45;0 smtp=\d+(\.\d+)?s;;;0\n$/);
  assert.deepEqual(await mailbox('bob'), before);
  // No secret on the way out.
  for (const out of [r.stdout, r.stderr, line.stdout, line.stderr]) assert.equal(out.includes(dc.users.bob.password), false);
});

test('late (held in the queue) is WARNING, and similar-but-different tokens are never deleted', async () => {
  const base = await mailbox('bob');
  const run = check(bobCheck('--send-to', 'bob+hold@example.org', '--delivery-warn', '1s', '--delivery-timeout', '30s', '--json'), bobEnv());
  const id = await until(() => mx.held()[0], 'the probe message on hold');
  const token = /^X-Pop3-Probe: (\S+)$/m.exec(mx.message(id))[1];
  assert.match(token, /^pop3-check-/);
  // While the probe waits, mail that looks like it arrives first.
  const decoys = [
    { subject: `POP3 delivery probe ${token}x`, headers: { 'X-Pop3-Probe': `${token}x` }, text: 'a longer token' },
    { subject: `POP3 delivery probe ${token.slice(0, -1)}`, headers: { 'X-Pop3-Probe': token.slice(0, -1) }, text: 'a shorter token' },
    { subject: `POP3 delivery probe ${token}`, text: 'the token in the Subject only' },
    { subject: 'a quote', text: `X-Pop3-Probe: ${token}\r\n` },
    { subject: 'two tokens', headers: [{ key: 'X-Pop3-Probe', value: token }, { key: 'X-Pop3-Probe', value: 'someone-else' }], text: 'two' },
    {
      subject: 'Undelivered Mail Returned to Sender',
      text: 'This is a bounce of the probe message.',
      attachments: [{ contentType: 'message/rfc822', content: `X-Pop3-Probe: ${token}\r\nSubject: POP3 delivery probe ${token}\r\n\r\nthe bounced probe\r\n` }],
    },
  ];
  const ids = [];
  for (const d of decoys) ids.push((await send(d)).messageId);
  await until(async () => (await mailbox('bob')).length === base.length + decoys.length, 'the decoys in the mailbox');
  await new Promise((r) => setTimeout(r, 1100)); // later than --delivery-warn 1s
  mx.release(id);
  const r = await run;
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.status, 'WARNING');
  assert.match(j.summary, /^delivery took \d+\.\d{3} s \(warn > 1\)/);
  assert.equal(j.delivery.deleted, 1);
  assert.ok(j.delivery.polls > 1);
  const after = await mailbox('bob');
  assert.equal(after.length, base.length + decoys.length);
  assert.deepEqual(after.map((m) => m.messageId).slice(base.length), ids);
  assert.equal(after.some((m) => m.probe === token), false, 'the probe itself is gone');
});

test('missing (never released) is CRITICAL; a later look leaves it alone', async () => {
  const base = await mailbox('bob');
  const r = await check(bobCheck('--send-to', 'bob+hold@example.org', '--delivery-timeout', '1.5s'), bobEnv());
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.stdout, /^POP3 CRITICAL - probe message not delivered within 1\.5 s/);
  assert.doesNotMatch(r.stdout, / delivery=/);
  assert.deepEqual(await mailbox('bob'), base);
  const [id] = mx.held();
  const token = /^X-Pop3-Probe: (\S+)$/m.exec(mx.message(id))[1];
  mx.release(id);
  await until(async () => (await mailbox('bob')).some((m) => m.probe === token), 'the late probe message');
  // pop3-check remembers nothing: another check's round trip does not touch it.
  const again = await check(bobCheck(), bobEnv());
  assert.equal(again.code, 0, again.stdout);
  assert.ok((await mailbox('bob')).some((m) => m.probe === token));
});

test('smtp:// requires STARTTLS: a server without it gets neither AUTH nor the message', async () => {
  const lines = [];
  const srv = net.createServer((s) => {
    s.write('220 plain.example ESMTP\r\n');
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 2);
        lines.push(l);
        if (/^EHLO/i.test(l)) s.write('250-plain.example\r\n250 AUTH PLAIN LOGIN\r\n');
        else if (/^QUIT/i.test(l)) s.end('221 bye\r\n');
        else if (/^STARTTLS/i.test(l)) s.write('502 5.5.1 STARTTLS not offered here\r\n');
        else s.write('250 ok\r\n');
      }
    });
    s.on('error', () => {});
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const args = bobCheck();
    args[args.indexOf('--send-via') + 1] = `smtp://127.0.0.1:${srv.address().port}`;
    const r = await check(args, bobEnv());
    assert.equal(r.code, 2, r.stdout);
    assert.match(r.stdout, /^POP3 CRITICAL - sending the probe message failed: .*STARTTLS/);
    assert.deepEqual(lines.filter((l) => !/^(EHLO .*|STARTTLS|QUIT)$/i.test(l)), [], 'no AUTH, MAIL, RCPT or DATA');
  } finally {
    srv.close();
  }
});

/** A module of the `empty` mailbox whose probe message goes to `sendTo`. */
const roundTrip = (sendTo, deliveryTimeout) => ({
  user: 'empty',
  password_env: 'EMPTY_PW',
  ca_file: dc.caFile,
  allow: [`127.0.0.1:${dc.ports.pop3s}`],
  send_via: `smtp://127.0.0.1:${mx.port}`,
  send_to: sendTo,
  smtp_user: 'empty',
  smtp_password_env: 'EMPTY_PW',
  smtp_ca_file: mx.caFile,
  delivery_poll: '0.2s',
  delivery_timeout: deliveryTimeout,
});

test('pop3-exporter send_via: pop3_delivery_seconds; a late message of an earlier probe is deleted by the next', async () => {
  const ex = await startExporter({
    env: { EMPTY_PW: dc.users.empty.password },
    args: ['--log-level', 'debug'],
    config: { modules: { roundtrip: roundTrip('empty@example.org', '20s'), held: roundTrip('empty+hold@example.org', '1.5s') } },
  });
  try {
    const target = `127.0.0.1:${dc.ports.pop3s}`;
    let r = await ex.probe('roundtrip', target);
    let m = r.metrics;
    assert.equal(m.get('probe_success'), 1, r.text);
    assert.equal(m.get('pop3_delivery_sent'), 1);
    assert.equal(m.get('pop3_delivery_arrived'), 1);
    assert.ok(m.get('pop3_delivery_seconds') > 0);
    assert.ok(m.get('pop3_delivery_smtp_seconds') > 0);
    assert.equal(m.get('pop3_delivery_deleted'), 1);
    assert.deepEqual(await mailbox('empty'), []);

    // Held: missing at the deadline, so probe_success 0 …
    r = await ex.probe('held', target);
    m = r.metrics;
    assert.equal(m.get('probe_success'), 0, r.text);
    assert.equal(m.get('pop3_delivery_sent'), 1);
    assert.equal(m.get('pop3_delivery_arrived'), 0);
    assert.equal(m.has('pop3_delivery_seconds'), false);
    assert.equal(m.get('pop3_probe_error_info{step="delivery",code="NOT_DELIVERED",resp_code=""}'), 1);
    assert.match(ex.stderr(), /msg="probe failed" module=held .*step=delivery code=NOT_DELIVERED/);
    // … then it arrives late; the next probe of the module deletes it with its own.
    const [id] = mx.held();
    mx.release(id);
    await until(async () => (await mailbox('empty')).length === 1, 'the late probe message');
    r = await ex.probe('held', target);
    assert.equal(r.metrics.get('pop3_delivery_deleted'), 1, 'the late one (this one is held again)');
    assert.deepEqual(await mailbox('empty'), []);
    for (const held of mx.held()) mx.release(held);
    await until(async () => (await mailbox('empty')).length === 1, 'the second late one');
    r = await ex.probe('held', target);
    assert.equal(r.metrics.get('pop3_delivery_deleted'), 1);
    assert.deepEqual(await mailbox('empty'), []);
    assert.equal((ex.stderr() + r.text).includes(dc.users.empty.password), false);
  } finally {
    for (const held of mx.held()) mx.release(held);
    await ex.stop();
  }
});
