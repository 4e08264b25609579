//! The sans-IO client driver: the protocol policy between a caller's
//! calls and the [`Session`](crate::proto::Session), with no I/O and no clock.
//!
//! ```text
//!  start(Request) ──► op (connect, login, summaries, raw, …) ──enqueue──► Session ──► [TlsClient] ──► poll_transmit()
//!  poll_event()   ◄── Done / Body / Transcript / Phase ◄──events────────  Session ◄── [TlsClient] ◄── data(bytes)
//!                     opened / control(msg) / transport_tls / closed ──► transport state
//!                     poll_timeout() ─► handle_timeout(now): deadlines, keepalive
//! ```
//!
//! What it decides, once, for every front end (the wasm face, and natively
//! the tests): the connect sequence (transport, TLS, greeting, CAPA, STLS,
//! CAPA again), which login mechanism and in which order (the strongest
//! usable, readable credentials only over TLS unless allowed), UTF8 before
//! non-ASCII credentials, the CAPA after login, the summaries of a mailbox
//! (LIST + UIDL + `TOP n 0`, pipelined), the deadline of every step and the
//! keepalive NOOP, and where TLS ends:
//!
//! - **bridge**: ws-bridge does TLS (wire v1 and v2); STLS is a control
//!   message and the bridge reads the server's answer by the core's rule.
//! - **client** (`end_to_end`, feature `tls`): the driver's own
//!   [`TlsClient`](crate::tls::TlsClient) sits between the session and the
//!   transport, which only ever carries ciphertext (after the plaintext
//!   `CAPA`/`STLS` of a STLS session); the driver writes STLS itself.
//! - **transport** (direct mode without `end_to_end`): the transport's own
//!   TLS (Node's), started when the driver says [`Transmit::StartTls`].
//!
//! Time is an input (quinn-proto's style): every call takes `now`, in
//! milliseconds on the caller's clock, and [`Driver::poll_timeout`] says
//! when to call [`Driver::handle_timeout`]. Each operation is written as an
//! `async fn` over the shared state and polled by the driver whenever an
//! input arrives (a no-op waker: nothing runs on its own), so a sequence
//! like "CAPA, then STLS, then the handshake, then CAPA" reads top to bottom
//! and is tested natively with a scripted server and a rustls server wired
//! back to back in memory (tests/driver.rs).
//!
//! Message bodies never collect in the driver: each decoded piece of a
//! RETR/TOP body goes out as [`Event::Body`] as it arrives (the wasm face
//! copies it into JavaScript at once).
//!
//! The connect sequence's phases ([`Phase`]) are recorded with their
//! times ([`Driver::phases`]), for a diagnosis to show step by step.

#[cfg(feature = "diagnose")]
mod diagnose;
mod failure;
mod ops;
mod shared;

use std::{
    cell::{Ref, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

pub use self::failure::{Failure, ms_text};
use self::{ops::Handle, shared::Core};
use crate::{
    proto::{Capabilities, Command, Direction, ErrorCode, MsgNum, Response, Session, State},
    wire::{ConnectFailure, ServerMessage, TlsInfo, TlsMode, TlsReason, Token},
};

/// Names an operation started with [`Driver::start`].
pub type OpId = u64;
/// Milliseconds on the caller's clock (`Date.now()` in the wasm face: one
/// clock for deadlines and, as seconds, for certificate validity).
pub type Millis = f64;

/// The deadline of each kind of step, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deadlines {
    /// Opening the transport and the bridge's connect (TCP).
    pub connect: Millis,
    /// A TLS handshake.
    pub tls: Millis,
    /// The server's greeting.
    pub greeting: Millis,
    /// Each command's answer (a call may set its own).
    pub command: Millis,
}

impl Deadlines {
    pub fn all(ms: Millis) -> Deadlines {
        Deadlines { connect: ms, tls: ms, greeting: ms, command: ms }
    }
}

/// What carries the session's bytes.
#[derive(Debug, Clone)]
pub enum Route {
    /// ws-bridge at `url` (only ever shown in messages), in its session
    /// wire format: the driver sends `connect` and reads control messages.
    Bridge { url: String, token: Option<Token> },
    /// A TCP connection straight to the server (Node's direct transport):
    /// a byte pipe, TLS by the transport unless `end_to_end`.
    Direct,
}

/// Where TLS to the server ends (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPlace {
    Bridge,
    Client,
    Transport,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub route: Route,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// TLS in the client (feature `tls`): the bridge relays ciphertext.
    pub end_to_end: bool,
    /// With `tls: Starttls`: the connect sequence stops after the first
    /// CAPA and the caller sends STLS (`Request::Raw("STLS")`, the
    /// playground's "STLS by hand").
    pub manual_stls: bool,
    /// CA certificates to trust besides the webpki roots (PEM or DER), for
    /// the client's TLS engine.
    pub ca: Vec<u8>,
    pub deadlines: Deadlines,
    /// NOOP after this long idle in TRANSACTION state.
    pub keepalive: Option<Millis>,
    pub pipelining: bool,
    pub pipelining_window: usize,
    pub max_body: usize,
    pub allow_insecure_auth: bool,
    /// Emit [`Event::Transcript`].
    pub transcript: bool,
    /// Fills the buffer with random bytes (SCRAM's nonce); false when the
    /// platform has none.
    pub random: fn(&mut [u8]) -> bool,
    /// Unicode NFKC, for SASLprep (SCRAM).
    pub nfkc: fn(&str) -> String,
}

