//! The client driver (`pop3_wasm::driver`) wired back to back with a
//! POP3 server in memory: no sockets, the clock a number the test moves.
//! The test plays the transport (a bridge's control messages, or a byte
//! pipe) and a small scripted POP3 server; with the `tls` feature, a
//! rustls server behind it for end-to-end TLS (tests further down).

use pop3_wasm::{
    driver::{
        Config, Driver, Event, Failure, OpId, Output, Phase, Request, Route, Transmit, TransportFailure,
    },
    proto::{Command, Direction, ErrorCode},
    wire::{self, CertificateInfo, ServerMessage, TlsInfo, TlsMode},
};

/// A POP3 server in memory: enough of RFC 1939, 2449, 2595 and 5034
/// (PLAIN) to drive every path of the driver.
struct Server {
    greeting: String,
    capa: Vec<&'static str>,
    /// Sent right after `+OK` to STLS, before the handshake (an injection).
    after_stls: &'static [u8],
    messages: Vec<Vec<u8>>,
    /// Lines received, as received (after TLS where there is TLS).
    lines: Vec<String>,
    input: Vec<u8>,
    output: Vec<u8>,
    user: Option<String>,
    logged_in: bool,
    /// Do not answer (a hung server) once this many lines came.
    answer_until: usize,
    /// Plain TCP to STLS: the answer to STLS switches the server to TLS.
    #[cfg(feature = "tls")]
    tls: Option<e2e::ServerTls>,
    #[cfg(feature = "tls")]
    tls_config: Option<std::sync::Arc<rustls::ServerConfig>>,
}

const PASSWORD: &str = "s3cret-pa55";

impl Server {
    fn new() -> Server {
        Server {
            greeting: "POP3 ready".into(),
            capa: vec!["USER", "SASL PLAIN", "TOP", "UIDL", "PIPELINING"],
            after_stls: b"",
            messages: vec![
                b"From: a@example.org\r\nSubject: one\r\n\r\nbody one\r\n".to_vec(),
                b"From: b@example.org\r\nSubject: two\r\n\r\n.dotted\r\nbody two\r\n".to_vec(),
            ],
            lines: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
            user: None,
            logged_in: false,
            answer_until: usize::MAX,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_config: None,
        }
    }

    fn greet(&mut self) {
        if self.answer_until == 0 {
            return; // a server that never greets
        }
        let g = format!("+OK {}\r\n", self.greeting);
        self.send(g.as_bytes());
    }

    fn send(&mut self, bytes: &[u8]) {
        #[cfg(feature = "tls")]
        if let Some(t) = &mut self.tls {
            return t.write(bytes);
        }
        self.output.extend_from_slice(bytes);
    }

    /// Bytes from the client, as on the wire.
    fn receive(&mut self, wire: &[u8]) {
        #[cfg(feature = "tls")]
        if let Some(t) = &mut self.tls {
            let plain = t.read(wire);
            self.input.extend_from_slice(&plain);
            return self.lines();
        }
        self.input.extend_from_slice(wire);
        self.lines();
    }

    /// Bytes for the client, as on the wire.
    fn take(&mut self) -> Vec<u8> {
        #[cfg(feature = "tls")]
        if let Some(t) = &mut self.tls {
            self.output.extend_from_slice(&t.take());
        }
        std::mem::take(&mut self.output)
    }

