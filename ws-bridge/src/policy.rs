//! Which upstream targets a session may reach.
//!
//! The bridge is an open relay to whatever the policy lets through, so this
//! module is its main defence against server-side request forgery:
//!
//! * With no `--allow` entry, any host on port 110 or 995 is allowed, as long
//!   as *every* address it resolves to is public (see [`judge_ip`]).
//! * With `--allow` entries, only the listed `HOST:PORT` pairs are allowed,
//!   and an entry may name a private host on purpose (that is how tests and
//!   the demo reach a server on loopback).
//!
//! Host names are resolved once, under a deadline, and the caller connects to
//! the addresses returned by [`Policy::check`], which are exactly the ones
//! that were judged: there is no second lookup a DNS-rebinding attacker
//! could answer differently.
//!
//! The default rule also refuses the addresses of this host's own
//! interfaces (listed at every check, so a new address counts at once): a
//! public address of the bridge's host is routed over loopback, so a POP3
//! server there that is firewalled only from outside would be reachable.
//!
//! Odd IPv4 spellings that the C resolver accepts (`2130706433`,
//! `0177.0.0.1`, `0x7f.1`, `127.1`) are parsed into the address they mean
//! and judged as that address; any other all-numeric name is refused.

use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use crate::dns::Dns;

/// The ports allowed by the default (no `--allow`) rule.
pub const DEFAULT_PORTS: [u16; 2] = [110, 995];

/// A host as the client or an allowlist entry named it, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal, including the odd IPv4 spellings, canonicalised.
    Ip(IpAddr),
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl Host {
    /// Parses a host as a client names it: a DNS name, an IPv4 address in
    /// any spelling `inet_aton` accepts, or an IPv6 address with or without
    /// brackets. Returns `None` for anything else (empty, too long, odd
    /// characters, zone ids, numeric names that are not an address).
    pub fn parse(s: &str) -> Option<Host> {
        if s.is_empty() || s.len() > 255 {
            return None;
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']')?;
            return inner.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(ip.into()));
        }
        if s.contains(':') {
            return s.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(ip.into()));
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        if let Some(ip) = parse_ipv4_loose(s) {
            return Some(Host::Ip(ip.into()));
        }
        let name = s.to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return None;
        }
        let labels: Vec<&str> = name.split('.').collect();
        for label in &labels {
            let ok_chars = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if label.is_empty()
                || label.len() > 63
                || !ok_chars
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return None;
            }
        }
        // A last label that looks like a number makes the name an address
        // spelling we did not accept above (e.g. `1.2.3.4.5`, `08.1`, `0x`):
        // the system resolver might still read it as one, so refuse it.
        let last = labels.last()?;
        let hexish = last.strip_prefix("0x").is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        if last.bytes().all(|b| b.is_ascii_digit()) || hexish {
            return None;
        }
        Some(Host::Name(name))
    }
}

/// Parses IPv4 the way BSD `inet_aton` does: one to four parts separated by
/// dots, each decimal, octal (leading `0`) or hex (`0x`), the last part
/// filling the remaining bytes. `127.1` is 127.0.0.1, `2130706433` is
/// 127.0.0.1, `0177.0.0.1` is 127.0.0.1, `0x7f.1` is 127.0.0.1.
pub fn parse_ipv4_loose(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        values.push(parse_ipv4_part(part)?);
    }
    let (last, init) = values.split_last()?;
    let mut addr: u32 = 0;
    for (i, v) in init.iter().enumerate() {
        if *v > 0xff {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let remaining_bits = 32 - 8 * init.len() as u32;
    if remaining_bits < 32 && (*last >> remaining_bits) != 0 {
        return None;
    }
    Some(Ipv4Addr::from(addr | last))
}

fn parse_ipv4_part(part: &str) -> Option<u32> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// Decides whether an address is public enough to connect to without an
/// explicit allowlist entry. `Err` carries the reason, for the log only.
pub fn judge_ip(ip: IpAddr) -> Result<(), &'static str> {
    match ip {
        IpAddr::V4(v4) => judge_v4(v4),
        IpAddr::V6(v6) => judge_v6(v6),
    }
}

