//! Single-line responses: status indicator, RFC 2449 response codes, the
//! greeting's APOP timestamp, and the typed readings of STAT, LIST, UIDL.

use super::Error;
use super::deviation::{Deviation, Deviations};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Err,
}

/// One status line, CRLF removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub status: Status,
    /// RFC 2449 response code, without brackets: `SYS/TEMP`, `IN-USE`, `AUTH`.
    pub resp_code: Option<String>,
    /// The text after the status (and after the response code, if any).
    pub text: String,
}

/// What a line that should hold a status turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Status(StatusLine),
    /// A SASL continuation (`+ base64` or a bare `+`), data still encoded.
    Continuation(Vec<u8>),
}

/// Shows at most `max` bytes of an unexpected line, escaped, for errors.
pub(crate) fn excerpt(line: &[u8], max: usize) -> String {
    let mut s: String =
        line.iter().take(max).flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    if line.len() > max {
        s.push('…');
    }
    s
}

/// Parses a response line (CRLF already removed). `continuations`: whether
/// a SASL exchange is waiting, so that `+ …` is a continuation, not garbage.
pub fn parse_line(line: &[u8], continuations: bool, dev: &mut Deviations) -> Result<Line, Error> {
    let (status, rest) = if line.len() >= 3 && line[..3].eq_ignore_ascii_case(b"+OK") {
        if &line[..3] != b"+OK" {
            dev.record(Deviation::StatusCase);
        }
        (Status::Ok, &line[3..])
    } else if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"-ERR") {
        if &line[..4] != b"-ERR" {
            dev.record(Deviation::StatusCase);
        }
        (Status::Err, &line[4..])
    } else if continuations && line.first() == Some(&b'+') {
        return Ok(Line::Continuation(match line.get(1) {
            None => {
                dev.record(Deviation::BareContinuation);
                Vec::new()
            }
            Some(b' ') => line[2..].to_vec(),
            Some(_) => {
                dev.record(Deviation::BareContinuation);
                line[1..].to_vec()
            }
        }));
    } else {
        return Err(Error::Protocol(format!("expected +OK or -ERR, got \"{}\"", excerpt(line, 80))));
    };
    let rest = match rest.first() {
        None => rest,
        Some(b' ') => &rest[1..],
        Some(_) => {
            dev.record(Deviation::NoSpaceAfterStatus);
            rest
        }
    };
    let text = String::from_utf8_lossy(rest);
    let (resp_code, text) = split_resp_code(&text);
    Ok(Line::Status(StatusLine { status, resp_code, text }))
}

/// RFC 2449 § 8: `[CODE]` or `[CODE/SUB]` right after the status.
fn split_resp_code(text: &str) -> (Option<String>, String) {
    if let Some(inner) = text.strip_prefix('[')
        && let Some(end) = inner.find(']')
    {
        let code = &inner[..end];
        let valid =
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'/');
        if valid {
            let rest = inner[end + 1..].strip_prefix(' ').unwrap_or(&inner[end + 1..]);
            return (Some(code.to_ascii_uppercase()), rest.to_string());
        }
    }
    (None, text.to_string())
}

/// The APOP timestamp in a greeting, only when it is a syntactically valid
/// msg-id `<local@domain>` of printable ASCII: a looser reading lets a
/// hostile server choose the MD5 input (CVE-2007-1558).
pub fn apop_timestamp(greeting_text: &str) -> Option<String> {
    let start = greeting_text.find('<')?;
    let len = greeting_text[start..].find('>')?;
    let stamp = &greeting_text[start..=start + len];
    let inner = &stamp[1..stamp.len() - 1];
    let (local, domain) = inner.split_once('@')?;
    let ok = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'<' && b != b'>' && b != b'@')
    };
    (ok(local) && ok(domain)).then(|| stamp.to_string())
}

/// `+OK nn mm` to STAT.
pub fn parse_stat(text: &str) -> Result<(u64, u64), Error> {
    let mut it = text.split_ascii_whitespace();
    let parse = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok());
    match (parse(it.next()), parse(it.next())) {
        (Some(count), Some(size)) => Ok((count, size)),
        _ => Err(Error::Protocol(format!("malformed STAT answer \"{}\"", excerpt(text.as_bytes(), 80)))),
    }
}

/// One scan listing: `msg size` (LIST) or `msg uid` (UIDL), as a pair.
fn parse_pair<'a>(what: &str, line: &'a str) -> Result<(u32, &'a str), Error> {
    let mut it = line.split_ascii_whitespace();
    let msg = it.next().and_then(|s| s.parse::<u32>().ok()).filter(|m| *m > 0);
    match (msg, it.next()) {
        (Some(m), Some(v)) => Ok((m, v)),
        _ => Err(Error::Protocol(format!("malformed {what} line \"{}\"", excerpt(line.as_bytes(), 80)))),
    }
}

