//! The session state machine: commands in, bytes out; bytes in, events out.
//!
//! ```text
//!   enqueue(Command) ──► queue ──pump──► output bytes ──► (transport)
//!                                  │
//!   (transport) ──► feed(bytes) ──► line / body decoder ──► events
//! ```
//!
//! Commands wait in a queue and are released by `pump`: one at a time
//! (lockstep) unless the server announced PIPELINING, then as many as fit
//! in the window. Commands that change the state (USER, PASS, APOP, AUTH,
//! STLS, UTF8, QUIT) are barriers: sent only when nothing is outstanding,
//! and nothing follows them until they are answered. So a command's state
//! check at send time always sees the state the server will see.
//!
//! # The pipelining window
//!
//! The window is counted in octets of command lines sent and not yet
//! answered: at most `Options::pipelining_bytes` (16 KiB by default), and
//! at most `Options::pipelining_window` commands (an upper bound a user may
//! set; by default it is high enough never to bind before the octets do).
//! What limits a batch on a long link is how many round trips it takes to
//! get the commands out, and their size is what fills buffers: 1000
//! `TOP n 0` lines are 10 893 octets, so a header scan of a 1000-message
//! mailbox leaves in one flight (one write, 8 TCP segments of 1 460 octets,
//! inside TCP's initial window of 10) and the answers stream back at the rate
//! the path allows; a bigger batch is released as answers come back, about
//! 1 400 commands per round trip.
//!
//! Why this cannot deadlock. RFC 2449 § 6.6: "If either the client or
//! server uses blocking writes, it MUST not exceed the window size of the
//! underlying transport layer." The deadlock it warns about is a client
//! that blocks writing commands while the server blocks writing answers
//! the client is not reading: each waits for the other's TCP window. This
//! core never blocks: `take_output` hands bytes to the transport, and the
//! transports (a WebSocket, whose `send` queues; Node's `socket.write`,
//! which queues; the bridge, which relays both directions concurrently)
//! keep reading answers whatever is still unsent, so the server can always
//! write, and a server that can write keeps reading. The octet bound is for
//! a server that reads slowly, or not while it writes: at most 16 KiB of
//! our commands ever wait in its receive buffer and in the buffers on the
//! way (far below any TCP receive buffer: Linux starts at 128 KiB), so our
//! side never queues without bound either (also while a stream's reader
//! has stopped and the transport pauses reading: the session waits for
//! that reader). The commands in flight are answered in order; a session
//! that fails fails each of them.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::capability::Capabilities;
use super::command::{Command, MAX_COMMAND_OCTETS};
use super::deviation::{Deviation, Deviations};
use super::error::{Error, ServerReply};
use super::login::{offered_mechanisms, usable_mechanisms};
use super::multiline::BodyDecoder;
use super::response::{self, Line, Status, StatusLine, excerpt};
use super::sasl::SaslError;
use super::secret::{REDACTED, Secret};
use super::state::State;
use super::stls::{StlsVerdict, stls_verdict};

pub type CommandId = u64;

/// A complete answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub resp_code: Option<String>,
    pub text: String,
    /// The decoded body of a multi-line `+OK` answer (unless streamed).
    pub body: Option<Vec<u8>>,
}

impl Response {
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    pub fn reply(&self) -> ServerReply {
        ServerReply { resp_code: self.resp_code.clone(), text: self.text.clone() }
    }

