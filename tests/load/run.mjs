#!/usr/bin/env node
// The load and soak tests by hand, with bigger numbers than the suite's.
//
//   node tests/load/run.mjs                       # 1000 concurrent, then a 10-minute soak at 50/s
//   node tests/load/run.mjs --sessions 2000 --soak 600 --rate 100
//   node tests/load/run.mjs --sessions 0 --soak 3600   # soak only, an hour
//
// Prints the bridge's RSS and fd count every 10 s of the soak and a summary;
// exits 1 on any failed session, a leaked fd, or RSS not back within
// RSS_SLACK_KIB (10 MiB) of the idle figure after the burst and the soak.
import { parseArgs } from 'node:util';
import { startLoadEnv, oneSession, concurrent, steady, settle, RSS_SLACK_KIB } from './harness.mjs';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    soak: { type: 'string', default: '600' },
    rate: { type: 'string', default: '50' },
  },
});
const sessions = Number(values.sessions);
const soak = Number(values.soak);
const rate = Number(values.rate);
const MiB = (kib) => `${(kib / 1024).toFixed(1)} MiB`;

const env = await startLoadEnv({ maxSessions: Math.max(2048, sessions * 2) });
let failed = false;
try {
  for (let i = 0; i < 10; i++) await oneSession(env, i);
  const idle = await settle(env, env.bridgeStats());
  console.log(`bridge pid ${env.bridge.pid} idle: ${MiB(idle.rssKiB)} RSS, ${idle.fds} fds`);
  let base = idle;
  if (sessions > 0) {
    const r = await concurrent(env, sessions);
    base = await settle(env, idle);
    console.log(`burst: ${sessions} concurrent in ${r.ms} ms (${r.perSecond.toFixed(0)}/s), ${r.errors.length} errors; ` +
      `peak ${MiB(r.peak.rssKiB)} RSS ${r.peak.fds} fds; after ${MiB(base.rssKiB)} RSS ${base.fds} fds`);
    for (const e of r.errors.slice(0, 10)) console.log(`  ${e.code ?? ''} ${e.message}`);
    failed ||= r.errors.length > 0 || base.fds !== idle.fds || base.rssKiB > idle.rssKiB + RSS_SLACK_KIB;
  }
  if (soak > 0) {
    const t0 = Date.now();
    const r = await steady(env, {
      seconds: soak,
      perSecond: rate,
      onTick: (s) => console.log(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${s.done}/${s.total} done, ${s.errors} errors, ${MiB(s.rssKiB)} RSS, ${s.fds} fds`),
    });
    const end = await settle(env, idle);
    console.log(`soak: ${r.sessions} sessions in ${(r.ms / 1000).toFixed(0)} s, ${r.errors.length} errors, at most ${r.maxInFlight} at once; ` +
      `after ${MiB(end.rssKiB)} RSS (was ${MiB(base.rssKiB)}), ${end.fds} fds (idle ${idle.fds})`);
    for (const e of r.errors.slice(0, 10)) console.log(`  ${e.code ?? ''} ${e.message}`);
    failed ||= r.errors.length > 0 || end.fds !== idle.fds || end.rssKiB > idle.rssKiB + RSS_SLACK_KIB;
  }
} finally {
  await env.stop();
}
console.log(failed ? 'FAILED' : 'ok');
process.exit(failed ? 1 : 0);
