// Ground truth: the Dovecot fixture checked over raw sockets, byte for byte.
// If these fail, every other end-to-end test is meaningless.
//
//   node --test tests/e2e/fixture-dovecot.test.mjs

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import {
  startDovecot,
  uidlFor,
  bulkHeaders,
  BULK_COUNT,
  MESSAGES_DIR,
  UIDVALIDITY,
} from '../fixtures/dovecot.mjs';
import { RawPop3 } from '../fixtures/rawpop3.mjs';

const ALICE = { user: 'alice', pass: 'alice-secret-Pw1' };
const CRLF = Buffer.from('\r\n');
const b64 = (s) => Buffer.from(s).toString('base64');

describe('dovecot fixture', () => {
  let dc;
  const open = [];
  const connect = async (o = {}) => {
    const c = await RawPop3.connect({ port: o.tls ? dc.ports.pop3s : dc.ports.pop3, ca: dc.ca, ...o });
    open.push(c);
    return c;
  };
  const loggedIn = async (user = ALICE.user, pass = ALICE.pass) => {
    const c = await connect();
    assert.match(await c.login(user, pass), /^\+OK/);
    return c;
  };

  before(async () => {
    // auth_debug: the auth process logs each reply it sends (the nodelay check below).
    dc = await startDovecot({ extraConfig: 'auth_debug = yes\n' });
  });
  after(async () => {
    for (const c of open) c.close();
    await dc?.stop();
    if (dc) assert.equal(fs.existsSync(dc.dir), false, 'stop() removes the temp dir');
  });

  test('shape of the fixture object', () => {
    assert.equal(dc.host, '127.0.0.1');
    assert.ok(dc.ports.pop3 > 1024 && dc.ports.pop3s > 1024 && dc.ports.pop3 !== dc.ports.pop3s);
    assert.ok(fs.existsSync(dc.caFile) && fs.existsSync(dc.certFile));
    assert.deepEqual(Object.keys(dc.users).sort(), ['alice', 'bob', 'bulk', 'empty', 'jürgen']);
    assert.equal(dc.users.alice.count, 9);
    assert.equal(dc.users.bob.count, 3);
    assert.equal(dc.users.empty.count, 0);
    assert.equal(dc.users.bulk.count, 0, 'bulk is only filled with { bulk: true }');
    assert.equal(dc.users['jürgen'].count, 1);
  });

  test('greeting: +OK with an APOP timestamp', async () => {
    const c = await connect();
    assert.match(c.greeting, /^\+OK Dovecot \(Debian\) ready\. <[^<>@]+@[^<>]+>$/);
    await c.quit();
  });

  test('CAPA on the plain port', async () => {
    const c = await connect();
    const r = await c.multi('CAPA');
    assert.match(r.status, /^\+OK/);
    const caps = r.lines;
    for (const cap of ['TOP', 'UIDL', 'USER', 'PIPELINING', 'RESP-CODES', 'AUTH-RESP-CODE', 'STLS']) {
      assert.ok(caps.includes(cap), `CAPA lacks ${cap}: ${caps.join(' | ')}`);
    }
    assert.ok(caps.includes('SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256'), caps.join(' | '));
    await c.quit();
  });

  test('CAPA on the implicit TLS port has no STLS; after login it drops USER/SASL/STLS', async () => {
    const c = await connect({ tls: true });
    const caps = (await c.multi('CAPA')).lines;
    assert.ok(!caps.includes('STLS'), caps.join(' | '));
    assert.ok(caps.includes('USER') && caps.some((l) => l.startsWith('SASL ')), caps.join(' | '));
    assert.match(await c.login(ALICE.user, ALICE.pass), /^\+OK/);
    const after = (await c.multi('CAPA')).lines;
    assert.deepEqual(after, ['CAPA', 'TOP', 'UIDL', 'RESP-CODES', 'PIPELINING', 'AUTH-RESP-CODE']);
    await c.quit();
  });

  test('STAT, LIST and UIDL match the exported sizes and UIDs', async () => {
    const c = await loggedIn();
    const u = dc.users.alice;
    assert.equal(await c.command('STAT'), `+OK ${u.count} ${u.size}`);
    const list = await c.multi('LIST');
    assert.equal(list.status, `+OK ${u.count} messages:`);
    assert.deepEqual(list.lines, u.sizes.map((s, i) => `${i + 1} ${s}`));
    assert.deepEqual(dc.sizes('alice'), u.sizes);
    const uidl = await c.multi('UIDL');
    assert.deepEqual(uidl.lines, u.uids.map((s, i) => `${i + 1} ${s}`));
    assert.deepEqual(dc.uids('alice'), u.uids);
    assert.equal(u.uids[0], uidlFor(1));
    assert.equal(uidlFor(1), '00000001' + UIDVALIDITY.toString(16));
    assert.equal(await c.command('LIST 3'), `+OK 3 ${u.sizes[2]}`);
    assert.equal(await c.command('UIDL 3'), `+OK 3 ${u.uids[2]}`);
    await c.quit();
  });

  test('RETR of every alice message equals expected(), status gives the LIST size', async () => {
    const c = await loggedIn();
    for (let n = 1; n <= dc.users.alice.count; n++) {
      const r = await c.multi(`RETR ${n}`);
      assert.equal(r.status, `+OK ${dc.users.alice.sizes[n - 1]} octets`, `RETR ${n}`);
      assert.ok(r.body.equals(dc.expected('alice', n)), `RETR ${n} (${dc.users.alice.messages[n - 1].name}) differs`);
    }
    await c.quit();
  });

  test("Dovecot's byte handling (documents the wire model in dovecot.mjs)", async () => {
    const c = await loggedIn();
    const files = fs.readdirSync(path.join(MESSAGES_DIR, 'alice')).filter((f) => f.endsWith('.eml')).sort();
    assert.equal(files.length, 8);
    // CRLF sources that end with CRLF come back unchanged.
    for (const [i, f] of files.entries()) {
      const src = fs.readFileSync(path.join(MESSAGES_DIR, 'alice', f));
      if (f.startsWith('07-') || f.startsWith('08-')) {
        assert.ok(!dc.expected('alice', i + 1).equals(src), f);
      } else {
        assert.ok(dc.expected('alice', i + 1).equals(src), f);
        assert.equal(dc.users.alice.sizes[i], src.length, `${f}: LIST size = file size`);
      }
    }
    // 02: dot-stuffing on the wire, unstuffed by the reader; the last body line is "."
    const dots = await c.multi('RETR 2');
    const rawText = dots.raw.toString('latin1');
    assert.ok(rawText.includes('\r\n..one leading dot\r\n...two leading dots\r\n....three leading dots\r\n..\r\n'));
    assert.ok(rawText.endsWith('Not a dot: x.\r\n..\r\n.\r\n'));
    // 04: headers only, no blank line: sent as stored, Dovecot adds no blank line.
    const ho = await c.multi('RETR 4');
    assert.ok(ho.raw.toString('latin1').endsWith('@fixture.pop3-wasm.test>\r\n.\r\n'));
    // 05: headers + blank line, empty body.
    const eb = await c.multi('RETR 5');
    assert.ok(eb.raw.toString('latin1').endsWith('@fixture.pop3-wasm.test>\r\n\r\n.\r\n'));
    // 07: no final line ending: Dovecot adds CRLF before "."; LIST does not count it.
    const src7 = dc.source('alice', 7);
    assert.ok(src7.subarray(-3).toString() === 'it.');
    const nf = await c.multi('RETR 7');
    assert.ok(nf.raw.toString('latin1').endsWith('no CRLF after it.\r\n.\r\n'));
    assert.equal(dc.users.alice.sizes[6], src7.length);
    assert.ok(nf.body.equals(Buffer.concat([src7, CRLF])));
    // 08: bare LF on disk -> CRLF on the wire; LIST counts the CRLFs.
    const src8 = dc.source('alice', 8);
    assert.equal(src8.indexOf('\r'), -1);
    const lf = await c.multi('RETR 8');
    assert.ok(lf.body.equals(Buffer.from(src8.toString('latin1').replace(/\n/g, '\r\n'), 'latin1')));
    assert.equal(dc.users.alice.sizes[7], lf.body.length);
    // 03: 8-bit and invalid UTF-8 bytes pass through untouched (header and body).
    const eight = await c.multi('RETR 3');
    for (const bytes of [[0xc3, 0x28], [0xff, 0xfe], [0xe9], [0x80, 0x81, 0x9f], [0xed, 0xa0, 0x80]]) {
      assert.ok(eight.body.includes(Buffer.from(bytes)), `RETR 3 keeps ${Buffer.from(bytes).toString('hex')}`);
    }
    assert.ok(eight.body.subarray(0, eight.body.indexOf('\r\n\r\n')).includes(Buffer.from([0xc3, 0x28])));
    // 09: the 5 MB message.
    assert.ok(dc.users.alice.sizes[8] > 5_000_000);
    await c.quit();
  });

  test('TOP equals expectedTop() for every message and several line counts', async () => {
    const c = await loggedIn();
    for (let n = 1; n <= dc.users.alice.count; n++) {
      for (const k of [0, 1, 2, 5, 1000]) {
        if (n === 9 && k === 1000) continue;
        const r = await c.multi(`TOP ${n} ${k}`);
        assert.match(r.status, /^\+OK/);
        assert.ok(r.body.equals(dc.expectedTop('alice', n, k)), `TOP ${n} ${k} differs`);
      }
    }
    // Headers-only message: TOP returns the headers, no blank line is invented.
    assert.ok(dc.expectedTop('alice', 4, 0).equals(dc.expected('alice', 4)));
    // TOP n 0 ends with the blank line that ends the header.
    assert.ok(dc.expectedTop('alice', 1, 0).toString('latin1').endsWith('us-ascii\r\n\r\n'));
    const top2 = dc.expectedTop('alice', 1, 2).toString('latin1');
    assert.equal(top2.slice(top2.indexOf('\r\n\r\n') + 4), 'Hello Alice,\r\n\r\n');
    await c.quit();
  });

  test('errors: no such message, TOP without a line count', async () => {
    const c = await loggedIn();
    assert.match(await c.command('RETR 99'), /^-ERR /);
    assert.match(await c.command('TOP 1'), /^-ERR /);
    assert.match(await c.command('LIST 0'), /^-ERR /);
    await c.quit();
  });

  test('wrong passwords are answered at once and do not delay the next login', async () => {
    // No auth penalty: its socket is not there, so the auth process keeps none.
    assert.ok(fs.existsSync(path.join(dc.dir, 'run', 'anvil')), 'the sockets live in run/');
    assert.equal(fs.existsSync(path.join(dc.dir, 'run', 'anvil-auth-penalty')), false);
    const since = dc.log().length;
    for (let i = 0; i < 3; i++) {
      const c = await connect();
      assert.equal(await c.login(ALICE.user, `wrong-${i}`), '-ERR [AUTH] Authentication failed.');
      c.close();
    }
    const c = await connect();
    assert.equal(await c.login('no-such-user', 'x'), '-ERR [AUTH] Authentication failed.');
    assert.equal(await c.login(ALICE.user, 'wrong-again'), '-ERR [AUTH] Authentication failed.');
    assert.equal(await c.login(ALICE.user, ALICE.pass), '+OK Logged in.');
    // No failure delay: every refusal went back from the auth process
    // tagged nodelay, answered at once instead of queued for
    // auth_failure_delay (Dovecot's default: 2 s, then 2/4/8 s penalties).
    const fails = dc.log().slice(since).match(/client passdb out: FAIL\t[^\n]*/g) ?? [];
    assert.equal(fails.length, 5, dc.log().slice(since));
    for (const f of fails) assert.match(f, /\tnodelay(\t|$)/);
    await c.quit();
  });

  test('implicit TLS port: certificate verifies with the CA (CN=localhost, SAN IP)', async () => {
    const c = await connect({ tls: true });
    assert.ok(c.sock.authorized);
    const cert = c.sock.getPeerCertificate();
    assert.equal(cert.subject.CN, 'localhost');
    assert.match(cert.subjectaltname, /DNS:localhost/);
    assert.match(cert.subjectaltname, /IP Address:127\.0\.0\.1/);
    assert.ok(['TLSv1.2', 'TLSv1.3'].includes(c.sock.getProtocol()));
    assert.match(c.greeting, /^\+OK /);
    assert.match(await c.login(ALICE.user, ALICE.pass), /^\+OK/);
    const r = await c.multi('RETR 3');
    assert.ok(r.body.equals(dc.expected('alice', 3)));
    await c.quit();
    // By IP address too (SAN IP:127.0.0.1).
    const byIp = await RawPop3.connect({ port: dc.ports.pop3s, tls: true, ca: dc.ca, servername: undefined });
    assert.ok(byIp.sock.authorized);
    byIp.close();
  });

  test('implicit TLS port: rejected without the CA', async () => {
    await assert.rejects(
      RawPop3.connect({ port: dc.ports.pop3s, tls: true }),
      (e) => /self[- ]signed|unable to (get|verify)/i.test(e.message),
    );
  });

  test('implicit TLS port: TLS 1.1 is refused (ssl_min_protocol = TLSv1.2)', async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = tls.connect({ port: dc.ports.pop3s, host: '127.0.0.1', ca: dc.ca, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
        s.once('secureConnect', () => {
          s.destroy();
          resolve();
        });
        s.once('error', reject);
      }),
    );
  });

  test('STLS on the plain port', async () => {
    const c = await connect();
    assert.equal(c.encrypted, false);
    assert.match(await c.stls({ ca: dc.ca }), /^\+OK/);
    assert.equal(c.encrypted, true);
    assert.ok(c.sock.authorized);
    const caps = (await c.multi('CAPA')).lines;
    assert.ok(!caps.includes('STLS'), 'no STLS once TLS is on');
    assert.match(await c.command('STLS'), /^-ERR/);
    assert.match(await c.login(ALICE.user, ALICE.pass), /^\+OK/);
    const r = await c.multi('RETR 2');
    assert.ok(r.body.equals(dc.expected('alice', 2)));
    await c.quit();
  });

  describe('SASL mechanisms and APOP all work (plaintext passdb)', () => {
    const H = { 'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256' };

    test('AUTH PLAIN with initial response', async () => {
      const c = await connect();
      assert.match(await c.command(`AUTH PLAIN ${b64(`\0${ALICE.user}\0${ALICE.pass}`)}`), /^\+OK/);
      await c.quit();
    });

    test('AUTH PLAIN without initial response, and a wrong password', async () => {
      const c = await connect();
      assert.equal(await c.command('AUTH PLAIN'), '+ ');
      assert.match(await c.command(b64(`\0${ALICE.user}\0nope`)), /^-ERR \[AUTH\]/);
      assert.equal(await c.command('AUTH PLAIN'), '+ ');
      assert.match(await c.command(b64(`\0${ALICE.user}\0${ALICE.pass}`)), /^\+OK/);
      await c.quit();
    });

    test('AUTH PLAIN cancelled with *', async () => {
      const c = await connect();
      assert.equal(await c.command('AUTH PLAIN'), '+ ');
      assert.match(await c.command('*'), /^-ERR/);
      await c.quit();
    });

    test('AUTH LOGIN', async () => {
      const c = await connect();
      assert.equal(await c.command('AUTH LOGIN'), `+ ${b64('Username:')}`);
      assert.equal(await c.command(b64(ALICE.user)), `+ ${b64('Password:')}`);
      assert.match(await c.command(b64(ALICE.pass)), /^\+OK/);
      await c.quit();
    });

    test('AUTH CRAM-MD5', async () => {
      const c = await connect();
      const ch = await c.command('AUTH CRAM-MD5');
      assert.match(ch, /^\+ /);
      const challenge = Buffer.from(ch.slice(2), 'base64');
      const digest = crypto.createHmac('md5', ALICE.pass).update(challenge).digest('hex');
      assert.match(await c.command(b64(`${ALICE.user} ${digest}`)), /^\+OK/);
      await c.quit();
    });

    for (const mech of Object.keys(H)) {
      test(`AUTH ${mech}`, async () => {
        const c = await connect();
        const hash = H[mech];
        const nonce = crypto.randomBytes(18).toString('base64');
        const clientFirstBare = `n=${ALICE.user},r=${nonce}`;
        const sf = await c.command(`AUTH ${mech} ${b64(`n,,${clientFirstBare}`)}`);
        assert.match(sf, /^\+ /);
        const serverFirst = Buffer.from(sf.slice(2), 'base64').toString();
        const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
        assert.ok(attrs.r.startsWith(nonce));
        const salted = crypto.pbkdf2Sync(ALICE.pass, Buffer.from(attrs.s, 'base64'), Number(attrs.i), crypto.createHash(hash).digest().length, hash);
        const hmac = (k, d) => crypto.createHmac(hash, k).update(d).digest();
        const clientKey = hmac(salted, 'Client Key');
        const storedKey = crypto.createHash(hash).update(clientKey).digest();
        const finalNoProof = `c=biws,r=${attrs.r}`;
        const authMessage = `${clientFirstBare},${serverFirst},${finalNoProof}`;
        const sig = hmac(storedKey, authMessage);
        const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]));
        const sfin = await c.command(b64(`${finalNoProof},p=${proof.toString('base64')}`));
        assert.match(sfin, /^\+ /, 'server-final comes as a continuation');
        const v = Buffer.from(sfin.slice(2), 'base64').toString();
        const serverSig = hmac(hmac(salted, 'Server Key'), authMessage).toString('base64');
        assert.equal(v, `v=${serverSig}`);
        assert.match(await c.command(''), /^\+OK/);
        await c.quit();
      });
    }

    test('APOP', async () => {
      const c = await connect();
      const ts = /<[^>]+>/.exec(c.greeting)[0];
      const digest = crypto.createHash('md5').update(ts + ALICE.pass).digest('hex');
      assert.match(await c.command(`APOP ${ALICE.user} ${digest}`), /^\+OK/);
      await c.quit();
      const bad = await connect();
      assert.match(await bad.command(`APOP ${ALICE.user} ${'0'.repeat(32)}`), /^-ERR \[AUTH\]/);
      bad.close();
    });

    test('UTF-8 user name and password: USER/PASS and AUTH PLAIN', async () => {
      const { name, password } = dc.users['jürgen'];
      const c = await connect();
      assert.match(await c.login(name, password), /^\+OK/);
      assert.equal(await c.command('STAT'), `+OK 1 ${dc.users['jürgen'].sizes[0]}`);
      const r = await c.multi('RETR 1');
      assert.ok(r.body.equals(dc.expected('jürgen', 1)));
      assert.ok(r.body.toString('utf8').includes('Subject: Grüße, Jürgen'));
      await c.quit();
      const p = await connect();
      assert.match(await p.command(`AUTH PLAIN ${b64(`\0${name}\0${password}`)}`), /^\+OK/);
      await p.quit();
    });
  });

  test('empty mailbox', async () => {
    const c = await loggedIn('empty', 'empty-secret-Pw2');
    assert.equal(await c.command('STAT'), '+OK 0 0');
    const l = await c.multi('LIST');
    assert.deepEqual(l.lines, []);
    assert.deepEqual((await c.multi('UIDL')).lines, []);
    assert.match(await c.command('RETR 1'), /^-ERR/);
    await c.quit();
  });

  test('bob: DELE + QUIT commits; RSET and a dropped session do not', async () => {
    const c = await loggedIn('bob', 'bob-secret-Pw3');
    assert.equal(await c.command('STAT'), `+OK 3 ${dc.users.bob.size}`);
    assert.match(await c.command('DELE 1'), /^\+OK/);
    assert.match(await c.command('RSET'), /^\+OK/);
    assert.match(await c.command('DELE 2'), /^\+OK/);
    c.close(); // no QUIT: nothing is deleted
    await new Promise((r) => setTimeout(r, 100));
    const d = await loggedIn('bob', 'bob-secret-Pw3');
    assert.match(await d.command('STAT'), /^\+OK 3 /);
    assert.match(await d.command('DELE 1'), /^\+OK/);
    assert.match(await d.command('RETR 1'), /^-ERR/);
    assert.match(await d.command('STAT'), /^\+OK 2 /);
    assert.match(await d.quit(), /^\+OK/);
    const e = await loggedIn('bob', 'bob-secret-Pw3');
    const list = await e.multi('UIDL');
    assert.deepEqual(list.lines, [`1 ${uidlFor(2)}`, `2 ${uidlFor(3)}`], 'UIDs stay with their messages');
    const r = await e.multi('RETR 1');
    assert.ok(r.body.equals(dc.expected('bob', 2)));
    await e.quit();
  });

  test('every startDovecot() is fresh: a second instance still has all of bob', async () => {
    const other = await startDovecot();
    try {
      assert.notEqual(other.dir, dc.dir);
      const c = await RawPop3.connect({ port: other.ports.pop3 });
      assert.match(await c.login('bob', 'bob-secret-Pw3'), /^\+OK/);
      assert.equal(await c.command('STAT'), `+OK 3 ${other.users.bob.size}`);
      await c.quit();
    } finally {
      await other.stop();
    }
  });
});