    fn lines(&mut self) {
        while let Some(lf) = self.input.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.input.drain(..=lf).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            self.lines.push(line.clone());
            if self.lines.len() > self.answer_until {
                continue;
            }
            self.answer(&line);
        }
    }

    fn multiline(&mut self, status: &str, body: &[u8]) {
        let mut out = format!("+OK {status}\r\n").into_bytes();
        for l in body.split_inclusive(|b| *b == b'\n') {
            if l.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(l);
        }
        out.extend_from_slice(b".\r\n");
        self.send(&out);
    }

    fn answer(&mut self, line: &str) {
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let n = arg.split(' ').next().and_then(|a| a.parse::<usize>().ok());
        let msg = n.and_then(|n| n.checked_sub(1)).and_then(|i| self.messages.get(i).cloned());
        match verb.to_ascii_uppercase().as_str() {
            "CAPA" => {
                let body: String = self.capa.iter().map(|c| format!("{c}\r\n")).collect();
                self.multiline("", body.as_bytes());
            }
            "STLS" => {
                self.send(b"+OK Begin TLS\r\n");
                let junk = self.after_stls;
                self.send(junk);
                #[cfg(feature = "tls")]
                if let Some(config) = self.tls_config.clone() {
                    self.tls = Some(e2e::ServerTls::new(config));
                }
            }
            "USER" => {
                self.user = Some(arg.to_string());
                self.send(b"+OK\r\n");
            }
            "PASS" if self.user.is_some() && arg == PASSWORD => {
                self.logged_in = true;
                self.send(b"+OK logged in\r\n");
            }
            "PASS" => self.send(b"-ERR [AUTH] invalid credentials\r\n"),
            "AUTH" => {
                use base64::Engine as _;
                let ir = arg.split(' ').nth(1).unwrap_or("");
                let plain = base64::engine::general_purpose::STANDARD.decode(ir).unwrap_or_default();
                if plain.ends_with(PASSWORD.as_bytes()) {
                    self.logged_in = true;
                    self.send(b"+OK logged in\r\n");
                } else {
                    self.send(b"-ERR [AUTH] no\r\n");
                }
            }
            "STAT" => {
                let size: usize = self.messages.iter().map(Vec::len).sum();
                let r = format!("+OK {} {size}\r\n", self.messages.len());
                self.send(r.as_bytes());
            }
            "LIST" => {
                let body: String = self
                    .messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| format!("{} {}\r\n", i + 1, m.len()))
                    .collect();
                self.multiline("", body.as_bytes());
            }
            "UIDL" => {
                let body: String = (1..=self.messages.len()).map(|i| format!("{i} uid-{i}\r\n")).collect();
                self.multiline("", body.as_bytes());
            }
            "TOP" => match msg {
                Some(m) => {
                    let end = m.windows(4).position(|w| w == b"\r\n\r\n").map_or(m.len(), |p| p + 4);
                    self.multiline("", &m[..end]);
                }
                None => self.send(b"-ERR no such message\r\n"),
            },
            "RETR" => match msg {
                Some(m) => {
                    let status = format!("{} octets", m.len());
                    self.multiline(&status, &m);
                }
                None => self.send(b"-ERR no such message\r\n"),
            },
            "DELE" | "NOOP" | "RSET" => self.send(b"+OK\r\n"),
            "QUIT" => self.send(b"+OK bye\r\n"),
            _ => self.send(b"-ERR unknown command\r\n"),
        }
    }
}

/// How the test transports bytes: as ws-bridge would (bridge-side TLS
/// simulated: the server stays plaintext), or as a plain pipe.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// A bridge that selected this subprotocol.
    Bridge(&'static str),
    Pipe,
}

struct Pair {
    driver: Driver,
    server: Server,
    via: Via,
    now: f64,
    events: Vec<Event>,
    /// Control messages the driver sent.
    control: Vec<String>,
    /// Everything the driver wrote on the transport, in order.
    wire: Vec<u8>,
    closed: bool,
    /// The transport is up (the bridge's connected, or TCP).
    connected: bool,
    /// The CA the end-to-end tests' driver trusts.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    driver_ca: Vec<u8>,
}

fn bridge_config(tls: TlsMode) -> Config {
    let mut c = Config::new(
        Route::Bridge { url: "ws://bridge.test/pop3".into(), token: None },
        "pop.example.test",
        tls,
    );
    c.transcript = true;
    c.random = |b| {
        b.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
        true
    };
    c
}

impl Pair {
    fn new(config: Config, via: Via) -> Pair {
        Pair::at(config, via, 1_000_000.0)
    }

    fn at(config: Config, via: Via, now: f64) -> Pair {
        Pair {
            driver: Driver::new(config, now),
            server: Server::new(),
            via,
            now,
            events: Vec::new(),
            control: Vec::new(),
            wire: Vec::new(),
            closed: false,
            connected: false,
            driver_ca: Vec::new(),
        }
    }

