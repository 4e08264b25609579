//! Multi-line bodies: terminator detection and dot-unstuffing, byte by byte,
//! so the result cannot depend on how the input was split into chunks.
//!
//! ```text
//!   wire:    "..leading dot\r\nbody\r\n.\r\n"
//!   decoded: ".leading dot\r\nbody\r\n"        (terminator removed)
//! ```
//!
//! Everything that is not a line-leading dot passes through untouched: 8-bit
//! bytes, invalid UTF-8, NULs, bare CRs, and the line endings as sent.

use super::deviation::{Deviation, Deviations};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a line.
    LineStart,
    /// Inside a line.
    InLine,
    /// A line started with `.`, which was removed; the next byte decides.
    Dot,
    /// `.` then CR at the start of a line: the terminator if LF follows.
    DotCr,
    /// The terminator has been seen.
    Done,
}

#[derive(Debug, Clone)]
pub struct BodyDecoder {
    at: At,
    /// Wire octets consumed so far, terminator included.
    wire_len: u64,
}

impl Default for BodyDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyDecoder {
    pub fn new() -> Self {
        Self { at: At::LineStart, wire_len: 0 }
    }

    pub fn is_done(&self) -> bool {
        self.at == At::Done
    }

    pub fn wire_len(&self) -> u64 {
        self.wire_len
    }

    /// Decodes as much of `input` as belongs to the body, appending the
    /// unstuffed bytes to `out`. Returns how many input bytes were consumed:
    /// all of them, or fewer when the terminator ended the body (the rest
    /// belongs to the next response).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, dev: &mut Deviations) -> usize {
        let mut i = 0;
        while i < input.len() && self.at != At::Done {
            match self.at {
                At::InLine => {
                    // Fast path: copy up to and including the next LF.
                    let rest = &input[i..];
                    match memchr_lf(rest) {
                        Some(n) => {
                            out.extend_from_slice(&rest[..=n]);
                            i += n + 1;
                            self.at = At::LineStart;
                        }
                        None => {
                            out.extend_from_slice(rest);
                            i = input.len();
                        }
                    }
                    continue;
                }
                At::LineStart => {
                    let b = input[i];
                    i += 1;
                    if b == b'.' {
                        self.at = At::Dot;
                    } else {
                        out.push(b);
                        self.at = if b == b'\n' { At::LineStart } else { At::InLine };
                    }
                }
                At::Dot => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' => self.at = At::DotCr,
                        b'\n' => {
                            dev.record(Deviation::BareLf);
                            self.at = At::Done;
                        }
                        b'.' => {
                            out.push(b'.');
                            self.at = At::InLine;
                        }
                        _ => {
                            dev.record(Deviation::UnstuffedDot);
                            out.push(b);
                            self.at = At::InLine;
                        }
                    }
                }
                At::DotCr => {
                    let b = input[i];
                    if b == b'\n' {
                        i += 1;
                        self.at = At::Done;
                    } else {
                        // ".\r" then something else: the dot was stuffing
                        // for a line that holds a bare CR. Keep the CR and
                        // read the byte again as part of the line.
                        dev.record(Deviation::UnstuffedDot);
                        out.push(b'\r');
                        self.at = At::InLine;
                    }
                }
                At::Done => unreachable!(),
            }
        }
        self.wire_len += i as u64;
        i
    }
}

fn memchr_lf(s: &[u8]) -> Option<usize> {
    s.iter().position(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(wire: &[u8], chunk: usize) -> (Vec<u8>, usize, Deviations) {
        let mut d = BodyDecoder::new();
        let mut out = Vec::new();
        let mut dev = Deviations::default();
        let mut used = 0;
        for piece in wire.chunks(chunk) {
            if d.is_done() {
                break;
            }
            used += d.decode(piece, &mut out, &mut dev);
        }
        assert!(d.is_done(), "terminator not found");
        (out, used, dev)
    }

    #[test]
    fn unstuffs_and_stops_at_terminator_for_every_chunk_size() {
        let wire: &[u8] = b"..leading\r\n..\r\n\r\n...\r\n\xff\xfe\x00 bytes\r\n.\r\n+OK next";
        let expected: &[u8] = b".leading\r\n.\r\n\r\n..\r\n\xff\xfe\x00 bytes\r\n";
        for chunk in 1..=wire.len() {
            let (out, used, dev) = decode_all(wire, chunk);
            assert_eq!(out, expected, "chunk size {chunk}");
            assert_eq!(&wire[used..], b"+OK next");
            assert!(dev.as_slice().is_empty());
        }
    }

    #[test]
    fn a_line_that_is_only_a_dot_ends_the_body() {
        let (out, used, _) = decode_all(b"..leading\r\n.\r\nafter\r\n", 7);
        assert_eq!(out, b".leading\r\n");
        assert_eq!(used, 14);
    }

    #[test]
    fn empty_body() {
        let (out, used, _) = decode_all(b".\r\n", 1);
        assert!(out.is_empty());
        assert_eq!(used, 3);
    }

    #[test]
    fn bare_lf_terminator_is_tolerated_and_recorded() {
        let (out, _, dev) = decode_all(b"line\n.\n", 3);
        assert_eq!(out, b"line\n");
        assert_eq!(dev.as_slice(), &[Deviation::BareLf]);
    }

    #[test]
    fn unstuffed_leading_dot_loses_the_dot_as_rfc1939_says() {
        let (out, _, dev) = decode_all(b".hidden\r\n.\r\n", 1);
        assert_eq!(out, b"hidden\r\n");
        assert_eq!(dev.as_slice(), &[Deviation::UnstuffedDot]);
    }

    #[test]
    fn dot_cr_not_followed_by_lf() {
        let (out, _, dev) = decode_all(b".\rx\r\n.\r\n", 1);
        assert_eq!(out, b"\rx\r\n");
        assert_eq!(dev.as_slice(), &[Deviation::UnstuffedDot]);
    }
}