/// IPv4 ranges never reached by the default rule: (network, prefix, reason).
const DENIED_V4: &[([u8; 4], u32, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10/8)"),
    ([100, 64, 0, 0], 10, "shared address space / CGNAT (100.64/10)"),
    ([127, 0, 0, 0], 8, "loopback (127/8)"),
    ([169, 254, 0, 0], 16, "link-local (169.254/16)"),
    ([172, 16, 0, 0], 12, "private (172.16/12)"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments (192.0.0/24)"),
    ([192, 0, 2, 0], 24, "documentation (192.0.2/24)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99/24)"),
    ([192, 168, 0, 0], 16, "private (192.168/16)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113/24)"),
    ([224, 0, 0, 0], 4, "multicast (224/4)"),
    ([255, 255, 255, 255], 32, "broadcast"),
    ([240, 0, 0, 0], 4, "reserved (240/4)"),
];

fn judge_v4(ip: Ipv4Addr) -> Result<(), &'static str> {
    let addr = u32::from(ip);
    for (net, prefix, reason) in DENIED_V4 {
        let mask = u32::MAX << (32 - prefix);
        if addr & mask == u32::from_be_bytes(*net) {
            return Err(reason);
        }
    }
    Ok(())
}

fn judge_v6(ip: Ipv6Addr) -> Result<(), &'static str> {
    let seg = ip.segments();
    let bits = u128::from(ip);
    let in_net = |net: u128, prefix: u32| bits & (u128::MAX << (128 - prefix)) == net;
    let low_v4 = Ipv4Addr::from(bits as u32);

    if ip.is_unspecified() {
        return Err("unspecified (::)");
    }
    if ip.is_loopback() {
        return Err("loopback (::1)");
    }
    // Addresses that carry an IPv4 address: judge that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return judge_v4(v4).map_err(|_| "IPv4-mapped address of a denied IPv4 address");
    }
    if in_net(0, 96) {
        return judge_v4(low_v4).map_err(|_| "IPv4-compatible address of a denied IPv4 address");
    }
    if in_net(0x0064_ff9b << 96, 96) {
        return judge_v4(low_v4).map_err(|_| "NAT64 address of a denied IPv4 address");
    }
    if in_net(0x2002 << 112, 16) {
        let v4 = Ipv4Addr::from(((seg[1] as u32) << 16) | seg[2] as u32);
        return judge_v4(v4).map_err(|_| "6to4 address of a denied IPv4 address");
    }
    if in_net(0x2001 << 112, 32) {
        return Err("Teredo (2001::/32)");
    }
    if in_net(0x0064_ff9b_0001 << 80, 48) {
        return Err("local-use NAT64 (64:ff9b:1::/48)");
    }
    if in_net(0xff << 120, 8) {
        return Err("multicast (ff00::/8)");
    }
    if in_net(0xfc << 120, 7) {
        return Err("unique local (fc00::/7)");
    }
    if in_net(0xfe80 << 112, 10) {
        return Err("link-local (fe80::/10)");
    }
    if in_net(0xfec0 << 112, 10) {
        return Err("site-local (fec0::/10)");
    }
    // Everything else outside global unicast (2000::/3) is reserved,
    // discard-only (100::/64) or otherwise not a mail server.
    if !in_net(0x2000 << 112, 3) {
        return Err("not global unicast (outside 2000::/3)");
    }
    if in_net(0x2001_0db8 << 96, 32) {
        return Err("documentation (2001:db8::/32)");
    }
    if in_net(0x2001 << 112, 23) {
        return Err("IETF protocol assignments (2001::/23)");
    }
    if in_net(0x3fff << 112, 20) {
        return Err("documentation (3fff::/20)");
    }
    Ok(())
}

/// One `--allow` entry: a host and the ports allowed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub host: Host,
    pub ports: Vec<u16>,
}

impl FromStr for AllowEntry {
    type Err = String;

    /// `HOST:PORT[,PORT]…`, with IPv6 hosts in brackets: `[::1]:110,995`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid --allow entry {s:?}: expected HOST:PORT[,PORT]");
        let (host, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, rest) = rest.split_once(']').ok_or_else(bad)?;
            let ports = rest.strip_prefix(':').ok_or_else(bad)?;
            (&s[..v6.len() + 2], ports)
        } else {
            let (host, ports) = s.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(format!("invalid --allow entry {s:?}: write IPv6 as [ADDR]:PORT"));
            }
            (host, ports)
        };
        let host = Host::parse(host).ok_or_else(bad)?;
        let ports = ports
            .split(',')
            .map(|p| p.trim().parse::<u16>().ok().filter(|p| *p != 0))
            .collect::<Option<Vec<u16>>>()
            .ok_or_else(bad)?;
        Ok(AllowEntry { host, ports })
    }
}