impl Config {
    /// The defaults of `Pop3Client.connect`: 30 s deadlines, pipelining on,
    /// a 128 MiB bound on collected bodies, no randomness (set `random`).
    pub fn new(route: Route, host: impl Into<String>, tls: TlsMode) -> Config {
        let defaults = crate::proto::Options::default();
        Config {
            route,
            host: host.into(),
            port: tls.default_port(),
            tls,
            end_to_end: false,
            manual_stls: false,
            ca: Vec::new(),
            deadlines: Deadlines::all(DEFAULT_TIMEOUT),
            keepalive: None,
            pipelining: defaults.pipelining,
            pipelining_window: defaults.pipelining_window,
            max_body: defaults.max_body,
            allow_insecure_auth: false,
            transcript: false,
            random: |_| false,
            nfkc: crate::proto::no_nfkc,
        }
    }

    /// Where TLS ends with these settings.
    pub fn tls_place(&self) -> TlsPlace {
        match (&self.route, self.end_to_end) {
            (_, true) => TlsPlace::Client,
            (Route::Bridge { .. }, false) => TlsPlace::Bridge,
            (Route::Direct, false) => TlsPlace::Transport,
        }
    }

    /// The combinations that cannot work, refused before anything is sent.
    pub fn validate(&self) -> Result<(), Failure> {
        if self.host.is_empty() {
            return Err(Failure::invalid_argument("`host` is required"));
        }
        if self.port == 0 {
            return Err(Failure::invalid_argument("`port` must be an integer from 1 to 65535"));
        }
        if self.end_to_end && self.tls == TlsMode::None {
            return Err(Failure::invalid_argument(
                "`endToEnd` is TLS in the client: it needs tls: 'implicit' or 'starttls', not 'none'",
            ));
        }
        if self.manual_stls && self.tls != TlsMode::Starttls {
            return Err(Failure::invalid_argument("`manualStls` goes with tls: 'starttls'"));
        }
        if self.end_to_end && !cfg!(feature = "tls") {
            return Err(Failure::new(
                ErrorCode::Unsupported,
                "end-to-end TLS needs the TLS-capable module (pop3_wasm_tls)",
            ));
        }
        if !self.ca.is_empty() && self.tls_place() == TlsPlace::Bridge {
            return Err(Failure::invalid_argument(
                "`ca` is for end-to-end TLS and direct connections; a bridge doing TLS trusts what its own --ca-file names",
            ));
        }
        Ok(())
    }
}

/// The default deadline of every step, in ms.
pub const DEFAULT_TIMEOUT: Millis = 30_000.0;

