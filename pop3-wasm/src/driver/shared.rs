//! The state the operations share: the session, the transport's progress,
//! TLS, the deadlines being waited on, and what goes out. Operations
//! borrow it only between their awaits, never across one.

use std::collections::VecDeque;

use super::{
    Config, Event, Failure, Millis, OpId, Phase, PhaseMark, TlsPlace, TlsSummary, Transmit, TransportFailure,
    ms_text,
};
use crate::{
    proto::{
        CommandId, Deviation, Error, ErrorCode, Event as SessionEvent, LineKind, Options, Response, Session,
        State,
    },
    wire::{self, ServerMessage, TlsInfo, TlsMode},
};

/// How many of the first octets from the transport are kept.
const FIRST_BYTES: usize = 128;

/// Where a body command's decoded pieces go.
#[derive(Debug)]
pub(super) struct Sink {
    pub op: OpId,
    pub part: usize,
    /// Collected (bounded by `max_body`, octets so far) or streamed.
    pub collected: Option<usize>,
    /// `+OK` came: a stream is open and its end is an event.
    pub opened: bool,
}

/// A deadline an operation waits under.
#[derive(Debug)]
struct Wait {
    key: u64,
    op: OpId,
    deadline: Millis,
    what: &'static str,
    ms: Millis,
}

pub(super) struct Core {
    pub cfg: Config,
    pub session: Session,
    pub now: Millis,
    start: Millis,
    pub out: VecDeque<Transmit>,
    pub events: VecDeque<Event>,
    /// Answers not yet taken by the operation waiting for them.
    completed: Vec<(CommandId, Result<Response, Error>)>,
    /// `+OK` texts of body commands (a stream opens on them).
    started: Vec<(CommandId, String)>,
    pub sinks: Vec<(CommandId, Sink)>,
    sent_at: Vec<(CommandId, Millis)>,
    /// The keepalive's NOOPs: nobody waits for their answers.
    ignored: Vec<CommandId>,
    waits: Vec<Wait>,
    next_wait: u64,
    /// Sticky: once set, every operation ends with it.
    pub failure: Option<Failure>,
    /// The transport is open; the bridge's subprotocol.
    pub opened: Option<String>,
    /// The bridge's `connected`; whether it relays end to end.
    pub connected: Option<bool>,
    pub tls: Option<TlsSummary>,
    /// A TLS handshake asked for (implicit, or after `+OK` to STLS) is done.
    pub tls_up: bool,
    /// The CAPA the session queued once TLS came up after STLS.
    pub stls_capa: Option<CommandId>,
    #[cfg(feature = "tls")]
    engine: Option<crate::tls::TlsClient>,
    pub phases: Vec<PhaseMark>,
    /// The first octets the transport brought, before any TLS in the
    /// client: what a diagnosis reads a port's protocol from.
    pub first_bytes: Vec<u8>,
    /// The first line of the POP3 stream (after TLS in the client), as
    /// sent: the greeting, byte for byte, for a report.
    pub greeting_line: Vec<u8>,
    last_activity: Millis,
    /// The connect sequence is done: the keepalive may run.
    pub ready: bool,
    close_sent: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("session", &self.session)
            .field("failure", &self.failure)
            .field("tls_up", &self.tls_up)
            .finish_non_exhaustive()
    }
}

fn find<T>(v: &[(CommandId, T)], id: CommandId) -> Option<usize> {
    v.iter().position(|(k, _)| *k == id)
}

