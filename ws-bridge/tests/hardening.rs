//! The bridge on an open address: the policy matrix end to end, access
//! tokens, limits, keepalive, backpressure, `wss://`, `X-Forwarded-For`,
//! metrics and graceful shutdown. Real sockets on 127.0.0.1; every
//! deadline is shortened so nothing here waits long.

mod common;

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use ws_bridge::{
    Limits, Settings, Timeouts, policy::Host, policy::Resolver, token::TokenKeys, wire::TlsMode,
};

/// A resolver that knows a few `.test` names; anything else is NXDOMAIN,
/// and `slow.test` never answers.
fn fake_resolver() -> Resolver {
    const NAMES: &[(&str, &[&str])] = &[
        ("loopback.test", &["127.0.0.1"]),
        ("loopback6.test", &["::1"]),
        ("metadata.test", &["169.254.169.254"]),
        ("private.test", &["10.1.2.3"]),
        ("rfc1918.test", &["192.168.0.10", "172.20.0.1"]),
        ("cgnat.test", &["100.64.1.1"]),
        ("mapped.test", &["::ffff:127.0.0.1"]),
        ("nat64.test", &["64:ff9b::a9fe:a9fe"]),
        ("ula.test", &["fd00::25"]),
        ("linklocal6.test", &["fe80::1"]),
        ("mixed.test", &["8.8.8.8", "127.0.0.1"]),
        ("public.test", &["8.8.8.8"]),
        ("localhost", &["127.0.0.1"]),
    ];
    Resolver(Arc::new(|name: String, port: u16| {
        Box::pin(async move {
            if name == "slow.test" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            NAMES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, ips)| ips.iter().map(|ip| SocketAddr::new(ip.parse().unwrap(), port)).collect())
                .ok_or_else(|| io::Error::other("NXDOMAIN"))
        })
    }))
}

