// retrMany(1..count) MB/s, `reps` times, each a new session: what scenario 8
// measures, the same code in Node and in a Chromium page (bench/end-to-end.mjs
// copies this file next to the page).
export async function retrRates(Pop3Client, connectOptions, user, count, reps) {
  const ids = Array.from({ length: count }, (_, k) => k + 1);
  const rates = [];
  for (let i = 0; i < reps; i++) {
    const c = await Pop3Client.connect({ timeoutMs: 300_000, ...connectOptions });
    await c.login(user.name, user.password);
    const bytes = (await c.list()).reduce((a, e) => a + e.size, 0);
    const t0 = performance.now();
    const got = await c.retrMany(ids);
    const s = (performance.now() - t0) / 1000;
    if (got.some((g) => g.error || !g.body?.length)) throw new Error('retrMany() had errors');
    rates.push(bytes / 2 ** 20 / s);
    await c.quit();
  }
  return rates;
}
