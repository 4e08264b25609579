// The service units in deploy/systemd/, every one of them:
//   - `systemd-analyze verify` says nothing (a copy whose Exec lines name the
//     programs built in this checkout, since verify wants them to exist);
//   - `systemd-analyze security --offline=yes` scores 2.0 or below.
// And ws-bridge.service for real, as far as a machine without systemd as
// PID 1 allows: its ExecStart= and Environment=, with its LoadCredential=
// provided the way systemd does it (a private copy under
// $CREDENTIALS_DIRECTORY), start a bridge that requires tokens and relays a
// session to Dovecot, stops with exit status 0 on SIGTERM, and makes no
// system call its SystemCallFilter= would refuse (traced with strace).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pop3Client } from 'pop3-wasm';
import { REPO_ROOT, bridgeBinary } from '../fixtures/bridge.mjs';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { rejectsWith } from '../fixtures/assert.mjs';
import { onExit } from '../fixtures/cleanup.mjs';

const UNIT_DIR = path.join(REPO_ROOT, 'deploy', 'systemd');
const MAX_EXPOSURE = 2.0;
const units = fs.readdirSync(UNIT_DIR).filter((f) => /\.(service|socket|timer|path)$/.test(f)).sort();

/** { Section: [[key, value], …] } of a unit file (comments and continuations handled). */
function parseUnit(text) {
  const out = {};
  let section = null;
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#') || l.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(l);
    if (s) {
      section = s[1];
      out[section] ??= [];
      continue;
    }
    const i = l.indexOf('=');
    assert.ok(section && i > 0, `not a unit-file line: ${l}`);
    out[section].push([l.slice(0, i).trim(), l.slice(i + 1).trim()]);
  }
  return out;
}

const values = (unit, section, key) => (unit[section] ?? []).filter(([k]) => k === key).map(([, v]) => v);

/** Splits a command line or an Environment= value the way systemd does (quotes, no globbing). */
function splitWords(s) {
  const words = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of s.matchAll(re)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]));
  return words;
}

/**
 * What stands in for an installed program an Exec line names: the bridge
 * built in this checkout, and the package's commands (package.json "bin").
 */
function standIn(program) {
  const name = path.basename(program);
  if (name === 'ws-bridge') return bridgeBinary();
  const bin = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).bin ?? {};
  return bin[name] ? path.join(REPO_ROOT, bin[name]) : null;
}

/** The unit with every Exec line's program that is not installed here replaced by its stand-in. */
function withStandIns(text) {
  return text.replace(/^(Exec\w+=[-@:+!]*)(\/\S+)/gm, (all, head, program) => {
    if (fs.existsSync(program)) return all;
    const local = standIn(program);
    assert.ok(local, `${program}: not installed here and no stand-in in this checkout (add one to standIn())`);
    assert.ok(fs.existsSync(local), `${local} is missing: run scripts/build.sh`);
    return head + local;
  });
}

test('deploy/systemd holds the units', () => {
  assert.ok(units.includes('ws-bridge.service'), `units found: ${units.join(', ')}`);
});

