//! The diagnosis operation (feature `diagnose`): the connect sequence, then
//! as far as the server lets it go — login, the CAPA after it, STAT, UIDL —
//! each step timed on the driver's clock, and never QUIT. Whatever
//! happens, it ends with [`Output::Diagnosis`]: the facts for
//! [`crate::diagnose`] to judge.

use super::{
    Failure, Millis, Output, Phase, Route,
    ops::{self, Credentials, Handle},
};
use crate::{
    diagnose::{Ask, Credential, Facts, Mark, OAUTH_MECHANISMS, UidlAnswer},
    proto::{Command, ErrorCode},
};

pub(super) async fn run(h: Handle, mut ask: Ask) -> Result<Output, Failure> {
    ask.validate()?;
    let mut extra: Vec<Mark> = Vec::new();
    let mut mechanism = None;
    let mut stat = None;
    let mut uidl = None;
    let mut failure = ops::connect(h.clone()).await.err();
    if failure.is_none() && ask.user.is_some() && !matches!(ask.credential, Credential::None) {
        let r = login(&h, &ask, &mut extra).await;
        match r {
            Ok(m) => mechanism = Some(m),
            Err(f) => failure = Some(f),
        }
    }
    if failure.is_none() && mechanism.is_some() {
        match ops::simple(h.clone(), Command::Stat).await {
            Ok(Output::Stat { count, size }) => stat = Some((count, size)),
            Ok(_) => {}
            Err(f) => failure = Some(f),
        }
    }
    if failure.is_none() && mechanism.is_some() {
        let start = now(&h);
        let r = h.command(Command::Uidl { msg: None }).await;
        let ok = r.is_ok();
        extra.push(Mark { name: "uidl", start, end: Some(now(&h)), ok });
        match r {
            Ok(r) if r.is_ok() => uidl = Some(UidlAnswer::Listing(r.body.unwrap_or_default())),
            Ok(r) => uidl = Some(UidlAnswer::Refused(r.text)),
            Err(f) => failure = Some(f),
        }
    }
    let facts = h.with(|c| {
        // The session ends here, without QUIT: nothing is committed.
        let failure = failure.or_else(|| c.failure.clone());
        let facts = gather(c, &ask, extra, failure, mechanism, stat, uidl);
        c.fail(Failure::new(ErrorCode::ConnectionClosed, "the diagnosis is over; closed without QUIT"));
        facts
    });
    Ok(Output::Diagnosis(Box::new(facts)))
}

fn now(h: &Handle) -> Millis {
    h.with(|c| c.elapsed())
}

/// The login as `login()` or `auth()` would do it, timed as the `auth`
/// phase, then the CAPA the core asks after it, timed on its own.
async fn login(h: &Handle, ask: &Ask, extra: &mut Vec<Mark>) -> Result<String, Failure> {
    let (password, token) = match &ask.credential {
        Credential::Password(p) => (Some(p.expose().clone()), None),
        Credential::Token(t) => (None, Some(t.expose().clone())),
        Credential::None => (None, None),
    };
    let mechanism: String = match (&ask.mechanism, &token) {
        (Some(m), _) => m.clone(),
        // With a token: OAUTHBEARER (RFC 7628) when offered, else XOAUTH2.
        (None, Some(_)) => {
            let offered = h.with(|c| {
                c.session
                    .capabilities()
                    .is_some_and(|caps| caps.sasl.iter().any(|m| m == OAUTH_MECHANISMS[0]))
            });
            OAUTH_MECHANISMS[usize::from(!offered)].to_string()
        }
        (None, None) => match ops::strongest(h) {
            Ok(m) => m.to_string(),
            Err(f) => {
                // Nothing usable: the auth step fails without a word sent.
                h.enter(Phase::Auth);
                h.leave(false);
                return Err(f);
            }
        },
    };
    let creds = Credentials { username: ask.user.clone().unwrap_or_default(), password, token };
    h.enter(Phase::Auth);
    let r = ops::authenticate_steps(h, &mechanism, creds).await;
    h.leave(r.is_ok());
    r?;
    let start = now(h);
    let r = ops::after_login(h).await;
    extra.push(Mark { name: "capa-after-login", start, end: Some(now(h)), ok: r.is_ok() });
    r.map(|()| mechanism)
}

fn gather(
    c: &super::shared::Core,
    ask: &Ask,
    extra: Vec<Mark>,
    failure: Option<Failure>,
    mechanism: Option<String>,
    stat: Option<(u64, u64)>,
    uidl: Option<UidlAnswer>,
) -> Facts {
    let s = &c.session;
    let mut capas = 0;
    let mut marks: Vec<Mark> = c
        .phases
        .iter()
        .map(|p| {
            let mut name = p.phase.as_str();
            if p.phase == Phase::Capa {
                capas += 1;
                if capas > 1 {
                    name = "capa-after-stls";
                }
            }
            Mark { name, start: p.start, end: p.end, ok: p.ok }
        })
        .collect();
    marks.extend(extra);
    marks.sort_by(|a, b| a.start.total_cmp(&b.start));
    let caps = s.capa_history();
    let before = caps.after_stls.as_ref().or(caps.before_stls.as_ref());
    // What the server offers, once it said anything (before the greeting
    // there is nothing to tell).
    let offered = match s.greeting() {
        Some(_) => crate::proto::offered_mechanisms(before, s.apop_usable()),
        None => Vec::new(),
    };
    Facts {
        host: c.cfg.host.clone(),
        port: c.cfg.port,
        tls: c.cfg.tls,
        end_to_end: c.cfg.end_to_end,
        bridge: match &c.cfg.route {
            Route::Bridge { url, .. } => Some(url.clone()),
            Route::Direct => None,
        },
        tls_place: c.cfg.tls_place(),
        subprotocol: c.opened.clone(),
        user: ask.user.clone(),
        credential: ask.credential.kind(),
        mechanism_forced: ask.mechanism.clone(),
        marks,
        failure,
        greeting: s.greeting().cloned(),
        capa: caps.clone(),
        usable: crate::proto::usable_mechanisms(&offered, s.readable_credentials_allowed()),
        offered,
        sasl: before.map(|b| b.sasl.clone()).unwrap_or_default(),
        mechanism,
        apop_usable: s.apop_usable(),
        pipelining: s.pipelining(),
        tls_summary: c.tls.clone(),
        chain: c.presented_chain(),
        stat,
        uidl,
        deviations: s.deviations().to_vec(),
        first_bytes: c.first_bytes.clone(),
        greeting_line: s.greeting().map(|_| {
            let line = c.greeting_line.strip_suffix(b"\n").unwrap_or(&c.greeting_line);
            String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned()
        }),
        now: c.now,
        greeting_deadline: c.cfg.deadlines.greeting,
    }
}
