//! The bridge's settings, as given on the command line or in a file (see
//! [`crate::options`]), and the checked, ready-to-use [`Config`] built from
//! them.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha256};

use crate::{
    dns::{self, Dns},
    policy::{AllowEntry, Policy, Resolver},
    token::{self, TokenKeys},
};

/// Settings as a user writes them (flags, file, or a test).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST:PORT[,PORT]` entries; empty means the default public rule.
    pub allow: Vec<String>,
    /// Extra trust anchors (PEM files), on top of the webpki roots.
    pub ca_files: Vec<PathBuf>,
    /// `Origin` header values allowed besides the bridge's own pages;
    /// `*` allows any.
    pub origins: Vec<String>,
    /// Directory of static files to serve.
    pub serve: Option<PathBuf>,
    /// Certificate chain and key (PEM) to serve `wss://` with.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse sessions that do not ask for end-to-end TLS (wire v2).
    pub end_to_end_only: bool,
    /// Secrets for access tokens; with one, every session needs a token.
    pub token_secret_file: Option<PathBuf>,
    /// CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// DNS servers (`IP[:PORT]`); empty means the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<String>,
    /// Serve `/metrics` only on this address (and not on `listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <the file's token>` for `/metrics`.
    pub metrics_token_file: Option<PathBuf>,
    /// Tokens expiring further ahead than this are refused.
    pub token_max_ttl: Duration,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Resolves target names instead of the bridge's DNS resolver (tests
    /// pass a fake one). Not a flag.
    pub resolver: Option<Resolver>,
    /// Ports of the default (no `allow`) rule: 110 and 995. Not a flag:
    /// tests change it; operators list targets with `allow` instead.
    pub default_ports: Vec<u16>,
    /// Trust anchors for upstream TLS given in memory (the demo's own CA).
    /// Not a flag: operators use `ca_file`.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Served as `/demo.json` (the demo's settings for the pages). Not a flag.
    pub demo_json: Option<String>,
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
            end_to_end_only: false,
            token_secret_file: None,
            trusted_proxies: Vec::new(),
            dns_servers: Vec::new(),
            metrics_listen: None,
            metrics_token_file: None,
            token_max_ttl: token::DEFAULT_MAX_TTL,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            resolver: None,
            default_ports: crate::policy::DEFAULT_PORTS.to_vec(),
            extra_roots: Vec::new(),
            demo_json: None,
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
    /// Concurrent sessions to one server address, all clients together.
    pub max_sessions_per_dest: usize,
    /// New upstream connections per minute, all clients together, after
    /// the burst.
    pub global_connect_rate: u32,
    /// New upstream connections the bridge may open at once.
    pub global_connect_burst: u32,
    /// Different servers (address and port) one client may reach within a
    /// minute.
    pub max_destinations_per_ip: usize,
    /// POP3 bytes (both directions) one client may relay per hour.
    pub max_bytes_per_ip_hour: u64,
    /// The IPv6 prefix length that counts as one client (64: a /64).
    pub ipv6_prefix: u8,
    /// Open HTTP connections (before any WebSocket upgrade), all clients.
    pub max_connections: usize,
    /// Open HTTP connections per client address (not for trusted proxies).
    pub max_connections_per_ip: usize,
    /// Largest request head (request line and headers), bytes.
    pub max_header_size: usize,
    /// DNS lookups in flight at once.
    pub max_lookups: usize,
}

