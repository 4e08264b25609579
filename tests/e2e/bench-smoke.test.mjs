// The benchmark's smoke mode (`npm run bench -- --quick`), so the harness
// cannot rot: every scenario runs at small sizes against the real Dovecot
// and bridge (the slow link between network namespaces made for the run),
// and writes its JSON. No figure is asserted: speed is the benchmark's
// business (BENCHMARKS.md), never a test's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../fixtures/bridge.mjs';

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

test('bench --quick runs every scenario and writes its results', { timeout: 240_000 }, () => {
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
  assert.deepEqual([...scenarios].sort(), ['1', '2', '3', '4', '5', '6', '7', '8']);
  assert.match(r.stdout, /\| scenario \| measure \|/);
  // The slow link says which it was: real TCP between namespaces where
  // they can be made (root, /dev/net/tun, `ip`), else the relay and why.
  const link = result.raw.slow.link;
  const canNetns = process.getuid() === 0 && fs.existsSync('/dev/net/tun') && fs.existsSync('/usr/sbin/ip');
  assert.equal(link.kind, canNetns ? 'netns' : 'relay', link.reason ?? '');
  assert.match(r.stdout, canNetns ? /link: real TCP between network namespaces/ : /link: delay relay, the fallback/);
  // …and leaves none of its namespaces behind.
  if (canNetns) assert.doesNotMatch(namespaces(), new RegExp(`^pop3b-${r.pid}-`, 'm'));
});
