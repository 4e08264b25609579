//! The report: each step's status, time, detail and the hint that applies
//! to its failure (or warning), and the whole as JSON. The wording is a
//! postmaster's: which port, which mode, which name, what to change.

use super::{
    Diagnosis, Facts, Mark, Probe, ProbeSaw, UidlAnswer,
    json::Json,
    rules::{self, Seen},
};
use crate::{
    driver::{Failure, Millis, TlsPlace, ms_text},
    proto::{Capabilities, Deviation, ErrorCode, Expire, readable},
    tls::CertificateDetails,
    wire::{self, ConnectFailure, TlsMode, TlsReason},
};

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// It worked, with something to look at.
    Warn,
    Fail,
    /// Not run: not reached, not asked for, or not applicable.
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One step of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `connect`, `tls`, `greeting`, `capa`, `stls`, `capa-after-stls`,
    /// `auth`, `capa-after-login`, `stat`, `uidl`.
    pub name: &'static str,
    pub status: Status,
    /// How long it took on the client's clock; `None` where the client
    /// cannot tell it apart (the bridge's TLS handshake is inside its
    /// connect, a STLS handshake inside `stls`) or it did not run.
    pub ms: Option<Millis>,
    pub detail: String,
    /// What to do about a failure or a warning.
    pub hint: Option<String>,
}

impl Step {
    /// It ran and passed, maybe with a warning.
    pub fn ok(&self) -> bool {
        matches!(self.status, Status::Pass | Status::Warn)
    }
}

fn step(
    name: &'static str,
    status: Status,
    ms: Option<Millis>,
    detail: String,
    hint: Option<String>,
) -> Step {
    Step { name, status, ms, detail, hint }
}

fn skip(name: &'static str, detail: impl Into<String>) -> Step {
    step(name, Status::Skip, None, detail.into(), None)
}

/// The steps of a session in `mode`, in the order they run.
fn order(mode: TlsMode) -> &'static [&'static str] {
    match mode {
        TlsMode::Starttls => &[
            "connect",
            "greeting",
            "capa",
            "stls",
            "tls",
            "capa-after-stls",
            "auth",
            "capa-after-login",
            "stat",
            "uidl",
        ],
        TlsMode::Implicit | TlsMode::None => {
            &["connect", "tls", "greeting", "capa", "auth", "capa-after-login", "stat", "uidl"]
        }
    }
}

/// The step the diagnosis failed at, if it failed: the phase that ended
/// in failure, except that a TLS failure inside the bridge's connect
/// (bridge-side implicit TLS) or after `+OK` to STLS belongs to `tls`.
pub(super) fn failed_step(f: &Facts) -> Option<&'static str> {
    let failure = f.failure.as_ref()?;
    let mark = f.marks.iter().rev().find(|m| !m.ok && m.end.is_some()).map(|m| m.name);
    let tls = failure.code == ErrorCode::TlsFailed;
    Some(match mark {
        Some("connect") if tls => "tls",
        Some("stls") if tls && failure.server_text.is_none() => "tls",
        Some(m) => m,
        None => "connect",
    })
}

/// Why TLS failed: the client's own reason (its engine, or Node's TLS
/// mapped by the direct transport), else read from the bridge's sentence
/// (the wire format's words: `TlsReason::sentence`).
pub(super) fn tls_reason(f: &Facts) -> Option<TlsReason> {
    let failure = f.failure.as_ref().filter(|x| x.code == ErrorCode::TlsFailed)?;
    if failure.tls_reason.is_some() {
        return failure.tls_reason;
    }
    let msg = bare(&failure.message);
    if msg.starts_with("server sent TLS alert") {
        return Some(TlsReason::Alert);
    }
    TlsReason::ALL
        .into_iter()
        .filter(|r| *r != TlsReason::Protocol)
        .find(|r| msg.starts_with(r.sentence()))
        .or_else(|| msg.starts_with(TlsReason::Protocol.sentence()).then_some(TlsReason::Protocol))
}

/// A failure message without the driver's `bridge: ` prefix.
fn bare(message: &str) -> &str {
    message.strip_prefix("bridge: ").unwrap_or(message)
}

fn step_ms(f: &Facts, name: &str) -> Option<Millis> {
    f.mark(name).and_then(Mark::ms)
}

pub(super) fn steps(d: &Diagnosis) -> Vec<Step> {
    let f = &*d.facts;
    let names = order(f.tls);
    let failed_at = failed_step(f).and_then(|n| names.iter().position(|x| *x == n));
    names
        .iter()
        .enumerate()
        .map(|(i, &name)| match failed_at {
            Some(k) if i == k => failed(d, name),
            Some(k) if i > k => skip(name, format!("not reached: {} failed", names[k])),
            _ => passed(d, name),
        })
        .collect()
}

// ------------------------------------------------------------ passed steps

fn passed(d: &Diagnosis, name: &'static str) -> Step {
    let f = &*d.facts;
    let ms = step_ms(f, name);
    let logged_in = f.mechanism.is_some();
    let pass = |detail: String| step(name, Status::Pass, ms, detail, None);
    match name {
        "connect" => pass(connect_detail(f)),
        "tls" => tls_passed(f),
        "greeting" => match &f.greeting {
            Some(g) => {
                let apop = if g.apop_timestamp.is_some() { " (with an APOP timestamp)" } else { "" };
                pass(format!("{}{apop}", greeting(f).unwrap_or_default()))
            }
            None => skip(name, "no greeting"),
        },
        "capa" => capa_passed(f, ms),
        "stls" => stls_passed(d, ms),
        "capa-after-stls" => capa_after_stls(f, ms),
        "auth" => match (&f.mechanism, f.credential, &f.user) {
            (Some(m), _, user) => {
                let who = user.as_deref().unwrap_or("");
                let detail = format!("logged in as {who} with {m}");
                if readable(m) && f.tls == TlsMode::None {
                    let hint = "The password went over the network readable (no TLS): use tls: 'starttls' or 'implicit'.";
                    step(name, Status::Warn, ms, detail, Some(hint.into()))
                } else {
                    pass(detail)
                }
            }
            (None, None, None) => skip(name, "no user given: the diagnosis stopped before the login"),
            (None, None, Some(_)) => {
                skip(name, "no password or token given: the diagnosis stopped before the login")
            }
            (None, Some(_), _) => skip(name, "not reached"),
        },
        _ if !logged_in => skip(name, "not logged in"),
        "capa-after-login" => capa_after_login(f, ms),
        "stat" => match f.stat {
            Some((count, size)) => pass(format!("{count} messages, {size} octets")),
            None => skip(name, "not run"),
        },
        "uidl" => uidl_step(f, ms),
        _ => skip(name, "not run"),
    }
}