    /// Moves bytes and messages until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.driver.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Control(text) => self.control_message(text),
                    Transmit::Data(bytes) => {
                        self.wire.extend_from_slice(&bytes);
                        self.server.receive(&bytes);
                    }
                    Transmit::StartTls => {
                        // The transport's TLS (Node's, direct mode): simulated as done.
                        let info = tls_info();
                        self.driver.transport_tls(self.now, info);
                    }
                    Transmit::Close => self.closed = true,
                }
            }
            let out = self.server.take();
            if !out.is_empty() && !self.closed {
                moved = true;
                self.driver.data(self.now, &out);
            }
            while let Some(ev) = self.driver.poll_event() {
                self.events.push(ev);
            }
            if !moved {
                break;
            }
        }
    }

    /// Plays the bridge's side of the control messages.
    fn control_message(&mut self, text: String) {
        let v: serde_json::Value = serde_json::from_str(&text).expect("control messages are JSON");
        self.control.push(text);
        match v["type"].as_str() {
            Some("connect") => {
                let tls = (v["tls"] == "implicit" && v["endToEnd"] != true).then(tls_info);
                let end_to_end = v["endToEnd"] == true;
                self.driver.control(self.now, ServerMessage::Connected { tls, end_to_end });
                self.connected = true;
                #[cfg(feature = "tls")]
                if end_to_end && v["tls"] == "implicit" {
                    // The server waits for the client's ClientHello.
                    self.server.tls = Some(e2e::ServerTls::new(self.server.tls_config.clone().unwrap()));
                    self.server.greet();
                    return;
                }
                self.server.greet();
            }
            Some("stls") => {
                // The bridge writes STLS itself; the reply line reaches the
                // client, what follows it does not, then the handshake.
                self.server.receive(b"STLS\r\n");
                let out = self.server.take();
                let line = out.iter().position(|b| *b == b'\n').map_or(out.len(), |p| p + 1);
                self.driver.data(self.now, &out[..line]);
                let discarded = out.len() - line;
                self.driver.control(self.now, ServerMessage::Tls { tls: tls_info(), discarded });
            }
            other => panic!("unexpected control message {other:?}"),
        }
    }

    /// Opens the transport (the WebSocket, or TCP).
    fn open(&mut self) {
        let protocol = match self.via {
            Via::Bridge(p) => p,
            Via::Pipe => "",
        };
        self.driver.opened(self.now, protocol);
        if self.via == Via::Pipe && !self.implicit_in_transport() {
            self.server.greet();
        }
        self.pump();
        if self.via == Via::Pipe && self.implicit_in_transport() {
            self.server.greet();
            self.pump();
        }
    }

    fn implicit_in_transport(&self) -> bool {
        self.control.is_empty() && self.driver.tls().is_some()
    }

    fn start(&mut self, request: Request) -> OpId {
        let op = self.driver.start(self.now, request, None);
        self.pump();
        op
    }

    /// The result of `op`, once done (`None` while it runs).
    fn result(&mut self, op: OpId) -> Option<Result<Output, Failure>> {
        let i = self.events.iter().position(|e| matches!(e, Event::Done { op: o, .. } if *o == op))?;
        match self.events.remove(i) {
            Event::Done { result, .. } => Some(result),
            _ => unreachable!(),
        }
    }

    fn run(&mut self, request: Request) -> Result<Output, Failure> {
        let op = self.start(request);
        self.result(op).expect("the operation ended")
    }

    fn connect(&mut self) -> Result<Output, Failure> {
        let op = self.start(Request::Connect);
        self.open();
        self.result(op).expect("connect ended")
    }

    fn transcript(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Transcript { dir, line, .. } => {
                    Some(format!("{}: {line}", if *dir == Direction::C { "C" } else { "S" }))
                }
                _ => None,
            })
            .collect()
    }

    fn advance(&mut self, ms: f64) {
        self.now += ms;
        self.driver.handle_timeout(self.now);
        self.pump();
    }
}

fn tls_info() -> TlsInfo {
    TlsInfo {
        protocol: "TLSv1.3".into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
        certificate: CertificateInfo {
            subject: "CN=pop.example.test".into(),
            issuer: "CN=Test CA".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
        },
    }
}

