// The licence texts ship with everything a user installs: the npm tarball
// (npm pack) and both crates (cargo package), next to the "MIT OR
// Apache-2.0" the manifests declare.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../fixtures/bridge.mjs';

const LICENCE_FILES = ['LICENSE-MIT', 'LICENSE-APACHE'];
const read = (f) => fs.readFileSync(path.join(REPO_ROOT, f), 'utf8');

test('the licence files hold the MIT and Apache-2.0 texts the manifests name', () => {
  assert.equal(JSON.parse(read('package.json')).license, 'MIT OR Apache-2.0');
  assert.match(read('Cargo.toml'), /^license = "MIT OR Apache-2\.0"$/m);
  const mit = read('LICENSE-MIT');
  assert.match(mit, /^MIT License\n\nCopyright \(c\) \d{4} /);
  assert.ok(mit.includes('Permission is hereby granted, free of charge, to any person obtaining a copy'));
  assert.ok(mit.includes('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND'));
  const apache = read('LICENSE-APACHE');
  assert.match(apache, /^\s*Apache License\n\s*Version 2\.0, January 2004\n/);
  assert.ok(apache.includes('END OF TERMS AND CONDITIONS'));
  assert.ok(apache.includes('APPENDIX: How to apply the Apache License to your work.'));
});

test('the npm tarball carries the licence files and the changelog', () => {
  const [packed] = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT, encoding: 'utf8' }),
  );
  const files = packed.files.map((f) => f.path);
  for (const f of [...LICENCE_FILES, 'CHANGELOG.md']) assert.ok(files.includes(f), `${f} missing from:\n${files.join('\n')}`);
});

for (const crate of ['pop3-wasm', 'ws-bridge']) {
  test(`the ${crate} crate carries the licence files, same bytes as the root's`, () => {
    const list = execFileSync('cargo', ['package', '--list', '--allow-dirty', '-p', crate], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).split('\n');
    for (const f of LICENCE_FILES) {
      assert.ok(list.includes(f), `${f} missing from cargo package --list -p ${crate}:\n${list.join('\n')}`);
      assert.equal(read(path.join(crate, f)), read(f), `${crate}/${f} is the root's ${f}`);
    }
  });
}