/// The greeting line as sent (a bending server's `+OKready` too).
fn greeting(f: &Facts) -> Option<String> {
    let g = f.greeting.as_ref()?;
    Some(f.greeting_line.clone().unwrap_or_else(|| format!("+OK {}", g.text)))
}

fn connect_detail(f: &Facts) -> String {
    let (host, port) = (&f.host, f.port);
    match &f.bridge {
        Some(url) => {
            let v = f.subprotocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("no subprotocol");
            let what = match (f.end_to_end, f.tls) {
                (true, _) => " and relays the bytes as they are (end to end: it holds no key)",
                (false, TlsMode::Implicit) => " and did the TLS handshake (its time is in this step)",
                _ => "",
            };
            format!("WebSocket to {url} ({v}); the bridge connected to {host}:{port}{what}")
        }
        None => format!("TCP connection to {host}:{port}"),
    }
}

fn where_tls_ends(f: &Facts) -> &'static str {
    match f.tls_place {
        TlsPlace::Bridge => "TLS ends in the bridge (it sees the plaintext)",
        TlsPlace::Client if f.bridge.is_some() => {
            "TLS ends in this client (end to end: the bridge relays ciphertext only)"
        }
        TlsPlace::Client => "TLS ends in this client (its own rustls)",
        TlsPlace::Transport => "TLS ends in this process (Node's TLS)",
    }
}

fn offers_stls(f: &Facts) -> bool {
    f.capa.before_stls.as_ref().is_some_and(|c| c.stls)
}

fn tls_passed(f: &Facts) -> Step {
    let name = "tls";
    if f.tls == TlsMode::None {
        let hint = if offers_stls(f) {
            "The server offers STLS on this port: use tls: 'starttls'."
        } else {
            "Use implicit TLS (usually port 995), or STLS if the server offers it."
        };
        return step(
            name,
            Status::Warn,
            None,
            "no TLS (tls: 'none'): the password and the mail travel readable".into(),
            Some(hint.into()),
        );
    }
    let Some(t) = &f.tls_summary else { return skip(name, "no TLS session") };
    let ms = if f.tls == TlsMode::Implicit { step_ms(f, "tls") } else { None };
    let c = &t.info.certificate;
    let days = rules::days_until(&c.not_after, f.now);
    let mut detail = format!(
        "{}, {}; certificate {}, issued by {}, valid until {}",
        t.info.protocol, t.info.cipher, c.subject, c.issuer, c.not_after
    );
    if let Some(days) = days {
        detail.push_str(&format!(" ({days} days)"));
    }
    detail.push_str("; ");
    detail.push_str(where_tls_ends(f));
    if f.tls == TlsMode::Starttls {
        detail.push_str("; after STLS, timed with it");
    } else if f.tls_place == TlsPlace::Bridge {
        detail.push_str("; the bridge's handshake is timed with connect");
    }
    let mut warnings = Vec::new();
    if let Some(days) = days.filter(|d| *d < CERT_WARN_DAYS) {
        warnings.push(format!("The certificate expires in {days} days: renew it."));
    }
    if let Some(leaf) = f.chain.first() {
        if leaf.key_type == "RSA" && leaf.key_bits > 0 && leaf.key_bits < 2048 {
            warnings
                .push(format!("The certificate's key is RSA {} bits: use 2048 bits or more.", leaf.key_bits));
        }
        let sig = leaf.signature_algorithm.to_ascii_lowercase();
        if sig.contains("sha1") || sig.contains("md5") {
            warnings.push(format!(
                "The certificate is signed with {}: reissue it with SHA-256.",
                leaf.signature_algorithm
            ));
        }
    }
    match warnings.is_empty() {
        true => step(name, Status::Pass, ms, detail, None),
        false => step(name, Status::Warn, ms, detail, Some(warnings.join(" "))),
    }
}

/// A certificate expiring within this many days is a warning (what
/// `pop3-check --cert-warn-days` defaults to).
const CERT_WARN_DAYS: i64 = 14;

fn lines(caps: &Capabilities) -> String {
    caps.raw.join(", ")
}

fn capa_passed(f: &Facts, ms: Option<Millis>) -> Step {
    let name = "capa";
    match &f.capa.before_stls {
        Some(caps) if f.tls == TlsMode::Starttls && !caps.stls => step(
            name,
            Status::Warn,
            ms,
            lines(caps),
            Some("CAPA does not list STLS: the server may not offer it on this port.".into()),
        ),
        Some(caps) => step(name, Status::Pass, ms, lines(caps), None),
        None => step(
            name,
            Status::Warn,
            ms,
            "the server answered CAPA with -ERR: it has no RFC 2449 capabilities".into(),
            Some("Without CAPA a client cannot see the server's extensions (SASL, PIPELINING, UIDL…): it falls back to USER/PASS.".into()),
        ),
    }
}

