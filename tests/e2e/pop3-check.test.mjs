// pop3-check, the Nagios-compatible bin, run as a process against the test
// Dovecot (direct and through the bridge) and scripted servers: every exit
// code for its reason, well-formed perfdata, --expect, --delete-match,
// loop mode and --serverinfo.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor, REPO_ROOT } from '../fixtures/bridge.mjs';
import { startScripted } from '../fixtures/scripted.mjs';
import { runNode } from '../fixtures/cli.mjs';
import { startEndToEndBridge } from '../fixtures/e2e-bridge.mjs';

const BIN = path.join(REPO_ROOT, 'pop3-wasm', 'js', 'cli', 'pop3-check.js');

let dc;
let bridge;
let tmp;
const cleanups = [];

before(async () => {
  dc = await startDovecot();
  bridge = await startBridgeFor(dc);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-check-test-'));
});

after(async () => {
  for (const f of cleanups) await f();
  await bridge?.stop();
  await dc?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs pop3-check; resolves { code, stdout, stderr, lines }. stdin is not a terminal. */
const check = (args, env = {}) => runNode(BIN, args, { env });

const pw = (user = 'alice') => ({ POP3_PASSWORD: dc.users[user].password });
const direct = (user = 'alice', port = dc.ports.pop3s) => [`pop3s://${user}@127.0.0.1:${port}`, '--ca-file', dc.caFile];
const viaBridge = (user = 'alice') => [`pop3s://${user}@127.0.0.1:${dc.ports.pop3s}`, '--bridge', bridge.url];

const STATUS = /^POP3 (OK|WARNING|CRITICAL|UNKNOWN) - [^|]+(?: \| (.+))?$/;
// 'label'=value[UOM];[warn];[crit];[min];[max] (Nagios plugin guidelines)
const PERF = /^('[^'=]+'|[^'=\s]+)=-?\d+(\.\d+)?(s|ms|us|%|B|KB|MB|TB|c)?(;(@?-?[\d.~]*:?-?[\d.]*)?){0,2}(;(-?[\d.]*)?){0,2}$/;

/** The status line's perfdata as { label: token }, each checked against PERF. */
function perfdata(line) {
  const m = STATUS.exec(line);
  assert.ok(m, `not a status line: ${line}`);
  const out = {};
  for (const tok of (m[2] ?? '').split(' ').filter(Boolean)) {
    assert.match(tok, PERF, `perfdata token ${tok}`);
    out[tok.split('=')[0]] = tok;
  }
  return out;
}

for (const [via, target] of [
  ['direct', direct],
  ['bridge', viaBridge],
]) {
  test(`OK ${via}: exit 0, one status line, well-formed perfdata`, async () => {
    const r = await check(target(), pw());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.lines.length, 1);
    assert.match(r.lines[0], /^POP3 OK - 9 messages \(\d+ B\), login SCRAM-SHA-256, TLSv1\.[23], certificate valid \d+ days/);
    const p = perfdata(r.lines[0]);
    for (const label of ['time', 'connect', 'greeting', 'auth', 'stat', 'messages', 'size', 'cert_days']) assert.ok(p[label], `${label} in ${r.lines[0]}`);
    assert.equal(p.messages, 'messages=9;;;0');
    assert.equal(p.size, `size=${dc.users.alice.size}B;;;0`);
    assert.match(p.cert_days, /^cert_days=\d+;14:;7:$/);
    // Direct, the TLS handshake is timed apart; the bridge does it inside its connect.
    assert.equal(Boolean(p.tls), via === 'direct');
  });
}

