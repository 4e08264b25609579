//! Regressions from the hostile-server tests and fuzzing (issue 8): each
//! test names the input that once misbehaved and what must happen instead.

use pop3_wasm::proto::{Command, Event, Options, Secret, Session};

/// A session logged in with USER/PASS, lockstep, no re-CAPA.
fn logged_in(opts: Options) -> Session {
    let mut s = Session::new(Options { recapa: false, ..opts });
    s.feed(b"+OK ready\r\n");
    s.enqueue(Command::User { name: "u".into() }).unwrap();
    s.feed(b"+OK\r\n");
    s.enqueue(Command::Pass { password: Secret::new("p".into()) }).unwrap();
    s.feed(b"+OK\r\n");
    s.take_output();
    while s.poll_event().is_some() {}
    s
}

fn completion(s: &mut Session) -> Option<Result<Option<usize>, &'static str>> {
    while let Some(ev) = s.poll_event() {
        if let Event::CommandCompleted { result, .. } = ev {
            return Some(result.map(|r| r.body.map(|b| b.len())).map_err(|e| e.code().as_str()));
        }
    }
    None
}

/// An endless body to RETR (found by tests/e2e/hostile-*: 1 GB in 3 s grew
/// the client to 2.8 GB): past `max_body` the session fails, and it stops
/// taking bytes.
#[test]
fn endless_body_collected_whole_fails_at_max_body() {
    let mut s = logged_in(Options { max_body: 64 * 1024, ..Options::default() });
    s.enqueue(Command::Retr { msg: 1 }).unwrap();
    s.feed(b"+OK endless\r\n");
    let line = [b"x".repeat(98), b"\r\n".to_vec()].concat();
    let mut fed = 0;
    while s.fatal().is_none() && fed < 10 * 1024 * 1024 {
        s.feed(&line.repeat(100));
        fed += line.len() * 100;
    }
    assert!(fed <= 64 * 1024 + line.len() * 100, "failed only after {fed} octets");
    assert_eq!(completion(&mut s), Some(Err("PROTOCOL_ERROR")));
    assert_eq!(s.fatal().map(|e| e.code().as_str()), Some("PROTOCOL_ERROR"));
}

/// A body just under the bound is still delivered whole.
#[test]
fn body_at_max_body_is_delivered() {
    let mut s = logged_in(Options { max_body: 1000, ..Options::default() });
    s.enqueue(Command::Retr { msg: 1 }).unwrap();
    s.feed(b"+OK\r\n");
    s.feed(&b"0123456789\r\n".repeat(83)); // 996 octets
    s.feed(b".\r\n");
    assert_eq!(completion(&mut s), Some(Ok(Some(996))));
}

/// A streamed body is the consumer's to bound: `max_body` does not apply.
#[test]
fn streamed_body_is_not_limited_by_max_body() {
    let mut s = logged_in(Options { max_body: 1000, ..Options::default() });
    s.enqueue_streaming(Command::Retr { msg: 1 }).unwrap();
    s.feed(b"+OK\r\n");
    for _ in 0..100 {
        s.feed(&b"0123456789\r\n".repeat(100));
    }
    s.feed(b".\r\n");
    let mut streamed = 0;
    let mut done = None;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::BodyChunkReceived { data, .. } => streamed += data.len(),
            Event::CommandCompleted { result, .. } => done = Some(result.is_ok()),
            _ => {}
        }
    }
    assert_eq!((streamed, done), (120_000, Some(true)));
}

/// A line that never ends is refused at `max_line`, however it trickles in.
#[test]
fn status_line_without_end_fails_at_max_line() {
    let mut s = logged_in(Options { max_line: 1024, ..Options::default() });
    s.enqueue(Command::Stat).unwrap();
    s.feed(b"+OK ");
    let mut fed = 4;
    while s.fatal().is_none() && fed < 1 << 20 {
        s.feed(b"1");
        fed += 1;
    }
    assert_eq!(fed, 1025);
    assert_eq!(completion(&mut s), Some(Err("PROTOCOL_ERROR")));
}
