//! Admission: how many sessions one replica runs, per client address and in
//! total, and how fast one address may open new ones.
//!
//! All of it is per replica and in memory: behind a load balancer each
//! replica enforces its own share, which keeps replicas stateless.

use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::config::Limits;

/// The unit limits are counted in: an IPv4 address, or an IPv6 /64 (one
/// subscriber usually holds a whole /64). IPv4-mapped IPv6 counts as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(Ipv4Addr),
    V6Net(u64),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => ClientKey::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6Net(net) => {
                write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(*net) << 64))
            }
        }
    }
}

/// Why a session was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address opened sessions faster than `connect_rate`.
    Rate,
    /// `max_sessions` are running.
    Total,
    /// `max_sessions_per_ip` are running for this address.
    PerIp,
}

impl Refused {
    /// What the client is told (with `BRIDGE_REJECTED`, close 4429).
    pub fn message(self) -> &'static str {
        match self {
            Refused::Rate => "too many new sessions from your address; try again later",
            Refused::Total => "the bridge is at its session limit; try again later",
            Refused::PerIp => "too many sessions from your address",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    total: usize,
    per_ip: HashMap<ClientKey, usize>,
    buckets: HashMap<ClientKey, Bucket>,
}

/// Buckets kept before full (idle) ones are forgotten.
const MAX_BUCKETS: usize = 65_536;

/// The admission counters of one replica.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    inner: Mutex<Inner>,
}

/// A running session's place; dropping it frees the place.
#[derive(Debug)]
pub struct Admission {
    limiter: Arc<Limiter>,
    key: ClientKey,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.limiter.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.total = inner.total.saturating_sub(1);
        if let Some(n) = inner.per_ip.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&self.key);
            }
        }
    }
}

impl Limiter {
    pub fn new(limits: Limits) -> Arc<Limiter> {
        Arc::new(Limiter { limits, inner: Mutex::new(Inner::default()) })
    }

    /// Admits a new session from `key`, or says why not.
    pub fn admit(self: &Arc<Self>, key: ClientKey) -> Result<Admission, Refused> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, key: ClientKey, now: Instant) -> Result<Admission, Refused> {
        let l = &self.limits;
        let burst = f64::from(l.connect_burst);
        let per_sec = f64::from(l.connect_rate) / 60.0;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.buckets.len() >= MAX_BUCKETS {
            inner.buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let bucket = inner.buckets.entry(key).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_sec).min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(Refused::Rate);
        }
        if inner.total >= l.max_sessions {
            return Err(Refused::Total);
        }
        let running = inner.per_ip.get(&key).copied().unwrap_or(0);
        if running >= l.max_sessions_per_ip {
            return Err(Refused::PerIp);
        }
        if let Some(bucket) = inner.buckets.get_mut(&key) {
            bucket.tokens -= 1.0;
        }
        inner.total += 1;
        *inner.per_ip.entry(key).or_insert(0) += 1;
        Ok(Admission { limiter: self.clone(), key })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
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
}
