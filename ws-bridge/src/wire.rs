//! The session wire format, version 1: the JSON control messages that travel
//! as WebSocket TEXT frames. POP3 bytes travel as BINARY frames and are
//! never parsed here.
//!
//! ```text
//! client → bridge  {"type":"connect","v":1,"host":"pop.example.com","port":995,"tls":"implicit","token":"…"}
//! bridge → client  {"type":"connected","tls":null | {protocol, cipher, certificate:{subject, issuer, notAfter}}}
//! client → bridge  {"type":"stls"}
//! bridge → client  {"type":"tls","tls":{…},"discarded":0}
//! bridge → client  {"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}  then close 4403
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// The WebSocket subprotocol name of this format.
pub const SUBPROTOCOL: &str = "pop3-bridge.v1";

/// The only `v` this bridge speaks.
pub const VERSION: u32 = 1;

/// How the upstream connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TCP, then a TLS handshake at once (port 995).
    Implicit,
    /// Plain TCP; the client may later ask for `stls`.
    Starttls,
    /// Plain TCP.
    None,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Implicit => "implicit",
            TlsMode::Starttls => "starttls",
            TlsMode::None => "none",
        })
    }
}

/// An access token (see [`crate::token`]). `Debug` never prints it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// The token's text, for verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The first message of a session.
#[derive(Debug, Clone, Deserialize)]
pub struct Connect {
    pub v: u32,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    #[serde(default)]
    pub token: Option<Token>,
}

/// A control message from the client. Unknown fields are ignored so later
/// minor additions do not break older bridges; unknown types are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    Connect(Connect),
    Stls,
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// What the bridge tells the client about an upstream TLS session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// The IANA-style rustls name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    pub certificate: CertificateInfo,
}

/// The server's leaf certificate, as the client shows it to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// Distinguished name, e.g. `CN=localhost`.
    pub subject: String,
    pub issuer: String,
    /// RFC 3339, UTC: `2027-11-27T15:00:00Z`.
    #[serde(rename = "notAfter")]
    pub not_after: String,
}

/// A control message from the bridge.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    Connected {
        tls: Option<&'a TlsInfo>,
    },
    /// `discarded`: bytes the server sent after its `+OK` to STLS and
    /// before the handshake, dropped unread (a client may report them).
    Tls {
        tls: &'a TlsInfo,
        discarded: usize,
    },
    Error {
        code: &'static str,
        message: &'a str,
    },
}

impl ServerMessage<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("control messages always serialise")
    }
}

/// The error codes a session can end with, each with its close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Policy, token or limits said no. Close 4403 (4429 for limits).
    BridgeRejected,
    /// Malformed, missing or unexpected control message. Close 4400.
    ProtocolError,
    /// TCP connect failed or timed out, or an allowed name did not resolve.
    /// Close 4502.
    ConnectFailed,
    /// TLS handshake or certificate verification failed, or the STLS
    /// exchange went wrong. Close 4525.
    TlsFailed,
    /// The session was idle too long, lasted too long, or the client
    /// stopped answering pings. Close 4408.
    Timeout,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BridgeRejected => "BRIDGE_REJECTED",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::ConnectFailed => "CONNECT_FAILED",
            ErrorCode::TlsFailed => "TLS_FAILED",
            ErrorCode::Timeout => "TIMEOUT",
        }
    }

    pub fn close_code(self) -> u16 {
        match self {
            ErrorCode::BridgeRejected => 4403,
            ErrorCode::ProtocolError => 4400,
            ErrorCode::ConnectFailed => 4502,
            ErrorCode::TlsFailed => 4525,
            ErrorCode::Timeout => 4408,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_with_and_without_token() {
        let m = ClientMessage::parse(
            r#"{"type":"connect","v":1,"host":"pop.example.com","port":995,"tls":"implicit","token":"s3cret"}"#,
        )
        .unwrap();
        let ClientMessage::Connect(c) = m else { panic!("not connect") };
        assert_eq!((c.v, c.host.as_str(), c.port), (1, "pop.example.com", 995));
        assert_eq!(c.tls, TlsMode::Implicit);
        assert!(!format!("{c:?}").contains("s3cret"));
        let m = ClientMessage::parse(r#"{"type":"connect","v":1,"host":"h","port":110,"tls":"starttls"}"#)
            .unwrap();
        assert!(matches!(m, ClientMessage::Connect(Connect { tls: TlsMode::Starttls, .. })));
        assert!(matches!(ClientMessage::parse(r#"{"type":"stls"}"#), Ok(ClientMessage::Stls)));
    }

    #[test]
    fn rejects_malformed_messages() {
        for bad in [
            "",
            "hello",
            "{}",
            r#"{"type":"nope"}"#,
            r#"{"type":"connect","v":1,"host":"h","port":70000,"tls":"none"}"#,
            r#"{"type":"connect","v":1,"host":"h","port":110,"tls":"maybe"}"#,
            r#"{"type":"connect","v":1,"port":110,"tls":"none"}"#,
            r#"{"type":"connect","v":1,"host":"h","port":110,"tls":"none","token":5}"#,
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serialises_server_messages() {
        assert_eq!(ServerMessage::Connected { tls: None }.to_json(), r#"{"type":"connected","tls":null}"#);
        let info = TlsInfo {
            protocol: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            certificate: CertificateInfo {
                subject: "CN=localhost".into(),
                issuer: "CN=Test CA".into(),
                not_after: "2027-11-27T15:00:00Z".into(),
            },
        };
        assert_eq!(
            ServerMessage::Tls { tls: &info, discarded: 14 }.to_json(),
            r#"{"type":"tls","tls":{"protocol":"TLSv1.3","cipher":"TLS13_AES_256_GCM_SHA384","certificate":{"subject":"CN=localhost","issuer":"CN=Test CA","notAfter":"2027-11-27T15:00:00Z"}},"discarded":14}"#
        );
        assert_eq!(
            ServerMessage::Error { code: ErrorCode::BridgeRejected.as_str(), message: "not allowed" }
                .to_json(),
            r#"{"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}"#
        );
    }
}