test('STLS direct: the tls phase is the STLS exchange and handshake', async () => {
  const r = await check([`pop3://alice@localhost:${dc.ports.pop3}`, '--ca-file', dc.caFile, '--json'], pw());
  assert.equal(r.code, 0, r.stdout);
  const j = JSON.parse(r.stdout);
  assert.equal(j.status, 'OK');
  // connect, tls and greeting are the core's phases, timed in whole
  // milliseconds (one can be 0 on loopback); auth, stat and the total are
  // timed around the calls.
  for (const k of ['connect', 'tls', 'greeting']) assert.ok(Number.isFinite(j.timings[k]) && j.timings[k] >= 0, `${k}: ${j.timings[k]}`);
  for (const k of ['auth', 'stat', 'total']) assert.ok(j.timings[k] > 0, `${k}: ${j.timings[k]}`);
  assert.equal(j.tls.certificate.subject, 'O=pop3-wasm tests, CN=localhost');
});

test('--end-to-end: TLS in the client, directly and through a bridge that relays end to end', async () => {
  const e2eBridge = await startEndToEndBridge(dc);
  cleanups.push(() => e2eBridge.stop());
  for (const via of [[], ['--bridge', e2eBridge.url]]) {
    const r = await check([`pop3://alice@127.0.0.1:${dc.ports.pop3}`, '--tls', 'starttls', '--ca-file', dc.caFile, '--end-to-end', '--json', ...via], pw());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.status, 'OK');
    assert.equal(j.tls.endToEnd, true);
    assert.deepEqual(j.tls.chain[0].dnsNames, ['localhost']);
    assert.ok(j.timings.tls > 0, `the client's STLS and handshake are timed: ${j.timings.tls}`);
  }
});

test('WARNING: certificate days, message count, a slow phase', async () => {
  let r = await check([...direct(), '--cert-warn-days', '60'], pw());
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.lines[0], /^POP3 WARNING - certificate expires in \d+ days \(warn < 60\)/);
  assert.match(perfdata(r.lines[0]).cert_days, /;60:;7:$/);
  r = await check([...direct(), '--count-warn', '5', '--count-crit', '20'], pw());
  assert.equal(r.code, 1, r.stdout);
  assert.equal(perfdata(r.lines[0]).messages, 'messages=9;5;20;0');
  r = await check([...viaBridge(), '-w', 'auth=0.000001'], pw());
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.lines[0], /auth took [\d.]+ s \(warn > 0\.000001\)/);
  assert.match(perfdata(r.lines[0]).auth, /^auth=[\d.]+s;0\.000001;;0$/);
});

test('CRITICAL: wrong password, closed port, untrusted certificate, expiring certificate, total time', async () => {
  let r = await check(direct(), { POP3_PASSWORD: 'wrong' });
  assert.equal(r.code, 2);
  assert.match(r.lines[0], /^POP3 CRITICAL - login failed: .*\(AUTH_FAILED\)/);
  perfdata(r.lines[0]);
  const probe = net.createServer();
  await new Promise((res) => probe.listen(0, '127.0.0.1', res));
  const closed = probe.address().port;
  await new Promise((res) => probe.close(res));
  r = await check(direct('alice', closed), pw());
  assert.equal(r.code, 2);
  assert.match(r.lines[0], /^POP3 CRITICAL - connect failed: connection refused \(CONNECT_FAILED\)/);
  r = await check([`pop3s://alice@127.0.0.1:${dc.ports.pop3s}`], pw());
  assert.equal(r.code, 2);
  assert.match(r.lines[0], /TLS failed: certificate not trusted \(unknown issuer\) \(TLS_FAILED\)/);
  r = await check([...viaBridge(), '--cert-crit-days', '60'], pw());
  assert.equal(r.code, 2);
  assert.match(r.lines[0], /certificate expires in \d+ days \(crit < 60\)/);
  r = await check([...direct(), '-w', '0.000001', '-c', '0.000002'], pw());
  assert.equal(r.code, 2);
  assert.match(perfdata(r.lines[0]).time, /^time=[\d.]+s;0\.000001;0\.000002;0$/);
});

