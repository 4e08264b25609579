// The benchmark's slow link: real TCP between two network namespaces.
//
//   client namespace                         server namespace
//   ┌──────────────────────┐                 ┌───────────────────────────────┐
//   │ Node: pop3-wasm      │   slow0 ⇄ slow0 │ ws-bridge ── 127.0.0.1 ── Dovecot
//   │ Python: poplib       │ ───────────────►│ (10.199.0.2)       (and 10.199.0.2)
//   │ 10.199.0.1           │  RTT/2 each way │                               │
//   └──────────────────────┘                 └───────────────────────────────┘
//
// A browser far from the bridge, which sits next to the mail server: the
// client's TCP connection (the WebSocket; poplib's POP3) crosses the link,
// so TCP's handshake, slow start and ACK clock are in every figure. The
// link is a pair of TUN devices (`slow0`, MTU 1500) and bench/tun-delay.py
// copying each IP packet from one to the other RTT/2 later (this kernel has
// no `tc netem`); no bandwidth limit, no loss. Everything runs in
// namespaces made for this run (`pop3b-<pid>-c`, `pop3b-<pid>-s`): the
// host's own interfaces, addresses and routes are never touched. Needs
// root, /dev/net/tun, `ip` and python3; without them, `startSlowLink`
// falls back to bench/delay-relay.mjs on loopback (a delayed byte stream,
// which hides slow start and the ACK clock) and says why in `link.reason`.
//
//   const link = await startSlowLink({ rttMs: 50 });
//   link.kind                    // 'netns' | 'relay'
//   const far = await startServer(link, { user, count });  // { pop3, bridgeUrl, pop3Addr: { host, port }, caFile }
//   const floor = await startFloorServer(link);            // floor.fetch(bytes, reps) → seconds[]
//   link.clientCommand('node', [...])                     // [cmd, args] that run in the client namespace
//   await link.setRtt(200);
//   await link.close();          // also on exit, Ctrl-C or a failure (onExit)
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExit } from '../tests/fixtures/cleanup.mjs';
import { startDelayRelay } from './delay-relay.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PREFIX = 'pop3b-';
const DEV = 'slow0';
const CLIENT_ADDR = '10.199.0.1';
const SERVER_ADDR = '10.199.0.2';

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Why namespaces cannot be made here, or null. */
function netnsUnavailable() {
  if (process.getuid?.() !== 0) return 'not root';
  if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  for (const [cmd, arg] of [['ip', '-V'], ['python3', '--version']]) {
    try {
      execFileSync(cmd, [arg], { stdio: 'ignore' });
    } catch {
      return `no ${cmd}`;
    }
  }
  return null;
}

