// `pop3 shell` in a real pseudo-terminal (tmux, on a private socket): keys
// go in with send-keys, the screen comes back with capture-pane.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor, REPO_ROOT } from '../fixtures/bridge.mjs';
import { onExit } from '../fixtures/cleanup.mjs';

const BIN = path.join(REPO_ROOT, 'pop3-wasm', 'js', 'cli', 'pop3.js');
const SOCKET = `pop3-shell-test-${process.pid}`;

let dc;
let bridge;
let offExit;

const tmux = (...args) => execFileSync('tmux', ['-L', SOCKET, '-f', '/dev/null', ...args], { encoding: 'utf8' });

before(async () => {
  dc = await startDovecot();
  bridge = await startBridgeFor(dc);
  offExit = onExit(() => {
    try {
      tmux('kill-server');
    } catch {}
  });
});

after(async () => {
  try {
    tmux('kill-server');
  } catch {}
  offExit?.();
  await bridge?.stop();
  await dc?.stop();
});

/**
 * Starts `pop3 shell ARGS` in a tmux session; the pane stays to be read
 * after the exit. `pipe`: its standard output goes through `cat` (stdin
 * and stderr stay the terminal), as in `pop3 shell … | tee log`.
 */
function startShell(name, args, { pipe = false } = {}) {
  const cmd = [process.execPath, BIN, 'shell', ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const run = pipe ? `${cmd} | cat; echo "[exit \${PIPESTATUS[0]}]"` : `${cmd}; echo "[exit $?]"`;
  tmux('new-session', '-d', '-s', name, '-x', '200', '-y', '50', `bash -c '${run.replace(/'/g, "'\\''")}; sleep 30'`);
  return {
    keys: (...k) => tmux('send-keys', '-t', name, ...k),
    text: (t) => tmux('send-keys', '-t', name, '-l', t),
    screen: () => tmux('capture-pane', '-p', '-J', '-t', name, '-S', '-2000'),
    /** Waits until the screen matches `re` (the screen text). */
    async until(re, ms = 10000) {
      const end = Date.now() + ms;
      for (;;) {
        const s = this.screen();
        if (re.test(s)) return s;
        if (Date.now() > end) assert.fail(`screen never matched ${re}:\n${s}`);
        await new Promise((r) => setTimeout(r, 30));
      }
    },
  };
}

const count = (s, needle) => s.split(needle).length - 1;

test('raw commands with C:/S: lines, PASS without echo, history without the password, .quit sends no QUIT', async () => {
  const a = dc.users.alice;
  const sh = startShell('direct', [`pop3s://127.0.0.1:${dc.ports.pop3s}`, '--ca-file', dc.caFile]);
  await sh.until(/^pop3> $/m);
  let s = sh.screen();
  assert.match(s, /^S: \+OK Dovecot \(Debian\) ready\./m);
  assert.match(s, /^\* TLS TLSv1\.[23] /m);
  sh.keys('USER alice', 'Enter');
  await sh.until(/^C: USER alice\nS: \+OK/m);
  sh.keys('PASS', 'Enter');
  await sh.until(/^Password: /m);
  sh.text(a.password);
  sh.keys('Enter');
  s = await sh.until(/^S: \+OK Logged in\./m);
  assert.match(s, /^C: PASS \[redacted\]$/m);
  sh.keys('LIST', 'Enter');
  // The multi-line answer whole: every size, then the terminator.
  s = await sh.until(/^S: 9 \d+\nS: \.$/m);
  for (const [i, size] of a.sizes.entries()) assert.match(s, new RegExp(`^S: ${i + 1} ${size}$`, 'm'));
  sh.keys('DELE 1', 'Enter');
  await sh.until(/^S: \+OK Marked to be deleted\./m);
  // History: Up, Up, Up gives USER alice (PASS was kept out); Enter sends it again.
  sh.keys('Up', 'Up', 'Up');
  await sh.until(/^pop3> USER alice$/m);
  sh.keys('C-u');
  sh.keys('.quit', 'Enter');
  s = await sh.until(/^\[exit 0\]$/m);
  assert.ok(!s.includes(a.password), `the password is on the screen:\n${s}`);
  assert.equal(count(s, 'C: QUIT'), 0, '.quit leaves without QUIT');
  // Nothing was committed: message 1 is still there.
  const c = await Pop3Client.connect({ host: dc.host, port: dc.ports.pop3s, ca: dc.ca });
  await c.login(a.name, a.password);
  assert.equal((await c.stat()).count, a.count);
  await c.quit();
});

test('through the bridge with STLS: .login asks for the password, RETR shown whole, QUIT ends the shell', async () => {
  const a = dc.users.alice;
  const sh = startShell('bridge', [`pop3://127.0.0.1:${dc.ports.pop3}?tls=starttls`, '--bridge', bridge.url]);
  let s = await sh.until(/^pop3> $/m);
  assert.match(s, /^C: STLS\nS: \+OK/m);
  sh.keys('.login alice', 'Enter');
  await sh.until(/^Password for alice: /m);
  sh.text(a.password);
  sh.keys('Enter');
  await sh.until(/^\* logged in with SCRAM-SHA-256$/m);
  sh.keys('RETR 1', 'Enter');
  s = await sh.until(/^C: RETR 1\n(S: .*\n)+S: \.$/m);
  const shown = /^C: RETR 1\n((?:S: .*\n)+)S: \.$/m.exec(s)[1];
  const body = dc.expected('alice', 1).toString('latin1').split('\r\n').slice(0, -1);
  assert.deepEqual(shown.trimEnd().split('\n').slice(1).map((l) => l.replace(/^S: ?/, '')), body.map((l) => (l.startsWith('.') ? `.${l}` : l)));
  sh.keys('QUIT', 'Enter');
  s = await sh.until(/^\[exit 0\]$/m);
  assert.match(s, /^C: QUIT\nS: \+OK Logging out/m);
  assert.ok(!s.includes(a.password));
});

test('Ctrl-D at the prompt leaves; a command before login is refused as the server says', async () => {
  const sh = startShell('ctrld', [`pop3s://127.0.0.1:${dc.ports.pop3s}`, '--ca-file', dc.caFile]);
  await sh.until(/^pop3> $/m);
  sh.keys('STAT', 'Enter');
  await sh.until(/^! INVALID_STATE: /m);
  sh.keys('C-d');
  await sh.until(/^\[exit 0\]$/m);
});

test('stdout piped (pop3 shell … | cat): the password prompt shows once and the password does not echo', async () => {
  const a = dc.users.alice;
  const sh = startShell('piped', [`pop3s://127.0.0.1:${dc.ports.pop3s}`, '--ca-file', dc.caFile], { pipe: true });
  // The prompt (on the terminal) and the dialogue (through cat) may share
  // a screen line: match the lines without anchoring them.
  await sh.until(/S: \+OK Dovecot \(Debian\) ready\./);
  await sh.until(/pop3> /);
  sh.keys('USER alice', 'Enter');
  await sh.until(/C: USER alice\n(pop3> )?S: \+OK/);
  sh.keys('PASS', 'Enter');
  await sh.until(/Password: /);
  sh.text(a.password);
  sh.keys('Enter');
  let s = await sh.until(/S: \+OK Logged in\./);
  assert.equal(count(s, 'Password: '), 1, `the prompt shows once:\n${s}`);
  assert.ok(!s.includes(a.password), `the password is on the screen:\n${s}`);
  assert.match(s, /C: PASS \[redacted\]$/m);
  sh.keys('.quit', 'Enter');
  s = await sh.until(/^\[exit 0\]$/m);
  assert.ok(!s.includes(a.password));
});