fn stls_passed(d: &Diagnosis, ms: Option<Millis>) -> Step {
    let f = &*d.facts;
    let name = "stls";
    let handshake_failed = failed_step(f) == Some("tls");
    let detail = if handshake_failed {
        "+OK to STLS; the TLS handshake that followed failed (see tls)".to_string()
    } else {
        "+OK to STLS; TLS is up".to_string()
    };
    if f.deviations.contains(&Deviation::DataAfterStls) {
        let hint = "The server (or something between) sent data after its +OK to STLS and before the handshake; it was discarded. RFC 2595 § 4 forbids it: a STARTTLS command injection (CVE-2011-0411) looks like this. Find out where it comes from.";
        return step(
            name,
            Status::Warn,
            ms,
            format!("{detail}; data after +OK was discarded"),
            Some(hint.into()),
        );
    }
    step(name, Status::Pass, ms, detail, None)
}

fn change_text(c: &rules::CapaChange) -> String {
    if c.is_empty() {
        return "unchanged".into();
    }
    let mut parts: Vec<String> = c.added.iter().map(|l| format!("+{l}")).collect();
    parts.extend(c.removed.iter().map(|l| format!("-{l}")));
    parts.extend(c.changed.iter().map(|(a, b)| format!("{a} → {b}")));
    parts.join("; ")
}

fn capa_after_stls(f: &Facts, ms: Option<Millis>) -> Step {
    let name = "capa-after-stls";
    let (Some(before), Some(after)) = (&f.capa.before_stls, &f.capa.after_stls) else {
        return match &f.capa.after_stls {
            Some(after) => step(name, Status::Pass, ms, lines(after), None),
            None => step(
                name,
                Status::Warn,
                ms,
                "no CAPA after STLS".into(),
                Some("The server did not answer CAPA under TLS: the client logs in with what it offered before.".into()),
            ),
        };
    };
    let change = rules::capa_diff(&before.raw, &after.raw);
    let detail = format!("{} (after STLS: {})", change_text(&change), lines(after));
    if after.stls {
        let hint = "STLS is still offered after STLS: RFC 2595 § 4 says a server must not offer it again.";
        return step(name, Status::Warn, ms, detail, Some(hint.into()));
    }
    step(name, Status::Pass, ms, detail, None)
}

fn capa_after_login(f: &Facts, ms: Option<Millis>) -> Step {
    let name = "capa-after-login";
    let before = f.capa_before_login();
    match (&f.capa.after_login, before) {
        (Some(after), Some(before)) => {
            let change = rules::capa_diff(&before.raw, &after.raw);
            step(name, Status::Pass, ms, format!("{} (after login: {})", change_text(&change), lines(after)), None)
        }
        (Some(after), None) => step(name, Status::Pass, ms, lines(after), None),
        (None, None) => skip(name, "the server has no CAPA"),
        (None, Some(_)) => step(
            name,
            Status::Warn,
            ms,
            "no CAPA after login".into(),
            Some("The server did not answer CAPA after the login: per-user values (LOGIN-DELAY, EXPIRE, PIPELINING) stay unknown.".into()),
        ),
    }
}

fn uidl_step(f: &Facts, ms: Option<Millis>) -> Step {
    let name = "uidl";
    let Some(answer) = &f.uidl else { return skip(name, "not run") };
    let body = match answer {
        UidlAnswer::Refused(text) => {
            let hint = "Without UIDL a client cannot keep mail on the server: it cannot tell which messages it already has, and downloads them again.";
            return step(name, Status::Warn, ms, format!("-ERR {text}: no UIDL"), Some(hint.into()));
        }
        UidlAnswer::Listing(body) => body,
    };
    let c = rules::check_uidl(body);
    let mut problems = Vec::new();
    if c.duplicate_count > 0 {
        let shown: Vec<String> = c
            .duplicates
            .iter()
            .take(5)
            .map(|(uid, ids)| {
                let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
                format!("{uid} (messages {})", ids.join(", "))
            })
            .collect();
        problems.push(format!(
            "{} unique-ids given to more than one message: {}",
            c.duplicate_count,
            shown.join("; ")
        ));
    }
    let ids = |v: &[u32]| v.iter().take(10).map(u32::to_string).collect::<Vec<_>>().join(", ");
    if c.unprintable_count > 0 {
        problems.push(format!(
            "{} unique-ids with characters outside 0x21-0x7E (messages {})",
            c.unprintable_count,
            ids(&c.unprintable)
        ));
    }
    if c.too_long_count > 0 {
        problems.push(format!(
            "{} unique-ids longer than 70 characters (messages {}; longest {})",
            c.too_long_count,
            ids(&c.too_long),
            c.longest
        ));
    }
    if c.malformed_count > 0 {
        problems
            .push(format!("{} lines that are not \"msg uid\" (\"{}\")", c.malformed_count, c.malformed[0]));
    }
    if c.repeated_numbers > 0 {
        problems.push(format!("{} message numbers listed twice", c.repeated_numbers));
    }
    if let Some((count, _)) = f.stat.filter(|(n, _)| *n != c.count as u64) {
        problems.push(format!("UIDL lists {} messages, STAT said {count}", c.count));
    }
    if problems.is_empty() {
        let detail = if c.count == 0 {
            "an empty mailbox: nothing to check".to_string()
        } else {
            format!(
                "{} unique-ids: unique, printable, at most 70 characters (longest {}), as RFC 1939 § 7 asks",
                c.count, c.longest
            )
        };
        return step(name, Status::Pass, ms, detail, None);
    }
    let hint = "Clients that leave mail on the server recognise messages by their unique-id (RFC 1939 § 7: unique in the mailbox, 1 to 70 characters 0x21-0x7E): with these they skip messages or download them again. Fix the server's UIDL format (Dovecot: pop3_uidl_format).";
    step(name, Status::Warn, ms, problems.join("; "), Some(hint.into()))
}

// ------------------------------------------------------------ failed steps

/// `-ERR [CODE] text`, as the server said it, or the client's message.
fn said(failure: &Failure) -> String {
    match &failure.server_text {
        Some(text) => match &failure.resp_code {
            Some(code) => format!("-ERR [{code}] {text}"),
            None => format!("-ERR {text}"),
        },
        None => failure.message.clone(),
    }
}

