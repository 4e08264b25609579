//! The pipelining window, byte by byte: what the session sends before any
//! answer has come back, and what each answer releases. The window is
//! counted in octets of commands in flight (16 KiB by default) and capped in
//! commands (`pipelining_window`); see the session module's documentation.

use pop3_wasm::proto::{Command, Event, Options, Secret, Session, Status};

/// Octets of commands a default session keeps in flight at most.
const DEFAULT_BYTES: usize = 16 * 1024;

/// Logged in with USER/PASS to a server whose CAPA after login announces
/// `caps`; nothing left to send, no events left.
fn logged_in(opts: Options, caps: &str) -> Session {
    let mut s = Session::new(opts);
    s.feed(b"+OK ready\r\n");
    for (cmd, answer) in [
        (Command::User { name: "u".into() }, "+OK\r\n"),
        (Command::Pass { password: Secret::new("p".into()) }, "+OK\r\n"),
    ] {
        s.enqueue(cmd).unwrap();
        s.feed(answer.as_bytes());
    }
    assert_eq!(s.take_output(), b"USER u\r\nPASS p\r\nCAPA\r\n");
    s.feed(format!("+OK\r\n{caps}.\r\n").as_bytes());
    assert_eq!(s.take_output(), b"");
    while s.poll_event().is_some() {}
    s
}

fn pipelined(opts: Options) -> Session {
    let s = logged_in(opts, "TOP\r\nUIDL\r\nPIPELINING\r\n");
    assert!(s.pipelining());
    s
}

fn lines(cmds: impl IntoIterator<Item = String>) -> Vec<u8> {
    cmds.into_iter().flat_map(|c| format!("{c}\r\n").into_bytes()).collect()
}

/// The completions so far, in order: (id, status, body).
fn completions(s: &mut Session) -> Vec<(u64, Status, Option<Vec<u8>>)> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::CommandCompleted { id, result } => {
                let r = result.expect("no command fails here");
                Some((id, r.status, r.body))
            }
            _ => None,
        })
        .collect()
}

/// Feeds each answer in turn and checks what the session sends right after it.
fn answer_and_expect(s: &mut Session, steps: &[(&str, &str)]) {
    for (answer, sent) in steps {
        s.feed(answer.as_bytes());
        assert_eq!(String::from_utf8(s.take_output()).unwrap(), *sent, "after {answer:?}");
    }
}

/// What the server answers to `TOP n 0` in these tests (message n's header).
fn top_answer(n: u32) -> String {
    format!("+OK\r\nSubject: message {n}\r\n\r\n.\r\n")
}

#[test]
fn a_header_scan_of_1000_messages_leaves_in_one_flight() {
    let mut s = pipelined(Options::default());
    let list = s.enqueue(Command::List { msg: None }).unwrap();
    let uidl = s.enqueue(Command::Uidl { msg: None }).unwrap();
    assert_eq!(s.take_output(), b"LIST\r\nUIDL\r\n");
    s.feed(b"+OK\r\n1 10\r\n.\r\n+OK\r\n1 a\r\n.\r\n");
    assert_eq!(completions(&mut s).iter().map(|c| c.0).collect::<Vec<_>>(), [list, uidl]);

    let ids: Vec<_> = (1..=1000).map(|n| s.enqueue(Command::Top { msg: n, lines: 0 }).unwrap()).collect();
    let first_flight = s.take_output();
    // Every TOP before any answer: 10 893 octets, well inside 16 KiB.
    assert_eq!(first_flight, lines((1..=1000).map(|n| format!("TOP {n} 0"))));
    assert_eq!(first_flight.len(), 10_893);
    let answers: String = (1..=1000).map(top_answer).collect();
    s.feed(answers.as_bytes());
    assert_eq!(s.take_output(), b"", "nothing was left to send");
    let done = completions(&mut s);
    assert_eq!(done.iter().map(|c| c.0).collect::<Vec<_>>(), ids);
    for (n, (_, status, body)) in (1..).zip(&done) {
        assert_eq!(*status, Status::Ok);
        assert_eq!(body.as_deref(), Some(format!("Subject: message {n}\r\n\r\n").as_bytes()));
    }
}

