//! RFC 2595 § 4: the server's answer to STLS, judged by one rule for
//! every reader of it: the core (its own session), ws-bridge (which writes
//! `STLS` itself and must decide whether to start the handshake) and the
//! direct Node transport (through the wasm module's `stlsReply`).
//!
//! ```text
//!   bytes after "STLS\r\n" ──► stls_verdict ──► Incomplete           (read more)
//!                                          ├──► Proceed { line_len } (+OK, any case: handshake;
//!                                          │                          whatever follows the line is dropped)
//!                                          ├──► Refused { line_len } (-ERR: plain text goes on)
//!                                          └──► Unusable { .. }      (anything else, or no line end
//!                                                                     in MAX_STLS_REPLY octets: the
//!                                                                     session ends, TLS_FAILED)
//! ```
//!
//! The status is read exactly as any other status line is
//! ([`super::response::parse_line`]): `+ok` is `+OK`, as everywhere else.

use super::deviation::Deviations;
use super::response::{Line, Status, excerpt, parse_line};

/// The longest answer to STLS accepted, CRLF included.
pub const MAX_STLS_REPLY: usize = 4096;

/// What the bytes the server sent after `STLS\r\n` say so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StlsVerdict {
    /// No complete line yet: read more.
    Incomplete,
    /// `+OK`: do the TLS handshake. The reply is the first `line_len`
    /// octets; anything after them was sent before TLS and is discarded.
    Proceed { line_len: usize },
    /// `-ERR`: no TLS; the session goes on in plain text.
    Refused { line_len: usize },
    /// Neither: the session cannot go on (`line_len` when there was a line).
    Unusable { line_len: Option<usize>, reason: String },
}

impl StlsVerdict {
    /// The verdict's name, as the wasm export reports it.
    pub fn name(&self) -> &'static str {
        match self {
            StlsVerdict::Incomplete => "incomplete",
            StlsVerdict::Proceed { .. } => "proceed",
            StlsVerdict::Refused { .. } => "refused",
            StlsVerdict::Unusable { .. } => "unusable",
        }
    }

    /// The length of the reply line, CRLF included, when there is one.
    pub fn line_len(&self) -> Option<usize> {
        match self {
            StlsVerdict::Incomplete => None,
            StlsVerdict::Proceed { line_len } | StlsVerdict::Refused { line_len } => Some(*line_len),
            StlsVerdict::Unusable { line_len, .. } => *line_len,
        }
    }
}

/// Judges `received`: everything the server sent after `STLS\r\n`, from
/// its first byte (more may follow the line; only the line is read).
pub fn stls_verdict(received: &[u8]) -> StlsVerdict {
    let window = &received[..received.len().min(MAX_STLS_REPLY)];
    let Some(lf) = window.iter().position(|b| *b == b'\n') else {
        if received.len() >= MAX_STLS_REPLY {
            return StlsVerdict::Unusable {
                line_len: None,
                reason: format!("the server's answer to STLS has no line end within {MAX_STLS_REPLY} octets"),
            };
        }
        return StlsVerdict::Incomplete;
    };
    let line_len = lf + 1;
    let line = &received[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match parse_line(line, false, &mut Deviations::default()) {
        Ok(Line::Status(s)) if s.status == Status::Ok => StlsVerdict::Proceed { line_len },
        Ok(Line::Status(_)) => StlsVerdict::Refused { line_len },
        Ok(Line::Continuation(_)) | Err(_) => StlsVerdict::Unusable {
            line_len: Some(line_len),
            reason: format!("the server's answer to STLS is neither +OK nor -ERR: \"{}\"", excerpt(line, 80)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_in_any_case_proceeds_and_err_refuses() {
        assert_eq!(stls_verdict(b"+OK Begin TLS\r\n"), StlsVerdict::Proceed { line_len: 15 });
        assert_eq!(stls_verdict(b"+ok begin TLS\r\nINJECTED"), StlsVerdict::Proceed { line_len: 15 });
        assert_eq!(stls_verdict(b"+OK\n"), StlsVerdict::Proceed { line_len: 4 });
        assert_eq!(stls_verdict(b"-ERR not now\r\n+OK\r\n"), StlsVerdict::Refused { line_len: 14 });
        assert_eq!(stls_verdict(b"-err [SYS/TEMP] later\r\n"), StlsVerdict::Refused { line_len: 23 });
    }

    #[test]
    fn an_unfinished_line_waits_until_the_limit() {
        assert_eq!(stls_verdict(b""), StlsVerdict::Incomplete);
        assert_eq!(stls_verdict(b"+OK Begin"), StlsVerdict::Incomplete);
        assert_eq!(stls_verdict(&vec![b'x'; MAX_STLS_REPLY - 1]), StlsVerdict::Incomplete);
        let too_long = stls_verdict(&vec![b'x'; MAX_STLS_REPLY]);
        assert!(matches!(too_long, StlsVerdict::Unusable { line_len: None, .. }), "{too_long:?}");
        // The longest line accepted ends exactly at the limit.
        let mut longest = b"+OK ".to_vec();
        longest.resize(MAX_STLS_REPLY - 1, b'x');
        longest.push(b'\n');
        assert_eq!(stls_verdict(&longest), StlsVerdict::Proceed { line_len: MAX_STLS_REPLY });
        longest.insert(5, b'x');
        assert!(matches!(stls_verdict(&longest), StlsVerdict::Unusable { line_len: None, .. }));
    }

    #[test]
    fn anything_else_is_unusable_and_says_what_came() {
        match stls_verdict(b"HTTP/1.1 400 Bad Request\r\n\r\n") {
            StlsVerdict::Unusable { line_len: Some(26), reason } => {
                assert_eq!(
                    reason,
                    "the server's answer to STLS is neither +OK nor -ERR: \"HTTP/1.1 400 Bad Request\""
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(stls_verdict(b"+ \r\n"), StlsVerdict::Unusable { line_len: Some(4), .. }));
        assert!(matches!(stls_verdict(b"\r\n"), StlsVerdict::Unusable { line_len: Some(2), .. }));
    }
}