pub fn parse_list_entry(line: &str) -> Result<(u32, u64), Error> {
    let (m, v) = parse_pair("LIST", line)?;
    let size = v
        .parse::<u64>()
        .map_err(|_| Error::Protocol(format!("malformed LIST size \"{}\"", excerpt(v.as_bytes(), 40))))?;
    Ok((m, size))
}

pub fn parse_uidl_entry(line: &str) -> Result<(u32, String), Error> {
    let (m, uid) = parse_pair("UIDL", line)?;
    // RFC 1939: 1 to 70 characters in 0x21..0x7E. Longer ones are kept
    // (servers exist that send them) but a control character is not a UID.
    if uid.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(Error::Protocol("UIDL unique-id with characters outside 0x21-0x7E".into()));
    }
    Ok((m, uid.to_string()))
}

/// Splits a decoded multi-line body into lines (CRLF or bare LF), for the
/// line-oriented answers: LIST, UIDL, CAPA.
pub fn body_lines(body: &[u8]) -> impl Iterator<Item = String> + '_ {
    body.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
}

pub fn parse_list(body: &[u8]) -> Result<Vec<(u32, u64)>, Error> {
    body_lines(body).map(|l| parse_list_entry(&l)).collect()
}

pub fn parse_uidl(body: &[u8]) -> Result<Vec<(u32, String)>, Error> {
    body_lines(body).map(|l| parse_uidl_entry(&l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(line: &str) -> (StatusLine, Deviations) {
        let mut d = Deviations::default();
        match parse_line(line.as_bytes(), false, &mut d).unwrap() {
            Line::Status(s) => (s, d),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_codes_are_split_off() {
        let (s, _) = status("-ERR [SYS/TEMP] try again later");
        assert_eq!(s.status, Status::Err);
        assert_eq!(s.resp_code.as_deref(), Some("SYS/TEMP"));
        assert_eq!(s.text, "try again later");
        let (s, _) = status("-ERR [IN-USE] Do you have another POP session running?");
        assert_eq!(s.resp_code.as_deref(), Some("IN-USE"));
        let (s, _) = status("-ERR [not a code] text");
        assert_eq!(s.resp_code, None);
        assert_eq!(s.text, "[not a code] text");
    }

    #[test]
    fn status_without_space_is_tolerated_and_recorded() {
        let (s, d) = status("+OK2 320");
        assert_eq!(s.text, "2 320");
        assert_eq!(d.as_slice(), &[Deviation::NoSpaceAfterStatus]);
        let (s, d) = status("+OK");
        assert_eq!(s.text, "");
        assert!(d.as_slice().is_empty());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let mut d = Deviations::default();
        let e = parse_line(b"HTTP/1.1 400 Bad Request", false, &mut d).unwrap_err();
        assert_eq!(e.code(), "PROTOCOL_ERROR");
        let e = parse_line(b"+ abc", false, &mut d).unwrap_err();
        assert_eq!(e.code(), "PROTOCOL_ERROR");
    }

    #[test]
    fn continuations_with_and_without_space() {
        let mut d = Deviations::default();
        assert_eq!(parse_line(b"+ ", true, &mut d).unwrap(), Line::Continuation(vec![]));
        assert!(d.as_slice().is_empty());
        assert_eq!(parse_line(b"+", true, &mut d).unwrap(), Line::Continuation(vec![]));
        assert_eq!(d.as_slice(), &[Deviation::BareContinuation]);
    }

    #[test]
    fn apop_timestamp_needs_a_valid_msg_id() {
        assert_eq!(
            apop_timestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>").as_deref(),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        assert_eq!(apop_timestamp("ready <no-at-sign>"), None);
        assert_eq!(apop_timestamp("ready <a@>"), None);
        assert_eq!(apop_timestamp("ready <a b@c>"), None);
        assert_eq!(apop_timestamp("ready <a@b@c>"), None);
        assert_eq!(apop_timestamp("ready"), None);
        assert_eq!(apop_timestamp("ready <a\u{e9}@b>"), None);
    }

    #[test]
    fn scan_listings() {
        assert_eq!(parse_stat("2 320").unwrap(), (2, 320));
        assert_eq!(parse_stat("2").unwrap_err().code(), "PROTOCOL_ERROR");
        assert_eq!(parse_list(b"1 120\r\n2 200\r\n").unwrap(), vec![(1, 120), (2, 200)]);
        assert_eq!(
            parse_uidl(b"1 whqtswO00WBw418f9t5JxYwZ\r\n").unwrap(),
            vec![(1, "whqtswO00WBw418f9t5JxYwZ".to_string())]
        );
        assert!(parse_list(b"0 120\r\n").is_err());
    }
}
