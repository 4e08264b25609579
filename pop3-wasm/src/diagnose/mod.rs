//! The analyzer (feature `diagnose`): one session that goes as far as it
//! can — connect, TLS, greeting, CAPA, STLS, login, STAT, UIDL, never QUIT —
//! and a report of each step, with what a postmaster can do about a
//! failure.
//!
//! ```text
//!  driver: Request::Diagnose(Ask) ──► the session's own phases, timed on the driver's clock
//!        ◄── Output::Diagnosis(Facts): what it saw (marks, failure, greeting, CAPAs, TLS, UIDL, first bytes)
//!  Diagnosis::new(facts) ──► steps(), to_json(): the rules (rules.rs) and the hints (report.rs)
//!  probe_mode() ──► a second session in the other TLS mode, when the first one hints at it
//!  add_probe(&other) ──► the hint says what the port really speaks
//! ```
//!
//! Everything that judges a fact is here, natively tested; the JS side
//! only starts the sessions and renders the report.

mod json;
mod report;
pub mod rules;

pub use self::report::{Status, Step};
use crate::{
    driver::{Failure, Millis, TlsPlace, TlsSummary},
    proto::{CapaHistory, Deviation, ErrorCode, Greeting, PREFERENCE, Secret},
    tls::CertificateDetails,
    wire::TlsMode,
};

/// What a diagnosis logs in with.
#[derive(Debug, Clone)]
pub enum Credential {
    None,
    Password(Secret<String>),
    /// An OAuth 2.0 access token (XOAUTH2, OAUTHBEARER).
    Token(Secret<String>),
}

impl Credential {
    /// `password`, `token`, or `None`: what the report says about it.
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            Credential::None => None,
            Credential::Password(_) => Some("password"),
            Credential::Token(_) => Some("token"),
        }
    }
}

/// What the caller asks of a diagnosis besides the connection.
#[derive(Debug, Clone)]
pub struct Ask {
    pub user: Option<String>,
    pub credential: Credential,
    /// A mechanism to force (upper case); else the strongest usable one,
    /// or with a token OAUTHBEARER when offered, else XOAUTH2.
    pub mechanism: Option<String>,
}

/// The OAuth 2.0 mechanisms: they take a token, never a password.
pub const OAUTH_MECHANISMS: [&str; 2] = ["OAUTHBEARER", "XOAUTH2"];

impl Ask {
    /// Checks the combination before anything is sent (`INVALID_ARGUMENT`)
    /// and puts the mechanism in upper case.
    pub fn validate(&mut self) -> Result<(), Failure> {
        if let Some(m) = &mut self.mechanism {
            *m = m.to_ascii_uppercase();
            let known = PREFERENCE.contains(&m.as_str()) || OAUTH_MECHANISMS.contains(&m.as_str());
            if !known {
                return Err(Failure::invalid_argument(format!(
                    "`mechanism` {m} is not one this client knows ({}, {})",
                    PREFERENCE.join(", "),
                    OAUTH_MECHANISMS.join(", ")
                )));
            }
        }
        let oauth = self.mechanism.as_deref().is_some_and(|m| OAUTH_MECHANISMS.contains(&m));
        match (&self.credential, &self.mechanism) {
            (Credential::Password(_), Some(m)) if oauth => {
                Err(Failure::invalid_argument(format!("{m} logs in with `token`, not `password`")))
            }
            (Credential::Token(_), Some(m)) if !oauth => Err(Failure::invalid_argument(format!(
                "{m} logs in with `password`; a `token` goes with XOAUTH2 or OAUTHBEARER"
            ))),
            (Credential::None, Some(m)) => {
                let what = if oauth { "token" } else { "password" };
                Err(Failure::invalid_argument(format!("`mechanism` {m} needs `{what}`")))
            }
            (Credential::Password(_) | Credential::Token(_), _) if self.user.is_none() => {
                Err(Failure::invalid_argument("`user` is required with a password or a token"))
            }
            _ => Ok(()),
        }
    }
}

/// A step timed on the driver's clock (ms since the driver was created).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub name: &'static str,
    pub start: Millis,
    pub end: Option<Millis>,
    pub ok: bool,
}

