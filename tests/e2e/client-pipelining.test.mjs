// Pipelined batches against Dovecot's 1000-message mailbox: summaries(),
// retrMany(), deleMany(), and what went on the wire; through the bridge and
// direct.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Pop3Client } from 'pop3-wasm';
import { startDovecot, bulkHeaders, BULK_COUNT } from '../fixtures/dovecot.mjs';
import { startBridgeFor } from '../fixtures/bridge.mjs';

let dc;
let bridge;

const unquote = (s) => s.replace(/"/g, '');
const bare = (s) => s.replace(/^<|>$/g, '');

/**
 * The `verb` command lines the client had sent when the first status line
 * answering one of them came back (the transcript is in the order the
 * client sent and received).
 */
function sentBeforeFirstAnswer(lines, verb) {
  const first = lines.findIndex((l) => l.dir === 'C' && l.line.startsWith(verb));
  const answer = lines.findIndex((l, k) => k > first && 'latencyMs' in l);
  return lines.slice(first, answer).filter((l) => l.dir === 'C').map((l) => l.line);
}

function suite(via) {
  // A fresh Dovecot per transport: deleMany() + QUIT changes the bulk mailbox.
  before(async () => {
    dc = await startDovecot({ bulk: true });
    bridge = via === 'bridge' ? await startBridgeFor(dc) : null;
  });

  after(async () => {
    await bridge?.stop();
    await dc?.stop();
  });

  /** Through the bridge, or direct (no `bridge`; the test CA as `ca`). */
  const route = () => (via === 'bridge' ? { bridge: bridge.url } : { ca: dc.ca });

  async function bulk(extra = {}) {
    const c = await Pop3Client.connect({ ...route(), host: dc.host, port: dc.ports.pop3s, timeoutMs: 20000, ...extra });
    await c.login(dc.users.bulk.name, dc.users.bulk.password);
    return c;
  }

  test('summaries() of 1000 messages: pipelined, every entry matches its source', async () => {
    const lines = [];
    const c = await bulk({ onTranscript: (l) => lines.push(l) });
    assert.equal(c.pipelining, true);
    lines.length = 0;
    const progress = [];
    const list = await c.summaries({ onProgress: (done, total) => progress.push([done, total]) });
    assert.equal(list.length, BULK_COUNT);
    const u = dc.users.bulk;
    for (const [i, s] of list.entries()) {
      const h = bulkHeaders(i + 1);
      assert.deepEqual(
        { ...s, date: Date.parse(s.date) },
        {
          id: i + 1,
          uid: u.uids[i],
          size: u.sizes[i],
          from: unquote(h.from),
          to: h.to,
          subject: h.subject,
          date: Date.parse(h.date),
          messageId: bare(h.messageId),
          error: null,
        },
      );
    }
    assert.equal(progress.length, BULK_COUNT);
    assert.deepEqual(progress.at(-1), [BULK_COUNT, BULK_COUNT]);
    // With the default window (16 KiB of commands), all 1000 TOPs (10 893
    // octets) went out, in order, before the first answer came back.
    assert.deepEqual(sentBeforeFirstAnswer(lines, 'TOP'), Array.from({ length: BULK_COUNT }, (_, k) => `TOP ${k + 1} 0`));
    await c.quit();
  });

  test('retrMany() of all 1000 messages with default options: one flight, every body byte-exact', async () => {
    const lines = [];
    const c = await bulk({ onTranscript: (l) => lines.push(l) });
    lines.length = 0;
    const ids = Array.from({ length: BULK_COUNT }, (_, k) => k + 1);
    const got = await c.retrMany(ids);
    assert.deepEqual(got.map((g) => g.id), ids);
    for (const g of got) assert.ok(Buffer.from(g.body).equals(dc.expected('bulk', g.id)), `RETR ${g.id}`);
    assert.deepEqual(sentBeforeFirstAnswer(lines, 'RETR'), ids.map((n) => `RETR ${n}`));
    await c.quit();
  });

  test('pipelineWindow caps the commands in flight: 100 before the first answer, never more', async () => {
    const lines = [];
    const c = await bulk({ onTranscript: (l) => lines.push(l), pipelineWindow: 100 });
    lines.length = 0;
    const list = await c.summaries();
    assert.equal(list.length, BULK_COUNT);
    assert.deepEqual(list.map((s) => s.subject), list.map((_, k) => bulkHeaders(k + 1).subject));
    assert.deepEqual(sentBeforeFirstAnswer(lines, 'TOP'), Array.from({ length: 100 }, (_, k) => `TOP ${k + 1} 0`));
    // From then on, never more than 100 sent and not yet answered (a status
    // line answering a command carries its latency).
    let inFlight = 0;
    let most = 0;
    for (const l of lines) {
      if (l.dir === 'C') most = Math.max(most, ++inFlight);
      else if ('latencyMs' in l) inFlight--;
    }
    assert.equal(inFlight, 0);
    assert.equal(most, 100);
    await c.quit();
  });

  test('summaries(ids) for a few messages, including one that does not exist', async () => {
    const c = await bulk();
    const list = await c.summaries([5, 1, 9999]);
    assert.deepEqual(list.map((s) => s.id), [5, 1, 9999]);
    assert.equal(list[0].subject, bulkHeaders(5).subject);
    assert.equal(list[1].uid, dc.users.bulk.uids[0]);
    assert.equal(list[2].size, null);
    assert.match(list[2].error, /server error/);
    await c.quit();
  });

  test('retrMany() and deleMany(): pipelined, per-message results, deletions only on QUIT', async () => {
    const c = await bulk();
    const ids = [3, 4, 5, 9999];
    const seen = [];
    const got = await c.retrMany(ids, { onProgress: (done, total) => seen.push(`${done}/${total}`) });
    assert.deepEqual(got.map((g) => g.id), ids);
    for (const g of got.slice(0, 3)) assert.ok(Buffer.from(g.body).equals(dc.expected('bulk', g.id)), `RETR ${g.id}`);
    assert.equal(got[3].body, null);
    assert.equal(got[3].error.code, 'SERVER_ERROR');
    assert.deepEqual(seen, ['1/4', '2/4', '3/4', '4/4']);
    const marked = await c.deleMany([3, 4, 9999]);
    assert.deepEqual(marked.map((m) => [m.id, m.error?.code ?? null]), [[3, null], [4, null], [9999, 'SERVER_ERROR']]);
    c.close(); // not committed
    const again = await bulk();
    assert.equal((await again.stat()).count, BULK_COUNT);
    await again.deleMany([3, 4]);
    await again.quit();
    const after = await bulk();
    assert.equal((await after.stat()).count, BULK_COUNT - 2);
    await after.quit();
  });

  test('retr() with onProgress reports the announced size', async () => {
    const c = await Pop3Client.connect({ ...route(), host: dc.host, port: dc.ports.pop3s });
    await c.login(dc.users.alice.name, dc.users.alice.password);
    const n = dc.users.alice.count; // the 5 MB message is the last
    const reports = [];
    const body = await c.retr(n, { onProgress: (received, total) => reports.push([received, total]) });
    assert.ok(Buffer.from(body).equals(dc.expected('alice', n)));
    assert.ok(reports.length > 10, `${reports.length} progress reports`);
    assert.deepEqual(reports.at(-1), [body.length, dc.users.alice.sizes[n - 1]]);
    for (let k = 1; k < reports.length; k++) assert.ok(reports[k][0] > reports[k - 1][0]);
    await c.quit();
  });

  test('retrStream() of the 5 MB message is byte-exact', async () => {
    const c = await Pop3Client.connect({ ...route(), host: dc.host, port: dc.ports.pop3s });
    await c.login(dc.users.alice.name, dc.users.alice.password);
    const n = dc.users.alice.count;
    const parts = [];
    for await (const chunk of await c.retrStream(n)) parts.push(Buffer.from(chunk));
    assert.ok(Buffer.concat(parts).equals(dc.expected('alice', n)));
    const top = [];
    for await (const chunk of await c.topStream(2, 3)) top.push(Buffer.from(chunk));
    assert.ok(Buffer.concat(top).equals(dc.expectedTop('alice', 2, 3)));
    await assert.rejects(c.retrStream(9999), (e) => e.code === 'SERVER_ERROR');
    await c.quit();
  });
}

for (const via of ['bridge', 'direct']) describe(`via ${via}`, () => suite(via));
