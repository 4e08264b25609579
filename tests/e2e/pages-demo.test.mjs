// The mailbox checker and the playground in real Chromium against
// `ws-bridge demo`: zero set-up, the demo's settings filled in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDemo } from '../fixtures/demo.mjs';
import { launchChromium, collectPageErrors, screenshot, checkerConnect, checkerRows, checkerOpen, overflowsHorizontally, playgroundSeedDialogue, playgroundType } from '../fixtures/browser.mjs';

let demo;
let browser;

before(async () => {
  [demo, browser] = await Promise.all([startDemo(), launchChromium()]);
});

after(async () => {
  await browser?.close();
  await demo?.stop();
});

async function newPage(viewport = { width: 1200, height: 900 }) {
  const page = collectPageErrors(await browser.newPage({ viewport }));
  page.dialogs = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss();
  });
  return page;
}

test('checker: the demo settings are filled in, the list fills, a message opens with subject and body', async () => {
  const page = await newPage();
  await checkerConnect(page, demo.httpUrl);   // nothing typed: the demo filled the form
  assert.match(await page.textContent('#demo-banner'), /Demo mailbox/);
  const rows = await checkerRows(page);
  assert.equal(rows.length, 15);
  assert.deepEqual(rows.map((r) => r.id), Array.from({ length: 15 }, (_, i) => i + 1));
  assert.equal(rows[0].subject, 'Welcome to the pop3-wasm demo mailbox');
  assert.equal(rows[0].from, 'Postmaster');
  assert.ok(rows.some((r) => r.subject === 'Grüße aus München – Wartungsfenster am Sonntag' && r.from === 'Jürgen Müller'));
  assert.ok(rows.some((r) => r.subject === 'Réunion au café à 10h' && r.from === 'François Léger'));
  assert.match(await page.textContent('#status'), /Logged in with SCRAM-SHA-256\. 15 messages/);
  assert.match(await page.textContent('#tls-facts'), /TLSv1\.3[\s\S]*CN=localhost[\s\S]*ws-bridge demo CA[\s\S]*\d+ days left/);
  assert.match(await page.textContent('#caps'), /SASL PLAIN SCRAM-SHA-256/);
  await screenshot(page, 'demo-checker-list');

  const msg = await checkerOpen(page, 1);
  assert.equal(msg.subject, 'Welcome to the pop3-wasm demo mailbox');
  assert.match(msg.body, /this mailbox lives in the memory of `ws-bridge demo`/);
  await page.click('#tab-source');
  assert.match(await page.textContent('#message-source'), /^Return-Path: <postmaster@demo\.example>\r?\n/);
  await screenshot(page, 'demo-checker-message');

  // Sorting: by size, largest first.
  await page.click('th[data-key=size] button');
  assert.equal((await checkerRows(page))[0].subject, 'Mail log export for yesterday (1.5 MB attachment)');
  assert.equal(await page.getAttribute('th[data-key=size]', 'aria-sort'), 'descending');
  assert.deepEqual(page.errors, []);
  await page.click('#keep');
});

test('checker: HTML is shown as text and never runs; attachments are listed; the 1.5 MB message opens', async () => {
  const page = await newPage();
  await checkerConnect(page, demo.httpUrl);
  const rows = await checkerRows(page);
  const phish = rows.find((r) => r.subject === 'Action required: confirm your mailbox');
  const m = await checkerOpen(page, phish.id);
  assert.match(m.body, /phishing drill/);
  assert.doesNotMatch(m.body, /<script|onload=|onerror=/);
  assert.match(await page.textContent('#pane-message'), /HTML-only message, shown as plain text/);
  assert.equal(await page.title(), 'Mailbox check — pop3-wasm');
  assert.equal(await page.evaluate(() => document.querySelectorAll('#viewer img, #viewer script, #viewer iframe').length), 0);
  assert.ok(await page.$('#connect'), 'the page was not rewritten by the message');
  assert.deepEqual(page.dialogs, []);
  await screenshot(page, 'demo-checker-html-as-text');

  const report = rows.find((r) => r.subject.startsWith('Weekly mailbox usage report'));
  await checkerOpen(page, report.id);
  const files = await page.$$eval('#pane-message ul.attachments li', (lis) => lis.map((li) => li.textContent));
  assert.equal(files.length, 2);
  assert.match(files[0], /^usage\.csv — text\/csv/);
  assert.match(files[1], /^chart\.png — image\/png/);

  const big = rows.find((r) => r.size === '1.4 MB');
  const b = await checkerOpen(page, big.id);
  assert.match(b.body, /attached as maillog\.txt/);
  assert.match(await page.textContent('#pane-message ul.attachments'), /maillog\.txt — text\/plain, 1\.\d MB/);
  assert.deepEqual(page.errors, []);
  await page.click('#keep');
});

