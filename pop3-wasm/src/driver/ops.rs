//! The operations, each an `async fn` that reads top to bottom: what to
//! send, what to wait for (under which deadline), what to decide. They
//! await [`Until`], which checks the shared state each time the driver
//! polls and registers its deadline the first time it has to wait.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use base64::Engine as _;

use super::{
    Failure, Millis, OpFuture, OpId, Output, Phase, RawBody, Request, Route, Summary, shared::Core,
    shared::Sink,
};
use crate::{
    proto::{
        Capabilities, Command, CommandId, CramMd5, ErrorCode, Login, Mechanism, MsgNum, OAuthBearer, Plain,
        Response, Scram, ScramHash, Secret, XOAuth2, apop_digest, parse_list, parse_list_entry, parse_stat,
        parse_uidl, parse_uidl_entry, readable,
    },
    summary::summarize,
    wire::{self, TlsMode},
};

/// An operation's view of the shared state.
#[derive(Clone)]
pub(super) struct Handle {
    core: Rc<RefCell<Core>>,
    op: OpId,
    /// This call's deadline for each answer.
    ms: Millis,
}

impl Handle {
    pub fn new(core: Rc<RefCell<Core>>, op: OpId, ms: Millis) -> Handle {
        Handle { core, op, ms }
    }

    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut self.core.borrow_mut())
    }

    /// Waits for `want`, under a deadline of `ms` (then `TIMEOUT`, "no
    /// answer to {what}"); the sticky failure ends it too.
    fn until(&self, what: &'static str, ms: Millis, want: Want) -> Until {
        Until { h: self.clone(), what, ms, key: None, want }
    }

    /// Waits for a condition of the transport or the session.
    async fn until_flag(&self, what: &'static str, ms: Millis, want: Want) -> Result<bool, Failure> {
        match self.until(what, ms, want).await? {
            Got::Flag(b) => Ok(b),
            _ => Ok(true),
        }
    }

    fn enqueue_with(&self, cmd: Command, sink: Option<(usize, bool)>) -> Result<CommandId, Failure> {
        self.with(|c| {
            if let Some(f) = &c.failure {
                return Err(f.clone());
            }
            // End to end, nothing readable but CAPA and STLS goes out before
            // TLS: what the bridge lets through (wire v2), and what keeps a
            // user name off the relay.
            if c.cfg.end_to_end && !c.tls_up && !matches!(cmd, Command::Capa | Command::Stls) {
                return Err(Failure::new(
                    ErrorCode::InvalidState,
                    format!(
                        "{} is not sent before TLS in an end-to-end session; send STLS first",
                        cmd.verb()
                    ),
                ));
            }
            let id = match sink {
                None => c.session.enqueue(cmd)?,
                Some((part, collected)) => {
                    let id = c.session.enqueue_streaming(cmd)?;
                    let sink = Sink { op: self.op, part, collected: collected.then_some(0), opened: false };
                    c.sinks.push((id, sink));
                    id
                }
            };
            Ok(id)
        })
    }

    fn enqueue(&self, cmd: Command) -> Result<CommandId, Failure> {
        self.enqueue_with(cmd, None)
    }

    /// The answer to `id` (`-ERR` included).
    async fn reply_within(&self, id: CommandId, what: &'static str, ms: Millis) -> Result<Response, Failure> {
        match self.until(what, ms, Want::Reply(id)).await? {
            Got::Reply(r) => Ok(r),
            _ => Err(Failure::new(ErrorCode::ProtocolError, "no answer")),
        }
    }

    async fn reply(&self, id: CommandId, what: &'static str) -> Result<Response, Failure> {
        self.reply_within(id, what, self.ms).await
    }

    /// Sends one command and waits for its complete answer.
    async fn command_within(&self, cmd: Command, ms: Millis) -> Result<Response, Failure> {
        let what = cmd.verb();
        let id = self.enqueue(cmd)?;
        self.reply_within(id, what, ms).await
    }

    pub(super) async fn command(&self, cmd: Command) -> Result<Response, Failure> {
        self.command_within(cmd, self.ms).await
    }

    /// Sends a body command whose pieces go out as events (part `part`),
    /// bounded by `max_body`; waits for the complete answer.
    async fn collect(&self, cmd: Command, part: usize) -> Result<Response, Failure> {
        let what = cmd.verb();
        let id = self.enqueue_with(cmd, Some((part, true)))?;
        self.reply(id, what).await
    }

    pub(super) fn enter(&self, phase: Phase) {
        self.with(|c| c.enter(phase));
    }

    pub(super) fn leave(&self, ok: bool) {
        self.with(|c| c.leave(ok));
    }

    fn progress(&self, done: usize, total: usize) {
        let op = self.op;
        self.with(|c| c.events.push_back(super::Event::Progress { op, done, total }));
    }
}

