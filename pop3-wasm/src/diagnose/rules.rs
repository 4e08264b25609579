//! The rules that judge what a session saw, as pure functions over facts:
//! UIDL sanity (RFC 1939 § 7), what changed between two CAPA answers, the
//! certificate's names against the host (RFC 6125), dates, what the first
//! bytes from a port were, and which big provider a server is.

use std::net::IpAddr;

// ------------------------------------------------------------------ UIDL

/// The longest unique-id RFC 1939 § 7 allows.
pub const UID_MAX_LEN: usize = 70;
/// How many offending entries a check keeps (the count is always whole).
const KEEP: usize = 20;

/// What a UIDL listing is worth to a client that leaves mail on the
/// server: RFC 1939 § 7 wants every unique-id unique within the maildrop,
/// 1 to 70 characters, each in 0x21..=0x7E.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidlCheck {
    /// Entries listed.
    pub count: usize,
    /// The longest unique-id, in octets.
    pub longest: usize,
    /// Unique-ids given to more than one message: the id and its message
    /// numbers (at most 20 kept; `duplicate_count` counts them all).
    pub duplicates: Vec<(String, Vec<u32>)>,
    pub duplicate_count: usize,
    /// Message numbers whose unique-id has octets outside 0x21..=0x7E.
    pub unprintable: Vec<u32>,
    pub unprintable_count: usize,
    /// Message numbers whose unique-id is longer than 70 octets.
    pub too_long: Vec<u32>,
    pub too_long_count: usize,
    /// Lines that are not `msg uid`, as sent (at most 20, cut to 80 chars).
    pub malformed: Vec<String>,
    pub malformed_count: usize,
    /// Message numbers listed twice.
    pub repeated_numbers: usize,
}

impl UidlCheck {
    /// Nothing a client could trip over.
    pub fn ok(&self) -> bool {
        self.duplicate_count == 0
            && self.unprintable_count == 0
            && self.too_long_count == 0
            && self.malformed_count == 0
            && self.repeated_numbers == 0
    }
}

fn keep<T>(v: &mut Vec<T>, n: &mut usize, item: T) {
    *n += 1;
    if v.len() < KEEP {
        v.push(item);
    }
}

/// Checks a UIDL body (the multi-line answer, unstuffed, without its
/// terminator). Never fails: what is wrong is what it reports.
pub fn check_uidl(body: &[u8]) -> UidlCheck {
    let mut c = UidlCheck::default();
    let mut seen: Vec<(&[u8], u32)> = Vec::new();
    let mut numbers: Vec<u32> = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .iter()
            .position(|b| *b == b' ')
            .and_then(|sp| {
                let n = std::str::from_utf8(&line[..sp]).ok()?.parse::<u32>().ok()?;
                Some((n, &line[sp + 1..]))
            })
            .filter(|(n, uid)| *n > 0 && !uid.is_empty());
        let Some((n, uid)) = parsed else {
            let text = String::from_utf8_lossy(line).chars().take(80).collect();
            keep(&mut c.malformed, &mut c.malformed_count, text);
            continue;
        };
        c.count += 1;
        c.longest = c.longest.max(uid.len());
        numbers.push(n);
        if uid.iter().any(|b| !(0x21..=0x7e).contains(b)) {
            keep(&mut c.unprintable, &mut c.unprintable_count, n);
        }
        if uid.len() > UID_MAX_LEN {
            keep(&mut c.too_long, &mut c.too_long_count, n);
        }
        seen.push((uid, n));
    }
    numbers.sort_unstable();
    c.repeated_numbers = numbers.windows(2).filter(|w| w[0] == w[1]).count();
    seen.sort();
    for group in seen.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        let ids = group.iter().map(|(_, n)| *n).collect();
        keep(
            &mut c.duplicates,
            &mut c.duplicate_count,
            (String::from_utf8_lossy(group[0].0).into_owned(), ids),
        );
    }
    c
}

// ------------------------------------------------------------- capabilities

/// What changed from one CAPA answer to the next, by capability (the
/// first word, any case): lines that came, went, or kept their name and
/// changed their arguments (`LOGIN-DELAY 900` → `LOGIN-DELAY 0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapaChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// (before, after).
    pub changed: Vec<(String, String)>,
}

impl CapaChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn tag(line: &str) -> String {
    line.split_ascii_whitespace().next().unwrap_or("").to_ascii_uppercase()
}

