// The package a user installs: `npm pack`, install the tarball into an empty
// Node project, and RETR a message through the bridge from there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor, REPO_ROOT } from '../fixtures/bridge.mjs';

let dc;
let bridge;
let dir;

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
  for (const f of ['package/pop3-wasm/js/node.js', 'package/pop3-wasm/js/index.d.ts', 'package/pop3-wasm/pkg/pop3_wasm_bg.wasm']) {
    assert.ok(listing.includes(f), `${f} missing from the tarball:\n${listing.join('\n')}`);
  }
  assert.ok(!listing.some((f) => f.includes('/src/') || f.includes('tests/')), 'sources or tests in the tarball');

  const app = path.join(dir, 'app');
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
});
