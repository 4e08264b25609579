// pop3-exporter, run as a process: against the test Dovecot (a good mailbox,
// a wrong password, STLS, a real [IN-USE] from a locked mailbox) and scripted
// servers for what Dovecot will not do on demand ([SYS/TEMP], [SYS/PERM],
// [LOGIN-DELAY], a LOGIN-DELAY capability, a server that holds its answer).
// HTTP conventions of blackbox_exporter (400 for an unknown module, 200 with
// probe_success 0 for a failing mailbox), its own /metrics, the per-server
// budget and LOGIN-DELAY observed at the server's side, no QUIT and no DELE
// ever sent by a probe, no secret in its logs or answers, config errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startScripted } from '../fixtures/scripted.mjs';
import { startExporter, runExporter, writeConfig } from '../fixtures/exporter.mjs';
import { ConfigError, loadConfig } from '../../pop3-wasm/js/cli/exporter-config.js';
import { until } from '../fixtures/assert.mjs';

const WRONG = 'not-the-Pw-9f3';
let dc;
let ex;
let tmp;
const servers = {};
const cleanups = [];

/**
 * A scripted POP3 server: USER/PASS, STAT, CAPA (before and after login),
 * anything else -ERR. `pass(user)` gives the answer to PASS; `beforeStat`
 * may hold STAT. Tracks connections, their peak and every line received.
 */
async function pop3Server({ pass = () => '+OK logged in', capaAfter = ['USER'], beforeStat = async () => {} } = {}) {
  // inStat: sessions whose STAT is being answered; its peak is the
  // concurrency the client kept to (a closed socket's FIN and the next
  // connection may reach the server in either order; a pending STAT may not).
  const stats = { connections: 0, active: 0, inStat: 0, maxInStat: 0, closedByClient: 0 };
  const srv = await startScripted(async (c) => {
    stats.connections++;
    stats.active++;
    c.socket.once('close', () => stats.active--);
    await c.send('+OK scripted POP3 ready\r\n');
    let user = null;
    let loggedIn = false;
    for (;;) {
      const line = await c.line();
      if (line === null) {
        stats.closedByClient++;
        return;
      }
      const [cmd, ...args] = line.split(' ');
      switch (cmd.toUpperCase()) {
        case 'CAPA': {
          const caps = loggedIn ? capaAfter : ['USER', 'RESP-CODES', 'AUTH-RESP-CODE'];
          await c.send(`+OK\r\n${caps.map((l) => `${l}\r\n`).join('')}.\r\n`);
          break;
        }
        case 'USER':
          user = args[0];
          await c.send('+OK\r\n');
          break;
        case 'PASS': {
          const answer = pass(user);
          await c.send(`${answer}\r\n`);
          if (answer.startsWith('+OK')) loggedIn = true;
          break;
        }
        case 'STAT':
          stats.inStat++;
          stats.maxInStat = Math.max(stats.maxInStat, stats.inStat);
          await beforeStat(user);
          stats.inStat--;
          await c.send('+OK 2 320\r\n');
          break;
        case 'QUIT':
          await c.send('+OK bye\r\n');
          c.close();
          return;
        default:
          await c.send('-ERR not here\r\n');
      }
    }
  });
  cleanups.push(() => srv.stop());
  return Object.assign(srv, { stats });
}

