//! The core's one error type. Each variant says what went wrong; the JS face
//! maps them one-to-one onto `Pop3Error.code`, whose list ([`ErrorCode`])
//! is defined here too.

use std::fmt;

/// What went wrong, as a program tests it: `Pop3Error.code` in JavaScript.
/// The JS constants (`pop3-wasm/js/error-codes.js`) and the TypeScript type
/// are generated from this list (`tests/js_codes.rs` keeps them current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BridgeUnreachable,
    BridgeRejected,
    ConnectFailed,
    TlsFailed,
    AuthFailed,
    ServerError,
    ProtocolError,
    Timeout,
    ConnectionClosed,
    InvalidState,
    Unsupported,
    InsecureAuthRefused,
    InvalidArgument,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::BridgeUnreachable,
        ErrorCode::BridgeRejected,
        ErrorCode::ConnectFailed,
        ErrorCode::TlsFailed,
        ErrorCode::AuthFailed,
        ErrorCode::ServerError,
        ErrorCode::ProtocolError,
        ErrorCode::Timeout,
        ErrorCode::ConnectionClosed,
        ErrorCode::InvalidState,
        ErrorCode::Unsupported,
        ErrorCode::InsecureAuthRefused,
        ErrorCode::InvalidArgument,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BridgeUnreachable => "BRIDGE_UNREACHABLE",
            ErrorCode::BridgeRejected => "BRIDGE_REJECTED",
            ErrorCode::ConnectFailed => "CONNECT_FAILED",
            ErrorCode::TlsFailed => "TLS_FAILED",
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::ServerError => "SERVER_ERROR",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::ConnectionClosed => "CONNECTION_CLOSED",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::InsecureAuthRefused => "INSECURE_AUTH_REFUSED",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// One line on when it happens (the generated JS and TypeScript carry it).
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::BridgeUnreachable => "The WebSocket to the bridge could not be opened.",
            ErrorCode::BridgeRejected => {
                "The bridge refused the session: policy, origin, token, limits, or end-to-end TLS required."
            }
            ErrorCode::ConnectFailed => "The TCP connection to the server failed.",
            ErrorCode::TlsFailed => {
                "TLS to the server failed (`reason` says why: untrusted, expired, wrong-name, …)."
            }
            ErrorCode::AuthFailed => "The server refused the credentials, or the SASL exchange failed.",
            ErrorCode::ServerError => "The server answered -ERR (`respCode`, `serverText`).",
            ErrorCode::ProtocolError => "The server (or the bridge) sent something that is not the protocol.",
            ErrorCode::Timeout => "No answer within the deadline; the session was dropped.",
            ErrorCode::ConnectionClosed => "The connection ended; nothing marked was deleted.",
            ErrorCode::InvalidState => "The command is not valid in this state; nothing was sent.",
            ErrorCode::Unsupported => "The server, the bridge or this runtime does not offer what was asked.",
            ErrorCode::InsecureAuthRefused => {
                "A readable password was not sent over a connection without TLS."
            }
            ErrorCode::InvalidArgument => "An argument or option is not valid; nothing was sent.",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<crate::wire::ErrorCode> for ErrorCode {
    fn from(c: crate::wire::ErrorCode) -> ErrorCode {
        use crate::wire::ErrorCode as W;
        match c {
            W::BridgeRejected => ErrorCode::BridgeRejected,
            W::ProtocolError => ErrorCode::ProtocolError,
            W::ConnectFailed => ErrorCode::ConnectFailed,
            W::TlsFailed => ErrorCode::TlsFailed,
            W::Timeout => ErrorCode::Timeout,
        }
    }
}

/// What the server said with `-ERR` (or an unexpected `+OK`), kept for the
/// caller: the RFC 2449 response code and the human text after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub resp_code: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The command is not valid in the session's current state; nothing was sent.
    InvalidState { command: &'static str, state: &'static str },
    /// An argument cannot be sent (CR/LF/NUL in a line, message number 0, …);
    /// nothing was sent.
    InvalidArgument(String),
    /// The server answered `-ERR` to a command.
    Server(ServerReply),
    /// The server refused the credentials, or the SASL exchange failed
    /// (including a SCRAM server signature that does not verify).
    AuthFailed { reply: Option<ServerReply>, detail: String },
    /// The server sent something that is not POP3. Fatal: the session is over.
    Protocol(String),
    /// The connection ended (or was dropped by the caller) before the answer
    /// was complete. Fatal.
    ConnectionClosed(String),
    /// The server does not offer what the caller asked for.
    Unsupported(String),
    /// TLS could not start: the answer to STLS was neither `+OK` nor
    /// `-ERR` (see [`super::stls_verdict`]). Fatal.
    Tls(String),
}

impl Error {
    /// A multi-line answer grew past `max` octets without its terminator
    /// (`Options::max_body`): fatal, so that a hostile server cannot fill
    /// the client's memory.
    pub fn body_too_long(max: usize) -> Error {
        Error::Protocol(format!(
            "multi-line answer longer than {max} octets without its end (read big messages as a stream)"
        ))
    }

    /// The `Pop3Error.code` this error becomes in JavaScript.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidState { .. } => ErrorCode::InvalidState,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Server(_) => ErrorCode::ServerError,
            Error::AuthFailed { .. } => ErrorCode::AuthFailed,
            Error::Protocol(_) => ErrorCode::ProtocolError,
            Error::ConnectionClosed(_) => ErrorCode::ConnectionClosed,
            Error::Unsupported(_) => ErrorCode::Unsupported,
            Error::Tls(_) => ErrorCode::TlsFailed,
        }
    }

    /// The server's reply behind this error, when there was one.
    pub fn server_reply(&self) -> Option<&ServerReply> {
        match self {
            Error::Server(r) => Some(r),
            Error::AuthFailed { reply, .. } => reply.as_ref(),
            _ => None,
        }
    }

    /// Fatal errors end the session: every later call returns them again.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Protocol(_) | Error::ConnectionClosed(_) | Error::Tls(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidState { command, state } => {
                write!(f, "{command} is not allowed in the {state} state; nothing was sent")
            }
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Server(r) => match &r.resp_code {
                Some(code) => write!(f, "server error [{code}]: {}", r.text),
                None => write!(f, "server error: {}", r.text),
            },
            Error::AuthFailed { reply: Some(r), detail } => {
                match &r.resp_code {
                    Some(code) => write!(f, "authentication failed [{code}]: {}", r.text)?,
                    None => write!(f, "authentication failed: {}", r.text)?,
                }
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            Error::AuthFailed { reply: None, detail } => {
                write!(f, "authentication failed: {detail}")
            }
            Error::Protocol(why) => write!(f, "protocol error: {why}"),
            Error::ConnectionClosed(why) => write!(f, "connection closed: {why}"),
            Error::Unsupported(why) => write!(f, "unsupported: {why}"),
            Error::Tls(why) => write!(f, "TLS failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}
