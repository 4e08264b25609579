//! The bridge's HTTP layer against hostile clients: slow and oversized
//! request heads, idle and stalled connections, connection floods (caps
//! at accept), `X-Forwarded-For` that cannot be read, `Origin`, the
//! served pages' headers, dotfiles and symbolic links, and `/metrics`
//! behind a token or on its own address. Real sockets on 127.0.0.0/8.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
use ws_bridge::{Limits, Settings, Timeouts};

/// Reads until the server closes (EOF or reset); returns what came.
/// Fails when the server keeps the connection open past `STEP`.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(STEP, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open; got {:?}", String::from_utf8_lossy(&got)),
            Ok(Ok(0) | Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// GET `path` from the loopback address `from`, again until the bridge
/// admits the connection and answers 200; the response.
async fn get_once_admitted(from: &str, to: SocketAddr, path: &str) -> String {
    let mut answer = String::new();
    for _ in 0..50 {
        let mut s = connect_from(from, to).await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        answer = String::from_utf8_lossy(&read_until_closed(&mut s).await).into_owned();
        if answer.starts_with("HTTP/1.1 200") {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never admitted: {answer}");
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

// ---- slow and oversized request heads ----------------------------------------

#[tokio::test]
async fn clients_sending_the_head_slowly_are_cut_at_the_header_timeout() {
    let bridge = Bridge::start(Settings {
        timeouts: Timeouts { header: Duration::from_millis(800), ..Timeouts::default() },
        ..Settings::default()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(bridge.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        clients.push(s);
    }
    // One header line every 100 ms each: never idle, never finished.
    let mut lines_sent = 0;
    let mut open = clients.len();
    while open > 0 {
        assert!(lines_sent < 200, "still open after {lines_sent} lines (20 s)");
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = 0;
        for s in &mut clients {
            if s.write_all(format!("X-Slow-{lines_sent}: a\r\n").as_bytes()).await.is_ok() {
                open += 1;
            }
        }
        lines_sent += 1;
    }
    // The head was cut, not answered.
    for mut s in clients {
        let got = read_until_closed(&mut s).await;
        assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");
    }
    assert!(lines_sent >= 6, "the deadline, not something else, cut them ({lines_sent} lines)");
}

#[tokio::test]
async fn a_head_larger_than_max_header_size_is_refused_with_431() {
    let bridge = Bridge::start(Settings {
        limits: Limits { max_header_size: 16 * 1024, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    let mut s = TcpStream::connect(bridge.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let line = format!("X-Fill: {}\r\n", "a".repeat(1000));
    let mut sent = 0;
    // Up to 400 KiB, as the reported attack sent; the bridge stops it early.
    while sent < 400 * 1024 {
        if s.write_all(line.as_bytes()).await.is_err() {
            break;
        }
        sent += line.len();
    }
    let got = read_until_closed(&mut s).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431"), "{:?}", String::from_utf8_lossy(&got));
    // A head within the limit is fine.
    let small = format!("X-Fill: {}\r\n", "a".repeat(8000));
    assert!(http_get(bridge.addr, "/healthz", &small).await.starts_with("HTTP/1.1 200"));
}

// ---- idle and stalled connections --------------------------------------------

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_keepalive_timeout() {
    let bridge = Bridge::start(Settings {
        timeouts: Timeouts { keepalive: Duration::from_millis(300), ..Timeouts::default() },
        ..Settings::default()
    })
    .await;
    let mut s = TcpStream::connect(bridge.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let got = read_until_closed(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("ok"), "{text}");
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_closed_after_keepalive_timeout() {
    let dir = temp_path("big");
    std::fs::create_dir_all(&dir).unwrap();
    let size = 32 << 20;
    std::fs::write(dir.join("big.bin"), vec![b'x'; size]).unwrap();
    let bridge = Bridge::start(Settings {
        serve: Some(dir),
        timeouts: Timeouts { keepalive: Duration::from_millis(300), ..Timeouts::default() },
        ..Settings::default()
    })
    .await;
    let mut s = TcpStream::connect(bridge.addr).await.unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // Read nothing while the socket buffers fill and the bridge stalls.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = read_until_closed(&mut s).await;
    assert!(String::from_utf8_lossy(&got[..64]).starts_with("HTTP/1.1 200"));
    assert!(got.len() < size, "the whole file came ({} bytes): the connection was not cut", got.len());
}

// ---- caps at accept -------------------------------------------------------------

#[tokio::test]
async fn http_connections_are_capped_per_client_and_in_total_at_accept() {
    let bridge = Bridge::start(Settings {
        limits: Limits { max_connections: 6, max_connections_per_ip: 4, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    // Silent connections: the caps apply before a byte is read.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.1", bridge.addr).await);
    }
    let mut fifth = connect_from("127.0.0.1", bridge.addr).await;
    let refused = read_until_closed(&mut fifth).await;
    assert!(String::from_utf8_lossy(&refused).starts_with("HTTP/1.1 503"), "{refused:?}");
    // Other clients still get in, up to the total.
    held.push(connect_from("127.0.0.2", bridge.addr).await);
    held.push(connect_from("127.0.0.3", bridge.addr).await);
    let mut seventh = connect_from("127.0.0.4", bridge.addr).await;
    assert!(String::from_utf8_lossy(&read_until_closed(&mut seventh).await).starts_with("HTTP/1.1 503"));
    // A place freed is a place taken again (once the bridge noticed).
    drop(held.remove(0));
    get_once_admitted("127.0.0.4", bridge.addr, "/healthz").await;
    drop(held);
    let metrics = get_once_admitted("127.0.0.5", bridge.addr, "/metrics").await;
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"max_connections_per_ip\"} 1\n"), "{metrics}");
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"max_connections\"} 1\n"), "{metrics}");
}

#[tokio::test]
async fn trusted_proxies_are_held_to_the_total_only() {
    let bridge = Bridge::start(Settings {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        limits: Limits { max_connections: 8, max_connections_per_ip: 2, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.1", bridge.addr).await);
    }
    get_once_admitted("127.0.0.1", bridge.addr, "/healthz").await;
}

// ---- X-Forwarded-For -------------------------------------------------------------

/// A WebSocket request to `bridge` carrying `X-Forwarded-For: xff` (raw bytes).
async fn ws_with_forwarded_for(
    bridge: &Bridge,
    xff: &[u8],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = bridge.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("pop3-bridge.v1"));
    request.headers_mut().insert("X-Forwarded-For", HeaderValue::from_bytes(xff).unwrap());
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

#[tokio::test]
async fn forwarded_for_with_a_byte_that_is_not_ascii_neither_hides_the_client_nor_charges_the_proxy() {
    let bridge = Bridge::start(Settings {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        limits: Limits { max_sessions_per_ip: 1, ..Limits::default() },
        ..Settings::default()
    })
    .await;
    // The reported attack: a stray byte left of the client's hop. The
    // client is still 198.51.100.7, and counted as such.
    let _first = ws_with_forwarded_for(&bridge, b"\xff, 198.51.100.7").await.unwrap();
    let mut again = ws_with_forwarded_for(&bridge, b"198.51.100.7").await.unwrap();
    expect_error(&mut again, "BRIDGE_REJECTED", 4429).await;
    // ...and the proxy's own bucket is not charged.
    let mut other = ws_with_forwarded_for(&bridge, b"198.51.100.8").await.unwrap();
    send_connect(&mut other, "127.0.0.1", 1, "none").await;
    expect_error(&mut other, "BRIDGE_REJECTED", 4403).await;
    // A hop between the proxy and the client that is not an address: 400.
    for bad in [&b"198.51.100.7, \xff"[..], b"unknown", b"", b"198.51.100.7,"] {
        match ws_with_forwarded_for(&bridge, bad).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "{bad:?}")
            }
            other => panic!("{bad:?}: expected HTTP 400, got {:?}", other.map(|_| "a session")),
        }
    }
    let metrics = http_get(bridge.addr, "/metrics", "").await;
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"forwarded_for\"} 4\n"), "{metrics}");
}

// ---- Origin ----------------------------------------------------------------------

#[tokio::test]
async fn by_default_only_the_bridges_own_pages_and_non_browsers_may_open_sessions() {
    // A bridge on someone's machine, allowed to reach a private server,
    // started without --origin: any web page they visit could drive it.
    let counting = CountingListener::start().await;
    let bridge = Bridge::start(settings_allowing(&[format!("127.0.0.1:{}", counting.port)])).await;
    let refused = bridge.ws_with(&[("Origin", "https://evil.example")]).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| "a session")),
    }
    // A DNS name pointed at the bridge (rebinding) is not "own" either.
    let port = bridge.addr.port();
    let rebound = bridge
        .ws_with(&[
            ("Origin", &format!("http://evil.example:{port}")),
            ("Host", &format!("evil.example:{port}")),
        ])
        .await;
    assert!(rebound.is_err());
    assert_eq!(counting.connections().await, 0);
    // The pages the bridge serves, and clients that are not browsers.
    let own = format!("http://127.0.0.1:{port}");
    let mut ws = bridge.ws_with(&[("Origin", &own)]).await.unwrap();
    send_connect(&mut ws, "127.0.0.1", counting.port, "none").await;
    assert_eq!(next_json(&mut ws).await["type"], "connected");
    let mut ws = bridge.ws().await;
    send_connect(&mut ws, "127.0.0.1", counting.port, "none").await;
    assert_eq!(next_json(&mut ws).await["type"], "connected");
    // `--origin '*'` opens it to every page.
    let open = Bridge::start(Settings { origins: vec!["*".into()], ..Settings::default() }).await;
    assert!(open.ws_with(&[("Origin", "https://evil.example")]).await.is_ok());
}

// ---- served pages --------------------------------------------------------------------

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[cfg(unix)]
#[tokio::test]
async fn pages_come_with_security_headers_and_never_as_dotfiles_or_from_outside_the_directory() {
    let dir = temp_path("pages");
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join("index.html"), "<p>pages</p>").unwrap();
    std::fs::write(dir.join("app.js"), "export {}").unwrap();
    std::fs::write(dir.join(".htpasswd"), "admin:secret").unwrap();
    std::fs::write(dir.join(".git/config"), "[core]").unwrap();
    let outside = temp_path("outside.txt");
    std::fs::write(&outside, "outside the served directory").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(dir.join("app.js"), dir.join("inside.js")).unwrap();
    let bridge = Bridge::start(Settings { serve: Some(dir), ..Settings::default() }).await;

    let page = http_get(bridge.addr, "/", "").await;
    assert!(page.starts_with("HTTP/1.1 200") && page.ends_with("<p>pages</p>"), "{page}");
    assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&page, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&page, "x-frame-options"), Some("DENY"));
    let csp = header(&page, "content-security-policy").expect("a CSP");
    let host = bridge.addr.to_string();
    for part in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        &format!("connect-src 'self' ws://{host} wss://{host}"),
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} not in {csp}");
    }
    assert!(http_get(bridge.addr, "/inside.js", "").await.starts_with("HTTP/1.1 200"));
    for path in ["/.htpasswd", "/.git/config", "/%2egit/config", "/link.txt"] {
        let response = http_get(bridge.addr, path, "").await;
        assert!(response.starts_with("HTTP/1.1 404"), "{path}: {response}");
        assert!(
            !response.contains("secret") && !response.contains("outside") && !response.contains("[core]")
        );
    }
}

