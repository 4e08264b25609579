//! `ws-bridge demo`: everything a new user needs to see pop3-wasm work,
//! on loopback, with nothing else installed.
//!
//! ```text
//!  browser ── http://127.0.0.1:8080/ ──► bridge (static pages + /demo.json) ──┐
//!          ── ws://…/pop3 ─────────────► bridge, allowing only ──────────────►│ demo POP3 server
//!                                        127.0.0.1:<plain>,<tls>, trusting    │  plain (STLS) + implicit TLS
//!                                        the demo's own CA                    │  one user, 15 messages in memory
//! ```
//!
//! * [`session`]: the POP3 state machine (no I/O).
//! * [`server`]: its sockets and TLS.
//! * [`mailbox`]: the messages, built fresh at every start.
//! * [`scram`]: SCRAM-SHA-256, server side.
//!
//! The pages are served from the web directory as they are, with the
//! bridge's own static-file serving, plus `/demo.json` (the demo's host,
//! ports and credentials) from memory; the demo's CA is handed to the
//! bridge in memory too, so the demo writes no files.
//!
//! `/demo.json` publishes the demo's password and the demo relaxes the
//! per-client limits, so it listens on loopback only unless told
//! `--public-demo`.

pub mod mailbox;
pub mod scram;
pub mod server;
pub mod session;

use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
};

use clap::Args;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{
    config::{Config, Limits, Settings},
    options::LogFormat,
};

/// The demo account (also shown on the pages and printed at start).
pub const USER: &str = "demo";
pub const PASSWORD: &str = "demo";

/// Options of `ws-bridge demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address for the pages and WebSocket sessions (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory with the web pages (index.html, playground.html).
    #[arg(long, visible_alias = "serve", value_name = "DIR", default_value = "web")]
    pub web: PathBuf,
    /// Port of the demo POP3 server, plain text with STLS (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub pop3_port: u16,
    /// Port of the demo POP3 server with implicit TLS (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub pop3s_port: u16,
    /// Log filter (e.g. info, debug). Logs go to stderr.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Allow --listen on an address other than loopback. The demo then
    /// publishes its credentials (/demo.json) and relays with relaxed
    /// per-client limits to whoever reaches that address.
    #[arg(long)]
    pub public_demo: bool,
}

/// The demo's certificate authority and the server certificate it signed,
/// made at start and trusted by this bridge only.
pub struct DemoPki {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for DemoPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoPki").field("ca_pem", &self.ca_pem).finish_non_exhaustive()
    }
}

impl DemoPki {
    pub fn new() -> Result<DemoPki, String> {
        let err = |e: rcgen::Error| format!("cannot make the demo certificate: {e}");
        let now = time::OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, "ws-bridge demo CA (made at start)");
        ca.distinguished_name.push(DnType::OrganizationName, "pop3-wasm demo");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = now - time::Duration::days(1);
        ca.not_after = now + time::Duration::days(365);
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().map_err(err)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
        leaf.subject_alt_names.push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        leaf.distinguished_name.push(DnType::OrganizationName, "pop3-wasm demo");
        leaf.not_before = now - time::Duration::days(1);
        leaf.not_after = now + time::Duration::days(90);
        let leaf_cert = leaf.signed_by(&key, &issuer).map_err(err)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| format!("demo TLS set-up: {e}"))?;
        Ok(DemoPki { ca_pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) })
    }
}

