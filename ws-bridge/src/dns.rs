//! Name resolution for targets: hickory's asynchronous resolver, with its
//! own deadline and a cap on lookups in flight.
//!
//! The system resolver (`getaddrinfo`) blocks a thread for as long as it
//! retries, whatever deadline the caller gave up at: a name in a zone whose
//! servers never answer held a thread from tokio's blocking pool for the
//! resolver's whole retry time, and 512 such names queued every other
//! lookup. Here a lookup is a future on the runtime: no thread is held,
//! hickory stops by itself within `resolve_timeout`, and at most
//! `max_lookups` run at once (the rest wait for a place, within their
//! deadline).
//!
//! Name servers come from `/etc/resolv.conf` (and names from `/etc/hosts`),
//! or from `dns_server`. Both A and AAAA records are asked for, so the
//! policy judges every address the name has.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts},
    net::runtime::TokioRuntimeProvider,
};
use tokio::sync::Semaphore;

/// The bridge's resolver. Cheap to clone.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    in_flight: Arc<Semaphore>,
    max_lookups: usize,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("max_lookups", &self.max_lookups).finish_non_exhaustive()
    }
}

/// A `dns_server` entry: an address, with a port or not (53).
pub fn parse_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .or_else(|_| {
            let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or(())?;
            inner.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)).map_err(|_| ())
        })
        .map_err(|_| format!("dns_server {s:?}: expected an address, e.g. 192.0.2.53 or [2001:db8::53]:5353"))
}

impl Dns {
    /// A resolver asking `servers`, or, when there are none, the servers
    /// in the system configuration. `Ok` carries a warning when the
    /// system configuration could not be read (then only `/etc/hosts`
    /// answers).
    pub fn new(
        servers: &[SocketAddr],
        timeout: Duration,
        max_lookups: usize,
    ) -> Result<(Dns, Option<String>), String> {
        let provider = TokioRuntimeProvider::default();
        let mut warning = None;
        let mut builder = if servers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => builder,
                Err(e) => {
                    warning = Some(format!(
                        "cannot read the system's DNS configuration ({e}): names resolve from /etc/hosts only; set dns_server"
                    ));
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_name_servers(Vec::new()),
                        provider,
                    )
                }
            }
        } else {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let connection = |mut c: ConnectionConfig| {
                        c.port = server.port();
                        c
                    };
                    NameServerConfig::new(
                        server.ip(),
                        true,
                        vec![connection(ConnectionConfig::udp()), connection(ConnectionConfig::tcp())],
                    )
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), provider)
        };
        let options: &mut ResolverOpts = builder.options_mut();
        // Two tries within the deadline, so that hickory's own work ends
        // about when the caller stops waiting.
        options.timeout = (timeout / 2).max(Duration::from_millis(100));
        options.attempts = 1;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let resolver = builder.build().map_err(|e| format!("DNS resolver: {e}"))?;
        let max_lookups = max_lookups.max(1);
        Ok((Dns { resolver, in_flight: Arc::new(Semaphore::new(max_lookups)), max_lookups }, warning))
    }

    /// Looks `name` up (A and AAAA); the addresses with `port`.
    pub async fn lookup(&self, name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let _place = self.in_flight.acquire().await.map_err(io::Error::other)?;
        let found = self.resolver.lookup_ip(name).await.map_err(io::Error::other)?;
        Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }

    /// Lookups running now (not those waiting for a place).
    pub fn in_flight(&self) -> usize {
        self.max_lookups - self.in_flight.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server("192.0.2.53").unwrap(), "192.0.2.53:53".parse().unwrap());
        assert_eq!(parse_server("192.0.2.53:5353").unwrap(), "192.0.2.53:5353".parse().unwrap());
        assert_eq!(parse_server("2001:db8::53").unwrap(), "[2001:db8::53]:53".parse().unwrap());
        assert_eq!(parse_server("[2001:db8::53]").unwrap(), "[2001:db8::53]:53".parse().unwrap());
        assert_eq!(parse_server("[2001:db8::53]:5353").unwrap(), "[2001:db8::53]:5353".parse().unwrap());
        for bad in ["", "dns.example", "192.0.2.53:x", "[::1"] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }
}
