//! End-to-end sessions (wire v2, `endToEnd: true`): a real rustls client
//! speaks TLS through the bridge to an in-test rustls server; the bridge
//! holds no key and trusts no test CA, relays TCP, and lets nothing
//! readable but `CAPA`/`STLS` through before the ClientHello. A recording
//! relay between the bridge and the server shows what reached the server.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use ws_bridge::{
    Settings,
    policy::Host,
    token::{Binding, TokenKeys},
    wire::TlsMode,
};

const PASSWORD: &str = "e2e-Secret-pa55";
const PLAINTEXT: &str = "plaintext not allowed before TLS";

fn name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string()).unwrap()
}

/// The server's side of a short POP3 session over TLS: greeting, a login,
/// QUIT.
async fn pop3_over_tls<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut BufReader<S>) {
    write(s.get_mut(), b"+OK ready, over TLS\r\n").await;
    assert_eq!(read_line(s).await, b"USER bob\r\n");
    write(s.get_mut(), b"+OK\r\n").await;
    assert_eq!(read_line(s).await, format!("PASS {PASSWORD}\r\n").as_bytes());
    write(s.get_mut(), b"+OK logged in\r\n").await;
    expect_quit_say_bye(s).await;
}

/// The client's side of the same.
async fn login_over_tls<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut BufReader<S>) {
    assert_eq!(read_line(s).await, b"+OK ready, over TLS\r\n");
    write(s.get_mut(), b"USER bob\r\n").await;
    assert_eq!(read_line(s).await, b"+OK\r\n");
    write(s.get_mut(), format!("PASS {PASSWORD}\r\n").as_bytes()).await;
    assert_eq!(read_line(s).await, b"+OK logged in\r\n");
    write(s.get_mut(), b"QUIT\r\n").await;
    assert_eq!(read_line(s).await, b"+OK bye\r\n");
}

/// No command and no password in what the bridge sent the server.
fn assert_unreadable(recorded: &[u8]) {
    for readable in [&b"USER"[..], b"PASS", b"QUIT", b"bob", PASSWORD.as_bytes()] {
        assert!(
            !recorded.windows(readable.len()).any(|w| w == readable),
            "{:?} reached the server",
            readable
        );
    }
}

#[tokio::test]
async fn implicit_tls_end_to_end_through_a_bridge_that_holds_no_key() {
    let pki = TestPki::new(&["localhost"], (2035, 6, 1));
    let (server_port, server) = tls_upstream(&pki, |mut s| async move { pop3_over_tls(&mut s).await }).await;
    let (relay_port, recorded) = recording_relay(server_port).await;
    // No ca_files: the bridge could not verify this server itself.
    let bridge = Bridge::start(settings_allowing(&local(relay_port))).await;
    let (stream, mut pipe) = bridge.e2e_pipe("localhost", relay_port, "implicit").await;

    let tls = pki.connector().connect(name("localhost"), stream).await.expect("handshake through the bridge");
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let mut tls = BufReader::new(tls);
    login_over_tls(&mut tls).await;
    server.await.unwrap();
    assert_eq!(pipe.next_event().await, WsEvent::Close(1000));

    let recorded = recorded.await.unwrap();
    assert_eq!(recorded[..2], [22, 3], "the first bytes are a TLS handshake record");
    assert_unreadable(&recorded);
}

#[tokio::test]
async fn stls_end_to_end_the_client_writes_capa_and_stls_then_its_own_handshake() {
    let pki = TestPki::new(&["localhost"], (2035, 6, 1));
    let acceptor = pki.acceptor();
    let (server_port, server) = scripted_upstream(move |tcp| async move {
        let mut s = BufReader::new(tcp);
        write(s.get_mut(), b"+OK POP3 ready\r\n").await;
        assert_eq!(read_line(&mut s).await, b"CAPA\r\n");
        write(s.get_mut(), b"+OK\r\nUSER\r\nSTLS\r\n.\r\n").await;
        assert_eq!(read_line(&mut s).await, b"STLS\r\n");
        write(s.get_mut(), b"+OK Begin TLS\r\n").await;
        assert!(s.buffer().is_empty(), "nothing after STLS before the handshake");
        let tls = acceptor.accept(s.into_inner()).await.unwrap();
        pop3_over_tls(&mut BufReader::new(tls)).await;
    })
    .await;
    let (relay_port, recorded) = recording_relay(server_port).await;
    let bridge = Bridge::start(settings_allowing(&local(relay_port))).await;
    let (stream, _pipe) = bridge.e2e_pipe("localhost", relay_port, "starttls").await;

    let mut plain = BufReader::new(stream);
    assert_eq!(read_line(&mut plain).await, b"+OK POP3 ready\r\n");
    // One byte per frame: each line goes on once whole.
    for b in b"CAPA\r\n" {
        write(plain.get_mut(), std::slice::from_ref(b)).await;
    }
    for line in [&b"+OK\r\n"[..], b"USER\r\n", b"STLS\r\n", b".\r\n"] {
        assert_eq!(read_line(&mut plain).await, line);
    }
    write(plain.get_mut(), b"STLS\r\n").await;
    assert_eq!(read_line(&mut plain).await, b"+OK Begin TLS\r\n");
    assert!(plain.buffer().is_empty());
    let tls = pki.connector().connect(name("localhost"), plain.into_inner()).await.unwrap();
    login_over_tls(&mut BufReader::new(tls)).await;
    server.await.unwrap();

    let recorded = recorded.await.unwrap();
    assert_eq!(recorded[..12], *b"CAPA\r\nSTLS\r\n");
    assert_eq!(recorded[12..14], [22, 3], "then the ClientHello");
    assert_unreadable(&recorded[12..]);
}