/// What an operation waits for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Want {
    /// The transport is open: its subprotocol.
    Opened,
    /// The bridge's `connected`: whether it relays end to end.
    Connected,
    /// TLS to the server is up.
    TlsUp,
    /// The server's greeting.
    Greeting,
    /// The answer to a command.
    Reply(CommandId),
    /// `+OK` to a streamed body command (or its whole answer, `-ERR`).
    Started(CommandId),
}

/// What came.
#[derive(Debug)]
pub(super) enum Got {
    Text(String),
    Flag(bool),
    Reply(Response),
    Started,
}

impl Core {
    fn check(&mut self, want: Want) -> Option<Result<Got, Failure>> {
        let flag = |b: bool| b.then_some(Ok(Got::Flag(true)));
        match want {
            Want::Opened => self.opened.clone().map(|p| Ok(Got::Text(p))),
            Want::Connected => self.connected.map(|b| Ok(Got::Flag(b))),
            Want::TlsUp => flag(self.tls_up),
            Want::Greeting => flag(self.session.greeting().is_some()),
            Want::Started(id) if self.take_started(id) => Some(Ok(Got::Started)),
            Want::Reply(id) | Want::Started(id) => self
                .take_completed(id)
                .map(|r| r.map(Got::Reply).map_err(|e| self.failure.clone().unwrap_or_else(|| e.into()))),
        }
    }
}

/// See [`Handle::until`]. Not generic: one `poll` for every wait.
pub(super) struct Until {
    h: Handle,
    what: &'static str,
    ms: Millis,
    key: Option<u64>,
    want: Want,
}

