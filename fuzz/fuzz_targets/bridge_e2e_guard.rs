//! ws-bridge's end-to-end guard (`guard::Guard`): the client's bytes of an
//! end-to-end session, as implicit TLS or STLS, for a host name or an IP
//! address, fed at once and in frames of any size.
//!
//! Input: `[flags, frame size, bytes…]`; flags bit 0: STLS session; bits
//! 1-2: the session's host (a name, another name, an IP address).
//!
//! Checks: no panic; what goes through is a prefix of the input, the same
//! whatever the frames, and so is the verdict; a refusal is sticky; the
//! guard never holds more than `MAX_HELLO` bytes; what goes through begins
//! with a TLS handshake record (implicit) or with nothing but `CAPA`/`STLS`
//! lines and, after an `STLS`, a handshake record (STLS).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_bridge::guard::{ExpectedSni, Guard, MAX_HELLO, Refusal};

fn guard(flags: u8) -> Guard {
    let sni = match (flags >> 1) & 3 {
        0 | 3 => ExpectedSni::Name("pop.example.com".into()),
        1 => ExpectedSni::Name("localhost".into()),
        _ => ExpectedSni::Absent,
    };
    if flags & 1 == 1 { Guard::starttls(sni) } else { Guard::implicit(sni) }
}

/// Feeds `bytes` in frames of `size`: what went through, and the refusal if any.
fn run(flags: u8, bytes: &[u8], size: usize) -> (Vec<u8>, Option<Refusal>) {
    let mut g = guard(flags);
    let mut out = Vec::new();
    for frame in bytes.chunks(size) {
        match g.feed(frame) {
            Ok(up) => out.extend_from_slice(&up),
            Err(refusal) => {
                assert_eq!(g.feed(b"\x17\x03\x03\x00\x01x").err(), Some(refusal), "sticky");
                return (out, Some(refusal));
            }
        }
        assert!(g.held() <= MAX_HELLO, "holds {} bytes", g.held());
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let [flags, size, bytes @ ..] = data else { return };
    let whole = run(*flags, bytes, bytes.len().max(1));
    let framed = run(*flags, bytes, usize::from(*size).max(1));
    assert_eq!(whole.1, framed.1, "the verdict does not depend on the frames");
    let up = &framed.0;
    assert!(bytes.starts_with(up), "only input, in order");
    if whole.1.is_none() {
        assert_eq!(whole.0, framed.0, "the same bytes go through, whatever the frames");
    }
    // What went up before TLS.
    let mut rest = &up[..];
    if flags & 1 == 1 {
        let mut stls = false;
        while !stls && rest.len() >= 6 && rest[0] != 22 {
            let (line, after) = rest.split_at(6);
            assert!(line[4..] == *b"\r\n", "{line:?}");
            stls = line[..4].eq_ignore_ascii_case(b"STLS");
            assert!(stls || line[..4].eq_ignore_ascii_case(b"CAPA"), "{line:?}");
            rest = after;
        }
        assert!(rest.is_empty() || stls, "TLS only after STLS");
    }
    assert!(rest.is_empty() || rest.starts_with(&[22, 3]), "a handshake record first");
});