/// Lines with the same name as `t`, joined (a server may repeat one, e.g.
/// two SASL lines), in a form that ignores case and spacing.
fn lines_of(lines: &[String], t: &str) -> (String, String) {
    let same: Vec<&String> = lines.iter().filter(|l| tag(l) == t).collect();
    let shown = same.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" | ");
    let norm = same
        .iter()
        .map(|l| l.split_ascii_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join("\n");
    (shown, norm)
}

pub fn capa_diff(before: &[String], after: &[String]) -> CapaChange {
    let mut change = CapaChange::default();
    let mut tags: Vec<String> = Vec::new();
    for l in before.iter().chain(after) {
        let t = tag(l);
        if !t.is_empty() && !tags.contains(&t) {
            tags.push(t);
        }
    }
    for t in tags {
        let (was, was_norm) = lines_of(before, &t);
        let (now, now_norm) = lines_of(after, &t);
        match (was.is_empty(), now.is_empty()) {
            (true, false) => change.added.push(now),
            (false, true) => change.removed.push(was),
            (false, false) if was_norm != now_norm => change.changed.push((was, now)),
            _ => {}
        }
    }
    change
}

// ------------------------------------------------------------------ names

/// Whether a certificate with these subjectAltNames is valid for `host`
/// (RFC 6125: DNS names case-insensitively, a wildcard only as the whole
/// leftmost label and standing for exactly one label; an IP address only
/// against an IP SAN).
pub fn name_matches(host: &str, dns_names: &[String], ip_addresses: &[String]) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip_addresses.iter().any(|a| a.parse::<IpAddr>().is_ok_and(|a| a == ip));
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    dns_names.iter().any(|pattern| {
        let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(rest) => host
                .split_once('.')
                .is_some_and(|(first, tail)| !first.is_empty() && tail == rest && rest.contains('.')),
            None => pattern == host,
        }
    })
}

// ------------------------------------------------------------------ dates

/// Seconds since 1970 of an RFC 3339 time (`2030-01-01T00:00:00Z`,
/// fractions and offsets allowed), as the certificates' dates are written.
pub fn unix_secs(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let secs = num(t.len() - 5..t.len() - 3)? * 3600 + num(t.len() - 2..t.len())? * 60;
            if o.starts_with('+') { secs } else { -secs }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// Whole days from `now_ms` (ms since 1970) until `t`, rounded down
/// (negative once past).
pub fn days_until(t: &str, now_ms: f64) -> Option<i64> {
    let secs = unix_secs(t)?;
    let now = (now_ms / 1000.0).floor() as i64;
    Some((secs - now).div_euclid(86_400))
}

// ---------------------------------------------------------- first bytes

/// What the first bytes a port sent look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Nothing came.
    Nothing,
    /// A POP3 status line (`+OK …`, `-ERR …`): the line, cut to 80 chars.
    Pop3(String),
    /// A TLS record (a handshake message or an alert).
    Tls,
    /// Another protocol's greeting: its name and the line.
    Other(&'static str, String),
    /// Something else.
    Unknown,
}

fn first_line(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == b'\r' || *b == b'\n').unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).chars().take(80).collect()
}

pub fn classify(bytes: &[u8]) -> Seen {
    let starts = |p: &[u8]| bytes.len() >= p.len() && bytes[..p.len()].eq_ignore_ascii_case(p);
    if bytes.is_empty() {
        return Seen::Nothing;
    }
    // A TLS record: content type 20..=23 (change_cipher_spec, alert,
    // handshake, application_data), then version 3.x.
    if (0x14..=0x17).contains(&bytes[0]) && bytes.get(1) == Some(&3) {
        return Seen::Tls;
    }
    if starts(b"+OK") || starts(b"-ERR") {
        return Seen::Pop3(first_line(bytes));
    }
    let other = [
        (&b"220"[..], "SMTP"),
        (b"* OK", "IMAP"),
        (b"* PREAUTH", "IMAP"),
        (b"* BYE", "IMAP"),
        (b"SSH-", "SSH"),
        (b"HTTP/", "HTTP"),
        (b"200 ", "NNTP"),
    ];
    match other.iter().find(|(p, _)| starts(p)) {
        Some((_, name)) => Seen::Other(name, first_line(bytes)),
        None => Seen::Unknown,
    }
}

// ---------------------------------------------------------------- providers