fn failed(d: &Diagnosis, name: &'static str) -> Step {
    let f = &*d.facts;
    let Some(failure) = &f.failure else { return skip(name, "not run") };
    let ms = match name {
        // The bridge's TLS handshake failed inside its connect.
        "tls" => step_ms(f, "tls"),
        n => step_ms(f, n),
    };
    let hint = match name {
        "connect" => connect_hint(f, failure),
        "tls" => Some(tls_hint(d, failure)),
        "greeting" => greeting_hint(d, failure),
        "stls" => Some(stls_hint(f)),
        "auth" => auth_hint(f, failure),
        _ => resp_hint(failure.resp_code.as_deref(), f),
    };
    let detail = match name {
        "stls" | "auth" | "stat" | "uidl" | "greeting" => said(failure),
        _ => failure.message.clone(),
    };
    step(name, Status::Fail, ms, detail, hint)
}

fn connect_hint(f: &Facts, failure: &Failure) -> Option<String> {
    let msg = bare(&failure.message);
    let target = format!("{}:{}", f.host, f.port);
    let from = if f.bridge.is_some() { " (as the bridge's machine sees it)" } else { "" };
    let url = f.bridge.as_deref().unwrap_or("the bridge URL");
    Some(match failure.code {
        ErrorCode::BridgeUnreachable => format!(
            "Is ws-bridge running at {url}? The URL is ws:// or wss://, ending in /pop3. A browser does not say why a WebSocket fails: a bridge that refuses this page's origin (--origin) looks the same."
        ),
        ErrorCode::BridgeRejected if msg == wire::END_TO_END_REQUIRED => {
            "This bridge runs with --end-to-end-only: it never does TLS for a client, so that it never sees a password. Diagnose (and connect) with end-to-end TLS (endToEnd: true).".into()
        }
        ErrorCode::BridgeRejected if msg == wire::NOT_ALLOWED => format!(
            "The bridge's policy refused {target}. It relays only to what it allows: with --allow, exactly the HOST:PORT listed; without, public hosts on ports 110 and 995, never private addresses. If it requires tokens, the token is missing, expired, or for another host, port or TLS mode. The bridge says \"not allowed\" for all of these, and for a name that does not resolve, on purpose. Ask whoever runs the bridge."
        ),
        ErrorCode::BridgeRejected if msg.contains("HTTP 403") => format!(
            "The bridge refused the WebSocket itself (HTTP 403): this page's origin is not in its --origin list. Ask whoever runs {url} to add it."
        ),
        ErrorCode::BridgeRejected => format!(
            "The bridge turned the session away ({msg}): its limits (sessions per address, connection rates, transfer) are reached. Try again later, or ask its operator to raise them."
        ),
        ErrorCode::Unsupported if msg == wire::V1_NO_END_TO_END => {
            "This bridge speaks wire format v1 only: it cannot relay end-to-end TLS. Update ws-bridge, or diagnose without endToEnd.".into()
        }
        ErrorCode::ConnectFailed if msg == ConnectFailure::Refused.to_string() => format!(
            "Nothing listens on {target}{from}: the connection was refused. Is the POP3 server running, and is this its port? POP3 uses 110 (plain, STLS) and 995 (implicit TLS)."
        ),
        ErrorCode::ConnectFailed if msg == ConnectFailure::NoSuchHost.to_string() => format!(
            "The name {} does not resolve{from}: check its spelling and its DNS records (A/AAAA).",
            f.host
        ),
        ErrorCode::ConnectFailed if msg == ConnectFailure::TimedOut.to_string() => format!(
            "No answer from {target}{from}: a firewall drops the packets, or the host is down."
        ),
        ErrorCode::ConnectFailed => format!("The TCP connection to {target} failed{from}."),
        ErrorCode::Timeout => format!(
            "No answer from {target} in time{from}: a firewall drops the packets, or the host is down."
        ),
        _ => return None,
    })
}

/// The names the leaf certificate has (DNS, then IP addresses).
fn leaf_names(f: &Facts) -> Vec<String> {
    f.chain.first().map(|c| c.dns_names.iter().chain(&c.ip_addresses).cloned().collect()).unwrap_or_default()
}

fn trust_advice(f: &Facts) -> &'static str {
    match f.tls_place {
        TlsPlace::Bridge => "If the server uses a private CA, make the bridge trust it (--ca-file CA.pem).",
        _ => "If the server uses a private CA, trust it with the `ca` option (its certificate in PEM).",
    }
}

fn tls_hint(d: &Diagnosis, failure: &Failure) -> String {
    let f = &*d.facts;
    match tls_reason(f) {
        Some(TlsReason::Untrusted) => {
            let mut h = String::new();
            if let (Some(leaf), Some(last)) = (f.chain.first(), f.chain.last()) {
                h.push_str(&format!(
                    "The server sent {} certificate(s); the last one was issued by \"{}\", a CA this client does not trust. ",
                    f.chain.len(),
                    last.issuer
                ));
                if f.chain.len() == 1 && leaf.subject == leaf.issuer {
                    h.push_str("The certificate is self-signed. ");
                } else if f.chain.len() == 1 {
                    h.push_str("The server sends only its own certificate: if its CA is a public one, configure the server to send the intermediate certificate(s) too (the full chain). ");
                }
            } else {
                h.push_str("The certificate does not lead to a root the verifier trusts. ");
            }
            h.push_str(trust_advice(f));
            h
        }
        Some(TlsReason::Expired) => {
            let when = f.chain.first().map(|c| format!(" on {}", c.not_after)).unwrap_or_default();
            format!(
                "The server's certificate expired{when}: renew it and reload the server. If the date looks wrong, check the clock of the machine that checked it."
            )
        }
        Some(TlsReason::NotYetValid) => "The certificate is not valid yet: check the clock of the machine that checked it, and the certificate's dates.".into(),
        Some(TlsReason::WrongName) => {
            let names = leaf_names(f);
            if !names.is_empty() {
                format!(
                    "The certificate is for {}, not {}: connect with one of those names, or install a certificate that also names {}.",
                    names.join(", "),
                    f.host,
                    f.host
                )
            } else if f.tls_place == TlsPlace::Bridge {
                format!(
                    "The certificate does not name {}. The bridge does not report which names it has: diagnose end to end (endToEnd: true) to see them, or connect with the name the certificate is for.",
                    f.host
                )
            } else {
                format!("The certificate does not name {}: connect with the name it is for.", f.host)
            }
        }
        Some(TlsReason::BadCertificate) => "The certificate is unusable (revoked, a bad signature, or an algorithm refused): replace it.".into(),
        _ if f.tls == TlsMode::Starttls => format!(
            "The TLS handshake after STLS failed ({}): check the server's TLS set-up (certificate, key, protocol versions).",
            bare(&failure.message)
        ),
        reason => mode_hint_after_tls(d, reason),
    }
}

