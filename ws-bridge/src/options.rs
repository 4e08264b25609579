//! Where the settings come from: command-line flags, `WS_BRIDGE_*`
//! environment variables and a TOML file, in that order of precedence.
//!
//! Every flag has a file key (the flag's name with `_` for `-`; repeatable
//! flags are arrays) and an environment variable (`WS_BRIDGE_` and the key
//! in capitals; lists separated by spaces):
//!
//! ```text
//! --max-sessions-per-ip 8    max_sessions_per_ip = 8    WS_BRIDGE_MAX_SESSIONS_PER_IP=8
//! --allow a:995 --allow b:110  allow = ["a:995", "b:110"]  WS_BRIDGE_ALLOW="a:995 b:110"
//! ```
//!
//! A list given on the command line (or in the environment) replaces the
//! file's list rather than adding to it.

use std::{
    fmt::{self, Write as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::config::{Limits, Settings, Timeouts};

/// The serving flags: `ws-bridge [FLAGS]` and `ws-bridge check-config [FLAGS]`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings (flags and environment win).
    #[arg(long, value_name = "FILE", env = "WS_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", env = "WS_BRIDGE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Allow only these targets (repeatable). Without any, every public
    /// host on ports 110 and 995 is allowed. IPv6 as [::1]:110.
    #[arg(long = "allow", value_name = "HOST:PORT[,PORT]", env = "WS_BRIDGE_ALLOW", value_delimiter = ' ')]
    pub allow: Vec<String>,
    /// Extra CA certificates (PEM) trusted for upstream TLS (repeatable).
    #[arg(long = "ca-file", value_name = "PEM", env = "WS_BRIDGE_CA_FILE", value_delimiter = ' ')]
    pub ca_file: Vec<PathBuf>,
    /// Accept WebSocket requests from these origins besides the bridge's
    /// own pages (repeatable); '*' accepts any. Requests without Origin
    /// (not a browser) are accepted.
    #[arg(long = "origin", value_name = "URL", env = "WS_BRIDGE_ORIGIN", value_delimiter = ' ')]
    pub origin: Vec<String>,
    /// Serve static files from this directory.
    #[arg(long, value_name = "DIR", env = "WS_BRIDGE_SERVE")]
    pub serve: Option<PathBuf>,
    /// Serve wss:// and https:// with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", env = "WS_BRIDGE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, value_name = "PEM", env = "WS_BRIDGE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Relay end-to-end TLS only (wire v2 `endToEnd: true`): refuse
    /// sessions that ask the bridge for TLS, or for none. Give it alone or
    /// as --end-to-end-only=true|false [default: false].
    #[arg(
        long,
        value_name = "BOOL",
        env = "WS_BRIDGE_END_TO_END_ONLY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub end_to_end_only: Option<bool>,
    /// Require access tokens signed with the secret(s) in this file (one
    /// per line; the first signs, all verify).
    #[arg(long, value_name = "FILE", env = "WS_BRIDGE_TOKEN_SECRET_FILE")]
    pub token_secret_file: Option<PathBuf>,
    /// Trust X-Forwarded-For from these proxies (CIDR, repeatable).
    #[arg(
        long = "trusted-proxy",
        value_name = "CIDR",
        env = "WS_BRIDGE_TRUSTED_PROXY",
        value_delimiter = ' '
    )]
    pub trusted_proxy: Vec<String>,
    /// Ask these DNS servers (IP[:PORT], repeatable) instead of the
    /// system's (/etc/resolv.conf).
    #[arg(
        long = "dns-server",
        value_name = "IP[:PORT]",
        env = "WS_BRIDGE_DNS_SERVER",
        value_delimiter = ' '
    )]
    pub dns_server: Vec<String>,
    /// Serve /metrics only on this address, not on --listen.
    #[arg(long, value_name = "ADDR", env = "WS_BRIDGE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Require "Authorization: Bearer <token>" for /metrics, the token
    /// read from this file.
    #[arg(long, value_name = "FILE", env = "WS_BRIDGE_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Refuse access tokens that expire further ahead than this [default: 24h].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_TOKEN_MAX_TTL", value_parser = parse_duration)]
    pub token_max_ttl: Option<Duration>,
    /// Concurrent sessions at most [default: 1024].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,
    /// Concurrent sessions per client address (IPv6: per /64) [default: 32].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_MAX_SESSIONS_PER_IP")]
    pub max_sessions_per_ip: Option<usize>,
    /// New sessions per minute per client address [default: 120].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_CONNECT_RATE")]
    pub connect_rate: Option<u32>,
    /// Sessions a client address may open at once before the rate applies [default: 60].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_CONNECT_BURST")]
    pub connect_burst: Option<u32>,
    /// Concurrent sessions to one server address, all clients [default: 200].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_MAX_SESSIONS_PER_DEST")]
    pub max_sessions_per_dest: Option<usize>,
    /// New upstream connections per minute, all clients together [default: 1200].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_GLOBAL_CONNECT_RATE")]
    pub global_connect_rate: Option<u32>,
    /// Upstream connections the bridge may open at once before the global rate applies [default: 100].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_GLOBAL_CONNECT_BURST")]
    pub global_connect_burst: Option<u32>,
    /// Different servers (address and port) one client may reach per minute [default: 10].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_MAX_DESTINATIONS_PER_IP")]
    pub max_destinations_per_ip: Option<usize>,
    /// POP3 bytes (both ways) one client may relay per hour [default: 1073741824].
    #[arg(long, value_name = "BYTES", env = "WS_BRIDGE_MAX_BYTES_PER_IP_HOUR")]
    pub max_bytes_per_ip_hour: Option<u64>,
    /// IPv6 clients are counted per prefix of this length [default: 64].
    #[arg(long, value_name = "BITS", env = "WS_BRIDGE_IPV6_PREFIX")]
    pub ipv6_prefix: Option<u8>,
    /// Open HTTP connections, all clients (before a WebSocket upgrade) [default: 1024].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open HTTP connections per client address (trusted proxies exempt) [default: 64].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Largest HTTP request head, bytes (at least 8192) [default: 16384].
    #[arg(long, value_name = "BYTES", env = "WS_BRIDGE_MAX_HEADER_SIZE")]
    pub max_header_size: Option<usize>,
    /// DNS lookups in flight at once [default: 256].
    #[arg(long, value_name = "N", env = "WS_BRIDGE_MAX_LOOKUPS")]
    pub max_lookups: Option<usize>,
    /// Largest WebSocket message and frame from a client, bytes [default: 1048576].
    #[arg(long, value_name = "BYTES", env = "WS_BRIDGE_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,
    /// Close a session after this long without POP3 bytes either way [default: 15m].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Close any session after this long [default: 4h].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_MAX_SESSION_TIME", value_parser = parse_duration)]
    pub max_session_time: Option<Duration>,
    /// Send a WebSocket ping this often [default: 30s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_PING_INTERVAL", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Deadline for the client's connect message [default: 10s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_FIRST_MESSAGE_TIMEOUT", value_parser = parse_duration)]
    pub first_message_timeout: Option<Duration>,
    /// Deadline for DNS resolution of a target [default: 5s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_RESOLVE_TIMEOUT", value_parser = parse_duration)]
    pub resolve_timeout: Option<Duration>,
    /// Deadline for the TCP connection to a target [default: 10s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_CONNECT_TIMEOUT", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Deadline for each TLS handshake and the STLS reply [default: 10s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_TLS_TIMEOUT", value_parser = parse_duration)]
    pub tls_timeout: Option<Duration>,
    /// Deadline for an HTTP request's head (request line and headers) [default: 10s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_HEADER_TIMEOUT", value_parser = parse_duration)]
    pub header_timeout: Option<Duration>,
    /// Close an HTTP connection after this long without a byte either way [default: 5s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_KEEPALIVE_TIMEOUT", value_parser = parse_duration)]
    pub keepalive_timeout: Option<Duration>,
    /// On SIGTERM/SIGINT, let sessions run this long before closing them [default: 30s].
    #[arg(long, value_name = "DURATION", env = "WS_BRIDGE_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing
    /// directives (e.g. info,ws_bridge=debug). Logs go to stderr [default: info].
    #[arg(long, value_name = "FILTER", env = "WS_BRIDGE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format [default: text].
    #[arg(long, value_name = "FORMAT", env = "WS_BRIDGE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The configuration file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    ca_file: Vec<PathBuf>,
    #[serde(default)]
    origin: Vec<String>,
    serve: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    end_to_end_only: Option<bool>,
    token_secret_file: Option<PathBuf>,
    #[serde(default)]
    trusted_proxy: Vec<String>,
    #[serde(default)]
    dns_server: Vec<String>,
    metrics_listen: Option<SocketAddr>,
    metrics_token_file: Option<PathBuf>,
    token_max_ttl: Option<String>,
    max_sessions: Option<usize>,
    max_sessions_per_ip: Option<usize>,
    connect_rate: Option<u32>,
    connect_burst: Option<u32>,
    max_message_size: Option<usize>,
    max_sessions_per_dest: Option<usize>,
    global_connect_rate: Option<u32>,
    global_connect_burst: Option<u32>,
    max_destinations_per_ip: Option<usize>,
    max_bytes_per_ip_hour: Option<u64>,
    ipv6_prefix: Option<u8>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_header_size: Option<usize>,
    max_lookups: Option<usize>,
    idle_timeout: Option<String>,
    max_session_time: Option<String>,
    ping_interval: Option<String>,
    first_message_timeout: Option<String>,
    resolve_timeout: Option<String>,
    connect_timeout: Option<String>,
    tls_timeout: Option<String>,
    header_timeout: Option<String>,
    keepalive_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
}

