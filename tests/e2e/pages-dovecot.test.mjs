// The mailbox checker and the playground in real Chromium against the test
// Dovecot, through the bridge serving the pages (no demo.json there: the
// form starts empty and is filled in by hand or by query parameters).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor } from '../fixtures/bridge.mjs';
import { launchChromium, collectPageErrors, screenshot, checkerConnect, checkerRows, checkerOpen, playgroundSeedDialogue } from '../fixtures/browser.mjs';

let dc;
let bridge;
let browser;

before(async () => {
  dc = await startDovecot();
  [bridge, browser] = await Promise.all([startBridgeFor(dc, { serve: 'web' }), launchChromium()]);
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
  await dc?.stop();
});

async function newPage() {
  return collectPageErrors(await browser.newPage({ viewport: { width: 1200, height: 900 } }));
}

const as = (name) => ({ host: dc.host, port: dc.ports.pop3s, tls: 'implicit', user: name, password: dc.users[name].password });

test('checker: the list fills from Dovecot (ids, UIDs, subjects) and a message opens with subject and body', async () => {
  const page = await newPage();
  const a = dc.users.alice;
  await checkerConnect(page, bridge.httpUrl, { ...as('alice') });
  assert.equal(await page.inputValue('#password'), a.password);
  const rows = await checkerRows(page);
  assert.deepEqual(rows.map((r) => [r.id, r.uid]), a.uids.map((u, i) => [i + 1, u]));
  assert.equal(rows[0].subject, a.messages[0].headers.subject);
  assert.match(await page.textContent('#tls-facts'), /TLSv1\.[23][\s\S]*Expires/);
  assert.match(await page.textContent('#server-facts'), /Dovecot/);
  await screenshot(page, 'dovecot-checker-list');
  const m = await checkerOpen(page, 1);
  assert.equal(m.subject, 'A plain short message');
  assert.match(m.body, /this is a plain short message/);
  const multi = await checkerOpen(page, 6);
  assert.ok(multi.body.length > 0);
  assert.ok((await page.$$('#pane-message ul.attachments li')).length >= 1, 'the multipart message lists its attachment');
  await screenshot(page, 'dovecot-checker-message');
  assert.deepEqual(page.errors, []);
  await page.click('#keep');
});

test('checker: query parameters fill the form; a wrong password shows the wrong-password message', async () => {
  const page = await newPage();
  await checkerConnect(page, bridge.httpUrl, { password: 'wrong', query: `?host=${dc.host}&port=${dc.ports.pop3s}&tls=implicit&user=alice` });
  assert.equal(await page.textContent('#error .error strong'), 'Wrong user name or password');
  assert.match(await page.textContent('#error'), /AUTH_FAILED/);
  await screenshot(page, 'dovecot-checker-wrong-password');
});

test('checker: mark and disconnect keeps the message; mark and quit deletes it (bob, over STLS)', async () => {
  const page = await newPage();
  const bob = { ...as('bob'), port: dc.ports.pop3, tls: 'starttls' };
  await checkerConnect(page, bridge.httpUrl, bob);
  const before = await checkerRows(page);
  assert.equal(before.length, 3);
  await page.check('#messages tr[data-id="1"] td.mark input');
  await page.click('#keep');
  await checkerConnect(page, bridge.httpUrl, bob);
  assert.deepEqual(await checkerRows(page), before);
  await page.check('#messages tr[data-id="1"] td.mark input');
  await page.click('#commit');
  await page.waitForFunction(() => /Deleted 1 message/.test(document.querySelector('#status').textContent));
  await checkerConnect(page, bridge.httpUrl, bob);
  const after = await checkerRows(page);
  assert.deepEqual(after.map((r) => r.uid), before.slice(1).map((r) => r.uid));
  assert.deepEqual(page.errors, []);
  await page.click('#keep');
});

