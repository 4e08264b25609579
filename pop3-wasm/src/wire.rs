//! The session wire format between the client and `ws-bridge`, defined
//! once for both sides: the WebSocket subprotocols, the JSON control
//! messages (TEXT frames), the error codes with their close codes, and the
//! sentences a client recognises. POP3 bytes (or, end to end, TLS records)
//! travel as BINARY frames and are never parsed here.
//!
//! ```text
//! client → bridge  {"type":"connect","v":2,"host":"pop.example.com","port":995,"tls":"implicit","endToEnd":true,"token":"…"}
//! bridge → client  {"type":"connected","tls":null | {protocol, cipher, certificate:{subject, issuer, notAfter}}}
//!                  {"type":"connected","tls":null,"endToEnd":true}          (end to end: the bridge does no TLS)
//! client → bridge  {"type":"stls"}                                          (bridge-side TLS only)
//! bridge → client  {"type":"tls","tls":{…},"discarded":0}
//! bridge → client  {"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}  then close 4403
//! ```
//!
//! Version 1 (`pop3-bridge.v1`) has every message above but `endToEnd`.
//! Version 2 (`pop3-bridge.v2`) adds the end-to-end relay: with
//! `endToEnd: true` the bridge opens plain TCP and never does TLS; the
//! client does the handshake (and STLS) itself, and the bridge lets through
//! before it only what [`PLAINTEXT_BEFORE_TLS`] describes. Without
//! `endToEnd` a v2 session is exactly a v1 session.
//!
//! Plain Rust, no wasm dependencies. The JSON codec is behind the `serde`
//! feature (the bridge turns it on; the default wasm module does not carry
//! serde_json): without it, a client builds its `connect` with
//! [`Connect::to_json`] and reads the bridge's messages with its own JSON
//! parser, comparing against the names defined here.

use std::fmt;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// The WebSocket subprotocol of version 1.
pub const SUBPROTOCOL_V1: &str = "pop3-bridge.v1";
/// The WebSocket subprotocol of version 2 (v1 plus the end-to-end relay).
pub const SUBPROTOCOL_V2: &str = "pop3-bridge.v2";
/// What a client offers, in its order of preference (newest first).
pub const SUBPROTOCOLS: [&str; 2] = [SUBPROTOCOL_V2, SUBPROTOCOL_V1];

/// A version of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 2] = [Version::V1, Version::V2];

    /// The `v` of a `connect` message.
    pub fn number(self) -> u32 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }

    pub fn from_number(v: u32) -> Option<Version> {
        Version::ALL.into_iter().find(|version| version.number() == v)
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V1 => SUBPROTOCOL_V1,
            Version::V2 => SUBPROTOCOL_V2,
        }
    }

    pub fn from_subprotocol(name: &[u8]) -> Option<Version> {
        Version::ALL.into_iter().find(|version| version.subprotocol().as_bytes() == name)
    }

    /// The bridge's pick from the subprotocols a client offered: the
    /// newest it knows, whatever the order of the offer. `None` when the
    /// client offered none of them.
    pub fn choose<'a>(offered: impl IntoIterator<Item = &'a [u8]>) -> Option<Version> {
        offered.into_iter().filter_map(Version::from_subprotocol).max()
    }
}

/// The `v` of a `connect` sent over the subprotocol the bridge selected
/// (1 for anything but v2, such as a bridge that selected none).
pub fn version_of(subprotocol: &str) -> u32 {
    Version::from_subprotocol(subprotocol.as_bytes()).unwrap_or(Version::V1).number()
}

/// How the connection to the server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize), serde(rename_all = "lowercase"))]
pub enum TlsMode {
    /// A TLS handshake at once (port 995).
    Implicit,
    /// Plain TCP; TLS after `STLS` (port 110).
    Starttls,
    /// Plain TCP.
    None,
}

impl TlsMode {
    pub const ALL: [TlsMode; 3] = [TlsMode::Implicit, TlsMode::Starttls, TlsMode::None];

