//! What an end-to-end session (wire v2, `endToEnd: true`) lets through from
//! the client: a sans-IO check of the client → server byte stream, so that
//! nothing readable but `CAPA` and `STLS` ever reaches the server before
//! the client's own TLS handshake starts.
//!
//! ```text
//!  starttls:  Lines ── "CAPA\r\n" | "STLS\r\n" ─┐  (after STLS)
//!  implicit:                                    └─► Hello ── ClientHello, its SNI checked ─► Records ── TLS records …
//! ```
//!
//! * **Lines** (`tls: "starttls"`): whole lines `CAPA\r\n` and `STLS\r\n`
//!   only (the verb in any case); each goes on once complete. Bytes that
//!   cannot begin one of them end the session at once (the `U` of `USER`
//!   never leaves the bridge).
//! * **Hello** (`tls: "implicit"` from the first byte, `starttls` after
//!   `STLS`): TLS handshake records, held until they carry a whole
//!   ClientHello (at most [`MAX_HELLO`] bytes), whose `server_name` must be
//!   the host the session was opened for when that is a DNS name (ASCII
//!   case-insensitive; a trailing dot does not match) and absent when it
//!   is an IP address. Then everything held goes on at once.
//! * **Records**: from then on, well-formed TLS records (content type
//!   20..=23, version 3.x, at most [`MAX_RECORD`] bytes of body); each
//!   header is checked before it goes on, the body goes on as it comes.
//!
//! Anything else is a [`Refusal`]: the session ends with
//! [`wire::PLAINTEXT_BEFORE_TLS`](crate::wire::PLAINTEXT_BEFORE_TLS) and
//! the offending bytes (and whatever the guard still held) are dropped.
//! Refusals are sticky. Nothing here looks at what the server sends.
//!
//! The ClientHello is read by hand, not with a TLS parser crate:
//! tls-parser (rusticata) costs about 23 s of build and brings syn 1 and
//! rand 0.8 beside the workspace's newer ones, for six fields; rustls'
//! `Acceptor` parses a ClientHello, but reports an IP literal or a
//! malformed name in `server_name` as "no SNI" (RFC 6066 tells a server to
//! ignore them), which would let an IP host's session carry any SNI. The
//! fields read are the fixed prefix of RFC 8446 § 4.1.2 and the
//! `server_name` extension of RFC 6066 § 3; the unit tests check the
//! reading against ClientHellos made by rustls and by OpenSSL.

use std::{borrow::Cow, fmt};

use crate::policy::Host;

/// The most bytes held before the ClientHello is whole (its records
/// included). A ClientHello with a post-quantum key share is about 1.5 KiB.
pub const MAX_HELLO: usize = 16 * 1024;

/// The longest record body accepted: 2^14 + 2048 (RFC 5246 § 6.2.3, the
/// most a TLS 1.2 ciphertext may have; TLS 1.3 allows 2^14 + 256).
pub const MAX_RECORD: usize = (1 << 14) + 2048;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXTENSION_SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;
const RECORD_HEADER: usize = 5;

/// What the ClientHello's `server_name` must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedSni {
    /// This DNS name (lower case, no trailing dot).
    Name(String),
    /// None: the session's host is an IP address (RFC 6066 allows only
    /// names in SNI).
    Absent,
}

impl ExpectedSni {
    pub fn for_host(host: &Host) -> ExpectedSni {
        match host {
            Host::Name(name) => ExpectedSni::Name(name.clone()),
            Host::Ip(_) => ExpectedSni::Absent,
        }
    }
}

