// The package's browser entry in a real page, no bundler: the page served by
// ws-bridge imports it, connects through the bridge to Dovecot and lists the
// mailbox.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor } from '../fixtures/bridge.mjs';
import { launchChromium, screenshot } from '../fixtures/browser.mjs';

let dc;
let bridge;
let browser;

before(async () => {
  dc = await startDovecot();
  bridge = await startBridgeFor(dc, { serve: 'web' });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
  await dc?.stop();
});

test('the browser entry loads without a bundler and lists the mailbox through the bridge', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const a = dc.users.alice;
  await page.goto(`${bridge.httpUrl}/?host=${dc.host}&port=${dc.ports.pop3s}&tls=implicit&user=${a.name}`);
  await page.fill('#password', a.password);
  await page.click('button[type=submit]');
  await page.waitForSelector('#out table');
  const rows = await page.$$eval('#out table tr', (trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(rows, a.sizes.map((s, i) => [String(i + 1), a.uids[i], String(s)]));
  assert.match(await page.textContent('#out'), /TLSv1\.[23]/);
  await screenshot(page, 'browser-entry-list');
  assert.deepEqual(errors, []);
});

test('a wrong password shows AUTH_FAILED in the page', async () => {
  const page = await browser.newPage();
  await page.goto(`${bridge.httpUrl}/?host=${dc.host}&port=${dc.ports.pop3s}&tls=implicit&user=alice`);
  await page.fill('#password', 'wrong');
  await page.click('button[type=submit]');
  await page.waitForSelector('#out .error');
  assert.match(await page.textContent('#out .error'), /^AUTH_FAILED: /);
});
