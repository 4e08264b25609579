//! Socket tests: a real bridge on 127.0.0.1:0, a tokio-tungstenite client,
//! and scripted POP3 servers that check the bytes they get.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, BufReader};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue};
use ws_bridge::{Settings, Timeouts};

#[tokio::test]
async fn plain_session_relays_bytes_exactly_both_ways() {
    // Every byte value, and more than one 16 KiB chunk, server to client.
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let server_body = body.clone();
    let (port, server) = scripted_upstream(move |stream| async move {
        let mut s = BufReader::new(stream);
        write(s.get_mut(), b"+OK POP3 ready <1896.697170952@dbc.mailcom>\r\n").await;
        // The client's bytes arrive unchanged, however they were framed.
        let want: &[u8] = b"USER al\xffice\r\nNOOP\r\n\x00";
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
        write(s.get_mut(), &server_body).await;
        // Closing upstream ends the session once everything was sent.
    })
    .await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let (mut ws, connected) = bridge.open_session("127.0.0.1", port, "none").await;
    assert_eq!(connected, serde_json::json!({"type":"connected","tls":null}));
    assert_eq!(next_binary(&mut ws).await, b"+OK POP3 ready <1896.697170952@dbc.mailcom>\r\n");
    ws.send(Message::binary(&b"USER al\xff"[..])).await.unwrap();
    ws.send(Message::binary(&b"ice\r\nNOOP\r\n\x00"[..])).await.unwrap();
    let got = read_binary_exact(&mut ws, body.len()).await;
    assert!(got == body, "body relayed byte-exact");
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    server.await.unwrap();
}

#[tokio::test]
async fn client_close_shuts_the_upstream_connection() {
    let (port, server) = scripted_upstream(|stream| async move {
        let mut s = BufReader::new(stream);
        write(s.get_mut(), b"+OK hi\r\n").await;
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("upstream closed promptly after the client left")
            .unwrap();
        assert_eq!(n, 0);
    })
    .await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let mut ws = bridge.connected_session("localhost", port, "starttls").await;
    assert_eq!(next_binary(&mut ws).await, b"+OK hi\r\n");
    ws.close(None).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn implicit_tls_reports_protocol_cipher_and_certificate() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"], (2035, 6, 1));
    let (port, server) = tls_upstream(&pki, |mut s| async move {
        write(s.get_mut(), b"+OK TLS greeting\r\n").await;
        expect_quit_say_bye(&mut s).await;
    })
    .await;
    let bridge = Bridge::start_trusting(port, &pki).await;
    let (mut ws, connected) = bridge.open_session("localhost", port, "implicit").await;
    assert_eq!(connected["type"], "connected");
    let tls = &connected["tls"];
    assert_eq!(tls["protocol"], "TLSv1.3", "{connected}");
    assert!(tls["cipher"].as_str().unwrap().starts_with("TLS13_"), "{connected}");
    assert_eq!(tls["certificate"]["subject"], "CN=localhost");
    assert_eq!(tls["certificate"]["issuer"], format!("CN={CA_NAME}"));
    assert_eq!(tls["certificate"]["notAfter"], "2035-06-01T00:00:00Z");
    assert_eq!(next_binary(&mut ws).await, b"+OK TLS greeting\r\n");
    quit_expect_bye(&mut ws).await;
    server.await.unwrap();
}

#[tokio::test]
async fn implicit_tls_to_an_ip_literal_verifies_the_ip_san() {
    let pki = TestPki::new(&["127.0.0.1"], (2035, 6, 1));
    let (port, server) = tls_upstream(&pki, |mut s| async move {
        write(s.get_mut(), b"+OK\r\n").await;
    })
    .await;
    let bridge = Bridge::start_trusting(port, &pki).await;
    let (mut ws, connected) = bridge.open_session("127.0.0.1", port, "implicit").await;
    assert_eq!(connected["tls"]["protocol"], "TLSv1.3", "{connected}");
    assert_eq!(next_binary(&mut ws).await, b"+OK\r\n");
    server.await.unwrap();
}

/// Runs an implicit-TLS session that must fail verification, and returns
/// the error message.
async fn tls_failure(pki: &TestPki, trust_ca: bool, host: &str) -> String {
    let acceptor = pki.acceptor();
    let (port, server) = scripted_upstream(move |tcp| async move {
        // The handshake fails on the bridge's side.
        assert!(acceptor.accept(tcp).await.is_err());
    })
    .await;
    let bridge = Bridge::start(Settings {
        allow: local(port),
        ca_files: if trust_ca { vec![pki.ca_file.clone()] } else { vec![] },
        ..Settings::default()
    })
    .await;
    let mut ws = bridge.ws().await;
    send_connect(&mut ws, host, port, "implicit").await;
    let message = expect_error(&mut ws, "TLS_FAILED", 4525).await;
    server.await.unwrap();
    message
}

#[tokio::test]
async fn implicit_tls_without_the_ca_is_tls_failed_not_trusted() {
    let pki = TestPki::new(&["localhost"], (2035, 6, 1));
    let message = tls_failure(&pki, false, "localhost").await;
    assert!(message.contains("not trusted"), "{message}");
}