let release = () => {};
let holding = null;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-exporter-test-'));
  // pop3_lock_session: a second session of the same mailbox gets a real [IN-USE].
  dc = await startDovecot({ oauth2: true, extraConfig: 'pop3_lock_session = yes\n' });
  fs.writeFileSync(path.join(tmp, 'token'), `${dc.oauth.tokenFor('alice')}\n`);
  fs.writeFileSync(path.join(tmp, 'passwords'), `# user:password\nbob:${dc.users.bob.password}\nempty:${dc.users.empty.password}\n`);
  const script = (name) => `127.0.0.1:${servers[name].port}`;
  servers.intemp = await pop3Server({
    pass: (u) => ({ inuse: '-ERR [IN-USE] Do you have another POP session running?', systemp: '-ERR [SYS/TEMP] Try again later', sysperm: '-ERR [SYS/PERM] Mailbox broken', delay: '-ERR [LOGIN-DELAY] Wait 60 seconds', wrong: '-ERR Bad password' })[u],
  });
  servers.delay = await pop3Server({ capaAfter: ['USER', 'LOGIN-DELAY 900'] });
  holding = new Promise((r) => (release = r));
  servers.slow = await pop3Server({ beforeStat: () => holding });
  const scripted = (extra = {}) => ({ tls: 'none', insecure_auth: true, user_from_target: true, password_env: 'SCRIPTED_PW', ...extra });
  ex = await startExporter({
    args: ['--log-level', 'debug'],
    env: { ALICE_PW: dc.users.alice.password, WRONG_PW: WRONG, SCRIPTED_PW: 'scripted-Pw-77' },
    config: {
      per_server_concurrency: 2,
      modules: {
        pop3s: { user: 'alice', password_env: 'ALICE_PW', ca_file: dc.caFile, allow: [`127.0.0.1:${dc.ports.pop3s}`] },
        stls: { tls: 'starttls', user: 'alice', password_env: 'ALICE_PW', ca_file: dc.caFile, allow: [`127.0.0.1:${dc.ports.pop3}`] },
        wrong: { user: 'alice', password_env: 'WRONG_PW', ca_file: dc.caFile, allow: [`127.0.0.1:${dc.ports.pop3s}`] },
        // Dovecot waits 10 s for a locked mailbox before it says [IN-USE].
        fleet: { user_from_target: true, passwords_file: path.join(tmp, 'passwords'), ca_file: dc.caFile, allow: [`127.0.0.1:${dc.ports.pop3s}`], timeout: '20s' },
        banner: { ca_file: dc.caFile },
        oauth: { user: 'alice', oauth_token_file: path.join(tmp, 'token'), ca_file: dc.caFile, allow: [`127.0.0.1:${dc.ports.pop3s}`] },
        codes: scripted({ allow: [script('intemp')] }),
        delay: scripted({ allow: [script('delay')] }),
        slow: scripted({ allow: [script('slow')] }),
      },
    },
  });
});

after(async () => {
  release();
  const err = (await ex?.stop()) ?? '';
  for (const f of cleanups) await f();
  await dc?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
  void err;
});

const certExpiry = () => Math.floor(Date.parse(new X509Certificate(fs.readFileSync(dc.certFile)).validTo) / 1000);