test('UNKNOWN: no password, password in the URL, bad flags, unreachable bridge', async () => {
  let r = await check(direct());
  assert.equal(r.code, 3);
  assert.match(r.lines[0], /^POP3 UNKNOWN - no password: set POP3_PASSWORD/);
  r = await check([`pop3s://alice:secret@127.0.0.1:${dc.ports.pop3s}`]);
  assert.equal(r.code, 3);
  assert.match(r.lines[0], /never put the password in the URL/);
  r = await check([...direct(), '--warn', 'lunch=5'], pw());
  assert.equal(r.code, 3);
  assert.match(r.lines[0], /unknown phase lunch/);
  r = await check(['--password', 'x', ...direct()]);
  assert.equal(r.code, 3);
  assert.match(r.lines[0], /^POP3 UNKNOWN - unknown option '--password'/);
  r = await check([...viaBridge(), '--bridge', 'ws://127.0.0.1:9/pop3'], pw());
  assert.equal(r.code, 3);
  assert.match(r.lines[0], /BRIDGE_UNREACHABLE/);
  r = await check([...direct(), '--delete-match'], pw());
  assert.equal(r.code, 3);
  assert.match(r.lines[0], /--delete-match needs --expect/);
});

test('the password from --password-env and --password-file', async () => {
  let r = await check([...direct(), '--password-env', 'MY_PW'], { MY_PW: dc.users.alice.password });
  assert.equal(r.code, 0, r.stdout);
  const file = path.join(tmp, 'pw');
  fs.writeFileSync(file, `${dc.users.alice.password}\n`, { mode: 0o600 });
  r = await check([...viaBridge(), '--password-file', file]);
  assert.equal(r.code, 0, r.stdout);
  assert.ok(!r.stdout.includes(dc.users.alice.password));
});

test('--expect: found is OK, not found is CRITICAL; nothing is deleted or committed', async () => {
  let r = await check([...direct(), '--expect', 'a 5 mb MESSAGE'], pw());
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.lines[0], /1 matching "a 5 mb MESSAGE"/);
  assert.equal(perfdata(r.lines[0]).matches, 'matches=1;;1:;0');
  r = await check([...viaBridge(), '--expect', 'no such subject'], pw());
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.lines[0], /^POP3 CRITICAL - no message with "no such subject" in the subject/);
  assert.equal(perfdata(r.lines[0]).matches, 'matches=0;;1:;0');
  const c = await Pop3Client.connect({ host: dc.host, port: dc.ports.pop3s, ca: dc.ca });
  await c.login('alice', dc.users.alice.password);
  assert.equal((await c.stat()).count, dc.users.alice.count);
  await c.quit();
});

test('--delete-match deletes exactly the matching message', async () => {
  const bob = dc.users.bob;
  const r = await check([...direct('bob'), '--expect', "Bob's message 2", '--delete-match', '--json'], pw('bob'));
  assert.equal(r.code, 0, r.stdout);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.matched.map((m) => m.id), [2]);
  assert.equal(j.deleted, 1);
  const c = await Pop3Client.connect({ host: dc.host, port: dc.ports.pop3s, ca: dc.ca });
  await c.login('bob', bob.password);
  assert.deepEqual((await c.uidl()).map((u) => u.uid), [bob.uids[0], bob.uids[2]]);
  await c.quit();
  const again = await check([...viaBridge('bob'), '--expect', "Bob's message 2"], pw('bob'));
  assert.equal(again.code, 2, 'gone for good');
});

test('--every with --count: one valid JSON line per check', async () => {
  const r = await check([...direct(), '--every', '50ms', '--count', '3'], pw());
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.lines.length, 3);
  const checks = r.lines.map((l) => JSON.parse(l));
  for (const j of checks) {
    assert.equal(j.status, 'OK');
    assert.equal(j.exitCode, 0);
    assert.equal(j.messages, dc.users.alice.count);
    assert.ok(!Number.isNaN(Date.parse(j.time)));
    assert.ok(j.timings.total > 0 && j.timings.auth > 0);
  }
  assert.ok(Date.parse(checks[2].time) - Date.parse(checks[0].time) >= 100);
});

