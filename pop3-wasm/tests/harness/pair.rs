// The driver's test harness, shared by tests/driver.rs and
// tests/diagnose.rs (`include!`d, so its items are each test crate's own):
// a scripted POP3 server in memory, the test playing the transport (a
// bridge's control messages, or a byte pipe), and with the `tls` feature a
// rustls server behind it for end-to-end TLS.

use pop3_wasm::{
    driver::{Config, Driver, Event, Failure, OpId, Output, Request, Route, Transmit},
    proto::{Direction, ErrorCode},
    wire::{CertificateInfo, ServerMessage, TlsInfo, TlsMode},
};
// Each test crate uses part of the harness.
#[cfg(feature = "tls")]
#[allow(unused_imports)]
use tls_server::{NOW_MS, ServerTls, pki, pki_of};

/// A POP3 server in memory: enough of RFC 1939, 2449, 2595 and 5034
/// (PLAIN, and XOAUTH2 after a `+` continuation) to drive every path of
/// the driver, plus scripted answers for what a real server would not do.
struct Server {
    greeting: String,
    /// Sent instead of the greeting (another protocol, a TLS alert).
    raw_greeting: Option<Vec<u8>>,
    capa: Vec<&'static str>,
    /// CAPA once logged in, and after STLS, when they differ.
    capa_after_login: Option<Vec<&'static str>>,
    capa_after_stls: Option<Vec<&'static str>>,
    stls_done: bool,
    /// Scripted answers: a line starting with the key gets these bytes.
    overrides: Vec<(&'static str, Vec<u8>)>,
    /// A SASL exchange waiting for the client's response (its mechanism).
    sasl: Option<String>,
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
    tls: Option<ServerTls>,
    #[cfg(feature = "tls")]
    tls_config: Option<std::sync::Arc<rustls::ServerConfig>>,
}

const PASSWORD: &str = "s3cret-pa55";
/// An OAuth 2.0 access token, long enough that it does not fit the AUTH
/// line (RFC 5034's 255 octets): the client sends it after `+`.
const TOKEN: &str = "ya29.a0AfB_byC-access-token-for-the-test-server-0123456789abcdefghijklmnopqrstuvwxyz-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyz-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789";

impl Server {
    fn new() -> Server {
        Server {
            greeting: "POP3 ready".into(),
            raw_greeting: None,
            capa: vec!["USER", "SASL PLAIN", "TOP", "UIDL", "PIPELINING"],
            capa_after_login: None,
            capa_after_stls: None,
            stls_done: false,
            overrides: Vec::new(),
            sasl: None,
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
        if let Some(raw) = self.raw_greeting.clone() {
            return self.send(&raw);
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

    /// PLAIN ending in the password, or XOAUTH2 carrying [`TOKEN`].
    fn sasl_response(&mut self, mech: &str, response: &str) {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(response).unwrap_or_default();
        let good = match mech {
            "PLAIN" => decoded.ends_with(PASSWORD.as_bytes()),
            "XOAUTH2" => {
                let needle = format!("auth=Bearer {TOKEN}\x01");
                decoded.windows(needle.len()).any(|w| w == needle.as_bytes())
            }
            _ => false,
        };
        if good {
            self.logged_in = true;
            self.send(b"+OK logged in\r\n");
        } else {
            self.send(b"-ERR [AUTH] no\r\n");
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
        if let Some(mech) = self.sasl.take() {
            return self.sasl_response(&mech, line);
        }
        if let Some((_, bytes)) = self.overrides.iter().find(|(k, _)| line.starts_with(k)) {
            let bytes = bytes.clone();
            return self.send(&bytes);
        }
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let n = arg.split(' ').next().and_then(|a| a.parse::<usize>().ok());
        let msg = n.and_then(|n| n.checked_sub(1)).and_then(|i| self.messages.get(i).cloned());
        match verb.to_ascii_uppercase().as_str() {
            "CAPA" => {
                let capa = match (&self.capa_after_login, &self.capa_after_stls) {
                    (Some(after), _) if self.logged_in => after,
                    (_, Some(after)) if self.stls_done => after,
                    _ => &self.capa,
                };
                let body: String = capa.iter().map(|c| format!("{c}\r\n")).collect();
                self.multiline("", body.as_bytes());
            }
            "STLS" => {
                self.send(b"+OK Begin TLS\r\n");
                self.stls_done = true;
                let junk = self.after_stls;
                self.send(junk);
                #[cfg(feature = "tls")]
                if let Some(config) = self.tls_config.clone() {
                    self.tls = Some(ServerTls::new(config));
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
            "AUTH" => match arg.split_once(' ') {
                Some((mech, ir)) => {
                    let mech = mech.to_ascii_uppercase();
                    self.sasl_response(&mech, ir)
                }
                None => {
                    // No initial response: ask for it (RFC 5034 § 4).
                    self.sasl = Some(arg.to_ascii_uppercase());
                    self.send(b"+ \r\n");
                }
            },
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
    /// The bridge answers `connect` with this error (code, message).
    bridge_refuses: Option<(&'static str, String)>,
    /// The CA the end-to-end tests' driver trusts.
    #[allow(dead_code)]
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
            bridge_refuses: None,
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
                if let Some((code, message)) = self.bridge_refuses.clone() {
                    let error = ServerMessage::Error { code: code.into(), message };
                    return self.driver.control(self.now, error);
                }
                let tls = (v["tls"] == "implicit" && v["endToEnd"] != true).then(tls_info);
                let end_to_end = v["endToEnd"] == true;
                self.driver.control(self.now, ServerMessage::Connected { tls, end_to_end });
                self.connected = true;
                #[cfg(feature = "tls")]
                if end_to_end && v["tls"] == "implicit" {
                    // The server waits for the client's ClientHello (a
                    // server without TLS greets in plain text at once).
                    self.server.tls = self.server.tls_config.clone().map(ServerTls::new);
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
                if out.starts_with(b"+OK") {
                    let discarded = out.len() - line;
                    self.driver.control(self.now, ServerMessage::Tls { tls: tls_info(), discarded });
                }
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

    #[allow(dead_code)]
    fn run(&mut self, request: Request) -> Result<Output, Failure> {
        let op = self.start(request);
        self.result(op).expect("the operation ended")
    }

    #[allow(dead_code)]
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

#[allow(dead_code)]
fn login(p: &mut Pair) -> String {
    match p.run(Request::Login { user: "alice".into(), password: PASSWORD.into() }) {
        Ok(Output::LoggedIn(m)) => m,
        other => panic!("{other:?} {:?}", p.server.lines),
    }
}

#[allow(dead_code)]
fn code(r: Result<Output, Failure>) -> (ErrorCode, String) {
    let f = r.expect_err("a failure");
    (f.code, f.message)
}

#[cfg(feature = "tls")]
mod tls_server {
    // The server side of end-to-end TLS: rustls' buffered server, and
    // certificates made with rcgen.

    use std::{
        io::{Read, Write},
        sync::Arc,
    };

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::{
        ServerConfig, ServerConnection,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    };

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
    pub fn pki(names: &[&str], from: i32, until: i32) -> (String, Arc<ServerConfig>) {
        pki_of("driver test CA", names, from, until)
    }

    pub fn pki_of(ca_name: &str, names: &[&str], from: i32, until: i32) -> (String, Arc<ServerConfig>) {
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
    pub const NOW_MS: f64 = 1_780_272_000_000.0;
}