/// Implicit TLS broke on something that is not TLS: what the port speaks.
fn mode_hint_after_tls(d: &Diagnosis, reason: Option<TlsReason>) -> String {
    let f = &*d.facts;
    let p = f.port;
    match (rules::classify(&f.first_bytes), &d.probe) {
        (Seen::Pop3(line), _) => format!(
            "Port {p} answered in plain text (\"{line}\") where a TLS handshake was expected: it is a plain POP3 port (usually 110). Use tls: 'starttls' on it, or implicit TLS on the server's TLS port (usually 995)."
        ),
        (Seen::Other(proto, line), _) => other_protocol(p, proto, &line),
        (_, Some(Probe { saw: ProbeSaw::Plain { greeting, stls }, .. })) => {
            let (offers, then) = if *stls {
                (", and it offers STLS", "Use tls: 'starttls' on it")
            } else {
                (
                    ", without STLS",
                    "Use implicit TLS on the server's TLS port (usually 995), or tls: 'none' on a test server only",
                )
            };
            format!(
                "Port {p} speaks plain POP3: a second connection without TLS got its greeting (\"{greeting}\"){offers}. It is not an implicit-TLS port (those are usually 995). {then}."
            )
        }
        (_, Some(Probe { saw: ProbeSaw::Nothing { detail }, .. })) => format!(
            "The TLS handshake failed, and a plain connection got no greeting either ({detail}): is port {p} a POP3 port at all?"
        ),
        _ => {
            let alert = if reason == Some(TlsReason::Alert) {
                " The server answered with an alert: it may accept only TLS versions or ciphers this client does not offer (TLS 1.2 and 1.3)."
            } else {
                ""
            };
            format!(
                "The TLS handshake failed: is port {p} a TLS port? Implicit TLS is usually port 995; port 110 is plain POP3, upgraded with STLS (tls: 'starttls').{alert}"
            )
        }
    }
}

fn other_protocol(port: u16, proto: &str, line: &str) -> String {
    format!(
        "Port {port} speaks {proto}, not POP3 (it said \"{line}\"): POP3 is on port 110 (plain, STLS) and 995 (implicit TLS)."
    )
}

fn implicit_port(port: u16, how: &str) -> String {
    format!(
        "Port {port} {how}: it is an implicit-TLS port (usually 995), where the client starts with a TLS handshake. Use tls: 'implicit'."
    )
}

fn greeting_hint(d: &Diagnosis, failure: &Failure) -> Option<String> {
    let f = &*d.facts;
    let p = f.port;
    let seen = rules::classify(&f.first_bytes);
    match failure.code {
        ErrorCode::Timeout | ErrorCode::ConnectionClosed => Some(match (seen, &d.probe) {
            (Seen::Tls, _) => implicit_port(p, "answered with TLS where a POP3 greeting was expected"),
            (Seen::Other(proto, line), _) => other_protocol(p, proto, &line),
            (_, Some(Probe { saw: ProbeSaw::Tls { detail }, .. })) => implicit_port(
                p,
                &format!("sends nothing in plain text, and a second connection with implicit TLS got a TLS handshake ({detail})"),
            ),
            (_, Some(Probe { saw: ProbeSaw::Nothing { detail }, .. })) => format!(
                "No greeting in plain text, and no TLS handshake either ({detail}): the server is hung, or something between holds the connection."
            ),
            (_, _) if failure.code == ErrorCode::Timeout => format!(
                "Port {p} sent nothing within {} ms. A port that stays silent usually waits for a TLS handshake: if it is an implicit-TLS port (usually 995), use tls: 'implicit'. Otherwise the server is overloaded.",
                ms_text(f.greeting_deadline)
            ),
            _ => "The server closed the connection before its greeting: it may refuse this address (a block list, a connection limit), or expect TLS first (implicit TLS, usually port 995).".into(),
        }),
        ErrorCode::ServerError => resp_hint(failure.resp_code.as_deref(), f).or_else(|| {
            Some("The server turns connections away in its greeting: too many connections, maintenance, or a block list.".into())
        }),
        ErrorCode::ProtocolError => Some(match seen {
            Seen::Other(proto, line) => other_protocol(p, proto, &line),
            Seen::Tls => implicit_port(p, "answered with TLS where a POP3 greeting was expected"),
            _ => format!("What port {p} sent is not a POP3 greeting: is it a POP3 port?"),
        }),
        _ => None,
    }
}

fn stls_hint(f: &Facts) -> String {
    if offers_stls(f) {
        "The server announced STLS and then refused it: check its TLS set-up (certificate and key readable, TLS enabled for POP3).".into()
    } else {
        format!(
            "The server does not offer STLS on port {} (CAPA has no STLS): use implicit TLS on its TLS port (usually 995), or enable STLS on the server.",
            f.port
        )
    }
}

