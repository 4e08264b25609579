//! The counters behind `/metrics`, in the Prometheus text format
//! (version 0.0.4), written by hand: a few atomics and two histograms.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::Duration,
};

/// Why a session (or a WebSocket request) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// `Origin` not in `--origin` (HTTP 403, before the upgrade).
    Origin,
    /// The target is not allowed (or does not resolve, by default rule).
    Policy,
    /// Missing, invalid, expired or wrong-destination token.
    Token,
    /// `connect_rate` exceeded.
    Rate,
    /// `max_sessions` reached.
    MaxSessions,
    /// `max_sessions_per_ip` reached.
    MaxSessionsPerIp,
    /// `max_sessions_per_dest` reached for the server's address.
    MaxSessionsPerDest,
    /// `max_destinations_per_ip` reached this minute.
    Destinations,
    /// `global_connect_rate` exceeded.
    GlobalRate,
    /// `max_bytes_per_ip_hour` used up (refused, or a session ended).
    Bytes,
    /// An HTTP connection refused at accept: `max_connections`.
    MaxConnections,
    /// An HTTP connection refused at accept: `max_connections_per_ip`.
    MaxConnectionsPerIp,
    /// `X-Forwarded-For` from a trusted proxy that names no usable client (HTTP 400).
    ForwardedFor,
    /// `end_to_end_only`: a session that asked the bridge for TLS (or none).
    EndToEndRequired,
    /// An end-to-end session ended by the guard: something other than
    /// `CAPA`/`STLS` before the ClientHello, a ClientHello for another
    /// host, or no TLS record after it.
    PlaintextBeforeTls,
}

impl Reject {
    const ALL: [Reject; 15] = [
        Reject::Origin,
        Reject::Policy,
        Reject::Token,
        Reject::Rate,
        Reject::MaxSessions,
        Reject::MaxSessionsPerIp,
        Reject::MaxSessionsPerDest,
        Reject::Destinations,
        Reject::GlobalRate,
        Reject::Bytes,
        Reject::MaxConnections,
        Reject::MaxConnectionsPerIp,
        Reject::ForwardedFor,
        Reject::EndToEndRequired,
        Reject::PlaintextBeforeTls,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::Origin => "origin",
            Reject::Policy => "policy",
            Reject::Token => "token",
            Reject::Rate => "rate",
            Reject::MaxSessions => "max_sessions",
            Reject::MaxSessionsPerIp => "max_sessions_per_ip",
            Reject::MaxSessionsPerDest => "max_sessions_per_dest",
            Reject::Destinations => "max_destinations_per_ip",
            Reject::GlobalRate => "global_connect_rate",
            Reject::Bytes => "max_bytes_per_ip_hour",
            Reject::MaxConnections => "max_connections",
            Reject::MaxConnectionsPerIp => "max_connections_per_ip",
            Reject::ForwardedFor => "forwarded_for",
            Reject::EndToEndRequired => "end_to_end_required",
            Reject::PlaintextBeforeTls => "plaintext_before_tls",
        }
    }
}

/// Latency buckets, seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last is +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Everything `/metrics` reports, for one replica.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions_active: AtomicI64,
    pub sessions_total: AtomicU64,
    /// Sessions whose `connect` asked for end-to-end TLS.
    pub sessions_end_to_end: AtomicU64,
    /// HTTP connections open (before any WebSocket upgrade).
    pub http_connections: AtomicI64,
    /// Client → server.
    pub bytes_up: AtomicU64,
    /// Server → client.
    pub bytes_down: AtomicU64,
    rejects: [AtomicU64; Reject::ALL.len()],
    pub upstream_connect: Histogram,
    pub tls_handshake: Histogram,
}

impl Metrics {
    pub fn reject(&self, why: Reject) {
        self.rejects[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        one(
            "ws_bridge_sessions_active",
            "gauge",
            "WebSocket sessions running now.",
            self.sessions_active.load(Ordering::Relaxed).to_string(),
        );
        one(
            "ws_bridge_http_connections",
            "gauge",
            "HTTP connections open (sessions are counted apart once upgraded).",
            self.http_connections.load(Ordering::Relaxed).to_string(),
        );
        one(
            "ws_bridge_sessions_total",
            "counter",
            "WebSocket sessions opened since start.",
            self.sessions_total.load(Ordering::Relaxed).to_string(),
        );
        one(
            "ws_bridge_sessions_end_to_end_total",
            "counter",
            "Sessions that asked for end-to-end TLS (the bridge relaying ciphertext) since start.",
            self.sessions_end_to_end.load(Ordering::Relaxed).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP ws_bridge_bytes_total POP3 bytes relayed, by direction (up: client to server).\n\
             # TYPE ws_bridge_bytes_total counter\n\
             ws_bridge_bytes_total{{direction=\"up\"}} {}\n\
             ws_bridge_bytes_total{{direction=\"down\"}} {}",
            self.bytes_up.load(Ordering::Relaxed),
            self.bytes_down.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP ws_bridge_rejects_total Sessions, connections and requests refused, by reason.\n# TYPE ws_bridge_rejects_total counter"
        );
        for why in Reject::ALL {
            let n = self.rejects[why as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "ws_bridge_rejects_total{{reason=\"{}\"}} {n}", why.label());
        }
        self.upstream_connect.render(
            &mut out,
            "ws_bridge_upstream_connect_seconds",
            "Time to open the TCP connection to the POP3 server.",
        );
        self.tls_handshake.render(
            &mut out,
            "ws_bridge_upstream_tls_handshake_seconds",
            "Time for the TLS handshake with the POP3 server (implicit and STLS).",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.sessions_total.fetch_add(2, Ordering::Relaxed);
        m.reject(Reject::Token);
        m.upstream_connect.observe(Duration::from_millis(3));
        m.upstream_connect.observe(Duration::from_secs(20));
        let text = m.render();
        assert!(text.contains("ws_bridge_sessions_total 2\n"), "{text}");
        assert!(text.contains("ws_bridge_rejects_total{reason=\"token\"} 1\n"), "{text}");
        assert!(text.contains("ws_bridge_rejects_total{reason=\"plaintext_before_tls\"} 0\n"), "{text}");
        assert!(text.contains("ws_bridge_sessions_end_to_end_total 0\n"), "{text}");
        assert!(text.contains("ws_bridge_upstream_connect_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("ws_bridge_upstream_connect_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("ws_bridge_upstream_connect_seconds_count 2\n"), "{text}");
    }
}