#[test]
fn the_octet_bound_holds_the_rest_back_until_answers_free_enough() {
    let mut s = pipelined(Options::default());
    let ids: Vec<_> = (1..=2000).map(|n| s.enqueue(Command::Retr { msg: n }).unwrap()).collect();
    // RETR 1..9 are 8 octets, 10..99 9, 100..999 10, then 11: RETR 1..1590
    // make 16 383 octets, and RETR 1591 would make 16 394.
    let first_flight = s.take_output();
    assert_eq!(first_flight, lines((1..=1590).map(|n| format!("RETR {n}"))));
    assert_eq!(first_flight.len(), DEFAULT_BYTES - 1);

    answer_and_expect(
        &mut s,
        &[
            // The answer to RETR 1 frees 8 octets: 16 375 + 11 > 16 384, so nothing.
            ("+OK\r\nbody 1\r\n.\r\n", ""),
            // RETR 2's frees 8 more: 16 367 + 11 fits, and exactly RETR 1591 goes.
            ("+OK\r\nbody 2\r\n.\r\n", "RETR 1591\r\n"),
            // An -ERR answer frees its command the same way: 16 370 + 11.
            ("-ERR no such message\r\n", "RETR 1592\r\n"),
            // 16 373 + 11: exactly at the bound is inside it.
            ("+OK\r\nbody 4\r\n.\r\n", "RETR 1593\r\n"),
            // 16 376 + 11 is not.
            ("+OK\r\nbody 5\r\n.\r\n", ""),
        ],
    );

    let done = completions(&mut s);
    assert_eq!(done.iter().map(|c| c.0).collect::<Vec<_>>(), ids[..5]);
    assert_eq!(done[2].1, Status::Err);
    assert_eq!(done[3].2.as_deref(), Some(&b"body 4\r\n"[..]));
}

/// Answers every command in flight in chunks of `chunk` octets while
/// checking, after every piece, that the octets sent and not yet answered
/// stay within `bound`; returns the bodies in the order they completed.
fn drain_checking_bound(s: &mut Session, total: u32, chunk: usize, bound: usize) -> Vec<Vec<u8>> {
    let mut sent: Vec<u32> = Vec::new(); // message numbers, in the order sent
    let mut answered = 0usize; // answers the "server" has written so far
    let mut bodies = Vec::new();
    let mut pending = Vec::<u8>::new();
    let mut most = 0;
    let mut in_flight = 0; // octets sent and not yet completed at the client
    let octets = |n: u32| format!("RETR {n}\r\n").len();
    loop {
        let out = s.take_output();
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let n = std::str::from_utf8(line).unwrap().trim_end().strip_prefix("RETR ").unwrap();
            sent.push(n.parse().unwrap());
        }
        in_flight += out.len();
        for (_, status, body) in completions(s) {
            assert_eq!(status, Status::Ok);
            in_flight -= octets(sent[bodies.len()]);
            bodies.push(body.unwrap());
        }
        assert!(in_flight <= bound, "{in_flight} octets in flight");
        most = most.max(in_flight);
        if pending.is_empty() {
            if answered == sent.len() {
                break;
            }
            // The server answers what it has read, in order.
            for n in &sent[answered..] {
                pending.extend_from_slice(format!("+OK\r\nmessage {n}\r\n.\r\n").as_bytes());
            }
            answered = sent.len();
        }
        let take = chunk.min(pending.len());
        s.feed(&pending[..take]);
        pending.drain(..take);
    }
    assert_eq!(sent, (1..=total).collect::<Vec<_>>(), "each command sent once, in order");
    assert!(most > bound - 12, "the window filled up ({most} octets)");
    bodies
}

#[test]
fn a_long_batch_answered_in_small_pieces_never_exceeds_the_bound() {
    for chunk in [1, 7, 4096] {
        let mut s = pipelined(Options::default());
        for n in 1..=3000 {
            s.enqueue(Command::Retr { msg: n }).unwrap();
        }
        let bodies = drain_checking_bound(&mut s, 3000, chunk, DEFAULT_BYTES);
        let expected: Vec<Vec<u8>> = (1..=3000).map(|n| format!("message {n}\r\n").into_bytes()).collect();
        assert_eq!(bodies, expected, "every answer matched to its command (chunk {chunk})");
    }
}