/// RFC 2449 § 8 and RFC 3206 response codes, in a postmaster's words.
fn resp_hint(code: Option<&str>, f: &Facts) -> Option<String> {
    let code = code?.to_ascii_uppercase();
    Some(match code.as_str() {
        "IN-USE" => "Another session has this mailbox open (IN-USE): the server lets one session in at a time. Close the other client or wait for it to finish; the password may well be right.".into(),
        "LOGIN-DELAY" => {
            let delay = f
                .capa_before_login()
                .and_then(|c| c.login_delay)
                .map(|(s, _)| format!(" (CAPA says {s} s)"))
                .unwrap_or_default();
            format!(
                "The server limits how often this mailbox may log in (LOGIN-DELAY{delay}). Wait before the next try; the password may well be right."
            )
        }
        "SYS/TEMP" => "The server hit a problem of its own that should pass (SYS/TEMP): try again later. It is not about the password.".into(),
        "SYS/PERM" => "The server hit a problem of its own that will not pass by itself (SYS/PERM): ask its administrator. It is not about the password.".into(),
        "AUTH" => "The server refused the credentials (AUTH): the password is wrong, the user does not exist, or the account is locked.".into(),
        _ => return None,
    })
}

fn oauth_offered(f: &Facts) -> Vec<&str> {
    f.sasl.iter().map(String::as_str).filter(|m| super::OAUTH_MECHANISMS.contains(m)).collect()
}

fn auth_hint(f: &Facts, failure: &Failure) -> Option<String> {
    let provider = rules::recognise(&f.host, f.greeting.as_ref().map(|g| g.text.as_str()));
    let oauth = oauth_offered(f);
    match failure.code {
        ErrorCode::AuthFailed if f.credential == Some("token") => Some(if oauth.is_empty() {
            format!(
                "The server does not offer XOAUTH2 or OAUTHBEARER (SASL {}): an OAuth token cannot log in here.",
                f.sasl.join(" ")
            )
        } else {
            "The server refused the OAuth token: it expired, is for another user, lacks the mail scope, or POP is not enabled for the account.".into()
        }),
        ErrorCode::AuthFailed => {
            let code = resp_hint(failure.resp_code.as_deref(), f);
            let general = || {
                "The server refused the login: the password is wrong, the user does not exist, or the account is locked."
                    .to_string()
            };
            Some(match provider {
                Some(p) => p.login_hint.to_string(),
                None => code.unwrap_or_else(general),
            })
        }
        ErrorCode::ServerError => resp_hint(failure.resp_code.as_deref(), f),
        ErrorCode::Unsupported if f.offered.is_empty() && !oauth.is_empty() && f.credential == Some("password") => {
            let extra = provider.map(|p| format!(" {}", p.login_hint)).unwrap_or_default();
            Some(format!(
                "This server offers only OAuth 2.0 here (SASL {}): this account needs an OAuth access token, not a password (the `token` option).{extra}",
                oauth.join(" ")
            ))
        }
        ErrorCode::Unsupported if f.offered.is_empty() => Some(format!(
            "The server offers no login mechanism this client knows (SASL {}).",
            if f.sasl.is_empty() { "none".to_string() } else { f.sasl.join(" ") }
        )),
        ErrorCode::InsecureAuthRefused => Some(if offers_stls(f) {
            "The server offers only mechanisms that send the password readable, and this session has no TLS: it offers STLS, use tls: 'starttls' (allowInsecureAuth is for test servers only).".into()
        } else {
            "The server offers only mechanisms that send the password readable, and this session has no TLS: use implicit TLS (usually port 995) (allowInsecureAuth is for test servers only).".into()
        }),
        ErrorCode::Timeout => Some(
            "No answer to the login in time: some servers slow a failed login down on purpose. Try again, or give the diagnosis longer deadlines."
                .into(),
        ),
        _ => None,
    }
}

// -------------------------------------------------------------------- notes

/// What a postmaster should know whatever happened: the provider's ways,
/// and capabilities with consequences.
fn notes(f: &Facts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(p) = rules::recognise(&f.host, f.greeting.as_ref().map(|g| g.text.as_str())) {
        out.extend(p.notes.iter().map(|n| n.to_string()));
        if p.id == "gmail" && f.user.as_deref().is_some_and(|u| u.to_ascii_lowercase().starts_with("recent:"))
        {
            out.push("This session is in Gmail's recent mode (recent: before the user name).".into());
        }
    }
    let after = f.capa.after_login.as_ref();
    let before = f.capa_before_login();
    if let Some((expire, _)) =
        after.and_then(|c| c.expire.as_ref()).or(before.and_then(|c| c.expire.as_ref()))
    {
        match expire {
            Expire::Days(0) => out.push("EXPIRE 0: the server deletes each message once it was retrieved; mail cannot be left on the server.".into()),
            Expire::Days(n) => out.push(format!("EXPIRE {n}: the server deletes retrieved messages after {n} days.")),
            Expire::Never => {}
        }
    }
    let delay = after.and_then(|c| c.login_delay).or(before.and_then(|c| c.login_delay));
    if let Some((secs, _)) = delay.filter(|(s, _)| *s > 0) {
        out.push(format!(
            "LOGIN-DELAY {secs}: at most one login every {secs} s; a check run more often is refused with [LOGIN-DELAY]."
        ));
    }
    out.push("The session was closed without QUIT: nothing was deleted or committed.".into());
    out
}

// --------------------------------------------------------------------- JSON

fn caps_json(j: &mut Json, caps: Option<&Capabilities>) {
    match caps {
        Some(c) => j.strings(&c.raw),
        None => j.null(),
    };
}

fn cert_json(j: &mut Json, c: &CertificateDetails) {
    j.begin_object();
    j.key("subject").string(&c.subject);
    j.key("issuer").string(&c.issuer);
    j.key("dnsNames").strings(&c.dns_names);
    j.key("ipAddresses").strings(&c.ip_addresses);
    j.key("notBefore").string(&c.not_before);
    j.key("notAfter").string(&c.not_after);
    j.key("keyType").string(&c.key_type);
    j.key("keyBits").int(i64::from(c.key_bits));
    j.key("curve").opt_string(c.curve.as_deref());
    j.key("signatureAlgorithm").string(&c.signature_algorithm);
    j.key("sha256").string(&c.sha256);
    j.key("parseError").opt_string(c.parse_error.as_deref());
    j.end_object();
}