/// Why a target was not reached. The client sees neither variant's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The policy says no: the client is told only "not allowed".
    Denied(String),
    /// An explicitly allowed name did not resolve (CONNECT_FAILED).
    ResolveFailed(String),
}

/// What a [`Resolver`] returns.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// A replacement for the system resolver (tests use one to make names
/// resolve to whatever they are testing).
#[derive(Clone)]
pub struct Resolver(pub Arc<dyn Fn(String, u16) -> ResolveFuture + Send + Sync>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}

/// Where the host's own addresses come from.
#[derive(Debug, Clone)]
pub enum HostAddresses {
    /// The interfaces, listed at every check.
    Interfaces,
    /// These (unit tests).
    Fixed(Vec<IpAddr>),
}

impl HostAddresses {
    fn list(&self) -> io::Result<Vec<IpAddr>> {
        match self {
            HostAddresses::Interfaces => {
                Ok(if_addrs::get_if_addrs()?.into_iter().map(|i| i.ip().to_canonical()).collect())
            }
            HostAddresses::Fixed(ips) => Ok(ips.clone()),
        }
    }
}

/// The allowlist and the address guard.
#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<AllowEntry>,
    resolve_timeout: Duration,
    resolver: Option<Resolver>,
    dns: Option<Dns>,
    default_ports: Vec<u16>,
    own: HostAddresses,
}

impl Policy {
    pub fn new(allow: Vec<AllowEntry>, resolve_timeout: Duration) -> Self {
        Policy {
            allow,
            resolve_timeout,
            resolver: None,
            dns: None,
            default_ports: DEFAULT_PORTS.to_vec(),
            own: HostAddresses::Interfaces,
        }
    }

    /// Resolves names with `dns` (unless a [`Resolver`] is set).
    pub fn with_dns(self, dns: Dns) -> Self {
        Policy { dns: Some(dns), ..self }
    }

    /// The host's own addresses from `own` instead of its interfaces.
    pub fn with_host_addresses(self, own: HostAddresses) -> Self {
        Policy { own, ..self }
    }

    /// The ports the default rule allows, instead of 110 and 995 (tests use
    /// a free port so that a leak would reach a listener they watch).
    pub fn with_default_ports(self, default_ports: Vec<u16>) -> Self {
        Policy { default_ports, ..self }
    }

    /// Resolves names with `resolver` instead of the system resolver.
    pub fn with_resolver(self, resolver: Option<Resolver>) -> Self {
        Policy { resolver, ..self }
    }

    /// Checks a target and returns the addresses to connect to, resolving
    /// names with the bridge's resolver (or the one set).
    pub async fn check(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let resolver = self.resolver.clone();
        let dns = self.dns.clone();
        self.check_with(host, port, async move |name: String, port: u16| match (resolver, dns) {
            (Some(Resolver(resolve)), _) => resolve(name, port).await,
            (None, Some(dns)) => dns.lookup(&name, port).await,
            (None, None) => Err(io::Error::other("no resolver configured")),
        })
        .await
    }