impl Mark {
    pub fn ms(&self) -> Option<Millis> {
        self.end.map(|e| e - self.start)
    }
}

/// What UIDL answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidlAnswer {
    /// The listing, as unstuffed octets.
    Listing(Vec<u8>),
    /// `-ERR`: the server's text.
    Refused(String),
}

/// Everything a diagnosis session learnt, gathered by the driver when the
/// session ended (no secret in here: the credential only by its kind).
#[derive(Debug, Clone)]
pub struct Facts {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub end_to_end: bool,
    /// The bridge's URL; `None`: a direct connection.
    pub bridge: Option<String>,
    pub tls_place: TlsPlace,
    /// The WebSocket subprotocol the bridge selected.
    pub subprotocol: Option<String>,
    pub user: Option<String>,
    /// `password`, `token`, or none given.
    pub credential: Option<&'static str>,
    pub mechanism_forced: Option<String>,
    /// The session's steps in the order they ran: the driver's phases
    /// (the second `capa` of a STLS session named `capa-after-stls`), then
    /// `capa-after-login` and `uidl`.
    pub marks: Vec<Mark>,
    /// What ended the diagnosis early.
    pub failure: Option<Failure>,
    pub greeting: Option<Greeting>,
    pub capa: CapaHistory,
    /// The mechanisms the server offered (strongest first) and those
    /// `login()` could use, before the login.
    pub offered: Vec<&'static str>,
    pub usable: Vec<&'static str>,
    /// The SASL list as the server wrote it (unknown ones included).
    pub sasl: Vec<String>,
    pub mechanism: Option<String>,
    pub apop_usable: bool,
    pub pipelining: bool,
    pub tls_summary: Option<TlsSummary>,
    /// The certificates the server sent to the client's TLS engine (end
    /// to end), also when the handshake failed.
    pub chain: Vec<CertificateDetails>,
    pub stat: Option<(u64, u64)>,
    pub uidl: Option<UidlAnswer>,
    pub deviations: Vec<Deviation>,
    /// The first octets the port sent (before any TLS in the client).
    pub first_bytes: Vec<u8>,
    /// The greeting line as the server sent it (without its line end).
    pub greeting_line: Option<String>,
    /// The driver's clock when the session ended (`Date.now()` in wasm).
    pub now: Millis,
    /// The per-step deadlines, for the messages.
    pub greeting_deadline: Millis,
}

impl Facts {
    fn mark(&self, name: &str) -> Option<&Mark> {
        self.marks.iter().find(|m| m.name == name)
    }

    /// The capabilities before login: after STLS where there was one.
    fn capa_before_login(&self) -> Option<&crate::proto::Capabilities> {
        self.capa.after_stls.as_ref().or(self.capa.before_stls.as_ref())
    }
}

/// What a second session in another TLS mode found on the same port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub tls: TlsMode,
    pub saw: ProbeSaw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeSaw {
    /// A POP3 greeting in plain text; whether CAPA offered STLS.
    Plain { greeting: String, stls: bool },
    /// The port did a TLS handshake (`detail`: how it ended).
    Tls { detail: String },
    /// Neither: what happened.
    Nothing { detail: String },
}

/// A finished diagnosis: the facts, a probe's outcome, and the report
/// built from them.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub facts: Box<Facts>,
    pub probe: Option<Probe>,
}

impl Diagnosis {
    pub fn new(facts: Box<Facts>) -> Diagnosis {
        Diagnosis { facts, probe: None }
    }

    /// The TLS mode a second session should try on the same port, when
    /// this one failed in a way that says "the other mode, probably": no
    /// greeting in plain text (a port waiting for a ClientHello), or a
    /// TLS handshake that broke on something that is not TLS — unless the
    /// first bytes already tell.
    pub fn probe_mode(&self) -> Option<TlsMode> {
        let f = &self.facts;
        if self.probe.is_some() {
            return None;
        }
        let seen = rules::classify(&f.first_bytes);
        match (report::failed_step(f), f.tls) {
            (Some("greeting"), TlsMode::None | TlsMode::Starttls) => {
                let silent = matches!(
                    f.failure.as_ref().map(|x| x.code),
                    Some(ErrorCode::Timeout | ErrorCode::ConnectionClosed)
                );
                (silent && seen == rules::Seen::Nothing).then_some(TlsMode::Implicit)
            }
            (Some("tls"), TlsMode::Implicit) => {
                let not_tls = report::tls_reason(f).is_none_or(|r| {
                    matches!(
                        r,
                        crate::wire::TlsReason::Protocol
                            | crate::wire::TlsReason::Alert
                            | crate::wire::TlsReason::Truncated
                    )
                });
                let told = matches!(seen, rules::Seen::Pop3(_) | rules::Seen::Other(..));
                (not_tls && !told).then_some(if f.end_to_end { TlsMode::Starttls } else { TlsMode::None })
            }
            _ => None,
        }
    }