/// A big mail provider, and what is known about its POP3 service.
#[derive(Debug, PartialEq, Eq)]
pub struct Provider {
    pub id: &'static str,
    pub name: &'static str,
    /// What a postmaster should know, whatever happened.
    pub notes: &'static [&'static str],
    /// What to do when the login is refused.
    pub login_hint: &'static str,
    /// Host names (suffixes, lower case) and greeting words that identify it.
    hosts: &'static [&'static str],
    greetings: &'static [&'static str],
}

pub static PROVIDERS: [Provider; 3] = [
    Provider {
        id: "gmail",
        name: "Gmail",
        notes: &[
            "Gmail hands each message out once (\"popped\"): after a session has downloaded it, it no longer appears in later sessions, whatever the client does; Gmail's POP setting decides whether it is kept, archived or deleted there.",
            "Recent mode: logging in as recent:user@gmail.com lists the last 30 days of mail, popped or not, so that several clients can each fetch everything.",
            "POP must be enabled in Gmail's settings (Forwarding and POP/IMAP).",
        ],
        login_hint: "Gmail refuses the account password here: log in with an app password (Google account, Security, 2-Step Verification, App passwords) or with an OAuth 2.0 token (XOAUTH2/OAUTHBEARER, scope https://mail.google.com/). Check that POP is enabled in Gmail's settings.",
        hosts: &["gmail.com", "googlemail.com"],
        greetings: &["gpop"],
    },
    Provider {
        id: "microsoft",
        name: "Microsoft 365 / Outlook.com",
        notes: &[
            "Exchange Online has turned basic authentication (USER/PASS, PLAIN, LOGIN) off for POP: only OAuth 2.0 (XOAUTH2) logs in.",
            "Its XOAUTH2 takes the token after the server's \"+\" continuation (AUTH XOAUTH2, then the base64 on a line of its own), which is what this client sends for a token that does not fit the AUTH line.",
            "POP must be enabled for the mailbox (Set-CASMailbox -PopEnabled $true) and the app registered for the POP.AccessAsUser.All permission.",
        ],
        login_hint: "Microsoft 365 and Outlook.com refuse passwords for POP (basic authentication is off): log in with an OAuth 2.0 access token (XOAUTH2, scope https://outlook.office.com/POP.AccessAsUser.All), and check that POP is enabled for the mailbox.",
        hosts: &["outlook.office365.com", "office365.com", "outlook.com", "hotmail.com", "live.com"],
        greetings: &["microsoft exchange pop3"],
    },
    Provider {
        id: "yahoo",
        name: "Yahoo Mail",
        notes: &[
            "Yahoo Mail refuses the account password for POP: it wants an app password (Account security, Generate app password) or an OAuth 2.0 token.",
        ],
        login_hint: "Yahoo refuses the account password here: generate an app password (Yahoo account, Account security, Generate app password) and log in with it, or use an OAuth 2.0 token (XOAUTH2).",
        hosts: &["yahoo.com", "ymail.com", "aol.com"],
        greetings: &["yahoo", "popgate"],
    },
];

