//! The bridge's settings, as given on the command line or in a file (see
//! [`crate::options`]), and the checked, ready-to-use [`Config`] built from
//! them.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use ipnet::IpNet;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::{
    policy::{AllowEntry, Policy, Resolver},
    token::TokenKeys,
};

/// Settings as a user writes them (flags, file, or a test).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST:PORT[,PORT]` entries; empty means the default public rule.
    pub allow: Vec<String>,
    /// Extra trust anchors (PEM files), on top of the webpki roots.
    pub ca_files: Vec<PathBuf>,
    /// Allowed `Origin` header values; empty means any.
    pub origins: Vec<String>,
    /// Directory of static files to serve.
    pub serve: Option<PathBuf>,
    /// Certificate chain and key (PEM) to serve `wss://` with.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Secrets for access tokens; with one, every session needs a token.
    pub token_secret_file: Option<PathBuf>,
    /// CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Resolves target names; `None` is the system resolver (tests pass a
    /// fake one).
    pub resolver: Option<Resolver>,
    /// Ports of the default (no `allow`) rule: 110 and 995. Not a flag:
    /// tests change it; operators list targets with `allow` instead.
    pub default_ports: Vec<u16>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow: Vec::new(),
            ca_files: Vec::new(),
            origins: Vec::new(),
            serve: None,
            tls_cert: None,
            tls_key: None,
            token_secret_file: None,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            resolver: None,
            default_ports: crate::policy::DEFAULT_PORTS.to_vec(),
        }
    }
}

/// How much one replica takes on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Concurrent sessions, all clients together.
    pub max_sessions: usize,
    /// Concurrent sessions per client address (IPv6: per /64).
    pub max_sessions_per_ip: usize,
    /// New sessions per minute per client address, after the burst.
    pub connect_rate: u32,
    /// New sessions a client address may open at once.
    pub connect_burst: u32,
    /// Largest WebSocket message (and frame) accepted from a client.
    pub max_message_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1024,
            max_sessions_per_ip: 32,
            connect_rate: 120,
            connect_burst: 60,
            max_message_size: 1 << 20,
        }
    }
}

/// Every deadline a session has.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the client's `connect` message.
    pub first_message: Duration,
    /// For DNS resolution of the target.
    pub resolve: Duration,
    /// For the TCP connection (all addresses together).
    pub connect: Duration,
    /// For a TLS handshake (either side), and for the server's answer to `STLS`.
    pub tls: Duration,
    /// Without POP3 bytes in either direction. Longer than POP3's own
    /// 10-minute autologout (RFC 1939), so the server decides first.
    pub idle: Duration,
    /// For a whole session.
    pub max_session: Duration,
    /// Between WebSocket pings (keeps proxies from timing the session out
    /// and notices clients that went away).
    pub ping_interval: Duration,
    /// On shutdown, for sessions to end by themselves.
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            first_message: Duration::from_secs(10),
            resolve: Duration::from_secs(5),
            connect: Duration::from_secs(10),
            tls: Duration::from_secs(10),
            idle: Duration::from_secs(15 * 60),
            max_session: Duration::from_secs(4 * 3600),
            ping_interval: Duration::from_secs(30),
            shutdown: Duration::from_secs(30),
        }
    }
}

/// Bytes read from upstream per BINARY frame while the server sends little
/// (POP3 replies). The buffer is allocated but not touched until data
/// arrives, so an idle session costs none of it (the benchmark's memory per
/// idle session).
///
/// Frames of 256 KiB while the server sends in bulk cut the relay's CPU per
/// byte by about a fifth, but made a client streaming a large message hold
/// about four times as much: a browser cannot pause a WebSocket, so the
/// frame size is what bounds its buffering.
pub const UPSTREAM_CHUNK: usize = 64 * 1024;

/// tungstenite's read buffer for the client's frames. It is zero-filled at
/// the first read, so it is paid by every session, idle or not (the default
/// is 128 KiB); client traffic is POP3 commands, small.
pub const CLIENT_READ_BUFFER: usize = 8 * 1024;

/// The checked configuration, shared by every session.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    pub tls: Arc<rustls::ClientConfig>,
    /// `Some` when serving `wss://`.
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
    pub tokens: Option<TokenKeys>,
    pub trusted_proxies: Vec<IpNet>,
    pub origins: Vec<String>,
    pub serve: Option<PathBuf>,
    pub limits: Limits,
    pub timeouts: Timeouts,
}

