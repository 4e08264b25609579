//! The demo mailbox: a dozen realistic messages, built fresh at start.
//!
//! Plain text, a long thread, multipart with attachments, HTML (with a
//! script that must never run), RFC 2047 subjects and names in three
//! charsets, a bounce, lines that need dot-stuffing, and one ~1.5 MB
//! message generated at start. Dates count back from now, so the mailbox
//! always looks recent.

use std::fmt::Write as _;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc2822};

/// One stored message: its bytes with CRLF line endings (not stuffed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub uid: String,
    pub bytes: Vec<u8>,
}

/// `=?UTF-8?B?…?=` for a header value with non-ASCII text.
fn b_word(s: &str) -> String {
    format!("=?UTF-8?B?{}?=", B64.encode(s))
}

/// LF → CRLF (input never has CR).
fn crlf(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 30);
    for line in s.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(l) => {
                out.extend_from_slice(l.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(line.as_bytes()),
        }
    }
    out
}

/// base64 in 76-column lines.
fn b64_lines(data: &[u8]) -> String {
    let text = B64.encode(data);
    let mut out = String::with_capacity(text.len() + text.len() / 76 + 1);
    for chunk in text.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// A 1×1 PNG (a grey pixel), for the attachment example.
const PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

struct Builder {
    now: OffsetDateTime,
    messages: Vec<(OffsetDateTime, String)>,
}

impl Builder {
    fn add(&mut self, age: Duration, headers: &str, body: &str) {
        let date = self.now - age;
        let stamp = date.format(&Rfc2822).unwrap_or_default();
        let id = self.messages.len() + 1;
        let text = format!(
            "Return-Path: <{rp}>\nReceived: from mx1.demo.example (mx1.demo.example [192.0.2.25])\n\tby pop.demo.example with ESMTPS id D{id:04}; {stamp}\nDate: {stamp}\n{headers}\nMIME-Version: 1.0\n\n{body}",
            rp = headers
                .lines()
                .find_map(|l| l.strip_prefix("From: "))
                .and_then(|f| f.rsplit_once('<').map(|(_, a)| a.trim_end_matches('>')))
                .unwrap_or("postmaster@demo.example"),
        );
        self.messages.push((date, text));
    }
}

/// The mailbox, oldest first (message 1 is the oldest).
pub fn messages(now: OffsetDateTime) -> Vec<Message> {
    let mut b = Builder { now, messages: Vec::new() };
    let h = Duration::hours;
    let m = Duration::minutes;

    b.add(
        Duration::days(6),
        "From: Postmaster <postmaster@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: Welcome to the pop3-wasm demo mailbox\nMessage-ID: <welcome.1@demo.example>\nContent-Type: text/plain; charset=us-ascii",
        "Hello,\n\nthis mailbox lives in the memory of `ws-bridge demo` and starts fresh every\ntime the demo starts. Everything you do to it is real for this run: DELE a\nmessage, QUIT, and it is gone until the demo restarts.\n\nThings to try:\n  - open the message with the attachments, and the HTML newsletter;\n  - mark a message deleted, then \"Disconnect and keep everything\" (nothing\n    is deleted), and \"Quit and delete marked\" (the server commits it);\n  - the playground: type LIST, UIDL, TOP 1 0, RETR 1 and watch the dialogue.\n\n-- \nThe postmaster\n",
    );

    // A long thread about a migration, with quoting.
    let thread = [
        (
            "Alice Admin <alice@demo.example>",
            "Planned POP3 migration to the new mail store",
            None,
            "Hi all,\n\nwe move the POP3 service to the new mail store on Saturday, 06:00-08:00 UTC.\nPOP3 on 110 (STLS) and 995 stay where they are; the certificate changes.\n\nPlease check your monitoring afterwards.\n\nAlice\n",
        ),
        (
            "Bob Operator <bob@demo.example>",
            "Re: Planned POP3 migration to the new mail store",
            Some(1),
            "Alice Admin wrote:\n> we move the POP3 service to the new mail store on Saturday, 06:00-08:00 UTC.\n\nWill UIDLs survive the move? Our clients that \"leave mail on server\" will\ndownload everything again if they change.\n\nBob\n",
        ),
        (
            "Alice Admin <alice@demo.example>",
            "Re: Planned POP3 migration to the new mail store",
            Some(2),
            "Bob Operator wrote:\n> Will UIDLs survive the move?\n\nYes: the migration keeps UIDVALIDITY and the UIDs, and the UIDL format is\nunchanged. I will compare UIDL output before and after for a sample of\nmailboxes.\n\nAlice\n",
        ),
        (
            "Carol Helpdesk <carol@demo.example>",
            "Re: Planned POP3 migration to the new mail store",
            Some(3),
            "Alice Admin wrote:\n> I will compare UIDL output before and after for a sample of mailboxes.\n\nCould you include the shared helpdesk mailbox? It has 40k messages.\n\nCarol\n",
        ),
        (
            "Alice Admin <alice@demo.example>",
            "Re: Planned POP3 migration to the new mail store",
            Some(4),
            "Carol Helpdesk wrote:\n> Could you include the shared helpdesk mailbox?\n\nDone: UIDL identical for all 40 312 messages, STAT identical, LIST sizes\nidentical. Migration finished at 07:12 UTC.\n\nAlice\n",
        ),
    ];
    for (i, (from, subject, parent, body)) in thread.iter().enumerate() {
        let mut headers = format!(
            "From: {from}\nTo: ops@demo.example\nCc: Demo User <demo@demo.example>\nSubject: {subject}\nMessage-ID: <migration.{}@demo.example>",
            i + 1
        );
        if let Some(p) = parent {
            let refs: Vec<String> = (1..=*p).map(|n| format!("<migration.{n}@demo.example>")).collect();
            let _ = write!(
                headers,
                "\nIn-Reply-To: <migration.{p}@demo.example>\nReferences: {}",
                refs.join(" ")
            );
        }
        headers.push_str("\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit");
        b.add(Duration::days(5) - h(7 * i as i64), &headers, body);
    }

    // Non-ASCII names and subjects, three ways.
    b.add(
        Duration::days(3) + h(4),
        &format!(
            "From: {} <juergen@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: {}\nMessage-ID: <gruesse.1@demo.example>\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable",
            b_word("Jürgen Müller"),
            b_word("Grüße aus München – Wartungsfenster am Sonntag")
        ),
        "Hallo zusammen,\n\nam Sonntag zwischen 02:00 und 04:00 Uhr starten wir die Mailserver neu.\nPOP3 ist in dieser Zeit f=C3=BCr etwa f=C3=BCnf Minuten nicht erreichbar.\n\nViele Gr=C3=BC=C3=9Fe\nJ=C3=BCrgen\n",
    );
    b.add(
        Duration::days(3),
        &format!(
            "From: {} <yamada@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: {}\nMessage-ID: <oshirase.1@demo.example>\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
            b_word("山田 太郎"),
            b_word("メンテナンスのお知らせ")
        ),
        &b64_lines("デモ用のメールボックスです。\n日曜日の午前2時から4時までメンテナンスを行います。\n\n山田\n".as_bytes()),
    );
    b.add(
        Duration::days(2) + h(20),
        "From: =?ISO-8859-1?Q?Fran=E7ois_L=E9ger?= <francois@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: =?ISO-8859-1?Q?R=E9union_au_caf=E9_=E0_10h?=\nMessage-ID: <cafe.1@demo.example>\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable",
        "Bonjour,\n\nr=E9union au caf=E9 =E0 10h pour parler de la migration.\n\nFran=E7ois\n",
    );

    // Multipart with attachments.
    let csv = "mailbox,messages,octets\nalice,1204,88213409\nbob,87,1203344\ncarol,40312,4021118876\ndemo,12,1650000\n";
    b.add(
        Duration::days(2),
        "From: Storage Monitor <monitor@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: Weekly mailbox usage report (CSV and chart attached)\nMessage-ID: <usage.2024w1@demo.example>\nContent-Type: multipart/mixed; boundary=\"=_usage_report\"",
        &format!(
            "This is a multi-part message in MIME format.\n\n--=_usage_report\nContent-Type: text/plain; charset=us-ascii\n\nWeekly mailbox usage: 4 mailboxes, 4.1 GB in total.\nThe largest is carol (40312 messages). Details in usage.csv.\n\n--=_usage_report\nContent-Type: text/csv; charset=us-ascii; name=\"usage.csv\"\nContent-Disposition: attachment; filename=\"usage.csv\"\nContent-Transfer-Encoding: base64\n\n{}\n--=_usage_report\nContent-Type: image/png; name=\"chart.png\"\nContent-Disposition: attachment; filename=\"chart.png\"\nContent-Transfer-Encoding: base64\n\n{PIXEL_PNG}\n\n--=_usage_report--\n",
            b64_lines(csv.as_bytes())
        ),
    );

    // HTML: an alternative with a text part, then HTML only (with a script).
    b.add(
        Duration::days(1) + h(6),
        "From: Mail Ops Weekly <newsletter@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: Mail Ops Weekly: STLS everywhere\nMessage-ID: <weekly.42@demo.example>\nList-Unsubscribe: <mailto:unsubscribe@demo.example>\nContent-Type: multipart/alternative; boundary=\"alt-42\"",
        "--alt-42\nContent-Type: text/plain; charset=utf-8\n\nMail Ops Weekly #42\n\nSTLS everywhere: why port 110 without TLS should refuse USER/PASS.\nRead more at https://demo.example/weekly/42\n\n--alt-42\nContent-Type: text/html; charset=utf-8\n\n<!doctype html><html><body style=\"font-family:sans-serif\">\n<h1>Mail Ops Weekly #42</h1>\n<p><b>STLS everywhere</b>: why port 110 without TLS should refuse USER/PASS.</p>\n<p><a href=\"https://demo.example/weekly/42\">Read more</a></p>\n<img src=\"https://tracker.demo.example/open.gif?u=demo\" width=\"1\" height=\"1\" alt=\"\">\n</body></html>\n\n--alt-42--\n",
    );
    b.add(
        Duration::days(1),
        "From: \"Security Team\" <security@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: Action required: confirm your mailbox\nMessage-ID: <phish-test.7@demo.example>\nContent-Type: text/html; charset=utf-8",
        "<html><head><script>alert('scripts in mail must never run')</script></head>\n<body onload=\"document.title='pwned'\">\n<p>This is a <em>phishing drill</em> from the security team.</p>\n<p>A mail page must show this HTML as text: the script above and the onload\nhandler must never run, and the image below must never load.</p>\n<img src=\"x\" onerror=\"document.body.innerHTML='pwned'\">\n<p>If you reported this message, thank you.</p>\n</body></html>\n",
    );

    // A bounce, as a postmaster sees them every day.
    b.add(
        h(20),
        "From: Mail Delivery System <MAILER-DAEMON@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: Undelivered Mail Returned to Sender\nMessage-ID: <bounce.9@demo.example>\nAuto-Submitted: auto-replied\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"dsn-9\"",
        "--dsn-9\nContent-Type: text/plain; charset=us-ascii\n\nThis is the mail system at host mx1.demo.example.\n\nI'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n<nobody@invalid.example>: host mx.invalid.example said: 550 5.1.1 User unknown\n\n--dsn-9\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx1.demo.example\n\nFinal-Recipient: rfc822; nobody@invalid.example\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n\n--dsn-9\nContent-Type: text/rfc822-headers\n\nFrom: Demo User <demo@demo.example>\nTo: nobody@invalid.example\nSubject: Test\n\n--dsn-9--\n",
    );

    // Lines that start with a dot: the wire must stuff them, the client unstuff them.
    b.add(
        h(6) + m(30),
        "From: Bob Operator <bob@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: Dot-files and a lone dot (dot-stuffing check)\nMessage-ID: <dots.1@demo.example>\nContent-Type: text/plain; charset=us-ascii",
        "These lines start with dots; POP3 doubles the dot on the wire:\n.forward\n.procmailrc\n..two dots\n.\nThe line above is a single dot, and it did not end this message.\n",
    );

    // The large one: a mail log attached, about 1.5 MB on the wire.
    let mut log = String::with_capacity(1_200_000);
    let mut n: u64 = 0x2545_f491_4f6c_dd1d;
    let start = now - Duration::days(1);
    let mut i = 0u64;
    while log.len() < 1_100_000 {
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        let t = start + Duration::seconds((i * 3) as i64);
        let user = ["alice", "bob", "carol", "demo", "juergen"][(n % 5) as usize];
        let what = match n % 7 {
            0 => format!(
                "Login: user=<{user}>, method=PLAIN, rip=198.51.100.{}, lip=192.0.2.10, mpid={}, TLS",
                n % 250,
                10000 + n % 50000
            ),
            1 => format!(
                "Disconnected: Logged out top=0/0, retr=1/{}, del=0/12, size={}",
                n % 90000,
                n % 900000
            ),
            2 => format!("Login: user=<{user}>, method=SCRAM-SHA-256, rip=203.0.113.{}, TLS", n % 250),
            3 => format!(
                "auth failed, 1 attempts in 2 secs: user=<{user}>, method=PLAIN, rip=198.51.100.{}",
                n % 250
            ),
            4 => format!("Disconnected: Logged out top=12/3820, retr=0/0, del=0/12, size={}", n % 9000000),
            5 => format!(
                "Connection closed (UIDL finished 0.{:03} secs ago) in={} out={}",
                n % 1000,
                n % 100,
                n % 10000
            ),
            _ => format!("Login: user=<{user}>, method=PLAIN, rip=192.0.2.{}, secured", n % 250),
        };
        let _ = writeln!(
            log,
            "{} mail dovecot: pop3({user})<{}>: {what}",
            t.format(&Rfc2822).unwrap_or_default(),
            4000 + n % 5000
        );
        i += 1;
    }
    b.add(
        h(1),
        "From: Log Archive <logs@demo.example>\nTo: Demo User <demo@demo.example>\nSubject: Mail log export for yesterday (1.5 MB attachment)\nMessage-ID: <maillog.export@demo.example>\nContent-Type: multipart/mixed; boundary=\"log-export\"",
        &format!(
            "--log-export\nContent-Type: text/plain; charset=us-ascii\n\nYesterday's POP3 log, {} lines, attached as maillog.txt.\n\n--log-export\nContent-Type: text/plain; charset=us-ascii; name=\"maillog.txt\"\nContent-Disposition: attachment; filename=\"maillog.txt\"\nContent-Transfer-Encoding: base64\n\n{}\n--log-export--\n",
            i,
            b64_lines(log.as_bytes())
        ),
    );

    b.messages.sort_by_key(|(date, _)| *date);
    b.messages
        .into_iter()
        .enumerate()
        .map(|(i, (_, text))| Message {
            uid: format!("demo-{:04}-{}", i + 1, uid_suffix(&text)),
            bytes: crlf(&text),
        })
        .collect()
}

/// A short, stable tag per message (FNV-1a of its Message-ID line).
fn uid_suffix(text: &str) -> String {
    let id = text.lines().find(|l| l.starts_with("Message-ID:")).unwrap_or(text);
    let hash =
        id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{:08x}", hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dozen_messages_with_one_large() {
        let msgs = messages(OffsetDateTime::now_utc());
        assert_eq!(msgs.len(), 15);
        let large = msgs.iter().filter(|m| m.bytes.len() > 1_000_000).count();
        assert_eq!(large, 1);
        assert!(msgs.iter().map(|m| m.bytes.len()).max().unwrap() < 2_000_000);
        for m in &msgs {
            // CRLF only, no bare LF or CR; headers then a blank line.
            assert!(!m.bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "{}", m.uid);
            assert!(m.bytes.windows(4).any(|w| w == b"\r\n\r\n"));
        }
        let uids: std::collections::HashSet<_> = msgs.iter().map(|m| &m.uid).collect();
        assert_eq!(uids.len(), msgs.len());
        assert!(msgs[0].bytes.starts_with(b"Return-Path: <postmaster@demo.example>\r\n"));
    }
}