#[tokio::test]
async fn an_ip_host_end_to_end_takes_a_client_hello_without_sni() {
    let pki = TestPki::new(&["127.0.0.1"], (2035, 6, 1));
    let (port, server) = tls_upstream(&pki, |mut s| async move { pop3_over_tls(&mut s).await }).await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let (stream, _pipe) = bridge.e2e_pipe("127.0.0.1", port, "implicit").await;
    let ip = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let tls = pki.connector().connect(ip, stream).await.unwrap();
    login_over_tls(&mut BufReader::new(tls)).await;
    server.await.unwrap();
}

/// Opens an end-to-end session to a recording upstream, sends `frames`
/// (each one BINARY frame) and expects the session to end with
/// `PLAINTEXT` before anything but `reached` reached the server.
async fn refused_before_tls(tls: &str, frames: &[&[u8]], reached: &[u8]) {
    let (port, recorded) = recording_upstream(b"+OK POP3 ready\r\n").await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let (mut ws, answer) = bridge.open_e2e("localhost", port, tls, None).await;
    assert_eq!(answer["endToEnd"], true);
    assert_eq!(next_binary(&mut ws).await, b"+OK POP3 ready\r\n");
    for frame in frames {
        // The bridge may be gone after the offending frame.
        if ws.send(Message::binary(frame.to_vec())).await.is_err() {
            break;
        }
    }
    let message = expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;
    assert_eq!(message, PLAINTEXT);
    let recorded = recorded.await.unwrap();
    assert_eq!(String::from_utf8_lossy(&recorded), String::from_utf8_lossy(reached), "{frames:?}");
}

#[tokio::test]
async fn plaintext_login_before_the_client_hello_never_reaches_the_server() {
    let auth = b"AUTH PLAIN AGJvYgBlMmUtU2VjcmV0LXBhNTU=\r\n";
    refused_before_tls("implicit", &[b"USER bob\r\n", b"PASS e2e-Secret-pa55\r\n"], b"").await;
    refused_before_tls("implicit", &[auth], b"").await;
    refused_before_tls("implicit", &[b"CAPA\r\n"], b"").await;
    refused_before_tls("starttls", &[b"CAPA\r\n", b"USER bob\r\n", b"PASS e2e-Secret-pa55\r\n"], b"CAPA\r\n")
        .await;
    // In one frame with the AUTH, the CAPA before it does not go either.
    refused_before_tls("starttls", &[b"CAPA\r\nAUTH PLAIN AGJvYgBlMmUtU2VjcmV0LXBhNTU=\r\n"], b"").await;
    // Byte by byte: the A of AUTH is the end.
    let bytes: Vec<&[u8]> = auth.iter().map(std::slice::from_ref).collect();
    refused_before_tls("starttls", &bytes, b"").await;
    // After STLS, a command instead of the ClientHello.
    refused_before_tls("starttls", &[b"STLS\r\n", b"PASS e2e-Secret-pa55\r\n"], b"STLS\r\n").await;
}

#[tokio::test]
async fn a_client_hello_for_another_host_never_reaches_the_server() {
    let (port, recorded) = recording_upstream(b"").await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let (stream, mut pipe) = bridge.e2e_pipe("localhost", port, "implicit").await;
    let pki = TestPki::new(&["imap.example.com"], (2035, 6, 1));
    let handshake = pki.connector().connect(name("imap.example.com"), stream).await;
    assert!(handshake.is_err(), "the bridge ended it");
    pipe.expect_error("PROTOCOL_ERROR", PLAINTEXT, 4400).await;
    assert_eq!(recorded.await.unwrap(), b"");
}