/// Why the guard ended a session. Says what kind of bytes came, never the
/// bytes (for the log; the client is told
/// [`PLAINTEXT_BEFORE_TLS`](crate::wire::PLAINTEXT_BEFORE_TLS)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// STLS session: a line other than `CAPA` or `STLS`.
    Plaintext,
    /// Where the ClientHello must be: bytes that are not a TLS handshake record.
    NotTls,
    /// A handshake message other than a ClientHello came first.
    NotClientHello,
    /// The ClientHello does not parse; says which part.
    MalformedHello(&'static str),
    /// The ClientHello names another server than the session's host.
    WrongSni,
    /// The session's host is a name and the ClientHello has no SNI.
    MissingSni,
    /// The session's host is an IP address and the ClientHello has an SNI.
    SniForAddress,
    /// More than [`MAX_HELLO`] bytes and the ClientHello is not whole.
    HelloTooLarge,
    /// After the ClientHello: bytes that are not a well-formed TLS record.
    NotARecord,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Plaintext => f.write_str("a line other than CAPA or STLS before TLS"),
            Refusal::NotTls => f.write_str("not a TLS handshake record where the ClientHello belongs"),
            Refusal::NotClientHello => f.write_str("a handshake message other than ClientHello first"),
            Refusal::MalformedHello(what) => write!(f, "malformed ClientHello ({what})"),
            Refusal::WrongSni => f.write_str("the ClientHello's SNI is not the session's host"),
            Refusal::MissingSni => f.write_str("the ClientHello has no SNI"),
            Refusal::SniForAddress => f.write_str("the ClientHello has an SNI, the host is an IP address"),
            Refusal::HelloTooLarge => write!(f, "no whole ClientHello within {MAX_HELLO} bytes"),
            Refusal::NotARecord => f.write_str("not a well-formed TLS record after the ClientHello"),
        }
    }
}

/// Where the client → server stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// STLS session before `STLS`.
    Lines,
    /// Waiting for a whole ClientHello.
    Hello,
    /// Within TLS records; `body_left` bytes of the current one to come.
    Records { body_left: usize },
}

/// The check of one end-to-end session's client → server bytes.
#[derive(Debug)]
pub struct Guard {
    phase: Phase,
    sni: ExpectedSni,
    /// Bytes received and not yet let through: a partial line, the records
    /// of a ClientHello not yet whole, or a partial record header.
    held: Vec<u8>,
    /// How far into `held` the bytes were read (Hello: whole records).
    pos: usize,
    /// Where in `held` the ClientHello's records begin (after the lines
    /// of an STLS session that came in the same frame).
    hello_from: usize,
    /// Hello: the handshake bytes of the records read so far.
    handshake: Vec<u8>,
    refused: Option<Refusal>,
}

impl Guard {
    /// `tls: "implicit"`: a ClientHello first.
    pub fn implicit(sni: ExpectedSni) -> Guard {
        Guard::starting(Phase::Hello, sni)
    }

    /// `tls: "starttls"`: `CAPA` and `STLS` lines, then a ClientHello.
    pub fn starttls(sni: ExpectedSni) -> Guard {
        Guard::starting(Phase::Lines, sni)
    }

    fn starting(phase: Phase, sni: ExpectedSni) -> Guard {
        Guard { phase, sni, held: Vec::new(), pos: 0, hello_from: 0, handshake: Vec::new(), refused: None }
    }

    /// Whether the ClientHello went through (the client's TLS has begun).
    pub fn in_tls(&self) -> bool {
        matches!(self.phase, Phase::Records { .. })
    }

