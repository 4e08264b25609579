//! Admission: what one replica takes on, per client and in total.
//!
//! ```text
//!  accept ─► HTTP connection caps (total, per client) ─► … ─► /pop3:
//!  admit ─► sessions (total, per client), new sessions per client (token bucket),
//!           transfer allowance left
//!  before each upstream connect ─► sessions per server address, different
//!           servers per client per minute, new connections overall (token bucket)
//!  while relaying ─► bytes per client per hour (token bucket)
//! ```
//!
//! A client is an IPv4 address or an IPv6 prefix (`ipv6_prefix`, a /64 by
//! default). All of it is per replica and in memory: behind a load balancer
//! each replica enforces its own share, which keeps replicas stateless.
//!
//! The per-client table has a hard bound ([`MAX_CLIENTS`], or more when
//! `max_sessions` is larger). When it is full, a new client takes the place
//! of the oldest entry that has no running session: one pop from a queue,
//! never a scan of the table. An evicted client starts afresh (a full
//! burst), which costs an attacker [`MAX_CLIENTS`] other addresses first.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::{config::Limits, metrics::Reject};

/// Clients remembered (rate buckets, destinations, bytes) at most.
pub const MAX_CLIENTS: usize = 65_536;

/// The window for `max_destinations_per_ip`.
pub const DESTINATION_WINDOW: Duration = Duration::from_secs(60);

/// The unit limits are counted in: an IPv4 address, or an IPv6 prefix of
/// the configured length (one subscriber usually holds a whole /64 or
/// more). IPv4-mapped IPv6 counts as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(Ipv4Addr),
    /// The address with the bits past the prefix cleared, and the prefix.
    V6Net(Ipv6Addr, u8),
}

impl ClientKey {
    pub fn of(ip: IpAddr, v6_prefix: u8) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => {
                    let prefix = v6_prefix.min(128);
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    ClientKey::V6Net(Ipv6Addr::from(u128::from(v6) & mask), prefix)
                }
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6Net(net, prefix) => write!(f, "{net}/{prefix}"),
        }
    }
}

/// Why a session (or an upstream connection, or relayed bytes) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client opened sessions faster than `connect_rate`.
    Rate,
    /// `max_sessions` are running.
    Total,
    /// `max_sessions_per_ip` are running for this client.
    PerIp,
    /// `max_sessions_per_dest` are running to this server address.
    PerDest,
    /// The client reached `max_destinations_per_ip` other servers this minute.
    Destinations,
    /// The bridge opened upstream connections faster than `global_connect_rate`.
    GlobalRate,
    /// The client relayed `max_bytes_per_ip_hour`.
    Bytes,
}

impl Refused {
    /// What the client is told (with `BRIDGE_REJECTED`, close 4429).
    pub fn message(self) -> &'static str {
        match self {
            Refused::Rate => "too many new sessions from your address; try again later",
            Refused::Total => "the bridge is at its session limit; try again later",
            Refused::PerIp => "too many sessions from your address",
            Refused::PerDest => "too many sessions to this server through the bridge; try again later",
            Refused::Destinations => "too many different servers from your address; try again later",
            Refused::GlobalRate => "the bridge is opening connections too fast; try again later",
            Refused::Bytes => "your address used up its transfer allowance for now; try again later",
        }
    }

    /// The `/metrics` reason.
    pub fn reject(self) -> Reject {
        match self {
            Refused::Rate => Reject::Rate,
            Refused::Total => Reject::MaxSessions,
            Refused::PerIp => Reject::MaxSessionsPerIp,
            Refused::PerDest => Reject::MaxSessionsPerDest,
            Refused::Destinations => Reject::Destinations,
            Refused::GlobalRate => Reject::GlobalRate,
            Refused::Bytes => Reject::Bytes,
        }
    }
}

/// A token bucket: `tokens` as of `at`, refilled continuously.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket { tokens: capacity, at: now }
    }

    /// Tokens now, after refilling at `per_sec` up to `capacity`.
    fn refill(&mut self, now: Instant, per_sec: f64, capacity: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.at = now;
        self.tokens
    }
}

/// What the bridge remembers about one client.
#[derive(Debug)]
struct Client {
    /// New sessions (`connect_rate`, `connect_burst`).
    sessions: Bucket,
    /// Sessions running now; a client with any is never evicted.
    running: usize,
    /// Bytes (`max_bytes_per_ip_hour`, refilled over the hour).
    bytes: Bucket,
    /// Servers reached within the last [`DESTINATION_WINDOW`], and when.
    destinations: Vec<(SocketAddr, Instant)>,
}