#[tokio::test]
async fn implicit_tls_with_the_wrong_name_is_tls_failed() {
    let pki = TestPki::new(&["pop.other.example"], (2035, 6, 1));
    let message = tls_failure(&pki, true, "localhost").await;
    assert!(message.contains("not valid for the host name"), "{message}");
}

#[tokio::test]
async fn implicit_tls_with_an_expired_certificate_is_tls_failed() {
    let pki = TestPki::new(&["localhost"], (2021, 1, 1));
    let message = tls_failure(&pki, true, "localhost").await;
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn stls_discards_plaintext_injected_after_ok_and_continues_over_tls() {
    let pki = TestPki::new(&["localhost"], (2035, 6, 1));
    let acceptor = pki.acceptor();
    let (port, server) = scripted_upstream(move |tcp| async move {
        let mut s = BufReader::new(tcp);
        write(s.get_mut(), b"+OK POP3 ready\r\n").await;
        assert_eq!(read_line(&mut s).await, b"STLS\r\n");
        // A man in the middle's favourite: plaintext after the +OK, in the
        // same segment, hoping it is read as if it came over TLS.
        write(s.get_mut(), b"+OK Begin TLS\r\n+OK injected\r\n").await;
        assert!(s.buffer().is_empty());
        let tls = acceptor.accept(s.into_inner()).await.unwrap();
        let mut s = BufReader::new(tls);
        assert_eq!(read_line(&mut s).await, b"NOOP\r\n");
        write(s.get_mut(), b"+OK noop over tls\r\n").await;
        expect_quit_say_bye(&mut s).await;
    })
    .await;
    let bridge = Bridge::start_trusting(port, &pki).await;
    let (mut ws, connected) = bridge.open_session("localhost", port, "starttls").await;
    assert_eq!(connected, serde_json::json!({"type":"connected","tls":null}));
    assert_eq!(next_binary(&mut ws).await, b"+OK POP3 ready\r\n");
    send_json(&mut ws, serde_json::json!({"type":"stls"})).await;
    assert_eq!(next_binary(&mut ws).await, b"+OK Begin TLS\r\n");
    let tls = next_json(&mut ws).await;
    assert_eq!(tls["type"], "tls", "{tls}");
    assert_eq!(tls["tls"]["protocol"], "TLSv1.3");
    assert_eq!(tls["tls"]["certificate"]["subject"], "CN=localhost");
    assert_eq!(tls["discarded"], "+OK injected\r\n".len(), "the client learns how much was dropped");
    ws.send(Message::binary(&b"NOOP\r\n"[..])).await.unwrap();
    assert_eq!(next_binary(&mut ws).await, b"+OK noop over tls\r\n");
    // Nothing else came, "injected" included, before the clean close.
    quit_expect_bye(&mut ws).await;
    server.await.unwrap();
}

#[tokio::test]
async fn stls_refused_with_err_continues_in_plain_text() {
    let (port, server) = scripted_upstream(|tcp| async move {
        let mut s = BufReader::new(tcp);
        write(s.get_mut(), b"+OK POP3 ready\r\n").await;
        assert_eq!(read_line(&mut s).await, b"STLS\r\n");
        write(s.get_mut(), b"-ERR STLS not available\r\n").await;
        assert_eq!(read_line(&mut s).await, b"CAPA\r\n");
        write(s.get_mut(), b"+OK\r\nUSER\r\n.\r\n").await;
    })
    .await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let (mut ws, connected) = bridge.open_session("127.0.0.1", port, "starttls").await;
    assert_eq!(connected["tls"], serde_json::Value::Null);
    assert_eq!(next_binary(&mut ws).await, b"+OK POP3 ready\r\n");
    send_json(&mut ws, serde_json::json!({"type":"stls"})).await;
    assert_eq!(next_binary(&mut ws).await, b"-ERR STLS not available\r\n");
    ws.send(Message::binary(&b"CAPA\r\n"[..])).await.unwrap();
    assert_eq!(read_binary_exact(&mut ws, 14).await, b"+OK\r\nUSER\r\n.\r\n");
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    server.await.unwrap();
}

#[tokio::test]
async fn stls_on_an_implicit_tls_session_is_a_protocol_error() {
    let pki = TestPki::new(&["localhost"], (2035, 6, 1));
    let (port, server) = tls_upstream(&pki, |mut s| async move {
        write(s.get_mut(), b"+OK\r\n").await;
        let mut rest = Vec::new();
        // The bridge never writes STLS into the TLS session.
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
    })
    .await;
    let bridge = Bridge::start_trusting(port, &pki).await;
    let mut ws = bridge.connected_session("localhost", port, "implicit").await;
    assert_eq!(next_binary(&mut ws).await, b"+OK\r\n");
    send_json(&mut ws, serde_json::json!({"type":"stls"})).await;
    expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;
    server.await.unwrap();
}

#[tokio::test]
async fn loopback_port_not_in_allowlist_is_rejected_without_connecting() {
    let counting = CountingListener::start().await;
    let bridge = Bridge::start(settings_allowing(&["127.0.0.1:1".to_string()])).await;
    for host in ["127.0.0.1", "localhost", "2130706433"] {
        let (mut ws, msg) = bridge.open_session(host, counting.port, "none").await;
        assert_eq!(msg, serde_json::json!({"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}));
        assert_eq!(expect_close(&mut ws).await.0, 4403);
    }
    assert_eq!(counting.connections().await, 0);
}

#[tokio::test]
async fn default_rule_rejects_private_targets_without_connecting() {
    let counting = CountingListener::start().await;
    let bridge = Bridge::start(Settings::default()).await;
    let port = counting.port.to_string();
    let targets: &[(&str, &str)] = &[
        ("169.254.169.254", "110"),
        ("[::ffff:169.254.169.254]", "995"),
        ("127.0.0.1", &port),
        ("0x7f.1", "110"),
        ("localhost", "995"),
        ("10.0.0.1", "110"),
        ("not a host", "110"),
    ];
    for (host, port) in targets {
        let (mut ws, msg) = bridge.open_session(host, port.parse().unwrap(), "none").await;
        assert_eq!(
            msg,
            serde_json::json!({"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}),
            "{host}:{port}"
        );
        assert_eq!(expect_close(&mut ws).await.0, 4403, "{host}:{port}");
    }
    assert_eq!(counting.connections().await, 0);
}

#[tokio::test]
async fn refused_connection_is_connect_failed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let mut ws = bridge.ws().await;
    send_connect(&mut ws, "127.0.0.1", port, "none").await;
    let message = expect_error(&mut ws, "CONNECT_FAILED", 4502).await;
    assert!(message.contains("refused"), "{message}");
}

#[tokio::test]
async fn garbage_first_message_is_a_protocol_error() {
    let bridge = Bridge::start(Settings::default()).await;
    let mut ws = bridge.ws().await;
    ws.send(Message::text("HELO pop3")).await.unwrap();
    expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;

    let mut ws = bridge.ws().await;
    ws.send(Message::binary(&b"USER alice\r\n"[..])).await.unwrap();
    expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;

    let mut ws = bridge.ws().await;
    send_json(&mut ws, serde_json::json!({"type":"stls"})).await;
    expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;

    let mut ws = bridge.ws().await;
    send_json(
        &mut ws,
        serde_json::json!({"type":"connect","v":2,"host":"8.8.8.8","port":995,"tls":"implicit"}),
    )
    .await;
    expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;
}

#[tokio::test]
async fn missing_first_message_is_a_protocol_error() {
    let bridge = Bridge::start(Settings {
        timeouts: Timeouts { first_message: Duration::from_millis(300), ..Timeouts::default() },
        ..Settings::default()
    })
    .await;
    let mut ws = bridge.ws().await;
    let message = expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;
    assert!(message.contains("connect"), "{message}");
}

#[tokio::test]
async fn text_after_connect_that_is_not_stls_is_a_protocol_error() {
    let (port, server) = silent_after_greeting(b"+OK\r\n", "control text never reaches the server").await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let mut ws = bridge.connected_session("127.0.0.1", port, "none").await;
    assert_eq!(next_binary(&mut ws).await, b"+OK\r\n");
    ws.send(Message::text("QUIT\r\n")).await.unwrap();
    expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;
    server.await.unwrap();
}

#[tokio::test]
async fn healthz_answers_ok() {
    let bridge = Bridge::start(Settings::default()).await;
    let response = http_get(bridge.addr, "/healthz", "").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
}

#[tokio::test]
async fn static_files_are_served_from_the_serve_dir() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ws-bridge-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>checker</h1>").unwrap();
    let bridge = Bridge::start(Settings { serve: Some(dir), ..Settings::default() }).await;
    let response = http_get(bridge.addr, "/index.html", "").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("<h1>checker</h1>"), "{response}");
    let response = http_get(bridge.addr, "/healthz", "").await;
    assert!(response.ends_with("ok"), "{response}");
}

#[tokio::test]
async fn origin_not_listed_is_refused_before_upgrade() {
    let bridge =
        Bridge::start(Settings { origins: vec!["https://mail.example.org".into()], ..Settings::default() })
            .await;
    let mut request = bridge.url().into_client_request().unwrap();
    request.headers_mut().insert("Origin", HeaderValue::from_static("https://evil.example"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // A listed origin, and a client that sends none, get through.
    let mut request = bridge.url().into_client_request().unwrap();
    request.headers_mut().insert("Origin", HeaderValue::from_static("https://mail.example.org"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
    assert!(tokio_tungstenite::connect_async(bridge.url()).await.is_ok());
}

#[tokio::test]
async fn subprotocol_must_be_ours_when_offered() {
    let bridge = Bridge::start(Settings::default()).await;
    let mut request = bridge.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("chat, superchat"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
    let mut request = bridge.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("chat, pop3-bridge.v1"));
    let (_ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "pop3-bridge.v1");
}