    /// Bytes the guard holds back for now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes the client's next bytes and returns those that may go to the
    /// server now, in order: a prefix of everything fed so far that was
    /// not returned yet. `Err` ends the session; the bytes held and `input`
    /// must not reach the server.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<Cow<'a, [u8]>, Refusal> {
        if let Some(refusal) = self.refused {
            return Err(refusal);
        }
        let released = if self.held.is_empty()
            && let Phase::Records { body_left } = self.phase
        {
            // The steady state: nothing held, so what goes on is a prefix of
            // the input, handed back without a copy.
            let (ok, body_left) = self.check(records(input, body_left))?;
            self.phase = Phase::Records { body_left };
            self.held.extend_from_slice(&input[ok..]);
            Cow::Borrowed(&input[..ok])
        } else {
            self.held.extend_from_slice(input);
            let ok = self.run()?;
            self.pos -= ok;
            self.hello_from = self.hello_from.saturating_sub(ok);
            Cow::Owned(self.held.drain(..ok).collect())
        };
        Ok(released)
    }

    fn check<T>(&mut self, result: Result<T, Refusal>) -> Result<T, Refusal> {
        if let Err(refusal) = &result {
            self.refused = Some(*refusal);
            self.held = Vec::new();
            self.handshake = Vec::new();
        }
        result
    }

    /// Reads `held` from `pos` on; returns how many bytes at its front may go.
    fn run(&mut self) -> Result<usize, Refusal> {
        let result = self.step();
        self.check(result)
    }

    fn step(&mut self) -> Result<usize, Refusal> {
        let mut ok = 0;
        loop {
            match self.phase {
                Phase::Lines => match line(&self.held[self.pos..])? {
                    None => return Ok(ok),
                    Some(stls) => {
                        self.pos += LINE_LEN;
                        ok = self.pos;
                        if stls {
                            self.phase = Phase::Hello;
                            self.hello_from = self.pos;
                        }
                    }
                },
                Phase::Hello => {
                    if !self.hello()? {
                        return Ok(ok);
                    }
                    // Everything held so far goes with the ClientHello.
                    ok = self.pos;
                    self.handshake = Vec::new();
                    self.phase = Phase::Records { body_left: 0 };
                }
                Phase::Records { body_left } => {
                    let (read, body_left) = records(&self.held[self.pos..], body_left)?;
                    self.phase = Phase::Records { body_left };
                    self.pos += read;
                    return Ok(self.pos);
                }
            }
        }
    }

    /// Reads the held records on; `true` once they carry a whole
    /// ClientHello with the right SNI (`pos` is then the end of its last
    /// record).
    fn hello(&mut self) -> Result<bool, Refusal> {
        loop {
            let rest = &self.held[self.pos..];
            check_header_prefix(rest, Refusal::NotTls)?;
            if rest.first().is_some_and(|&t| t != CONTENT_HANDSHAKE) {
                return Err(Refusal::NotTls);
            }
            let whole = rest.len() >= RECORD_HEADER && {
                let len = record_len(rest);
                if len == 0 || len > MAX_RECORD {
                    return Err(Refusal::NotTls);
                }
                rest.len() >= RECORD_HEADER + len
            };
            if !whole {
                if self.held.len() - self.hello_from > MAX_HELLO {
                    return Err(Refusal::HelloTooLarge);
                }
                return Ok(false);
            }
            let len = record_len(rest);
            self.handshake.extend_from_slice(&rest[RECORD_HEADER..RECORD_HEADER + len]);
            self.pos += RECORD_HEADER + len;
            if self.pos - self.hello_from > MAX_HELLO {
                return Err(Refusal::HelloTooLarge);
            }
            if self.handshake[0] != HANDSHAKE_CLIENT_HELLO {
                return Err(Refusal::NotClientHello);
            }
            if self.handshake.len() < 4 {
                continue;
            }
            let body_len = u24(&self.handshake[1..4]);
            if 4 + body_len > MAX_HELLO {
                return Err(Refusal::HelloTooLarge);
            }
            if self.handshake.len() < 4 + body_len {
                continue;
            }
            let sni = client_hello_sni(&self.handshake[4..4 + body_len])?;
            check_sni(&self.sni, sni)?;
            return Ok(true);
        }
    }
}

/// `CAPA\r\n` and `STLS\r\n` have the same length.
const LINE_LEN: usize = 6;

/// The next line of an STLS session before `STLS`: `Some(is_stls)` once a
/// whole allowed line is there, `None` while the bytes could still become
/// one.
fn line(rest: &[u8]) -> Result<Option<bool>, Refusal> {
    if rest.is_empty() {
        return Ok(None);
    }
    let n = rest.len().min(LINE_LEN);
    let could_be = |verb: &[u8; 4]| {
        rest[..n]
            .iter()
            .zip(verb.iter().chain(b"\r\n"))
            .enumerate()
            .all(|(i, (got, want))| if i < 4 { got.eq_ignore_ascii_case(want) } else { got == want })
    };
    let (capa, stls) = (could_be(b"CAPA"), could_be(b"STLS"));
    if !capa && !stls {
        return Err(Refusal::Plaintext);
    }
    Ok((n == LINE_LEN).then_some(stls))
}

/// Checks the first bytes of a record header as soon as they are there:
/// a content type of TLS 1.2/1.3 (20..=23) and a version 3.x.
fn check_header_prefix(rest: &[u8], refusal: Refusal) -> Result<(), Refusal> {
    if rest.first().is_some_and(|t| !(20..=23).contains(t)) || rest.get(1).is_some_and(|&major| major != 3) {
        return Err(refusal);
    }
    Ok(())
}