    /// Takes in what a probe session (started in [`Diagnosis::probe_mode`])
    /// found.
    pub fn add_probe(&mut self, probe: &Diagnosis) {
        let p = &probe.facts;
        let cert_failure = p.failure.as_ref().is_some_and(|x| {
            x.code == ErrorCode::TlsFailed
                && report::tls_reason(p).is_some_and(|r| {
                    !matches!(
                        r,
                        crate::wire::TlsReason::Protocol
                            | crate::wire::TlsReason::Alert
                            | crate::wire::TlsReason::Truncated
                    )
                })
        });
        let saw = match (&p.greeting, p.tls) {
            (Some(_), TlsMode::Implicit) => ProbeSaw::Tls {
                detail: match &p.tls_summary {
                    Some(t) => format!("{}, {}", t.info.protocol, t.info.cipher),
                    None => "a TLS handshake".into(),
                },
            },
            (None, TlsMode::Implicit) if cert_failure => {
                ProbeSaw::Tls { detail: p.failure.as_ref().map(|x| x.message.clone()).unwrap_or_default() }
            }
            (Some(g), _) => ProbeSaw::Plain {
                greeting: format!("+OK {}", g.text),
                stls: p.capa.before_stls.as_ref().is_some_and(|c| c.stls),
            },
            (None, _) => ProbeSaw::Nothing {
                detail: p.failure.as_ref().map(|x| x.message.clone()).unwrap_or_else(|| "no greeting".into()),
            },
        };
        self.probe = Some(Probe { tls: p.tls, saw });
    }

    /// The steps, in the order they ran (see [`Step`]).
    pub fn steps(&self) -> Vec<Step> {
        report::steps(self)
    }

    /// No step failed.
    pub fn ok(&self) -> bool {
        self.steps().iter().all(|s| s.status != Status::Fail)
    }

    /// The report as JSON (what `diagnose()` resolves to, less what the
    /// JS side adds: the transcript and the start time).
    pub fn to_json(&self) -> String {
        report::json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(user: Option<&str>, credential: Credential, mechanism: Option<&str>) -> Ask {
        Ask { user: user.map(str::to_string), credential, mechanism: mechanism.map(str::to_string) }
    }

    #[test]
    fn credentials_and_mechanisms_must_go_together() {
        let pw = || Credential::Password(Secret::new("hunter2".into()));
        let token = || Credential::Token(Secret::new("t".into()));
        assert!(ask(None, Credential::None, None).validate().is_ok());
        assert!(ask(Some("u"), Credential::None, None).validate().is_ok(), "a user alone: no login");
        let mut a = ask(Some("u"), pw(), Some("scram-sha-256"));
        a.validate().unwrap();
        assert_eq!(a.mechanism.as_deref(), Some("SCRAM-SHA-256"));
        assert!(ask(Some("u"), token(), Some("xoauth2")).validate().is_ok());
        for bad in [
            ask(Some("u"), pw(), Some("XOAUTH2")),
            ask(Some("u"), token(), Some("PLAIN")),
            ask(Some("u"), Credential::None, Some("PLAIN")),
            ask(None, pw(), None),
            ask(Some("u"), pw(), Some("GSSAPI")),
        ] {
            let mut bad = bad;
            assert_eq!(bad.validate().unwrap_err().code, ErrorCode::InvalidArgument, "{bad:?}");
        }
        assert!(
            !format!("{:?}", ask(Some("u"), pw(), None)).contains("hunter2"),
            "the password never prints"
        );
    }
}