/// What the caller asks for. Each becomes one operation; its result comes
/// back as [`Event::Done`] with an [`Output`].
#[derive(Debug)]
pub enum Request {
    /// The connect sequence; start it first, once.
    Connect,
    /// One command whose answer is small (CAPA, STAT, LIST, UIDL, DELE,
    /// RSET, NOOP, QUIT): a typed [`Output`].
    Command(Command),
    /// RETR or TOP, the body out as [`Event::Body`] (part 0), bounded by
    /// `max_body`: [`Output::Collected`].
    Collect(Command),
    /// RETR or TOP as a stream: [`Output::StreamOpen`] at `+OK`, then
    /// [`Event::Body`] and [`Event::BodyEnded`] (no bound).
    Stream(Command),
    /// The strongest usable mechanism: [`Output::LoggedIn`].
    Login {
        user: String,
        password: String,
    },
    /// A named mechanism (`USER`, `APOP` and the SASL ones).
    Auth {
        mechanism: String,
        username: String,
        password: Option<String>,
        token: Option<String>,
    },
    /// `None`: every message.
    Summaries(Option<Vec<MsgNum>>),
    RetrMany(Vec<MsgNum>),
    DeleMany(Vec<MsgNum>),
    /// One command line as typed (the playground).
    Raw(String),
    /// The connect sequence, then as far as it goes: login, STAT, UIDL;
    /// never QUIT. Ends with [`Output::Diagnosis`] whatever the server did
    /// (feature `diagnose`).
    #[cfg(feature = "diagnose")]
    Diagnose(crate::diagnose::Ask),
}

/// The result of an operation.
#[derive(Debug)]
pub enum Output {
    Connected,
    /// The text after `+OK` (DELE, RSET, NOOP, QUIT).
    Text(String),
    Capabilities(Capabilities),
    Stat {
        count: u64,
        size: u64,
    },
    List(Vec<(MsgNum, u64)>),
    ListOne(MsgNum, u64),
    Uidl(Vec<(MsgNum, String)>),
    UidlOne(MsgNum, String),
    /// The body went out as [`Event::Body`] (part 0).
    Collected,
    /// `+OK`: the body follows as [`Event::Body`], then [`Event::BodyEnded`].
    StreamOpen,
    /// The mechanism used.
    LoggedIn(String),
    Summaries(Vec<Summary>),
    /// Per message, in the order asked; the bodies went out as
    /// [`Event::Body`], part = index.
    RetrMany(Vec<Result<(), Failure>>),
    /// Per message: the `+OK` text or the refusal.
    DeleMany(Vec<Result<String, Failure>>),
    /// The answer whatever it is (`-ERR` included).
    Raw {
        response: Response,
        body: RawBody,
    },
    /// What a diagnosis found out (the session is closed, without QUIT).
    #[cfg(feature = "diagnose")]
    Diagnosis(Box<crate::diagnose::Facts>),
}

/// Where the body of a raw command's answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawBody {
    /// A one-line answer (or `-ERR`).
    None,
    /// CAPA: in `response.body` (the core reads it itself).
    Inline,
    /// Went out as [`Event::Body`] (part 0).
    Collected,
}

/// One message of a mailbox listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub id: MsgNum,
    pub uid: Option<String>,
    pub size: Option<u64>,
    pub headers: crate::summary::Summary,
    /// Why this entry is incomplete (the server refused one of its commands).
    pub error: Option<String>,
}

/// What the caller has to do on the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A control message for the bridge (a WebSocket TEXT frame).
    Control(String),
    /// Bytes for the server (BINARY frame, or a socket write): ciphertext
    /// when TLS is in the client.
    Data(Vec<u8>),
    /// Direct mode: start the transport's TLS handshake now (to `host`,
    /// SNI unless it is an IP address) and report [`Driver::transport_tls`].
    StartTls,
    /// Close the transport: the session is over.
    Close,
}

/// How the transport failed before or instead of carrying the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// The WebSocket to the bridge could not be opened (`detail`: what the
    /// runtime said, possibly nothing).
    Unreachable { detail: String },
    /// The bridge refused the WebSocket handshake (HTTP `status`).
    Refused { status: u16 },
    /// Direct: the TCP connection failed.
    Connect(ConnectFailure),
    /// Direct, the transport's TLS: the handshake failed.
    Tls { reason: TlsReason, detail: Option<String> },
}

/// A step of the connect sequence and the calls after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The transport (and through a bridge, its connect; with bridge-side
    /// implicit TLS, the handshake too).
    Connect,
    /// The implicit TLS handshake (client or transport TLS).
    Tls,
    Greeting,
    Capa,
    /// STLS and its handshake.
    Stls,
    Auth,
    Stat,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Greeting => "greeting",
            Phase::Capa => "capa",
            Phase::Stls => "stls",
            Phase::Auth => "auth",
            Phase::Stat => "stat",
        }
    }
}

