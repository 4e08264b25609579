//! One line per message for a mailbox listing: the headers of `TOP n 0`,
//! decoded by `mail-parser` (RFC 2047 encoded words, RFC 2231, charsets,
//! dates), never by hand.

use mail_parser::{Addr, Address, MessageParser};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `Name <address>`, or the bare address.
    pub from: Option<String>,
    /// Every recipient in To, as for `from`, joined with `, `.
    pub to: Option<String>,
    pub subject: Option<String>,
    /// RFC 3339, as the Date header gives it (with its offset).
    pub date: Option<String>,
    /// Without the angle brackets.
    pub message_id: Option<String>,
}

fn addr(a: &Addr<'_>) -> Option<String> {
    match (a.name(), a.address()) {
        (Some(n), Some(a)) if !n.is_empty() => Some(format!("{n} <{a}>")),
        (_, Some(a)) => Some(a.to_string()),
        (Some(n), None) => Some(n.to_string()),
        (None, None) => None,
    }
}

fn addresses(a: Option<&Address<'_>>) -> Option<String> {
    let list: Vec<String> = a?.iter().filter_map(addr).collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// Summarises a message's header section (the body, if any, is ignored).
pub fn summarize(headers: &[u8]) -> Summary {
    let Some(m) = MessageParser::default().parse_headers(headers) else {
        return Summary::default();
    };
    Summary {
        from: m.from().and_then(|a| a.first()).and_then(addr),
        to: addresses(m.to()),
        subject: m.subject().map(str::to_string),
        date: m.date().map(|d| d.to_rfc3339()),
        message_id: m.message_id().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_addresses_and_dates() {
        let h = b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.org>\r\n\
To: a@example.org, \"B, Person\" <b@example.org>\r\n\
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus =?UTF-8?B?S8O2bG4=?=\r\n\
Date: Mon, 06 Jan 2025 10:08:00 +0100\r\n\
Message-ID: <abc.123@example.org>\r\n\r\n";
        let s = summarize(h);
        assert_eq!(s.from.as_deref(), Some("Jürgen Müller <jm@example.org>"));
        assert_eq!(s.to.as_deref(), Some("a@example.org, B, Person <b@example.org>"));
        assert_eq!(s.subject.as_deref(), Some("Grüße aus Köln"));
        assert_eq!(s.date.as_deref(), Some("2025-01-06T10:08:00+01:00"));
        assert_eq!(s.message_id.as_deref(), Some("abc.123@example.org"));
    }

    #[test]
    fn missing_and_garbage_headers_give_nothing() {
        assert_eq!(summarize(b""), Summary::default());
        let s = summarize(b"X-Only: this\r\n\r\n");
        assert_eq!(s.subject, None);
        let s = summarize(b"Subject: \xff\xfe broken\r\n\r\n");
        assert!(s.subject.is_some());
    }
}