    /// `implicit`, `starttls` or `none`, as the wire writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::Starttls => "starttls",
            TlsMode::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<TlsMode> {
        TlsMode::ALL.into_iter().find(|mode| mode.as_str() == s)
    }

    /// The standard port: 995 for implicit TLS, 110 otherwise.
    pub fn default_port(self) -> u16 {
        if self == TlsMode::Implicit { 995 } else { 110 }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bridge access token. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Deserialize), serde(transparent))]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    /// The token's text: for sending and verifying only.
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Deserialize))]
pub struct Connect {
    pub v: u32,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// v2: the client does TLS itself; the bridge relays TCP only.
    #[cfg_attr(feature = "serde", serde(default, rename = "endToEnd"))]
    pub end_to_end: bool,
    #[cfg_attr(feature = "serde", serde(default))]
    pub token: Option<Token>,
}

impl Connect {
    /// The message as JSON. `endToEnd` is written only when true (and
    /// then the version is 2), so a v1 `connect` is byte for byte what it
    /// always was.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96 + self.host.len());
        out.push_str(r#"{"type":"connect","v":"#);
        out.push_str(&self.v.to_string());
        out.push_str(r#","host":"#);
        json_string(&mut out, &self.host);
        out.push_str(r#","port":"#);
        out.push_str(&self.port.to_string());
        out.push_str(r#","tls":""#);
        out.push_str(self.tls.as_str());
        out.push('"');
        if self.end_to_end {
            out.push_str(r#","endToEnd":true"#);
        }
        if let Some(token) = &self.token {
            out.push_str(r#","token":"#);
            json_string(&mut out, token.expose());
        }
        out.push('}');
        out
    }

    /// The version this `connect` asks for, once it follows the rules of
    /// the format: a `v` the format has; the version of the subprotocol the
    /// WebSocket agreed on, if it agreed on one; `endToEnd` only from v2
    /// and never with `tls: "none"`. `Err` is the `PROTOCOL_ERROR` message.
    pub fn check(&self, negotiated: Option<Version>) -> Result<Version, String> {
        let Some(version) = Version::from_number(self.v) else {
            return Err(format!("unsupported wire format version {}", self.v));
        };
        if let Some(negotiated) = negotiated
            && negotiated != version
        {
            return Err(format!("wire format version {} on a {} session", self.v, negotiated.subprotocol()));
        }
        if self.end_to_end && version < Version::V2 {
            return Err("endToEnd needs wire format version 2".into());
        }
        if self.end_to_end && self.tls == TlsMode::None {
            return Err(END_TO_END_WITHOUT_TLS.into());
        }
        Ok(version)
    }
}

/// `{"type":"stls"}`: bridge-side TLS only (in an end-to-end session it
/// is a `PROTOCOL_ERROR`).
pub const STLS_MESSAGE: &str = r#"{"type":"stls"}"#;

/// A control message from the client. Unknown fields are ignored so that
/// later minor additions do not break older bridges; unknown types are
/// errors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Deserialize), serde(tag = "type", rename_all = "lowercase"))]
pub enum ClientMessage {
    Connect(Connect),
    Stls,
}

#[cfg(feature = "serde")]
impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// What the bridge tells the client about its TLS session with the server
/// (bridge-side TLS; the client's own engine reports the same).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// The IANA-style rustls name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    pub certificate: CertificateInfo,
}

/// The server's leaf certificate, as the client shows it to the user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct CertificateInfo {
    /// Distinguished name, e.g. `CN=localhost`.
    pub subject: String,
    pub issuer: String,
    /// RFC 3339, UTC: `2027-11-27T15:00:00Z`.
    #[cfg_attr(feature = "serde", serde(rename = "notAfter"))]
    pub not_after: String,
}

/// A control message from the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(tag = "type", rename_all = "lowercase"))]
pub enum ServerMessage {
    /// The server is connected (and, bridge-side implicit TLS, the
    /// handshake done). `endToEnd` is written only when true: a v1 client
    /// gets exactly v1's message.
    Connected {
        tls: Option<TlsInfo>,
        #[cfg_attr(feature = "serde", serde(default, rename = "endToEnd", skip_serializing_if = "is_false"))]
        end_to_end: bool,
    },
    /// The STLS upgrade is done. `discarded`: bytes the server sent after
    /// its `+OK` and before the handshake, dropped unread (a client reports
    /// them as a deviation).
    Tls { tls: TlsInfo, discarded: usize },
    /// The session ends: a close with [`ErrorCode::close_code`] follows
    /// (or 4429 for limits, 1009 for a message too big: see [`close`]).
    /// `code` is an [`ErrorCode`]'s name; a client reads one it does not
    /// know (a newer bridge's) as `BRIDGE_REJECTED`.
    Error { code: String, message: String },
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
        ServerMessage::Error { code: code.as_str().into(), message: message.into() }
    }
}

#[cfg(feature = "serde")]
fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(feature = "serde")]
impl ServerMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("control messages always serialise")
    }

    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// The message types, as the `type` field writes them.