#[test]
fn pipelining_bytes_can_be_set() {
    let mut s = pipelined(Options { pipelining_bytes: 100, ..Options::default() });
    for n in 1..=300 {
        s.enqueue(Command::Retr { msg: n }).unwrap();
    }
    let bodies = drain_checking_bound(&mut s, 300, 13, 100);
    assert_eq!(bodies.len(), 300);
}

#[test]
fn a_command_longer_than_the_bound_still_goes_alone() {
    let mut s = pipelined(Options { pipelining_bytes: 5, ..Options::default() });
    s.enqueue(Command::Noop).unwrap();
    s.enqueue(Command::Noop).unwrap();
    assert_eq!(s.take_output(), b"NOOP\r\n");
    answer_and_expect(&mut s, &[("+OK\r\n", "NOOP\r\n"), ("+OK\r\n", "")]);
    assert_eq!(completions(&mut s).len(), 2);
}

#[test]
fn pipelining_window_caps_the_commands_in_flight() {
    let mut s = pipelined(Options { pipelining_window: 3, ..Options::default() });
    for _ in 0..7 {
        s.enqueue(Command::Noop).unwrap();
    }
    assert_eq!(s.take_output(), b"NOOP\r\nNOOP\r\nNOOP\r\n");
    answer_and_expect(
        &mut s,
        &[
            ("+OK\r\n", "NOOP\r\n"),
            ("+OK\r\n+OK\r\n", "NOOP\r\nNOOP\r\n"),
            ("+OK\r\n+OK\r\n+OK\r\n", "NOOP\r\n"),
            ("+OK\r\n", ""),
        ],
    );
    assert_eq!(completions(&mut s).len(), 7);
}

#[test]
fn a_window_of_one_is_lockstep() {
    let mut s = logged_in(Options { pipelining_window: 1, ..Options::default() }, "PIPELINING\r\n");
    assert!(!s.pipelining());
    for _ in 0..3 {
        s.enqueue(Command::Stat).unwrap();
    }
    assert_eq!(s.take_output(), b"STAT\r\n");
    answer_and_expect(
        &mut s,
        &[("+OK 0 0\r\n", "STAT\r\n"), ("+OK 0 0\r\n", "STAT\r\n"), ("+OK 0 0\r\n", "")],
    );
}

#[test]
fn nothing_is_pipelined_past_a_barrier() {
    let mut s = pipelined(Options::default());
    for cmd in [Command::Dele { msg: 1 }, Command::Dele { msg: 2 }, Command::Quit] {
        s.enqueue(cmd).unwrap();
    }
    assert_eq!(s.take_output(), b"DELE 1\r\nDELE 2\r\n");
    // QUIT waits for every answer.
    answer_and_expect(&mut s, &[("+OK\r\n", ""), ("+OK\r\n", "QUIT\r\n"), ("+OK bye\r\n", "")]);
    assert_eq!(completions(&mut s).len(), 3);
}

#[test]
fn a_failure_with_commands_in_flight_fails_each_of_them_once() {
    let mut s = pipelined(Options::default());
    let ids: Vec<_> = (1..=2000).map(|n| s.enqueue(Command::Retr { msg: n }).unwrap()).collect();
    s.take_output();
    s.feed(b"+OK\r\nbody 1\r\n.\r\n+OK\r\npart");
    s.connection_closed("reset");
    let mut failed = Vec::new();
    let mut ok = Vec::new();
    while let Some(e) = s.poll_event() {
        if let Event::CommandCompleted { id, result } = e {
            match result {
                Ok(_) => ok.push(id),
                Err(e) => {
                    assert_eq!(e.code(), "CONNECTION_CLOSED");
                    failed.push(id);
                }
            }
        }
    }
    assert_eq!(ok, ids[..1]);
    // In flight first, then the ones still queued: each exactly once.
    failed.sort_unstable();
    assert_eq!(failed, ids[1..]);
    assert_eq!(s.take_output(), b"");
}