test('--serverinfo against Dovecot with STLS: the diagnosis report, step by step, capabilities before and after STLS and login', async () => {
  const r = await check([`pop3://alice@localhost:${dc.ports.pop3}?tls=starttls`, '--ca-file', dc.caFile, '--serverinfo'], pw());
  assert.equal(r.code, 0, r.stdout);
  const text = r.stdout;
  assert.match(r.lines[0], /^POP3 OK - 9 messages/);
  const p = perfdata(r.lines[0]);
  for (const label of ['time', 'connect', 'tls', 'greeting', 'auth', 'stat', 'messages', 'size', 'cert_days']) assert.ok(p[label], `${label} in ${r.lines[0]}`);
  assert.match(r.lines[1], new RegExp(`^Diagnosis of localhost:${dc.ports.pop3} \\(STLS, end to end\\), direct: OK$`));
  const steps = r.lines.slice(2, 12).map((l) => /^ {2}(PASS|WARN|FAIL|SKIP) {2}(\S+)/.exec(l)?.slice(1).join(' '));
  assert.deepEqual(steps, ['PASS connect', 'PASS greeting', 'PASS capa', 'PASS stls', 'PASS tls', 'PASS capa-after-stls', 'PASS auth', 'PASS capa-after-login', 'PASS stat', 'PASS uidl']);
  assert.match(text, /^ {2}PASS {2}auth +\d+(\.\d)? ms {2}logged in as alice with SCRAM-SHA-256$/m);
  assert.match(text, /^Greeting: \+OK Dovecot \(Debian\) ready\./m);
  assert.match(text, /^TLS: TLSv1\.[23], \S+; ends in this client \(end to end\)$/m);
  // Direct, TLS in the client by default: the chain as the server sent it.
  assert.match(text, /^Chain as the server sent it \(1 certificate, leaf first\):\n {2}1\. O=pop3-wasm tests, CN=localhost\n {5}issued by O=pop3-wasm tests, CN=pop3-wasm test CA\n {5}names: localhost, 127\.0\.0\.1$/m);
  assert.match(text, /^Capabilities before STLS: .*\bSTLS\b/m);
  assert.match(text, /^Capabilities after STLS: (?!.*\bSTLS\b).*SASL PLAIN/m);
  assert.match(text, /^Capabilities after login: .*PIPELINING/m);
  assert.match(text, /^Changed from beforeStls to afterStls: -STLS$/m);
  // The client's own choice (loginMechanisms): strongest first, all of them under TLS.
  assert.match(text, /^Login mechanisms offered: SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 APOP PLAIN LOGIN USER \(SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256\); usable here: SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 APOP PLAIN LOGIN USER; used: SCRAM-SHA-256$/m);
  assert.match(text, /^APOP: usable /m);
  assert.match(text, /^PIPELINING: yes · RESP-CODES: yes · AUTH-RESP-CODE: yes/m);
  assert.match(text, /^UIDL sanity \(RFC 1939 § 7\): ok: 9 unique-ids, longest 16/m);
  assert.match(text, /^Deviations tolerated: none$/m);
  assert.match(text, /^Note: The session was closed without QUIT: nothing was deleted or committed\.$/m);
  assert.ok(!text.includes(dc.users.alice.password));
});