test('checker: mark one and disconnect keeps it; mark one and quit deletes it for good', async () => {
  const page = await newPage();
  await checkerConnect(page, demo.httpUrl);
  const before = await checkerRows(page);
  const victim = before.find((r) => r.subject === 'Undelivered Mail Returned to Sender');
  await page.check(`#messages tr[data-id="${victim.id}"] td.mark input`);
  assert.match(await page.textContent('#mark-summary'), /1 message marked for deletion/);
  await page.click('#keep');
  assert.match(await page.textContent('#status'), /without QUIT: the server deleted nothing/);

  await checkerConnect(page, demo.httpUrl);
  assert.deepEqual((await checkerRows(page)).map((r) => r.uid), before.map((r) => r.uid));
  await page.check(`#messages tr[data-id="${victim.id}"] td.mark input`);
  assert.equal(await page.textContent('#commit'), 'Quit and delete 1 marked');
  await screenshot(page, 'demo-checker-marked');
  await page.click('#commit');
  await page.waitForFunction(() => /Deleted 1 message/.test(document.querySelector('#status').textContent));

  await checkerConnect(page, demo.httpUrl);
  const after = await checkerRows(page);
  assert.equal(after.length, before.length - 1);
  assert.ok(!after.some((r) => r.uid === victim.uid));
  assert.ok(!after.some((r) => r.subject === victim.subject));
  assert.deepEqual(page.errors, []);
  await page.click('#keep');
});

test('checker: a wrong password and a refused target read as a postmaster would say them', async () => {
  const page = await newPage();
  await checkerConnect(page, demo.httpUrl, { password: 'not-the-password' });
  assert.match(await page.textContent('#error .error strong'), /^Wrong user name or password$/);
  assert.match(await page.textContent('#error'), /Authentication failed[\s\S]*AUTH_FAILED/);
  assert.doesNotMatch(await page.textContent('#error'), /at .*\.js|wasm-function/);
  await screenshot(page, 'demo-checker-wrong-password');

  await checkerConnect(page, demo.httpUrl, { port: 25 });
  assert.match(await page.textContent('#error .error strong'), /^The bridge refused this server$/);
  await checkerConnect(page, demo.httpUrl, { bridge: undefined, query: '?bridge=ws://127.0.0.1:9/pop3' });
  assert.match(await page.textContent('#error .error strong'), /^Cannot reach the bridge$/);
});

test('playground: typed commands and buttons show the dialogue, PASS redacted, multi-line answers whole', async () => {
  const page = await newPage();
  await page.goto(`${demo.httpUrl}/playground.html`);
  await page.waitForFunction(() => document.querySelector('#host').value !== '');
  await page.click('#connect-btn');
  await page.waitForSelector('#line:not([disabled])');
  const send = async (line) => {
    const before = await page.$$eval('#console > div', (d) => d.length);
    await page.fill('#line', line);
    await page.press('#line', 'Enter');
    await page.waitForFunction((n) => document.querySelectorAll('#console > div').length > n && !document.querySelector('#line').value, before);
    await page.waitForFunction(() => !document.querySelector('#send').disabled || document.querySelector('#line').disabled);
  };
  // The USER and PASS buttons fill the line from the form.
  await page.click('#commands button:text-is("USER")');
  assert.equal(await page.inputValue('#line'), 'USER demo');
  await page.press('#line', 'Enter');
  await page.click('#commands button:text-is("PASS")');
  await page.press('#line', 'Enter');
  await page.waitForFunction(() => /Mailbox open/.test(document.querySelector('#console').textContent));
  await send('LIST');
  await send('TOP 1 0');
  await send('RETR 99');
  await send('QUIT');
  await page.waitForFunction(() => /connection closed/.test(document.querySelector('#console').textContent));
  const text = await page.$$eval('#console > div', (d) => d.map((x) => x.textContent));
  const at = (s) => text.indexOf(s);
  assert.match(text.find((l) => l.startsWith('S: +OK POP3')), /ws-bridge-demo server ready/);
  assert.ok(at('C: USER demo') >= 0 && at('S: +OK User name accepted, password please') === at('C: USER demo') + 1);
  assert.ok(at('C: PASS [redacted]') > at('C: USER demo'));
  // (an earlier test deleted one message for good: the count is 14 or 15)
  const [, count] = /^S: \+OK Mailbox open, (\d+) messages$/.exec(text[at('C: PASS [redacted]') + 1]).map(Number);
  assert.ok(!text.some((l) => /PASS demo/.test(l)));
  const list = at('C: LIST');
  assert.match(text[list + 1], new RegExp(`^S: \\+OK ${count} messages`));
  assert.deepEqual(text.slice(list + 2, list + 3 + count).map((l) => l.replace(/ \d+$/, '')), [...Array.from({ length: count }, (_, i) => `S: ${i + 1}`), 'S: .']);
  assert.ok(text.includes('S: Subject: Welcome to the pop3-wasm demo mailbox'));
  assert.ok(text.includes('S: -ERR No such message'));
  assert.match(text[at('C: QUIT') + 1], /^S: \+OK POP3 server signing off/);
  assert.equal(await page.$$eval('#commands button', (b) => b.length), 15);
  await screenshot(page, 'demo-playground');
  assert.deepEqual(page.errors, []);
});

