//! ws-bridge's reading of `X-Forwarded-For` from a trusted proxy
//! (`forwarded::client_ip`): header values as raw bytes, any number of
//! header lines. The first input byte picks the peer (trusted or not);
//! the rest is the header lines, separated by LF.
//!
//! Checks: no panic; an untrusted peer is the client whatever the header
//! says; header lines are one list (split or joined with commas, the
//! answer is the same); what stands left of the client's hop never
//! changes the answer (a client that prepends junk neither hides nor gets
//! refused); an answer other than the peer is an address the header named.
#![no_main]

use std::net::IpAddr;

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use ws_bridge::forwarded::client_ip;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let peer: IpAddr = match pick % 3 {
        0 => "127.0.0.1".parse().unwrap(),
        1 => "::1".parse().unwrap(),
        _ => "192.0.2.9".parse().unwrap(),
    };
    let lines: Vec<&[u8]> = if rest.is_empty() { Vec::new() } else { rest.split(|b| *b == b'\n').collect() };
    let answer = client_ip(peer, lines.iter().copied(), &trusted);
    if pick % 3 == 2 {
        assert_eq!(answer, Ok(peer), "an untrusted peer is the client");
        return;
    }
    // One list, however it was split into header lines.
    if lines.len() > 1 {
        let joined = lines.join(&b","[..]);
        assert_eq!(client_ip(peer, [joined.as_slice()], &trusted), answer, "split vs joined");
    }
    if let Ok(client) = answer {
        let is_trusted = trusted.iter().any(|net| net.contains(&client));
        if !is_trusted {
            // Junk the client put left of its own hop changes nothing.
            let mut prefixed = vec![&b"\xff junk, unknown,,"[..]];
            prefixed.extend(lines.iter().copied());
            assert_eq!(client_ip(peer, prefixed, &trusted), answer, "junk left of the client");
            // The header named it (dotted IPv4 at least is spelt one way,
            // unless it came IPv4-mapped in IPv6).
            let text = String::from_utf8_lossy(rest);
            if let IpAddr::V4(v4) = client
                && !text.contains(':')
            {
                assert!(text.contains(&v4.to_string()), "{client} does not appear in {text:?}");
            }
        } else if lines.is_empty() {
            assert_eq!(client, peer);
        }
    }
});