// ---- /metrics -------------------------------------------------------------------------

#[tokio::test]
async fn metrics_behind_a_bearer_token() {
    let token_file = temp_path("metrics-token");
    std::fs::write(&token_file, "scrape-0123456789abcdef\n").unwrap();
    let bridge =
        Bridge::start(Settings { metrics_token_file: Some(token_file), ..Settings::default() }).await;
    let refused = http_get(bridge.addr, "/metrics", "").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(!refused.contains("ws_bridge_"));
    let wrong = http_get(bridge.addr, "/metrics", "Authorization: Bearer scrape-0123456789abcdeX\r\n").await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let ok = http_get(bridge.addr, "/metrics", "Authorization: Bearer scrape-0123456789abcdef\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("ws_bridge_sessions_active"), "{ok}");
}

#[tokio::test]
async fn metrics_on_their_own_address_only() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, metrics_addr) = (listener.local_addr().unwrap(), metrics_listener.local_addr().unwrap());
    let config =
        ws_bridge::Config::build(Settings { metrics_listen: Some(metrics_addr), ..Settings::default() })
            .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ws_bridge::serve_with_metrics(listener, Some(metrics_listener), config, async {
        let _ = stopped.await;
    }));
    assert!(http_get(addr, "/metrics", "").await.starts_with("HTTP/1.1 404"));
    assert!(http_get(addr, "/healthz", "").await.starts_with("HTTP/1.1 200"));
    let metrics = http_get(metrics_addr, "/metrics", "").await;
    assert!(metrics.starts_with("HTTP/1.1 200") && metrics.contains("ws_bridge_sessions_total"), "{metrics}");
    assert!(http_get(metrics_addr, "/pop3", "").await.starts_with("HTTP/1.1 404"));
    drop(stop);
    tokio::time::timeout(STEP, task).await.unwrap().unwrap().unwrap();
    assert!(TcpStream::connect(metrics_addr).await.is_err(), "the metrics listener closed with the bridge");
}