/// The demo's POP3 server, listening.
#[derive(Debug)]
pub struct DemoServer {
    pub plain: SocketAddr,
    pub implicit: SocketAddr,
    pub shared: Arc<session::Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DemoServer {
    /// Binds both ports on 127.0.0.1 and starts serving a fresh mailbox.
    pub async fn start(
        pop3_port: u16,
        pop3s_port: u16,
        acceptor: TlsAcceptor,
    ) -> std::io::Result<DemoServer> {
        let plain = TcpListener::bind((Ipv4Addr::LOCALHOST, pop3_port)).await?;
        let implicit = TcpListener::bind((Ipv4Addr::LOCALHOST, pop3s_port)).await?;
        let mut salt = [0u8; 16];
        let _ = rustls::crypto::ring::default_provider().secure_random.fill(&mut salt);
        let account = session::Account {
            user: USER.into(),
            password: PASSWORD.into(),
            scram: scram::Credentials::new(PASSWORD, &salt, scram::ITERATIONS),
        };
        let shared =
            Arc::new(session::Shared::new(account, mailbox::messages(time::OffsetDateTime::now_utc())));
        let (plain_addr, implicit_addr) = (plain.local_addr()?, implicit.local_addr()?);
        let tasks = vec![
            tokio::spawn(server::run(plain, server::Port::Plain, shared.clone(), acceptor.clone())),
            tokio::spawn(server::run(implicit, server::Port::Implicit, shared.clone(), acceptor)),
        ];
        Ok(DemoServer { plain: plain_addr, implicit: implicit_addr, shared, tasks })
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// What the pages read from `/demo.json`.
fn demo_json(server: &DemoServer) -> String {
    serde_json::json!({
        "demo": true,
        "host": "127.0.0.1",
        "port": server.implicit.port(),
        "tls": "implicit",
        "ports": { "pop3": server.plain.port(), "pop3s": server.implicit.port() },
        "user": USER,
        "password": PASSWORD,
        "mechanisms": ["USER", "PLAIN", "SCRAM-SHA-256", "APOP"],
        "note": "The demo mailbox lives in memory and starts fresh each time `ws-bridge demo` starts."
    })
    .to_string()
}

/// Runs `ws-bridge demo` until Ctrl-C or SIGTERM.
pub fn main(args: DemoArgs) -> ExitCode {
    if let Err(e) = crate::logging::init(&args.log_level, LogFormat::Text) {
        eprintln!("ws-bridge demo: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ws-bridge demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws-bridge demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The demo: POP3 server, bridge and pages, until `shutdown` completes.
pub async fn run(args: DemoArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), String> {
    if !args.listen.ip().is_loopback() && !args.public_demo {
        return Err(format!(
            "--listen {} is not a loopback address: the demo publishes its password (/demo.json) and relaxes its \
             limits for everyone who reaches it. Add --public-demo if that is what you want.",
            args.listen
        ));
    }
    let pki = DemoPki::new()?;
    let server = DemoServer::start(args.pop3_port, args.pop3s_port, pki.acceptor.clone())
        .await
        .map_err(|e| format!("cannot start the demo POP3 server: {e}"))?;
    let listener = TcpListener::bind(args.listen).await.map_err(|e| {
        format!("cannot listen on {}: {e} (another demo running? try --listen 127.0.0.1:0)", args.listen)
    })?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;

    let ca = <CertificateDer as rustls_pki_types::pem::PemObject>::from_pem_slice(pki.ca_pem.as_bytes())
        .map_err(|e| format!("the demo CA: {e}"))?;
    let has_pages = args.web.join("index.html").is_file();
    let has_package = args.web.join("pop3-wasm/js/browser.js").is_file();

    let origin_port = bound.port();
    let settings = Settings {
        allow: vec![format!("127.0.0.1:{},{}", server.plain.port(), server.implicit.port())],
        extra_roots: vec![ca],
        origins: vec![format!("http://127.0.0.1:{origin_port}"), format!("http://localhost:{origin_port}")],
        serve: Some(args.web.clone()),
        demo_json: Some(demo_json(&server)),
        // One person and a test suite on loopback: no need for the
        // per-address limits meant for the open internet.
        limits: Limits {
            max_sessions_per_ip: 256,
            connect_rate: 60_000,
            connect_burst: 1_000,
            global_connect_rate: 60_000,
            global_connect_burst: 1_000,
            max_connections_per_ip: 256,
            ..Limits::default()
        },
        ..Settings::default()
    };
    let config = Config::build(settings).map_err(|e| e.to_string())?;

    {
        let (plain, tls) = (server.plain, server.implicit);
        let url = format!("http://{bound}/");
        let mut out = std::io::stdout().lock();
        // Tests and scripts read the first line to find the port.
        let _ = writeln!(out, "ws-bridge listening on {bound}");
        let _ = writeln!(
            out,
            "pop3-wasm demo: a POP3 server with a demo mailbox, the bridge allowing it, and the pages"
        );
        let _ = writeln!(out, "  mailbox checker: {url}");
        let _ = writeln!(out, "  playground:      {url}playground.html");
        let _ = writeln!(out, "  POP3:            {plain} (plain, STLS)   {tls} (implicit TLS)");
        let _ = writeln!(
            out,
            "  user:            {USER}   password: {PASSWORD}   (USER/PASS, APOP, SASL PLAIN, SCRAM-SHA-256)"
        );
        let _ = writeln!(out, "  WebSocket:       ws://{bound}/pop3");
        let _ = writeln!(
            out,
            "  by hand:         nc -C 127.0.0.1 {}   (USER {USER}, PASS {PASSWORD}, LIST, RETR 1, QUIT)",
            plain.port()
        );
        if !has_pages || !has_package {
            let _ = writeln!(
                out,
                "  warning: {} has no {} (run from the repository root after scripts/build.sh, or pass --web DIR)",
                args.web.display(),
                if has_pages { "pop3-wasm/js/browser.js" } else { "index.html" }
            );
        }
        let _ = writeln!(
            out,
            "The mailbox starts fresh on every start; deletions are real until then. Ctrl-C stops it."
        );
        let _ = out.flush();
    }
    tracing::info!(%bound, pop3 = %server.plain, pop3s = %server.implicit, "demo listening");
    let result = crate::serve(listener, config, shutdown).await.map_err(|e| e.to_string());
    drop(server);
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    async fn read_reply(r: &mut (impl AsyncBufReadExt + Unpin), multi: bool) -> String {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            out.push_str(&line);
            if !multi || line == ".\r\n" || line.starts_with("-ERR") || line.is_empty() {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn plain_port_answers_the_seed_dialogue_and_pipelines() {
        let pki = DemoPki::new().unwrap();
        let server = DemoServer::start(0, 0, pki.acceptor.clone()).await.unwrap();
        let tcp = tokio::net::TcpStream::connect(server.plain).await.unwrap();
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        assert!(
            read_reply(&mut r, false).await.starts_with("+OK POP3 localhost ws-bridge-demo server ready <")
        );
        w.write_all(b"USER demo\r\n").await.unwrap();
        assert_eq!(read_reply(&mut r, false).await, "+OK User name accepted, password please\r\n");
        w.write_all(b"PASS demo\r\n").await.unwrap();
        assert_eq!(read_reply(&mut r, false).await, "+OK Mailbox open, 15 messages\r\n");
        // Pipelined: three commands in one write, three answers in order.
        w.write_all(b"STAT\r\nUIDL 1\r\nNOOP\r\n").await.unwrap();
        assert!(read_reply(&mut r, false).await.starts_with("+OK 15 "));
        assert!(read_reply(&mut r, false).await.starts_with("+OK 1 demo-0001-"));
        assert_eq!(read_reply(&mut r, false).await, "+OK \r\n");
        w.write_all(b"QUIT\r\n").await.unwrap();
        assert!(read_reply(&mut r, false).await.starts_with("+OK POP3 server signing off"));
    }

    #[tokio::test]
    async fn stls_then_login_over_tls() {
        let pki = DemoPki::new().unwrap();
        let server = DemoServer::start(0, 0, pki.acceptor.clone()).await.unwrap();
        let mut tcp = tokio::net::TcpStream::connect(server.plain).await.unwrap();
        let mut buf = BufReader::new(&mut tcp);
        read_reply(&mut buf, false).await;
        buf.get_mut().write_all(b"STLS\r\n").await.unwrap();
        assert_eq!(read_reply(&mut buf, false).await, "+OK Begin TLS negotiation\r\n");
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            <CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(pki.ca_pem.as_bytes())
        {
            roots.add(cert.unwrap()).unwrap();
        }
        let client =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let mut tls = BufReader::new(tls);
        tls.get_mut().write_all(b"CAPA\r\n").await.unwrap();
        let capa = read_reply(&mut tls, true).await;
        assert!(capa.contains("SASL PLAIN SCRAM-SHA-256\r\n") && !capa.contains("STLS"), "{capa}");
        tls.get_mut().write_all(b"USER demo\r\nPASS demo\r\n").await.unwrap();
        read_reply(&mut tls, false).await;
        assert_eq!(read_reply(&mut tls, false).await, "+OK Mailbox open, 15 messages\r\n");
    }
}
