//! Helpers for the socket tests: a bridge on 127.0.0.1:0, a WebSocket test
//! client, scripted upstream servers and test certificates.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};
use ws_bridge::{Config, Settings};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected event may take before the test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// A bridge serving on a free loopback port, stopped when dropped.
pub struct Bridge {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    /// The `serve` task: finishes once shutdown is complete.
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Bridge {
    pub async fn start(settings: Settings) -> Bridge {
        // The bridge's logs, shown for failing tests (or with --nocapture).
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("ws_bridge=debug").try_init();
        let config = Config::build(settings).expect("valid settings");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ws_bridge::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Bridge { addr, stop: Some(stop), task }
    }

    /// Starts a bridge that allows `local(port)` and trusts `pki`'s test CA.
    pub async fn start_trusting(port: u16, pki: &TestPki) -> Bridge {
        Bridge::start(Settings {
            allow: local(port),
            ca_files: vec![pki.ca_file.clone()],
            ..Settings::default()
        })
        .await
    }

    /// A bridge someone else runs (the binary), for the client helpers.
    pub fn at(addr: SocketAddr) -> Bridge {
        let (stop, _) = oneshot::channel::<()>();
        Bridge { addr, stop: Some(stop), task: tokio::spawn(async { Ok(()) }) }
    }

    /// Starts the graceful shutdown (as SIGTERM would).
    pub fn begin_shutdown(&mut self) {
        self.stop.take();
    }

    /// Opens a session with extra request headers; `Err` is the HTTP
    /// refusal.
    pub async fn ws_with(&self, headers: &[(&str, &str)]) -> Result<Ws, tungstenite::Error> {
        let mut request = self.url().into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("pop3-bridge.v1"));
        for (name, value) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
        }
        tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
    }

    pub fn url(&self) -> String {
        format!("ws://{}/pop3", self.addr)
    }

    /// Opens a WebSocket session offering the bridge's subprotocol.
    pub async fn ws(&self) -> Ws {
        let mut request = self.url().into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("pop3-bridge.v1"));
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "pop3-bridge.v1");
        ws
    }

    /// Opens a session as a v2 client does (offering `pop3-bridge.v2` and
    /// `pop3-bridge.v1`) and checks that the bridge chose v2.
    pub async fn ws_v2(&self) -> Ws {
        let mut request = self.url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("pop3-bridge.v2, pop3-bridge.v1"));
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "pop3-bridge.v2");
        ws
    }

    /// Opens an end-to-end session (wire v2) to `host:port` and returns it
    /// with the bridge's first answer.
    pub async fn open_e2e(&self, host: &str, port: u16, tls: &str, token: Option<&str>) -> (Ws, Value) {
        let mut ws = self.ws_v2().await;
        let mut connect =
            serde_json::json!({"type":"connect","v":2,"host":host,"port":port,"tls":tls,"endToEnd":true});
        if let Some(token) = token {
            connect["token"] = token.into();
        }
        send_json(&mut ws, connect).await;
        let answer = next_json(&mut ws).await;
        (ws, answer)
    }

    /// An end-to-end session that the bridge answered with `connected`,
    /// as a byte stream and its [`Pipe`].
    pub async fn e2e_pipe(&self, host: &str, port: u16, tls: &str) -> (DuplexStream, Pipe) {
        let (ws, answer) = self.open_e2e(host, port, tls, None).await;
        assert_eq!(answer, serde_json::json!({"type":"connected","tls":null,"endToEnd":true}));
        pipe(ws)
    }

    /// Opens a session, sends `connect` for `host:port`, and returns it with the bridge's first answer.
    pub async fn open_session(&self, host: &str, port: u16, tls: &str) -> (Ws, Value) {
        let mut ws = self.ws().await;
        send_connect(&mut ws, host, port, tls).await;
        let answer = next_json(&mut ws).await;
        (ws, answer)
    }

    /// Opens a session to `host:port` and checks that the bridge answered `connected`.
    pub async fn connected_session(&self, host: &str, port: u16, tls: &str) -> Ws {
        let (ws, answer) = self.open_session(host, port, tls).await;
        assert_eq!(answer["type"], "connected");
        ws
    }
}

/// The allowlist entries for `port` on this machine, by address and by name.
pub fn local(port: u16) -> Vec<String> {
    vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")]
}