/// When a phase ran, in ms since the driver was created.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseMark {
    pub phase: Phase,
    pub start: Millis,
    /// `None` while it runs.
    pub end: Option<Millis>,
    /// Ended without a failure.
    pub ok: bool,
}

/// TLS to the server, as the caller shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSummary {
    pub info: TlsInfo,
    /// TLS ends in the client: the bridge saw ciphertext only.
    pub end_to_end: bool,
    /// Every certificate the server sent, leaf first (client TLS only).
    #[cfg(feature = "tls")]
    pub chain: Vec<crate::tls::CertificateDetails>,
}

/// What the driver reports.
#[derive(Debug)]
pub enum Event {
    Done {
        op: OpId,
        result: Result<Output, Failure>,
    },
    /// A line of the dialogue (secrets redacted); `latency`: on the status
    /// line that answers a command, ms since the command went out.
    Transcript {
        dir: Direction,
        line: String,
        latency: Option<Millis>,
    },
    /// `+OK` to a body command; `size`: what the server announced.
    BodyStarted {
        op: OpId,
        part: usize,
        size: Option<u64>,
    },
    /// A decoded piece of a body.
    Body {
        op: OpId,
        part: usize,
        data: Vec<u8>,
    },
    /// A stream's body is complete (or failed).
    BodyEnded {
        op: OpId,
        part: usize,
        result: Result<(), Failure>,
    },
    /// `done` of `total` items of a summaries or RETR-many operation.
    Progress {
        op: OpId,
        done: usize,
        total: usize,
    },
    /// A phase ended.
    PhaseEnded(PhaseMark),
}

type OpFuture = Pin<Box<dyn Future<Output = Result<Output, Failure>>>>;

struct Slot {
    id: OpId,
    fut: OpFuture,
}

/// The client driver. See the module documentation.
pub struct Driver {
    core: Rc<RefCell<Core>>,
    ops: Vec<Slot>,
    next_op: OpId,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("ops", &self.ops.len()).field("core", &self.core.borrow()).finish()
    }
}

impl Driver {
    /// A driver for one session. Check `config` with [`Config::validate`]
    /// first; then [`Driver::start`] [`Request::Connect`] and open the
    /// transport.
    pub fn new(config: Config, now: Millis) -> Driver {
        Driver { core: Rc::new(RefCell::new(Core::new(config, now))), ops: Vec::new(), next_op: 1 }
    }

    /// Starts an operation. `timeout`: this call's deadline for each answer
    /// (default: the config's command deadline). Its result comes as
    /// [`Event::Done`] (at once when it cannot start).
    pub fn start(&mut self, now: Millis, request: Request, timeout: Option<Millis>) -> OpId {
        let id = self.next_op;
        self.next_op += 1;
        let ms = {
            let mut core = self.core.borrow_mut();
            core.now = now;
            timeout.unwrap_or(core.cfg.deadlines.command)
        };
        let h = Handle::new(self.core.clone(), id, ms);
        self.ops.push(Slot { id, fut: ops::start(h, request) });
        self.run();
        id
    }

    /// The transport is open: the WebSocket to the bridge (with the
    /// subprotocol it selected), or the TCP connection.
    pub fn opened(&mut self, now: Millis, subprotocol: &str) {
        self.at(now).opened = Some(subprotocol.to_string());
        self.run();
    }

    /// A control message from the bridge.
    pub fn control(&mut self, now: Millis, message: ServerMessage) {
        self.at(now).control(message);
        self.run();
    }

    /// A control message from the bridge that is not valid JSON of the
    /// wire format: the session ends with `PROTOCOL_ERROR`.
    pub fn malformed_control(&mut self, now: Millis, what: &str) {
        self.at(now).fail(Failure::new(ErrorCode::ProtocolError, format!("the bridge sent {what}")));
        self.run();
    }

    /// Bytes from the server (through the bridge or the socket).
    pub fn data(&mut self, now: Millis, bytes: &[u8]) {
        self.at(now).data(bytes);
        self.run();
    }

    /// The transport's own TLS handshake is done (after
    /// [`Transmit::StartTls`]).
    pub fn transport_tls(&mut self, now: Millis, info: TlsInfo) {
        self.at(now).tls_ready(info, false);
        self.run();
    }