/// Everything the `ws-bridge` command needs to serve.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub log_level: String,
    pub log_format: LogFormat,
    pub settings: Settings,
}

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Parses `90s`, `10m`, `1h 30m`, `250ms` (and a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. 30s, 10m, 1h"))
}

fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl ServeArgs {
    /// Merges flags and environment (already in `self`, via clap) over the
    /// config file over the defaults.
    pub fn resolve(self) -> Result<Options, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let dur =
            |cli: Option<Duration>, file: &Option<String>, key: &str, default: Duration| match (cli, file) {
                (Some(d), _) => Ok(d),
                (None, Some(s)) => parse_duration(s).map_err(|e| format!("{key}: {e}")),
                (None, None) => Ok(default),
            };
        let list = |cli: Vec<String>, file: Vec<String>| if cli.is_empty() { file } else { cli };
        let paths = |cli: Vec<PathBuf>, file: Vec<PathBuf>| if cli.is_empty() { file } else { cli };

        let t = Timeouts::default();
        let timeouts = Timeouts {
            first_message: dur(
                self.first_message_timeout,
                &file.first_message_timeout,
                "first_message_timeout",
                t.first_message,
            )?,
            resolve: dur(self.resolve_timeout, &file.resolve_timeout, "resolve_timeout", t.resolve)?,
            connect: dur(self.connect_timeout, &file.connect_timeout, "connect_timeout", t.connect)?,
            tls: dur(self.tls_timeout, &file.tls_timeout, "tls_timeout", t.tls)?,
            idle: dur(self.idle_timeout, &file.idle_timeout, "idle_timeout", t.idle)?,
            max_session: dur(
                self.max_session_time,
                &file.max_session_time,
                "max_session_time",
                t.max_session,
            )?,
            ping_interval: dur(self.ping_interval, &file.ping_interval, "ping_interval", t.ping_interval)?,
            shutdown: dur(self.shutdown_timeout, &file.shutdown_timeout, "shutdown_timeout", t.shutdown)?,
            header: dur(self.header_timeout, &file.header_timeout, "header_timeout", t.header)?,
            keepalive: dur(
                self.keepalive_timeout,
                &file.keepalive_timeout,
                "keepalive_timeout",
                t.keepalive,
            )?,
        };
        let l = Limits::default();
        let limits = Limits {
            max_sessions: self.max_sessions.or(file.max_sessions).unwrap_or(l.max_sessions),
            max_sessions_per_ip: self
                .max_sessions_per_ip
                .or(file.max_sessions_per_ip)
                .unwrap_or(l.max_sessions_per_ip),
            connect_rate: self.connect_rate.or(file.connect_rate).unwrap_or(l.connect_rate),
            connect_burst: self.connect_burst.or(file.connect_burst).unwrap_or(l.connect_burst),
            max_message_size: self.max_message_size.or(file.max_message_size).unwrap_or(l.max_message_size),
            max_sessions_per_dest: self
                .max_sessions_per_dest
                .or(file.max_sessions_per_dest)
                .unwrap_or(l.max_sessions_per_dest),
            global_connect_rate: self
                .global_connect_rate
                .or(file.global_connect_rate)
                .unwrap_or(l.global_connect_rate),
            global_connect_burst: self
                .global_connect_burst
                .or(file.global_connect_burst)
                .unwrap_or(l.global_connect_burst),
            max_destinations_per_ip: self
                .max_destinations_per_ip
                .or(file.max_destinations_per_ip)
                .unwrap_or(l.max_destinations_per_ip),
            max_bytes_per_ip_hour: self
                .max_bytes_per_ip_hour
                .or(file.max_bytes_per_ip_hour)
                .unwrap_or(l.max_bytes_per_ip_hour),
            ipv6_prefix: self.ipv6_prefix.or(file.ipv6_prefix).unwrap_or(l.ipv6_prefix),
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(l.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(l.max_connections_per_ip),
            max_header_size: self.max_header_size.or(file.max_header_size).unwrap_or(l.max_header_size),
            max_lookups: self.max_lookups.or(file.max_lookups).unwrap_or(l.max_lookups),
        };
        let settings = Settings {
            allow: list(self.allow, file.allow),
            ca_files: paths(self.ca_file, file.ca_file),
            origins: list(self.origin, file.origin),
            serve: self.serve.or(file.serve),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            end_to_end_only: self.end_to_end_only.or(file.end_to_end_only).unwrap_or(false),
            token_secret_file: self.token_secret_file.or(file.token_secret_file),
            trusted_proxies: list(self.trusted_proxy, file.trusted_proxy),
            dns_servers: list(self.dns_server, file.dns_server),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            metrics_token_file: self.metrics_token_file.or(file.metrics_token_file),
            token_max_ttl: dur(
                self.token_max_ttl,
                &file.token_max_ttl,
                "token_max_ttl",
                crate::token::DEFAULT_MAX_TTL,
            )?,
            limits,
            timeouts,
            ..Settings::default()
        };
        if settings.tls_cert.is_some() != settings.tls_key.is_some() {
            return Err("tls_cert and tls_key go together".into());
        }
        Ok(Options {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            log_level: self.log_level.or(file.log_level).unwrap_or_else(|| "info".into()),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            settings,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

impl Options {
    /// The effective configuration as a TOML file that would reproduce it.
    /// Names the token secret file but never reads it out.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let q = |v: &str| toml_string(v);
        let qs = |vs: &[String]| format!("[{}]", vs.iter().map(|v| q(v)).collect::<Vec<_>>().join(", "));
        let qp = |p: &Path| q(&p.display().to_string());
        let ps = |vs: &[PathBuf]| format!("[{}]", vs.iter().map(|p| qp(p)).collect::<Vec<_>>().join(", "));
        let _ = writeln!(out, "listen = {}", q(&self.listen.to_string()));
        let _ = writeln!(out, "allow = {}", qs(&s.allow));
        if s.allow.is_empty() {
            let _ = writeln!(out, "# no allow entries: any public host on ports 110 and 995");
        }
        let _ = writeln!(out, "ca_file = {}", ps(&s.ca_files));
        let _ = writeln!(out, "origin = {}", qs(&s.origins));
        let _ = writeln!(
            out,
            "# browsers: {}; requests without Origin (not a browser): accepted",
            if s.origins.iter().any(|o| o.trim() == "*") {
                "any origin"
            } else {
                "the bridge's own pages and the origins listed"
            }
        );
        let opt = |out: &mut String, key: &str, p: &Option<PathBuf>| match p {
            Some(p) => {
                let _ = writeln!(out, "{key} = {}", qp(p));
            }
            None => {
                let _ = writeln!(out, "# {key} not set");
            }
        };
        opt(&mut out, "serve", &s.serve);
        opt(&mut out, "tls_cert", &s.tls_cert);
        opt(&mut out, "tls_key", &s.tls_key);
        let _ = writeln!(out, "end_to_end_only = {}", s.end_to_end_only);
        let _ = writeln!(
            out,
            "# {}",
            if s.end_to_end_only {
                "end-to-end TLS only: sessions that ask the bridge for TLS (or none) are refused; passwords never pass through it readable"
            } else {
                "sessions choose: TLS in the bridge, or end to end (TLS in the client)"
            }
        );
        opt(&mut out, "token_secret_file", &s.token_secret_file);
        let _ = writeln!(
            out,
            "# access tokens: {}",
            if s.token_secret_file.is_some() { "required" } else { "not required" }
        );
        let _ = writeln!(out, "token_max_ttl = {}", q(&format_duration(s.token_max_ttl)));
        let _ = writeln!(out, "trusted_proxy = {}", qs(&s.trusted_proxies));
        let _ = writeln!(out, "dns_server = {}", qs(&s.dns_servers));
        if s.dns_servers.is_empty() {
            let _ = writeln!(out, "# no dns_server: the system's (/etc/resolv.conf)");
        }
        match &s.metrics_listen {
            Some(addr) => {
                let _ = writeln!(out, "metrics_listen = {}", q(&addr.to_string()));
            }
            None => {
                let _ = writeln!(out, "# metrics_listen not set: /metrics is served on listen");
            }
        }
        opt(&mut out, "metrics_token_file", &s.metrics_token_file);
        for (key, value) in s.limits.numbers() {
            let _ = writeln!(out, "{key} = {value}");
        }
        let t = &s.timeouts;
        for (key, d) in [
            ("idle_timeout", t.idle),
            ("max_session_time", t.max_session),
            ("ping_interval", t.ping_interval),
            ("first_message_timeout", t.first_message),
            ("resolve_timeout", t.resolve),
            ("connect_timeout", t.connect),
            ("tls_timeout", t.tls),
            ("header_timeout", t.header),
            ("keepalive_timeout", t.keepalive),
            ("shutdown_timeout", t.shutdown),
        ] {
            let _ = writeln!(out, "{key} = {}", q(&format_duration(d)));
        }
        let _ = writeln!(out, "log_level = {}", q(&self.log_level));
        let _ = writeln!(out, "log_format = {}", q(&self.log_format.to_string()));
        out
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("ws-bridge-opt-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let path = temp_file(
            "a.toml",
            r#"
            listen = "127.0.0.1:9000"
            allow = ["127.0.0.1:110"]
            max_sessions = 5
            idle_timeout = "2m"
            log_format = "json"
            origin = ["*"]
            dns_server = ["192.0.2.53:5353"]
            metrics_listen = "127.0.0.1:9108"
            token_max_ttl = "2h"
            max_bytes_per_ip_hour = 5000000
            keepalive_timeout = "3s"
            end_to_end_only = true
            "#,
        );
        let args = ServeArgs {
            config: Some(path),
            max_sessions: Some(7),
            allow: vec!["localhost:995".into()],
            ..ServeArgs::default()
        };
        let o = args.resolve().unwrap();
        assert_eq!(o.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(o.settings.allow, vec!["localhost:995"]);
        assert_eq!(o.settings.limits.max_sessions, 7);
        assert_eq!(o.settings.timeouts.idle, Duration::from_secs(120));
        assert_eq!(o.settings.timeouts.ping_interval, Timeouts::default().ping_interval);
        assert_eq!(o.log_format, LogFormat::Json);
        assert_eq!(o.settings.dns_servers, vec!["192.0.2.53:5353"]);
        assert_eq!(o.settings.metrics_listen, Some("127.0.0.1:9108".parse().unwrap()));
        assert_eq!(o.settings.token_max_ttl, Duration::from_secs(7200));
        assert_eq!(o.settings.limits.max_bytes_per_ip_hour, 5_000_000);
        assert_eq!(o.settings.limits.max_sessions_per_dest, Limits::default().max_sessions_per_dest);
        assert_eq!(o.settings.timeouts.keepalive, Duration::from_secs(3));
        assert!(o.settings.end_to_end_only);
        let described = o.describe();
        assert!(described.contains("max_bytes_per_ip_hour = 5000000"), "{described}");
        assert!(described.contains("# browsers: any origin"), "{described}");
        assert!(described.contains("max_sessions = 7"), "{described}");
        assert!(described.contains("idle_timeout = \"2m\""), "{described}");
        assert!(described.contains("end_to_end_only = true\n# end-to-end TLS only"), "{described}");
        // The flag (or the variable) wins over the file, either way.
        let args = ServeArgs {
            config: Some(temp_file("e.toml", "end_to_end_only = true\n")),
            end_to_end_only: Some(false),
            ..ServeArgs::default()
        };
        assert!(!args.resolve().unwrap().settings.end_to_end_only);
        // What describe() prints reads back as the same configuration.
        let again = ServeArgs { config: Some(temp_file("b.toml", &described)), ..ServeArgs::default() };
        assert_eq!(again.resolve().unwrap().describe(), described);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let bad =
            ServeArgs { config: Some(temp_file("c.toml", "max_session = 5\n")), ..ServeArgs::default() };
        assert!(bad.resolve().unwrap_err().contains("max_session"));
        let bad = ServeArgs {
            config: Some(temp_file("d.toml", "idle_timeout = \"soon\"\n")),
            ..ServeArgs::default()
        };
        assert!(bad.resolve().unwrap_err().contains("idle_timeout"));
        let bad = ServeArgs { config: Some("/nonexistent/b.toml".into()), ..ServeArgs::default() };
        assert!(bad.resolve().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("later").is_err());
    }
}
