// What a refused login says, everywhere a user meets it. One mapping (the
// core's; README, "Errors"): a -ERR to USER, PASS, APOP or AUTH is
// AUTH_FAILED unless its response code says the credentials were not the
// problem: [IN-USE], [LOGIN-DELAY], [SYS/TEMP], [SYS/PERM] are SERVER_ERROR
// with respCode set. The checker page, pop3-check and pop3 shell each
// explain every code in their own place.
//
// Dovecot says [IN-USE] (pop3_lock_session, a second session for bob) and
// [SYS/TEMP] (a passdb that fails internally for the user `tempfail`) and
// [AUTH]; scripted servers say each of the five, LOGIN-DELAY and SYS/PERM
// included, which Dovecot never sends on a login.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Pop3Client, Pop3Error } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridge, REPO_ROOT } from '../fixtures/bridge.mjs';
import { startScripted, preamble } from '../fixtures/scripted.mjs';
import { launchChromium, checkerConnect } from '../fixtures/browser.mjs';
import { runCleanups } from '../fixtures/cleanup.mjs';

const CLI = path.join(REPO_ROOT, 'pop3-wasm', 'js', 'cli');

/** Each code, as a server sends it, and what the user must be told. */
const CODES = {
  'IN-USE': { code: 'SERVER_ERROR', text: 'Mailbox is locked by another session', title: 'Mailbox in use', says: /another session has this mailbox open/i },
  'LOGIN-DELAY': { code: 'SERVER_ERROR', text: 'Minimum interval between logins is 900 seconds', title: 'Logging in too often', says: /limits how often this mailbox may log in/ },
  'SYS/TEMP': { code: 'SERVER_ERROR', text: 'Temporary authentication failure', title: 'Temporary problem on the server', says: /should pass \(SYS\/TEMP\): try again later/ },
  'SYS/PERM': { code: 'SERVER_ERROR', text: 'Mailbox index is corrupted', title: 'Problem on the server', says: /will not pass by itself \(SYS\/PERM\)/ },
  AUTH: { code: 'AUTH_FAILED', text: 'Authentication failed.', title: 'Wrong user name or password', says: /refused the credentials \(AUTH\)/ },
};

let dc;
let browser;
const servers = {}; // respCode → { srv, bridge }
const cleanups = [];

before(async () => {
  dc = await startDovecot({
    extraConfig: `pop3_lock_session = yes
# The user "tempfail" gets an internal failure: its passwd-file path is not a file.
passdb {
  driver = passwd-file
  args = /dev/null/%u
  username_filter = tempfail
}
`,
  });
  browser = await launchChromium();
  for (const [respCode, { text }] of Object.entries(CODES)) {
    // A server that refuses PASS with the code, for every connection.
    const srv = await startScripted(async (c) => {
      await preamble(c, { capa: ['USER'] });
      assert.equal(await c.line(), 'USER u');
      await c.send('+OK\r\n');
      assert.equal(await c.line(), 'PASS p');
      await c.send(`-ERR [${respCode}] ${text}\r\n`);
      for (;;) {
        const l = await c.line();
        if (l === null) return;
        assert.equal(l, 'CAPA', 'nothing but CAPA after the refusal');
        await c.send('+OK\r\nUSER\r\n.\r\n');
      }
    });
    const bridge = await startBridge({ allow: [`127.0.0.1:${srv.port}`], serve: 'web' });
    servers[respCode] = { srv, bridge };
    cleanups.push(() => bridge.stop(), () => srv.stop());
  }
  const dcBridge = await startBridge({ allow: [`${dc.host}:${dc.ports.pop3s}`], caFiles: [dc.caFile], serve: 'web' });
  servers.dovecot = { bridge: dcBridge };
  cleanups.push(() => dcBridge.stop());
});

after(async () => {
  try {
    await runCleanups(cleanups);
  } finally {
    await browser?.close();
    await dc?.stop();
  }
});

