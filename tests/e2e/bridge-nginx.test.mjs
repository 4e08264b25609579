// Scale-out: Debian's nginx in front of two ws-bridge replicas, with the
// proxy directives of deploy/nginx/ws-bridge-proxy.conf, sessions through it
// to a real Dovecot; then one replica dies and new sessions still work.
// Also checks that the documented site config (deploy/nginx/ws-bridge.conf)
// passes `nginx -t`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startBridgeFor, REPO_ROOT } from '../fixtures/bridge.mjs';
import { onExit } from '../fixtures/cleanup.mjs';

const NGINX = '/usr/sbin/nginx';
const DEPLOY = path.join(REPO_ROOT, 'deploy', 'nginx');
const haveNginx = fs.existsSync(NGINX);

let dc;
let replicas = [];
let nginx;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listening on ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** nginx on a free loopback port with its own prefix, config and logs. */
async function startNginx(upstreamPorts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-bridge-nginx-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const temp = (name) => path.join(dir, name);
  const conf = `
worker_processes 1;
pid ${temp('nginx.pid')};
error_log ${temp('error.log')} info;
events { worker_connections 128; }
http {
  access_log ${temp('access.log')};
  client_body_temp_path ${temp('client_body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream ws_bridge {
${upstreamPorts.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=30s;`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    location / { include ${path.join(DEPLOY, 'ws-bridge-proxy.conf')}; }
  }
}
`;
  fs.writeFileSync(temp('nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir + '/', '-c', temp('nginx.conf'), '-e', temp('error.log'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const off = onExit(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  try {
    await waitForPort(port);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\nnginx stderr: ${stderr}\nerror.log: ${fs.existsSync(temp('error.log')) ? fs.readFileSync(temp('error.log'), 'utf8') : ''}`);
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}/pop3`,
    httpUrl: `http://127.0.0.1:${port}`,
    errorLog: () => fs.readFileSync(temp('error.log'), 'utf8'),
    async stop() {
      off();
      if (child.exitCode === null) {
        child.kill('SIGQUIT');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

before(async () => {
  if (!haveNginx) throw new Error(`${NGINX} not found: run scripts/setup.sh (it installs Debian's nginx)`);
  dc = await startDovecot();
  const extraArgs = ['--trusted-proxy', '127.0.0.1/32'];
  replicas = [await startBridgeFor(dc, { extraArgs }), await startBridgeFor(dc, { extraArgs })];
  nginx = await startNginx(replicas.map((r) => r.port));
});

after(async () => {
  await nginx?.stop();
  for (const r of replicas) await r.stop();
  await dc?.stop();
});

async function session() {
  const c = await Pop3Client.connect({
    bridge: nginx.url,
    host: dc.host,
    port: dc.ports.pop3s,
    tls: 'implicit',
    timeoutMs: 10000,
  });
  await c.login(dc.users.alice.name, dc.users.alice.password);
  const stat = await c.stat();
  await c.quit();
  return stat;
}

const sessionsIn = (logs) => (logs.match(/session closed/g) || []).length;

test('the documented nginx site config passes nginx -t', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-bridge-nginx-t-'));
  try {
    fs.mkdirSync(path.join(dir, 'conf.d'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    const site = fs.readFileSync(path.join(DEPLOY, 'ws-bridge.conf'), 'utf8')
      .replace('/etc/ssl/certs/pop3-bridge.example.org.pem', path.join(dir, 'cert.pem'))
      .replace('/etc/ssl/private/pop3-bridge.example.org.key', path.join(dir, 'key.pem'));
    fs.writeFileSync(path.join(dir, 'conf.d', 'ws-bridge.conf'), site);
    fs.copyFileSync(path.join(DEPLOY, 'ws-bridge-proxy.conf'), path.join(dir, 'conf.d', 'ws-bridge-proxy.conf'));
    fs.writeFileSync(path.join(dir, 'nginx.conf'),
      `pid ${dir}/nginx.pid;\nevents {}\nhttp { include conf.d/ws-bridge.conf; }\n`);
    execFileSync(NGINX, ['-t', '-q', '-p', dir + '/', '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], {
      stdio: 'pipe',
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('nginx spreads sessions over two replicas, and new sessions survive losing one', async () => {
  const health = await fetch(`${nginx.httpUrl}/healthz`);
  assert.equal(await health.text(), 'ok');

  for (let i = 0; i < 6; i++) {
    const stat = await session();
    assert.equal(stat.count, dc.users.alice.count);
  }
  // Wait for both replicas to have logged their sessions' ends.
  for (let i = 0; i < 50 && sessionsIn(replicas[0].logs()) + sessionsIn(replicas[1].logs()) < 6; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const before = replicas.map((r) => sessionsIn(r.logs()));
  assert.ok(before[0] > 0 && before[1] > 0, `both replicas served sessions: ${before}`);
  // nginx's X-Forwarded-For was believed: the client address is logged.
  assert.match(replicas[0].logs(), /client=127\.0\.0\.1/);

  // One replica dies without a goodbye.
  const [dead, alive] = replicas;
  process.kill(dead.pid, 'SIGKILL');
  await dead.exited;

  for (let i = 0; i < 6; i++) {
    const stat = await session();
    assert.equal(stat.count, dc.users.alice.count);
  }
  for (let i = 0; i < 50 && sessionsIn(alive.logs()) < before[1] + 6; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(sessionsIn(alive.logs()), before[1] + 6, 'the surviving replica took every new session');
});
