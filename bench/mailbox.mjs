// The benchmark's mailboxes: a user added to a running fixture Dovecot
// (tests/fixtures/dovecot.mjs), whose passwd-file is read again on change.
import fs from 'node:fs';
import path from 'node:path';

/** Adds `user` ({ name, password }) with the given message sources (Buffers or strings). */
export function addUser(dc, user, sources) {
  const maildir = path.join(dc.dir, 'home', user.name, 'Maildir');
  for (const sub of ['cur', 'new', 'tmp']) fs.mkdirSync(path.join(maildir, sub), { recursive: true });
  const base = 1736150400;
  sources.forEach((src, k) => {
    const file = path.join(maildir, 'cur', `${base + k + 1}.M${k + 1}P1.pop3-wasm-bench:2,S`);
    fs.writeFileSync(file, src);
  });
  if (process.getuid?.() === 0) {
    for (const p of [path.dirname(maildir), maildir, ...['cur', 'new', 'tmp'].map((s) => path.join(maildir, s))]) {
      fs.chownSync(p, 65534, 65534);
    }
    for (const f of fs.readdirSync(path.join(maildir, 'cur'))) fs.chownSync(path.join(maildir, 'cur', f), 65534, 65534);
  }
  fs.appendFileSync(path.join(dc.dir, 'passwd'), `${user.name}:{PLAIN}${user.password}::::::\n`);
}