/** Runs one of the CLIs; resolves { code, stdout, stderr }. */
function cli(bin, args, { env = {}, input = '' } = {}) {
  return new Promise((resolve, reject) => {
    const base = { ...process.env };
    delete base.POP3_PASSWORD;
    const child = spawn(process.execPath, [path.join(CLI, bin), ...args], { env: { ...base, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** A refused login, through the bridge: the Pop3Error. */
async function refused(opts, user, password) {
  const c = await Pop3Client.connect({ timeoutMs: 30000, ...opts });
  const e = await c.login(user, password).then(() => assert.fail('logged in'), (e) => e);
  c.close();
  assert.ok(e instanceof Pop3Error, String(e?.stack ?? e));
  return e;
}

/** The checker page's error box for a refused login: { title, text }. */
async function checkerSays(bridge, { host, port, tls, user, password, insecure }) {
  const page = await browser.newPage();
  try {
    // The page is served by the bridge it talks to (the form's default).
    await checkerConnect(page, bridge.httpUrl, { host, port, tls, user, password, insecure });
    assert.ok(await page.$('#error .error'), 'no error shown');
    return { title: await page.textContent('#error .error strong'), text: await page.textContent('#error .error') };
  } finally {
    await page.close();
  }
}

for (const [respCode, want] of Object.entries(CODES)) {
  test(`-ERR [${respCode}] to PASS: ${want.code} with respCode, explained by the client's users`, async () => {
    const { srv, bridge } = servers[respCode];
    const target = { bridge: bridge.url, host: '127.0.0.1', port: srv.port, tls: 'none', allowInsecureAuth: true };
    const e = await refused(target, 'u', 'p');
    assert.equal(e.code, want.code, e.message);
    assert.equal(e.respCode, respCode);
    assert.equal(e.serverText, want.text);

    // pop3-check: the status line names the code, the next line says what it means.
    const url = `pop3://u@127.0.0.1:${srv.port}?tls=none`;
    const r = await cli('pop3-check.js', [url, '--insecure-auth'], { env: { POP3_PASSWORD: 'p' } });
    const [line, explanation] = r.stdout.split('\n');
    const prefix = want.code === 'AUTH_FAILED' ? 'login failed: ' : '';
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(line.split(' | ')[0], `POP3 CRITICAL - ${prefix}${want.title} [${respCode}]: ${want.text} (${want.code})`);
    assert.match(explanation, want.says);
    const j = JSON.parse((await cli('pop3-check.js', [url, '--insecure-auth', '--json'], { env: { POP3_PASSWORD: 'p' } })).stdout);
    assert.deepEqual([j.error.code, j.error.respCode, j.error.serverText], [want.code, respCode, want.text]);
    assert.match(j.error.explanation, want.says);

    // pop3 shell: the server's -ERR as it came, then what the code means.
    const sh = await cli('pop3.js', ['shell', url, '--insecure-auth'], { input: 'USER u\nPASS p\n.quit\n' });
    assert.equal(sh.code, 0, sh.stdout + sh.stderr);
    assert.match(sh.stdout, new RegExp(`^S: -ERR \\[${respCode}\\] ${want.text.replace(/\./g, '\\.')}\\n\\* ${want.title} \\(${respCode}\\): `, 'm'));
    assert.match(sh.stdout, want.says);

    // The checker page.
    const page = await checkerSays(bridge, { host: '127.0.0.1', port: srv.port, tls: 'none', user: 'u', password: 'p', insecure: true });
    assert.equal(page.title, want.title);
    assert.match(page.text, want.says);
    assert.match(page.text, new RegExp(want.code));
  });
}

test('Dovecot: a second session for bob is [IN-USE] (pop3_lock_session), a failing passdb [SYS/TEMP], a wrong password [AUTH]', async () => {
  const { bridge } = servers.dovecot;
  const bob = dc.users.bob;
  const target = { bridge: bridge.url, host: dc.host, port: dc.ports.pop3s, tls: 'implicit' };
  const holder = await Pop3Client.connect(target);
  await holder.login(bob.name, bob.password);
  try {
    // Dovecot waits up to 10 s for the session lock before it says IN-USE:
    // the three ask at once.
    const direct = [`pop3s://bob@127.0.0.1:${dc.ports.pop3s}`, '--ca-file', dc.caFile, '-t', '30s'];
    const [e, r, page] = await Promise.all([
      refused(target, bob.name, bob.password),
      cli('pop3-check.js', direct, { env: { POP3_PASSWORD: bob.password } }),
      checkerSays(bridge, { host: dc.host, port: dc.ports.pop3s, tls: 'implicit', user: 'bob', password: bob.password }),
    ]);
    assert.deepEqual([e.code, e.respCode, e.serverText], ['SERVER_ERROR', 'IN-USE', 'Mailbox is locked by another POP3 session.']);
    assert.match(r.stdout, /^POP3 CRITICAL - Mailbox in use \[IN-USE\]: Mailbox is locked by another POP3 session\. \(SERVER_ERROR\)( \|.*)?\n.*another session has this mailbox open/im);
    assert.equal(page.title, 'Mailbox in use');
  } finally {
    holder.close();
  }

  const t = await refused(target, 'tempfail', 'any');
  assert.deepEqual([t.code, t.respCode], ['SERVER_ERROR', 'SYS/TEMP']);
  assert.match(t.serverText, /^Temporary authentication failure\./);
  const page = await checkerSays(bridge, { host: dc.host, port: dc.ports.pop3s, tls: 'implicit', user: 'tempfail', password: 'any' });
  assert.equal(page.title, 'Temporary problem on the server');

  const a = await refused(target, 'alice', 'not-her-password');
  assert.deepEqual([a.code, a.respCode, a.serverText], ['AUTH_FAILED', 'AUTH', 'Authentication failed.']);
});