impl Core {
    pub fn new(cfg: Config, now: Millis) -> Core {
        let session = Session::new(Options {
            transcript: cfg.transcript,
            stls_by_transport: cfg.tls_place() == TlsPlace::Bridge,
            pipelining: cfg.pipelining,
            pipelining_window: cfg.pipelining_window,
            max_body: cfg.max_body,
            tls: cfg.tls == TlsMode::Implicit,
            allow_insecure_auth: cfg.allow_insecure_auth,
            ..Options::default()
        });
        Core {
            cfg,
            session,
            now,
            start: now,
            out: VecDeque::new(),
            events: VecDeque::new(),
            completed: Vec::new(),
            started: Vec::new(),
            sinks: Vec::new(),
            sent_at: Vec::new(),
            ignored: Vec::new(),
            waits: Vec::new(),
            next_wait: 1,
            failure: None,
            opened: None,
            connected: None,
            tls: None,
            tls_up: false,
            stls_capa: None,
            #[cfg(feature = "tls")]
            engine: None,
            phases: Vec::new(),
            first_bytes: Vec::new(),
            greeting_line: Vec::new(),
            last_activity: now,
            ready: false,
            close_sent: false,
        }
    }

    // ------------------------------------------------------------ waiting

    pub fn add_wait(&mut self, op: OpId, what: &'static str, ms: Millis) -> u64 {
        let key = self.next_wait;
        self.next_wait += 1;
        self.waits.push(Wait { key, op, deadline: self.now + ms, what, ms });
        key
    }

    pub fn remove_wait(&mut self, key: u64) {
        self.waits.retain(|w| w.key != key);
    }