    /// Turns `-ERR` into the error a typed call reports. For the login
    /// commands a `-ERR` is `AUTH_FAILED`, except when its response code
    /// says the credentials were not the problem (RFC 2449 IN-USE,
    /// LOGIN-DELAY; RFC 3206 SYS/*).
    pub fn into_result(self, login: bool) -> Result<Response, Error> {
        if self.is_ok() {
            return Ok(self);
        }
        let not_credentials = self
            .resp_code
            .as_deref()
            .is_some_and(|c| c == "IN-USE" || c == "LOGIN-DELAY" || c.starts_with("SYS/"));
        if login && !not_credentials {
            Err(Error::AuthFailed { reply: Some(self.reply()), detail: String::new() })
        } else {
            Err(Error::Server(self.reply()))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub text: String,
    pub resp_code: Option<String>,
    /// Present only when the greeting holds a valid msg-id (RFC 1939 § 7).
    pub apop_timestamp: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    C,
    /// Server to client.
    S,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub dir: Direction,
    pub kind: LineKind,
    /// The command this line sends or answers (none for the greeting and
    /// for the session's own CAPA).
    pub id: Option<CommandId>,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Greeting,
    /// A command line the client sent.
    Command,
    /// The status line (`+OK`/`-ERR`) that answers a command.
    Status,
    /// A SASL challenge or response.
    Continuation,
    /// A line of a multi-line body, as on the wire.
    Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    GreetingReceived(Greeting),
    CommandCompleted {
        id: CommandId,
        result: Result<Response, Error>,
    },
    /// `+OK` to a streamed command: its body follows as `BodyChunkReceived`.
    BodyStarted {
        id: CommandId,
        text: String,
    },
    /// A piece of a streamed body, already unstuffed.
    BodyChunkReceived {
        id: CommandId,
        data: Vec<u8>,
    },
    LineTranscribed(TranscriptLine),
    /// The transport sends STLS itself (the bridge does, on a control
    /// message); the answer still comes through `feed`.
    StlsRequested,
    /// `+OK` to STLS: handshake now, then call `tls_established`.
    TlsUpgradeRequired,
    CapabilitiesUpdated,
    /// The session is over; every call from now on returns this error.
    SessionFailed(Error),
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The most commands in flight at once when the server announced
    /// PIPELINING (an upper bound: `pipelining_bytes` usually binds first).
    pub pipelining_window: usize,
    /// The most octets of command lines in flight at once when pipelining
    /// (see the module documentation). A command longer than this on its
    /// own is still sent, alone.
    pub pipelining_bytes: usize,
    /// Set to false to stay in lockstep even when PIPELINING is offered.
    pub pipelining: bool,
    /// Emit `LineTranscribed` events.
    pub transcript: bool,
    /// The transport, not the byte stream, carries STLS (see `StlsRequested`).
    pub stls_by_transport: bool,
    /// Ask CAPA again after STLS and after login (RFC 2449 § 6: the list may change).
    pub recapa: bool,
    /// The longest status or continuation line accepted, in octets.
    pub max_line: usize,
    /// How many octets of a body the transcript shows.
    pub transcript_body_limit: usize,
    /// The longest multi-line body collected whole (not streamed), in
    /// octets: past it the session fails with `PROTOCOL_ERROR`, so a server
    /// sending an endless body cannot grow the client without bound.
    pub max_body: usize,
    /// The connection is TLS from the start (implicit TLS, port 995).
    pub tls: bool,
    /// Readable credentials (USER/PASS, PLAIN, LOGIN, XOAUTH2,
    /// OAUTHBEARER) may go out without TLS to the server.
    pub allow_insecure_auth: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pipelining_window: PIPELINING_WINDOW,
            pipelining_bytes: PIPELINING_BYTES,
            pipelining: true,
            transcript: false,
            stls_by_transport: false,
            recapa: true,
            max_line: 64 * 1024,
            transcript_body_limit: 256 * 1024,
            max_body: MAX_BODY,
            tls: false,
            allow_insecure_auth: false,
        }
    }
}

/// The default `Options::pipelining_window`: more than fit in
/// `PIPELINING_BYTES` (the shortest command line is 6 octets), so by
/// default the octets decide.
const PIPELINING_WINDOW: usize = 4096;

/// The default `Options::pipelining_bytes`.
const PIPELINING_BYTES: usize = 16 * 1024;

/// The default `Options::max_body`: bigger messages are read as streams.
pub const MAX_BODY: usize = 128 * 1024 * 1024;

/// RFC 1939 § 3: responses are at most 512 octets, CRLF included.
const MAX_RFC_LINE: usize = 512;

struct Queued {
    /// `None` for the session's own commands (the CAPA after login).
    id: Option<CommandId>,
    cmd: Command,
    stream: bool,
}

