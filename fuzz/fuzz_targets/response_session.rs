//! The sans-IO session fed hostile server bytes: status lines, response
//! codes, continuations, multi-line bodies, STLS, every login flavour. Also
//! the one-line parsers (STAT, LIST, UIDL, the APOP timestamp, CAPA).
//!
//! Input: `[flags, chunk, stream_mask, server bytes…]`.
//! Checks: no panic; every command completes exactly once once the
//! connection is closed; no event ever shows the password or the token.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use pop3_wasm::proto::{
    Capabilities, Command, CramMd5, Event, Login, OAuthBearer, Options, Plain, Secret, Session, XOAuth2,
    apop_timestamp, parse_list, parse_stat, parse_uidl,
};

const PASSWORD: &str = "Pw-fuzz-\u{1F510}-7f3a9c";
const TOKEN: &str = "tok-fuzz-\u{1F511}-19ab2e";

fn login(flags: u8) -> Command {
    let pw = || Secret::new(PASSWORD.to_string());
    let mechanism: Box<dyn pop3_wasm::proto::Mechanism> = match flags & 0x07 {
        0 => return Command::User { name: "u".into() },
        1 => return Command::Apop { name: "u".into(), digest: Secret::new("0".repeat(32)) },
        2 => Box::new(Plain::new("u", pw())),
        3 => Box::new(Login::new("u", pw())),
        4 => Box::new(CramMd5::new("u", pw())),
        5 => Box::new(XOAuth2::new("u", Secret::new(TOKEN.to_string()))),
        6 => Box::new(XOAuth2::new("u", Secret::new(TOKEN.to_string())).one_line()),
        _ => Box::new(OAuthBearer::new("u", Secret::new(TOKEN.to_string())).with_target("h", 110)),
    };
    Command::Auth { mechanism }
}

fn commands(flags: u8) -> Vec<Command> {
    let mut v = Vec::new();
    if flags & 0x40 != 0 {
        v.push(Command::Capa);
        v.push(Command::Stls);
    }
    v.push(login(flags));
    if flags & 0x07 == 0 {
        v.push(Command::Pass { password: Secret::new(PASSWORD.to_string()) });
    }
    v.extend([
        Command::Stat,
        Command::List { msg: None },
        Command::List { msg: Some(1) },
        Command::Uidl { msg: None },
        Command::Uidl { msg: Some(2) },
        Command::Top { msg: 1, lines: 0 },
        Command::Retr { msg: 1 },
        Command::Dele { msg: 1 },
        Command::Utf8,
        Command::Other { line: "XTND XMIT".into(), multiline: true },
        Command::Rset,
        Command::Noop,
        Command::Quit,
    ]);
    v
}

fn check_event(ev: &Event, data: &[u8]) {
    let shown = format!("{ev:?}");
    for secret in [PASSWORD, TOKEN] {
        let in_input = data.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(in_input || !shown.contains(secret), "a secret leaked into an event: {shown}");
    }
}

fn one_line_parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_stat(&text);
    let _ = parse_list(data);
    let _ = parse_uidl(data);
    let _ = apop_timestamp(&text);
    let _ = Capabilities::parse(data);
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (flags, chunk, stream_mask, wire) = (data[0], data[1], data[2], &data[3..]);
    if flags == 0xff {
        return one_line_parsers(wire);
    }
    let mut s = Session::new(Options {
        pipelining: flags & 0x08 != 0,
        transcript: flags & 0x10 != 0,
        stls_by_transport: flags & 0x20 != 0,
        recapa: flags & 0x80 != 0,
        max_line: 1024,
        transcript_body_limit: 512,
        max_body: 4096,
        ..Options::default()
    });
    let mut completions: HashMap<u64, u32> = HashMap::new();
    let mut ids = Vec::new();
    for (i, cmd) in commands(flags).into_iter().enumerate() {
        let r = if stream_mask & (1 << (i % 8)) != 0 { s.enqueue_streaming(cmd) } else { s.enqueue(cmd) };
        if let Ok(id) = r {
            ids.push(id);
        }
    }
    let mut drain = |s: &mut Session| {
        let _ = s.take_output();
        let mut upgrade = false;
        while let Some(ev) = s.poll_event() {
            check_event(&ev, data);
            match ev {
                Event::CommandCompleted { id, .. } => *completions.entry(id).or_default() += 1,
                Event::TlsUpgradeRequired => upgrade = true,
                _ => {}
            }
        }
        if upgrade && let Some(id) = s.tls_established() {
            ids.push(id);
        }
    };
    drain(&mut s);
    let size = if chunk == 0 { wire.len().max(1) } else { chunk as usize };
    for piece in wire.chunks(size) {
        s.feed(piece);
        drain(&mut s);
    }
    if let Some(id) = s.take_recapa() {
        let _ = id;
    }
    s.connection_closed("fuzz input ended");
    drain(&mut s);
    for (id, n) in &completions {
        assert_eq!(*n, 1, "command {id} completed {n} times");
    }
    for id in &ids {
        assert!(completions.contains_key(id), "command {id} never completed");
    }
});