test('--serverinfo --json: the report exactly as diagnose() gives it; the status in the exit code', async () => {
  const { diagnose } = await import('pop3-wasm');
  const args = [`pop3s://alice@127.0.0.1:${dc.ports.pop3s}`, '--bridge', bridge.url, '--serverinfo', '--json'];
  const r = await check(args, pw());
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.lines.length, 1, 'one JSON line');
  const out = JSON.parse(r.lines[0]);
  const report = await diagnose({ bridge: bridge.url, host: '127.0.0.1', port: dc.ports.pop3s, tls: 'implicit', user: 'alice', password: dc.users.alice.password, timeoutMs: 10_000 });
  // The same report but for what differs from run to run: times, the
  // greeting's APOP timestamp, SCRAM's challenges, the start time.
  const vary = (v) => v.replace(/<[^>]+>/g, '<ts>').replace(/\(\d+ days\)/, '(N days)').replace(/^\+ \S+$/, '+ challenge');
  const stable = (x) => JSON.parse(JSON.stringify(x), (k, v) => (k === 'ms' || k === 'latencyMs' || k === 'startedAt' ? 0 : typeof v === 'string' ? vary(v) : v));
  assert.deepEqual(stable(out), stable(report));
  assert.deepEqual(Object.keys(out), Object.keys(report), 'nothing added, in the same order');
  assert.deepEqual(out.steps.map((s) => [s.name, s.status]), [
    ['connect', 'pass'], ['tls', 'pass'], ['greeting', 'pass'], ['capa', 'pass'], ['auth', 'pass'], ['capa-after-login', 'pass'], ['stat', 'pass'], ['uidl', 'pass'],
  ]);
  assert.equal(out.tls.ends, 'bridge');
  assert.ok(!r.stdout.includes(dc.users.alice.password));
  // A threshold still decides the exit code (any total time is over 0 s): WARNING, and the same report.
  const w = await check([...args, '-w', '0'], pw());
  assert.equal(w.code, 1, w.stdout);
  assert.equal(JSON.parse(w.lines[0]).ok, true);
});

test('--serverinfo with a wrong password: CRITICAL, the auth step failed with its hint', async () => {
  const r = await check([...direct(), '--serverinfo', '--json'], { POP3_PASSWORD: 'wrong-password' });
  assert.equal(r.code, 2, r.stdout);
  const out = JSON.parse(r.lines[0]);
  assert.equal(out.ok, false);
  assert.equal(out.error.code, 'AUTH_FAILED');
  const auth = out.steps.find((s) => s.name === 'auth');
  assert.equal(auth.status, 'fail');
  assert.equal(auth.detail, '-ERR [AUTH] Authentication failed.');
  assert.match(auth.hint, /password is wrong/);
  assert.ok(!r.stdout.includes('wrong-password'));
  // The text report: the status line, then the report with the hint under the failed step.
  const t = await check([...direct(), '--serverinfo'], { POP3_PASSWORD: 'wrong-password' });
  assert.equal(t.code, 2, t.stdout);
  assert.match(t.lines[0], /^POP3 CRITICAL - /);
  assert.match(t.stdout, /^ {2}FAIL {2}auth +\d+(\.\d)? ms {2}-ERR \[AUTH\] Authentication failed\.\n {8,}→ .*password is wrong/m);
  assert.ok(!t.stdout.includes('wrong-password'));
});

test('--serverinfo refuses --expect and --send-via (a diagnosis never commits)', async () => {
  const r = await check([...direct(), '--serverinfo', '--expect', 'x'], pw());
  assert.equal(r.code, 3);
  assert.match(r.lines[0], /^POP3 UNKNOWN - --serverinfo runs the check as a diagnosis/);
});