fn login(p: &mut Pair) -> String {
    match p.run(Request::Login { user: "alice".into(), password: PASSWORD.into() }) {
        Ok(Output::LoggedIn(m)) => m,
        other => panic!("{other:?} {:?}", p.server.lines),
    }
}

fn code(r: Result<Output, Failure>) -> (ErrorCode, String) {
    let f = r.expect_err("a failure");
    (f.code, f.message)
}

// ------------------------------------------------------------------ tests

#[test]
fn connect_over_a_v2_bridge_offers_nothing_new_unless_end_to_end() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    assert!(matches!(p.connect(), Ok(Output::Connected)));
    assert_eq!(
        p.control,
        [r#"{"type":"connect","v":2,"host":"pop.example.test","port":995,"tls":"implicit"}"#]
    );
    assert_eq!(p.server.lines, ["CAPA"]);
    assert_eq!(p.driver.tls().map(|t| t.end_to_end), Some(false));
    let phases: Vec<_> = p.driver.phases().iter().map(|m| (m.phase, m.ok)).collect();
    assert_eq!(phases, [(Phase::Connect, true), (Phase::Greeting, true), (Phase::Capa, true)]);
}

#[test]
fn a_v1_bridge_gets_v1_and_end_to_end_needs_v2() {
    let mut p = Pair::new(bridge_config(TlsMode::None), Via::Bridge(wire::SUBPROTOCOL_V1));
    assert!(p.connect().is_ok());
    assert!(p.control[0].contains(r#""v":1"#), "{}", p.control[0]);

    let mut config = bridge_config(TlsMode::Implicit);
    config.end_to_end = true;
    if config.validate().is_err() {
        return; // no `tls` feature: refused earlier (see below)
    }
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V1));
    assert_eq!(code(p.connect()), (ErrorCode::Unsupported, wire::V1_NO_END_TO_END.to_string()));
    assert!(p.control.is_empty(), "nothing was asked of a v1 bridge");
    assert!(p.closed);
}

#[test]
fn end_to_end_without_tls_is_an_invalid_argument() {
    let mut config = bridge_config(TlsMode::None);
    config.end_to_end = true;
    assert_eq!(config.validate().unwrap_err().code, ErrorCode::InvalidArgument);
    let mut config = bridge_config(TlsMode::Implicit);
    config.ca = b"-----BEGIN CERTIFICATE-----".to_vec();
    assert_eq!(config.validate().unwrap_err().code, ErrorCode::InvalidArgument, "ca with bridge-side TLS");
}

#[test]
fn login_takes_the_strongest_usable_mechanism_and_asks_capa_after() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    assert_eq!(login(&mut p), "PLAIN");
    assert_eq!(p.server.lines[1..], ["AUTH PLAIN AGFsaWNlAHMzY3JldC1wYTU1".to_string(), "CAPA".to_string()]);
    assert!(!p.transcript().iter().any(|l| l.contains(PASSWORD) || l.contains("AGFsaWNl")));
    assert_eq!(p.driver.session().capa_history().after_login.as_ref().map(|c| c.raw.len()), Some(5));
}

#[test]
fn readable_credentials_without_tls_are_refused_before_anything_is_sent() {
    let mut p = Pair::new(bridge_config(TlsMode::None), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    let (c, message) = code(p.run(Request::Login { user: "alice".into(), password: PASSWORD.into() }));
    assert_eq!(c, ErrorCode::InsecureAuthRefused);
    assert!(message.contains("PLAIN, USER"), "{message}");
    let (c, _) = code(p.run(Request::Raw(format!("PASS {PASSWORD}"))));
    assert_eq!(c, ErrorCode::InsecureAuthRefused);
    assert_eq!(p.server.lines, ["CAPA"]);
    assert!(!String::from_utf8_lossy(&p.wire).contains(PASSWORD));
}

#[test]
fn stls_through_the_bridge_reports_injected_bytes_and_asks_capa_again() {
    let mut p = Pair::new(bridge_config(TlsMode::Starttls), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.server.capa.push("STLS");
    p.server.after_stls = b"-ERR injected\r\n";
    p.connect().unwrap();
    assert_eq!(p.control[1], wire::STLS_MESSAGE);
    assert_eq!(p.server.lines, ["CAPA", "STLS", "CAPA"]);
    let ids: Vec<_> = p.driver.session().deviations().iter().map(|d| d.id()).collect();
    assert_eq!(ids, ["data-after-stls"]);
    assert!(p.driver.session().capa_history().after_stls.is_some());
    let phases: Vec<_> = p.driver.phases().iter().map(|m| m.phase.as_str()).collect();
    assert_eq!(phases, ["connect", "greeting", "capa", "stls", "capa"]);
}

#[test]
fn summaries_pipeline_list_uidl_and_top() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    let op = p.start(Request::Summaries(None));
    let Some(Ok(Output::Summaries(list))) = p.result(op) else { panic!("{:?}", p.events) };
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].headers.subject.as_deref(), Some("two"));
    assert_eq!(list[1].uid.as_deref(), Some("uid-2"));
    assert_eq!(list[0].size, Some(p.server.messages[0].len() as u64));
    let progress: Vec<_> =
        p.events.iter().filter(|e| matches!(e, Event::Progress { op: o, .. } if *o == op)).collect();
    assert_eq!(progress.len(), 2);
}