#[derive(Debug)]
struct Inner {
    total: usize,
    clients: HashMap<ClientKey, Client>,
    /// Every key of `clients`, oldest first: the eviction order.
    order: VecDeque<ClientKey>,
    /// Sessions per server address.
    destinations: HashMap<IpAddr, usize>,
    /// New upstream connections, all clients together.
    global: Bucket,
}

/// The admission counters of one replica.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    bound: usize,
    inner: Mutex<Inner>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Arc<Limiter> {
        Limiter::with_bound(limits, MAX_CLIENTS)
    }

    /// A limiter remembering at most `bound` clients (at least one more
    /// than `max_sessions`, so that there is always one to evict).
    pub fn with_bound(limits: Limits, bound: usize) -> Arc<Limiter> {
        let now = Instant::now();
        Arc::new(Limiter {
            bound: bound.max(limits.max_sessions + 1),
            inner: Mutex::new(Inner {
                total: 0,
                clients: HashMap::new(),
                order: VecDeque::new(),
                destinations: HashMap::new(),
                global: Bucket::full(f64::from(limits.global_connect_burst), now),
            }),
            limits,
        })
    }

    /// The key `ip` is counted under.
    pub fn key(&self, ip: IpAddr) -> ClientKey {
        ClientKey::of(ip, self.limits.ipv6_prefix)
    }

    /// How many clients are remembered now.
    pub fn remembered(&self) -> usize {
        self.lock().clients.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn byte_capacity(&self) -> f64 {
        self.limits.max_bytes_per_ip_hour as f64
    }

    /// Admits a new session from `key`, or says why not.
    pub fn admit(self: &Arc<Self>, key: ClientKey) -> Result<Admission, Refused> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, key: ClientKey, now: Instant) -> Result<Admission, Refused> {
        let l = &self.limits;
        let burst = f64::from(l.connect_burst);
        let per_sec = f64::from(l.connect_rate) / 60.0;
        let bytes = self.byte_capacity();
        let mut inner = self.lock();
        let inner = &mut *inner;
        if !inner.clients.contains_key(&key) {
            if inner.clients.len() >= self.bound {
                evict_one(inner);
            }
            let client = Client {
                sessions: Bucket::full(burst, now),
                running: 0,
                bytes: Bucket::full(bytes, now),
                destinations: Vec::new(),
            };
            inner.clients.insert(key, client);
            inner.order.push_back(key);
        }
        let client = inner.clients.get_mut(&key).expect("inserted above");
        if client.sessions.refill(now, per_sec, burst) < 1.0 {
            return Err(Refused::Rate);
        }
        if client.bytes.refill(now, bytes / 3600.0, bytes) < 1.0 {
            return Err(Refused::Bytes);
        }
        if inner.total >= l.max_sessions {
            return Err(Refused::Total);
        }
        if client.running >= l.max_sessions_per_ip {
            return Err(Refused::PerIp);
        }
        client.sessions.tokens -= 1.0;
        client.running += 1;
        inner.total += 1;
        Ok(Admission { limiter: self.clone(), key })
    }
}

/// Forgets the oldest client without a running session. Running clients
/// met on the way go to the back of the queue; there are at most
/// `max_sessions` of them, and the bound is larger, so one is found.
fn evict_one(inner: &mut Inner) {
    for _ in 0..inner.order.len() {
        let Some(key) = inner.order.pop_front() else { return };
        match inner.clients.get(&key) {
            Some(client) if client.running > 0 => inner.order.push_back(key),
            Some(_) => {
                inner.clients.remove(&key);
                return;
            }
            None => {}
        }
    }
}

/// A running session's place; dropping it frees the place.
#[derive(Debug)]
pub struct Admission {
    limiter: Arc<Limiter>,
    key: ClientKey,
}

impl Admission {
    pub fn key(&self) -> ClientKey {
        self.key
    }

    /// Before connecting to `addr`: checks the sessions running to that
    /// address, the client's different servers this minute and the
    /// bridge's connection rate, and takes a place in all three. The place
    /// at `addr` is held until the returned slot is dropped.
    pub fn reserve(&self, addr: SocketAddr) -> Result<DestSlot, Refused> {
        self.reserve_at(addr, Instant::now())
    }