enum Sasl {
    /// The initial response did not fit on the AUTH line: send it after
    /// the server's first (empty) challenge.
    Deferred(Secret<Vec<u8>>),
    Running,
    Cancelled(SaslError),
}

struct InFlight {
    id: Option<CommandId>,
    cmd: Command,
    stream: bool,
    sasl: Option<Sasl>,
    /// Octets of the command line (counted against `pipelining_bytes`).
    octets: usize,
}

enum Reading {
    Status,
    Body { status: StatusLine, decoder: BodyDecoder, body: Vec<u8>, raw: Option<(Vec<u8>, u64)> },
}

/// The capabilities the server announced at each step of the session
/// (RFC 2449 § 6: the list may change after STLS and after login). Each
/// holds the latest CAPA answered in that step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapaHistory {
    /// In AUTHORIZATION, before any STLS (on implicit TLS: before login).
    pub before_stls: Option<Capabilities>,
    /// In AUTHORIZATION, after STLS upgraded the connection.
    pub after_stls: Option<Capabilities>,
    /// In TRANSACTION.
    pub after_login: Option<Capabilities>,
}

pub struct Session {
    opts: Options,
    state: State,
    /// TLS to the server: implicit from the start, or after STLS.
    tls: bool,
    user_accepted: bool,
    awaiting_tls: bool,
    utf8: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    queue: VecDeque<Queued>,
    in_flight: VecDeque<InFlight>,
    /// The sum of `octets` over `in_flight`.
    in_flight_octets: usize,
    reading: Reading,
    events: VecDeque<Event>,
    next_id: CommandId,
    greeting: Option<Greeting>,
    capabilities: Option<Capabilities>,
    capa_history: CapaHistory,
    deviations: Deviations,
    fatal: Option<Error>,
    recapa_id: Option<CommandId>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("queued", &self.queue.len())
            .field("in_flight", &self.in_flight.len())
            .field("fatal", &self.fatal)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn new(opts: Options) -> Self {
        Self {
            tls: opts.tls,
            opts,
            state: State::Greeting,
            user_accepted: false,
            awaiting_tls: false,
            utf8: false,
            input: Vec::new(),
            output: Vec::new(),
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            in_flight_octets: 0,
            reading: Reading::Status,
            events: VecDeque::new(),
            next_id: 1,
            greeting: None,
            capabilities: None,
            capa_history: CapaHistory::default(),
            deviations: Deviations::default(),
            fatal: None,
            recapa_id: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// The capabilities from the latest CAPA; `None` before the first one and
    /// right after STLS or login, until the server has been asked again.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The latest CAPA of each step: before STLS, after STLS, after login.
    pub fn capa_history(&self) -> &CapaHistory {
        &self.capa_history
    }

    /// Whether the connection to the server is TLS (implicit, or after STLS).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Whether the greeting carries a valid RFC 1939 timestamp, the only
    /// case in which APOP is used (CVE-2007-1558).
    pub fn apop_usable(&self) -> bool {
        self.greeting.as_ref().is_some_and(|g| g.apop_timestamp.is_some())
    }

    /// Whether readable credentials may go out: TLS to the server, or the
    /// caller allowed it (`Options::allow_insecure_auth`).
    pub fn readable_credentials_allowed(&self) -> bool {
        self.tls || self.opts.allow_insecure_auth
    }

    /// The login mechanisms the server offers now, strongest first.
    pub fn offered_mechanisms(&self) -> Vec<&'static str> {
        offered_mechanisms(self.capabilities.as_ref(), self.apop_usable())
    }

    /// The mechanisms `login()` would try now, strongest first: those
    /// offered, less the readable ones where they are not allowed (none
    /// outside AUTHORIZATION).
    pub fn login_mechanisms(&self) -> Vec<&'static str> {
        if self.state != State::Authorization {
            return Vec::new();
        }
        usable_mechanisms(&self.offered_mechanisms(), self.readable_credentials_allowed())
    }

    pub fn deviations(&self) -> &[Deviation] {
        self.deviations.as_slice()
    }