#[test]
fn bodies_go_out_as_pieces_byte_exact_and_bounded() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.max_body = 60;
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    let op = p.start(Request::Collect(Command::Retr { msg: 2 }));
    assert!(matches!(p.result(op), Some(Ok(Output::Collected))));
    let body: Vec<u8> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Body { op: o, data, .. } if *o == op => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(body, p.server.messages[1]);
    p.server.messages.push(vec![b'x'; 100]);
    let (c, message) = code(p.run(Request::Collect(Command::Retr { msg: 3 })));
    assert_eq!(c, ErrorCode::ProtocolError);
    assert!(message.contains("longer than 60 octets"), "{message}");
    assert!(p.closed, "the session ends");
}

#[test]
fn a_silent_server_times_out_at_the_deadline_and_the_session_is_dropped() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.deadlines.greeting = 300.0;
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.server.answer_until = 0;
    // The bridge connects, the server says nothing.
    let op = p.start(Request::Connect);
    p.open();
    let due = p.driver.poll_timeout().expect("a deadline");
    assert_eq!(due, p.now + 300.0);
    p.advance(299.0);
    assert!(p.result(op).is_none());
    p.advance(1.0);
    let (c, message) = code(p.result(op).unwrap());
    assert_eq!(c, ErrorCode::Timeout);
    assert_eq!(message, "no answer to the server greeting within 300 ms; the session was dropped");
    assert!(p.closed);
    assert_eq!(p.driver.phases().last().map(|m| (m.phase, m.ok)), Some((Phase::Greeting, false)));
}

#[test]
fn keepalive_sends_noop_only_when_idle_in_transaction() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.keepalive = Some(150.0);
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    assert_eq!(p.driver.poll_timeout(), None, "no keepalive before login");
    login(&mut p);
    let due = p.driver.poll_timeout().expect("keepalive");
    assert_eq!(due, p.now + 150.0);
    p.advance(149.0);
    assert!(!p.server.lines.contains(&"NOOP".to_string()));
    p.advance(1.0);
    assert_eq!(p.server.lines.last().map(String::as_str), Some("NOOP"));
    p.advance(150.0);
    assert_eq!(p.server.lines.iter().filter(|l| *l == "NOOP").count(), 2);
}

#[test]
fn an_abort_drops_the_session_and_names_what_was_awaited() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    p.server.answer_until = p.server.lines.len();
    let op = p.start(Request::Command(Command::Stat));
    let other = p.start(Request::Command(Command::Noop));
    p.driver.abort(p.now, op);
    p.pump();
    assert_eq!(code(p.result(op).unwrap()), (ErrorCode::ConnectionClosed, "aborted".into()));
    assert_eq!(
        code(p.result(other).unwrap()),
        (ErrorCode::ConnectionClosed, "STAT was aborted; the session was dropped".into())
    );
    assert!(p.closed);
    assert!(!p.server.lines.contains(&"QUIT".to_string()));
}