/// A setting that cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    Allow(String),
    CaFile { path: PathBuf, reason: String },
    ServerTls(String),
    TokenSecret { path: PathBuf, reason: String },
    TrustedProxy(String),
    Limit(String),
    Tls(rustls::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Allow(msg) | ConfigError::ServerTls(msg) | ConfigError::Limit(msg) => {
                f.write_str(msg)
            }
            ConfigError::CaFile { path, reason } => {
                write!(f, "--ca-file {}: {reason}", path.display())
            }
            ConfigError::TokenSecret { path, reason } => {
                write!(f, "--token-secret-file {}: {reason}", path.display())
            }
            ConfigError::TrustedProxy(entry) => {
                write!(f, "--trusted-proxy {entry:?}: expected an address or CIDR (10.0.0.0/8)")
            }
            ConfigError::Tls(e) => write!(f, "TLS set-up: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The `wss://` side: a certificate chain and its key, HTTP/1.1 only
/// (WebSocket upgrades are HTTP/1.1).
fn server_tls(
    provider: Arc<rustls::crypto::CryptoProvider>,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, ConfigError> {
    let err = |what: &str, path: &std::path::Path, e: String| {
        ConfigError::ServerTls(format!("{what} {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err("--tls-cert", cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("--tls-cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(err("--tls-cert", cert, "no CERTIFICATE found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err("--tls-key", key, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConfigError::Tls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ConfigError::ServerTls(format!("--tls-cert/--tls-key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Config {
    pub fn build(settings: Settings) -> Result<Config, ConfigError> {
        let allow = settings
            .allow
            .iter()
            .map(|s| s.parse::<AllowEntry>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConfigError::Allow)?;

        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for path in &settings.ca_files {
            let ca_err = |reason: String| ConfigError::CaFile { path: path.clone(), reason };
            let mut added = 0;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))? {
                let cert = cert.map_err(|e| ca_err(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(ca_err("no CERTIFICATE found".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(ConfigError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let server_tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(server_tls(provider, cert, key)?)),
            (None, None) => None,
            _ => return Err(ConfigError::ServerTls("--tls-cert and --tls-key go together".into())),
        };

        let tokens = match &settings.token_secret_file {
            Some(path) => Some(
                TokenKeys::from_file(path)
                    .map_err(|reason| ConfigError::TokenSecret { path: path.clone(), reason })?,
            ),
            None => None,
        };

        let trusted_proxies = settings
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| ConfigError::TrustedProxy(s.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let limits = settings.limits;
        if limits.max_sessions == 0 || limits.max_sessions_per_ip == 0 {
            return Err(ConfigError::Limit("max_sessions and max_sessions_per_ip must be at least 1".into()));
        }
        if limits.connect_rate == 0 || limits.connect_burst == 0 {
            return Err(ConfigError::Limit("connect_rate and connect_burst must be at least 1".into()));
        }
        if limits.max_message_size < 1024 {
            return Err(ConfigError::Limit("max_message_size must be at least 1024 bytes".into()));
        }
        let t = settings.timeouts;
        if [t.first_message, t.resolve, t.connect, t.tls, t.idle, t.max_session, t.ping_interval]
            .contains(&Duration::ZERO)
        {
            return Err(ConfigError::Limit("timeouts and ping_interval must be longer than 0".into()));
        }

        let origins = settings.origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();

        Ok(Config {
            policy: Policy::new(allow, settings.timeouts.resolve)
                .with_resolver(settings.resolver)
                .with_default_ports(settings.default_ports),
            tls: Arc::new(tls),
            server_tls,
            tokens,
            trusted_proxies,
            origins,
            serve: settings.serve,
            limits,
            timeouts: settings.timeouts,
        })
    }

    /// Whether a request's `Origin` header may open a session. No header
    /// (a non-browser client) is fine; otherwise, with `--origin` given,
    /// it must be one of them.
    pub fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        match origin {
            None => true,
            Some(_) if self.origins.is_empty() => true,
            Some(value) => match std::str::from_utf8(value) {
                Ok(value) => {
                    let value = value.trim_end_matches('/').to_ascii_lowercase();
                    self.origins.contains(&value)
                }
                Err(_) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_check() {
        let open = Config::build(Settings::default()).unwrap();
        assert!(open.origin_allowed(Some(b"https://evil.example")));
        let cfg = Config::build(Settings {
            origins: vec!["https://Mail.Example.org/".into()],
            ..Settings::default()
        })
        .unwrap();
        assert!(cfg.origin_allowed(None));
        assert!(cfg.origin_allowed(Some(b"https://mail.example.org")));
        assert!(!cfg.origin_allowed(Some(b"https://evil.example")));
        assert!(!cfg.origin_allowed(Some(b"null")));
        assert!(!cfg.origin_allowed(Some(b"\xff")));
    }

    #[test]
    fn bad_settings_are_errors() {
        let e = Config::build(Settings { allow: vec!["nonsense".into()], ..Settings::default() });
        assert!(matches!(e, Err(ConfigError::Allow(_))));
        let e =
            Config::build(Settings { ca_files: vec!["/nonexistent/ca.pem".into()], ..Settings::default() });
        assert!(matches!(e, Err(ConfigError::CaFile { .. })));
    }
}
