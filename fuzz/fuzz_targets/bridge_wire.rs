//! The session wire format (v1 and v2, `pop3_wasm::wire`, as ws-bridge
//! reads it): the client's JSON control messages, the host names they carry
//! (the SSRF guard's parser) and access tokens.
//!
//! Checks: no panic; a parsed `connect` never prints its token in `Debug`;
//! what `Connect::to_json` (the client's writer) makes of it parses back
//! to the same message; the v2 rules (`endToEnd` from v2 on, never with
//! `tls: "none"`, the version of the subprotocol) hold; a token minted for
//! a destination verifies for it and for no other port, TLS mode or end of
//! TLS (bridge-side or end to end).
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use ws_bridge::policy::{Host, parse_ipv4_loose};
use ws_bridge::token::{Binding, TokenKeys};
use ws_bridge::wire::{ClientMessage, ErrorCode, ServerMessage, TlsMode, Version};

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
            let again = ClientMessage::parse(&c.to_json()).expect("to_json writes valid JSON");
            assert_eq!(again, ClientMessage::Connect(c.clone()), "to_json round trip");
            for negotiated in [None, Some(Version::V1), Some(Version::V2)] {
                if let Ok(version) = c.check(negotiated) {
                    assert_eq!(version.number(), c.v);
                    assert!(negotiated.is_none_or(|n| n == version));
                    assert!(!c.end_to_end || (version == Version::V2 && c.tls != TlsMode::None));
                }
            }
            if let Some(host) = Host::parse(&c.host) {
                let keys = TokenKeys::new(vec![b"0123456789abcdef0123456789abcdef".to_vec()]).unwrap();
                let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
                let mine = Binding { tls: c.tls, end_to_end: c.end_to_end && c.tls != TlsMode::None };
                let tok = keys.mint(&host, c.port, mine, now + Duration::from_secs(60));
                assert!(keys.verify(&tok, &host, c.port, mine, now).is_ok(), "a fresh token for {host}");
                assert!(keys.verify(&tok, &host, c.port.wrapping_add(1), mine, now).is_err());
                for tls in [TlsMode::Implicit, TlsMode::Starttls, TlsMode::None] {
                    for end_to_end in [false, true] {
                        let other = Binding { tls, end_to_end };
                        assert_eq!(keys.verify(&tok, &host, c.port, other, now).is_ok(), other == mine);
                    }
                }
                if let Some(t) = &c.token {
                    let _ = keys.verify(t.expose(), &host, c.port, mine, now);
                }
            }
        }
        Ok(ClientMessage::Stls) | Err(_) => {}
    }
    let _ = Host::parse(text);
    let _ = parse_ipv4_loose(text);
    let error = ServerMessage::error(ErrorCode::ProtocolError, text);
    let json = error.to_json();
    assert!(json.starts_with(r#"{"type":"error","code":"PROTOCOL_ERROR","message":""#));
    assert_eq!(ServerMessage::parse(&json).unwrap(), error, "the client reads what the bridge writes");
    let _ = ServerMessage::parse(text);
});