    fn reserve_at(&self, addr: SocketAddr, now: Instant) -> Result<DestSlot, Refused> {
        let limiter = &self.limiter;
        let l = &limiter.limits;
        let mut inner = limiter.lock();
        let inner = &mut *inner;
        let running_there = inner.destinations.get(&addr.ip()).copied().unwrap_or(0);
        if running_there >= l.max_sessions_per_dest {
            return Err(Refused::PerDest);
        }
        let Some(client) = inner.clients.get_mut(&self.key) else {
            // Unreachable: a client with a running session is never evicted.
            return Err(Refused::Destinations);
        };
        client.destinations.retain(|(_, at)| now.saturating_duration_since(*at) < DESTINATION_WINDOW);
        let known = client.destinations.iter().position(|(d, _)| *d == addr);
        if known.is_none() && client.destinations.len() >= l.max_destinations_per_ip {
            return Err(Refused::Destinations);
        }
        let burst = f64::from(l.global_connect_burst);
        let per_sec = f64::from(l.global_connect_rate) / 60.0;
        if inner.global.refill(now, per_sec, burst) < 1.0 {
            return Err(Refused::GlobalRate);
        }
        inner.global.tokens -= 1.0;
        match known {
            Some(i) => client.destinations[i].1 = now,
            None => client.destinations.push((addr, now)),
        }
        *inner.destinations.entry(addr.ip()).or_insert(0) += 1;
        Ok(DestSlot { limiter: limiter.clone(), ip: addr.ip() })
    }

    /// Pays for `n` relayed bytes out of the client's hourly allowance.
    /// `Err` when it does not cover them; the allowance is then spent (the
    /// bytes came in, and the session ends).
    pub fn charge(&self, n: usize) -> Result<(), Refused> {
        self.charge_at(n, Instant::now())
    }

    fn charge_at(&self, n: usize, now: Instant) -> Result<(), Refused> {
        let capacity = self.limiter.byte_capacity();
        let mut inner = self.limiter.lock();
        let Some(client) = inner.clients.get_mut(&self.key) else { return Ok(()) };
        if client.bytes.refill(now, capacity / 3600.0, capacity) < n as f64 {
            client.bytes.tokens = 0.0;
            return Err(Refused::Bytes);
        }
        client.bytes.tokens -= n as f64;
        Ok(())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.limiter.lock();
        inner.total = inner.total.saturating_sub(1);
        if let Some(client) = inner.clients.get_mut(&self.key) {
            client.running = client.running.saturating_sub(1);
        }
    }
}

/// A session's place at one server address.
#[derive(Debug)]
pub struct DestSlot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Drop for DestSlot {
    fn drop(&mut self) {
        let mut inner = self.limiter.lock();
        if let Some(n) = inner.destinations.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.destinations.remove(&self.ip);
            }
        }
    }
}

/// Open HTTP connections, counted from accept (before any byte is read),
/// in total and per client.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max: usize,
    max_per_ip: usize,
    v6_prefix: u8,
    inner: Mutex<(usize, HashMap<ClientKey, usize>)>,
}

/// Why an HTTP connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefused {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_ip` are open from this client.
    PerIp,
}

impl ConnectionRefused {
    pub fn reject(self) -> Reject {
        match self {
            ConnectionRefused::Total => Reject::MaxConnections,
            ConnectionRefused::PerIp => Reject::MaxConnectionsPerIp,
        }
    }
}

