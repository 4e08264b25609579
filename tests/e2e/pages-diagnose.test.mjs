// The checker's "Diagnose" in real Chromium against the test Dovecot,
// through the bridge serving the pages under its Content-Security-Policy
// (and end to end through a v2 bridge): the timeline, the certificate
// chain, the capability diff, the report copied (clipboard) and downloaded
// without the password, printing (print media: the timeline shown, the
// controls hidden; and a PDF), the playground's link, and the analyzer's
// module fetched only by a page that diagnoses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor } from '../fixtures/bridge.mjs';
import { startEndToEndBridge } from '../fixtures/e2e-bridge.mjs';
import { launchChromium, collectPageErrors, screenshot } from '../fixtures/browser.mjs';

let dc;
let bridge;
let e2e;
let browser;

before(async () => {
  dc = await startDovecot();
  [bridge, e2e, browser] = await Promise.all([startBridgeFor(dc, { serve: 'web' }), startEndToEndBridge(dc, { serve: 'web' }), launchChromium()]);
});

after(async () => {
  await browser?.close();
  await Promise.all([bridge?.stop(), e2e?.stop()]);
  await dc?.stop();
});

async function newPage(base = bridge.httpUrl) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = collectPageErrors(await context.newPage());
  page.requests = [];
  page.on('request', (r) => page.requests.push(r.url()));
  return page;
}

/** Opens the checker with `query`, fills the password, presses Diagnose; resolves when the report is shown. */
async function diagnoseOnPage(page, { base = bridge.httpUrl, query, password, e2eBox, keepForm }) {
  if (!keepForm) {
    await page.goto(`${base}/${query}`);
    await page.waitForSelector('#diagnose-btn:not([disabled])');
  }
  if (password !== undefined) await page.fill('#password', password);
  if (e2eBox) await page.check('#e2e');
  await page.click('#diagnose-btn');
  await page.waitForSelector('#diagnosis:not(.hidden) #timeline', { timeout: 30000 });
  return page.$$eval('#timeline li.step', (lis) => lis.map((li) => ({
    name: li.dataset.step,
    status: li.classList[1],
    ms: li.querySelector('.ms').textContent,
    detail: li.querySelector('.detail').textContent,
    hint: li.querySelector('.hint-text')?.textContent ?? null,
  })));
}

const q = (port, tls, user = 'alice') => `?host=${dc.host}&port=${port}&tls=${tls}&user=${user}`;