#[tokio::test]
async fn plaintext_after_the_handshake_ends_the_session_and_never_reaches_the_server() {
    let pki = TestPki::new(&["localhost"], (2035, 6, 1));
    let (server_port, server) = tls_upstream(&pki, |mut s| async move {
        write(s.get_mut(), b"+OK ready, over TLS\r\n").await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    })
    .await;
    let (relay_port, recorded) = recording_relay(server_port).await;
    let bridge = Bridge::start(settings_allowing(&local(relay_port))).await;
    let (stream, mut pipe) = bridge.e2e_pipe("localhost", relay_port, "implicit").await;
    let tls = pki.connector().connect(name("localhost"), stream).await.unwrap();
    let mut tls = BufReader::new(tls);
    assert_eq!(read_line(&mut tls).await, b"+OK ready, over TLS\r\n");
    // A plaintext frame in the middle of the TLS stream.
    pipe.inject.send(format!("PASS {PASSWORD}\r\n").into_bytes()).unwrap();
    pipe.expect_error("PROTOCOL_ERROR", PLAINTEXT, 4400).await;
    let _ = tls.get_mut().shutdown().await;
    server.await.unwrap();
    let recorded = recorded.await.unwrap();
    assert_eq!(recorded[..2], [22, 3]);
    assert_unreadable(&recorded);
}

#[tokio::test]
async fn end_to_end_only_refuses_bridge_side_tls_and_plain_sessions_before_connecting() {
    let upstream = CountingListener::start().await;
    let settings = Settings { end_to_end_only: true, ..settings_allowing(&local(upstream.port)) };
    let bridge = Bridge::start(settings).await;
    for tls in ["implicit", "starttls", "none"] {
        // An old v1 client, and a v2 one that did not ask for end to end.
        let (mut ws, answer) = bridge.open_session("127.0.0.1", upstream.port, tls).await;
        let want =
            serde_json::json!({"type":"error","code":"BRIDGE_REJECTED","message":"end-to-end TLS required"});
        assert_eq!(answer, want);
        assert_eq!(expect_close(&mut ws).await.0, 4403);
        let mut ws = bridge.ws_v2().await;
        let connect =
            serde_json::json!({"type":"connect","v":2,"host":"127.0.0.1","port":upstream.port,"tls":tls});
        send_json(&mut ws, connect).await;
        assert_eq!(next_json(&mut ws).await, want);
        assert_eq!(expect_close(&mut ws).await.0, 4403);
    }
    assert_eq!(upstream.connections().await, 0, "refused before any connection");
    // End to end it connects.
    let (mut ws, answer) = bridge.open_e2e("127.0.0.1", upstream.port, "implicit", None).await;
    assert_eq!(answer, serde_json::json!({"type":"connected","tls":null,"endToEnd":true}));
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    assert_eq!(upstream.connections().await, 1);
    let metrics = http_get(bridge.addr, "/metrics", "").await;
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"end_to_end_required\"} 6\n"), "{metrics}");
    assert!(metrics.contains("ws_bridge_sessions_end_to_end_total 1\n"), "{metrics}");
}

#[tokio::test]
async fn wire_v2_rules_are_protocol_errors() {
    let (port, _server) = silent_after_greeting(b"+OK hi\r\n", "the stls message sends nothing").await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    // endToEnd without TLS, or on v1.
    for (offer, connect, message) in [
        (
            "pop3-bridge.v2, pop3-bridge.v1",
            serde_json::json!({"type":"connect","v":2,"host":"127.0.0.1","port":port,"tls":"none","endToEnd":true}),
            "endToEnd needs tls implicit or starttls",
        ),
        (
            "pop3-bridge.v1",
            serde_json::json!({"type":"connect","v":1,"host":"127.0.0.1","port":port,"tls":"implicit","endToEnd":true}),
            "endToEnd needs wire format version 2",
        ),
        (
            "pop3-bridge.v1",
            serde_json::json!({"type":"connect","v":2,"host":"127.0.0.1","port":port,"tls":"implicit","endToEnd":true}),
            "wire format version 2 on a pop3-bridge.v1 session",
        ),
        (
            "pop3-bridge.v2",
            serde_json::json!({"type":"connect","v":3,"host":"127.0.0.1","port":port,"tls":"implicit"}),
            "unsupported wire format version 3",
        ),
    ] {
        let mut request = bridge.url().into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(offer).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        send_json(&mut ws, connect).await;
        assert_eq!(expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await, message);
    }
    // `stls` is the client's own end to end.
    let (mut ws, _) = bridge.open_e2e("127.0.0.1", port, "starttls", None).await;
    assert_eq!(next_binary(&mut ws).await, b"+OK hi\r\n");
    send_json(&mut ws, serde_json::json!({"type":"stls"})).await;
    let message = expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;
    assert_eq!(message, "stls is the client's own in an end-to-end session");
}