for (const name of units) {
  test(`${name}: systemd-analyze verify finds nothing to say`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-wasm-unit-'));
    try {
      const copy = path.join(dir, name);
      fs.writeFileSync(copy, withStandIns(fs.readFileSync(path.join(UNIT_DIR, name), 'utf8')));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
      assert.equal(r.error, undefined, 'systemd-analyze runs (scripts/setup.sh installs systemd)');
      // verify exits 0 after warnings such as an unknown key: its output is the verdict.
      assert.equal(`${r.stdout}${r.stderr}`, '', `systemd-analyze verify ${name}`);
      assert.equal(r.status, 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: systemd-analyze security scores ${MAX_EXPOSURE.toFixed(1)} or below`, () => {
    const out = execFileSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', path.join(UNIT_DIR, name)], {
      encoding: 'utf8',
    });
    const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(out);
    assert.ok(m, `no exposure level in:\n${out}`);
    const open = out.split('\n').filter((l) => l.startsWith('✗')).join('\n');
    assert.ok(Number(m[1]) <= MAX_EXPOSURE, `${name} scores ${m[1]}; still open:\n${open}`);
  });
}

// ------------------------------------------------------------- ws-bridge.service, run

/** `systemd-analyze syscall-filter`: { '@group': ['name' | '@group', …] }. */
function syscallGroups() {
  const groups = {};
  let current = null;
  for (const line of execFileSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8' }).split('\n')) {
    if (/^@\S+$/.test(line)) groups[(current = line)] = [];
    else if (current && /^\s+[@a-z0-9_-]+$/.test(line)) groups[current].push(line.trim());
  }
  return groups;
}

/** The system calls a unit's SystemCallFilter= lines allow (an allow list first, then ~ removals and additions). */
function allowedSyscalls(unit) {
  const groups = syscallGroups();
  const expand = (item, into = new Set()) => {
    if (!item.startsWith('@')) return into.add(item);
    assert.ok(groups[item], `unknown system call group ${item}`);
    for (const m of groups[item]) expand(m, into);
    return into;
  };
  const lines = values(unit, 'Service', 'SystemCallFilter');
  assert.ok(lines.length > 0 && !lines[0].startsWith('~'), 'the filter starts with an allow list');
  const allowed = new Set();
  for (const line of lines) {
    const deny = line.startsWith('~');
    for (const item of splitWords(deny ? line.slice(1) : line)) {
      for (const call of expand(item)) deny ? allowed.delete(call) : allowed.add(call);
    }
  }
  return allowed;
}

/** Expands the specifiers the units use: %d (the credentials directory) and %%. */
function specifiers(value, { credentials }) {
  return value.replace(/%(.)/g, (all, c) => {
    if (c === 'd') return credentials;
    if (c === '%') return '%';
    throw new Error(`specifier ${all} in "${value}": teach this test what it means`);
  });
}

/**
 * Runs `argv` under strace until it prints its listening line:
 * { port, bridgePid, exited, output(), kill() }.
 */
async function startTraced(argv, { env, trace }) {
  const child = spawn('strace', ['-f', '-qq', '-o', trace, '--', ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let bridgePid = null;
  // strace blocks fatal signals for itself and leaves its child running
  // when killed: signals go to the bridge, then to strace.
  const kill = () => {
    for (const pid of [bridgePid, child.pid]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const off = onExit(kill);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(off);
  try {
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line within 20 s:\n${output}`)), 20000);
      child.stdout.on('data', () => {
        const m = /^ws-bridge listening on \S+:(\d+)$/m.exec(output);
        if (m) resolve(Number(m[1]), clearTimeout(timer));
      });
      exited.then(({ code, signal }) => reject(new Error(`exited (${code ?? signal}) before listening:\n${output}`)));
    });
    const children = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/);
    assert.equal(children.length, 1, `strace's children: ${children}`);
    bridgePid = Number(children[0]);
    return { port, bridgePid, exited, output: () => output, kill };
  } catch (e) {
    kill();
    throw e;
  }
}