    /// [`Policy::check`] with the resolver passed in (tests use a fake one).
    pub async fn check_with<R>(&self, host: &str, port: u16, resolve: R) -> Result<Vec<SocketAddr>, Refusal>
    where
        R: AsyncFnOnce(String, u16) -> io::Result<Vec<SocketAddr>>,
    {
        let deny = |why: String| Err(Refusal::Denied(why));
        let Some(parsed) = Host::parse(host) else {
            return deny("malformed host".into());
        };
        let explicit = !self.allow.is_empty();
        if explicit {
            let listed = self.allow.iter().any(|e| e.host == parsed && e.ports.contains(&port));
            if !listed {
                return deny(format!("{parsed}:{port} is not in the allowlist"));
            }
        } else if !self.default_ports.contains(&port) {
            return deny(format!("port {port} is not one of {:?}", self.default_ports));
        }

        let addrs = match &parsed {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
            Host::Name(name) => {
                let looked_up = tokio::time::timeout(self.resolve_timeout, resolve(name.clone(), port)).await;
                let resolved = match looked_up {
                    Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
                    Ok(Ok(_)) => Err("no addresses".to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_string()),
                };
                match resolved {
                    Ok(addrs) => addrs,
                    Err(why) if explicit => {
                        return Err(Refusal::ResolveFailed(format!("{name} did not resolve: {why}")));
                    }
                    Err(why) => return deny(format!("{name} did not resolve: {why}")),
                }
            }
        };

        // An explicit entry is trusted whatever it resolves to; the default
        // rule wants every address public, so a name with one private
        // address among public ones is refused as a whole.
        if !explicit {
            let own = match self.own.list() {
                Ok(own) => own,
                Err(e) => return deny(format!("cannot list this host's addresses: {e}")),
            };
            for addr in &addrs {
                let ip = addr.ip();
                let verdict = judge_ip(ip).and_then(|()| match own.contains(&ip.to_canonical()) {
                    true => Err("one of this host's own addresses"),
                    false => Ok(()),
                });
                if let Err(why) = verdict {
                    return match &parsed {
                        Host::Ip(_) => deny(format!("address {ip}: {why}")),
                        Host::Name(_) => deny(format!("{parsed} resolves to {ip}: {why}")),
                    };
                }
            }
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn judge_ip_table() {
        // (address, allowed)
        let table: &[(&str, bool)] = &[
            // public
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("9.9.9.9", true),
            ("100.63.255.255", true),
            ("100.128.0.0", true),
            ("172.15.255.255", true),
            ("172.32.0.0", true),
            ("192.0.1.1", true),
            ("198.17.255.255", true),
            ("198.20.0.0", true),
            ("223.255.255.255", true),
            ("2001:4860:4860::8888", true),
            ("2606:4700:4700::1111", true),
            ("2a00:1450:4001:82a::2005", true),
            // IPv4 special ranges
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("10.0.0.1", false),
            ("10.255.255.255", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("169.254.0.1", false),
            ("100.64.0.1", false),
            ("100.127.255.255", false),
            ("192.0.0.1", false),
            ("192.0.0.170", false),
            ("192.0.2.1", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("192.88.99.1", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.254", false),
            ("255.255.255.255", false),
            // IPv6 special ranges
            ("::", false),
            ("::1", false),
            ("fc00::1", false),
            ("fd12:3456:789a::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("ff05::2", false),
            ("2001:db8::1", false),
            ("3fff::1", false),
            ("100::1", false),
            ("2001:2::1", false),
            ("2001:10::1", false),
            ("64:ff9b:1::1", false),
            ("4000::1", false),
            // IPv4 embedded in IPv6: the IPv4 address decides
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("::127.0.0.1", false),
            ("::10.1.2.3", false),
            ("::8.8.8.8", true),
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::8.8.8.8", true),
            ("2002:7f00:1::1", false),
            ("2002:a9fe:a9fe::1", false),
            ("2002:c0a8:101::1", false),
            ("2002:808:808::1", true),
            // Teredo: the embedded address is obfuscated, deny outright
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
            ("2001::1", false),
        ];
        for (addr, allowed) in table {
            let got = judge_ip(ip(addr));
            assert_eq!(got.is_ok(), *allowed, "{addr}: {got:?}");
        }
    }

    #[test]
    fn loose_ipv4_spellings_mean_the_address_they_spell() {
        let table: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("127.0.0.1")),
            ("2130706433", Some("127.0.0.1")),
            ("0177.0.0.1", Some("127.0.0.1")),
            ("0x7f.1", Some("127.0.0.1")),
            ("0X7F.0.0.1", Some("127.0.0.1")),
            ("127.1", Some("127.0.0.1")),
            ("127.0.1", Some("127.0.0.1")),
            ("0x7f000001", Some("127.0.0.1")),
            ("017700000001", Some("127.0.0.1")),
            ("0", Some("0.0.0.0")),
            ("169.254.43518", Some("169.254.169.254")),
            ("0xa9.0xfe.0xa9.0xfe", Some("169.254.169.254")),
            ("2852039166", Some("169.254.169.254")),
            ("8.8.8.8", Some("8.8.8.8")),
            ("134744072", Some("8.8.8.8")),
            ("256.0.0.1", None),
            ("1.2.3.4.5", None),
            ("08.0.0.1", None),
            ("0x", None),
            ("1..1", None),
            ("", None),
            ("4294967296", None),
            ("127.16777216", None),
            ("example.com", None),
        ];
        for (s, want) in table {
            let got = parse_ipv4_loose(s);
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn host_parse_normalises() {
        let table: &[(&str, Option<Host>)] = &[
            ("POP.Example.COM", Some(Host::Name("pop.example.com".into()))),
            ("pop.example.com.", Some(Host::Name("pop.example.com".into()))),
            ("localhost", Some(Host::Name("localhost".into()))),
            ("2130706433", Some(Host::Ip(ip("127.0.0.1")))),
            ("127.0.0.1.", Some(Host::Ip(ip("127.0.0.1")))),
            ("[::1]", Some(Host::Ip(ip("::1")))),
            ("::1", Some(Host::Ip(ip("::1")))),
            ("[::ffff:127.0.0.1]", Some(Host::Ip(ip("::ffff:127.0.0.1")))),
            ("fe80::1%eth0", None),
            ("[fe80::1%25eth0]", None),
            ("1.2.3.4.5", None),
            ("a.08", None),
            ("evil.0x7f", None),
            ("", None),
            ("a..b", None),
            ("-a.example", None),
            ("a b.example", None),
            ("host/path", None),
            ("user@host", None),
            ("[::1", None),
            ("127.0.0.1:110", None),
        ];
        for (s, want) in table {
            assert_eq!(&Host::parse(s), want, "{s:?}");
        }
        assert_eq!(Host::parse(&"a".repeat(300)), None);
    }

    #[test]
    fn allow_entry_parse() {
        let e: AllowEntry = "127.0.0.1:110".parse().unwrap();
        assert_eq!(e.host, Host::Ip(ip("127.0.0.1")));
        assert_eq!(e.ports, vec![110]);
        let e: AllowEntry = "Mail.Example.org:110,995".parse().unwrap();
        assert_eq!(e.host, Host::Name("mail.example.org".into()));
        assert_eq!(e.ports, vec![110, 995]);
        let e: AllowEntry = "[::1]:110".parse().unwrap();
        assert_eq!(e.host, Host::Ip(ip("::1")));
        for bad in [
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:0",
            "127.0.0.1:70000",
            "::1:110",
            "[::1]110",
            ":110",
            "host:110,x",
        ] {
            assert!(bad.parse::<AllowEntry>().is_err(), "{bad}");
        }
    }

    fn fake(addrs: &'static [&'static str]) -> impl AsyncFnOnce(String, u16) -> io::Result<Vec<SocketAddr>> {
        async move |_name: String, port: u16| {
            Ok(addrs.iter().map(|a| SocketAddr::new(a.parse().unwrap(), port)).collect())
        }
    }

    async fn nxdomain(_name: String, _port: u16) -> io::Result<Vec<SocketAddr>> {
        Err(io::Error::other("no such host"))
    }

    fn open() -> Policy {
        Policy::new(vec![], Duration::from_secs(5))
    }

    #[tokio::test]
    async fn the_hosts_own_addresses_are_denied_unless_allowed() {
        let own = HostAddresses::Fixed(vec![ip("11.22.33.44"), ip("2a00:1450::44")]);
        let p = open().with_host_addresses(own.clone());
        for host in ["11.22.33.44", "::ffff:11.22.33.44", "[2a00:1450::44]"] {
            assert!(denied(p.check_with(host, 995, nxdomain).await), "{host}");
        }
        assert!(denied(p.check_with("own.example", 995, fake(&["8.8.8.8", "11.22.33.44"])).await));
        assert!(p.check_with("11.22.33.45", 995, nxdomain).await.is_ok());
        // An allowlist entry may name the host itself on purpose.
        let p = allowing(&["11.22.33.44:110"]).with_host_addresses(own);
        assert!(p.check_with("11.22.33.44", 110, nxdomain).await.is_ok());
    }

    fn allowing(entries: &[&str]) -> Policy {
        Policy::new(entries.iter().map(|e| e.parse().unwrap()).collect(), Duration::from_secs(5))
    }

    fn denied(r: Result<Vec<SocketAddr>, Refusal>) -> bool {
        matches!(r, Err(Refusal::Denied(_)))
    }

    #[tokio::test]
    async fn default_rule_allows_public_hosts_on_pop_ports() {
        let p = open();
        let got = p.check_with("8.8.8.8", 995, nxdomain).await.unwrap();
        assert_eq!(got, vec!["8.8.8.8:995".parse().unwrap()]);
        let got = p.check_with("[2001:4860:4860::8888]", 110, nxdomain).await.unwrap();
        assert_eq!(got, vec!["[2001:4860:4860::8888]:110".parse().unwrap()]);
        let got =
            p.check_with("pop.example.com", 995, fake(&["93.184.216.34", "2606:2800::1"])).await.unwrap();
        assert_eq!(got.len(), 2);
    }

    #[tokio::test]
    async fn default_rule_denies() {
        let p = open();
        // wrong port
        assert!(denied(p.check_with("8.8.8.8", 25, nxdomain).await));
        assert!(denied(p.check_with("8.8.8.8", 143, nxdomain).await));
        // private literals in every spelling
        for host in [
            "127.0.0.1",
            "2130706433",
            "0177.0.0.1",
            "0x7f.1",
            "127.1",
            "169.254.169.254",
            "0xa9fea9fe",
            "0.0.0.0",
            "0",
            "10.0.0.1",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:169.254.169.254]",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(denied(p.check_with(host, 110, nxdomain).await), "{host}");
        }
        // names resolving to private addresses, wholly or partly
        assert!(denied(p.check_with("localhost", 110, fake(&["127.0.0.1", "::1"])).await));
        assert!(denied(p.check_with("rebind.example", 995, fake(&["8.8.8.8", "10.0.0.1"])).await));
        assert!(denied(p.check_with("empty.example", 995, fake(&[])).await));
        // unresolvable names look the same as any other denial
        assert!(denied(p.check_with("nx.example", 995, nxdomain).await));
        // malformed hosts
        for host in ["", "a b", "1.2.3.4.5", "x.08", "host:110", "[fe80::1%25lo]"] {
            assert!(denied(p.check_with(host, 110, nxdomain).await), "{host:?}");
        }
    }

    #[tokio::test]
    async fn resolution_has_a_deadline() {
        let p = Policy::new(vec![], Duration::from_millis(50));
        let slow = async |_: String, _: u16| {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(vec!["8.8.8.8:995".parse().unwrap()])
        };
        assert!(denied(p.check_with("slow.example", 995, slow).await));
    }

    #[tokio::test]
    async fn allowlist_is_exclusive_and_may_name_private_hosts() {
        let p = allowing(&["127.0.0.1:1110,1995", "LocalHost:2110", "[::1]:110"]);
        let got = p.check_with("127.0.0.1", 1110, nxdomain).await.unwrap();
        assert_eq!(got, vec!["127.0.0.1:1110".parse().unwrap()]);
        // same address, other spelling
        assert!(p.check_with("2130706433", 1995, nxdomain).await.is_ok());
        // names match case-insensitively and connect to what was resolved
        let got = p.check_with("LOCALHOST", 2110, fake(&["127.0.0.1"])).await.unwrap();
        assert_eq!(got, vec!["127.0.0.1:2110".parse().unwrap()]);
        assert!(p.check_with("::1", 110, nxdomain).await.is_ok());
        // anything not listed is denied, even public hosts on POP ports
        assert!(denied(p.check_with("127.0.0.1", 2110, nxdomain).await));
        assert!(denied(p.check_with("8.8.8.8", 995, nxdomain).await));
        assert!(denied(p.check_with("127.0.0.2", 1110, nxdomain).await));
        assert!(denied(p.check_with("localhost", 1110, fake(&["127.0.0.1"])).await));
        assert!(denied(p.check_with("::1", 995, nxdomain).await));
        // an explicitly allowed name that does not resolve fails to connect
        assert!(matches!(p.check_with("localhost", 2110, nxdomain).await, Err(Refusal::ResolveFailed(_))));
    }
}