/// The provider a server belongs to, by its host name (the name or a
/// parent domain) or by words of its greeting.
pub fn recognise(host: &str, greeting: Option<&str>) -> Option<&'static Provider> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let greeting = greeting.unwrap_or("").to_ascii_lowercase();
    PROVIDERS.iter().find(|p| {
        p.hosts.iter().any(|h| host == *h || host.strip_suffix(h).is_some_and(|s| s.ends_with('.')))
            || p.greetings.iter().any(|g| greeting.contains(g))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_uidl_listing_is_ok() {
        let c = check_uidl(b"1 0000000167\r\n2 whqtswO00WBw418f9t5JxYwZ\r\n");
        assert!(c.ok(), "{c:?}");
        assert_eq!((c.count, c.longest), (2, 24));
    }

    #[test]
    fn uidl_duplicates_unprintables_long_ids_and_garbage_are_each_reported() {
        let long = "x".repeat(71);
        let body = format!(
            "1 same\r\n2 same\r\n3 has\x01ctl\r\n4 {long}\r\n5 ok\r\nnot-a-line\r\n6\r\n5 again\r\n7 same\r\n"
        );
        let c = check_uidl(body.as_bytes());
        assert_eq!(c.duplicates, [("same".to_string(), vec![1, 2, 7])]);
        assert_eq!(c.unprintable, [3]);
        assert_eq!(c.too_long, [4]);
        assert_eq!(c.malformed, ["not-a-line", "6"]);
        assert_eq!(c.repeated_numbers, 1);
        assert_eq!(c.longest, 71);
        assert!(!c.ok());
        // Exactly 70 is allowed; a space inside an id is not printable here.
        assert!(check_uidl(format!("1 {}\r\n", "y".repeat(70)).as_bytes()).ok());
        assert_eq!(check_uidl(b"1 a b\r\n").unprintable, [1]);
    }

    #[test]
    fn the_capability_diff_names_what_came_went_and_changed() {
        let lines = |s: &str| s.split('|').map(str::to_string).collect::<Vec<_>>();
        let d = capa_diff(
            &lines("TOP|USER|SASL PLAIN|STLS|LOGIN-DELAY 900"),
            &lines("top|SASL PLAIN XOAUTH2|LOGIN-DELAY 900|PIPELINING|USER"),
        );
        assert_eq!(d.added, ["PIPELINING"]);
        assert_eq!(d.removed, ["STLS"]);
        assert_eq!(d.changed, [("SASL PLAIN".to_string(), "SASL PLAIN XOAUTH2".to_string())]);
        assert!(capa_diff(&lines("A|B"), &lines("b|a")).is_empty());
    }

    #[test]
    fn names_match_as_rfc_6125_says() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(name_matches("pop.Example.com.", &n(&["pop.example.com"]), &[]));
        assert!(name_matches("pop.example.com", &n(&["*.example.com"]), &[]));
        assert!(!name_matches("a.pop.example.com", &n(&["*.example.com"]), &[]));
        assert!(!name_matches("example.com", &n(&["*.example.com"]), &[]));
        assert!(!name_matches("pop.com", &n(&["*.com"]), &[]));
        assert!(name_matches("127.0.0.1", &[], &n(&["127.0.0.1"])));
        assert!(!name_matches("127.0.0.1", &n(&["127.0.0.1"]), &[]), "an IP only against IP SANs");
        assert!(name_matches("[::1]", &[], &n(&["::1"])));
    }

    #[test]
    fn rfc_3339_dates_and_days() {
        assert_eq!(unix_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_secs("2030-01-01T00:00:00Z"), Some(1_893_456_000));
        assert_eq!(unix_secs("2030-01-01T01:00:00.123+01:00"), Some(1_893_456_000));
        assert_eq!(unix_secs("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(unix_secs("2030-13-01T00:00:00Z"), None);
        assert_eq!(unix_secs("soon"), None);
        let now = 1_893_456_000_000.0;
        assert_eq!(days_until("2030-01-15T00:00:00Z", now), Some(14));
        assert_eq!(days_until("2029-12-31T23:00:00Z", now), Some(-1));
    }

    #[test]
    fn first_bytes_say_which_protocol_answered() {
        assert_eq!(classify(b""), Seen::Nothing);
        assert_eq!(classify(b"\x15\x03\x03\x00\x02\x02\x46"), Seen::Tls);
        assert_eq!(classify(b"\x16\x03\x03\x00\x7a\x02"), Seen::Tls);
        assert_eq!(classify(b"+OK Dovecot ready.\r\n"), Seen::Pop3("+OK Dovecot ready.".into()));
        assert_eq!(classify(b"-ERR [SYS/TEMP] busy\r\n"), Seen::Pop3("-ERR [SYS/TEMP] busy".into()));
        assert_eq!(
            classify(b"220 mx.example.com ESMTP\r\n"),
            Seen::Other("SMTP", "220 mx.example.com ESMTP".into())
        );
        assert_eq!(
            classify(b"* OK [CAPABILITY IMAP4rev1] ready\r\n").clone(),
            Seen::Other("IMAP", "* OK [CAPABILITY IMAP4rev1] ready".into())
        );
        assert_eq!(classify(b"\x00\x01garbage"), Seen::Unknown);
    }

    #[test]
    fn providers_by_host_or_greeting() {
        assert_eq!(recognise("pop.gmail.com", None).map(|p| p.id), Some("gmail"));
        assert_eq!(
            recognise("mail.example.com", Some("Gpop ready for requests from 192.0.2.1")).map(|p| p.id),
            Some("gmail")
        );
        assert_eq!(recognise("outlook.office365.com", None).map(|p| p.id), Some("microsoft"));
        assert_eq!(
            recognise("pop.example.com", Some("The Microsoft Exchange POP3 service is ready.")).map(|p| p.id),
            Some("microsoft")
        );
        assert_eq!(recognise("pop.mail.yahoo.com", None).map(|p| p.id), Some("yahoo"));
        assert_eq!(recognise("notgmail.com", None), None);
        assert_eq!(recognise("localhost", Some("Dovecot (Debian) ready.")), None);
    }
}