/** Deletes the namespaces of earlier runs whose process is gone (a run killed with SIGKILL). */
function removeStale() {
  let names = [];
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^${PREFIX}(\\d+)-[cs]$`).exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if (e.code === 'ESRCH') {
        try {
          ip('netns', 'del', name);
        } catch {}
      }
    }
  }
}

/** Runs `child` until it prints one line; resolves that line. */
function firstLine(child, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (d) => (err = (err + d).slice(-4000)));
    const onData = (d) => {
      out += d;
      const i = out.indexOf('\n');
      if (i >= 0) {
        child.stdout.off('data', onData);
        resolve(out.slice(0, i));
      }
    };
    child.stdout.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, sig) => reject(new Error(`${what} exited (${code ?? sig}): ${err}`)));
  });
}

async function netnsLink(rttMs) {
  removeStale();
  const ns = { client: `${PREFIX}${process.pid}-c`, server: `${PREFIX}${process.pid}-s` };
  const children = new Set();
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const n of Object.values(ns)) {
      try {
        ip('netns', 'del', n);
      } catch {}
    }
  };
  const off = onExit(cleanup);
  try {
    for (const n of Object.values(ns)) ip('netns', 'add', n);
    const fwd = spawn('python3', [path.join(HERE, 'tun-delay.py'), ns.client, ns.server, DEV, String(rttMs / 2)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(fwd);
    if ((await firstLine(fwd, 'tun-delay.py')) !== 'ready') throw new Error('tun-delay.py did not get ready');
    for (const [n, local, peer] of [[ns.client, CLIENT_ADDR, SERVER_ADDR], [ns.server, SERVER_ADDR, CLIENT_ADDR]]) {
      ip('-n', n, 'link', 'set', 'lo', 'up');
      ip('-n', n, 'addr', 'add', local, 'peer', peer, 'dev', DEV);
      ip('-n', n, 'link', 'set', DEV, 'up');
    }
    const sysctl = (n, key) => execFileSync('ip', ['netns', 'exec', n, 'cat', `/proc/sys/net/ipv4/${key}`], { encoding: 'utf8' }).trim();
    const inNs = (n) => (cmd, args) => ['ip', ['netns', 'exec', n, cmd, ...args]];
    let fwdReplies = '';
    let fwdErr = '';
    fwd.stdout.on('data', (d) => (fwdReplies += d));
    fwd.stderr.on('data', (d) => (fwdErr = (fwdErr + d).slice(-4000)));
    return {
      kind: 'netns',
      description: `real TCP: network namespaces joined by TUN devices, every packet delayed RTT/2 each way (bench/tun-delay.py)`,
      reason: null,
      namespaces: ns,
      congestionControl: sysctl(ns.server, 'tcp_congestion_control'),
      rttMs,
      clientCommand: inNs(ns.client),
      serverCommand: inNs(ns.server),
      serverAddress: SERVER_ADDR,
      /** The client reaches `port` of the server side here. */
      reach: async (port) => ({ host: SERVER_ADDR, port }),
      async setRtt(ms) {
        if (fwd.exitCode !== null || fwd.signalCode !== null) throw new Error(`tun-delay.py exited: ${fwdErr}`);
        const before = fwdReplies.length;
        fwd.stdin.write(`delay ${ms / 2}\n`);
        for (let i = 0; i < 200 && fwdReplies.length === before; i++) await new Promise((r) => setTimeout(r, 5));
        if (fwdReplies.length === before) throw new Error('tun-delay.py did not take the new delay');
        this.rttMs = ms;
      },
      async close() {
        fwd.stdin.end();
        await new Promise((r) => (fwd.exitCode !== null ? r() : fwd.once('exit', r)));
        cleanup();
        off();
      },
    };
  } catch (e) {
    cleanup();
    off();
    throw e;
  }
}

function relayLink(rttMs, reason) {
  const relays = [];
  const same = (cmd, args) => [cmd, args];
  return {
    kind: 'relay',
    description: 'fallback: a delaying TCP relay on loopback (bench/delay-relay.mjs: a byte stream, no slow start, no ACK clock)',
    reason,
    namespaces: null,
    congestionControl: null,
    rttMs,
    clientCommand: same,
    serverCommand: same,
    serverAddress: '127.0.0.1',
    async reach(port) {
      const r = await startDelayRelay({ host: '127.0.0.1', port, rttMs: this.rttMs });
      relays.push(r);
      return { host: '127.0.0.1', port: r.port };
    },
    async setRtt(ms) {
      this.rttMs = ms;
      for (const r of relays) r.rttMs = ms;
    },
    async close() {
      for (const r of relays) await r.close();
    },
  };
}

/**
 * The slow link at `rttMs`: namespaces where they can be made, else the
 * relay. A failure after the namespaces exist is an error, not a fallback.
 */
export async function startSlowLink({ rttMs, log = () => {} }) {
  const why = netnsUnavailable();
  if (!why) {
    try {
      return await netnsLink(rttMs);
    } catch (e) {
      if (!/netns add|Operation not permitted|tun-delay/.test(String(e.message))) throw e;
      log(`network namespaces could not be made (${e.message.split('\n')[0]}); using the delay relay`);
      return relayLink(rttMs, String(e.message).split('\n')[0]);
    }
  }
  log(`network namespaces unavailable (${why}); using the delay relay`);
  return relayLink(rttMs, why);
}

/**
 * Starts bench/slow-link-server.mjs on the far side: Dovecot with `user`'s
 * `count` bulk messages and a bridge. Resolves { pop3, bridgeUrl, pop3Addr,
 * stop() }: `bridgeUrl` and `pop3Addr` as the client reaches them.
 */
export async function startServer(link, { user, count }) {
  const [cmd, args] = link.serverCommand(process.execPath, [
    path.join(HERE, 'slow-link-server.mjs'),
    JSON.stringify({ address: link.serverAddress, user, count }),
  ]);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  // SIGTERM: the child's own exit hooks stop its Dovecot and bridge.
  const off = onExit(() => child.kill('SIGTERM'));
  const { pop3, bridgePort, caFile } = JSON.parse(await firstLine(child, 'slow-link-server.mjs'));
  const bridge = await link.reach(bridgePort);
  return {
    pop3,
    caFile,
    bridgeUrl: `ws://${bridge.host}:${bridge.port}/pop3`,
    pop3Addr: await link.reach(pop3),
    async stop() {
      child.stdin.end();
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      off();
    },
  };
}

/**
 * Starts bench/tcp-floor.py on the far side. Resolves { fetch(bytes, reps)
 * → seconds[] (run on the client side), stop() }.
 */
export async function startFloorServer(link) {
  const [cmd, args] = link.serverCommand('python3', [path.join(HERE, 'tcp-floor.py'), 'serve', link.serverAddress]);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const off = onExit(() => child.kill('SIGKILL'));
  const { port } = JSON.parse(await firstLine(child, 'tcp-floor.py'));
  const at = await link.reach(port);
  return {
    async fetch(bytes, reps) {
      const [c, a] = link.clientCommand('python3', [path.join(HERE, 'tcp-floor.py'), 'fetch', at.host, String(at.port), String(bytes), String(reps)]);
      return JSON.parse(execFileSync(c, a, { encoding: 'utf8', timeout: 300_000 })).seconds;
    },
    async stop() {
      child.stdin.end();
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      off();
    },
  };
}