test('--serverinfo says what the client learnt, by the CVE-2007-1558 rule for APOP, and never QUIT', async () => {
  // A greeting with something that looks like a timestamp but is no msg-id
  // (a space inside): a looser reading than login()'s would offer APOP here.
  const srv = await startScripted(async (c) => {
    await c.send('+OK ready <12 34@host>\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nUSER\r\nSASL CRAM-MD5 PLAIN\r\nIMPLEMENTATION scripted\r\n.\r\n');
    assert.equal(await c.line(), 'AUTH CRAM-MD5');
    await c.send(`+ ${Buffer.from('<1.2@host>').toString('base64')}\r\n`);
    await c.line();
    await c.send('+OK logged in\r\n');
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\r\nLOGIN-DELAY 900\r\n.\r\n');
    assert.equal(await c.line(), 'STAT');
    await c.send('+OK 0 0\r\n');
    assert.equal(await c.line(), 'UIDL');
    await c.send('+OK\r\n.\r\n');
    assert.equal(await c.line(), null);
  });
  cleanups.push(() => srv.stop());
  const r = await check([`pop3://u@127.0.0.1:${srv.port}?tls=none`, '--serverinfo', '--json'], { POP3_PASSWORD: 'p' });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const si = JSON.parse(r.lines[0]);
  assert.deepEqual(si.mechanisms.usable, ['CRAM-MD5'], 'plain text: PLAIN and USER are out; no APOP without a valid timestamp');
  assert.equal(si.mechanisms.used, 'CRAM-MD5');
  assert.equal(si.apop.usable, false);
  assert.deepEqual(si.capabilities.beforeStls, ['USER', 'SASL CRAM-MD5 PLAIN', 'IMPLEMENTATION scripted']);
  assert.deepEqual(si.capabilities.afterLogin, ['LOGIN-DELAY 900']);
  assert.equal(si.extensions.implementation, 'scripted');
  assert.deepEqual(si.extensions.loginDelay, { seconds: 900, perUser: false });
  assert.equal(si.steps.find((s) => s.name === 'tls').status, 'warn', 'no TLS is a warning');
  assert.equal(si.steps.find((s) => s.name === 'uidl').detail, 'an empty mailbox: nothing to check');
  assert.deepEqual(srv.received.filter((l) => l === 'CAPA').length, 2, srv.received.join(' | '));
  assert.ok(!srv.received.includes('QUIT'));
  assert.deepEqual(srv.errors, []);
});

test('--serverinfo lists the deviations of a bending server and its greeting byte for byte', async () => {
  const srv = await startScripted(async (c) => {
    await c.send('+OKready\n'); // no space after +OK, bare LF
    assert.equal(await c.line(), 'CAPA');
    await c.send('+OK\nUSER\n.\n');
    assert.equal(await c.line(), 'USER u');
    await c.send('+ok\r\n'); // lower case
    assert.equal(await c.line(), 'PASS p');
    await c.send('+OK logged in\r\n');
    assert.equal(await c.line(), 'CAPA'); // the client's own, after login
    await c.send('+OK\r\nUSER\r\n.\r\n');
    assert.equal(await c.line(), 'STAT');
    await c.send('+OK 2 320\r\n');
    assert.equal(await c.line(), 'UIDL');
    await c.send('+OK\r\n1 a\r\n2 a\r\n.\r\n'); // one UID twice
    assert.equal(await c.line(), null); // no QUIT
  });
  cleanups.push(() => srv.stop());
  const args = [`pop3://u@127.0.0.1:${srv.port}?tls=none`, '--insecure-auth', '--serverinfo'];
  const r = await check(args, { POP3_PASSWORD: 'p' });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.lines[0], /^POP3 OK - 2 messages \(320 B\), login USER, no TLS/);
  assert.match(r.stdout, /^Deviations tolerated \(3\):$/m);
  assert.match(r.stdout, /^ {2}no-space-after-status: /m);
  assert.match(r.stdout, /^ {2}bare-lf: /m);
  assert.match(r.stdout, /^ {2}status-case: /m);
  assert.match(r.stdout, /^Greeting: \+OKready$/m);
  assert.match(r.stdout, /^PIPELINING: no · /m);
  assert.match(r.stdout, /^ {2}WARN {2}uidl .*1 unique-ids given to more than one message: a \(messages 1, 2\)$/m);
  assert.match(r.stdout, /^ {2}WARN {2}auth .*logged in as u with USER$/m, 'the password went readable');
  assert.deepEqual(srv.errors, []);
});

// OAuth 2.0 access tokens from a variable, a file or a command. A scripted
// server here, for the exact bytes of the AUTH line; Dovecot's oauth2
// passdb below checks that a real server lets the token in.
const TOKEN = 'ya29.a0Af-secret_token~x+y/z==';

