// The package a user installs: `npm pack`, install the tarball into an empty
// Node project, and RETR a message through the bridge from there; then bundle
// a page importing it with Vite (the project's dev dependency) and run the
// bundle in Chromium against Dovecot through the bridge.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor, REPO_ROOT } from '../fixtures/bridge.mjs';
import { launchChromium, writeTestPage, testPageResult } from '../fixtures/browser.mjs';
import { startEndToEndBridge } from '../fixtures/e2e-bridge.mjs';

let dc;
let bridge;
let dir;
let app; // the empty project the tarball was installed into

before(async () => {
  dc = await startDovecot();
  bridge = await startBridgeFor(dc);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-wasm-pack-'));
});

after(async () => {
  await bridge?.stop();
  await dc?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the packed tarball installs into an empty project and RETRs byte-exact', () => {
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, npm_config_ignore_scripts: 'true' },
  });
  const tarball = path.join(dir, out.trim().split('\n').pop());
  const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
  for (const f of [
    'package/pop3-wasm/js/node.js', 'package/pop3-wasm/js/index.d.ts', 'package/pop3-wasm/js/entry.js',
    'package/pop3-wasm/js/error-codes.js', 'package/pop3-wasm/js/error-codes.d.ts', 'package/pop3-wasm/js/errors.d.ts',
    'package/pop3-wasm/pkg/pop3_wasm_bg.wasm', 'package/pop3-wasm/pkg/pop3_wasm.d.ts',
    'package/pop3-wasm/pkg/pop3_wasm_tls.js', 'package/pop3-wasm/pkg/pop3_wasm_tls_bg.wasm',
    'package/pop3-wasm/js/diagnose.js', 'package/pop3-wasm/js/diagnose.d.ts',
    'package/pop3-wasm/pkg/pop3_wasm_diag.js', 'package/pop3-wasm/pkg/pop3_wasm_diag_bg.wasm',
  ]) {
    assert.ok(listing.includes(f), `${f} missing from the tarball:\n${listing.join('\n')}`);
  }
  assert.ok(!listing.some((f) => f.includes('/src/') || f.includes('tests/')), 'sources or tests in the tarball');

  app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, stdio: 'pipe' });
  fs.writeFileSync(
    path.join(app, 'main.mjs'),
    `import { Pop3Client, Pop3Error } from 'pop3-wasm';
const [bridge, port, user, password] = process.argv.slice(2);
const c = await Pop3Client.connect({ bridge, host: '127.0.0.1', port: Number(port), tls: 'implicit' });
await c.login(user, password);
const body = await c.retr(3);
await c.quit();
process.stdout.write(Buffer.from(body).toString('base64') + '\\n' + (Pop3Error.prototype instanceof Error));
`,
  );
  const a = dc.users.alice;
  const [b64, isError] = execFileSync('node', ['main.mjs', bridge.url, String(dc.ports.pop3s), a.name, a.password], {
    cwd: app,
    encoding: 'utf8',
  }).split('\n');
  assert.ok(Buffer.from(b64, 'base64').equals(dc.expected('alice', 3)), 'RETR 3 through the installed package');
  assert.equal(isError, 'true');

  // The commands work from the installed package (their shared modules included).
  const check = execFileSync(
    path.join(app, 'node_modules', '.bin', 'pop3-check'),
    [`pop3s://${a.name}@127.0.0.1:${dc.ports.pop3s}`, '--ca-file', dc.caFile],
    { cwd: app, encoding: 'utf8', env: { ...process.env, POP3_PASSWORD: a.password } },
  );
  assert.match(check, new RegExp(`^POP3 OK - ${a.count} messages `));
  // The analyzer's module loads from the installed package too (pop3-check --serverinfo runs diagnose()).
  const report = JSON.parse(
    execFileSync(
      path.join(app, 'node_modules', '.bin', 'pop3-check'),
      [`pop3s://${a.name}@127.0.0.1:${dc.ports.pop3s}`, '--ca-file', dc.caFile, '--serverinfo', '--json'],
      { cwd: app, encoding: 'utf8', env: { ...process.env, POP3_PASSWORD: a.password } },
    ),
  );
  assert.deepEqual([report.ok, report.mailbox.count, report.tls.ends], [true, a.count, 'client']);
});