test('Diagnose through the bridge: the timeline, capabilities before/after STLS and login, the report copied and downloaded without the password', async () => {
  const page = await newPage();
  const a = dc.users.alice;
  const steps = await diagnoseOnPage(page, { query: q(dc.ports.pop3, 'starttls'), password: a.password });
  assert.deepEqual(steps.map((s) => `${s.name} ${s.status}`), [
    'connect pass', 'greeting pass', 'capa pass', 'stls pass', 'tls pass', 'capa-after-stls pass', 'auth pass', 'capa-after-login pass', 'stat pass', 'uidl pass',
  ]);
  assert.match(steps.find((s) => s.name === 'auth').ms, /^\d+(\.\d)? ms$/);
  assert.equal(steps.find((s) => s.name === 'tls').ms, '', 'the bridge does the handshake: no time of its own');
  assert.equal(await page.textContent('#diag-verdict'), 'Passed');
  assert.deepEqual(await page.$$eval('#capa-cols h4', (h) => h.map((x) => x.textContent)), ['Before STLS', 'After STLS', 'After login']);
  assert.deepEqual(await page.$$eval('#capa-diff ul.diff li', (l) => l.map((x) => x.textContent)).then((l) => l.slice(0, 1)), ['− STLS']);
  assert.match(await page.textContent('#chain-note'), /^The bridge reports the leaf certificate only/);
  assert.match(await page.textContent('#diag-server'), /Mailbox9 messages/);
  assert.match(await page.textContent('#diag-transcript'), /^S: \+OK Dovecot \(Debian\) ready\. <[^>]+>\nC: CAPA\nS: \+OK\n/);
  await screenshot(page, 'diagnose-checker-bridge');

  // Copy the report as Markdown (clipboard) and download it as JSON.
  await page.click('#copy-md');
  await page.waitForFunction(() => /copied/.test(document.querySelector('#diag-status').textContent));
  const md = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(md, new RegExp(`^# POP3 diagnosis: ${dc.host}:${dc.ports.pop3} \\(STLS\\)\\n`));
  assert.match(md, /\| auth \| ✅ pass \| \d+(\.\d)? ms \| logged in as alice with SCRAM-SHA-256 \|/);
  assert.match(md, /## Transcript \(passwords and tokens redacted\)/);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-json')]);
  assert.match(download.suggestedFilename(), /^pop3-diagnosis-127\.0\.0\.1-\d+-.*\.json$/);
  const json = fs.readFileSync(await download.path(), 'utf8');
  const report = JSON.parse(json);
  assert.equal(report.ok, true);
  assert.equal(report.steps.length, 10);
  for (const text of [md, json]) {
    assert.ok(!text.includes(a.password), 'the password is not in the report');
    assert.ok(!text.includes(Buffer.from(a.password).toString('base64')));
  }
  assert.deepEqual(page.errors, [], 'no error and nothing the CSP blocked');
});

test('a wrong password (USER/PASS): auth fails with the server\'s words and a hint; the JSON copied has neither the password nor its base64', async () => {
  const page = await newPage();
  const wrong = 'Wr0ng-but-on-the-wire';
  await page.goto(`${bridge.httpUrl}/${q(dc.ports.pop3, 'starttls')}`);
  await page.waitForSelector('#diagnose-btn:not([disabled])');
  await page.selectOption('#mechanism', 'USER');
  const steps = await diagnoseOnPage(page, { query: q(dc.ports.pop3, 'starttls'), password: wrong, keepForm: true });
  assert.deepEqual(steps.slice(6).map((s) => `${s.name} ${s.status}`), ['auth fail', 'capa-after-login skip', 'stat skip', 'uidl skip']);
  const auth = steps.find((s) => s.name === 'auth');
  assert.equal(auth.detail, '-ERR [AUTH] Authentication failed.');
  assert.match(auth.hint, /^What to do: .*the password is wrong, the user does not exist, or the account is locked/);
  assert.equal(await page.textContent('#diag-verdict'), 'Failed at auth');
  // USER/PASS puts the password on the wire: the transcript shows it redacted.
  const transcript = await page.textContent('#diag-transcript');
  assert.match(transcript, /\nC: USER alice\nS: \+OK\nC: PASS \[redacted\]\nS: -ERR \[AUTH\] Authentication failed\.$/);

  await page.click('#copy-json');
  await page.waitForFunction(() => /JSON\) copied/.test(document.querySelector('#diag-status').textContent));
  const json = await page.evaluate(() => navigator.clipboard.readText());
  const report = JSON.parse(json);
  assert.equal(report.ok, false);
  assert.equal(report.error.code, 'AUTH_FAILED');
  assert.ok(report.transcript.some((l) => l.dir === 'C' && l.line === 'PASS [redacted]'));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-md')]);
  assert.match(download.suggestedFilename(), /^pop3-diagnosis-127\.0\.0\.1-\d+-.*\.md$/);
  const md = fs.readFileSync(await download.path(), 'utf8');
  assert.match(md, /\| auth \| ❌ fail \| [^|]* \| -ERR \[AUTH\] Authentication failed\. \|/);
  assert.match(md, /- \*\*auth\*\*: .*the password is wrong/);
  for (const text of [md, json, await page.content()]) {
    assert.ok(!text.includes(wrong), 'the password is not in the report nor on the page');
    assert.ok(!text.includes(Buffer.from(wrong).toString('base64')));
  }
  assert.deepEqual(page.errors, []);
});