    /// The transport could not do its job.
    pub fn transport_failed(&mut self, now: Millis, why: TransportFailure) {
        self.at(now).transport_failed(why);
        self.run();
    }

    /// The transport closed; `code`: the WebSocket close code.
    pub fn closed(&mut self, now: Millis, code: Option<u16>) {
        self.at(now).closed(code);
        self.run();
    }

    /// Whether an operation waits under a deadline (else only the
    /// keepalive, if any, is timed).
    pub fn waiting(&self) -> bool {
        self.core.borrow().waiting()
    }

    /// When [`Driver::handle_timeout`] is due, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.core.borrow().next_timeout()
    }

    /// Deadlines that passed end the session (`TIMEOUT`); a due keepalive
    /// sends NOOP.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.at(now).timeout();
        self.run();
    }

    /// Drops the session because the caller aborted `op` (its result is
    /// [`ErrorCode::ConnectionClosed`] "aborted"; others get the sticky
    /// failure). Nothing is committed.
    pub fn abort(&mut self, now: Millis, op: OpId) {
        let Some(i) = self.ops.iter().position(|s| s.id == op) else { return };
        let what = self.core.borrow().waiting_for(op).unwrap_or("the call");
        let slot = self.ops.remove(i);
        drop(slot.fut);
        {
            let mut c = self.at(now);
            c.fail(Failure::new(
                ErrorCode::ConnectionClosed,
                format!("{what} was aborted; the session was dropped"),
            ));
            c.events.push_back(Event::Done {
                op,
                result: Err(Failure::new(ErrorCode::ConnectionClosed, "aborted")),
            });
        }
        self.run();
    }

    /// Ends the session with `failure` (the caller's `close()`); nothing
    /// marked is deleted.
    pub fn close(&mut self, now: Millis, failure: Failure) {
        self.at(now).fail(failure);
        self.run();
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.borrow_mut().out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.borrow_mut().events.pop_front()
    }

    /// The protocol state: greeting, capabilities, deviations, mechanisms.
    pub fn session(&self) -> Ref<'_, Session> {
        Ref::map(self.core.borrow(), |c| &c.session)
    }

    /// AUTHORIZATION, TRANSACTION, or CLOSED once the session failed.
    pub fn state(&self) -> State {
        let c = self.core.borrow();
        if c.failure.is_some() { State::Closed } else { c.session.state() }
    }

    /// TLS to the server, once up.
    pub fn tls(&self) -> Option<TlsSummary> {
        self.core.borrow().tls.clone()
    }

    /// The phases so far, in order.
    pub fn phases(&self) -> Vec<PhaseMark> {
        self.core.borrow().phases.clone()
    }

    /// The failure that ended the session, if it ended.
    pub fn failure(&self) -> Option<Failure> {
        self.core.borrow().failure.clone()
    }

    /// The config's command deadline (a call's default).
    pub fn command_deadline(&self) -> Millis {
        self.core.borrow().cfg.deadlines.command
    }

    /// The deadline of a TLS handshake.
    pub fn tls_deadline(&self) -> Millis {
        self.core.borrow().cfg.deadlines.tls
    }

    /// The shared state at `now`, for one input (followed by a run).
    fn at(&self, now: Millis) -> std::cell::RefMut<'_, Core> {
        let mut core = self.core.borrow_mut();
        core.now = now;
        core
    }

    /// Polls every operation until nothing moves: the session's events are
    /// taken in first, an operation may queue commands whose refusal
    /// completes at once, and so on. Then the output goes to the transport.
    #[inline(never)]
    fn run(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        self.core.borrow_mut().absorb();
        loop {
            let mut finished = false;
            let mut i = 0;
            while i < self.ops.len() {
                match self.ops[i].fut.as_mut().poll(&mut cx) {
                    Poll::Ready(result) => {
                        let slot = self.ops.remove(i);
                        drop(slot.fut);
                        self.core.borrow_mut().events.push_back(Event::Done { op: slot.id, result });
                        finished = true;
                    }
                    Poll::Pending => i += 1,
                }
            }
            // What the operations caused (commands sent, refused at once).
            let absorbed = self.core.borrow_mut().absorb();
            if absorbed == 0 && !finished {
                break;
            }
        }
        self.core.borrow_mut().flush();
    }
}