pub mod kind {
    pub const CONNECT: &str = "connect";
    pub const STLS: &str = "stls";
    pub const CONNECTED: &str = "connected";
    pub const TLS: &str = "tls";
    pub const ERROR: &str = "error";
}

/// The error codes a session can end with (the `code` of an `error`
/// message). The client turns each into the `Pop3Error` code of the same
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Policy, token or limits said no, or the bridge relays end to end
    /// only. Close 4403 (4429 for limits).
    BridgeRejected,
    /// Malformed, missing or unexpected control message, or (end to end)
    /// plaintext before TLS. Close 4400.
    ProtocolError,
    /// TCP connect failed or timed out, or an allowed name did not resolve.
    /// Close 4502.
    ConnectFailed,
    /// Bridge-side TLS: handshake or certificate verification failed, or
    /// the STLS exchange went wrong. Close 4525.
    TlsFailed,
    /// The session was idle too long, lasted too long, or the client
    /// stopped answering pings. Close 4408.
    Timeout,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 5] = [
        ErrorCode::BridgeRejected,
        ErrorCode::ProtocolError,
        ErrorCode::ConnectFailed,
        ErrorCode::TlsFailed,
        ErrorCode::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BridgeRejected => "BRIDGE_REJECTED",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::ConnectFailed => "CONNECT_FAILED",
            ErrorCode::TlsFailed => "TLS_FAILED",
            ErrorCode::Timeout => "TIMEOUT",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == s)
    }

    /// The WebSocket close code that follows the `error` message.
    pub fn close_code(self) -> u16 {
        match self {
            ErrorCode::BridgeRejected => close::REJECTED,
            ErrorCode::ProtocolError => close::PROTOCOL_ERROR,
            ErrorCode::ConnectFailed => close::CONNECT_FAILED,
            ErrorCode::TlsFailed => close::TLS_FAILED,
            ErrorCode::Timeout => close::TIMEOUT,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a TCP connection to the server failed, in the words the bridge
/// and the client's direct transport both use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    /// The name did not resolve.
    NoSuchHost,
    TimedOut,
    /// Anything else, as the system said it.
    Other(String),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Refused => f.write_str("connection refused"),
            ConnectFailure::NoSuchHost => f.write_str("host name did not resolve"),
            ConnectFailure::TimedOut => f.write_str("connection timed out"),
            ConnectFailure::Other(why) => write!(f, "connection failed: {why}"),
        }
    }
}

/// Why a TLS handshake failed, in one stable word (`Pop3Error.reason`)
/// and a sentence: the same words whether TLS ends in the bridge, in the
/// client's engine or in Node's TLS (the direct transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReason {
    Untrusted,
    Expired,
    NotYetValid,
    WrongName,
    BadCertificate,
    Alert,
    Protocol,
    /// The connection ended during the handshake (or without close_notify).
    Truncated,
}

