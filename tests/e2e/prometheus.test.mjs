// The shipped Prometheus files (deploy/prometheus/) with real parts:
// promtool checks the configs and runs the alert rules' unit tests, and two
// real Prometheus servers, each running deploy/prometheus/prometheus-sharded.yml
// as its shard, scrape two pop3-exporters in front of the test Dovecot with
// the blackbox relabelling and the hashmod sharding. Asserted through
// Prometheus' HTTP API and the exporters' own logs: each server keeps the
// targets its hashmod gives it, each target is probed by the exporter the
// second hashmod names, probe_success is 1 for a good mailbox and 0 for a
// wrong password.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startDovecot } from '../fixtures/dovecot.mjs';
import { startExporter } from '../fixtures/exporter.mjs';
import { hashmod, promtool, startPrometheus } from '../fixtures/prometheus.mjs';
import { REPO_ROOT } from '../fixtures/bridge.mjs';
import { until } from '../fixtures/assert.mjs';

const DEPLOY = path.join(REPO_ROOT, 'deploy', 'prometheus');
const MODULE = 'fleet';

test('promtool: the shipped configs are valid, the alert rules pass their unit tests', () => {
  for (const f of ['prometheus.yml', 'prometheus-sharded.yml']) {
    const r = promtool(['check', 'config', f], { cwd: DEPLOY });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${f.replace('.', '\\.')} is valid prometheus config file syntax`));
  }
  const rules = promtool(['check', 'rules', 'alerts.yml'], { cwd: DEPLOY });
  assert.equal(rules.status, 0, rules.stdout + rules.stderr);
  assert.match(rules.stdout, /SUCCESS: 9 rules found/);
  const unit = promtool(['test', 'rules', 'alerts.test.yml'], { cwd: DEPLOY });
  assert.equal(unit.status, 0, unit.stdout + unit.stderr);
  assert.match(unit.stdout, /SUCCESS/);
  // The example exporter config says what the README says.
  const ex = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'pop3-exporter.yml'), 'utf8'));
  assert.deepEqual(Object.keys(ex.modules), ['pop3s', 'fleet', 'banner', 'roundtrip']);
});

let dc;
let tmp;
const exporters = [];
const proms = [];
let targets; // [{ target, good, shard, exporter }]

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3-prometheus-test-'));
  dc = await startDovecot({ generatedUsers: 32 });
  const at = (u) => `${u}@127.0.0.1:${dc.ports.pop3s}`;
  const passwords = path.join(tmp, 'passwords');
  fs.writeFileSync(passwords, [...dc.generated.map((g) => `${g.name}:${g.password}`), `alice:${dc.users.alice.password}`, 'bob:not-bobs-Pw-1', ''].join('\n'));
  const config = {
    modules: { [MODULE]: { user_from_target: true, passwords_file: passwords, ca_file: dc.caFile, allow: [`127.0.0.1:${dc.ports.pop3s}`] } },
  };
  for (let i = 0; i < 2; i++) exporters.push(await startExporter({ config, args: ['--log-level', 'debug'] }));

  // Two fleet mailboxes for every (Prometheus shard, exporter) pair, so that
  // every path is taken whatever the ports hash to; plus alice and bob (wrong password).
  const place = (t) => ({ shard: hashmod(t, 2), exporter: hashmod(`${MODULE};${t}`, 2) });
  targets = [];
  for (const shard of [0, 1]) {
    for (const exporter of [0, 1]) {
      const picked = dc.generated.map((g) => at(g.name)).filter((t) => place(t).shard === shard && place(t).exporter === exporter).slice(0, 2);
      assert.equal(picked.length, 2, `32 mailboxes give no two for shard ${shard}, exporter ${exporter}`);
      for (const t of picked) targets.push({ target: t, good: true, shard, exporter });
    }
  }
  targets.push({ target: at('alice'), good: true, ...place(at('alice')) });
  targets.push({ target: at('bob'), good: false, ...place(at('bob')) });
  fs.writeFileSync(path.join(tmp, 'mailboxes.yml'), YAML.stringify([{ targets: targets.map((t) => t.target), labels: { site: 'test' } }]));

  const shipped = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'prometheus-sharded.yml'), 'utf8'));
  for (const shard of [0, 1]) {
    const c = structuredClone(shipped);
    // What an operator edits: the shard number, the exporters' addresses,
    // where the target files are; faster intervals for a test.
    // (a probe's deadline is the scrape timeout less 0.5 s: 2.5 s for a TLS
    // login on a busy test machine)
    c.global.scrape_interval = '3s';
    c.global.scrape_timeout = '3s';
    c.global.external_labels.prometheus_shard = String(shard);
    c.rule_files = [path.join(DEPLOY, 'alerts.yml')];
    const job = c.scrape_configs.find((j) => j.job_name === 'pop3');
    job.file_sd_configs = [{ files: [path.join(tmp, '*.yml')] }];
    for (const r of job.relabel_configs) {
      if (r.action === 'keep') r.regex = String(shard);
      if (r.target_label === '__address__' && r.source_labels?.[0] === '__tmp_exporter') r.replacement = `127.0.0.1:${exporters[Number(r.regex)].port}`;
    }
    c.scrape_configs.find((j) => j.job_name === 'pop3-exporter').static_configs = [{ targets: exporters.map((e) => `127.0.0.1:${e.port}`) }];
    proms.push(await startPrometheus(c));
  }
});

after(async () => {
  for (const p of proms) await p.stop();
  for (const e of exporters) await e.stop();
  await dc?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Polls an instant query until it has `n` series. */
function series(prom, q, n) {
  return until(async () => {
    const r = await prom.query(q);
    return r.length >= n && r;
  }, `${n} series of ${q}`, { ms: 30_000, everyMs: 250 });
}

test('two Prometheus servers, two exporters: each target on the server and exporter hashmod chose, probe_success 1 and 0', async () => {
  for (const shard of [0, 1]) {
    const prom = proms[shard];
    const mine = targets.filter((t) => t.shard === shard);
    assert.ok(mine.length >= 4);

    // Prometheus' side: the targets it kept, and where it sends each.
    const active = await until(async () => {
      const a = (await prom.targets()).filter((t) => t.labels.job === 'pop3');
      return a.length >= mine.length && a;
    }, `the targets of shard ${shard}`, { ms: 30_000 });
    assert.deepEqual(active.map((t) => t.labels.instance).sort(), mine.map((t) => t.target).sort());
    for (const t of active) {
      const want = exporters[targets.find((x) => x.target === t.labels.instance).exporter];
      assert.equal(t.labels.exporter, `127.0.0.1:${want.port}`, t.labels.instance);
      const u = new URL(t.scrapeUrl);
      assert.equal(u.host, `127.0.0.1:${want.port}`);
      assert.equal(u.pathname, '/probe');
      assert.equal(u.searchParams.get('module'), MODULE);
      assert.equal(u.searchParams.get('target'), t.labels.instance);
    }

    // The results, through the HTTP API.
    const results = await series(prom, 'probe_success{job="pop3"}', mine.length);
    for (const r of results) {
      const t = targets.find((x) => x.target === r.metric.instance);
      const why = exporters.flatMap((e) => e.stderr().split('\n')).filter((l) => l.includes(`target=${r.metric.instance} `) && l.includes('failed'));
      assert.equal(r.value[1], t.good ? '1' : '0', `${r.metric.instance} on shard ${shard}: ${why.slice(-2).join('\n')}`);
      assert.equal(r.metric.prometheus_shard, undefined, 'external labels are for federation and alerts, not stored');
      assert.equal(r.metric.site, 'test');
    }
    const refused = await prom.query('pop3_login_failure{job="pop3",reason="auth"} == 1');
    assert.deepEqual(refused.map((r) => r.metric.instance), mine.filter((t) => !t.good).map((t) => t.target));
    const messages = await prom.query('pop3_messages{job="pop3"}');
    for (const r of messages) assert.equal(r.value[1], r.metric.instance.startsWith('alice@') ? '9' : '2');
    // The exporters' own metrics are scraped too.
    assert.equal((await series(prom, 'up{job="pop3-exporter"} == 1', 2)).length, 2);
  }
  const both = (await proms[0].query('probe_success{job="pop3"}')).length + (await proms[1].query('probe_success{job="pop3"}')).length;
  assert.equal(both, targets.length, 'every target on exactly one server');

  // The exporters' side: each probed exactly the targets hashmod gave it.
  for (const [i, ex] of exporters.entries()) {
    const seen = new Set([...ex.stderr().matchAll(/msg="probe (?:succeeded|failed)" module=fleet target=(\S+)/g)].map((m) => m[1]));
    assert.deepEqual([...seen].sort(), targets.filter((t) => t.exporter === i).map((t) => t.target).sort(), `exporter ${i}`);
  }
});
