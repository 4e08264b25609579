//! The engine's one error type: what went wrong, in terms a postmaster can
//! act on (which certificate, which name, which date).

use std::fmt;

use rustls::{CertificateError, pki_types::UnixTime};

use super::info::{CertificateDetails, rfc3339};

/// Why the TLS session failed, or why it could not start.
///
/// Fatal errors are sticky: once one happened, every later call of the
/// engine returns it again. [`TlsError::reason`] names the kind in one
/// stable word for programs; `Display` is the sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The host is neither a DNS name nor an IP address.
    InvalidHost(String),
    /// The caller's CA certificates could not be read.
    InvalidCa(String),
    /// The chain leads to no trusted root (the webpki roots plus the
    /// caller's CA certificates). `issuer`: who signed the last certificate
    /// the server sent, the CA the client would have to trust.
    Untrusted { issuer: Option<String> },
    /// A certificate in the chain expired. RFC 3339 times, UTC.
    Expired { not_after: Option<String>, now: Option<String> },
    /// A certificate in the chain is not valid yet (or the clock is wrong).
    NotYetValid { not_before: Option<String>, now: Option<String> },
    /// The certificate is for other names: `names` lists the DNS names and
    /// IP addresses it has (its subjectAltName).
    WrongName { host: String, names: Vec<String> },
    /// Any other certificate problem (revoked, bad signature, unsupported
    /// algorithm, not for TLS servers, unparsable).
    BadCertificate(String),
    /// The server ended the handshake or the session with a fatal alert.
    AlertReceived(String),
    /// The server broke the protocol (garbage instead of a TLS record, a
    /// record that does not decrypt, an unexpected message), or the two
    /// sides have nothing in common.
    Protocol { handshaking: bool, detail: String },
    /// The connection ended without the server's close_notify: in the
    /// handshake, in the middle of a record (`partial_record`), or between
    /// records.
    TransportClosed { handshaking: bool, partial_record: bool },
    /// `write` after `close`: a caller error, not fatal.
    Closed,
}

impl TlsError {
    /// One stable word per kind: `invalid-host`, `invalid-ca`, `untrusted`,
    /// `expired`, `not-yet-valid`, `wrong-name`, `bad-certificate`, `alert`,
    /// `protocol`, `truncated`, `closed`.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::InvalidHost(_) => "invalid-host",
            TlsError::InvalidCa(_) => "invalid-ca",
            TlsError::Untrusted { .. } => "untrusted",
            TlsError::Expired { .. } => "expired",
            TlsError::NotYetValid { .. } => "not-yet-valid",
            TlsError::WrongName { .. } => "wrong-name",
            TlsError::BadCertificate(_) => "bad-certificate",
            TlsError::AlertReceived(_) => "alert",
            TlsError::Protocol { .. } => "protocol",
            TlsError::TransportClosed { .. } => "truncated",
            TlsError::Closed => "closed",
        }
    }

    /// Turns a rustls error into what the postmaster needs to know.
    /// `chain`: the certificates the server sent (leaf first), parsed, for
    /// the names and the issuer.
    pub(super) fn from_rustls(
        e: rustls::Error,
        host: &str,
        chain: &[CertificateDetails],
        handshaking: bool,
    ) -> TlsError {
        let time = |t: UnixTime| rfc3339(t.as_secs());
        match e {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => {
                    TlsError::Untrusted { issuer: chain.last().map(|c| c.issuer.clone()) }
                }
                CertificateError::Expired => TlsError::Expired { not_after: None, now: None },
                CertificateError::ExpiredContext { time: now, not_after } => {
                    TlsError::Expired { not_after: time(not_after), now: time(now) }
                }
                CertificateError::NotValidYet => TlsError::NotYetValid { not_before: None, now: None },
                CertificateError::NotValidYetContext { time: now, not_before } => {
                    TlsError::NotYetValid { not_before: time(not_before), now: time(now) }
                }
                CertificateError::NotValidForName => {
                    TlsError::WrongName { host: host.to_string(), names: leaf_names(chain, Vec::new()) }
                }
                CertificateError::NotValidForNameContext { presented, .. } => {
                    TlsError::WrongName { host: host.to_string(), names: leaf_names(chain, presented) }
                }
                CertificateError::Revoked => TlsError::BadCertificate("certificate revoked".into()),
                CertificateError::BadSignature => {
                    TlsError::BadCertificate("certificate has a bad signature".into())
                }
                other => TlsError::BadCertificate(format!("invalid certificate: {other}")),
            },
            rustls::Error::AlertReceived(alert) => TlsError::AlertReceived(format!("{alert:?}")),
            other => TlsError::Protocol { handshaking, detail: other.to_string() },
        }
    }
}

/// The names the leaf certificate has; webpki's own list (Rust debug
/// notation) only if the leaf could not be parsed here.
fn leaf_names(chain: &[CertificateDetails], presented: Vec<String>) -> Vec<String> {
    match chain.first() {
        Some(leaf) => leaf.dns_names.iter().chain(&leaf.ip_addresses).cloned().collect(),
        None => presented,
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first words are the bridge's sentences (ws-bridge/src/upstream.rs),
        // so a reason reads the same wherever TLS ends.
        let clock = |f: &mut fmt::Formatter<'_>, now: &Option<String>| match now {
            Some(now) => write!(f, " (the client's clock says {now})"),
            None => Ok(()),
        };
        match self {
            TlsError::InvalidHost(host) => write!(f, "{host} is not a valid TLS server name"),
            TlsError::InvalidCa(why) => write!(f, "cannot read the CA certificates: {why}"),
            TlsError::Untrusted { issuer: Some(issuer) } => {
                write!(f, "certificate not trusted (unknown issuer: {issuer})")
            }
            TlsError::Untrusted { issuer: None } => f.write_str("certificate not trusted (unknown issuer)"),
            TlsError::Expired { not_after, now } => {
                f.write_str("certificate expired")?;
                if let Some(t) = not_after {
                    write!(f, " at {t}")?;
                }
                clock(f, now)
            }
            TlsError::NotYetValid { not_before, now } => {
                f.write_str("certificate not yet valid")?;
                if let Some(t) = not_before {
                    write!(f, " before {t}")?;
                }
                clock(f, now)
            }
            TlsError::WrongName { host, names } if names.is_empty() => {
                write!(f, "certificate not valid for the host name {host} (it names no host)")
            }
            TlsError::WrongName { host, names } => {
                write!(f, "certificate not valid for the host name {host} (it is for {})", names.join(", "))
            }
            TlsError::BadCertificate(why) => f.write_str(why),
            TlsError::AlertReceived(alert) => write!(f, "server sent TLS alert {alert}"),
            TlsError::Protocol { handshaking: true, detail } => write!(f, "TLS handshake failed: {detail}"),
            TlsError::Protocol { handshaking: false, detail } => write!(f, "TLS session failed: {detail}"),
            TlsError::TransportClosed { handshaking: true, .. } => {
                f.write_str("server closed the connection during the TLS handshake")
            }
            TlsError::TransportClosed { partial_record: true, .. } => {
                f.write_str("connection closed in the middle of a TLS record (truncated)")
            }
            TlsError::TransportClosed { .. } => f.write_str("connection closed without TLS close_notify"),
            TlsError::Closed => f.write_str("the TLS session is closed"),
        }
    }
}

impl std::error::Error for TlsError {}