/** A server offering `mechs`; AUTH lines with `good` in them log in, others get the JSON error. */
async function oauthServer(mechs, good = TOKEN) {
  const srv = await startScripted(async (c) => {
    await c.send('+OK ready\r\n');
    for (;;) {
      const l = await c.line();
      if (l === null) return;
      if (l === 'CAPA') await c.send(`+OK\r\nSASL ${mechs}\r\n.\r\n`);
      else if (l.startsWith('AUTH ')) {
        let response = l.split(' ')[2];
        if (response === undefined) {
          // No initial response (the client's choice for XOAUTH2): ask for it.
          await c.send('+ \r\n');
          response = await c.line();
          if (response === null) return;
        }
        const said = Buffer.from(response, 'base64').toString('latin1');
        if (said.includes(`auth=Bearer ${good}\x01`)) await c.send('+OK welcome\r\n');
        else {
          await c.send(`+ ${Buffer.from('{"status":"invalid_token"}').toString('base64')}\r\n`);
          if ((await c.line()) === null) return; // the client's empty answer
          await c.send('-ERR [AUTH] invalid token\r\n');
        }
      } else if (l === 'STAT') await c.send('+OK 2 320\r\n');
      else await c.send('-ERR unknown\r\n');
    }
  });
  cleanups.push(() => srv.stop());
  return srv;
}

const b64 = (s) => Buffer.from(s, 'latin1').toString('base64');
const plainArgs = (srv, user = 'alice') => [`pop3://${user}@127.0.0.1:${srv.port}?tls=none`, '--insecure-auth'];

test('--oauth-token-env: OAUTHBEARER when offered, the exact initial response, the token nowhere in the output', async () => {
  const srv = await oauthServer('OAUTHBEARER XOAUTH2');
  const r = await check([...plainArgs(srv), '--oauth-token-env', 'MY_TOKEN', '--verbose'], { MY_TOKEN: TOKEN });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.lines[0], /^POP3 OK - 2 messages \(320 B\), login OAUTHBEARER, no TLS/);
  const auth = srv.received.filter((l) => l.startsWith('AUTH '));
  assert.deepEqual(auth, [`AUTH OAUTHBEARER ${b64(`n,a=alice,\x01host=127.0.0.1\x01port=${srv.port}\x01auth=Bearer ${TOKEN}\x01\x01`)}`]);
  assert.ok(r.stderr.includes('C: CAPA'), 'the dialogue was printed');
  for (const out of [r.stdout, r.stderr]) {
    assert.ok(!out.includes(TOKEN) && !out.includes(auth[0].slice(17)), 'the token shows in the output');
  }
});

test('--oauth-token-command: run again for every check of a loop; XOAUTH2 when OAUTHBEARER is not offered', async () => {
  const srv = await oauthServer('XOAUTH2', 'tok2');
  const counter = path.join(tmp, 'token-counter');
  const cmd = `n=$(cat '${counter}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${counter}'; printf 'tok%s\\n' "$n"`;
  const r = await check([...plainArgs(srv), '--oauth-token-command', cmd, '--every', '0.2s', '--count', '2']);
  const results = r.lines.map((l) => JSON.parse(l));
  assert.equal(results.length, 2, r.stdout + r.stderr);
  // The first check used tok2 (the command ran once up front to catch
  // mistakes, then once per check), the second tok3, which the server refuses.
  // AUTH XOAUTH2, then the response on its own line when the server says "+ ".
  const at = srv.received.flatMap((l, i) => (l === 'AUTH XOAUTH2' ? [i] : []));
  assert.equal(at.length, 2, srv.received.join('|'));
  assert.equal(srv.received[at[0] + 1], b64('user=alice\x01auth=Bearer tok2\x01\x01'));
  assert.equal(srv.received[at[1] + 1], b64('user=alice\x01auth=Bearer tok3\x01\x01'));
  assert.equal(results[0].status, 'OK');
  assert.equal(results[1].status, 'CRITICAL');
  assert.equal(results[1].error.code, 'AUTH_FAILED');
  // After the JSON error, the client answered with the empty line XOAUTH2 asks for.
  assert.equal(srv.received[at[1] + 2], '');
  assert.equal(r.code, 2);
});