fn tls_json(j: &mut Json, f: &Facts) {
    if f.tls_summary.is_none() && f.chain.is_empty() {
        j.null();
        return;
    }
    let t = f.tls_summary.as_ref();
    j.begin_object();
    j.key("protocol").opt_string(t.map(|t| t.info.protocol.as_str()));
    j.key("cipher").opt_string(t.map(|t| t.info.cipher.as_str()));
    j.key("endToEnd").bool(f.tls_place == TlsPlace::Client);
    let ends = match f.tls_place {
        TlsPlace::Bridge => "bridge",
        TlsPlace::Client => "client",
        TlsPlace::Transport => "transport",
    };
    j.key("ends").string(ends);
    let leaf = f.chain.first().map(CertificateDetails::summary);
    let cert = t.map(|t| t.info.certificate.clone()).or(leaf);
    j.key("certificate");
    match &cert {
        Some(c) => {
            j.begin_object();
            j.key("subject").string(&c.subject);
            j.key("issuer").string(&c.issuer);
            j.key("notAfter").string(&c.not_after);
            j.end_object();
        }
        None => {
            j.null();
        }
    }
    let days = cert.as_ref().and_then(|c| rules::days_until(&c.not_after, f.now));
    j.key("days");
    match days {
        Some(d) => j.int(d),
        None => j.null(),
    };
    let names = leaf_names(f);
    j.key("names").strings(&names);
    // Whether the certificate names the host: the client's own check when
    // it has the chain; otherwise what the verifier (the bridge, Node)
    // decided, known only when the handshake passed or failed for the name.
    j.key("nameMatches");
    if let Some(leaf) = f.chain.first() {
        j.bool(rules::name_matches(&f.host, &leaf.dns_names, &leaf.ip_addresses));
    } else if t.is_some() {
        j.bool(true);
    } else if tls_reason(f) == Some(TlsReason::WrongName) {
        j.bool(false);
    } else {
        j.null();
    }
    j.key("chain");
    if f.tls_place == TlsPlace::Client {
        j.begin_array();
        for c in &f.chain {
            j.item();
            cert_json(j, c);
        }
        j.end_array();
        j.key("chainNote").null();
    } else {
        j.null();
        let who =
            if f.tls_place == TlsPlace::Bridge { "The bridge reports" } else { "Node's TLS reports here" };
        j.key("chainNote").string(&format!(
            "{who} the leaf certificate only (subject, issuer, expiry); for the chain as the server sent it (names, keys, signatures), diagnose end to end (endToEnd: true)."
        ));
    }
    j.end_object();
}

fn change_json(j: &mut Json, from: &str, to: &str, c: &rules::CapaChange) {
    j.item().begin_object();
    j.key("from").string(from);
    j.key("to").string(to);
    j.key("added").strings(&c.added);
    j.key("removed").strings(&c.removed);
    j.key("changed").begin_array();
    for (a, b) in &c.changed {
        j.item().begin_object().key("before").string(a).key("after").string(b).end_object();
    }
    j.end_array();
    j.end_object();
}

fn capabilities_json(j: &mut Json, f: &Facts) {
    j.begin_object();
    j.key("beforeStls");
    caps_json(j, f.capa.before_stls.as_ref());
    j.key("afterStls");
    caps_json(j, f.capa.after_stls.as_ref());
    j.key("afterLogin");
    caps_json(j, f.capa.after_login.as_ref());
    j.key("changes").begin_array();
    if let (Some(a), Some(b)) = (&f.capa.before_stls, &f.capa.after_stls) {
        change_json(j, "beforeStls", "afterStls", &rules::capa_diff(&a.raw, &b.raw));
    }
    if let (Some(a), Some(b)) = (f.capa_before_login(), &f.capa.after_login) {
        let from = if f.capa.after_stls.is_some() { "afterStls" } else { "beforeStls" };
        change_json(j, from, "afterLogin", &rules::capa_diff(&a.raw, &b.raw));
    }
    j.end_array();
    j.end_object();
}

fn extensions_json(j: &mut Json, f: &Facts) {
    // Per-user values are what the server says after the login, where it
    // says them; else what it said before.
    let before = f.capa_before_login();
    let after = f.capa.after_login.as_ref();
    let latest = |g: fn(&Capabilities) -> bool| after.filter(|c| g(c)).or(before);
    j.begin_object();
    let flag = |j: &mut Json, k: &str, v: bool| {
        j.key(k).bool(v);
    };
    let any = |g: fn(&Capabilities) -> bool| after.is_some_and(g) || before.is_some_and(g);
    flag(j, "pipelining", any(|c| c.pipelining));
    flag(j, "pipeliningUsed", f.pipelining);
    flag(j, "respCodes", any(|c| c.resp_codes));
    flag(j, "authRespCode", any(|c| c.auth_resp_code));
    flag(j, "top", any(|c| c.top));
    flag(j, "uidl", any(|c| c.uidl));
    flag(j, "user", any(|c| c.user));
    flag(j, "stls", offers_stls(f));
    flag(j, "utf8", any(|c| c.utf8.is_some()));
    j.key("loginDelay");
    match latest(|c| c.login_delay.is_some()).and_then(|c| c.login_delay) {
        Some((s, per_user)) => {
            j.begin_object().key("seconds").int(i64::from(s)).key("perUser").bool(per_user).end_object();
        }
        None => {
            j.null();
        }
    }
    j.key("expire");
    match latest(|c| c.expire.is_some()).and_then(|c| c.expire.as_ref()) {
        Some((e, per_user)) => {
            let value = match e {
                Expire::Never => "NEVER".to_string(),
                Expire::Days(d) => d.to_string(),
            };
            j.begin_object().key("value").string(&value).key("perUser").bool(*per_user).end_object();
        }
        None => {
            j.null();
        }
    }
    j.key("implementation")
        .opt_string(latest(|c| c.implementation.is_some()).and_then(|c| c.implementation.as_deref()));
    j.end_object();
}