impl TlsReason {
    pub const ALL: [TlsReason; 8] = [
        TlsReason::Untrusted,
        TlsReason::Expired,
        TlsReason::NotYetValid,
        TlsReason::WrongName,
        TlsReason::BadCertificate,
        TlsReason::Alert,
        TlsReason::Protocol,
        TlsReason::Truncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsReason::Untrusted => "untrusted",
            TlsReason::Expired => "expired",
            TlsReason::NotYetValid => "not-yet-valid",
            TlsReason::WrongName => "wrong-name",
            TlsReason::BadCertificate => "bad-certificate",
            TlsReason::Alert => "alert",
            TlsReason::Protocol => "protocol",
            TlsReason::Truncated => "truncated",
        }
    }

    pub fn parse(s: &str) -> Option<TlsReason> {
        TlsReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The sentence when nothing more is known (the bridge's words).
    pub fn sentence(self) -> &'static str {
        match self {
            TlsReason::Untrusted => "certificate not trusted (unknown issuer)",
            TlsReason::Expired => "certificate expired",
            TlsReason::NotYetValid => "certificate not yet valid",
            TlsReason::WrongName => "certificate not valid for the host name",
            TlsReason::BadCertificate => "invalid certificate",
            TlsReason::Alert => "server sent a TLS alert",
            TlsReason::Protocol => "TLS handshake failed",
            TlsReason::Truncated => "server closed the connection during the TLS handshake",
        }
    }
}

/// The WebSocket close codes a bridge ends a session with.
pub mod close {
    /// The server closed the connection (or the client did).
    pub const NORMAL: u16 = 1000;
    /// The bridge is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A message or frame larger than the bridge's `max_message_size`
    /// (after a `PROTOCOL_ERROR` message).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The connection to the server failed while relaying.
    pub const UPSTREAM_ERROR: u16 = 1011;
    /// `PROTOCOL_ERROR`.
    pub const PROTOCOL_ERROR: u16 = 4400;
    /// `BRIDGE_REJECTED` by policy, token, or end-to-end-only.
    pub const REJECTED: u16 = 4403;
    /// `TIMEOUT`.
    pub const TIMEOUT: u16 = 4408;
    /// `BRIDGE_REJECTED` by a limit (sessions, rates, bytes).
    pub const LIMITED: u16 = 4429;
    /// `CONNECT_FAILED`.
    pub const CONNECT_FAILED: u16 = 4502;
    /// `TLS_FAILED`.
    pub const TLS_FAILED: u16 = 4525;
}

/// `BRIDGE_REJECTED` by policy or token: the only thing the bridge says,
/// so that a refusal tells nothing about the host or the token.
pub const NOT_ALLOWED: &str = "not allowed";

/// `BRIDGE_REJECTED` (4403) by a bridge that relays end to end only, to a
/// `connect` without `endToEnd: true`. Not a secret, unlike a policy
/// refusal: the client may offer to turn end-to-end TLS on.
pub const END_TO_END_REQUIRED: &str = "end-to-end TLS required";

/// `PROTOCOL_ERROR` (4400) in an end-to-end session whose client sent
/// something else than the bridge lets through before TLS: for
/// `implicit`, a TLS ClientHello first (its SNI the host when the host is
/// a name; none for an IP address); for `starttls`, only the lines
/// `CAPA\r\n` and `STLS\r\n` and, after `STLS`, that ClientHello; from the
/// ClientHello on, well-formed TLS records only. The offending bytes never
/// reach the server.
pub const PLAINTEXT_BEFORE_TLS: &str = "plaintext not allowed before TLS";

/// `PROTOCOL_ERROR` (4400): `endToEnd: true` with `tls: "none"`.
pub const END_TO_END_WITHOUT_TLS: &str = "endToEnd needs tls implicit or starttls";

/// `PROTOCOL_ERROR` (4400): `{"type":"stls"}` in an end-to-end session
/// (the client writes `STLS` itself there).
pub const STLS_IN_END_TO_END: &str = "stls is the client's own in an end-to-end session";

