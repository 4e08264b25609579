// Load: 1000 concurrent sessions through one bridge to Dovecot (login,
// UIDL, two or three RETRs checked byte for byte, QUIT), then a one-minute
// soak at a steady rate. Zero errors; after each the bridge holds exactly
// its idle number of file descriptors, and its memory comes back to its
// idle figure (within RSS_SLACK_KIB).
// The 10-minute soak: `node tests/load/run.mjs --soak 600` (tests/load/README.md).
//
// LOAD_SOAK_SECONDS and LOAD_SESSIONS override the sizes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLoadEnv, oneSession, concurrent, steady, settle, RSS_SLACK_KIB } from './harness.mjs';

const SESSIONS = Number(process.env.LOAD_SESSIONS || 1000);
const SOAK_SECONDS = Number(process.env.LOAD_SOAK_SECONDS || 60);
const SOAK_RATE = Number(process.env.LOAD_SOAK_RATE || 50);
const MiB = (kib) => `${(kib / 1024).toFixed(1)} MiB`;

let env;
let idle;
let afterBurst;

before(async () => {
  env = await startLoadEnv({ maxSessions: Math.max(2048, SESSIONS * 2) });
  // Warm up (first-use allocations, TLS roots, Dovecot's process pool).
  for (let i = 0; i < 10; i++) await oneSession(env, i);
  idle = await settle(env, env.bridgeStats());
  console.log(`bridge idle: ${MiB(idle.rssKiB)} RSS, ${idle.fds} fds`);
});

after(async () => {
  await env?.stop();
});

function describeErrors(errors) {
  return errors.slice(0, 5).map((e) => `${e.code ?? ''} ${e.message}`).join('\n');
}

test(`${SESSIONS} concurrent sessions: zero errors, every fd released`, { timeout: 180_000 }, async () => {
  const r = await concurrent(env, SESSIONS);
  afterBurst = await settle(env, idle);
  console.log(
    `burst: ${SESSIONS} sessions in ${r.ms} ms (${r.perSecond.toFixed(0)} sessions/s; all logged in after ${r.openedMs} ms), ` +
      `${r.errors.length} errors; bridge at peak ${MiB(r.peak.rssKiB)} RSS, ${r.peak.fds} fds; ` +
      `after ${MiB(afterBurst.rssKiB)} RSS, ${afterBurst.fds} fds`,
  );
  assert.equal(r.errors.length, 0, describeErrors(r.errors));
  assert.ok(r.peak.fds >= SESSIONS * 2, `all ${SESSIONS} sessions were open at once (${r.peak.fds} fds at the peak)`);
  assert.equal(afterBurst.fds, idle.fds, 'no file descriptor leaked');
  // Back to the idle figure (the bridge runs on jemalloc, whose background
  // thread hands freed pages back; glibc's allocator kept ~20 MiB here).
  assert.ok(
    afterBurst.rssKiB <= idle.rssKiB + RSS_SLACK_KIB,
    `RSS after the burst ${MiB(afterBurst.rssKiB)}, idle ${MiB(idle.rssKiB)}, peak ${MiB(r.peak.rssKiB)}`,
  );
});

test(`${SOAK_SECONDS} s soak at ${SOAK_RATE} sessions/s: zero errors, memory and fds back to their level`, { timeout: (SOAK_SECONDS + 60) * 1000 }, async () => {
  const base = afterBurst ?? idle;
  const r = await steady(env, { seconds: SOAK_SECONDS, perSecond: SOAK_RATE });
  const end = await settle(env, idle);
  console.log(
    `soak: ${r.sessions} sessions in ${r.ms} ms (${((r.sessions * 1000) / r.ms).toFixed(1)}/s, at most ${r.maxInFlight} at once), ` +
      `${r.errors.length} errors; bridge after ${MiB(end.rssKiB)} RSS (was ${MiB(base.rssKiB)}), ${end.fds} fds (idle ${idle.fds})`,
  );
  assert.equal(r.errors.length, 0, describeErrors(r.errors));
  assert.equal(r.done, r.sessions);
  assert.equal(end.fds, idle.fds, 'no file descriptor leaked');
  assert.ok(
    end.rssKiB <= idle.rssKiB + RSS_SLACK_KIB,
    `RSS after the soak ${MiB(end.rssKiB)}, idle ${MiB(idle.rssKiB)} (after the burst ${MiB(base.rssKiB)})`,
  );
});