describe('dovecot fixture with { bulk: true }', () => {
  let dc;
  before(async () => {
    dc = await startDovecot({ bulk: true });
  });
  after(async () => {
    await dc?.stop();
  });

  test('1000 messages of ~10 KB with distinct headers', async () => {
    const u = dc.users.bulk;
    assert.equal(u.count, BULK_COUNT);
    assert.ok(u.sizes.every((s) => s >= 10_000 && s < 10_200), 'each ~10 KB');
    const c = await RawPop3.connect({ port: dc.ports.pop3 });
    assert.match(await c.login('bulk', 'bulk-secret-Pw4'), /^\+OK/);
    assert.equal(await c.command('STAT'), `+OK ${BULK_COUNT} ${u.size}`);
    const list = await c.multi('LIST');
    assert.deepEqual(list.lines, u.sizes.map((s, i) => `${i + 1} ${s}`));
    const uidl = await c.multi('UIDL');
    assert.deepEqual(uidl.lines, u.uids.map((s, i) => `${i + 1} ${s}`));
    for (const n of [1, 2, 500, 999, 1000]) {
      const r = await c.multi(`RETR ${n}`);
      assert.ok(r.body.equals(dc.expected('bulk', n)), `RETR ${n}`);
      const top = await c.multi(`TOP ${n} 0`);
      assert.ok(top.body.equals(dc.expectedTop('bulk', n, 0)));
      const h = bulkHeaders(n);
      assert.deepEqual(u.messages[n - 1].headers, h);
      const text = top.body.toString('latin1');
      assert.ok(text.includes(`\r\nSubject: ${h.subject}\r\n`));
      assert.ok(text.includes(`\r\nFrom: ${h.from}\r\n`));
      assert.ok(text.includes(`\r\nDate: ${h.date}\r\n`));
      assert.ok(text.includes(`\r\nMessage-ID: ${h.messageId}\r\n`));
    }
    const subjects = new Set(u.messages.map((m) => m.headers.subject));
    const ids = new Set(u.messages.map((m) => m.headers.messageId));
    const dates = new Set(u.messages.map((m) => m.headers.date));
    assert.equal(subjects.size, BULK_COUNT);
    assert.equal(ids.size, BULK_COUNT);
    assert.equal(dates.size, BULK_COUNT);
    await c.quit();
  });
});