    /// What `op` waits for now, for an abort's message.
    pub fn waiting_for(&self, op: OpId) -> Option<&'static str> {
        self.waits.iter().find(|w| w.op == op).map(|w| w.what)
    }

    pub fn take_completed(&mut self, id: CommandId) -> Option<Result<Response, Error>> {
        find(&self.completed, id).map(|i| self.completed.remove(i).1)
    }

    pub fn take_started(&mut self, id: CommandId) -> bool {
        find(&self.started, id).map(|i| self.started.remove(i)).is_some()
    }

    pub fn waiting(&self) -> bool {
        !self.waits.is_empty()
    }

    pub fn next_timeout(&self) -> Option<Millis> {
        let wait = self.waits.iter().map(|w| w.deadline).reduce(f64::min);
        let keepalive = self.keepalive_due();
        match (wait, keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn keepalive_due(&self) -> Option<Millis> {
        let ms = self.cfg.keepalive?;
        let idle = self.failure.is_none()
            && self.ready
            && self.session.state() == State::Transaction
            && self.session.outstanding() == 0;
        idle.then_some(self.last_activity + ms)
    }

    pub fn timeout(&mut self) {
        let expired = self
            .waits
            .iter()
            .filter(|w| w.deadline <= self.now)
            .min_by(|a, b| a.deadline.partial_cmp(&b.deadline).unwrap_or(std::cmp::Ordering::Equal));
        if let Some(w) = expired {
            let message =
                format!("no answer to {} within {} ms; the session was dropped", w.what, ms_text(w.ms));
            return self.fail(Failure::new(ErrorCode::Timeout, message));
        }
        if self.keepalive_due().is_some_and(|due| due <= self.now)
            && let Ok(id) = self.session.enqueue(crate::proto::Command::Noop)
        {
            self.ignored.push(id);
        }
    }

    /// Ms since the driver was created (the phases' clock).
    #[cfg(feature = "diagnose")]
    pub fn elapsed(&self) -> Millis {
        self.now - self.start
    }

    // ------------------------------------------------------------- phases

    /// Ends the running phase (if any) and starts `phase`.
    pub fn enter(&mut self, phase: Phase) {
        self.leave(true);
        self.phases.push(PhaseMark { phase, start: self.now - self.start, end: None, ok: false });
    }

    /// Ends the running phase.
    pub fn leave(&mut self, ok: bool) {
        let at = self.now - self.start;
        if let Some(m) = self.phases.last_mut().filter(|m| m.end.is_none()) {
            m.end = Some(at);
            m.ok = ok;
            self.events.push_back(Event::PhaseEnded(*m));
        }
    }

    // ---------------------------------------------------------- transport

    /// Sends the bridge's `connect` for wire version `v`.
    pub fn send_connect(&mut self, v: u32) {
        let super::Route::Bridge { token, .. } = &self.cfg.route else { return };
        let connect = wire::Connect {
            v,
            host: self.cfg.host.clone(),
            port: self.cfg.port,
            tls: self.cfg.tls,
            end_to_end: self.cfg.end_to_end,
            token: token.clone(),
        };
        self.out.push_back(Transmit::Control(connect.to_json()));
    }

    pub fn control(&mut self, message: ServerMessage) {
        if self.failure.is_some() {
            return;
        }
        match message {
            ServerMessage::Connected { tls, end_to_end } => {
                if let Some(info) = tls {
                    self.tls_ready(info, false);
                }
                self.connected = Some(end_to_end);
            }
            ServerMessage::Tls { tls, discarded } => {
                if discarded > 0 {
                    self.session.record_deviation(Deviation::DataAfterStls);
                }
                self.tls_ready(tls, false);
            }
            ServerMessage::Error { code, message } => {
                let code = wire::ErrorCode::parse(&code).map_or(ErrorCode::BridgeRejected, ErrorCode::from);
                self.fail(Failure::new(code, format!("bridge: {message}")));
            }
        }
    }

    /// TLS to the server is up: implicit (at connect) or after STLS.
    pub fn tls_ready(&mut self, info: TlsInfo, end_to_end: bool) {
        self.tls = Some(TlsSummary {
            info,
            end_to_end,
            #[cfg(feature = "tls")]
            chain: self.engine.as_ref().and_then(|e| e.info()).map(|i| i.chain.clone()).unwrap_or_default(),
        });
        self.tls_up = true;
        if let Some(id) = self.session.tls_established() {
            self.stls_capa = Some(id);
        }
    }

    /// Starts the TLS handshake where TLS ends (not the bridge's: it does
    /// its own on `connect` or on the `stls` message).
    pub fn start_tls(&mut self) {
        match self.cfg.tls_place() {
            TlsPlace::Bridge => {}
            TlsPlace::Transport => self.out.push_back(Transmit::StartTls),
            TlsPlace::Client => self.start_engine(),
        }
    }

    #[cfg(feature = "tls")]
    fn start_engine(&mut self) {
        let secs = (self.now / 1000.0) as u64;
        match crate::tls::TlsClient::new(&self.cfg.host, &self.cfg.ca, secs) {
            Ok(engine) => {
                self.engine = Some(engine);
                self.flush();
            }
            Err(e) => self.fail(e.into()),
        }
    }

    /// The certificates the server sent (leaf first) to the client's TLS
    /// engine, also when the handshake failed.
    #[cfg(feature = "diagnose")]
    pub fn presented_chain(&self) -> Vec<crate::tls::CertificateDetails> {
        self.engine.as_ref().map(|e| e.presented_chain().to_vec()).unwrap_or_default()
    }

    #[cfg(not(feature = "tls"))]
    fn start_engine(&mut self) {
        // Config::validate refuses end_to_end without the feature.
        self.fail(Failure::new(ErrorCode::Unsupported, "no TLS in this module"));
    }

    pub fn data(&mut self, bytes: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        self.last_activity = self.now;
        if self.first_bytes.len() < FIRST_BYTES {
            let n = bytes.len().min(FIRST_BYTES - self.first_bytes.len());
            self.first_bytes.extend_from_slice(&bytes[..n]);
        }
        #[cfg(feature = "tls")]
        if let Some(engine) = &mut self.engine {
            engine.set_time((self.now / 1000.0) as u64);
            let fed = engine.feed(bytes);
            let plain = engine.take_plaintext();
            let info = (!self.tls_up && engine.is_established()).then(|| engine.info().cloned()).flatten();
            if let Err(e) = fed {
                self.flush(); // the alert that tells the server why
                return self.fail(e.into());
            }
            if let Some(info) = info {
                let summary = TlsInfo {
                    protocol: info.protocol.clone(),
                    cipher: info.cipher.clone(),
                    certificate: info.certificate.clone(),
                };
                self.tls_ready(summary, true);
            }
            if !plain.is_empty() {
                self.first_line(&plain);
                self.session.feed(&plain);
            }
            return;
        }
        self.first_line(bytes);
        self.session.feed(bytes);
    }

    /// Keeps the stream's first line (at most 512 octets, RFC 1939's
    /// longest response line).
    fn first_line(&mut self, plain: &[u8]) {
        let done = self.greeting_line.last() == Some(&b'\n') || self.greeting_line.len() >= 512;
        if !done {
            let end = plain.iter().position(|b| *b == b'\n').map_or(plain.len(), |p| p + 1);
            let n = end.min(512 - self.greeting_line.len());
            self.greeting_line.extend_from_slice(&plain[..n]);
        }
    }

    pub fn transport_failed(&mut self, why: TransportFailure) {
        let url = match &self.cfg.route {
            super::Route::Bridge { url, .. } => url.clone(),
            super::Route::Direct => String::new(),
        };
        let failure = match why {
            TransportFailure::Unreachable { detail } => {
                let why = if detail.is_empty() { String::new() } else { format!(": {detail}") };
                Failure::new(
                    ErrorCode::BridgeUnreachable,
                    format!("could not open a WebSocket to {url}{why}"),
                )
            }
            TransportFailure::Refused { status } => Failure::new(
                ErrorCode::BridgeRejected,
                format!("the bridge at {url} refused the WebSocket (HTTP {status})"),
            ),
            TransportFailure::Connect(c) => Failure::new(ErrorCode::ConnectFailed, c.to_string()),
            TransportFailure::Tls { reason, detail } => {
                Failure::tls(reason, detail.unwrap_or_else(|| reason.sentence().to_string()))
            }
        };
        self.fail(failure);
    }

    pub fn closed(&mut self, code: Option<u16>) {
        if self.failure.is_some() {
            return;
        }
        if self.opened.is_none() {
            let url = match &self.cfg.route {
                super::Route::Bridge { url, .. } => url.clone(),
                super::Route::Direct => "the server".to_string(),
            };
            return self.fail(Failure::new(
                ErrorCode::BridgeUnreachable,
                format!("could not open a WebSocket to {url}"),
            ));
        }
        #[cfg(feature = "tls")]
        if let Some(engine) = &mut self.engine
            && !engine.is_established()
            && let Err(e) = engine.transport_closed()
        {
            return self.fail(e.into());
        }
        let why = match (&self.cfg.route, code) {
            (super::Route::Bridge { .. }, Some(code)) => {
                format!("the bridge closed the WebSocket (code {code})")
            }
            (super::Route::Bridge { .. }, None) => "the bridge closed the WebSocket".to_string(),
            (super::Route::Direct, _) => "the server closed the connection".to_string(),
        };
        self.session.connection_closed(&why);
        self.absorb();
        let failure = self.failure.clone().or_else(|| self.session.fatal().cloned().map(Failure::from));
        self.fail(
            failure.unwrap_or_else(|| Failure::new(ErrorCode::ConnectionClosed, "the connection is closed")),
        );
    }

    pub fn close_transport(&mut self) {
        if !self.close_sent {
            self.close_sent = true;
            self.out.push_back(Transmit::Close);
        }
    }

    /// Ends the session: every waiting and later operation gets `failure`,
    /// the transport is closed. No QUIT is ever sent from here.
    pub fn fail(&mut self, failure: Failure) {
        if self.failure.is_some() {
            return;
        }
        self.failure = Some(failure.clone());
        self.leave(false);
        self.close_transport();
        self.session.fail(Error::ConnectionClosed(failure.message.clone()));
        self.end_streams(&failure);
    }

    fn end_streams(&mut self, failure: &Failure) {
        for (_, sink) in std::mem::take(&mut self.sinks) {
            if sink.opened && sink.collected.is_none() {
                let (op, part) = (sink.op, sink.part);
                self.events.push_back(Event::BodyEnded { op, part, result: Err(failure.clone()) });
            }
        }
    }

    /// What the session has to send, to the transport: through the TLS
    /// engine when TLS is in the client.
    pub fn flush(&mut self) {
        let plain = self.session.take_output();
        #[cfg(feature = "tls")]
        if let Some(engine) = &mut self.engine {
            if !plain.is_empty() && engine.write(&plain).is_err() {
                // The engine failed already; the failure is on its way.
            }
            let cipher = engine.take_ciphertext();
            if !cipher.is_empty() {
                self.last_activity = self.now;
                self.out.push_back(Transmit::Data(cipher));
            }
            return;
        }
        if !plain.is_empty() && !self.close_sent {
            self.last_activity = self.now;
            self.out.push_back(Transmit::Data(plain));
        }
    }

    // -------------------------------------------------- the session's events

    /// Takes the session's events in; returns how many there were.
    pub fn absorb(&mut self) -> usize {
        let mut n = 0;
        while let Some(ev) = self.session.poll_event() {
            n += 1;
            match ev {
                SessionEvent::CommandCompleted { id, result } => self.completed_command(id, result),
                SessionEvent::BodyStarted { id, text } => {
                    // "+OK 5242818 octets": the size, when the server says it.
                    let size = text.split_whitespace().next().and_then(|w| w.parse::<u64>().ok());
                    if let Some(i) = find(&self.sinks, id) {
                        let sink = &mut self.sinks[i].1;
                        sink.opened = true;
                        let (op, part) = (sink.op, sink.part);
                        self.events.push_back(Event::BodyStarted { op, part, size });
                    }
                    self.started.push((id, text));
                }
                SessionEvent::BodyChunkReceived { id, data } => self.body_chunk(id, data),
                SessionEvent::LineTranscribed(l) => {
                    let latency = match (l.kind, l.id) {
                        (LineKind::Command, Some(id)) => {
                            self.sent_at.push((id, self.now));
                            None
                        }
                        (LineKind::Status, Some(id)) => {
                            find(&self.sent_at, id).map(|i| self.now - self.sent_at.remove(i).1)
                        }
                        _ => None,
                    };
                    self.events.push_back(Event::Transcript { dir: l.dir, line: l.line, latency });
                }
                SessionEvent::StlsRequested => {
                    self.out.push_back(Transmit::Control(wire::STLS_MESSAGE.into()))
                }
                SessionEvent::TlsUpgradeRequired => {
                    if self.cfg.tls_place() != TlsPlace::Bridge {
                        self.start_tls();
                    }
                }
                SessionEvent::SessionFailed(e) => {
                    if self.failure.is_none() {
                        self.failure = Some(e.into());
                        self.leave(false);
                    }
                    self.close_transport();
                    let failure =
                        self.failure.clone().unwrap_or_else(|| Failure::new(ErrorCode::ConnectionClosed, ""));
                    self.end_streams(&failure);
                }
                SessionEvent::GreetingReceived(_) | SessionEvent::CapabilitiesUpdated => {}
            }
        }
        n
    }

    fn completed_command(&mut self, id: CommandId, result: Result<Response, Error>) {
        if let Some(i) = self.ignored.iter().position(|k| *k == id) {
            self.ignored.remove(i);
            return;
        }
        if let Some(i) = find(&self.sinks, id) {
            let sink = self.sinks.remove(i).1;
            if sink.opened && sink.collected.is_none() {
                // A stream whose call returned at `+OK`: its end is an event.
                let result = result.map(|_| ()).map_err(|e| self.failure.clone().unwrap_or_else(|| e.into()));
                self.events.push_back(Event::BodyEnded { op: sink.op, part: sink.part, result });
                return;
            }
        }
        self.completed.push((id, result));
    }

    fn body_chunk(&mut self, id: CommandId, data: Vec<u8>) {
        let Some(i) = find(&self.sinks, id) else { return };
        let sink = &mut self.sinks[i].1;
        if let Some(len) = &mut sink.collected {
            *len += data.len();
            // The bound the core puts on a body it collects itself: an
            // endless body must not grow the caller forever either.
            let max = self.session.max_body();
            if *len > max {
                self.session.fail(Error::body_too_long(max));
                return;
            }
        }
        let (op, part) = (sink.op, sink.part);
        self.events.push_back(Event::Body { op, part, data });
    }
}