test('playground: the seed dialogue typed line by line over STLS by hand (STLS … QUIT), TLS from STLS on', async () => {
  const page = await newPage();
  const { steps, text } = await playgroundSeedDialogue(page, demo.httpUrl, { user: 'demo', password: 'demo' });
  const commands = text.filter((l) => l.startsWith('C: ')).map((l) => l.slice(3));
  // The client's own CAPA at connect, after STLS and after login; STLS once.
  assert.deepEqual(commands, ['CAPA', 'STLS', 'CAPA', 'USER demo', 'PASS [redacted]', 'CAPA', 'STAT', 'LIST', 'TOP 1 0', 'RETR 1', 'DELE 1', 'RSET', 'QUIT']);
  assert.ok(text.includes('-- plain text so far: type STLS to start TLS before you log in'), text.join('\n'));
  assert.deepEqual(steps.STLS.slice(0, 2), ['C: STLS', 'S: +OK Begin TLS negotiation']);
  assert.match(steps.STLS.at(-2), /^-- TLS: TLSv1\.3, \S+, certificate CN=localhost\b/);
  assert.equal(steps.STLS.at(-1), '-- TLS ends: At the bridge: it decrypts the session and could read everything, the password included.');
  assert.ok(!steps.STLS.slice(2).some((l) => l === 'S: STLS'), 'STLS is not offered again under TLS');
  assert.deepEqual(steps['USER demo'], ['C: USER demo', 'S: +OK User name accepted, password please']);
  const [, count] = /^S: \+OK Mailbox open, (\d+) messages$/.exec(steps['PASS [redacted]'][1]).map(Number);
  const [, statCount, statSize] = /^S: \+OK (\d+) (\d+)$/.exec(steps.STAT[1]).map(Number);
  assert.equal(statCount, count);
  assert.match(steps.LIST[1], new RegExp(`^S: \\+OK ${count} messages`));
  const sizes = steps.LIST.slice(2, -1).map((l) => Number(/^S: \d+ (\d+)$/.exec(l)[1]));
  assert.equal(sizes.length, count);
  assert.equal(sizes.reduce((a, b) => a + b, 0), statSize);
  assert.equal(steps.LIST.at(-1), 'S: .');
  assert.ok(steps['TOP 1 0'].includes('S: Subject: Welcome to the pop3-wasm demo mailbox'));
  assert.equal(steps['TOP 1 0'].at(-1), 'S: .');
  const retr = steps['RETR 1'];
  assert.match(retr[1], /^S: \+OK \d+ octets/);
  assert.ok(retr.includes('S: Subject: Welcome to the pop3-wasm demo mailbox'));
  assert.ok(retr.some((l) => /this mailbox lives in the memory of `ws-bridge demo`/.test(l)));
  assert.equal(retr.at(-1), 'S: .');
  assert.match(steps['DELE 1'][1], /^S: \+OK /);
  assert.match(steps.RSET[1], /^S: \+OK /);
  assert.match(steps.QUIT[1], /^S: \+OK POP3 server signing off/);
  assert.ok(!text.some((l) => /PASS demo/.test(l)));
  assert.deepEqual(page.errors, []);
  await screenshot(page, 'demo-playground-stls-by-hand');
});