pub fn settings_allowing(entries: &[String]) -> Settings {
    Settings { allow: entries.to_vec(), ..Settings::default() }
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

pub async fn send_connect(ws: &mut Ws, host: &str, port: u16, tls: &str) {
    send_json(
        ws,
        serde_json::json!({"type":"connect","v":1,"host":host,"port":port,"tls":tls,"token":"t0ken"}),
    )
    .await;
}

/// The next data or close message (pings and pongs skipped).
pub async fn next(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("bridge answered in time")
            .expect("stream still open")
            .expect("no WebSocket error");
        match msg {
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            other => return other,
        }
    }
}

pub async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("expected a TEXT control message, got {other:?}"),
    }
}

pub async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    match next(ws).await {
        Message::Binary(bytes) => bytes.to_vec(),
        other => panic!("expected BINARY, got {other:?}"),
    }
}

/// Reads BINARY frames until `want` bytes arrived.
pub async fn read_binary_exact(ws: &mut Ws, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        got.extend(next_binary(ws).await);
    }
    assert_eq!(got.len(), want, "no extra bytes");
    got
}

/// Expects a close frame next and returns its code and reason.
pub async fn expect_close(ws: &mut Ws) -> (u16, String) {
    match next(ws).await {
        Message::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Expects `{"type":"error",…}` with this code, then a close with this
/// close code; returns the message.
pub async fn expect_error(ws: &mut Ws, code: &str, close_code: u16) -> String {
    let msg = next_json(ws).await;
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(msg["code"], code, "{msg}");
    let (got_close, _) = expect_close(ws).await;
    assert_eq!(got_close, close_code, "{msg}");
    msg["message"].as_str().unwrap().to_string()
}

/// What a [`Pipe`] saw besides the bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// A control message (TEXT frame).
    Control(Value),
    /// The bridge closed the session with this code.
    Close(u16),
}

/// A WebSocket session made a byte stream ([`pipe`]): the rest of it.
/// `inject` sends a frame of its own (plaintext in the middle of TLS, say).
pub struct Pipe {
    pub events: mpsc::UnboundedReceiver<WsEvent>,
    pub inject: mpsc::UnboundedSender<Vec<u8>>,
}

impl Pipe {
    /// The next control message or close.
    pub async fn next_event(&mut self) -> WsEvent {
        tokio::time::timeout(STEP, self.events.recv()).await.expect("an event in time").expect("pipe open")
    }

    /// Expects `{"type":"error"}` with this code and message, then this close code.
    pub async fn expect_error(&mut self, code: &str, message: &str, close: u16) {
        let want = serde_json::json!({"type":"error","code":code,"message":message});
        assert_eq!(self.next_event().await, WsEvent::Control(want));
        assert_eq!(self.next_event().await, WsEvent::Close(close));
    }
}

/// A WebSocket session as a byte stream, as the client's TLS sees it: what
/// is written to the stream goes out as BINARY frames (one per write),
/// BINARY frames come back as bytes.
pub fn pipe(ws: Ws) -> (DuplexStream, Pipe) {
    let (ours, stream) = tokio::io::duplex(256 * 1024);
    let (events_tx, events) = mpsc::unbounded_channel();
    let (inject, mut injected) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let (mut sink, mut frames) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(ours);
        let mut buf = vec![0u8; 64 * 1024];
        let mut reading = true;
        loop {
            tokio::select! {
                read = rd.read(&mut buf), if reading => match read {
                    Ok(0) | Err(_) => reading = false,
                    Ok(n) => {
                        if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                            reading = false;
                        }
                    }
                },
                Some(bytes) = injected.recv() => {
                    let _ = sink.send(Message::binary(bytes)).await;
                }
                frame = frames.next() => match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        let _ = wr.write_all(&bytes).await;
                    }
                    Some(Ok(Message::Text(text))) => {
                        let _ = events_tx.send(WsEvent::Control(serde_json::from_str(text.as_str()).unwrap()));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map_or(1005, |f| u16::from(f.code));
                        let _ = events_tx.send(WsEvent::Close(code));
                        let _ = wr.shutdown().await;
                        return;
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => {
                        let _ = wr.shutdown().await;
                        return;
                    }
                },
            }
        }
    });
    (stream, Pipe { events, inject })
}

/// A one-connection TCP relay to `127.0.0.1:target` that records what the
/// bridge sends through it; the handle yields the recording once both
/// directions are done.
pub async fn recording_relay(target: u16) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (bridge, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
        let (mut from_bridge, mut to_bridge) = bridge.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let down = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_server, &mut to_bridge).await;
            let _ = to_bridge.shutdown().await;
        });
        let mut recorded = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from_bridge.read(&mut buf).await {
            if n == 0 {
                break;
            }
            recorded.extend_from_slice(&buf[..n]);
            if to_server.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
        let _ = down.await;
        recorded
    });
    (port, handle)
}

