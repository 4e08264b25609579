// The benchmark's smoke mode (`npm run bench -- --quick`), so the harness
// cannot rot: every scenario runs at small sizes against the real Dovecot,
// bridge and websockify, and writes its JSON. No figure is asserted: speed
// is the benchmark's business (BENCHMARKS.md), never a test's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../fixtures/bridge.mjs';

test('bench --quick runs every scenario and writes its results', { timeout: 240_000 }, () => {
  if (!fs.existsSync('/usr/bin/websockify')) {
    const setup = spawnSync('bash', ['scripts/setup.sh', 'websockify'], { cwd: REPO_ROOT, stdio: 'inherit' });
    assert.equal(setup.status, 0, 'scripts/setup.sh websockify failed');
  }
  // The release bridge when `npm run bench` built one, else the tests' debug build.
  const release = path.join(REPO_ROOT, 'target', 'release', 'ws-bridge');
  const env = { ...process.env };
  if (!env.WS_BRIDGE_BIN && fs.existsSync(release)) env.WS_BRIDGE_BIN = release;
  const r = spawnSync(process.execPath, ['bench/run.mjs', '--quick'], {
    cwd: REPO_ROOT,
    env,
    encoding: 'utf8',
    timeout: 220_000,
  });
  assert.equal(r.status, 0, `bench/run.mjs --quick exited ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  const m = /raw figures: (\S+\.json)/.exec(r.stdout);
  assert.ok(m, `no results file named in:\n${r.stdout}`);
  const file = path.resolve(REPO_ROOT, m[1]);
  const result = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.rmSync(file); // a smoke run's figures are not worth keeping
  assert.deepEqual(result.errors, []);
  const scenarios = new Set(result.rows.map((row) => row.scenario.split(' ')[0]));
  assert.deepEqual([...scenarios].sort(), ['1', '2', '3', '4', '5', '6', '7']);
  assert.match(r.stdout, /\| scenario \| measure \|/);
});