test('playground: ↑ history never holds a PASS line (as pop3 shell)', async () => {
  const page = await newPage();
  await page.goto(`${demo.httpUrl}/playground.html`);
  await page.waitForSelector('#connect-btn:not([disabled])');
  await page.click('#connect-btn');
  await page.waitForSelector('#line:not([disabled])');
  await playgroundType(page, 'USER demo');
  await playgroundType(page, 'PASS demo', 'PASS [redacted]');
  await playgroundType(page, 'NOOP');
  const seen = [];
  for (let i = 0; i < 4; i++) {
    await page.press('#line', 'ArrowUp');
    seen.push(await page.inputValue('#line'));
  }
  assert.deepEqual(seen, ['NOOP', 'USER demo', 'USER demo', 'USER demo']);
  await page.press('#line', 'ArrowDown');
  assert.equal(await page.inputValue('#line'), 'NOOP');
  await page.click('#disconnect-btn');
});

for (const [name, path, form] of [['checker', '/', '#connect'], ['playground', '/playground.html', '#connect']]) {
  test(`${name}: Connect before the module has loaded does not submit the form (no reload)`, async () => {
    const page = await newPage();
    // Hold the wasm module back: the page is there, its script is not ready.
    let release;
    const held = new Promise((r) => (release = r));
    await page.route('**/pop3_wasm_bg.wasm', async (route) => {
      await held;
      await route.continue();
    });
    const navigations = [];
    page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()));
    await page.goto(`${demo.httpUrl}${path}`, { waitUntil: 'domcontentloaded' });
    await page.evaluate(() => (window.stillTheSamePage = true));
    assert.equal(await page.isDisabled('#connect-btn'), true, 'Connect is disabled until the module is ready');
    // A user clicking Connect and pressing Enter in the form, as soon as they can.
    const box = await page.locator('#connect-btn').boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.focus(`${form} input[type=text], ${form} input[type=url]`);
    await page.keyboard.press('Enter');
    release();
    await page.waitForSelector('#connect-btn:not([disabled])');
    assert.equal(await page.evaluate(() => window.stillTheSamePage), true, 'the page was reloaded');
    assert.equal(navigations.length, 1, navigations.join(' '));
    assert.equal(new URL(page.url()).search, '', 'the form was submitted natively');
    await page.unroute('**/pop3_wasm_bg.wasm');
  });
}

test('both pages are readable at phone width (375 px): no sideways scrolling', async () => {
  const page = await newPage({ width: 375, height: 800 });
  await checkerConnect(page, demo.httpUrl);
  await checkerOpen(page, 2);
  assert.equal(await overflowsHorizontally(page), false);
  await screenshot(page, 'demo-checker-375px');
  await page.click('#keep');
  await page.goto(`${demo.httpUrl}/playground.html`);
  await page.waitForFunction(() => document.querySelector('#host').value !== '');
  await page.click('#connect-btn');
  await page.waitForSelector('#line:not([disabled])');
  await page.fill('#line', 'CAPA');
  await page.press('#line', 'Enter');
  await page.waitForFunction(() => /IMPLEMENTATION/.test(document.querySelector('#console').textContent));
  assert.equal(await overflowsHorizontally(page), false);
  await screenshot(page, 'demo-playground-375px');
});

test('keyboard only: Tab to the connect button, Enter connects, Tab reaches the first message', async () => {
  const page = await newPage();
  await page.goto(`${demo.httpUrl}/`);
  await page.waitForFunction(() => document.querySelector('#password').value !== '');
  await page.focus('#password');
  await page.keyboard.press('Enter');   // submits the form
  await page.waitForSelector('#messages tbody tr[data-id]');
  await page.waitForFunction(() => document.activeElement?.closest('td.subject'));
  await page.keyboard.press('Enter');   // opens the focused message
  await page.waitForSelector('#message-body');
  assert.equal(await page.textContent('#viewer-h'), 'Welcome to the pop3-wasm demo mailbox');
  const labelled = await page.$$eval('input, select', (els) => els.filter((e) => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label')).map((e) => e.id));
  assert.deepEqual(labelled, []);
  await page.click('#keep');
});