impl Future for Until {
    type Output = Result<Got, Failure>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut core = this.h.core.borrow_mut();
        let ready = match core.check(this.want) {
            Some(r) => Some(r),
            None => core.failure.clone().map(Err),
        };
        match ready {
            Some(r) => {
                if let Some(key) = this.key.take() {
                    core.remove_wait(key);
                }
                Poll::Ready(r)
            }
            None => {
                if this.key.is_none() {
                    this.key = Some(core.add_wait(this.h.op, this.what, this.ms));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Until {
    fn drop(&mut self) {
        if let (Some(key), Ok(mut core)) = (self.key, self.h.core.try_borrow_mut()) {
            core.remove_wait(key);
        }
    }
}

/// The operation for `request`.
pub(super) fn start(h: Handle, request: Request) -> OpFuture {
    match request {
        Request::Connect => Box::pin(connect(h)),
        Request::Command(cmd) => Box::pin(simple(h, cmd)),
        Request::Collect(cmd) => Box::pin(async move {
            ok_or_server_error(h.collect(cmd, 0).await?)?;
            Ok(Output::Collected)
        }),
        Request::Stream(cmd) => Box::pin(stream(h, cmd)),
        Request::Login { user, password } => Box::pin(login(h, user, password)),
        Request::Auth { mechanism, username, password, token } => Box::pin(async move {
            let mechanism = mechanism.to_ascii_uppercase();
            authenticate(&h, &mechanism, Credentials { username, password, token }).await?;
            Ok(Output::LoggedIn(mechanism))
        }),
        Request::Summaries(ids) => Box::pin(summaries(h, ids)),
        Request::RetrMany(ids) => Box::pin(retr_many(h, ids)),
        Request::DeleMany(ids) => Box::pin(dele_many(h, ids)),
        Request::Raw(line) => Box::pin(raw(h, line)),
        #[cfg(feature = "diagnose")]
        Request::Diagnose(ask) => Box::pin(super::diagnose::run(h, ask)),
    }
}

fn ok_or_server_error(r: Response) -> Result<Response, Failure> {
    r.into_result(false).map_err(Failure::from)
}

// ------------------------------------------------------------------ connect

/// The connect sequence; a failure ends the session.
pub(super) async fn connect(h: Handle) -> Result<Output, Failure> {
    let r = connect_steps(&h).await;
    match &r {
        Ok(_) => h.with(|c| {
            c.leave(true);
            c.ready = true;
        }),
        Err(f) => h.with(|c| c.fail(f.clone())),
    }
    r.map(|()| Output::Connected)
}

async fn connect_steps(h: &Handle) -> Result<(), Failure> {
    let (bridge, tls, end_to_end, d) = h.with(|c| {
        let bridge = matches!(c.cfg.route, Route::Bridge { .. });
        (bridge, c.cfg.tls, c.cfg.end_to_end, c.cfg.deadlines)
    });
    h.enter(Phase::Connect);
    if bridge {
        let protocol = match h.until("the WebSocket handshake", d.connect, Want::Opened).await? {
            Got::Text(p) => p,
            _ => String::new(),
        };
        let v = wire::version_of(&protocol);
        if end_to_end && v < 2 {
            return Err(Failure::new(ErrorCode::Unsupported, wire::V1_NO_END_TO_END));
        }
        h.with(|c| c.send_connect(v));
        // The bridge answers once TCP (and, for its own implicit TLS, the
        // handshake) is done.
        let ms = if tls == TlsMode::Implicit && !end_to_end { d.connect + d.tls } else { d.connect };
        let relayed = h.until_flag("the bridge's connect", ms, Want::Connected).await?;
        if end_to_end && !relayed {
            return Err(Failure::new(ErrorCode::Unsupported, wire::V1_NO_END_TO_END));
        }
    } else {
        h.until("the TCP connect", d.connect, Want::Opened).await?;
    }
    if tls == TlsMode::Implicit && !h.with(|c| c.tls_up) {
        h.enter(Phase::Tls);
        h.with(Core::start_tls);
        h.until("the TLS handshake", d.tls, Want::TlsUp).await?;
    }
    h.enter(Phase::Greeting);
    h.until("the server greeting", d.greeting, Want::Greeting).await?;

    // What the server offers decides STLS and the login mechanism. A server
    // without CAPA (RFC 1939 only) answers -ERR; that is not a failure.
    h.enter(Phase::Capa);
    h.command_within(Command::Capa, d.command).await?;

    if tls == TlsMode::Starttls && !h.with(|c| c.cfg.manual_stls) {
        let r = starttls(h, d.command, d.tls).await?;
        if !r.is_ok() {
            return Err(Failure {
                resp_code: r.resp_code.clone(),
                server_text: Some(r.text.clone()),
                ..Failure::new(ErrorCode::TlsFailed, format!("the server refused STLS: {}", r.text))
            });
        }
    }
    Ok(())
}

/// STLS: asks, and after `+OK` waits for the handshake (wherever TLS ends)
/// and for the CAPA the core asks again under TLS, so that it ends with TLS
/// up and the new capabilities known. `-ERR` comes back as the answer.
async fn starttls(h: &Handle, command_ms: Millis, tls_ms: Millis) -> Result<Response, Failure> {
    h.enter(Phase::Stls);
    let r = h.command_within(Command::Stls, command_ms).await?;
    if !r.is_ok() {
        h.leave(false);
        return Ok(r);
    }
    h.until("the TLS handshake", tls_ms, Want::TlsUp).await?;
    h.enter(Phase::Capa);
    if let Some(id) = h.with(|c| c.stls_capa.take()) {
        h.reply_within(id, "CAPA", command_ms).await?;
    }
    h.leave(true);
    Ok(r)
}

// -------------------------------------------------------------------- login

/// Credentials for a forced or chosen mechanism.
pub(super) struct Credentials {
    pub username: String,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// The strongest usable mechanism (the core's choice, the same
/// `loginMechanisms` shows).
async fn login(h: Handle, user: String, password: String) -> Result<Output, Failure> {
    let chosen = strongest(&h)?;
    let creds = Credentials { username: user, password: Some(password), token: None };
    authenticate(&h, chosen, creds).await?;
    Ok(Output::LoggedIn(chosen.to_string()))
}

/// The mechanism `login()` uses: the first of `loginMechanisms`, or why
/// there is none.
pub(super) fn strongest(h: &Handle) -> Result<&'static str, Failure> {
    let (offered, usable) = h.with(|c| (c.session.offered_mechanisms(), c.session.login_mechanisms()));
    usable.first().copied().ok_or_else(|| {
        if offered.is_empty() {
            Failure::new(ErrorCode::Unsupported, "the server offers no login mechanism this client knows")
        } else {
            Failure::new(
                ErrorCode::InsecureAuthRefused,
                format!(
                    "the server offers only {} here, which would send the password readable without TLS; use tls: 'implicit' or 'starttls', or pass allowInsecureAuth: true",
                    offered.join(", ")
                ),
            )
        }
    })
}

/// Readable credentials need TLS to the server unless the caller opted out.
fn check_secure(h: &Handle, what: &str) -> Result<(), Failure> {
    if h.with(|c| c.session.readable_credentials_allowed()) {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::InsecureAuthRefused,
        format!(
            "{what} would send the password readable over a connection without TLS; use tls: 'implicit' or 'starttls', or pass allowInsecureAuth: true"
        ),
    ))
}

fn client_nonce(h: &Handle) -> Result<String, Failure> {
    let random = h.with(|c| c.cfg.random);
    let mut bytes = [0u8; 18];
    if !random(&mut bytes) {
        return Err(Failure::new(ErrorCode::Unsupported, "no crypto.getRandomValues in this runtime"));
    }
    // base64 has no ',' — what SCRAM's nonce must avoid.
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// RFC 6856: UTF8 mode when the server has it, before credentials that
/// are not ASCII go out.
async fn utf8_if_needed(h: &Handle, creds: &Credentials) -> Result<(), Failure> {
    let (offered, on) =
        h.with(|c| (c.session.capabilities().is_some_and(|caps| caps.utf8.is_some()), c.session.utf8()));
    let needed = !creds.username.is_ascii() || creds.password.as_deref().is_some_and(|p| !p.is_ascii());
    if offered && needed && !on {
        h.command(Command::Utf8).await?;
    }
    Ok(())
}

/// Logs in with `mechanism`; `-ERR` is `AUTH_FAILED` (or `SERVER_ERROR`
/// when the response code says the credentials were not the problem).
/// The auth phase includes the CAPA the core asks after the login.
async fn authenticate(h: &Handle, mechanism: &str, creds: Credentials) -> Result<(), Failure> {
    h.enter(Phase::Auth);
    let r = match authenticate_steps(h, mechanism, creds).await {
        Ok(()) => after_login(h).await,
        Err(f) => Err(f),
    };
    h.leave(r.is_ok());
    r
}

/// The login exchange itself, up to the server's `+OK` (without the CAPA
/// after it: [`after_login`]).
pub(super) async fn authenticate_steps(
    h: &Handle,
    mechanism: &str,
    creds: Credentials,
) -> Result<(), Failure> {
    if readable(mechanism) {
        check_secure(h, mechanism)?;
    }
    let password = || {
        creds
            .password
            .clone()
            .map(Secret::new)
            .ok_or_else(|| Failure::invalid_argument(format!("{mechanism} needs `password`")))
    };
    let token = || {
        creds
            .token
            .clone()
            .map(Secret::new)
            .ok_or_else(|| Failure::invalid_argument(format!("{mechanism} needs `token`")))
    };
    let user = creds.username.as_str();
    utf8_if_needed(h, &creds).await?;
    let nfkc = h.with(|c| c.cfg.nfkc);
    let mech: Box<dyn Mechanism> = match mechanism {
        "USER" => {
            let r = h.command(Command::User { name: user.to_string() }).await?;
            r.into_result(true)?;
            let r = h.command(Command::Pass { password: password()? }).await?;
            r.into_result(true)?;
            return Ok(());
        }
        "APOP" => {
            let stamp = h.with(|c| c.session.greeting().and_then(|g| g.apop_timestamp.clone()));
            let stamp = stamp.ok_or_else(|| {
                Failure::new(
                    ErrorCode::Unsupported,
                    "the greeting has no valid APOP timestamp; the server does not offer APOP",
                )
            })?;
            let digest = apop_digest(&stamp, &password()?);
            let r = h.command(Command::Apop { name: user.to_string(), digest }).await?;
            r.into_result(true)?;
            return Ok(());
        }
        "PLAIN" => Box::new(Plain::new(user, password()?)),
        "LOGIN" => Box::new(Login::new(user, password()?)),
        "CRAM-MD5" => Box::new(CramMd5::new(user, password()?)),
        "SCRAM-SHA-1" => {
            Box::new(Scram::new(ScramHash::Sha1, user, password()?, &client_nonce(h)?).with_nfkc(nfkc))
        }
        "SCRAM-SHA-256" => {
            Box::new(Scram::new(ScramHash::Sha256, user, password()?, &client_nonce(h)?).with_nfkc(nfkc))
        }
        "XOAUTH2" => Box::new(XOAuth2::new(user, token()?)),
        "OAUTHBEARER" => {
            let (host, port) = h.with(|c| (c.cfg.host.clone(), c.cfg.port));
            Box::new(OAuthBearer::new(user, token()?).with_target(&host, port))
        }
        other => {
            return Err(Failure::new(
                ErrorCode::Unsupported,
                format!("SASL mechanism {other} is not supported"),
            ));
        }
    };
    let r = h.command(Command::Auth { mechanism: mech }).await?;
    r.into_result(true)?;
    Ok(())
}

/// Waits for the CAPA the core asks after login (Gmail announces
/// PIPELINING only then), so the capabilities and pipelining are current
/// when the login call ends.
pub(super) async fn after_login(h: &Handle) -> Result<(), Failure> {
    if let Some(id) = h.with(|c| c.session.take_recapa()) {
        h.reply(id, "CAPA").await?;
    }
    Ok(())
}

// ------------------------------------------------------------------ commands

/// A command with a small answer, typed.
pub(super) async fn simple(h: Handle, cmd: Command) -> Result<Output, Failure> {
    match cmd {
        Command::Capa => {
            let r = ok_or_server_error(h.command(cmd).await?)?;
            Ok(Output::Capabilities(Capabilities::parse(r.body.as_deref().unwrap_or_default())))
        }
        Command::Stat => {
            h.enter(Phase::Stat);
            let r = h.command(cmd).await.and_then(ok_or_server_error).and_then(|r| Ok(parse_stat(&r.text)?));
            h.leave(r.is_ok());
            let (count, size) = r?;
            Ok(Output::Stat { count, size })
        }
        Command::List { msg } => {
            let r = ok_or_server_error(h.command(cmd).await?)?;
            Ok(match msg {
                Some(_) => {
                    let (id, size) = parse_list_entry(&r.text)?;
                    Output::ListOne(id, size)
                }
                None => Output::List(parse_list(r.body.as_deref().unwrap_or_default())?),
            })
        }
        Command::Uidl { msg } => {
            let r = ok_or_server_error(h.command(cmd).await?)?;
            Ok(match msg {
                Some(_) => {
                    let (id, uid) = parse_uidl_entry(&r.text)?;
                    Output::UidlOne(id, uid)
                }
                None => Output::Uidl(parse_uidl(r.body.as_deref().unwrap_or_default())?),
            })
        }
        // QUIT: the server commits the deletions, then the connection closes.
        Command::Quit => {
            let r = h.command(cmd).await;
            h.with(Core::close_transport);
            Ok(Output::Text(ok_or_server_error(r?)?.text))
        }
        cmd => Ok(Output::Text(ok_or_server_error(h.command(cmd).await?)?.text)),
    }
}

/// A body as a stream: the call ends at `+OK`; the pieces and the end
/// follow as events.
async fn stream(h: Handle, cmd: Command) -> Result<Output, Failure> {
    let id = h.enqueue_with(cmd, Some((0, false)))?;
    match h.until("the command", h.ms, Want::Started(id)).await? {
        Got::Reply(r) => {
            ok_or_server_error(r)?;
            Err(Failure::new(ErrorCode::ProtocolError, "a body command answered without a body"))
        }
        _ => Ok(Output::StreamOpen),
    }
}

/// For every message (or `ids`): size, UID and decoded headers, from
/// LIST + UIDL + `TOP n 0`, pipelined.
async fn summaries(h: Handle, ids: Option<Vec<MsgNum>>) -> Result<Output, Failure> {
    let mut entries: Vec<Summary> = Vec::new();
    let mut tops = Vec::new();
    match ids {
        None => {
            let list = h.enqueue(Command::List { msg: None })?;
            let uidl = h.enqueue(Command::Uidl { msg: None })?;
            let list = ok_or_server_error(h.reply(list, "LIST").await?)?;
            let uidl = h.reply(uidl, "UIDL").await?;
            let mut uids = match uidl.is_ok() {
                true => parse_uidl(uidl.body.as_deref().unwrap_or_default())?,
                false => Vec::new(),
            };
            uids.sort_unstable_by_key(|(id, _)| *id);
            let uid_of =
                |id: u32| uids.binary_search_by_key(&id, |(k, _)| *k).ok().map(|i| uids[i].1.clone());
            for (id, size) in parse_list(list.body.as_deref().unwrap_or_default())? {
                tops.push(h.enqueue(Command::Top { msg: id, lines: 0 })?);
                entries.push(Summary { id, size: Some(size), uid: uid_of(id), ..Summary::default() });
            }
        }
        Some(ids) => {
            let mut per_id = Vec::new();
            for &id in &ids {
                let list = h.enqueue(Command::List { msg: Some(id) })?;
                let uidl = h.enqueue(Command::Uidl { msg: Some(id) })?;
                tops.push(h.enqueue(Command::Top { msg: id, lines: 0 })?);
                per_id.push((list, uidl));
                entries.push(Summary { id, ..Summary::default() });
            }
            for (entry, (list, uidl)) in entries.iter_mut().zip(per_id) {
                let list = h.reply(list, "LIST").await?;
                match list.into_result(false) {
                    Ok(r) => entry.size = Some(parse_list_entry(&r.text)?.1),
                    Err(e) => entry.error = Some(e.to_string()),
                }
                let uidl = h.reply(uidl, "UIDL").await?;
                if uidl.is_ok() {
                    entry.uid = Some(parse_uidl_entry(&uidl.text)?.1);
                }
            }
        }
    }
    let total = entries.len();
    for (k, (entry, top)) in entries.iter_mut().zip(tops).enumerate() {
        match ok_or_server_error(h.reply(top, "TOP").await?) {
            Ok(r) => entry.headers = summarize(r.body.as_deref().unwrap_or_default()),
            Err(f) => {
                entry.error.get_or_insert(f.message);
            }
        }
        h.progress(k + 1, total);
    }
    Ok(Output::Summaries(entries))
}

/// RETR for many messages, pipelined; each body goes out as part `index`.
async fn retr_many(h: Handle, ids: Vec<MsgNum>) -> Result<Output, Failure> {
    let parts = ids
        .iter()
        .enumerate()
        .map(|(part, &msg)| h.enqueue_with(Command::Retr { msg }, Some((part, true))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(parts.len());
    let total = parts.len();
    for (k, id) in parts.into_iter().enumerate() {
        let r = h.reply(id, "RETR").await?;
        out.push(ok_or_server_error(r).map(|_| ()));
        h.progress(k + 1, total);
    }
    Ok(Output::RetrMany(out))
}

/// DELE for many messages, pipelined. Nothing is deleted until QUIT.
async fn dele_many(h: Handle, ids: Vec<MsgNum>) -> Result<Output, Failure> {
    let sent = ids.iter().map(|&msg| h.enqueue(Command::Dele { msg })).collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(sent.len());
    for id in sent {
        let r = h.reply(id, "DELE").await?;
        out.push(ok_or_server_error(r).map(|r| r.text));
    }
    Ok(Output::DeleMany(out))
}

/// One command line as typed; the answer whatever it is.
async fn raw(h: Handle, line: String) -> Result<Output, Failure> {
    let cmd = Command::parse_raw(&line)?;
    if matches!(cmd, Command::Pass { .. }) {
        check_secure(&h, "PASS")?;
    }
    let logs_in = matches!(cmd, Command::Pass { .. } | Command::Apop { .. });
    let (response, body) = match cmd {
        // Ends once TLS is up (or with the server's -ERR).
        Command::Stls => {
            let tls_ms = h.with(|c| c.cfg.deadlines.tls);
            (starttls(&h, h.ms, tls_ms).await?, RawBody::None)
        }
        // The core reads CAPA itself: its body stays in the response.
        Command::Capa => {
            let r = h.command(cmd).await?;
            let body = if r.body.is_some() { RawBody::Inline } else { RawBody::None };
            (r, body)
        }
        cmd if cmd.is_multiline() => {
            let r = h.collect(cmd, 0).await?;
            let body = if r.is_ok() { RawBody::Collected } else { RawBody::None };
            (r, body)
        }
        cmd => (h.command(cmd).await?, RawBody::None),
    };
    if logs_in && response.is_ok() {
        // As login(): the call ends with the new capabilities known.
        after_login(&h).await?;
    }
    Ok(Output::Raw { response, body })
}