/// The client's own `UNSUPPORTED` failure when it needs end-to-end TLS and
/// the bridge agreed on v1 only (an older bridge).
pub const V1_NO_END_TO_END: &str = "this bridge does not relay end-to-end TLS (wire v1)";

/// Appends `s` as a JSON string (quotes, escapes, control characters as
/// `\u00XX`).
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(v: u32, tls: TlsMode, end_to_end: bool) -> Connect {
        Connect { v, host: "pop.example.com".into(), port: 995, tls, end_to_end, token: None }
    }

    #[test]
    fn the_bridge_picks_the_newest_subprotocol_offered() {
        let pick = |offer: &[&str]| Version::choose(offer.iter().map(|s| s.as_bytes()));
        assert_eq!(pick(&SUBPROTOCOLS), Some(Version::V2));
        assert_eq!(pick(&["pop3-bridge.v1", "pop3-bridge.v2"]), Some(Version::V2));
        assert_eq!(pick(&["pop3-bridge.v1"]), Some(Version::V1));
        assert_eq!(pick(&["chat", "pop3-bridge.v1"]), Some(Version::V1));
        assert_eq!(pick(&["pop3-bridge.v3", "POP3-BRIDGE.V2"]), None);
        assert_eq!(pick(&[]), None);
        assert_eq!(Version::from_number(2).map(Version::subprotocol), Some("pop3-bridge.v2"));
        assert_eq!(Version::from_number(0), None);
        assert_eq!(version_of("pop3-bridge.v2"), 2);
        assert_eq!((version_of("pop3-bridge.v1"), version_of("")), (1, 1));
    }

    #[test]
    fn a_v1_connect_is_written_as_it_always_was() {
        let mut c = connect(1, TlsMode::Implicit, false);
        c.token = Some(Token::new("s3cret"));
        assert_eq!(
            c.to_json(),
            r#"{"type":"connect","v":1,"host":"pop.example.com","port":995,"tls":"implicit","token":"s3cret"}"#
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let e2e = Connect { host: "a\"b\\c\u{1}é".into(), ..connect(2, TlsMode::Starttls, true) };
        assert_eq!(
            e2e.to_json(),
            r#"{"type":"connect","v":2,"host":"a\"b\\c\u0001é","port":995,"tls":"starttls","endToEnd":true}"#
        );
    }

    #[test]
    fn connect_rules_of_v2() {
        let v2 = Some(Version::V2);
        assert_eq!(connect(1, TlsMode::None, false).check(None), Ok(Version::V1));
        assert_eq!(connect(2, TlsMode::Implicit, true).check(v2), Ok(Version::V2));
        assert_eq!(connect(2, TlsMode::Starttls, true).check(None), Ok(Version::V2));
        assert_eq!(connect(2, TlsMode::None, false).check(v2), Ok(Version::V2));
        assert_eq!(
            connect(2, TlsMode::None, true).check(v2),
            Err("endToEnd needs tls implicit or starttls".into())
        );
        assert_eq!(
            connect(1, TlsMode::Implicit, true).check(None),
            Err("endToEnd needs wire format version 2".into())
        );
        assert_eq!(
            connect(2, TlsMode::Implicit, true).check(Some(Version::V1)),
            Err("wire format version 2 on a pop3-bridge.v1 session".into())
        );
        assert_eq!(
            connect(3, TlsMode::Implicit, false).check(None),
            Err("unsupported wire format version 3".into())
        );
    }

    #[test]
    fn error_codes_and_their_close_codes() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        let closes: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.close_code()).collect();
        assert_eq!(closes, [4403, 4400, 4502, 4525, 4408]);
        assert_eq!(ErrorCode::parse("UNSUPPORTED"), None);
        for mode in TlsMode::ALL {
            assert_eq!(TlsMode::parse(&mode.to_string()), Some(mode));
        }
    }

    #[cfg(feature = "serde")]
    mod json {
        use super::*;

        #[test]
        fn parses_connect_v1_and_v2() {
            let m = ClientMessage::parse(
                r#"{"type":"connect","v":1,"host":"pop.example.com","port":995,"tls":"implicit","token":"s3cret"}"#,
            )
            .unwrap();
            let ClientMessage::Connect(c) = m else { panic!("not connect") };
            assert_eq!((c.v, c.host.as_str(), c.port, c.end_to_end), (1, "pop.example.com", 995, false));
            assert_eq!(c.tls, TlsMode::Implicit);
            assert_eq!(c.token.as_ref().map(Token::expose), Some("s3cret"));
            assert!(!format!("{c:?}").contains("s3cret"));
            let m = ClientMessage::parse(
                r#"{"type":"connect","v":2,"host":"h","port":110,"tls":"starttls","endToEnd":true}"#,
            )
            .unwrap();
            let ClientMessage::Connect(c) = m else { panic!("not connect") };
            assert!(c.end_to_end && c.tls == TlsMode::Starttls && c.token.is_none());
            assert!(matches!(ClientMessage::parse(STLS_MESSAGE), Ok(ClientMessage::Stls)));
        }

        #[test]
        fn what_to_json_writes_parses_back() {
            for c in [
                connect(1, TlsMode::None, false),
                Connect { token: Some(Token::new("t\"o\\k\n")), ..connect(2, TlsMode::Implicit, true) },
                Connect { host: "\u{7f}\u{0}x".into(), ..connect(2, TlsMode::Starttls, false) },
            ] {
                assert_eq!(ClientMessage::parse(&c.to_json()).unwrap(), ClientMessage::Connect(c));
            }
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
                r#"{"type":"connect","v":2,"host":"h","port":110,"tls":"starttls","endToEnd":"yes"}"#,
            ] {
                assert!(ClientMessage::parse(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn serialises_server_messages_and_reads_them_back() {
            let connected = |end_to_end| ServerMessage::Connected { tls: None, end_to_end }.to_json();
            assert_eq!(connected(false), r#"{"type":"connected","tls":null}"#);
            assert_eq!(connected(true), r#"{"type":"connected","tls":null,"endToEnd":true}"#);
            let info = TlsInfo {
                protocol: "TLSv1.3".into(),
                cipher: "TLS13_AES_256_GCM_SHA384".into(),
                certificate: CertificateInfo {
                    subject: "CN=localhost".into(),
                    issuer: "CN=Test CA".into(),
                    not_after: "2027-11-27T15:00:00Z".into(),
                },
            };
            let tls = ServerMessage::Tls { tls: info.clone(), discarded: 14 };
            assert_eq!(ServerMessage::parse(&tls.to_json()).unwrap(), tls);
            assert_eq!(
                ServerMessage::parse(&connected(false)).unwrap(),
                ServerMessage::Connected { tls: None, end_to_end: false }
            );
            assert_eq!(
                tls.to_json(),
                r#"{"type":"tls","tls":{"protocol":"TLSv1.3","cipher":"TLS13_AES_256_GCM_SHA384","certificate":{"subject":"CN=localhost","issuer":"CN=Test CA","notAfter":"2027-11-27T15:00:00Z"}},"discarded":14}"#
            );
            assert_eq!(
                ServerMessage::error(ErrorCode::ProtocolError, PLAINTEXT_BEFORE_TLS).to_json(),
                r#"{"type":"error","code":"PROTOCOL_ERROR","message":"plaintext not allowed before TLS"}"#
            );
            // The `type` names and codes the client compares against.
            for (json, kind) in [
                (connected(false), kind::CONNECTED),
                (ServerMessage::Tls { tls: info.clone(), discarded: 0 }.to_json(), kind::TLS),
            ] {
                assert!(json.starts_with(&format!(r#"{{"type":"{kind}""#)), "{json}");
            }
            for code in ErrorCode::ALL {
                let json = ServerMessage::error(code, "m").to_json();
                assert!(
                    json.starts_with(&format!(r#"{{"type":"{}","code":"{code}""#, kind::ERROR)),
                    "{json}"
                );
            }
        }
    }
}