fn uidl_json(j: &mut Json, f: &Facts) {
    match &f.uidl {
        None => {
            j.null();
        }
        Some(UidlAnswer::Refused(text)) => {
            j.begin_object().key("supported").bool(false).key("serverText").string(text).end_object();
        }
        Some(UidlAnswer::Listing(body)) => {
            let c = rules::check_uidl(body);
            j.begin_object();
            j.key("supported").bool(true);
            j.key("ok").bool(c.ok() && f.stat.is_none_or(|(n, _)| n == c.count as u64));
            j.key("count").int(c.count as i64);
            j.key("longest").int(c.longest as i64);
            j.key("duplicates").begin_array();
            for (uid, ids) in &c.duplicates {
                j.item().begin_object().key("uid").string(uid).key("ids").ints(ids).end_object();
            }
            j.end_array();
            j.key("duplicateCount").int(c.duplicate_count as i64);
            j.key("unprintable").ints(&c.unprintable);
            j.key("unprintableCount").int(c.unprintable_count as i64);
            j.key("tooLong").ints(&c.too_long);
            j.key("tooLongCount").int(c.too_long_count as i64);
            j.key("malformed").strings(&c.malformed);
            j.key("malformedCount").int(c.malformed_count as i64);
            j.end_object();
        }
    }
}

fn error_json(j: &mut Json, f: &Facts) {
    let Some(e) = &f.failure else {
        j.null();
        return;
    };
    j.begin_object();
    j.key("code").string(e.code.as_str());
    j.key("message").string(&e.message);
    j.key("respCode").opt_string(e.resp_code.as_deref());
    j.key("serverText").opt_string(e.server_text.as_deref());
    j.key("reason").opt_string(tls_reason(f).map(TlsReason::as_str));
    j.end_object();
}

fn probe_json(j: &mut Json, probe: Option<&Probe>) {
    let Some(p) = probe else {
        j.null();
        return;
    };
    j.begin_object();
    j.key("tls").string(p.tls.as_str());
    match &p.saw {
        ProbeSaw::Plain { greeting, stls } => {
            j.key("saw").string("plain");
            j.key("greeting").string(greeting);
            j.key("stls").bool(*stls);
        }
        ProbeSaw::Tls { detail } => {
            j.key("saw").string("tls");
            j.key("detail").string(detail);
        }
        ProbeSaw::Nothing { detail } => {
            j.key("saw").string("nothing");
            j.key("detail").string(detail);
        }
    }
    j.end_object();
}

pub(super) fn json(d: &Diagnosis) -> String {
    let f = &*d.facts;
    let steps = steps(d);
    let mut j = Json::default();
    j.begin_object();
    j.key("ok").bool(steps.iter().all(|s| s.status != Status::Fail));
    j.key("target").begin_object();
    j.key("host").string(&f.host);
    j.key("port").int(i64::from(f.port));
    j.key("tls").string(f.tls.as_str());
    j.key("endToEnd").bool(f.end_to_end);
    j.key("via").string(if f.bridge.is_some() { "bridge" } else { "direct" });
    j.key("bridge").opt_string(f.bridge.as_deref());
    j.key("user").opt_string(f.user.as_deref());
    j.key("credential").opt_string(f.credential);
    j.key("mechanism").opt_string(f.mechanism_forced.as_deref());
    j.end_object();
    j.key("ms").ms(f.marks.iter().filter_map(|m| m.end).reduce(f64::max));
    j.key("steps").begin_array();
    for s in &steps {
        j.item().begin_object();
        j.key("name").string(s.name);
        j.key("ok").bool(s.ok());
        j.key("status").string(s.status.as_str());
        j.key("ms").ms(s.ms);
        j.key("detail").string(&s.detail);
        j.key("hint").opt_string(s.hint.as_deref());
        j.end_object();
    }
    j.end_array();
    j.key("greeting").opt_string(greeting(f).as_deref());
    j.key("provider");
    match rules::recognise(&f.host, f.greeting.as_ref().map(|g| g.text.as_str())) {
        Some(p) => {
            j.begin_object().key("id").string(p.id).key("name").string(p.name).end_object();
        }
        None => {
            j.null();
        }
    }
    j.key("tls");
    tls_json(&mut j, f);
    j.key("capabilities");
    capabilities_json(&mut j, f);
    j.key("mechanisms").begin_object();
    j.key("offered").strings(&f.offered);
    j.key("usable").strings(&f.usable);
    j.key("sasl").strings(&f.sasl);
    j.key("used").opt_string(f.mechanism.as_deref());
    j.key("forced").opt_string(f.mechanism_forced.as_deref());
    j.end_object();
    j.key("apop").begin_object().key("usable").bool(f.apop_usable).end_object();
    j.key("extensions");
    extensions_json(&mut j, f);
    j.key("mailbox");
    match f.stat {
        Some((count, size)) => {
            j.begin_object().key("count").int(count as i64).key("size").int(size as i64).end_object();
        }
        None => {
            j.null();
        }
    }
    j.key("uidl");
    uidl_json(&mut j, f);
    j.key("deviations").begin_array();
    for dev in &f.deviations {
        j.item()
            .begin_object()
            .key("id")
            .string(dev.id())
            .key("description")
            .string(dev.description())
            .end_object();
    }
    j.end_array();
    j.key("error");
    error_json(&mut j, f);
    j.key("probe");
    probe_json(&mut j, d.probe.as_ref());
    j.key("notes").strings(&notes(f));
    j.key("closedWithoutQuit").bool(true);
    j.end_object();
    j.out
}