test('--oauth-token-file: a wrong token is CRITICAL AUTH_FAILED', async () => {
  const srv = await oauthServer('OAUTHBEARER');
  const file = path.join(tmp, 'token');
  fs.writeFileSync(file, 'stale-token\n');
  const r = await check([...plainArgs(srv), '--oauth-token-file', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.lines[0], /^POP3 CRITICAL - .*AUTH_FAILED/);
  assert.ok(!r.stdout.includes('stale-token'));
});

test('OAuth usage mistakes are UNKNOWN, and never quote the token', async () => {
  const srv = await oauthServer('OAUTHBEARER XOAUTH2');
  const file = path.join(tmp, 'bad-token');
  fs.writeFileSync(file, 'not a token at all\n');
  const cases = [
    [['--oauth-token-env', 'NOPE'], {}, /--oauth-token-env NOPE: that variable is not set/],
    [['--oauth-token-env', 'T', '--oauth-token-file', file], { T: TOKEN }, /give one token source, not --oauth-token-env and --oauth-token-file/],
    [['--oauth-token-env', 'T', '--auth', 'PLAIN'], { T: TOKEN }, /--auth PLAIN takes a password; with an OAuth token use OAUTHBEARER or XOAUTH2/],
    [['--oauth-token-env', 'T', '--password-env', 'T'], { T: TOKEN }, /logs in with a token: drop --password-env/],
    [['--oauth-token-file', file], {}, /gave something that is not an OAuth bearer token \(RFC 6750\)/],
    [['--oauth-token-file', path.join(tmp, 'missing')], {}, /--oauth-token-file .*missing: ENOENT/],
    [['--oauth-token-command', `echo ${TOKEN}; echo 'no refresh token' >&2; exit 3`], {}, /--oauth-token-command failed \(exit 3\): no refresh token$/],
    [['--oauth-token-command', 'true'], {}, /--oauth-token-command gave no OAuth token/],
  ];
  for (const [args, env, why] of cases) {
    const r = await check([...plainArgs(srv), ...args], env);
    assert.equal(r.code, 3, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.lines[0], /^POP3 UNKNOWN - /);
    assert.match(r.lines[0], why);
    for (const out of [r.stdout, r.stderr]) assert.ok(!out.includes(TOKEN) && !out.includes('not a token at all'), out);
  }
  assert.equal(srv.received.filter((l) => l.startsWith('AUTH')).length, 0, 'no attempt to log in');
});

test('--oauth-token-file against Dovecot: its oauth2 passdb checks the token at the introspection endpoint', async () => {
  const odc = await startDovecot({ oauth2: true });
  cleanups.push(() => odc.stop());
  const file = path.join(tmp, 'dovecot-token');
  fs.writeFileSync(file, `${odc.oauth.tokenFor('alice')}\n`);
  const args = [`pop3s://alice@127.0.0.1:${odc.ports.pop3s}`, '--ca-file', odc.caFile, '--oauth-token-file', file];
  const r = await check(args);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.lines[0], new RegExp(`^POP3 OK - ${odc.users.alice.count} messages \\(${odc.users.alice.size} B\\), login OAUTHBEARER, TLSv1\\.[23]`));
  assert.ok(odc.oauth.seen(odc.oauth.tokenFor('alice')), 'Dovecot asked the introspection endpoint');
  // bob's token is not alice's.
  fs.writeFileSync(file, `${odc.oauth.tokenFor('bob')}\n`);
  const wrong = await check([...args, '--auth', 'XOAUTH2']);
  assert.equal(wrong.code, 2, wrong.stdout + wrong.stderr);
  assert.match(wrong.lines[0], /^POP3 CRITICAL - .*AUTH_FAILED/);
  assert.ok(!wrong.stdout.includes(odc.oauth.tokenFor('bob')));
});