test('ws-bridge.service: ExecStart= with its environment and credential relays token sessions, stops on SIGTERM, stays inside its system call filter', async () => {
  const unit = parseUnit(fs.readFileSync(path.join(UNIT_DIR, 'ws-bridge.service'), 'utf8'));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-wasm-unit-root-'));
  const dc = await startDovecot();
  let bridge;
  try {
    // The machine's /etc and /run, under `root`.
    const under = (p) => (p.startsWith('/etc/') || p.startsWith('/run/') ? path.join(root, p) : p);
    const [execStart] = values(unit, 'Service', 'ExecStart');
    const argv = splitWords(execStart);
    const config = argv[argv.indexOf('--config') + 1];
    assert.equal(config, '/etc/ws-bridge/bridge.toml', 'the settings live under /etc');

    // What the operator puts in /etc/ws-bridge (ws-bridge/README.md): the
    // settings, and the token secret readable by root only.
    fs.mkdirSync(path.dirname(under(config)), { recursive: true });
    fs.writeFileSync(
      under(config),
      [
        'listen = "127.0.0.1:0"',
        `allow = ["127.0.0.1:${dc.ports.pop3s}"]`,
        `ca_file = [${JSON.stringify(dc.caFile)}]`,
        'log_format = "json"',
        '',
      ].join('\n'),
    );
    // What systemd does for LoadCredential=ID:PATH: a copy of PATH as
    // $CREDENTIALS_DIRECTORY/ID, readable by the service only.
    const credentials = under('/run/credentials/ws-bridge.service');
    fs.mkdirSync(credentials, { recursive: true });
    for (const cred of values(unit, 'Service', 'LoadCredential')) {
      const [id, source] = [cred.slice(0, cred.indexOf(':')), cred.slice(cred.indexOf(':') + 1)];
      assert.ok(source.startsWith('/etc/ws-bridge/'), `${cred}: the secret lives under /etc/ws-bridge`);
      if (!fs.existsSync(under(source))) {
        fs.writeFileSync(under(source), `${crypto.randomBytes(48).toString('base64')}\n`, { mode: 0o600 });
      }
      fs.copyFileSync(under(source), path.join(credentials, id));
      fs.chmodSync(path.join(credentials, id), 0o400);
    }
    fs.chmodSync(credentials, 0o500);

    // The environment systemd gives a service: PATH, the credentials
    // directory, and the unit's Environment= lines; nothing inherited.
    const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', CREDENTIALS_DIRECTORY: credentials };
    for (const line of values(unit, 'Service', 'Environment')) {
      for (const word of splitWords(specifiers(line, { credentials }))) {
        const i = word.indexOf('=');
        env[word.slice(0, i)] = word.slice(i + 1);
      }
    }
    const program = standIn(argv[0]);
    const trace = path.join(root, 'strace.out');
    bridge = await startTraced([program, ...argv.slice(1).map(under)], { env, trace });
    const url = `ws://127.0.0.1:${bridge.port}/pop3`;

    // Tokens are required: the secret came through the credential.
    const target = { bridge: url, host: '127.0.0.1', port: dc.ports.pop3s, tls: 'implicit', timeoutMs: 10000 };
    await rejectsWith(Pop3Client.connect(target), 'BRIDGE_REJECTED');
    const secret = under(values(unit, 'Service', 'LoadCredential')[0].split(':')[1]);
    const token = execFileSync(program, ['token', '--host', '127.0.0.1', '--port', String(dc.ports.pop3s), '--tls', 'implicit', '--ttl', '5m', '--token-secret-file', secret], {
      encoding: 'utf8',
    }).trim();
    const c = await Pop3Client.connect({ ...target, token });
    await c.login(dc.users.alice.name, dc.users.alice.password);
    assert.equal((await c.stat()).count, dc.users.alice.count);
    await c.quit();

    process.kill(bridge.bridgePid, 'SIGTERM');
    assert.deepEqual(await bridge.exited, { code: 0, signal: null }, bridge.output());

    // Every system call of the run (start, TLS to Dovecot, the relay, the
    // shutdown) is one the unit's SystemCallFilter= lets through.
    const used = new Set();
    for (const line of fs.readFileSync(trace, 'utf8').split('\n')) {
      const m = /^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]/.exec(line);
      if (m) used.add(m[1]);
    }
    assert.ok(used.has('accept4') && used.has('connect'), `the trace covers the sessions: ${[...used].sort().join(' ')}`);
    const allowed = allowedSyscalls(unit);
    const refused = [...used].filter((call) => !allowed.has(call)).sort();
    assert.deepEqual(refused, [], `system calls SystemCallFilter= would refuse: ${refused.join(' ')}`);
  } finally {
    bridge?.kill();
    await dc.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