/// A one-connection upstream that sends `greeting` and records everything
/// it receives until the bridge closes the connection.
pub async fn recording_upstream(greeting: &'static [u8]) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(greeting).await.unwrap();
        let mut recorded = Vec::new();
        let _ = tokio::time::timeout(STEP, tcp.read_to_end(&mut recorded)).await.expect("the bridge closed");
        recorded
    });
    (port, handle)
}

/// A listener that counts connections and never answers.
pub struct CountingListener {
    pub port: u16,
    count: Arc<AtomicUsize>,
}

impl CountingListener {
    pub async fn start() -> CountingListener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        CountingListener { port, count }
    }

    pub async fn connections(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.count.load(Ordering::SeqCst)
    }
}

/// A one-connection upstream server running `script`; await the handle to
/// surface its assertion failures.
pub async fn scripted_upstream<F, Fut>(script: F) -> (u16, JoinHandle<()>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(stream).await;
    });
    (port, handle)
}

/// A one-connection upstream that sends `greeting`, then asserts (saying `why`) that nothing more arrives.
pub async fn silent_after_greeting(greeting: &'static [u8], why: &'static str) -> (u16, JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    scripted_upstream(move |tcp| async move {
        let mut s = BufReader::new(tcp);
        write(s.get_mut(), greeting).await;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{why}");
    })
    .await
}

/// A one-connection upstream that accepts TLS with `pki`'s certificate, then runs `script` on it.
pub async fn tls_upstream<F, Fut>(pki: &TestPki, script: F) -> (u16, JoinHandle<()>)
where
    F: FnOnce(BufReader<TlsStream<TcpStream>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acceptor = pki.acceptor();
    scripted_upstream(move |tcp| async move {
        let tls = acceptor.accept(tcp).await.unwrap();
        script(BufReader::new(tls)).await;
    })
    .await
}

/// Upstream side of a clean end: expects `QUIT`, answers `+OK bye` and shuts the stream down.
pub async fn expect_quit_say_bye<S: AsyncRead + AsyncWrite + Unpin>(s: &mut BufReader<S>) {
    assert_eq!(read_line(s).await, b"QUIT\r\n");
    write(s.get_mut(), b"+OK bye\r\n").await;
    s.get_mut().shutdown().await.unwrap();
}

/// Client side of a clean end: sends `QUIT`, expects `+OK bye` and a normal (1000) close.
pub async fn quit_expect_bye(ws: &mut Ws) {
    ws.send(Message::binary(&b"QUIT\r\n"[..])).await.unwrap();
    assert_eq!(next_binary(ws).await, b"+OK bye\r\n");
    assert_eq!(expect_close(ws).await.0, 1000);
}

/// Reads one CRLF line (bytes, with the CRLF) from a buffered reader.
pub async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Vec<u8> {
    let mut line = Vec::new();
    tokio::time::timeout(STEP, reader.read_until(b'\n', &mut line)).await.expect("line in time").unwrap();
    line
}

pub async fn write<W: AsyncWriteExt + Unpin>(w: &mut W, bytes: &[u8]) {
    w.write_all(bytes).await.unwrap();
    w.flush().await.unwrap();
}

/// A test CA and a server certificate it signed.
pub struct TestPki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub ca_file: PathBuf,
    pub server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    /// The leaf and its key as PEM (for serving `wss://` with them).
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

pub const CA_NAME: &str = "pop3-wasm Test CA";

impl TestPki {
    /// A CA and a leaf for `names` (DNS names or IP literals), valid
    /// until `not_after` (year, month, day).
    pub fn new(names: &[&str], not_after: (i32, u8, u8)) -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, CA_NAME);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let leaf = params.signed_by(&key, &issuer).unwrap();

        let ca_pem = ca_cert.pem();
        static N: AtomicUsize = AtomicUsize::new(0);
        let ca_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "ws-bridge-test-ca-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&ca_file, &ca_pem).unwrap();
        TestPki {
            ca_der: ca_cert.der().clone(),
            ca_pem,
            ca_file,
            server_chain: vec![leaf.der().clone()],
            server_key: key.serialize_der(),
            server_cert_pem: leaf.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }

    /// A TLS client trusting only this CA (what the client's own TLS does
    /// end to end).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), key)
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A fresh path under the test target dir.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ws-bridge-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Sends one HTTP/1.1 request and returns the whole response as text.
pub async fn http_get(addr: SocketAddr, path: &str, extra_headers: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut response)).await.unwrap().unwrap();
    String::from_utf8_lossy(&response).into_owned()
}