test('playground: the transcript shows the dialogue with PASS redacted', async () => {
  const page = await newPage();
  const a = dc.users.alice;
  await page.goto(`${bridge.httpUrl}/playground.html?host=${dc.host}&port=${dc.ports.pop3s}&tls=implicit&user=alice`);
  await page.fill('#password', a.password);
  await page.click('#connect-btn');
  // Connected (the command line opens) or refused (the page says why).
  await page.waitForSelector('#line:not([disabled]), #error :is(p, div)');
  assert.equal(await page.$('#line[disabled]'), null, `not connected: ${await page.textContent('#error')}`);
  for (const line of ['USER alice', `PASS ${a.password}`, 'STAT', 'UIDL', 'QUIT']) {
    await page.fill('#line', line);
    await page.press('#line', 'Enter');
    await page.waitForFunction(() => !document.querySelector('#line').value);
    await page.waitForFunction(() => !document.querySelector('#send').disabled || document.querySelector('#line').disabled);
  }
  await page.waitForFunction(() => /connection closed/.test(document.querySelector('#console').textContent));
  const text = await page.$$eval('#console > div', (d) => d.map((x) => x.textContent));
  assert.ok(text.includes('C: USER alice'));
  assert.ok(text.includes('C: PASS [redacted]'));
  assert.ok(!text.some((l) => l.includes(a.password)));
  assert.ok(text.includes(`S: +OK ${a.count} ${a.size}`));
  assert.ok(text.includes(`S: 1 ${a.uids[0]}`));
  assert.ok(text.some((l) => /^S: \+OK Logging out/.test(l)));
  await screenshot(page, 'dovecot-playground');
  assert.deepEqual(page.errors, []);
});

test('the pages come with the security headers the bridge sends (the tests above ran under them)', async () => {
  for (const p of ['/', '/playground.html', '/app/checker.js', '/pop3-wasm/pkg/pop3_wasm_bg.wasm']) {
    const r = await fetch(`${bridge.httpUrl}${p}`);
    assert.equal(r.status, 200, p);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', p);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/, p);
    assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${bridge.port} wss://127\\.0\\.0\\.1:${bridge.port};`), p);
    assert.match(csp, /frame-ancestors 'none'/, p);
  }
});

test('playground: the seed dialogue typed line by line over STLS by hand, byte for byte as Dovecot answers', async () => {
  const page = await newPage();
  const a = dc.users.alice;
  const { steps, text } = await playgroundSeedDialogue(page, bridge.httpUrl, {
    query: `?host=${dc.host}&port=${dc.ports.pop3}&user=alice`,
    user: 'alice',
    password: a.password,
  });
  const commands = text.filter((l) => l.startsWith('C: ')).map((l) => l.slice(3));
  assert.deepEqual(commands, ['CAPA', 'STLS', 'CAPA', 'USER alice', 'PASS [redacted]', 'CAPA', 'STAT', 'LIST', 'TOP 1 0', 'RETR 1', 'DELE 1', 'RSET', 'QUIT']);
  assert.deepEqual(steps.STLS.slice(0, 2), ['C: STLS', 'S: +OK Begin TLS negotiation now.']);
  assert.match(steps.STLS.at(-2), /^-- TLS: TLSv1\.[23], \S+, certificate (.*, )?CN=localhost$/);
  assert.equal(steps.STLS.at(-1), '-- TLS ends: At the bridge: it decrypts the session and could read everything, the password included.');
  assert.deepEqual(steps['USER alice'], ['C: USER alice', 'S: +OK']);
  assert.deepEqual(steps['PASS [redacted]'].slice(0, 2), ['C: PASS [redacted]', 'S: +OK Logged in.']);
  assert.deepEqual(steps.STAT, ['C: STAT', `S: +OK ${a.count} ${a.size}`]);
  assert.deepEqual(steps.LIST, ['C: LIST', `S: +OK ${a.count} messages:`, ...a.sizes.map((n, i) => `S: ${i + 1} ${n}`), 'S: .']);
  // The data lines as on the wire (dot-stuffed), CRLF removed.
  const wire = (buf) => buf.toString('latin1').split('\r\n').slice(0, -1).map((l) => `S: ${l.startsWith('.') ? `.${l}` : l}`);
  assert.deepEqual(steps['TOP 1 0'], ['C: TOP 1 0', 'S: +OK', ...wire(dc.expectedTop('alice', 1, 0)), 'S: .']);
  assert.deepEqual(steps['RETR 1'], ['C: RETR 1', `S: +OK ${a.sizes[0]} octets`, ...wire(dc.expected('alice', 1)), 'S: .']);
  assert.deepEqual(steps['DELE 1'], ['C: DELE 1', 'S: +OK Marked to be deleted.']);
  assert.deepEqual(steps.RSET, ['C: RSET', 'S: +OK']);
  assert.deepEqual(steps.QUIT.slice(0, 2), ['C: QUIT', 'S: +OK Logging out.']);
  assert.ok(!text.some((l) => l.includes(a.password)));
  assert.deepEqual(page.errors, []);
  await screenshot(page, 'dovecot-playground-stls-by-hand');
});