    /// Records a deviation the transport saw (the bridge drops bytes sent
    /// after `+OK` to STLS before the core could see them).
    pub fn record_deviation(&mut self, d: Deviation) {
        self.deviations.record(d);
    }

    /// The longest body the session collects whole (`Options::max_body`);
    /// a caller collecting streamed chunks itself applies the same bound.
    pub fn max_body(&self) -> usize {
        self.opts.max_body
    }

    pub fn fatal(&self) -> Option<&Error> {
        self.fatal.as_ref()
    }

    /// Whether UTF8 (RFC 6856) was accepted by the server.
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// Whether commands are currently pipelined.
    pub fn pipelining(&self) -> bool {
        self.opts.pipelining
            && self.opts.pipelining_window > 1
            && self.capabilities.as_ref().is_some_and(|c| c.pipelining)
    }

    /// Commands sent or waiting to be sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Queues a command. Bad arguments are refused at once; the state check
    /// happens when the command's turn comes (an `INVALID_STATE` completion,
    /// nothing sent).
    pub fn enqueue(&mut self, cmd: Command) -> Result<CommandId, Error> {
        self.enqueue_with(cmd, false)
    }

    /// Like `enqueue`, but the body of a multi-line answer arrives as
    /// `BodyChunkReceived` events instead of in the response.
    pub fn enqueue_streaming(&mut self, cmd: Command) -> Result<CommandId, Error> {
        self.enqueue_with(cmd, true)
    }