impl ConnectionLimiter {
    pub fn new(limits: &Limits) -> Arc<ConnectionLimiter> {
        Arc::new(ConnectionLimiter {
            max: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            v6_prefix: limits.ipv6_prefix,
            inner: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a place for a connection from `peer`; `per_ip: false` for
    /// trusted proxies, whose connections carry many clients.
    pub fn open(self: &Arc<Self>, peer: IpAddr, per_ip: bool) -> Result<ConnectionPlace, ConnectionRefused> {
        let key = ClientKey::of(peer, self.v6_prefix);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *inner;
        if *total >= self.max {
            return Err(ConnectionRefused::Total);
        }
        let mine = per_client.get(&key).copied().unwrap_or(0);
        if per_ip && mine >= self.max_per_ip {
            return Err(ConnectionRefused::PerIp);
        }
        *total += 1;
        *per_client.entry(key).or_insert(0) += 1;
        Ok(ConnectionPlace { limiter: self.clone(), key })
    }

    /// HTTP connections open now.
    pub fn open_now(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// An open HTTP connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionPlace {
    limiter: Arc<ConnectionLimiter>,
    key: ClientKey,
}

impl Drop for ConnectionPlace {
    fn drop(&mut self) {
        let mut inner = self.limiter.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *inner;
        *total = total.saturating_sub(1);
        if let Some(n) = per_client.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap(), 64)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_per_prefix_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        // A /48 is one client under ipv6_prefix = 48.
        let k48 = |s: &str| ClientKey::of(s.parse().unwrap(), 48);
        assert_eq!(k48("2001:db8:1:2::1"), k48("2001:db8:1:ffff::1"));
        assert_ne!(k48("2001:db8:1::1"), k48("2001:db8:2::1"));
        assert_eq!(k48("2001:db8:1:2::1").to_string(), "2001:db8:1::/48");
        assert_eq!(ClientKey::of("2001:db8::1".parse().unwrap(), 128).to_string(), "2001:db8::1/128");
        assert_eq!(ClientKey::of("2001:db8::1".parse().unwrap(), 0).to_string(), "::/0");
    }

    #[test]
    fn per_ip_and_total_limits_free_places_on_drop() {
        let l = Limiter::new(Limits { max_sessions: 3, max_sessions_per_ip: 2, ..Limits::default() });
        let a1 = l.admit(key("192.0.2.1")).unwrap();
        let _a2 = l.admit(key("192.0.2.1")).unwrap();
        assert_eq!(l.admit(key("192.0.2.1")).unwrap_err(), Refused::PerIp);
        let _b1 = l.admit(key("192.0.2.2")).unwrap();
        assert_eq!(l.admit(key("192.0.2.3")).unwrap_err(), Refused::Total);
        drop(a1);
        assert!(l.admit(key("192.0.2.1")).is_ok());
    }

    #[test]
    fn connect_rate_is_a_token_bucket_per_address() {
        let l = Limiter::new(Limits { connect_rate: 60, connect_burst: 2, ..Limits::default() });
        let t0 = Instant::now();
        let k = key("192.0.2.1");
        drop(l.admit_at(k, t0).unwrap());
        drop(l.admit_at(k, t0).unwrap());
        assert_eq!(l.admit_at(k, t0).unwrap_err(), Refused::Rate);
        assert!(l.admit_at(key("192.0.2.2"), t0).is_ok(), "other addresses are not affected");
        // 60 per minute: one more after a second.
        assert!(l.admit_at(k, t0 + Duration::from_millis(1010)).is_ok());
        assert_eq!(l.admit_at(k, t0 + Duration::from_millis(1020)).unwrap_err(), Refused::Rate);
    }

    #[test]
    fn the_client_table_has_a_hard_bound_and_evicts_the_oldest_idle_client() {
        // Every client has used its bucket (none is "full" and forgettable
        // by refill), and there are more of them than the bound.
        let l = Limiter::with_bound(Limits { max_sessions: 2, ..Limits::default() }, 1000);
        let t0 = Instant::now();
        let running = l.admit_at(key("10.0.0.0"), t0).unwrap();
        for i in 1..5000u32 {
            drop(l.admit_at(ClientKey::V4(Ipv4Addr::from(0x0a00_0000 + i)), t0).unwrap());
            assert!(l.remembered() <= 1000, "{} clients remembered", l.remembered());
        }
        assert_eq!(l.remembered(), 1000);
        // The client with a running session was never forgotten: its burst
        // is still spent by one.
        let inner = l.lock();
        let kept = inner.clients.get(&key("10.0.0.0")).expect("running client kept");
        assert_eq!(kept.running, 1);
        assert_eq!(kept.sessions.tokens, f64::from(Limits::default().connect_burst) - 1.0);
        // The newest are remembered, the oldest idle ones are gone.
        assert!(inner.clients.contains_key(&ClientKey::V4(Ipv4Addr::from(0x0a00_0000 + 4999))));
        assert!(!inner.clients.contains_key(&ClientKey::V4(Ipv4Addr::from(0x0a00_0000 + 1))));
        assert_eq!(inner.order.len(), inner.clients.len());
        drop(inner);
        drop(running);
    }

    #[test]
    fn sessions_per_destination_are_capped_across_clients() {
        let l = Limiter::new(Limits { max_sessions_per_dest: 2, ..Limits::default() });
        let (a, b, c) = (
            l.admit(key("192.0.2.1")).unwrap(),
            l.admit(key("192.0.2.2")).unwrap(),
            l.admit(key("192.0.2.3")).unwrap(),
        );
        let s1 = a.reserve(addr("203.0.113.5:110")).unwrap();
        let _s2 = b.reserve(addr("203.0.113.5:995")).unwrap();
        assert_eq!(
            c.reserve(addr("203.0.113.5:110")).unwrap_err(),
            Refused::PerDest,
            "the address counts, not the port"
        );
        assert!(c.reserve(addr("203.0.113.6:110")).is_ok());
        drop(s1);
        assert!(c.reserve(addr("203.0.113.5:110")).is_ok());
    }

    #[test]
    fn distinct_destinations_per_client_per_minute() {
        let l = Limiter::new(Limits { max_destinations_per_ip: 2, ..Limits::default() });
        let a = l.admit(key("192.0.2.1")).unwrap();
        let t0 = Instant::now();
        drop(a.reserve_at(addr("203.0.113.5:110"), t0).unwrap());
        drop(a.reserve_at(addr("203.0.113.6:110"), t0).unwrap());
        // the same ones again: fine; a third: refused, for a minute
        drop(a.reserve_at(addr("203.0.113.5:110"), t0).unwrap());
        assert_eq!(a.reserve_at(addr("203.0.113.5:111"), t0).unwrap_err(), Refused::Destinations);
        assert_eq!(
            a.reserve_at(addr("203.0.113.7:110"), t0 + Duration::from_secs(59)).unwrap_err(),
            Refused::Destinations
        );
        // another client is not affected
        let b = l.admit(key("192.0.2.2")).unwrap();
        assert!(b.reserve_at(addr("203.0.113.7:110"), t0).is_ok());
        // a minute after the last use of the first two, room again
        assert!(a.reserve_at(addr("203.0.113.7:110"), t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn new_upstream_connections_overall_are_a_token_bucket() {
        let l =
            Limiter::new(Limits { global_connect_rate: 60, global_connect_burst: 2, ..Limits::default() });
        let t0 = Instant::now();
        let a = l.admit(key("192.0.2.1")).unwrap();
        let b = l.admit(key("192.0.2.2")).unwrap();
        drop(a.reserve_at(addr("203.0.113.5:110"), t0).unwrap());
        drop(b.reserve_at(addr("203.0.113.6:110"), t0).unwrap());
        assert_eq!(a.reserve_at(addr("203.0.113.5:110"), t0).unwrap_err(), Refused::GlobalRate);
        assert!(b.reserve_at(addr("203.0.113.6:110"), t0 + Duration::from_millis(1010)).is_ok());
    }

    #[test]
    fn bytes_per_client_per_hour() {
        let l = Limiter::new(Limits { max_bytes_per_ip_hour: 3600, ..Limits::default() });
        let k = key("192.0.2.1");
        let t0 = Instant::now();
        let a = l.admit_at(k, t0).unwrap();
        a.charge_at(3000, t0).unwrap();
        a.charge_at(500, t0).unwrap();
        // Not covered: refused, and what was left is spent too.
        assert_eq!(a.charge_at(101, t0).unwrap_err(), Refused::Bytes);
        assert_eq!(a.charge_at(1, t0).unwrap_err(), Refused::Bytes);
        // Empty: new sessions from the client are refused too.
        assert_eq!(l.admit_at(k, t0).unwrap_err(), Refused::Bytes);
        assert!(l.admit_at(key("192.0.2.2"), t0).is_ok());
        // 3600 per hour is one per second.
        a.charge_at(10, t0 + Duration::from_millis(10_100)).unwrap();
        assert_eq!(a.charge_at(2, t0 + Duration::from_millis(10_100)).unwrap_err(), Refused::Bytes);
    }

    #[test]
    fn http_connections_per_client_and_in_total_and_trusted_proxies_exempt() {
        let c = ConnectionLimiter::new(&Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a1 = c.open(ip("192.0.2.1"), true).unwrap();
        let _a2 = c.open(ip("192.0.2.1"), true).unwrap();
        assert_eq!(c.open(ip("192.0.2.1"), true).unwrap_err(), ConnectionRefused::PerIp);
        let _p = c.open(ip("192.0.2.1"), false).unwrap();
        assert_eq!(c.open(ip("192.0.2.2"), true).unwrap_err(), ConnectionRefused::Total);
        drop(a1);
        assert_eq!(c.open_now(), 2);
        assert!(c.open(ip("192.0.2.2"), true).is_ok());
    }
}