test('a good mailbox: probe_success 1, STAT, certificate expiry, phases, the mechanism, Prometheus text', async () => {
  const r = await ex.probe('pop3s', `127.0.0.1:${dc.ports.pop3s}`);
  assert.equal(r.status, 200);
  assert.equal(r.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const m = r.metrics;
  assert.equal(m.get('probe_success'), 1, r.text);
  assert.ok(m.get('probe_duration_seconds') > 0);
  assert.equal(m.get('pop3_messages'), 9);
  assert.equal(m.get('pop3_mailbox_bytes'), dc.users.alice.size);
  assert.equal(m.get('probe_ssl_earliest_cert_expiry'), certExpiry());
  assert.equal(m.get('pop3_login_mechanism_info{mechanism="SCRAM-SHA-256"}'), 1);
  assert.match([...m.keys()].find((k) => k.startsWith('probe_tls_version_info')), /^probe_tls_version_info\{version="TLS 1\.[23]"\}$/);
  // Every phase is reported. The core's clock counts whole milliseconds and
  // the greeting often comes in the same read as the end of the TLS
  // handshake, so a phase may be 0 on loopback (a CI run saw the greeting's);
  // the SCRAM login (PBKDF2 in wasm, two round trips) never is.
  for (const phase of ['connect', 'tls', 'greeting', 'auth', 'stat']) {
    const seconds = m.get(`pop3_phase_duration_seconds{phase="${phase}"}`);
    assert.ok(Number.isFinite(seconds) && seconds >= 0, `${phase}: ${seconds}`);
  }
  assert.ok(m.get('pop3_phase_duration_seconds{phase="auth"}') > 0, 'auth');
  for (const reason of ['auth', 'in_use', 'login_delay', 'sys_temp', 'sys_perm', 'server']) assert.equal(m.get(`pop3_login_failure{reason="${reason}"}`), 0);
  assert.equal(m.get('pop3_probe_cached'), 0);
  assert.equal([...m.keys()].some((k) => k.startsWith('pop3_probe_error_info')), false);
  assert.match(r.text, /^# HELP probe_success /m);
  assert.match(r.text, /^# TYPE pop3_phase_duration_seconds gauge$/m);
});

test('an OAuth 2.0 token from a file: OAUTHBEARER, checked by Dovecot at the introspection endpoint', async () => {
  const before = dc.oauth.count();
  const r = await ex.probe('oauth', `127.0.0.1:${dc.ports.pop3s}`);
  assert.equal(r.metrics.get('probe_success'), 1, r.text);
  assert.equal(r.metrics.get('pop3_login_mechanism_info{mechanism="OAUTHBEARER"}'), 1);
  assert.equal(r.metrics.get('pop3_messages'), 9);
  assert.equal(dc.oauth.count(), before + 1);
});

test('STLS: the tls phase is the STLS exchange and the handshake', async () => {
  const r = await ex.probe('stls', `localhost:${dc.ports.pop3}`.replace('localhost', '127.0.0.1'));
  assert.equal(r.metrics.get('probe_success'), 1, r.text);
  assert.ok(r.metrics.get('pop3_phase_duration_seconds{phase="tls"}') > 0);
  assert.equal(r.metrics.get('probe_ssl_earliest_cert_expiry'), certExpiry());
});

test('a wrong password: HTTP 200, probe_success 0, reason auth', async () => {
  const r = await ex.probe('wrong', `127.0.0.1:${dc.ports.pop3s}`);
  assert.equal(r.status, 200);
  const m = r.metrics;
  assert.equal(m.get('probe_success'), 0);
  assert.equal(m.get('pop3_login_failure{reason="auth"}'), 1);
  assert.equal(m.get('pop3_login_failure{reason="in_use"}'), 0);
  assert.equal(m.get('pop3_probe_error_info{step="login",code="AUTH_FAILED",resp_code="AUTH"}'), 1);
  assert.equal(m.has('pop3_messages'), false);
  // The server was reached: TLS and its certificate are still reported.
  assert.equal(m.get('probe_ssl_earliest_cert_expiry'), certExpiry());
});

test('a mailbox another session holds: Dovecot says [IN-USE] (after 10 s), reported as in_use, not as a wrong password', async () => {
  const holder = await Pop3Client.connect({ host: '127.0.0.1', port: dc.ports.pop3s, ca: dc.ca });
  try {
    await holder.login('bob', dc.users.bob.password);
    const r = await ex.probe('fleet', `bob@127.0.0.1:${dc.ports.pop3s}`);
    assert.equal(r.metrics.get('probe_success'), 0, r.text);
    assert.equal(r.metrics.get('pop3_login_failure{reason="in_use"}'), 1, r.text);
    assert.equal(r.metrics.get('pop3_login_failure{reason="auth"}'), 0);
    assert.equal(r.metrics.get('pop3_probe_error_info{step="login",code="SERVER_ERROR",resp_code="IN-USE"}'), 1);
  } finally {
    holder.close();
  }
  // Once it is free, the same target works (passwords_file, user from the target).
  await until(async () => (await ex.probe('fleet', `bob@127.0.0.1:${dc.ports.pop3s}`)).metrics.get('probe_success') === 1, 'bob free again');
});

test('[SYS/TEMP], [SYS/PERM], [LOGIN-DELAY] and a bare -ERR to PASS, each its own reason', async () => {
  const at = (u) => `${u}@127.0.0.1:${servers.intemp.port}`;
  const cases = [
    ['inuse', 'in_use', 'SERVER_ERROR', 'IN-USE'],
    ['systemp', 'sys_temp', 'SERVER_ERROR', 'SYS/TEMP'],
    ['sysperm', 'sys_perm', 'SERVER_ERROR', 'SYS/PERM'],
    ['delay', 'login_delay', 'SERVER_ERROR', 'LOGIN-DELAY'],
    ['wrong', 'auth', 'AUTH_FAILED', ''],
  ];
  for (const [user, reason, code, resp] of cases) {
    const r = await ex.probe('codes', at(user));
    assert.equal(r.metrics.get('probe_success'), 0, user);
    for (const other of ['auth', 'in_use', 'login_delay', 'sys_temp', 'sys_perm', 'server']) {
      assert.equal(r.metrics.get(`pop3_login_failure{reason="${other}"}`), other === reason ? 1 : 0, `${user}: ${other}`);
    }
    assert.equal(r.metrics.get(`pop3_probe_error_info{step="login",code="${code}",resp_code="${resp}"}`), 1, r.text);
  }
  const own = await ex.own();
  assert.equal(own.get('pop3_exporter_login_failures_total{module="codes",reason="sys_temp"}'), 1);
  assert.equal(own.get('pop3_exporter_login_failures_total{module="codes",reason="in_use"}'), 1);
});

test('LOGIN-DELAY: a probe sooner than the server allows answers from the last login, and says so', async () => {
  const target = `u1@127.0.0.1:${servers.delay.port}`;
  const first = await ex.probe('delay', target);
  assert.equal(first.metrics.get('probe_success'), 1, first.text);
  assert.equal(first.metrics.get('pop3_login_delay_seconds'), 900);
  assert.equal(first.metrics.get('pop3_probe_cached'), 0);
  assert.equal(servers.delay.stats.connections, 1);
  const second = await ex.probe('delay', target);
  assert.equal(servers.delay.stats.connections, 1, 'no second login');
  assert.equal(second.metrics.get('pop3_probe_cached'), 1);
  assert.ok(second.metrics.get('pop3_probe_cached_age_seconds') >= 0);
  assert.equal(second.metrics.get('probe_success'), 1);
  assert.equal(second.metrics.get('pop3_messages'), 2);
  assert.equal(second.metrics.get('probe_duration_seconds'), first.metrics.get('probe_duration_seconds'));
  // Another mailbox of the same server is not held back.
  await ex.probe('delay', `u2@127.0.0.1:${servers.delay.port}`);
  assert.equal(servers.delay.stats.connections, 2);
  assert.equal((await ex.own()).get('pop3_exporter_probes_total{module="delay",result="cached"}'), 1);
});

test('per_server_concurrency 2: five probes of one server, two sessions at a time, three waiting', async () => {
  const s = servers.slow;
  const probes = ['a', 'b', 'c', 'd', 'e'].map((u) => ex.probe('slow', `${u}@127.0.0.1:${s.port}`));
  await until(() => s.stats.active === 2, 'two sessions at the server');
  await until(async () => (await ex.own()).get('pop3_exporter_probes_queued') === 3, 'three probes queued');
  const own = await ex.own();
  assert.equal(own.get('pop3_exporter_probes_in_flight'), 2);
  assert.equal(s.stats.connections, 2, 'the others wait before connecting');
  release();
  const answers = await Promise.all(probes);
  for (const r of answers) assert.equal(r.metrics.get('probe_success'), 1, r.text);
  assert.equal(s.stats.connections, 5);
  assert.equal(s.stats.maxInStat, 2);
  const queuedFor = answers.map((r) => r.metrics.get('pop3_probe_queue_seconds'));
  assert.equal(queuedFor.filter((q) => q > 0.01).length >= 3, true, `three waited: ${queuedFor}`);
  const after = await ex.own();
  assert.equal(after.get('pop3_exporter_probes_queued'), 0);
  assert.equal(after.get('pop3_exporter_probes_in_flight'), 0);
});

test('two probes of the same mailbox at once share one login (a second would be [IN-USE])', async () => {
  const s = servers.slow;
  holding = new Promise((r) => (release = r));
  const before = s.stats.connections;
  const target = `same@127.0.0.1:${s.port}`;
  const both = [ex.probe('slow', target), ex.probe('slow', target)];
  await until(() => s.stats.active === 1, 'one session');
  await new Promise((r) => setTimeout(r, 100));
  release();
  const [a, b] = await Promise.all(both);
  assert.equal(s.stats.connections, before + 1);
  assert.deepEqual([a.metrics.get('pop3_probe_cached'), b.metrics.get('pop3_probe_cached')].sort(), [0, 1]);
  assert.equal(b.metrics.get('probe_success'), 1);
});

test("the probe's deadline comes from Prometheus' scrape timeout header when shorter", async () => {
  const s = servers.slow;
  holding = new Promise((r) => (release = r));
  const r = await ex.probe('slow', `late@127.0.0.1:${s.port}`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '1.5' } });
  release();
  assert.equal(r.metrics.get('probe_success'), 0);
  assert.equal(r.metrics.get('pop3_probe_error_info{step="stat",code="TIMEOUT",resp_code=""}'), 1, r.text);
  assert.ok(r.metrics.get('probe_duration_seconds') < 10, 'not the module timeout (10 s)');
});

test('a probe never sends DELE or QUIT: it drops the connection (Dovecot logs no logout)', async () => {
  for (const name of ['intemp', 'delay', 'slow']) {
    const lines = servers[name].received;
    assert.ok(lines.length > 0);
    assert.deepEqual(lines.filter((l) => /^(DELE|QUIT|RSET)\b/i.test(l)), [], name);
  }
  assert.ok(servers.slow.stats.closedByClient >= 5);
  // Dovecot: "Logged out" follows QUIT; a dropped connection is "Disconnected".
  const pop3 = dc.log().split('\n').filter((l) => / pop3\((alice|bob)\)/.test(l) && /top=\d/.test(l));
  assert.ok(pop3.filter((l) => /Disconnected: Connection closed/.test(l)).length >= 3, dc.log());
  for (const l of pop3) assert.match(l, /: Info: Disconnected: .* del=0\//, l);
});

test('blackbox conventions: unknown module 400, missing or bad target 400, a target not allowed 403', async () => {
  const bad = async (q) => ex.get(`/probe?${new URLSearchParams(q)}`);
  let r = await bad({ module: 'nope', target: `127.0.0.1:${dc.ports.pop3s}` });
  assert.equal(r.status, 400);
  assert.equal(r.text, 'Unknown module "nope"\n');
  r = await bad({ target: '127.0.0.1:995' });
  assert.equal(r.status, 400);
  r = await bad({ module: 'pop3s' });
  assert.equal(r.status, 400);
  assert.equal(r.text, 'Target parameter is missing\n');
  for (const target of ['127.0.0.1:99999', 'host name:995', '127.0.0.1:995/x', `alice@127.0.0.1:${dc.ports.pop3s}`]) {
    r = await bad({ module: 'pop3s', target });
    assert.equal(r.status, 400, target);
    assert.match(r.text, /^Bad target: /);
  }
  r = await bad({ module: 'pop3s', target: '10.1.2.3:995' });
  assert.equal(r.status, 403);
  assert.equal(r.text, 'Target 10.1.2.3:995 is not in the allow list of module pop3s\n');
  r = await bad({ module: 'fleet', target: `127.0.0.1:${dc.ports.pop3s}` });
  assert.equal(r.status, 400, 'fleet needs USER@');
  // A failing connection is not an HTTP error: 200 and probe_success 0.
  const closed = await ex.probe('banner', '127.0.0.1:1');
  assert.equal(closed.status, 200);
  assert.equal(closed.metrics.get('probe_success'), 0);
  assert.equal(closed.metrics.get('pop3_probe_error_info{step="connect",code="CONNECT_FAILED",resp_code=""}'), 1, closed.text);
  // A module without a user checks the greeting only.
  const banner = await ex.probe('banner', `127.0.0.1:${dc.ports.pop3s}`);
  assert.equal(banner.metrics.get('probe_success'), 1);
  assert.equal(banner.metrics.has('pop3_messages'), false);
  assert.equal(banner.metrics.has('pop3_login_failure{reason="auth"}'), false);
  // A user the passwords file does not know: no server is asked.
  const unknown = await ex.probe('fleet', `nobody@127.0.0.1:${dc.ports.pop3s}`);
  assert.equal(unknown.metrics.get('pop3_probe_error_info{step="credentials",code="CREDENTIALS",resp_code=""}'), 1, unknown.text);
});

test('/metrics: probes by module and result, in flight, durations, unknown modules, rejected targets, process', async () => {
  const own = await ex.own();
  assert.ok(own.get('pop3_exporter_probes_total{module="pop3s",result="success"}') >= 1);
  assert.ok(own.get('pop3_exporter_probes_total{module="wrong",result="failure"}') >= 1);
  assert.ok(own.get('pop3_exporter_probe_duration_seconds_count{module="pop3s"}') >= 1);
  assert.ok(own.has('pop3_exporter_probe_duration_seconds_bucket{le="0.5",module="pop3s"}'));
  assert.equal(own.get('pop3_exporter_probes_in_flight'), 0);
  assert.equal(own.get('pop3_exporter_module_unknown_total'), 1);
  assert.equal(own.get('pop3_exporter_target_rejected_total{reason="not_allowed"}'), 1);
  assert.equal(own.get('pop3_exporter_config_last_reload_successful'), 1);
  assert.ok(own.get('process_resident_memory_bytes') > 0);
  assert.ok([...own.keys()].some((k) => /^pop3_exporter_build_info\{version="\d+\.\d+\.\d+",nodejs="v\d+/.test(k)));
});

test('debug=true: the dialogue with secrets redacted, the metrics, the module', async () => {
  const r = await ex.probe('pop3s', `127.0.0.1:${dc.ports.pop3s}`, { debug: true });
  assert.equal(r.status, 200);
  assert.match(r.text, /^Dialogue of the probe \(secrets redacted\):\nS: \+OK Dovecot/);
  assert.match(r.text, /^C: AUTH SCRAM-SHA-256/m);
  assert.match(r.text, /^C: STAT$/m);
  assert.match(r.text, /^probe_success 1$/m);
  assert.match(r.text, /^password_env: "ALICE_PW"$/m);
});

test('SIGHUP reloads the config; a broken one keeps the old', async () => {
  const good = fs.readFileSync(ex.configFile, 'utf8');
  fs.writeFileSync(ex.configFile, `${good}\n  extra:\n    password: hunter2\n`);
  ex.signal('SIGHUP');
  await until(async () => (await ex.own()).get('pop3_exporter_config_last_reload_successful') === 0, 'the failed reload');
  assert.match(ex.stderr(), /level=error msg="configuration reload failed; keeping the old one" err=".*modules\.extra\.password: secrets never go in the config file/);
  assert.equal((await ex.probe('pop3s', `127.0.0.1:${dc.ports.pop3s}`)).metrics.get('probe_success'), 1);
  fs.writeFileSync(ex.configFile, good);
  ex.signal('SIGHUP');
  await until(async () => (await ex.own()).get('pop3_exporter_config_last_reload_successful') === 1, 'the good reload');
});

test('no secret in the logs or the answers (debug logging on)', async () => {
  const answers = [];
  for (const m of ['pop3s', 'wrong', 'stls', 'oauth']) {
    const target = m === 'stls' ? `127.0.0.1:${dc.ports.pop3}` : `127.0.0.1:${dc.ports.pop3s}`;
    answers.push((await ex.probe(m, target)).text, (await ex.probe(m, target, { debug: true })).text);
  }
  answers.push((await ex.probe('fleet', `bob@127.0.0.1:${dc.ports.pop3s}`, { debug: true })).text);
  answers.push((await ex.get('/metrics')).text);
  const secrets = [dc.users.alice.password, WRONG, dc.users.bob.password, 'scripted-Pw-77', 'hunter2', dc.oauth.tokenFor('alice')];
  const all = [...answers, ex.stderr()].join('\n');
  for (const s of secrets) assert.equal(all.includes(s), false, `a secret leaked: ${s.slice(0, 3)}…`);
  assert.match(ex.stderr(), /level=info msg="probe failed" module=wrong target=127\.0\.0\.1:\d+ .*code=AUTH_FAILED/);
});

// ---------------------------------------------------------------- config errors

/** The message loadConfig (what the exporter runs at start and reload) gives for `yaml`. */
async function configError(yaml) {
  const file = writeConfig(tmp, yaml, 'bad.yml');
  const e = await loadConfig(file).then(
    () => assert.fail(`accepted:\n${yaml}`),
    (err) => err,
  );
  assert.ok(e instanceof ConfigError, e.stack);
  return e.message.replace(`${file}: `, '');
}

test('config errors: a clear message and exit 1 at start', async () => {
  const allow = 'allow: ["127.0.0.1:995"]';
  // As a process: the message on stderr, exit 1, nothing on stdout.
  const file = writeConfig(tmp, `modules:\n  m:\n    user: alice\n    password: hunter2\n    ${allow}\n`, 'literal.yml');
  const r = await runExporter(['--config', file, '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    `pop3-exporter: configuration error: ${file}: modules.m.password: secrets never go in the config file; use password_env (an environment variable) or password_file\n`,
  );
  const missing = await runExporter(['--config', path.join(tmp, 'absent.yml')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /configuration error: .*absent\.yml: ENOENT/);

  assert.match(await configError(`modules:\n  m:\n    user: a\n    oauth_token: abc\n    ${allow}\n`), /^modules\.m\.oauth_token: secrets never go in the config file; use oauth_token_env, oauth_token_file or oauth_token_command$/);
  assert.match(
    await configError(`modules:\n  m:\n    user: a\n    password_env: HOME\n    send_via: smtp://mx:587\n    send_to: a@b\n    smtp_user: a\n    smtp_password: s\n    ${allow}\n`),
    /^modules\.m\.smtp_password: secrets never go in the config file; use smtp_password_env or smtp_password_file$/,
  );
  assert.equal(await configError('modules:\n  m:\n    tls: sometimes\n'), 'modules.m.tls: expected implicit, starttls or none, not sometimes');
  assert.match(await configError('modules:\n  m:\n    colour: blue\n'), /^modules\.m\.colour: unknown setting \(known: tls, user, /);
  assert.equal(await configError(`modules:\n  m:\n    user: a\n    password_env: NOT_SET_ANYWHERE\n    ${allow}\n`), 'modules.m: password_env NOT_SET_ANYWHERE: that variable is not set');
  assert.equal(await configError('modules:\n  m:\n    user: a\n    password_env: HOME\n'), 'modules.m: a module that logs in needs allow: [HOST:PORT, …], the servers its credentials may be sent to');
  assert.equal(await configError(`modules:\n  m:\n    user: a\n    ${allow}\n`), 'modules.m: logs in, so it needs password_env, password_file, passwords_file or an oauth_token_* source');
  assert.equal(await configError('modules:\n  m:\n    allow: ["pop.example.com"]\n'), 'modules.m.allow[0]: "pop.example.com" is not HOST:PORT[,PORT…]');
  assert.match(await configError('modules:\n  m:\n    timeout: soon\n'), /^modules\.m\.timeout: bad duration soon/);
  assert.match(await configError(`modules:\n  m:\n    user: a@example.org\n    password_env: HOME\n    send_via: http://mx\n    ${allow}\n`), /^modules\.m\.send_via: smtp:\/\/ \(STARTTLS\) or smtps:\/\/ \(implicit TLS\), not http:\/\//);
  assert.match(await configError(`modules:\n  m:\n    user: a@example.org\n    password_env: HOME\n    send_via: smtp://mx:587\n    delivery_timeout: 60s\n    timeout: 30s\n    ${allow}\n`), /^modules\.m\.delivery_timeout: must be shorter than timeout \(30 s\)/);
  assert.match(await configError('modules:\n  m: {}\n  m: {}\n'), /bad\.yml:3:3: Map keys must be unique$/);
  assert.match(await configError('modules: {}\n'), /modules: expected at least one module$/);
  assert.match(await configError('modules:\n  m: {}\nlisten: ":9150"\n'), /listen: unknown setting \(known: modules, per_server_concurrency\)$/);
});

test('--check-config: a good file is summarised, exit 0', async () => {
  const file = writeConfig(
    tmp,
    `per_server_concurrency: 3\nmodules:\n  pop3s:\n    user: monitor\n    password_env: HOME\n    allow: ["pop.example.com:995"]\n  banner:\n    tls: starttls\n`,
    'good.yml',
  );
  const r = await runExporter(['--config', file, '--check-config']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    `module pop3s: tls implicit, user monitor, timeout 10 s\nmodule banner: tls starttls, no login, timeout 10 s\n${file}: OK (2 modules, 3 probes at once per server)\n`,
  );
});