test('a failing step shows its hint; printing shows the timeline and hides the controls', async () => {
  const page = await newPage();
  // Implicit TLS on the plain port: the bridge's handshake breaks, a probe in plain text finds POP3.
  const steps = await diagnoseOnPage(page, { query: q(dc.ports.pop3, 'implicit'), password: 'not-the-password' });
  assert.deepEqual(steps.slice(0, 3).map((s) => `${s.name} ${s.status}`), ['connect pass', 'tls fail', 'greeting skip']);
  assert.match(steps[1].hint, new RegExp(`^What to do: Port ${dc.ports.pop3} speaks plain POP3: a second connection without TLS got its greeting`));
  assert.match(await page.textContent('#diag-verdict'), /^Failed at tls$/);
  await page.emulateMedia({ media: 'print' });
  const shown = await page.evaluate(() => {
    const visible = (sel) => {
      const e = document.querySelector(sel);
      return !!e && getComputedStyle(e).display !== 'none' && e.getBoundingClientRect().height > 0;
    };
    return {
      timeline: visible('#timeline'),
      failHint: visible('#timeline li.fail .hint-text'),
      form: visible('form.connect'),
      diagnoseButton: visible('#diagnose-btn'),
      copyButton: visible('#copy-md'),
      nav: visible('header.top nav'),
    };
  });
  assert.deepEqual(shown, { timeline: true, failHint: true, form: false, diagnoseButton: false, copyButton: false, nav: false });
  const pdf = await page.pdf({ format: 'A4' });
  assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');
  assert.ok(pdf.length > 10_000, `${pdf.length} bytes`);
  await page.emulateMedia({ media: 'screen' });
  await screenshot(page, 'diagnose-checker-failed');
  assert.deepEqual(page.errors, []);
});

test('end to end: the chain as the server sent it on the page, the analyzer module loaded only when diagnosing', async () => {
  const page = await newPage(e2e.httpUrl);
  await page.goto(`${e2e.httpUrl}/${q(dc.ports.pop3s, 'implicit')}`);
  await page.waitForSelector('#diagnose-btn:not([disabled])');
  assert.ok(!page.requests.some((u) => /pop3_wasm_diag/.test(u)), 'not fetched before Diagnose');
  const steps = await diagnoseOnPage(page, { base: e2e.httpUrl, query: q(dc.ports.pop3s, 'implicit'), password: dc.users.alice.password, e2eBox: true });
  // No CA given: the test CA is not trusted, and the page says what the server sent.
  assert.deepEqual(steps.slice(0, 2).map((s) => `${s.name} ${s.status}`), ['connect pass', 'tls fail']);
  assert.match(steps[1].detail, /^certificate not trusted \(unknown issuer: O=pop3-wasm tests, CN=pop3-wasm test CA\)$/);
  assert.match(steps[1].hint, /trust it with the `ca` option/);
  const chain = await page.$$eval('#diag-chain li.cert', (lis) => lis.map((li) => li.textContent));
  assert.equal(chain.length, 1);
  assert.match(chain[0], /1\. O=pop3-wasm tests, CN=localhost/);
  assert.match(chain[0], /Nameslocalhost, 127\.0\.0\.1/);
  assert.match(chain[0], /SHA-256([0-9A-F]{2}:){31}[0-9A-F]{2}/);
  assert.ok(page.requests.some((u) => /pop3_wasm_diag_bg\.wasm$/.test(u)));
  await screenshot(page, 'diagnose-checker-end-to-end');
  assert.deepEqual(page.errors, []);
});

test('the playground links to the diagnosis with its settings, never the password', async () => {
  const page = await newPage();
  await page.goto(`${bridge.httpUrl}/playground.html${q(dc.ports.pop3s, 'implicit', 'bob')}`);
  await page.waitForSelector('#connect-btn:not([disabled])');
  await page.fill('#password', 'bob-typed-this');
  await page.click('#to-diagnose');
  await page.waitForURL(/#diagnose$/);
  const url = new URL(page.url());
  assert.equal(url.pathname, '/');
  assert.equal(url.searchParams.get('host'), dc.host);
  assert.equal(url.searchParams.get('port'), String(dc.ports.pop3s));
  assert.equal(url.searchParams.get('user'), 'bob');
  assert.ok(!page.url().includes('bob-typed-this'));
  await page.waitForSelector('#diagnose-btn:not([disabled])');
  assert.equal(await page.inputValue('#user'), 'bob');
  assert.match(await page.textContent('#diag-status'), /press Diagnose/);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'diagnose-btn');
  assert.deepEqual(page.errors, []);
});
