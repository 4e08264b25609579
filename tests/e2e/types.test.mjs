// The TypeScript types that ship with the package, compiled against a
// usage file (tests/types/usage.ts) with the package resolved by its name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../fixtures/bridge.mjs';

test('index.d.ts accepts the documented API and rejects wrong uses', () => {
  const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(REPO_ROOT, 'tests', 'types')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