async fn expect_not_allowed(bridge: &Bridge, host: &str, port: u16) {
    let (mut ws, msg) = bridge.open_session(host, port, "none").await;
    assert_eq!(
        msg,
        serde_json::json!({"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}),
        "{host}:{port}"
    );
    assert_eq!(expect_close(&mut ws).await.0, 4403, "{host}:{port}");
}

#[tokio::test]
async fn policy_matrix_every_denial_looks_the_same_and_connects_nowhere() {
    // The default rule, on the counting listener's port instead of 110/995,
    // so that any address that slipped through would reach it.
    let counting = CountingListener::start().await;
    let port = counting.port;
    let bridge = Bridge::start(Settings {
        default_ports: vec![port],
        resolver: Some(fake_resolver()),
        timeouts: Timeouts { resolve: Duration::from_millis(200), ..Timeouts::default() },
        limits: Limits { connect_burst: 1000, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    let literals = [
        // loopback v4 in every spelling, and v6
        "127.0.0.1",
        "127.0.0.2",
        "2130706433",
        "0177.0.0.1",
        "0x7f.1",
        "0x7f000001",
        "127.1",
        "127.0.1",
        "::1",
        "[::1]",
        // RFC 1918, link-local and the metadata address, CGNAT
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0xa9fea9fe",
        "2852039166",
        "100.64.0.1",
        // 0/8, 192.0.0/24, 198.18/15, 240/4, multicast, broadcast
        "0.0.0.0",
        "0",
        "192.0.0.170",
        "198.18.0.1",
        "240.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        // IPv6: ULA, link-local, multicast, mapped, compatible, NAT64, 6to4, Teredo
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "[::ffff:169.254.169.254]",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        // malformed
        "",
        "a b",
        "1.2.3.4.5",
        "evil.0x7f",
        "[fe80::1%25lo]",
    ];
    let names = [
        "loopback.test",
        "loopback6.test",
        "metadata.test",
        "private.test",
        "rfc1918.test",
        "cgnat.test",
        "mapped.test",
        "nat64.test",
        "ula.test",
        "linklocal6.test",
        "mixed.test",
        "localhost",
        // does not resolve / resolution passes its deadline
        "nx.test",
        "slow.test",
    ];
    for host in literals.iter().chain(names.iter()) {
        expect_not_allowed(&bridge, host, port).await;
    }
    // Public targets on ports the rule does not list.
    for (host, p) in [("8.8.8.8", 25), ("public.test", 143), ("[2001:4860:4860::8888]", 80)] {
        expect_not_allowed(&bridge, host, p).await;
    }
    assert_eq!(counting.connections().await, 0, "no denial made a TCP connection");

    // An allowlist is exclusive: other ports and hosts of the same machine
    // are refused too. And the control: the listed target does connect,
    // to the address the resolver gave.
    let bridge = Bridge::start(Settings {
        allow: vec![format!("localhost:{port}")],
        resolver: Some(fake_resolver()),
        ..Settings::default()
    })
    .await;
    expect_not_allowed(&bridge, "localhost", port + 1).await;
    expect_not_allowed(&bridge, "127.0.0.1", port).await;
    assert_eq!(counting.connections().await, 0);
    let _ws = bridge.connected_session("localhost", port, "none").await;
    assert_eq!(counting.connections().await, 1, "the counting listener does count");
}

// ---- tokens ---------------------------------------------------------------

fn secret_file(secrets: &[&str]) -> std::path::PathBuf {
    let path = temp_path("secrets");
    std::fs::write(&path, secrets.join("\n")).unwrap();
    path
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn mint(host: &str, port: u16, ttl_secs: i64) -> String {
    mint_for(host, port, TlsMode::None, ttl_secs)
}

fn mint_for(host: &str, port: u16, tls: TlsMode, ttl_secs: i64) -> String {
    let keys = TokenKeys::new(vec![SECRET.as_bytes().to_vec()]).unwrap();
    let now = SystemTime::now();
    let expires = if ttl_secs >= 0 {
        now + Duration::from_secs(ttl_secs as u64)
    } else {
        now - Duration::from_secs((-ttl_secs) as u64)
    };
    keys.mint(&Host::parse(host).unwrap(), port, tls, expires)
}

async fn connect_with_token(bridge: &Bridge, host: &str, port: u16, token: Option<&str>) -> Ws {
    let mut ws = bridge.ws().await;
    let mut msg = serde_json::json!({"type":"connect","v":1,"host":host,"port":port,"tls":"none"});
    if let Some(token) = token {
        msg["token"] = token.into();
    }
    send_json(&mut ws, msg).await;
    ws
}

#[tokio::test]
async fn tokens_are_required_bound_to_the_destination_and_expire() {
    let counting = CountingListener::start().await;
    let port = counting.port;
    let bridge = Bridge::start(Settings {
        allow: vec![format!("127.0.0.1:{port},{}", port + 1), format!("localhost:{port}")],
        resolver: Some(fake_resolver()),
        token_secret_file: Some(secret_file(&[SECRET])),
        ..Settings::default()
    })
    .await;
    let other_keys = TokenKeys::new(vec![b"another-secret-another-secret-another".to_vec()]).unwrap();
    let forged = other_keys.mint(
        &Host::parse("127.0.0.1").unwrap(),
        port,
        TlsMode::None,
        SystemTime::now() + Duration::from_secs(60),
    );
    let cases: Vec<(&str, u16, Option<String>)> = vec![
        ("127.0.0.1", port, None),                                  // missing
        ("127.0.0.1", port, Some("not-a-token".into())),            // malformed
        ("127.0.0.1", port, Some(forged)),                          // other secret
        ("127.0.0.1", port, Some(mint("127.0.0.1", port, -1))),     // expired
        ("127.0.0.1", port + 1, Some(mint("127.0.0.1", port, 60))), // other port
        ("localhost", port, Some(mint("127.0.0.1", port, 60))),     // other host (same address)
        // made for implicit TLS (or STLS): does not open a plain-text session
        ("127.0.0.1", port, Some(mint_for("127.0.0.1", port, TlsMode::Implicit, 60))),
        ("127.0.0.1", port, Some(mint_for("127.0.0.1", port, TlsMode::Starttls, 60))),
        // lives longer than token_max_ttl (24 h by default)
        ("127.0.0.1", port, Some(mint("127.0.0.1", port, 25 * 3600))),
    ];
    for (host, p, token) in &cases {
        let mut ws = connect_with_token(&bridge, host, *p, token.as_deref()).await;
        let msg = next_json(&mut ws).await;
        assert_eq!(msg, serde_json::json!({"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}));
        assert_eq!(expect_close(&mut ws).await.0, 4403);
    }
    assert_eq!(counting.connections().await, 0, "a refused token makes no connection");

    // The right token, minted by any replica with the secret, gets through;
    // names are canonical (case, trailing dot).
    let mut ws = connect_with_token(&bridge, "127.0.0.1", port, Some(&mint("127.0.0.1", port, 60))).await;
    assert_eq!(next_json(&mut ws).await["type"], "connected");
    let mut ws = connect_with_token(&bridge, "LocalHost.", port, Some(&mint("localhost", port, 60))).await;
    assert_eq!(next_json(&mut ws).await["type"], "connected");
    assert_eq!(counting.connections().await, 2);

    let metrics = http_get(bridge.addr, "/metrics", "").await;
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"token\"} 9\n"), "{metrics}");
}

// ---- limits ---------------------------------------------------------------

/// Waits until a new session is admitted (the bridge frees places when it
/// notices a close, which takes a moment).
async fn eventually_admitted(bridge: &Bridge) {
    for _ in 0..50 {
        let (_ws, msg) = bridge.open_session("127.0.0.1", 1, "none").await;
        if msg["message"] == "not allowed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no session admitted again");
}

#[tokio::test]
async fn the_session_past_the_per_ip_limit_is_refused_with_4429() {
    let bridge = Bridge::start(Settings {
        limits: Limits { max_sessions_per_ip: 2, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    let first = bridge.ws().await;
    let _second = bridge.ws().await;
    let mut third = bridge.ws().await;
    let message = expect_error(&mut third, "BRIDGE_REJECTED", 4429).await;
    assert_eq!(message, "too many sessions from your address");
    drop(first);
    eventually_admitted(&bridge).await;
}

#[tokio::test]
async fn the_session_past_the_total_limit_is_refused_with_4429() {
    let bridge = Bridge::start(Settings {
        limits: Limits { max_sessions: 1, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    let _first = bridge.ws().await;
    let mut second = bridge.ws().await;
    let message = expect_error(&mut second, "BRIDGE_REJECTED", 4429).await;
    assert!(message.contains("session limit"), "{message}");
}

#[tokio::test]
async fn opening_sessions_too_fast_is_refused_with_4429() {
    let bridge = Bridge::start(Settings {
        limits: Limits { connect_rate: 1, connect_burst: 2, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    for _ in 0..2 {
        let mut ws = bridge.ws().await;
        send_connect(&mut ws, "127.0.0.1", 1, "none").await;
        expect_error(&mut ws, "BRIDGE_REJECTED", 4403).await;
    }
    let mut ws = bridge.ws().await;
    let message = expect_error(&mut ws, "BRIDGE_REJECTED", 4429).await;
    assert!(message.contains("too many new sessions"), "{message}");
    let metrics = http_get(bridge.addr, "/metrics", "").await;
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"rate\"} 1\n"), "{metrics}");
}

// ---- limits beyond the client address ------------------------------------------

/// A server that accepts any number of connections and holds them open
/// (saying nothing), counting them.
struct HoldingListener {
    port: u16,
    count: Arc<AtomicUsize>,
}

impl HoldingListener {
    async fn start() -> HoldingListener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        HoldingListener { port, count }
    }
}

/// A bridge behind a trusted proxy on 127.0.0.1, so that each test client
/// can be another address (`X-Forwarded-For`).
async fn bridge_for_many_clients(allow: Vec<String>, limits: Limits) -> Bridge {
    Bridge::start(Settings {
        allow,
        trusted_proxies: vec!["127.0.0.1/32".into()],
        limits,
        ..Settings::default()
    })
    .await
}

/// Opens a session as client `ip` and sends `connect` for 127.0.0.1:`port`.
async fn session_from(bridge: &Bridge, ip: &str, port: u16) -> Ws {
    let mut ws = bridge.ws_with(&[("X-Forwarded-For", ip)]).await.unwrap();
    send_connect(&mut ws, "127.0.0.1", port, "none").await;
    ws
}

#[tokio::test]
async fn sessions_to_one_server_are_capped_whoever_opens_them() {
    let server = HoldingListener::start().await;
    let bridge = bridge_for_many_clients(
        vec![format!("127.0.0.1:{}", server.port)],
        Limits { max_sessions_per_dest: 2, ..Limits::default() },
    )
    .await;
    let mut a = session_from(&bridge, "198.51.100.1", server.port).await;
    assert_eq!(next_json(&mut a).await["type"], "connected");
    let mut b = session_from(&bridge, "2001:db8:1::1", server.port).await;
    assert_eq!(next_json(&mut b).await["type"], "connected");
    let mut c = session_from(&bridge, "2001:db8:2::1", server.port).await;
    let message = expect_error(&mut c, "BRIDGE_REJECTED", 4429).await;
    assert!(message.contains("too many sessions to this server"), "{message}");
    assert_eq!(server.count.load(Ordering::SeqCst), 2, "the refused session made no connection");
    // A place freed at the server is a place for the next client.
    drop(a);
    let mut d = None;
    for _ in 0..50 {
        let mut ws = session_from(&bridge, "2001:db8:3::1", server.port).await;
        if next_json(&mut ws).await["type"] == "connected" {
            d = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d.is_some(), "no place freed");
    let metrics = http_get(bridge.addr, "/metrics", "").await;
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"max_sessions_per_dest\"}"), "{metrics}");
}

#[tokio::test]
async fn one_client_reaches_only_so_many_different_servers_a_minute() {
    let servers =
        [HoldingListener::start().await, HoldingListener::start().await, HoldingListener::start().await];
    let ports: Vec<String> = servers.iter().map(|s| s.port.to_string()).collect();
    let bridge = bridge_for_many_clients(
        vec![format!("127.0.0.1:{}", ports.join(","))],
        Limits { max_destinations_per_ip: 2, ..Limits::default() },
    )
    .await;
    let mut held = Vec::new();
    for server in &servers[..2] {
        let mut ws = session_from(&bridge, "198.51.100.1", server.port).await;
        assert_eq!(next_json(&mut ws).await["type"], "connected");
        held.push(ws);
    }
    // A port sweep: the third server is refused, without a connection.
    let mut third = session_from(&bridge, "198.51.100.1", servers[2].port).await;
    let message = expect_error(&mut third, "BRIDGE_REJECTED", 4429).await;
    assert!(message.contains("too many different servers"), "{message}");
    assert_eq!(servers[2].count.load(Ordering::SeqCst), 0);
    // The servers already reached stay reachable; other clients are not affected.
    let mut again = session_from(&bridge, "198.51.100.1", servers[0].port).await;
    assert_eq!(next_json(&mut again).await["type"], "connected");
    let mut other = session_from(&bridge, "198.51.100.2", servers[2].port).await;
    assert_eq!(next_json(&mut other).await["type"], "connected");
}

#[tokio::test]
async fn the_bridge_opens_upstream_connections_at_the_global_rate_only() {
    let server = HoldingListener::start().await;
    let bridge = bridge_for_many_clients(
        vec![format!("127.0.0.1:{}", server.port)],
        Limits { global_connect_rate: 1, global_connect_burst: 2, ..Limits::default() },
    )
    .await;
    let mut held = Vec::new();
    for client in ["198.51.100.1", "198.51.100.2"] {
        let mut ws = session_from(&bridge, client, server.port).await;
        assert_eq!(next_json(&mut ws).await["type"], "connected");
        held.push(ws);
    }
    // Any client, any server: one a minute after the burst of two.
    let mut third = session_from(&bridge, "198.51.100.3", server.port).await;
    let message = expect_error(&mut third, "BRIDGE_REJECTED", 4429).await;
    assert!(message.contains("opening connections too fast"), "{message}");
    assert_eq!(server.count.load(Ordering::SeqCst), 2);
    // A denied target costs nothing of the rate: it makes no connection.
    expect_not_allowed(&bridge, "127.0.0.1", server.port + 1).await;
}

#[tokio::test]
async fn a_client_past_its_hourly_bytes_is_cut_and_then_refused() {
    let (port, server) = scripted_upstream(|stream| async move {
        let mut s = BufReader::new(stream);
        write(s.get_mut(), b"+OK ready\r\n").await; // 11 bytes
        assert_eq!(read_line(&mut s).await, b"RETR 1\r\n"); // 8 bytes
        let body = format!("+OK\r\n{}\r\n.\r\n", "x".repeat(500));
        let _ = s.get_mut().write_all(body.as_bytes()).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(STEP, s.read_to_end(&mut rest)).await.expect("the bridge hung up");
    })
    .await;
    let bridge = start_allowing_loopback(
        port,
        Settings {
            limits: Limits { max_bytes_per_ip_hour: 100, ..Limits::default() },
            ..Settings::default()
        },
    )
    .await;
    let mut ws = bridge.connected_session("127.0.0.1", port, "none").await;
    assert_eq!(next_binary(&mut ws).await, b"+OK ready\r\n");
    ws.send(Message::binary(&b"RETR 1\r\n"[..])).await.unwrap();
    // The body is over the allowance: not one byte of it is relayed.
    let message = expect_error(&mut ws, "BRIDGE_REJECTED", 4429).await;
    assert!(message.contains("transfer allowance"), "{message}");
    server.await.unwrap();
    // Spent: the next session from the address is refused at once.
    let mut next_session = bridge.ws().await;
    let message = expect_error(&mut next_session, "BRIDGE_REJECTED", 4429).await;
    assert!(message.contains("transfer allowance"), "{message}");
    let metrics = http_get(bridge.addr, "/metrics", "").await;
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"max_bytes_per_ip_hour\"} 2\n"), "{metrics}");
    assert_eq!(metric(&metrics, "ws_bridge_bytes_total{direction=\"down\"}"), 11.0);
}

/// An upstream that greets, then reads until EOF; returns when the bridge
/// hung up on it.
async fn greeting_upstream() -> (u16, tokio::task::JoinHandle<()>) {
    scripted_upstream(|stream| async move {
        let mut s = BufReader::new(stream);
        write(s.get_mut(), b"+OK ready\r\n").await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(STEP, s.read_to_end(&mut rest)).await.expect("bridge hung up");
    })
    .await
}

/// An upstream that greets, then answers every line with `+OK` until EOF.
async fn ok_upstream() -> (u16, tokio::task::JoinHandle<()>) {
    scripted_upstream(|stream| async move {
        let mut s = BufReader::new(stream);
        write(s.get_mut(), b"+OK ready\r\n").await;
        loop {
            let line = read_line(&mut s).await;
            if line.is_empty() {
                return;
            }
            write(s.get_mut(), b"+OK\r\n").await;
        }
    })
    .await
}

/// Starts a bridge with `settings` that allows only 127.0.0.1:`port`.
async fn start_allowing_loopback(port: u16, settings: Settings) -> Bridge {
    Bridge::start(Settings { allow: vec![format!("127.0.0.1:{port}")], ..settings }).await
}

/// Starts a bridge as `start_allowing_loopback` does and opens a session greeted with `+OK ready`.
async fn greeted_session(port: u16, settings: Settings) -> (Bridge, Ws) {
    let bridge = start_allowing_loopback(port, settings).await;
    let mut ws = bridge.connected_session("127.0.0.1", port, "none").await;
    assert_eq!(next_binary(&mut ws).await, b"+OK ready\r\n");
    (bridge, ws)
}

#[tokio::test]
async fn an_idle_session_is_closed_with_4408_and_the_upstream_dropped() {
    let (port, server) = greeting_upstream().await;
    let (_bridge, mut ws) = greeted_session(
        port,
        Settings {
            timeouts: Timeouts { idle: Duration::from_millis(400), ..Timeouts::default() },
            ..Settings::default()
        },
    )
    .await;
    let message = expect_error(&mut ws, "TIMEOUT", 4408).await;
    assert!(message.contains("idle"), "{message}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_busy_session_still_ends_at_the_lifetime_limit() {
    let (port, server) = ok_upstream().await;
    let (_bridge, mut ws) = greeted_session(
        port,
        Settings {
            timeouts: Timeouts {
                idle: Duration::from_millis(300),
                max_session: Duration::from_millis(900),
                ..Timeouts::default()
            },
            ..Settings::default()
        },
    )
    .await;
    // NOOP every 100 ms: never idle, but the lifetime runs out.
    let message = loop {
        ws.send(Message::binary(&b"NOOP\r\n"[..])).await.unwrap();
        match next(&mut ws).await {
            Message::Binary(b) => assert_eq!(&b[..], b"+OK\r\n"),
            Message::Text(t) => {
                let msg: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(msg["code"], "TIMEOUT");
                assert_eq!(expect_close(&mut ws).await.0, 4408);
                break msg["message"].as_str().unwrap().to_string();
            }
            other => panic!("unexpected {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(message.contains("lasted"), "{message}");
    server.await.unwrap();
}

#[tokio::test]
async fn an_oversized_message_closes_the_session_with_1009() {
    let (port, server) =
        silent_after_greeting(b"+OK ready\r\n", "nothing of the oversized message reached the server").await;
    let (bridge, mut ws) = greeted_session(
        port,
        Settings { limits: Limits { max_message_size: 4096, ..Limits::default() }, ..Settings::default() },
    )
    .await;
    ws.send(Message::binary(vec![b'A'; 10_000])).await.unwrap();
    let message = expect_error(&mut ws, "PROTOCOL_ERROR", 1009).await;
    assert!(message.contains("4096"), "{message}");
    server.await.unwrap();

    // Before connect, too.
    let mut ws = bridge.ws().await;
    ws.send(Message::text(" ".repeat(5000))).await.unwrap();
    expect_error(&mut ws, "PROTOCOL_ERROR", 1009).await;
}

#[tokio::test]
async fn the_bridge_pings_and_drops_a_client_that_stops_answering() {
    let (port, server) = greeting_upstream().await;
    let (_bridge, mut ws) = greeted_session(
        port,
        Settings {
            timeouts: Timeouts { ping_interval: Duration::from_millis(100), ..Timeouts::default() },
            ..Settings::default()
        },
    )
    .await;
    // Reading answers pings (tungstenite queues the pong): the session lives on.
    for _ in 0..5 {
        let msg = tokio::time::timeout(STEP, ws.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(msg, Message::Ping(_)), "{msg:?}");
    }
    ws.flush().await.unwrap();
    // Not reading means no pongs: after three intervals the bridge gives up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let message = loop {
        match tokio::time::timeout(STEP, ws.next()).await.unwrap().unwrap().unwrap() {
            Message::Ping(_) => continue,
            Message::Text(t) => break t.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(message.contains("TIMEOUT") && message.contains("pings"), "{message}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_slow_client_makes_the_bridge_stop_reading_the_server() {
    // The server offers far more than any buffer; the client reads nothing.
    const OFFERED: usize = 256 << 20;
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let (port, _server) = scripted_upstream(move |mut stream| async move {
        let chunk = vec![b'x'; 64 * 1024];
        while counter.load(Ordering::SeqCst) < OFFERED {
            match stream.write_all(&chunk).await {
                Ok(()) => counter.fetch_add(chunk.len(), Ordering::SeqCst),
                Err(_) => return,
            };
        }
    })
    .await;
    let bridge = start_allowing_loopback(port, Settings::default()).await;
    let mut ws = bridge.connected_session("127.0.0.1", port, "none").await;
    // Let it fill every buffer on the way, then check it stopped.
    let mut last = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = written.load(Ordering::SeqCst);
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let stalled_at = written.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(written.load(Ordering::SeqCst), stalled_at, "the server is blocked");
    // Kernel socket buffers on both sides (a few MiB each on loopback) plus
    // one chunk in the bridge: far below what was offered.
    assert!(stalled_at < 48 << 20, "the bridge buffered {stalled_at} bytes");
    // Reading again makes it flow again.
    let mut got = 0;
    while got <= stalled_at {
        got += next_binary(&mut ws).await.len();
    }
}

// ---- X-Forwarded-For --------------------------------------------------------

#[tokio::test]
async fn forwarded_for_counts_per_client_only_behind_a_trusted_proxy() {
    let limits = Limits { max_sessions_per_ip: 1, ..Limits::default() };
    // Trusted: two clients behind the same proxy are two addresses.
    let bridge = Bridge::start(Settings {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        limits,
        ..Settings::default()
    })
    .await;
    let _a = bridge.ws_with(&[("X-Forwarded-For", "198.51.100.1")]).await.unwrap();
    let _b = bridge.ws_with(&[("X-Forwarded-For", "203.0.113.5, 198.51.100.2")]).await.unwrap();
    let mut a_again = bridge.ws_with(&[("X-Forwarded-For", "198.51.100.1")]).await.unwrap();
    expect_error(&mut a_again, "BRIDGE_REJECTED", 4429).await;
    let mut b = bridge.ws_with(&[("X-Forwarded-For", "198.51.100.3")]).await.unwrap();
    send_connect(&mut b, "127.0.0.1", 1, "none").await;
    expect_error(&mut b, "BRIDGE_REJECTED", 4403).await;

    // Not trusted: the header is ignored, both come from 127.0.0.1.
    let bridge = Bridge::start(Settings { limits, ..Settings::default() }).await;
    let _a = bridge.ws_with(&[("X-Forwarded-For", "198.51.100.1")]).await.unwrap();
    let mut b = bridge.ws_with(&[("X-Forwarded-For", "198.51.100.2")]).await.unwrap();
    expect_error(&mut b, "BRIDGE_REJECTED", 4429).await;
}

// ---- wss:// -----------------------------------------------------------------

#[tokio::test]
async fn serves_wss_with_the_given_certificate() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"], (2035, 1, 1));
    let cert = temp_path("cert.pem");
    let key = temp_path("key.pem");
    std::fs::write(&cert, &pki.server_cert_pem).unwrap();
    std::fs::write(&key, &pki.server_key_pem).unwrap();
    let (port, server) = scripted_upstream(|stream| async move {
        let mut s = BufReader::new(stream);
        write(s.get_mut(), b"+OK over wss\r\n").await;
        assert_eq!(read_line(&mut s).await, b"QUIT\r\n");
        write(s.get_mut(), b"+OK bye\r\n").await;
    })
    .await;
    let bridge = start_allowing_loopback(
        port,
        Settings { tls_cert: Some(cert), tls_key: Some(key), ..Settings::default() },
    )
    .await;

    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for ca in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca_file).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the bridge's certificate verifies");
    let mut request = format!("wss://localhost:{}/pop3", bridge.addr.port()).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("pop3-bridge.v1"));
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    let connect = serde_json::json!({"type":"connect","v":1,"host":"127.0.0.1","port":port,"tls":"none"});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    let msg = ws.next().await.unwrap().unwrap();
    assert_eq!(msg.to_text().unwrap(), r#"{"type":"connected","tls":null}"#);
    assert_eq!(ws.next().await.unwrap().unwrap().into_data(), &b"+OK over wss\r\n"[..]);
    ws.send(Message::binary(&b"QUIT\r\n"[..])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data(), &b"+OK bye\r\n"[..]);
    server.await.unwrap();

    // Plain HTTP on the TLS port gets nowhere.
    let mut tcp = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(STEP, tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

// ---- metrics ------------------------------------------------------------------

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_sessions_bytes_rejects_and_latency() {
    let (port, server) = scripted_upstream(|stream| async move {
        let mut s = BufReader::new(stream);
        write(s.get_mut(), b"+OK 12345\r\n").await; // 11 bytes down
        assert_eq!(read_line(&mut s).await, b"QUIT\r\n"); // 6 bytes up
    })
    .await;
    let bridge = start_allowing_loopback(
        port,
        Settings { origins: vec!["https://mail.example.org".into()], ..Settings::default() },
    )
    .await;
    let before = http_get(bridge.addr, "/metrics", "").await;
    assert!(before.contains("content-type: text/plain; version=0.0.4"), "{before}");
    assert_eq!(metric(&before, "ws_bridge_sessions_total"), 0.0);

    let mut ws = bridge.connected_session("127.0.0.1", port, "none").await;
    assert_eq!(next_binary(&mut ws).await, b"+OK 12345\r\n");
    let during = http_get(bridge.addr, "/metrics", "").await;
    assert_eq!(metric(&during, "ws_bridge_sessions_active"), 1.0);
    ws.send(Message::binary(&b"QUIT\r\n"[..])).await.unwrap();
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    server.await.unwrap();

    expect_not_allowed(&bridge, "127.0.0.1", port + 1).await;
    assert!(bridge.ws_with(&[("Origin", "https://evil.example")]).await.is_err());

    // A session ends once the client answered the close frame (or after
    // a grace period when it does not).
    let mut after = String::new();
    for _ in 0..250 {
        after = http_get(bridge.addr, "/metrics", "").await;
        if metric(&after, "ws_bridge_sessions_active") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&after, "ws_bridge_sessions_active"), 0.0);
    assert_eq!(metric(&after, "ws_bridge_sessions_total"), 2.0);
    assert_eq!(metric(&after, "ws_bridge_bytes_total{direction=\"up\"}"), 6.0);
    assert_eq!(metric(&after, "ws_bridge_bytes_total{direction=\"down\"}"), 11.0);
    assert_eq!(metric(&after, "ws_bridge_rejects_total{reason=\"policy\"}"), 1.0);
    assert_eq!(metric(&after, "ws_bridge_rejects_total{reason=\"origin\"}"), 1.0);
    assert_eq!(metric(&after, "ws_bridge_upstream_connect_seconds_count"), 1.0);
    assert_eq!(metric(&after, "ws_bridge_upstream_tls_handshake_seconds_count"), 0.0);
}

// ---- graceful shutdown ----------------------------------------------------------

#[tokio::test]
async fn shutdown_stops_accepting_lets_sessions_run_then_closes_them_with_1001() {
    let (port, server) = ok_upstream().await;
    let (mut bridge, mut ws) = greeted_session(
        port,
        Settings {
            timeouts: Timeouts { shutdown: Duration::from_millis(800), ..Timeouts::default() },
            ..Settings::default()
        },
    )
    .await;

    bridge.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(bridge.addr).await.is_err(), "no new connections");
    // The running session still works until the deadline...
    ws.send(Message::binary(&b"NOOP\r\n"[..])).await.unwrap();
    assert_eq!(next_binary(&mut ws).await, b"+OK\r\n");
    // ...then it is closed as "going away".
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "bridge shutting down"));
    tokio::time::timeout(STEP, &mut bridge.task).await.unwrap().unwrap().unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn shutdown_without_sessions_is_immediate() {
    let mut bridge = Bridge::start(Settings {
        timeouts: Timeouts { shutdown: Duration::from_secs(60), ..Timeouts::default() },
        ..Settings::default()
    })
    .await;
    assert!(http_get(bridge.addr, "/healthz", "").await.ends_with("ok"));
    bridge.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), &mut bridge.task).await.unwrap().unwrap().unwrap();
}

// ---- a session that panics ------------------------------------------------------

/// Reads `/metrics` until `name` has `want` (the bridge updates it as it
/// notices), or fails after a few seconds.
async fn eventually_metric(bridge: &Bridge, name: &str, want: f64) {
    let mut text = String::new();
    for _ in 0..100 {
        text = http_get(bridge.addr, "/metrics", "").await;
        if metric(&text, name) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {want}:\n{text}");
}

#[tokio::test]
async fn a_panicking_session_releases_the_active_gauge_and_shutdown_does_not_wait_for_it() {
    // A bug anywhere in a session (here: in name resolution) panics its task.
    let panicking = Resolver(Arc::new(|_name: String, _port: u16| {
        Box::pin(async { panic!("a bug in a session (this panic is the test)") })
    }));
    let mut bridge = Bridge::start(Settings {
        allow: vec!["panic.test:110".into()],
        resolver: Some(panicking),
        timeouts: Timeouts { shutdown: Duration::from_secs(60), ..Timeouts::default() },
        ..Settings::default()
    })
    .await;
    let mut ws = bridge.ws().await;
    send_connect(&mut ws, "panic.test", 110, "none").await;
    // The session's task is gone: the client sees the socket end.
    let end = tokio::time::timeout(STEP, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the socket ended");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    eventually_metric(&bridge, "ws_bridge_sessions_active", 0.0).await;
    assert_eq!(metric(&http_get(bridge.addr, "/metrics", "").await, "ws_bridge_sessions_total"), 1.0);
    // Nothing is left running: shutdown does not wait out its 60 s.
    bridge.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), &mut bridge.task).await.unwrap().unwrap().unwrap();
}