#[test]
fn the_bridge_error_message_ends_the_session_with_its_code() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    let op = p.start(Request::Connect);
    p.driver.opened(p.now, wire::SUBPROTOCOL_V2);
    p.driver.control(
        p.now,
        ServerMessage::Error { code: "BRIDGE_REJECTED".into(), message: wire::END_TO_END_REQUIRED.into() },
    );
    p.pump();
    assert_eq!(
        code(p.result(op).unwrap()),
        (ErrorCode::BridgeRejected, "bridge: end-to-end TLS required".into())
    );

    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    let op = p.start(Request::Connect);
    p.driver.transport_failed(p.now, TransportFailure::Refused { status: 403 });
    p.pump();
    assert_eq!(
        code(p.result(op).unwrap()),
        (
            ErrorCode::BridgeRejected,
            "the bridge at ws://bridge.test/pop3 refused the WebSocket (HTTP 403)".into()
        )
    );
}

#[test]
fn a_direct_pipe_asks_its_transport_for_tls_and_words_its_failures() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.route = Route::Direct;
    let mut p = Pair::new(config.clone(), Via::Pipe);
    assert!(p.connect().is_ok());
    assert!(p.control.is_empty(), "no control messages on a pipe");
    assert_eq!(
        p.driver.phases().iter().map(|m| m.phase.as_str()).collect::<Vec<_>>(),
        ["connect", "tls", "greeting", "capa"]
    );

    let mut p = Pair::new(config, Via::Pipe);
    let op = p.start(Request::Connect);
    p.driver.transport_failed(p.now, TransportFailure::Connect(wire::ConnectFailure::Refused));
    p.pump();
    assert_eq!(code(p.result(op).unwrap()), (ErrorCode::ConnectFailed, "connection refused".into()));
}

#[test]
fn the_server_closing_mid_answer_is_connection_closed() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    p.server.answer_until = p.server.lines.len();
    let op = p.start(Request::Collect(Command::Retr { msg: 1 }));
    p.driver.data(p.now, b"+OK 5 octets\r\nhel");
    p.driver.closed(p.now, Some(1000));
    p.pump();
    let (c, message) = code(p.result(op).unwrap());
    assert_eq!(c, ErrorCode::ConnectionClosed);
    assert!(message.contains("in the middle of a multi-line answer"), "{message}");
}

#[cfg(feature = "tls")]
mod e2e {
    //! End-to-end TLS: the driver's own TLS engine against a rustls server
    //! behind the scripted POP3 server; the "bridge" relays bytes only.

    use std::{
        io::{Read, Write},
        sync::Arc,
    };

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::{
        ServerConfig, ServerConnection,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    };

    use super::*;

    pub struct ServerTls(ServerConnection);

    impl ServerTls {
        pub fn new(config: Arc<ServerConfig>) -> ServerTls {
            ServerTls(ServerConnection::new(config).unwrap())
        }

        pub fn read(&mut self, mut wire: &[u8]) -> Vec<u8> {
            while !wire.is_empty() {
                self.0.read_tls(&mut wire).unwrap();
                if self.0.process_new_packets().is_err() {
                    return Vec::new();
                }
            }
            let mut plain = Vec::new();
            let _ = self.0.reader().read_to_end(&mut plain);
            plain
        }

        pub fn write(&mut self, plain: &[u8]) {
            self.0.writer().write_all(plain).unwrap();
        }

        pub fn take(&mut self) -> Vec<u8> {
            let mut out = Vec::new();
            while self.0.wants_write() {
                self.0.write_tls(&mut out).unwrap();
            }
            out
        }
    }

    /// A CA (PEM) and a server config for a leaf naming `names`, valid
    /// from `from` to `until` (years).
    fn pki(names: &[&str], from: i32, until: i32) -> (String, Arc<ServerConfig>) {
        pki_of("driver test CA", names, from, until)
    }

