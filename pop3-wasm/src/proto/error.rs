//! The core's one error type. Each variant says what went wrong; the JS face
//! maps them one-to-one onto `Pop3Error.code`.

use std::fmt;

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
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidState { .. } => "INVALID_STATE",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::Server(_) => "SERVER_ERROR",
            Error::AuthFailed { .. } => "AUTH_FAILED",
            Error::Protocol(_) => "PROTOCOL_ERROR",
            Error::ConnectionClosed(_) => "CONNECTION_CLOSED",
            Error::Unsupported(_) => "UNSUPPORTED",
            Error::Tls(_) => "TLS_FAILED",
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
