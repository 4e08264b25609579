//! Who the client is behind a trusted proxy: `X-Forwarded-For`, read as
//! bytes (a header value need not be ASCII, and a hop that cannot be read
//! must not make the bridge fall back to the proxy's own address).
//!
//! ```text
//!  X-Forwarded-For: <whatever the client claimed>, 198.51.100.7, 10.0.0.2
//!                                                  └ client    └ trusted proxy
//! ```
//!
//! The hops are read right to left, the way they were appended: trusted
//! proxies are skipped, and the first hop that is not a trusted proxy is
//! the client. What stands to its left was written by the client and is
//! never looked at. A hop on the way that is not an address (a stray byte,
//! `unknown`, an empty entry) means the proxies did not say who the client
//! is: [`client_ip`] returns an error and the request is refused (HTTP 400)
//! rather than charged to the proxy.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

use ipnet::IpNet;

/// `X-Forwarded-For` from a trusted proxy that does not name a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedError {
    /// A hop between the bridge and the client is not an address.
    Unreadable,
}

impl fmt::Display for ForwardedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X-Forwarded-For from a trusted proxy has a hop that is not an address")
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted
/// proxy that sent `X-Forwarded-For` (`values`, in the order the header
/// lines came), the right-most hop that is not a trusted proxy. When every
/// hop is a trusted proxy, the left-most of them.
pub fn client_ip<'a>(
    peer: IpAddr,
    values: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> Result<IpAddr, ForwardedError> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Ok(peer);
    }
    let values: Vec<&[u8]> = values.into_iter().collect();
    let mut nearest = peer;
    for value in values.iter().rev() {
        for hop in value.rsplit(|b| *b == b',') {
            let ip = parse_hop(hop.trim_ascii()).ok_or(ForwardedError::Unreadable)?;
            if !is_trusted(&ip) {
                return Ok(ip);
            }
            nearest = ip;
        }
    }
    Ok(nearest)
}

/// One hop: an address, with a port or not (`198.51.100.7`, `2001:db8::1`,
/// `[2001:db8::1]`, `198.51.100.7:5123`, `[2001:db8::1]:5123`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?;
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok())?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> Vec<IpNet> {
        vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]
    }

    fn from(peer: &str, values: &[&[u8]]) -> Result<IpAddr, ForwardedError> {
        client_ip(ip(peer), values.iter().copied(), &trusted())
    }

    #[test]
    fn believed_only_from_trusted_proxies() {
        assert_eq!(from("192.0.2.9", &[b"198.51.100.1"]), Ok(ip("192.0.2.9")));
        assert_eq!(from("192.0.2.9", &[b"\xff"]), Ok(ip("192.0.2.9")), "not read at all");
        assert_eq!(from("127.0.0.1", &[b"198.51.100.1"]), Ok(ip("198.51.100.1")));
        assert_eq!(from("::ffff:127.0.0.1", &[b"198.51.100.1"]), Ok(ip("198.51.100.1")));
    }

    #[test]
    fn the_right_most_hop_that_is_not_a_trusted_proxy() {
        assert_eq!(from("127.0.0.1", &[b"6.6.6.6, 198.51.100.1, 10.1.1.1"]), Ok(ip("198.51.100.1")));
        // several header lines are one list, in order
        assert_eq!(from("127.0.0.1", &[b"6.6.6.6", b"198.51.100.1,10.1.1.1"]), Ok(ip("198.51.100.1")));
        assert_eq!(from("127.0.0.1", &[b"::ffff:198.51.100.1"]), Ok(ip("198.51.100.1")));
        assert_eq!(from("127.0.0.1", &[b"[2001:db8::7]:4711"]), Ok(ip("2001:db8::7")));
        assert_eq!(from("127.0.0.1", &[b"[2001:db8::7]"]), Ok(ip("2001:db8::7")));
        assert_eq!(from("127.0.0.1", &[b"198.51.100.1:4711\t"]), Ok(ip("198.51.100.1")));
        // only proxies: the left-most; no header: the peer itself
        assert_eq!(from("127.0.0.1", &[b"10.9.9.9, 10.1.1.1"]), Ok(ip("10.9.9.9")));
        assert_eq!(from("127.0.0.1", &[]), Ok(ip("127.0.0.1")));
    }

    #[test]
    fn whatever_the_client_wrote_left_of_its_hop_does_not_matter() {
        assert_eq!(from("127.0.0.1", &[b"junk, 198.51.100.1"]), Ok(ip("198.51.100.1")));
        // the reported attack: a non-ASCII byte left of the client
        assert_eq!(from("127.0.0.1", &[b"\xff, 198.51.100.7"]), Ok(ip("198.51.100.7")));
        assert_eq!(from("127.0.0.1", &[b"\xff", b"198.51.100.7"]), Ok(ip("198.51.100.7")));
    }

    #[test]
    fn an_unreadable_hop_between_bridge_and_client_is_an_error_not_the_proxy() {
        for bad in [
            &b"198.51.100.7, \xff"[..],
            b"\xff",
            b"",
            b"unknown",
            b"198.51.100.7,",
            b"198.51.100.7, , 10.1.1.1",
            b"fe80::1%eth0",
            b"198.51.100.7 10.1.1.1",
        ] {
            assert_eq!(from("127.0.0.1", &[bad]), Err(ForwardedError::Unreadable), "{bad:?}");
        }
        assert_eq!(from("127.0.0.1", &[b"198.51.100.7", b"junk"]), Err(ForwardedError::Unreadable));
    }
}