impl Limits {
    /// Every limit by its setting's name (the file key), in the order
    /// `check-config` prints them.
    pub fn numbers(&self) -> [(&'static str, u64); 15] {
        [
            ("max_sessions", self.max_sessions as u64),
            ("max_sessions_per_ip", self.max_sessions_per_ip as u64),
            ("connect_rate", u64::from(self.connect_rate)),
            ("connect_burst", u64::from(self.connect_burst)),
            ("max_sessions_per_dest", self.max_sessions_per_dest as u64),
            ("global_connect_rate", u64::from(self.global_connect_rate)),
            ("global_connect_burst", u64::from(self.global_connect_burst)),
            ("max_destinations_per_ip", self.max_destinations_per_ip as u64),
            ("max_bytes_per_ip_hour", self.max_bytes_per_ip_hour),
            ("ipv6_prefix", u64::from(self.ipv6_prefix)),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("max_header_size", self.max_header_size as u64),
            ("max_lookups", self.max_lookups as u64),
            ("max_message_size", self.max_message_size as u64),
        ]
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1024,
            max_sessions_per_ip: 32,
            connect_rate: 120,
            connect_burst: 60,
            max_message_size: 1 << 20,
            max_sessions_per_dest: 200,
            global_connect_rate: 1200,
            global_connect_burst: 100,
            max_destinations_per_ip: 10,
            max_bytes_per_ip_hour: 1 << 30,
            ipv6_prefix: 64,
            max_connections: 1024,
            max_connections_per_ip: 64,
            max_header_size: 16 * 1024,
            max_lookups: 256,
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
    /// For a request's head (request line and headers), from when the
    /// bridge starts waiting for it.
    pub header: Duration,
    /// An HTTP connection with no bytes moving either way is closed after
    /// this long (idle between requests, or a client that stopped reading).
    pub keepalive: Duration,
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
            header: Duration::from_secs(10),
            keepalive: Duration::from_secs(5),
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
    /// Only end-to-end sessions (the bridge never does TLS for a client).
    pub end_to_end_only: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed besides the bridge's own, normalised.
    pub origins: Vec<String>,
    /// `--origin '*'`: any origin.
    pub any_origin: bool,
    pub serve: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    /// SHA-256 of the metrics bearer token.
    pub metrics_token: Option<[u8; 32]>,
    pub demo_json: Option<String>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Things worth telling the operator at start (not errors).
    pub warnings: Vec<String>,
}

/// A setting that cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    Allow(String),
    CaFile { path: PathBuf, reason: String },
    ServerTls(String),
    TokenSecret { path: PathBuf, reason: String },
    MetricsToken { path: PathBuf, reason: String },
    Dns(String),
    TrustedProxy(String),
    Limit(String),
    Tls(rustls::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Allow(msg)
            | ConfigError::ServerTls(msg)
            | ConfigError::Limit(msg)
            | ConfigError::Dns(msg) => f.write_str(msg),
            ConfigError::MetricsToken { path, reason } => {
                write!(f, "--metrics-token-file {}: {reason}", path.display())
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
        for cert in &settings.extra_roots {
            roots.add(cert.clone()).map_err(ConfigError::Tls)?;
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

        let mut warnings = Vec::new();
        if settings.token_max_ttl.is_zero() {
            return Err(ConfigError::Limit("token_max_ttl must be longer than 0".into()));
        }
        let tokens = match &settings.token_secret_file {
            Some(path) => {
                let keys = TokenKeys::from_file(path)
                    .map_err(|reason| ConfigError::TokenSecret { path: path.clone(), reason })?;
                warnings.extend(token::permission_warning(path));
                Some(keys.with_max_ttl(settings.token_max_ttl))
            }
            None => None,
        };
        let metrics_token = match &settings.metrics_token_file {
            Some(path) => {
                let err = |reason: String| ConfigError::MetricsToken { path: path.clone(), reason };
                let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                let token = text.trim();
                if token.len() < MIN_METRICS_TOKEN || token.contains(char::is_whitespace) {
                    return Err(err(format!(
                        "expected one token of at least {MIN_METRICS_TOKEN} characters, without spaces"
                    )));
                }
                warnings.extend(token::permission_warning(path));
                Some(Sha256::digest(token.as_bytes()).into())
            }
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
        check_limits(&limits)?;
        let t = settings.timeouts;
        if [
            t.first_message,
            t.resolve,
            t.connect,
            t.tls,
            t.idle,
            t.max_session,
            t.ping_interval,
            t.header,
            t.keepalive,
        ]
        .contains(&Duration::ZERO)
        {
            return Err(ConfigError::Limit("timeouts and ping_interval must be longer than 0".into()));
        }

        let any_origin = settings.origins.iter().any(|o| o.trim() == "*");
        let origins = settings
            .origins
            .iter()
            .filter(|o| o.trim() != "*")
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect();

        let dns_servers = settings
            .dns_servers
            .iter()
            .map(|s| dns::parse_server(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConfigError::Dns)?;
        let (dns, dns_warning) = Dns::new(&dns_servers, settings.timeouts.resolve, limits.max_lookups)
            .map_err(ConfigError::Dns)?;
        // A fake resolver (tests) makes the system's configuration moot.
        if settings.resolver.is_none() {
            warnings.extend(dns_warning);
        }

        Ok(Config {
            policy: Policy::new(allow, settings.timeouts.resolve)
                .with_dns(dns)
                .with_resolver(settings.resolver)
                .with_default_ports(settings.default_ports),
            tls: Arc::new(tls),
            server_tls,
            tokens,
            end_to_end_only: settings.end_to_end_only,
            trusted_proxies,
            origins,
            any_origin,
            serve: settings.serve,
            metrics_listen: settings.metrics_listen,
            metrics_token,
            demo_json: settings.demo_json,
            limits,
            timeouts: settings.timeouts,
            warnings,
        })
    }

    /// Whether a request may open a session, by its `Origin` header:
    ///
    /// * no `Origin`: yes. Browsers send one with every WebSocket request,
    ///   so a request without one is not a web page (Node scripts, the npm
    ///   package, monitoring); tokens control those.
    /// * `--origin '*'`: any.
    /// * one of the `--origin` list (scheme, host and port; case and a
    ///   trailing `/` do not matter).
    /// * the bridge's own pages: the origin's host and port are the
    ///   request's `Host`, and that host is an IP address or `localhost`.
    ///   A page under a DNS name must be listed: another site could point
    ///   its own name at the bridge (DNS rebinding) and so look "own".
    pub fn origin_allowed(&self, origin: Option<&[u8]>, host: Option<&[u8]>) -> bool {
        let Some(origin) = origin else { return true };
        if self.any_origin {
            return true;
        }
        let Ok(origin) = std::str::from_utf8(origin) else { return false };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        self.origins.contains(&origin) || own_origin(&origin, host)
    }

    /// Whether `token` opens `/metrics` (always, when no token is set).
    pub fn metrics_authorized(&self, authorization: Option<&[u8]>) -> bool {
        let Some(digest) = &self.metrics_token else { return true };
        let Some(given) = authorization.and_then(|a| a.strip_prefix(b"Bearer ")) else { return false };
        // Comparing digests tells a timing attacker nothing about the token.
        Sha256::digest(given.trim_ascii()).as_slice() == digest.as_slice()
    }
}

/// Shortest metrics bearer token accepted.
pub const MIN_METRICS_TOKEN: usize = 16;

fn check_limits(l: &Limits) -> Result<(), ConfigError> {
    let may_be_zero = ["ipv6_prefix", "max_header_size", "max_message_size"];
    let zero = l.numbers().into_iter().find(|(key, value)| *value == 0 && !may_be_zero.contains(key));
    if let Some((key, _)) = zero {
        return Err(ConfigError::Limit(format!("{key} must be at least 1")));
    }
    if l.max_message_size < 1024 {
        return Err(ConfigError::Limit("max_message_size must be at least 1024 bytes".into()));
    }
    if l.max_header_size < crate::conn::MIN_HEADER_SIZE {
        return Err(ConfigError::Limit(format!(
            "max_header_size must be at least {} bytes",
            crate::conn::MIN_HEADER_SIZE
        )));
    }
    if l.ipv6_prefix > 128 {
        return Err(ConfigError::Limit("ipv6_prefix must be 0 to 128".into()));
    }
    Ok(())
}

/// Whether `origin` (normalised) is a page of this bridge: scheme http or
/// https, host and port those of `host` (the request's `Host` header),
/// and the host an IP address or `localhost`, which no other site can
/// make its own.
fn own_origin(origin: &str, host: Option<&[u8]>) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else { return false };
    let host = host.trim().to_ascii_lowercase();
    match (split_authority(authority, default_port), split_authority(&host, default_port)) {
        (Some(o), Some(h)) => o == h && pinned_host(o.0),
        _ => false,
    }
}

/// `host[:port]`, `[v6][:port]` → (host, port).
fn split_authority(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') && (!host.contains(':') || host.ends_with(']')) => {
            (host, port.parse::<u16>().ok()?)
        }
        _ => (authority, default_port),
    };
    Some((host, port))
}

/// An address or `localhost`: names no DNS answer can move.
fn pinned_host(host: &str) -> bool {
    host == "localhost"
        || host.parse::<Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_check() {
        let host = Some(&b"127.0.0.1:8080"[..]);
        // By default: no Origin (not a browser), or the bridge's own pages.
        let default = Config::build(Settings::default()).unwrap();
        assert!(default.origin_allowed(None, host));
        assert!(!default.origin_allowed(Some(b"https://evil.example"), host));
        assert!(default.origin_allowed(Some(b"http://127.0.0.1:8080"), host));
        let cfg = Config::build(Settings {
            origins: vec!["https://Mail.Example.org/".into()],
            ..Settings::default()
        })
        .unwrap();
        assert!(cfg.origin_allowed(None, host));
        assert!(cfg.origin_allowed(Some(b"https://mail.example.org"), host));
        assert!(cfg.origin_allowed(Some(b"http://127.0.0.1:8080/"), host));
        assert!(!cfg.origin_allowed(Some(b"https://evil.example"), host));
        assert!(!cfg.origin_allowed(Some(b"null"), host));
        assert!(!cfg.origin_allowed(Some(b"\xff"), host));
        // '*' opens it.
        let any = Config::build(Settings { origins: vec!["*".into()], ..Settings::default() }).unwrap();
        assert!(any.origin_allowed(Some(b"https://evil.example"), host));
        assert!(any.origin_allowed(Some(b"null"), None));
    }

    #[test]
    fn own_pages_are_pinned_hosts_with_the_requests_host_and_port() {
        let own = |origin: &str, host: &str| own_origin(origin, Some(host.as_bytes()));
        assert!(own("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(own("http://localhost:8080", "LocalHost:8080"));
        assert!(own("http://[::1]:8080", "[::1]:8080"));
        assert!(own("http://127.0.0.1", "127.0.0.1"));
        assert!(own("http://127.0.0.1", "127.0.0.1:80"));
        assert!(own("https://192.0.2.7", "192.0.2.7:443"));
        // another port, another host, or a DNS name (rebinding)
        assert!(!own("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!own("http://127.0.0.2:8080", "127.0.0.1:8080"));
        assert!(!own("http://evil.example:8080", "evil.example:8080"));
        assert!(!own("http://localhost.evil.example:8080", "localhost.evil.example:8080"));
        assert!(!own("https://127.0.0.1", "127.0.0.1:80"));
        // not an origin at all
        assert!(!own("null", "127.0.0.1:8080"));
        assert!(!own("file://", "127.0.0.1:8080"));
        assert!(!own("http://127.0.0.1:8080/path", "127.0.0.1:8080"));
        assert!(!own("http://user@127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!own_origin("http://127.0.0.1:8080", None));
    }

    #[test]
    fn metrics_bearer_token() {
        let open = Config::build(Settings::default()).unwrap();
        assert!(open.metrics_authorized(None));
        let path = std::env::temp_dir().join(format!("ws-bridge-metrics-token-{}", std::process::id()));
        std::fs::write(&path, "scrape-me-0123456789\n").unwrap();
        let cfg = Config::build(Settings { metrics_token_file: Some(path.clone()), ..Settings::default() })
            .unwrap();
        assert!(cfg.metrics_authorized(Some(b"Bearer scrape-me-0123456789")));
        assert!(!cfg.metrics_authorized(Some(b"Bearer scrape-me-012345678")));
        assert!(!cfg.metrics_authorized(Some(b"Basic c2NyYXBlOm1l")));
        assert!(!cfg.metrics_authorized(None));
        std::fs::write(&path, "short\n").unwrap();
        let e = Config::build(Settings { metrics_token_file: Some(path.clone()), ..Settings::default() });
        assert!(matches!(e, Err(ConfigError::MetricsToken { .. })));
        let _ = std::fs::remove_file(&path);
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