fn record_len(header: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([header[3], header[4]]))
}

/// Reads whole records from `data`, `body_left` bytes of the current one
/// still to come. Returns how many bytes may go (a partial header at the
/// end stays out) and what is left of the last record's body.
fn records(data: &[u8], mut body_left: usize) -> Result<(usize, usize), Refusal> {
    let mut at = 0;
    loop {
        if body_left > 0 {
            let take = body_left.min(data.len() - at);
            at += take;
            body_left -= take;
            if body_left > 0 {
                return Ok((at, body_left));
            }
        }
        let rest = &data[at..];
        check_header_prefix(rest, Refusal::NotARecord)?;
        if rest.len() < RECORD_HEADER {
            return Ok((at, 0));
        }
        body_left = record_len(rest);
        if body_left > MAX_RECORD {
            return Err(Refusal::NotARecord);
        }
        at += RECORD_HEADER;
    }
}

fn check_sni(expected: &ExpectedSni, sni: Option<&[u8]>) -> Result<(), Refusal> {
    match (expected, sni) {
        (ExpectedSni::Absent, None) => Ok(()),
        (ExpectedSni::Absent, Some(_)) => Err(Refusal::SniForAddress),
        (ExpectedSni::Name(_), None) => Err(Refusal::MissingSni),
        (ExpectedSni::Name(name), Some(sni)) if sni.eq_ignore_ascii_case(name.as_bytes()) => Ok(()),
        (ExpectedSni::Name(_), Some(_)) => Err(Refusal::WrongSni),
    }
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// A cursor over a ClientHello's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Refusal> {
        if self.0.len() < n {
            return Err(Refusal::MalformedHello(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<usize, Refusal> {
        Ok(usize::from(self.take(1, what)?[0]))
    }

    fn u16(&mut self, what: &'static str) -> Result<usize, Refusal> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A vector with a one- or two-byte length.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], Refusal> {
        let n = self.u8(what)?;
        self.take(n, what)
    }

    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], Refusal> {
        let n = self.u16(what)?;
        self.take(n, what)
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads a ClientHello's body (RFC 8446 § 4.1.2; RFC 5246 § 7.4.1.2) and
/// returns the host name of its `server_name` extension, if it has one.
pub fn client_hello_sni(body: &[u8]) -> Result<Option<&[u8]>, Refusal> {
    let mut r = Reader(body);
    if r.take(2, "legacy_version")?[0] != 3 {
        return Err(Refusal::MalformedHello("legacy_version"));
    }
    r.take(32, "random")?;
    if r.vec8("legacy_session_id")?.len() > 32 {
        return Err(Refusal::MalformedHello("legacy_session_id"));
    }
    let suites = r.vec16("cipher_suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(Refusal::MalformedHello("cipher_suites"));
    }
    if r.vec8("legacy_compression_methods")?.is_empty() {
        return Err(Refusal::MalformedHello("legacy_compression_methods"));
    }
    if r.done() {
        // TLS 1.2 without extensions.
        return Ok(None);
    }
    let mut extensions = Reader(r.vec16("extensions")?);
    if !r.done() {
        return Err(Refusal::MalformedHello("bytes after the extensions"));
    }
    let mut sni = None;
    while !extensions.done() {
        let kind = extensions.u16("extension type")?;
        let data = extensions.vec16("extension data")?;
        if kind != usize::from(EXTENSION_SERVER_NAME) {
            continue;
        }
        if sni.is_some() {
            return Err(Refusal::MalformedHello("two server_name extensions"));
        }
        sni = Some(server_name(data)?);
    }
    Ok(sni)
}

/// The `server_name` extension's data (RFC 6066 § 3): exactly one
/// `host_name`, not empty.
fn server_name(data: &[u8]) -> Result<&[u8], Refusal> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16("server_name list")?);
    if !r.done() {
        return Err(Refusal::MalformedHello("server_name list"));
    }
    if list.u8("server_name type")? != usize::from(HOST_NAME) {
        return Err(Refusal::MalformedHello("server_name type"));
    }
    let name = list.vec16("host_name")?;
    if name.is_empty() || !list.done() {
        return Err(Refusal::MalformedHello("host_name"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;

    use super::*;

    const HOST: &str = "pop.example.com";

    fn name(host: &str) -> ExpectedSni {
        ExpectedSni::Name(host.into())
    }

    /// The first flight of a real rustls client for `server` (a name or an
    /// IP address): its ClientHello record(s).
    fn rustls_hello(server: &str, sni: bool) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.enable_sni = sni;
        let name = ServerName::try_from(server.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// ClientHellos made by `openssl s_client` (OpenSSL 3.0), captured once:
    /// with `-servername pop.example.com`, and with `-noservername`.
    const OPENSSL_SNI: &[u8] = include_bytes!("../tests/data/openssl-clienthello-sni.bin");
    const OPENSSL_NO_SNI: &[u8] = include_bytes!("../tests/data/openssl-clienthello-nosni.bin");

    /// The same handshake bytes in records of at most `size` bytes.
    fn refragment(records_in: &[u8], size: usize) -> Vec<u8> {
        let mut handshake = Vec::new();
        let mut at = 0;
        while at < records_in.len() {
            let len = record_len(&records_in[at..]);
            handshake.extend_from_slice(&records_in[at + 5..at + 5 + len]);
            at += 5 + len;
        }
        let mut out = Vec::new();
        for chunk in handshake.chunks(size) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A minimal TLS 1.2 ClientHello record whose `server_name` lists
    /// `names` (none: no extension at all).
    fn hand_hello(names: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.extend([0, 0, 2, 0xc0, 0x2f, 1, 0]);
        if !names.is_empty() {
            let mut list = Vec::new();
            for name in names {
                list.push(HOST_NAME);
                list.extend((name.len() as u16).to_be_bytes());
                list.extend(*name);
            }
            let mut ext = vec![0, 0];
            ext.extend(((list.len() + 2) as u16).to_be_bytes());
            ext.extend((list.len() as u16).to_be_bytes());
            ext.extend(list);
            body.extend((ext.len() as u16).to_be_bytes());
            body.extend(ext);
        }
        let mut out = vec![22, 3, 1];
        out.extend(((body.len() + 4) as u16).to_be_bytes());
        out.push(HANDSHAKE_CLIENT_HELLO);
        out.extend(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend(body);
        out
    }

    /// Feeds `bytes` in pieces of `size`; returns what went through, or the refusal.
    fn run(guard: &mut Guard, bytes: &[u8], size: usize) -> Result<Vec<u8>, Refusal> {
        let mut out = Vec::new();
        for piece in bytes.chunks(size.max(1)) {
            out.extend_from_slice(&guard.feed(piece)?);
        }
        Ok(out)
    }

    /// A record of `kind` with `len` bytes of body.
    fn record(kind: u8, len: usize) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(len as u16).to_be_bytes());
        r.extend((0..len).map(|i| i as u8));
        r
    }

    #[test]
    fn rustls_client_hello_goes_through_whole_and_only_once_whole() {
        let hello = rustls_hello(HOST, true);
        let mut g = Guard::implicit(name(HOST));
        assert_eq!(g.feed(&hello[..hello.len() - 1]).unwrap().len(), 0);
        assert_eq!(g.held(), hello.len() - 1);
        assert_eq!(g.feed(&hello[hello.len() - 1..]).unwrap()[..], hello[..]);
        assert!(g.in_tls());
        // Then any well-formed record, at once.
        let app = record(23, 100);
        assert!(matches!(g.feed(&app).unwrap(), Cow::Borrowed(b) if b == &app[..]));
    }

    #[test]
    fn client_hellos_fragmented_across_records_and_frames() {
        for hello in [rustls_hello(HOST, true), OPENSSL_SNI.to_vec()] {
            for records in [1, 7, 100, 16384] {
                let stream = refragment(&hello, records);
                for frames in [1, 3, 64, stream.len()] {
                    let mut g = Guard::implicit(name(HOST));
                    let mut bytes = stream.clone();
                    bytes.extend(record(20, 1));
                    bytes.extend(record(23, 300));
                    assert_eq!(run(&mut g, &bytes, frames), Ok(bytes.clone()), "{records} {frames}");
                    assert_eq!(g.held(), 0);
                }
            }
        }
    }

    #[test]
    fn sni_is_the_host_in_any_case_and_nothing_else() {
        let hello = rustls_hello(HOST, true);
        assert_eq!(run(&mut Guard::implicit(name("imap.example.com")), &hello, 9), Err(Refusal::WrongSni));
        assert_eq!(run(&mut Guard::implicit(name("example.com")), &hello, 9), Err(Refusal::WrongSni));
        assert_eq!(run(&mut Guard::implicit(ExpectedSni::Absent), &hello, 9), Err(Refusal::SniForAddress));
        // The client's case does not matter; a trailing dot does.
        let upper = rustls_hello("POP.EXAMPLE.COM", true);
        assert!(run(&mut Guard::implicit(name(HOST)), &upper, 1).is_ok());
        // (rustls drops a trailing dot from the name it sends; a hand-made hello keeps it.)
        assert!(run(&mut Guard::implicit(name(HOST)), &hand_hello(&[b"pop.example.com"]), 1).is_ok());
        assert_eq!(
            run(&mut Guard::implicit(name(HOST)), &hand_hello(&[b"pop.example.com."]), 1),
            Err(Refusal::WrongSni)
        );
        assert_eq!(
            run(&mut Guard::implicit(name(HOST)), &hand_hello(&[b"pop.example.com\0.evil"]), 1),
            Err(Refusal::WrongSni)
        );
        // OpenSSL's, with and without a server name.
        assert!(run(&mut Guard::implicit(name(HOST)), OPENSSL_SNI, 1).is_ok());
        assert_eq!(run(&mut Guard::implicit(name(HOST)), OPENSSL_NO_SNI, 1), Err(Refusal::MissingSni));
        assert!(run(&mut Guard::implicit(ExpectedSni::Absent), OPENSSL_NO_SNI, 1).is_ok());
    }

    #[test]
    fn an_ip_host_takes_a_hello_without_sni() {
        // rustls sends no SNI for an IP address, as RFC 6066 says.
        let hello = rustls_hello("192.0.2.7", true);
        assert!(run(&mut Guard::implicit(ExpectedSni::Absent), &hello, 5).is_ok());
        let v6 = rustls_hello("2001:db8::1", true);
        assert!(run(&mut Guard::implicit(ExpectedSni::Absent), &v6, 5).is_ok());
        assert_eq!(run(&mut Guard::implicit(name(HOST)), &hello, 5), Err(Refusal::MissingSni));
        // An IP literal in SNI (RFC 6066 forbids it) is an SNI all the same.
        assert_eq!(
            run(&mut Guard::implicit(ExpectedSni::Absent), &hand_hello(&[b"192.0.2.7"]), 5),
            Err(Refusal::SniForAddress)
        );
        // A TLS 1.2 hello without extensions has no SNI.
        assert!(run(&mut Guard::implicit(ExpectedSni::Absent), &hand_hello(&[]), 5).is_ok());
        // Two names in the list, or an empty one, is no valid SNI.
        for names in [&[&b"pop.example.com"[..], b"pop.example.com"][..], &[b""]] {
            assert!(matches!(
                run(&mut Guard::implicit(name(HOST)), &hand_hello(names), 5),
                Err(Refusal::MalformedHello(_))
            ));
        }
        // A client that turned SNI off for a name fails that name's check.
        let no_sni = rustls_hello(HOST, false);
        assert_eq!(run(&mut Guard::implicit(name(HOST)), &no_sni, 5), Err(Refusal::MissingSni));
    }

    #[test]
    fn the_reading_agrees_with_rustls_own_parser() {
        // rustls' server side reads the same name out of the same bytes.
        for hello in [rustls_hello(HOST, true), rustls_hello("Mail.Example.org", true), OPENSSL_SNI.to_vec()]
        {
            let mut acceptor = rustls::server::Acceptor::default();
            acceptor.read_tls(&mut &hello[..]).unwrap();
            let accepted = acceptor.accept().unwrap().unwrap();
            let theirs = accepted.client_hello().server_name().map(str::to_string);
            let body = &hello[9..];
            let ours = client_hello_sni(&body[..u24(&hello[6..9])]).unwrap();
            let ours = ours.map(|n| String::from_utf8(n.to_ascii_lowercase()).unwrap());
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn plaintext_before_the_hello_is_refused_at_its_first_byte() {
        for plain in
            [&b"USER bob\r\n"[..], b"PASS secret\r\n", b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", b"CAPA\r\n"]
        {
            let mut g = Guard::implicit(name(HOST));
            assert_eq!(g.feed(&plain[..1]), Err(Refusal::NotTls), "{plain:?}");
            // Sticky.
            assert_eq!(g.feed(&rustls_hello(HOST, true)), Err(Refusal::NotTls));
        }
        // SSLv2-style hello (RFC 5246 appendix E.2): a length with the top bit set.
        let sslv2 = [0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10];
        assert_eq!(Guard::implicit(name(HOST)).feed(&sslv2), Err(Refusal::NotTls));
        // A handshake record with another version, empty, or too long.
        assert_eq!(Guard::implicit(name(HOST)).feed(&[22, 2, 0]), Err(Refusal::NotTls));
        assert_eq!(Guard::implicit(name(HOST)).feed(&[22, 3, 1, 0, 0]), Err(Refusal::NotTls));
        assert_eq!(Guard::implicit(name(HOST)).feed(&[22, 3, 1, 0x48, 1]), Err(Refusal::NotTls));
        // Application data or an alert instead of the hello.
        assert_eq!(Guard::implicit(name(HOST)).feed(&record(23, 10)), Err(Refusal::NotTls));
        assert_eq!(Guard::implicit(name(HOST)).feed(&[21]), Err(Refusal::NotTls));
        // A handshake record with a ServerHello (type 2) in it.
        let mut server_hello = record(22, 8);
        server_hello[5] = 2;
        assert_eq!(Guard::implicit(name(HOST)).feed(&server_hello), Err(Refusal::NotClientHello));
    }

    #[test]
    fn garbage_and_cut_hellos() {
        let hello = rustls_hello(HOST, true);
        // The hello's body cut short within its length, or carrying bytes after its extensions.
        let mut short = hello.clone();
        // The handshake length one less: the extensions overrun it.
        let shorter = (u24(&hello[6..9]) - 1) as u32;
        short[6..9].copy_from_slice(&shorter.to_be_bytes()[1..]);
        assert!(matches!(Guard::implicit(name(HOST)).feed(&short), Err(Refusal::MalformedHello(_))));
        let mut random = record(22, 200);
        random[5..9].copy_from_slice(&[1, 0, 0, 196]);
        assert!(matches!(Guard::implicit(name(HOST)).feed(&random), Err(Refusal::MalformedHello(_))));
        // A hello announcing more than MAX_HELLO bytes.
        let huge = [22, 3, 1, 0, 4, 1, 0x01, 0, 0];
        assert_eq!(Guard::implicit(name(HOST)).feed(&huge), Err(Refusal::HelloTooLarge));
        // A hello of 16300 bytes in records of 1000: with their headers,
        // they pass MAX_HELLO before it is whole.
        let mut handshake = vec![1, 0x00, 0x3f, 0xac];
        handshake.resize(4 + 16300, 0);
        let records = refragment(&[&[22, 3, 1, 0x3f, 0xb0][..], &handshake].concat(), 1000);
        let mut g = Guard::starttls(name(HOST));
        assert_eq!(g.feed(b"CAPA\r\n".repeat(100).as_slice()).map(|c| c.len()), Ok(600));
        assert_eq!(g.feed(b"STLS\r\n").map(|c| c.len()), Ok(6));
        assert_eq!(g.feed(&records[..16 * 1005]).map(|c| c.len()), Ok(0));
        assert_eq!(g.feed(&records[16 * 1005..]), Err(Refusal::HelloTooLarge));
    }

    #[test]
    fn starttls_lets_capa_and_stls_lines_through_and_nothing_else() {
        let hello = rustls_hello(HOST, true);
        let mut stream = b"capa\r\nCAPA\r\nStls\r\n".to_vec();
        stream.extend(&hello);
        stream.extend(record(23, 40));
        for size in [1, 2, 5, 6, 7, stream.len()] {
            let mut g = Guard::starttls(name(HOST));
            assert_eq!(run(&mut g, &stream, size), Ok(stream.clone()), "{size}");
        }
        // Each line goes on as soon as it is whole, not before.
        let mut g = Guard::starttls(name(HOST));
        assert_eq!(g.feed(b"CAPA\r").unwrap().len(), 0);
        assert_eq!(g.feed(b"\nST").unwrap()[..], b"CAPA\r\n"[..]);
        assert_eq!(g.feed(b"LS\r\n").unwrap()[..], b"STLS\r\n"[..]);
        assert!(!g.in_tls());
        for (plain, at) in [
            (&b"USER bob\r\n"[..], 1),
            (b"PASS secret\r\n", 1),
            (b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", 1),
            (b"APOP bob 0123\r\n", 1),
            (b"CAPA \r\n", 5),
            (b"CAPA\n", 5),
            (b"STLS\r\r", 6),
            (b"CAPABILITIES\r\n", 5),
            (b"STAT\r\n", 3),
        ] {
            let mut g = Guard::starttls(name(HOST));
            let fed: Vec<_> = plain.iter().map(|b| g.feed(std::slice::from_ref(b))).collect();
            let first_err = fed.iter().position(Result::is_err).map(|i| i + 1);
            assert_eq!(first_err, Some(at), "{:?}", String::from_utf8_lossy(plain));
            assert!(fed.iter().all(|r| r.as_ref().map_or(true, |c| c.is_empty())), "nothing went");
        }
        // After STLS: the ClientHello, not a command.
        let mut g = Guard::starttls(name(HOST));
        assert_eq!(g.feed(b"STLS\r\n").unwrap().len(), 6);
        assert_eq!(g.feed(b"PASS secret\r\n"), Err(Refusal::NotTls));
        let mut g = Guard::starttls(name(HOST));
        assert_eq!(g.feed(b"STLS\r\nSTLS\r\n"), Err(Refusal::NotTls));
    }

    #[test]
    fn after_the_hello_only_tls_records() {
        let hello = rustls_hello(HOST, true);
        let mut g = Guard::implicit(name(HOST));
        g.feed(&hello).unwrap();
        // A header split over frames is held until whole, the body goes as it comes.
        let app = record(23, 1000);
        assert_eq!(g.feed(&app[..3]).unwrap().len(), 0);
        assert_eq!(g.feed(&app[3..500]).unwrap()[..], app[..500]);
        assert_eq!(g.feed(&app[500..]).unwrap()[..], app[500..]);
        // Every content type of TLS 1.2/1.3, then plaintext.
        for kind in 20..=23 {
            assert_eq!(g.feed(&record(kind, 2)).unwrap().len(), 7);
        }
        assert_eq!(g.feed(b"QUIT\r\n"), Err(Refusal::NotARecord));
        // A heartbeat, a 2.x version, a body over the limit.
        for bad in [&[24u8, 3, 3, 0, 1][..], &[23, 2, 0, 0, 1], &[23, 3, 3, 0x48, 0x01]] {
            let mut g = Guard::implicit(name(HOST));
            g.feed(&hello).unwrap();
            assert_eq!(g.feed(bad), Err(Refusal::NotARecord), "{bad:?}");
        }
        let mut g = Guard::implicit(name(HOST));
        g.feed(&hello).unwrap();
        let mut longest = record(23, MAX_RECORD);
        longest.extend(record(23, 0));
        assert_eq!(g.feed(&longest).unwrap().len(), longest.len());
    }

    #[test]
    fn the_hello_and_what_follows_in_the_same_frame() {
        let hello = rustls_hello(HOST, true);
        let mut bytes = b"STLS\r\n".to_vec();
        bytes.extend(&hello);
        bytes.extend(record(20, 1));
        bytes.extend(b"PASS x\r\n");
        // Refused as a whole: the records before the plaintext do not go either.
        assert_eq!(Guard::starttls(name(HOST)).feed(&bytes), Err(Refusal::NotARecord));
        bytes.truncate(bytes.len() - 8);
        let base = bytes.len();
        bytes.extend(&record(23, 30)[..7]);
        let mut g = Guard::starttls(name(HOST));
        assert_eq!(g.feed(&bytes).unwrap()[..], bytes[..]);
        assert_eq!(g.held(), 0, "only the record's body remains to come");
        bytes.truncate(base);
        bytes.extend(&record(23, 30)[..3]);
        let mut g = Guard::starttls(name(HOST));
        assert_eq!(g.feed(&bytes).unwrap().len(), bytes.len() - 3, "a partial header is held");
        assert_eq!(g.held(), 3);
    }
}