    fn enqueue_with(&mut self, cmd: Command, stream: bool) -> Result<CommandId, Error> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        cmd.validate()?;
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Queued { id: Some(id), cmd, stream });
        self.pump();
        Ok(id)
    }

    /// Bytes received from the server, in pieces of any size.
    pub fn feed(&mut self, data: &[u8]) {
        if self.fatal.is_some() || self.awaiting_tls {
            return;
        }
        self.input.extend_from_slice(data);
        let mut pos = 0;
        while self.fatal.is_none() && !self.awaiting_tls {
            match self.step(pos) {
                Some(next) => pos = next,
                None => break,
            }
        }
        if self.awaiting_tls {
            // RFC 2595 § 4: nothing the server sent after +OK to STLS may be
            // read as part of the protected session.
            if pos < self.input.len() {
                self.deviations.record(Deviation::DataAfterStls);
            }
            self.input.clear();
        } else {
            self.input.drain(..pos);
        }
        self.pump();
    }

    /// Bytes to send to the server; empty when there is nothing to send.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The TLS handshake after STLS succeeded: sending resumes. With
    /// `recapa`, a CAPA goes first (the list may differ under TLS); its id is
    /// returned so the caller can wait for the new capabilities.
    pub fn tls_established(&mut self) -> Option<CommandId> {
        if !self.awaiting_tls {
            return None;
        }
        self.awaiting_tls = false;
        self.tls = true;
        let id = self.opts.recapa.then(|| {
            let id = self.next_id;
            self.next_id += 1;
            self.queue.push_front(Queued { id: Some(id), cmd: Command::Capa, stream: false });
            id
        });
        self.pump();
        id
    }

    /// The connection ended or the caller dropped it. Everything outstanding
    /// fails with `CONNECTION_CLOSED`; after a QUIT was answered, this is the
    /// normal end and nothing fails.
    pub fn connection_closed(&mut self, why: &str) {
        if self.fatal.is_some() {
            return;
        }
        if self.state == State::Closed && self.outstanding() == 0 {
            return;
        }
        let reason = match &self.reading {
            Reading::Body { decoder, .. } => {
                format!("{why} (in the middle of a multi-line answer, after {} octets)", decoder.wire_len())
            }
            Reading::Status => why.to_string(),
        };
        self.fail(Error::ConnectionClosed(reason));
    }

    /// Ends the session with a fatal error (used by the transport for
    /// timeouts and TLS failures too).
    pub fn fail(&mut self, error: Error) {
        if self.fatal.is_some() {
            return;
        }
        self.state = State::Closed;
        self.fatal = Some(error.clone());
        self.in_flight_octets = 0;
        for f in std::mem::take(&mut self.in_flight) {
            self.complete(f.id, Err(error.clone()));
        }
        for q in std::mem::take(&mut self.queue) {
            self.complete(q.id, Err(error.clone()));
        }
        self.events.push_back(Event::SessionFailed(error));
    }

    fn complete(&mut self, id: Option<CommandId>, result: Result<Response, Error>) {
        if let Some(id) = id {
            self.events.push_back(Event::CommandCompleted { id, result });
        }
    }

    fn transcribe(&mut self, dir: Direction, kind: LineKind, id: Option<CommandId>, line: String) {
        if self.opts.transcript {
            self.events.push_back(Event::LineTranscribed(TranscriptLine { dir, kind, id, line }));
        }
    }

    fn front_id(&self) -> Option<CommandId> {
        self.in_flight.front().and_then(|f| f.id)
    }

    /// Releases queued commands as far as lockstep/pipelining allow: with
    /// nothing in flight, the next command always goes; otherwise only when
    /// pipelining, neither it nor the last one sent is a barrier, and it
    /// fits the window (commands and octets; see the module documentation).
    fn pump(&mut self) {
        let pipelining = self.pipelining();
        while self.fatal.is_none() && !self.awaiting_tls && self.state != State::Greeting {
            let Some(front) = self.queue.front() else {
                break;
            };
            if !self.in_flight.is_empty() {
                let fits = pipelining
                    && !front.cmd.is_barrier()
                    && !self.in_flight.back().is_some_and(|f| f.cmd.is_barrier())
                    && self.in_flight.len() < self.opts.pipelining_window
                    && self.in_flight_octets + wire_len(&front.cmd) <= self.opts.pipelining_bytes;
                if !fits {
                    break;
                }
            }
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            if let Some(err) = self.refusal(&q.cmd) {
                self.complete(q.id, Err(err));
                continue;
            }
            self.send(q);
        }
    }

    /// Why `cmd` may not be sent now, if it may not: the state check at
    /// its turn (RFC 1939 states; STLS only once, RFC 2595 § 4).
    fn refusal(&self, cmd: &Command) -> Option<Error> {
        if !cmd.allowed_in(self.state, self.user_accepted) {
            return Some(if cmd.verb() == "PASS" && self.state == State::Authorization {
                Error::InvalidState { command: "PASS", state: "AUTHORIZATION without an accepted USER" }
            } else {
                Error::InvalidState { command: cmd.verb(), state: self.state.name() }
            });
        }
        if matches!(cmd, Command::Stls) && self.tls {
            return Some(Error::InvalidState { command: "STLS", state: "TLS-protected AUTHORIZATION" });
        }
        None
    }

    fn send(&mut self, q: Queued) {
        let Queued { id, mut cmd, stream } = q;
        let mut sasl = None;
        let before = self.output.len();
        match &mut cmd {
            Command::Auth { mechanism } => {
                let inline = match mechanism.initial_response() {
                    None => {
                        sasl = Some(Sasl::Running);
                        None
                    }
                    Some(ir) => {
                        let encoded =
                            if ir.expose().is_empty() { "=".to_string() } else { B64.encode(ir.expose()) };
                        // RFC 5034 § 4: the initial response goes on the AUTH
                        // line only if the line stays within 255 octets.
                        let line_len = "AUTH ".len() + mechanism.name().len() + 1 + encoded.len() + 2;
                        if line_len <= MAX_COMMAND_OCTETS {
                            sasl = Some(Sasl::Running);
                            Some(encoded)
                        } else {
                            sasl = Some(Sasl::Deferred(ir));
                            None
                        }
                    }
                };
                let shown = if inline.is_some() {
                    cmd.transcript_line()
                } else {
                    format!("AUTH {}", mechanism_name(&cmd))
                };
                cmd.encode(&mut self.output, inline.as_deref());
                self.transcribe(Direction::C, LineKind::Command, id, shown);
            }
            Command::Stls if self.opts.stls_by_transport => {
                self.transcribe(Direction::C, LineKind::Command, id, cmd.transcript_line());
                self.events.push_back(Event::StlsRequested);
            }
            _ => {
                cmd.encode(&mut self.output, None);
                self.transcribe(Direction::C, LineKind::Command, id, cmd.transcript_line());
            }
        }
        let octets = self.output.len() - before;
        self.in_flight_octets += octets;
        self.in_flight.push_back(InFlight { id, cmd, stream, sasl, octets });
    }

    /// Reads one line or one piece of a body starting at `pos`. Returns the
    /// new position, or `None` when more input is needed.
    fn step(&mut self, pos: usize) -> Option<usize> {
        if let Reading::Body { .. } = self.reading {
            return self.step_body(pos);
        }
        let rest = &self.input[pos..];
        if self.in_flight.front().is_some_and(|f| matches!(f.cmd, Command::Stls)) {
            // The answer to STLS is judged by the one rule every transport uses.
            match stls_verdict(rest) {
                StlsVerdict::Incomplete => return None,
                StlsVerdict::Unusable { line_len, reason } => {
                    if let Some(n) = line_len {
                        let line = rest[..n].strip_suffix(b"\n").unwrap_or(&rest[..n]);
                        let line = status_transcript(line.strip_suffix(b"\r").unwrap_or(line));
                        let id = self.front_id();
                        self.transcribe(Direction::S, LineKind::Status, id, line);
                    }
                    self.fail(Error::Tls(reason));
                    return None;
                }
                StlsVerdict::Proceed { .. } | StlsVerdict::Refused { .. } => {}
            }
        }
        let Some(lf) = rest.iter().position(|b| *b == b'\n') else {
            if rest.len() > self.opts.max_line {
                self.fail(Error::Protocol(format!(
                    "response line longer than {} octets without an end",
                    self.opts.max_line
                )));
            }
            return None;
        };
        if lf + 1 > self.opts.max_line {
            self.fail(Error::Protocol(format!("response line longer than {} octets", self.opts.max_line)));
            return None;
        }
        let mut line = &rest[..lf];
        match line.last() {
            Some(b'\r') => line = &line[..line.len() - 1],
            _ => self.deviations.record(Deviation::BareLf),
        }
        if lf + 1 > MAX_RFC_LINE {
            self.deviations.record(Deviation::LongLine);
        }
        let line = line.to_vec();
        self.handle_line(&line);
        Some(pos + lf + 1)
    }

    fn step_body(&mut self, pos: usize) -> Option<usize> {
        let limit = self.opts.transcript_body_limit;
        let Reading::Body { decoder, body, raw, .. } = &mut self.reading else {
            return None;
        };
        if pos >= self.input.len() {
            return None;
        }
        let before = body.len();
        let used = decoder.decode(&self.input[pos..], body, &mut self.deviations);
        if let Some((raw, dropped)) = raw {
            let take = used.min(limit.saturating_sub(raw.len()));
            raw.extend_from_slice(&self.input[pos..pos + take]);
            *dropped += (used - take) as u64;
        }
        let done = decoder.is_done();
        let front = self.in_flight.front();
        if front.is_some_and(|f| f.stream) && body.len() > before {
            let data = body.split_off(before);
            let id = front.and_then(|f| f.id).unwrap_or(0);
            self.events.push_back(Event::BodyChunkReceived { id, data });
        }
        if body.len() > self.opts.max_body {
            self.fail(Error::body_too_long(self.opts.max_body));
            return None;
        }
        if done {
            let Reading::Body { status, body, raw, .. } =
                std::mem::replace(&mut self.reading, Reading::Status)
            else {
                unreachable!()
            };
            if let Some((raw, dropped)) = raw {
                let id = self.front_id();
                for l in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let l = l.strip_suffix(b"\r").unwrap_or(l);
                    self.transcribe(
                        Direction::S,
                        LineKind::Data,
                        id,
                        String::from_utf8_lossy(l).into_owned(),
                    );
                }
                if dropped > 0 {
                    self.transcribe(
                        Direction::S,
                        LineKind::Data,
                        id,
                        format!("[… {dropped} more octets not shown]"),
                    );
                }
            }
            let streamed = self.in_flight.front().is_some_and(|f| f.stream);
            self.finish(status, if streamed { Some(Vec::new()) } else { Some(body) });
        }
        Some(pos + used)
    }

    fn handle_line(&mut self, line: &[u8]) {
        if self.state == State::Greeting {
            return self.handle_greeting(line);
        }
        let awaiting_sasl = self.in_flight.front().is_some_and(|f| f.sasl.is_some());
        let parsed = match response::parse_line(line, awaiting_sasl, &mut self.deviations) {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        let status = match parsed {
            Line::Continuation(data) => {
                let shown = format!("+ {}", String::from_utf8_lossy(&data));
                let id = self.front_id();
                self.transcribe(Direction::S, LineKind::Continuation, id, shown.trim_end().to_string());
                return self.handle_continuation(&data);
            }
            Line::Status(s) => s,
        };
        let id = self.front_id();
        self.transcribe(Direction::S, LineKind::Status, id, status_transcript(line));
        let Some(front) = self.in_flight.front() else {
            // Nothing outstanding: a server saying goodbye ("-ERR
            // Disconnected for inactivity") or one that sent too many replies.
            return self.fail(match status.status {
                Status::Err => Error::Server(ServerReply { resp_code: status.resp_code, text: status.text }),
                Status::Ok => Error::Protocol(format!(
                    "unexpected reply with no command outstanding: \"{}\"",
                    excerpt(line, 80)
                )),
            });
        };
        if status.status == Status::Ok && front.cmd.is_multiline() {
            if let (true, Some(id)) = (front.stream, front.id) {
                self.events.push_back(Event::BodyStarted { id, text: status.text.clone() });
            }
            let raw = self.opts.transcript.then(|| (Vec::new(), 0));
            self.reading = Reading::Body { status, decoder: BodyDecoder::new(), body: Vec::new(), raw };
        } else {
            self.finish(status, None);
        }
    }

    fn handle_greeting(&mut self, line: &[u8]) {
        let parsed = match response::parse_line(line, false, &mut self.deviations) {
            Ok(Line::Status(s)) => s,
            Ok(Line::Continuation(_)) => unreachable!("continuations are off for greetings"),
            Err(_) => {
                return self.fail(Error::Protocol(format!(
                    "the server's greeting is not POP3: \"{}\"",
                    excerpt(line, 80)
                )));
            }
        };
        self.transcribe(Direction::S, LineKind::Greeting, None, status_transcript(line));
        if parsed.status == Status::Err {
            return self.fail(Error::Server(ServerReply { resp_code: parsed.resp_code, text: parsed.text }));
        }
        let greeting = Greeting {
            apop_timestamp: response::apop_timestamp(&parsed.text),
            text: parsed.text,
            resp_code: parsed.resp_code,
        };
        self.greeting = Some(greeting.clone());
        self.state = State::Authorization;
        self.events.push_back(Event::GreetingReceived(greeting));
    }

    fn handle_continuation(&mut self, data: &[u8]) {
        let Some(front) = self.in_flight.front_mut() else {
            return;
        };
        let Command::Auth { mechanism } = &mut front.cmd else {
            return self.fail(Error::Protocol("continuation outside AUTH".into()));
        };
        let answer: Result<Secret<Vec<u8>>, SaslError> = match front.sasl.take() {
            Some(Sasl::Deferred(ir)) => Ok(ir),
            Some(Sasl::Running) => match B64.decode(data) {
                Ok(challenge) => mechanism.respond(&challenge),
                Err(_) => Err(SaslError("the server's challenge is not valid base64".into())),
            },
            Some(Sasl::Cancelled(_)) | None => {
                return self.fail(Error::Protocol("continuation after the exchange was cancelled".into()));
            }
        };
        match answer {
            Ok(resp) => {
                front.sasl = Some(Sasl::Running);
                self.output.extend_from_slice(B64.encode(resp.expose()).as_bytes());
                self.output.extend_from_slice(b"\r\n");
                let id = self.front_id();
                self.transcribe(Direction::C, LineKind::Continuation, id, REDACTED.to_string());
            }
            Err(e) => {
                // RFC 5034 § 4: "*" cancels; the server answers -ERR.
                front.sasl = Some(Sasl::Cancelled(e));
                self.output.extend_from_slice(b"*\r\n");
                let id = self.front_id();
                self.transcribe(Direction::C, LineKind::Continuation, id, "*".to_string());
            }
        }
    }

    /// A complete answer for the command at the head of the line.
    fn finish(&mut self, status: StatusLine, body: Option<Vec<u8>>) {
        let Some(mut f) = self.in_flight.pop_front() else {
            return;
        };
        self.in_flight_octets -= f.octets;
        let ok = status.status == Status::Ok;
        let response =
            Response { status: status.status, resp_code: status.resp_code, text: status.text, body };
        let mut result = Ok(response);
        match &mut f.cmd {
            Command::User { .. } => self.user_accepted = ok,
            Command::Pass { .. } | Command::Apop { .. } => {
                self.user_accepted = false;
                if ok {
                    self.logged_in();
                }
            }
            Command::Auth { mechanism } => {
                let cancelled = match f.sasl.take() {
                    Some(Sasl::Cancelled(e)) => Some(e),
                    _ => None,
                };
                if let Some(SaslError(detail)) = cancelled {
                    let reply = result.as_ref().ok().map(Response::reply);
                    if ok {
                        // The server let us in after we cancelled: do not
                        // trust this session.
                        let e = Error::AuthFailed { reply, detail };
                        self.complete(f.id, Err(e.clone()));
                        return self.fail(e);
                    }
                    result = Err(Error::AuthFailed { reply, detail });
                } else if !ok {
                    if let Some(detail) = mechanism.failure_detail() {
                        // The OAuth error JSON says more than the -ERR line.
                        let reply = result.as_ref().ok().map(Response::reply);
                        result = Err(Error::AuthFailed { reply, detail });
                    }
                } else {
                    if let Err(SaslError(detail)) = mechanism.complete() {
                        // SCRAM: the server never proved it knows the password.
                        let e = Error::AuthFailed { reply: None, detail };
                        self.complete(f.id, Err(e.clone()));
                        return self.fail(e);
                    }
                    self.logged_in();
                }
            }
            Command::Stls if ok => {
                self.capabilities = None;
                self.awaiting_tls = true;
                self.events.push_back(Event::TlsUpgradeRequired);
            }
            Command::Utf8 if ok => self.utf8 = true,
            Command::Capa => {
                if let Ok(Response { status: Status::Ok, body: Some(body), .. }) = &result {
                    let caps = Capabilities::parse(body);
                    let step = if self.state == State::Transaction {
                        &mut self.capa_history.after_login
                    } else if self.tls && !self.opts.tls {
                        &mut self.capa_history.after_stls
                    } else {
                        &mut self.capa_history.before_stls
                    };
                    *step = Some(caps.clone());
                    self.capabilities = Some(caps);
                    self.events.push_back(Event::CapabilitiesUpdated);
                }
            }
            Command::Quit => self.state = State::Closed,
            _ => {}
        }
        self.complete(f.id, result);
    }

    fn logged_in(&mut self) {
        self.state = State::Transaction;
        self.capabilities = None;
        if self.opts.recapa {
            let id = self.next_id;
            self.next_id += 1;
            self.recapa_id = Some(id);
            self.queue.push_front(Queued { id: Some(id), cmd: Command::Capa, stream: false });
        }
    }

    /// The CAPA the session queued itself after a successful login, once:
    /// a caller that wants the new capabilities before going on waits for it.
    pub fn take_recapa(&mut self) -> Option<CommandId> {
        self.recapa_id.take()
    }
}

/// The octets `cmd` puts on the wire (asked before sending it, of commands
/// that are not barriers; the line itself is dropped at once).
fn wire_len(cmd: &Command) -> usize {
    let mut line = Vec::new();
    cmd.encode(&mut line, None);
    line.len()
}

fn mechanism_name(cmd: &Command) -> String {
    match cmd {
        Command::Auth { mechanism } => mechanism.name().to_string(),
        _ => String::new(),
    }
}

fn status_transcript(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}
