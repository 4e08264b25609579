//! ws-bridge's session wire format v1: the client's JSON control messages,
//! the host names they carry (the SSRF guard's parser) and access tokens.
//!
//! Checks: no panic; a parsed `connect` never prints its token in `Debug`;
//! a token minted for a destination verifies for it and for no other port
//! or TLS mode.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use ws_bridge::policy::{Host, parse_ipv4_loose};
use ws_bridge::token::TokenKeys;
use ws_bridge::wire::{ClientMessage, ErrorCode, ServerMessage, TlsMode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Connect(c)) => {
            let shown = format!("{c:?}");
            if let Some(t) = &c.token
                && t.expose().len() >= 6
                && !c.host.contains(t.expose())
            {
                assert!(!shown.contains(t.expose()), "the token shows in Debug: {shown}");
            }
            if let Some(host) = Host::parse(&c.host) {
                let keys = TokenKeys::new(vec![b"0123456789abcdef0123456789abcdef".to_vec()]).unwrap();
                let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
                let tok = keys.mint(&host, c.port, c.tls, now + Duration::from_secs(60));
                assert!(keys.verify(&tok, &host, c.port, c.tls, now).is_ok(), "a fresh token for {host}");
                assert!(keys.verify(&tok, &host, c.port.wrapping_add(1), c.tls, now).is_err());
                for other in [TlsMode::Implicit, TlsMode::Starttls, TlsMode::None] {
                    assert_eq!(keys.verify(&tok, &host, c.port, other, now).is_ok(), other == c.tls);
                }
                if let Some(t) = &c.token {
                    let _ = keys.verify(t.expose(), &host, c.port, c.tls, now);
                }
            }
        }
        Ok(ClientMessage::Stls) | Err(_) => {}
    }
    let _ = Host::parse(text);
    let _ = parse_ipv4_loose(text);
    let json = ServerMessage::Error { code: ErrorCode::ProtocolError.as_str(), message: text }.to_json();
    assert!(json.starts_with(r#"{"type":"error","code":"PROTOCOL_ERROR","message":""#));
});