test('a page importing the package, bundled by Vite, lists the mailbox in Chromium through the bridge', async () => {
  assert.ok(app, 'the tarball was installed by the test before');
  const web = path.join(app, 'web');
  fs.mkdirSync(web);
  // What a user's page does: the browser entry (no bundler-specific code),
  // its .wasm found by `new URL(…, import.meta.url)`, which Vite rewrites.
  writeTestPage(
    web,
    'index',
    `import { Pop3Client } from 'pop3-wasm';
const q = new URLSearchParams(location.search);
const out = document.getElementById('result');
try {
  const e2e = q.has('ca') ? { endToEnd: true, ca: q.get('ca') } : {};
  const c = await Pop3Client.connect({ bridge: q.get('bridge'), host: q.get('host'), port: Number(q.get('port')), tls: 'implicit', ...e2e });
  await c.login(q.get('user'), q.get('password'));
  const uids = await c.uidl();
  await c.quit();
  out.textContent = JSON.stringify({ ok: true, protocol: c.tls?.protocol ?? null, endToEnd: c.tls?.endToEnd ?? null, uids });
} catch (e) {
  out.textContent = JSON.stringify({ ok: false, code: e.code ?? null, message: String(e.message ?? e) });
}
`,
  );
  const vite = path.join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const log = execFileSync(process.execPath, [vite, 'build', '--logLevel', 'info'], { cwd: web, encoding: 'utf8' });
  const assets = fs.readdirSync(path.join(web, 'dist', 'assets'));
  // The three modules: the TLS-capable one and the analyzer's as assets of
  // their own, fetched only by a session that asks and by diagnose().
  assert.deepEqual(
    assets.filter((f) => f.endsWith('.wasm')).map((f) => f.replace(/-[\w-]+\.wasm$/, '.wasm')).sort(),
    ['pop3_wasm_bg.wasm', 'pop3_wasm_diag_bg.wasm', 'pop3_wasm_tls_bg.wasm'],
    `Vite's .wasm assets: ${assets.join(', ')}\n${log}`,
  );

  // The bundle is served by a bridge of its own (same origin as its WebSocket).
  const pageBridge = await startBridgeFor(dc, { serve: path.join(web, 'dist') });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const fetched = [];
    page.on('request', (r) => fetched.push(r.url()));
    const a = dc.users.alice;
    const q = new URLSearchParams({ bridge: pageBridge.url, host: dc.host, port: String(dc.ports.pop3s), user: a.name, password: a.password });
    const result = await testPageResult(page, `${pageBridge.httpUrl}/index.html?${q}`);
    assert.deepEqual(result, { ok: true, protocol: result.protocol, endToEnd: false, uids: a.uids.map((uid, i) => ({ id: i + 1, uid })) });
    assert.match(result.protocol, /^TLSv1\.[23]$/);
    assert.ok(!fetched.some((u) => /pop3_wasm_(tls|diag)/.test(u)), `a bridge-side session fetches neither: ${fetched.join(' ')}`);
    assert.deepEqual(errors, []);

    // End to end: the bundle's TLS-capable chunk, loaded by the session that asks.
    const e2eBridge = await startEndToEndBridge(dc, { serve: path.join(web, 'dist') });
    try {
      const e2ePage = await browser.newPage();
      e2ePage.on('pageerror', (e) => errors.push(e.message));
      const q2 = new URLSearchParams({ bridge: e2eBridge.url, host: '127.0.0.1', port: String(dc.ports.pop3s), user: a.name, password: a.password, ca: dc.ca.toString() });
      const r2 = await testPageResult(e2ePage, `${e2eBridge.httpUrl}/index.html?${q2}`);
      assert.deepEqual(r2, { ok: true, protocol: r2.protocol, endToEnd: true, uids: a.uids.map((uid, i) => ({ id: i + 1, uid })) });
      assert.deepEqual(errors, []);
    } finally {
      await e2eBridge.stop();
    }
  } finally {
    await browser.close();
    await pageBridge.stop();
  }
});