#[tokio::test]
async fn the_newest_subprotocol_offered_is_chosen_and_bridge_json_says_what_the_bridge_speaks() {
    for (end_to_end_only, json) in [
        (false, r#"{"wire":["pop3-bridge.v1","pop3-bridge.v2"],"endToEndOnly":false}"#),
        (true, r#"{"wire":["pop3-bridge.v1","pop3-bridge.v2"],"endToEndOnly":true}"#),
    ] {
        let bridge = Bridge::start(Settings { end_to_end_only, ..Settings::default() }).await;
        for (offer, chosen) in [
            ("pop3-bridge.v1, pop3-bridge.v2", "pop3-bridge.v2"),
            ("pop3-bridge.v2", "pop3-bridge.v2"),
            ("chat, pop3-bridge.v1", "pop3-bridge.v1"),
        ] {
            let mut request = bridge.url().into_client_request().unwrap();
            request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(offer));
            let (_ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
            assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), chosen, "{offer}");
        }
        let response = http_get(bridge.addr, "/bridge.json", "").await;
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{response}");
        for header in [
            "content-type: application/json",
            "cache-control: public, max-age=60",
            "access-control-allow-origin: *",
        ] {
            assert!(head.contains(header), "{header}: {head}");
        }
        assert_eq!(body, json);
    }
}

#[tokio::test]
async fn a_token_opens_the_end_of_tls_it_was_minted_for_only() {
    let secret = temp_path("e2e-secret");
    std::fs::write(&secret, "e2e-token-secret-0123456789abcdef0123456789\n").unwrap();
    let keys = TokenKeys::from_file(&secret).unwrap();
    let upstream = CountingListener::start().await;
    let port = upstream.port;
    let bridge =
        Bridge::start(Settings { token_secret_file: Some(secret), ..settings_allowing(&local(port)) }).await;
    let host = Host::parse("127.0.0.1").unwrap();
    let expires = std::time::SystemTime::now() + Duration::from_secs(300);
    let e2e = keys.mint(&host, port, Binding::end_to_end(TlsMode::Implicit), expires);
    let bridge_side = keys.mint(&host, port, TlsMode::Implicit, expires);
    // The end-to-end token opens an end-to-end session...
    let (_ws, answer) = bridge.open_e2e("127.0.0.1", port, "implicit", Some(&e2e)).await;
    assert_eq!(answer["type"], "connected", "{answer}");
    // ... and a bridge-side one does not, nor the other way round.
    let (mut ws, answer) = bridge.open_e2e("127.0.0.1", port, "implicit", Some(&bridge_side)).await;
    assert_eq!(answer, serde_json::json!({"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}));
    assert_eq!(expect_close(&mut ws).await.0, 4403);
    let mut ws = bridge.ws().await;
    let connect = serde_json::json!({"type":"connect","v":1,"host":"127.0.0.1","port":port,"tls":"implicit","token":e2e});
    send_json(&mut ws, connect).await;
    assert_eq!(expect_error(&mut ws, "BRIDGE_REJECTED", 4403).await, "not allowed");
    assert_eq!(upstream.connections().await, 1);
}

#[tokio::test]
async fn metrics_count_end_to_end_sessions_and_what_the_guard_refused() {
    let (port, recorded) = recording_upstream(b"").await;
    let bridge = Bridge::start(settings_allowing(&local(port))).await;
    let (mut ws, _) = bridge.open_e2e("localhost", port, "implicit", None).await;
    ws.send(Message::binary(&b"USER bob\r\n"[..])).await.unwrap();
    assert_eq!(expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await, PLAINTEXT);
    assert_eq!(recorded.await.unwrap(), b"");
    let metrics = http_get(bridge.addr, "/metrics", "").await;
    assert!(metrics.contains("ws_bridge_sessions_end_to_end_total 1\n"), "{metrics}");
    assert!(metrics.contains("ws_bridge_rejects_total{reason=\"plaintext_before_tls\"} 1\n"), "{metrics}");
    // The ten bytes were paid for, not relayed.
    assert!(metrics.contains("ws_bridge_bytes_total{direction=\"up\"} 0\n"), "{metrics}");
}
