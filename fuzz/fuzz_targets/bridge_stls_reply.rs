//! ws-bridge's reading of the server's answer to STLS
//! (`upstream::StlsReplyReader`): the bytes after `STLS\r\n`, in reads of
//! any size. The first input byte is the read size (0: one read).
//!
//! Checks: no panic; whatever the reads, the line is the same: the input
//! up to its first LF when that LF is within `MAX_STLS_REPLY` bytes, else
//! "too long" (or, when the input ends first, everything, handed back as
//! cut short); the bytes after the line that came in its read follow it
//! unchanged, so nothing the bridge discards or forwards is lost or made up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_bridge::upstream::{MAX_STLS_REPLY, StlsReply, StlsReplyReader};

#[derive(Debug, PartialEq)]
enum Outcome {
    Line(Vec<u8>),
    TooLong,
    Closed(Vec<u8>),
}

/// Feeds `input` in reads of `size` bytes (never more than the reader's
/// room, as `send_stls` reads); returns the outcome and the rest.
fn run(input: &[u8], size: usize) -> (Outcome, Vec<u8>) {
    let mut reader = StlsReplyReader::default();
    let mut at = 0;
    while at < input.len() {
        let n = size.min(reader.room()).min(input.len() - at);
        let read = &input[at..at + n];
        at += n;
        match reader.feed(read) {
            Ok(None) => {}
            Ok(Some(StlsReply::Line { line, rest })) => return (Outcome::Line(line), rest),
            Ok(Some(StlsReply::Closed(_))) => unreachable!("feed never reports a close"),
            Err(_) => return (Outcome::TooLong, Vec::new()),
        }
    }
    match reader.closed() {
        StlsReply::Closed(partial) => (Outcome::Closed(partial), Vec::new()),
        StlsReply::Line { .. } => unreachable!("closed() is never a line"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, input)) = data.split_first() else { return };
    let size = if size == 0 { usize::MAX } else { usize::from(size) };

    let expected = match input.iter().position(|b| *b == b'\n') {
        Some(lf) if lf < MAX_STLS_REPLY => Outcome::Line(input[..=lf].to_vec()),
        _ if input.len() >= MAX_STLS_REPLY => Outcome::TooLong,
        _ => Outcome::Closed(input.to_vec()),
    };
    let (outcome, rest) = run(input, size);
    assert_eq!(outcome, expected, "read size {size}");
    if let Outcome::Line(line) = &outcome {
        let after = &input[line.len()..];
        assert!(after.starts_with(&rest), "the rest is not what followed the line");
        assert!(rest.len() < size.min(MAX_STLS_REPLY), "the rest is bigger than one read");
    }
    // In one read larger than the limit, the answer is the same.
    let (whole, _) = {
        let mut reader = StlsReplyReader::default();
        match reader.feed(input) {
            Ok(Some(StlsReply::Line { line, rest })) => (Outcome::Line(line), rest),
            Ok(_) => (Outcome::Closed(input.to_vec()), Vec::new()),
            Err(_) => (Outcome::TooLong, Vec::new()),
        }
    };
    assert_eq!(whole, expected, "one read of {} bytes", input.len());
});
