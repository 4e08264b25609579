//! The client driver (`pop3_wasm::driver`) fed a hostile server and a
//! hostile bridge: the connect sequence, a login, summaries, a body and a
//! raw line, with the server's bytes cut at every size, the bridge's
//! control messages in between, and time passing.
//!
//! Input: `[flags, chunk, server bytes…]`. flags: bits 0-1 the TLS mode
//! (none, starttls, implicit at the bridge), bit 2 a direct pipe instead of
//! a bridge, bit 3 the bridge says `error` after the first chunk, bits 4-5
//! how many octets the bridge says it discarded after STLS, bit 6 a
//! deadline passes after every chunk, bit 7 the login is PLAIN (else USER).
//! Checks: no panic; every operation ends exactly once, at the latest when
//! the transport closes; no line the client sends shows the password, nor
//! any line or error at all unless the server itself sent it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_wasm::{
    driver::{Config, Driver, Event, Request, Route, Transmit},
    proto::{Command, Direction},
    wire::{CertificateInfo, ServerMessage, TlsInfo, TlsMode},
};

const PASSWORD: &str = "Pw-fuzz-\u{1F510}-7f3a9c";

fn tls_info() -> TlsInfo {
    TlsInfo {
        protocol: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
        certificate: CertificateInfo { subject: "CN=x".into(), issuer: "CN=y".into(), not_after: "z".into() },
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, server @ ..] = data else { return };
    let server_said_it = server.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes());
    let tls = match flags & 3 {
        0 => TlsMode::None,
        1 => TlsMode::Starttls,
        _ => TlsMode::Implicit,
    };
    let direct = flags & 4 != 0;
    let route = if direct { Route::Direct } else { Route::Bridge { url: "ws://b/pop3".into(), token: None } };
    let mut config = Config::new(route, "pop.example.test", tls);
    config.transcript = true;
    config.allow_insecure_auth = true;
    config.keepalive = Some(50.0);
    config.deadlines.command = 1000.0;
    config.max_body = 4096;
    config.random = |b| {
        b.fill(7);
        true
    };
    let mut now = 0.0;
    let mut d = Driver::new(config, now);
    let mut ops = vec![d.start(now, Request::Connect, None)];
    let user = if flags & 0x80 != 0 { "PLAIN" } else { "USER" };
    ops.push(d.start(
        now,
        Request::Auth { mechanism: user.into(), username: "u".into(), password: Some(PASSWORD.into()), token: None },
        None,
    ));
    ops.push(d.start(now, Request::Summaries(None), None));
    ops.push(d.start(now, Request::Collect(Command::Retr { msg: 1 }), None));
    ops.push(d.start(now, Request::Raw("XTND XLST".into()), None));
    d.opened(now, "pop3-bridge.v2");
    let mut done = Vec::new();
    let drain = |d: &mut Driver, now: f64, done: &mut Vec<u64>| {
        while let Some(t) = d.poll_transmit() {
            match t {
                Transmit::Control(text) if text.contains("\"connect\"") => {
                    let tls = (tls == TlsMode::Implicit).then(tls_info);
                    d.control(now, ServerMessage::Connected { tls, end_to_end: false });
                }
                Transmit::Control(_) => {
                    d.control(now, ServerMessage::Tls { tls: tls_info(), discarded: usize::from((flags >> 4) & 3) });
                }
                Transmit::StartTls => d.transport_tls(now, tls_info()),
                Transmit::Data(_) | Transmit::Close => {}
            }
        }
        while let Some(ev) = d.poll_event() {
            match ev {
                Event::Done { op, result } => {
                    if let Err(f) = &result {
                        assert!(server_said_it || !f.message.contains(PASSWORD), "{f:?}");
                    }
                    assert!(!done.contains(&op), "operation {op} ended twice");
                    done.push(op);
                }
                Event::Transcript { dir, line, .. } => {
                    assert!((server_said_it && dir == Direction::S) || !line.contains(PASSWORD), "{line}");
                }
                _ => {}
            }
        }
    };
    drain(&mut d, now, &mut done);
    let size = usize::from(*chunk % 64) + 1;
    for (i, piece) in server.chunks(size).enumerate() {
        d.data(now, piece);
        if i == 0 && flags & 8 != 0 {
            d.control(now, ServerMessage::Error { code: "TIMEOUT".into(), message: "idle".into() });
        }
        if flags & 0x40 != 0 {
            now += 600.0;
            d.handle_timeout(now);
        }
        drain(&mut d, now, &mut done);
    }
    d.closed(now, Some(1006));
    drain(&mut d, now, &mut done);
    for op in ops {
        assert!(done.contains(&op), "operation {op} never ended");
    }
    assert!(d.poll_timeout().is_none(), "nothing left to time after the end");
});