    fn pki_of(ca_name: &str, names: &[&str], from: i32, until: i32) -> (String, Arc<ServerConfig>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        leaf.not_before = rcgen::date_time_ymd(from, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(until, 1, 1);
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        (ca_cert.pem(), Arc::new(config))
    }

    /// 2026-06-01, on the driver's clock (ms).
    const NOW_MS: f64 = 1_780_272_000_000.0;

    fn e2e_pair(tls: TlsMode, names: &[&str], years: (i32, i32)) -> Pair {
        let (ca, server) = pki(names, years.0, years.1);
        let mut config = bridge_config(tls);
        config.end_to_end = true;
        config.ca = ca.into_bytes();
        config.validate().unwrap();
        let ca = config.ca.clone();
        let mut p = Pair::at(config, Via::Bridge(wire::SUBPROTOCOL_V2), NOW_MS);
        p.server.tls_config = Some(server);
        p.server.capa.push("STLS");
        p.driver_ca = ca;
        p
    }

    /// What the relay saw going to the server, as text (ciphertext is noise).
    fn readable(p: &Pair) -> String {
        String::from_utf8_lossy(&p.wire).into_owned()
    }

    fn retr(p: &mut Pair, msg: u32) -> Vec<u8> {
        let op = p.start(Request::Collect(Command::Retr { msg }));
        assert!(matches!(p.result(op), Some(Ok(Output::Collected))), "{:?}", p.events);
        p.events
            .iter()
            .filter_map(|e| match e {
                Event::Body { op: o, data, .. } if *o == op => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn implicit_tls_end_to_end_the_relay_carries_only_ciphertext() {
        let mut p = e2e_pair(TlsMode::Implicit, &["pop.example.test"], (2025, 2030));
        assert!(matches!(p.connect(), Ok(Output::Connected)), "{:?}", p.events);
        assert_eq!(
            p.control,
            [
                r#"{"type":"connect","v":2,"host":"pop.example.test","port":995,"tls":"implicit","endToEnd":true}"#
            ]
        );
        let tls = p.driver.tls().expect("TLS up");
        assert!(tls.end_to_end);
        assert_eq!(tls.info.certificate.subject, "CN=pop.example.test");
        assert_eq!(tls.chain.len(), 1);
        assert_eq!(tls.chain[0].dns_names, ["pop.example.test"]);
        assert_eq!(login(&mut p), "PLAIN");
        assert_eq!(retr(&mut p, 2), p.server.messages[1]);
        assert_eq!(p.server.lines, ["CAPA", "AUTH PLAIN AGFsaWNlAHMzY3JldC1wYTU1", "CAPA", "RETR 2"]);
        let seen = readable(&p);
        for word in ["CAPA", "AUTH", "PLAIN", "RETR", PASSWORD, "AGFsaWNl"] {
            assert!(!seen.contains(word), "{word} readable on the relay");
        }
        let phases: Vec<_> = p.driver.phases().iter().map(|m| m.phase.as_str()).collect();
        assert_eq!(phases, ["connect", "tls", "greeting", "capa", "auth"]);
    }

    #[test]
    fn stls_end_to_end_only_capa_and_stls_are_readable_and_injected_bytes_are_dropped() {
        let mut p = e2e_pair(TlsMode::Starttls, &["pop.example.test"], (2025, 2030));
        p.server.after_stls = b"+OK injected\r\n";
        assert!(matches!(p.connect(), Ok(Output::Connected)), "{:?}", p.events);
        assert!(p.control[0].contains(r#""tls":"starttls","endToEnd":true"#), "{}", p.control[0]);
        assert_eq!(p.control.len(), 1, "no stls control message in an end-to-end session");
        assert!(p.wire.starts_with(b"CAPA\r\nSTLS\r\n\x16\x03"), "{:?}", &p.wire[..20]);
        let ids: Vec<_> = p.driver.session().deviations().iter().map(|d| d.id()).collect();
        assert_eq!(ids, ["data-after-stls"]);
        assert_eq!(login(&mut p), "PLAIN");
        assert_eq!(p.server.lines, ["CAPA", "STLS", "CAPA", "AUTH PLAIN AGFsaWNlAHMzY3JldC1wYTU1", "CAPA"]);
        let after = String::from_utf8_lossy(&p.wire[b"CAPA\r\nSTLS\r\n".len()..]).into_owned();
        for word in ["CAPA", "AUTH", PASSWORD, "AGFsaWNl"] {
            assert!(!after.contains(word), "{word} readable after STLS");
        }
        let phases: Vec<_> = p.driver.phases().iter().map(|m| m.phase.as_str()).collect();
        assert_eq!(phases, ["connect", "greeting", "capa", "stls", "capa", "auth"]);
    }

    fn tls_failure(p: &mut Pair) -> Failure {
        let f = p.connect().expect_err("TLS fails");
        assert_eq!(f.code, ErrorCode::TlsFailed, "{f:?}");
        assert!(p.closed);
        let seen = readable(p);
        assert!(!seen.contains("AUTH") && !seen.contains("USER"), "no credentials were sent");
        f
    }

    #[test]
    fn a_certificate_for_other_names_says_which_names() {
        let mut p = e2e_pair(TlsMode::Implicit, &["mail.other.test", "10.0.0.1"], (2025, 2030));
        let f = tls_failure(&mut p);
        assert_eq!(f.tls_reason, Some(wire::TlsReason::WrongName));
        assert_eq!(
            f.message,
            "certificate not valid for the host name pop.example.test (it is for mail.other.test, 10.0.0.1)"
        );
    }

    #[test]
    fn an_expired_certificate_says_when() {
        let mut p = e2e_pair(TlsMode::Starttls, &["pop.example.test"], (2020, 2021));
        let f = tls_failure(&mut p);
        assert_eq!(f.tls_reason, Some(wire::TlsReason::Expired));
        assert!(f.message.starts_with("certificate expired at 2021-01-01T00:00:00Z"), "{}", f.message);
    }

    #[test]
    fn a_certificate_from_an_unknown_ca_is_untrusted() {
        let mut p = e2e_pair(TlsMode::Implicit, &["pop.example.test"], (2025, 2030));
        let (other_ca, _) = pki_of("another CA", &["x"], 2025, 2030);
        let mut config = bridge_config(TlsMode::Implicit);
        config.end_to_end = true;
        config.ca = other_ca.into_bytes();
        p.driver = Driver::new(config, NOW_MS);
        let f = tls_failure(&mut p);
        assert_eq!(f.tls_reason, Some(wire::TlsReason::Untrusted));
        assert_eq!(f.message, "certificate not trusted (unknown issuer: CN=driver test CA)");
    }

    #[test]
    fn stls_by_hand_end_to_end_refuses_anything_readable_before_tls() {
        let mut p = e2e_pair(TlsMode::Starttls, &["pop.example.test"], (2025, 2030));
        let mut config = bridge_config(TlsMode::Starttls);
        config.end_to_end = true;
        config.manual_stls = true;
        config.ca = p.driver_ca.clone();
        p.driver = Driver::new(config, NOW_MS);
        assert!(matches!(p.connect(), Ok(Output::Connected)));
        assert!(p.driver.tls().is_none(), "plain text so far");
        let (c, message) = code(p.run(Request::Raw("USER alice".into())));
        assert_eq!(c, ErrorCode::InvalidState);
        assert_eq!(message, "USER is not sent before TLS in an end-to-end session; send STLS first");
        assert!(matches!(p.run(Request::Raw("STLS".into())), Ok(Output::Raw { .. })));
        assert!(p.driver.tls().unwrap().end_to_end);
        assert!(matches!(p.run(Request::Raw("USER alice".into())), Ok(Output::Raw { .. })));
        assert_eq!(p.server.lines, ["CAPA", "STLS", "CAPA", "USER alice"]);
        assert!(p.wire.starts_with(b"CAPA\r\nSTLS\r\n\x16\x03"));
    }

    #[test]
    fn direct_end_to_end_is_the_same_engine_over_a_pipe() {
        let (ca, server) = pki(&["pop.example.test"], 2025, 2030);
        let mut config = bridge_config(TlsMode::Implicit);
        config.route = Route::Direct;
        config.end_to_end = true;
        config.ca = ca.into_bytes();
        let mut p = Pair::at(config, Via::Pipe, NOW_MS);
        p.server.tls = Some(ServerTls::new(server));
        let op = p.start(Request::Connect);
        p.driver.opened(p.now, "");
        p.server.greet();
        p.pump();
        assert!(matches!(p.result(op), Some(Ok(Output::Connected))), "{:?}", p.events);
        assert!(p.driver.tls().unwrap().end_to_end);
        assert_eq!(retr_after_login(&mut p), p.server.messages[0]);
    }

    fn retr_after_login(p: &mut Pair) -> Vec<u8> {
        login(p);
        retr(p, 1)
    }
}
