//! Failures as a caller sees them: a code from the documented list
//! ([`ErrorCode`]), a sentence, and the server's response code and text
//! when the server said something. The wasm face turns one into a
//! `Pop3Error` field for field.

use crate::proto::{Error, ErrorCode};
use crate::wire::TlsReason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// The RFC 2449/3206 response code of the server's `-ERR`.
    pub resp_code: Option<String>,
    /// The server's text after `-ERR`.
    pub server_text: Option<String>,
    /// `TLS_FAILED` only: why, in one word (`Pop3Error.reason`).
    pub tls_reason: Option<TlsReason>,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), resp_code: None, server_text: None, tls_reason: None }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Failure::new(ErrorCode::InvalidArgument, message)
    }

    pub fn tls(reason: TlsReason, message: impl Into<String>) -> Self {
        Failure { tls_reason: Some(reason), ..Failure::new(ErrorCode::TlsFailed, message) }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let reply = e.server_reply().cloned();
        Failure {
            code: e.code(),
            message: e.to_string(),
            resp_code: reply.as_ref().and_then(|r| r.resp_code.clone()),
            server_text: reply.map(|r| r.text),
            tls_reason: matches!(e, Error::Tls(_)).then_some(TlsReason::Protocol),
        }
    }
}

#[cfg(feature = "tls")]
impl From<crate::tls::TlsError> for Failure {
    fn from(e: crate::tls::TlsError) -> Self {
        use crate::tls::TlsError as T;
        let reason = match &e {
            T::InvalidHost(_) | T::InvalidCa(_) => return Failure::invalid_argument(e.to_string()),
            T::Closed => return Failure::new(ErrorCode::InvalidState, e.to_string()),
            T::Untrusted { .. } => TlsReason::Untrusted,
            T::Expired { .. } => TlsReason::Expired,
            T::NotYetValid { .. } => TlsReason::NotYetValid,
            T::WrongName { .. } => TlsReason::WrongName,
            T::BadCertificate(_) => TlsReason::BadCertificate,
            T::AlertReceived(_) => TlsReason::Alert,
            T::TransportClosed { .. } => TlsReason::Truncated,
            _ => TlsReason::Protocol,
        };
        Failure::tls(reason, e.to_string())
    }
}

/// A number of milliseconds as JavaScript writes it (`300`, `300.5`):
/// without Rust's float formatting, which would add kilobytes to the wasm
/// module for this one use.
pub fn ms_text(ms: f64) -> String {
    let thousandths = (ms * 1000.0).round() as u64;
    let (whole, frac) = (thousandths / 1000, thousandths % 1000);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_read_as_javascript_writes_them() {
        assert_eq!(ms_text(300.0), "300");
        assert_eq!(ms_text(300.5), "300.5");
        assert_eq!(ms_text(0.25), "0.25");
        assert_eq!(ms_text(30000.0), "30000");
        assert_eq!(ms_text(1.125), "1.125");
    }
}
