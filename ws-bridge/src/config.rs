//! The bridge's settings, as given on the command line, and the checked,
//! ready-to-use [`Config`] built from them.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, pem::PemObject};

use crate::policy::{AllowEntry, Policy};

/// Settings as a user writes them (CLI flags, or a test).
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
    /// Concurrent WebSocket sessions at most.
    pub max_sessions: usize,
    pub timeouts: Timeouts,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow: Vec::new(),
            ca_files: Vec::new(),
            origins: Vec::new(),
            serve: None,
            max_sessions: 1024,
            timeouts: Timeouts::default(),
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
    /// For a TLS handshake, and for the server's answer to `STLS`.
    pub tls: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            first_message: Duration::from_secs(10),
            resolve: Duration::from_secs(5),
            connect: Duration::from_secs(10),
            tls: Duration::from_secs(10),
        }
    }
}

/// Largest WebSocket message (and frame) accepted from a client.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Bytes read from upstream per BINARY frame.
pub const UPSTREAM_CHUNK: usize = 16 * 1024;

/// The checked configuration, shared by every session.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    pub tls: Arc<rustls::ClientConfig>,
    pub origins: Vec<String>,
    pub serve: Option<PathBuf>,
    pub max_sessions: usize,
    pub timeouts: Timeouts,
}

/// A setting that cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    Allow(String),
    CaFile { path: PathBuf, reason: String },
    Tls(rustls::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Allow(msg) => f.write_str(msg),
            ConfigError::CaFile { path, reason } => {
                write!(f, "--ca-file {}: {reason}", path.display())
            }
            ConfigError::Tls(e) => write!(f, "TLS set-up: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

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
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ConfigError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let origins = settings.origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();

        Ok(Config {
            policy: Policy::new(allow, settings.timeouts.resolve),
            tls: Arc::new(tls),
            origins,
            serve: settings.serve,
            max_sessions: settings.max_sessions.max(1),
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
