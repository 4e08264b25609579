//! Transcript tests: RFC dialogues and server quirks as `C:`/`S:` byte
//! strings, replayed through the sans-IO core. Every dialogue is replayed
//! with the server's bytes split into chunks of every size from 1 to 512,
//! and must give identical results each time.

use pop3_wasm::proto::{
    Command, Deviation, Direction, Event, Mechanism, Options, Plain, Response, SaslError, Secret, Session,
    State, Status, apop_digest,
};

/// One replayed exchange: what the session sent, and how each command ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    sent: Vec<u8>,
    results: Vec<Result<Response, String>>,
    deviations: Vec<Deviation>,
    state: State,
}

/// Replays `script`: `C: line` enqueues the command that line names and
/// checks those exact bytes are sent; `S: line` lines are fed to the
/// session (CRLF appended, unless the line ends in `\n` already) in chunks
/// of `chunk` bytes.
fn replay(script: &str, opts: Options, chunk: usize) -> Outcome {
    let mut s = Session::new(opts);
    let mut sent = Vec::new();
    let mut pending_server = Vec::<u8>::new();
    let mut results = Vec::new();
    let flush = |s: &mut Session, buf: &mut Vec<u8>, results: &mut Vec<Result<Response, String>>| {
        for piece in buf.chunks(chunk) {
            s.feed(piece);
        }
        buf.clear();
        while let Some(ev) = s.poll_event() {
            if let Event::CommandCompleted { result, .. } = ev {
                results.push(result.map_err(|e| e.code().to_string()));
            }
        }
    };
    for raw in script.lines() {
        let line = raw.trim_start();
        if let Some(c) = line.strip_prefix("C: ") {
            flush(&mut s, &mut pending_server, &mut results);
            s.enqueue(Command::parse_raw(c).expect("test command parses")).unwrap();
            let out = s.take_output();
            assert_eq!(String::from_utf8_lossy(&out), format!("{c}\r\n"), "bytes sent for `{c}`");
            sent.extend_from_slice(&out);
        } else if let Some(srv) = line.strip_prefix("S: ").or(line.strip_prefix("S:")) {
            pending_server.extend_from_slice(srv.as_bytes());
            pending_server.extend_from_slice(b"\r\n");
        }
    }
    flush(&mut s, &mut pending_server, &mut results);
    Outcome { sent, results, deviations: s.deviations().to_vec(), state: s.state() }
}

fn lockstep() -> Options {
    Options { recapa: false, ..Options::default() }
}

/// Replays with every chunk size 1..=512 and checks all agree.
fn replay_all_chunkings(script: &str) -> Outcome {
    let whole = replay(script, lockstep(), usize::MAX);
    for chunk in 1..=512 {
        assert_eq!(replay(script, lockstep(), chunk), whole, "chunk size {chunk}");
    }
    whole
}

fn ok_body(r: &Result<Response, String>) -> &[u8] {
    r.as_ref().expect("command succeeded").body.as_deref().expect("multi-line body")
}

const RFC1939_SESSION: &str = "
    S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>
    C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
    S: +OK mrose's maildrop has 2 messages (320 octets)
    C: STAT
    S: +OK 2 320
    C: LIST
    S: +OK 2 messages (320 octets)
    S: 1 120
    S: 2 200
    S: .
    C: RETR 1
    S: +OK 120 octets
    S: From: a@example.org
    S:
    S: ..a line that began with a dot
    S: .
    C: DELE 1
    S: +OK message 1 deleted
    C: RETR 2
    S: +OK 200 octets
    S: Subject: two
    S:
    S: body
    S: .
    C: DELE 2
    S: +OK message 2 deleted
    C: QUIT
    S: +OK dewey POP3 server signing off (maildrop empty)
";

#[test]
fn rfc1939_example_session_replays_byte_exact() {
    let out = replay_all_chunkings(RFC1939_SESSION);
    assert_eq!(out.results.len(), 8);
    assert!(out.results.iter().all(|r| r.as_ref().is_ok_and(Response::is_ok)));
    assert_eq!(ok_body(&out.results[2]), b"1 120\r\n2 200\r\n");
    assert_eq!(ok_body(&out.results[3]), b"From: a@example.org\r\n\r\n.a line that began with a dot\r\n");
    assert_eq!(ok_body(&out.results[5]), b"Subject: two\r\n\r\nbody\r\n");
    assert_eq!(out.state, State::Closed);
    assert!(out.deviations.is_empty());
}

#[test]
fn rfc1939_apop_digest_matches_the_example() {
    let d = apop_digest("<1896.697170952@dbc.mtview.ca.us>", &Secret::new("tanstaaf".to_string()));
    assert_eq!(d.expose(), "c4c9334bac560ecc979e58001b3e22fb");
}

#[test]
fn rfc1939_command_examples() {
    let out = replay_all_chunkings(
        "
        S: +OK POP3 server ready
        C: USER frated
        S: -ERR sorry, no mailbox for frated here
        C: USER mrose
        S: +OK mrose is a real hoopy frood
        C: PASS secret
        S: +OK mrose's maildrop has 2 messages (320 octets)
        C: LIST 2
        S: +OK 2 200
        C: LIST 3
        S: -ERR no such message, only 2 messages in maildrop
        C: UIDL
        S: +OK
        S: 1 whqtswO00WBw418f9t5JxYwZ
        S: 2 QhdPYR:00WBw1Ph7x7
        S: .
        C: UIDL 2
        S: +OK 2 QhdPYR:00WBw1Ph7x7
        C: TOP 1 10
        S: +OK
        S: Subject: x
        S:
        S: line 1
        S: .
        C: DELE 1
        S: +OK message 1 deleted
        C: DELE 1
        S: -ERR message 1 already deleted
        C: RSET
        S: +OK maildrop has 2 messages (320 octets)
        C: NOOP
        S: +OK
        C: QUIT
        S: +OK dewey POP3 server signing off
        ",
    );
    let statuses: Vec<Status> = out.results.iter().map(|r| r.as_ref().unwrap().status).collect();
    use Status::{Err as E, Ok as O};
    assert_eq!(statuses, vec![E, O, O, O, E, O, O, O, O, E, O, O, O]);
    assert_eq!(ok_body(&out.results[5]), b"1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n");
    assert_eq!(out.results[6].as_ref().unwrap().text, "2 QhdPYR:00WBw1Ph7x7");
    assert_eq!(ok_body(&out.results[7]), b"Subject: x\r\n\r\nline 1\r\n");
}

#[test]
fn rfc2449_capa_example() {
    let out = replay_all_chunkings(
        "
        S: +OK POP3 server ready
        C: CAPA
        S: +OK Capability list follows
        S: TOP
        S: USER
        S: SASL CRAM-MD5 KERBEROS_V4
        S: RESP-CODES
        S: LOGIN-DELAY 900
        S: PIPELINING
        S: EXPIRE 60
        S: UIDL
        S: IMPLEMENTATION Shlemazle-Plotz-v302
        S: .
        C: USER mrose
        S: +OK
        C: PASS secret
        S: -ERR [IN-USE] Do you have another POP session running?
        ",
    );
    let last = out.results[2].as_ref().unwrap();
    assert_eq!(last.resp_code.as_deref(), Some("IN-USE"));
    assert_eq!(last.clone().into_result(true).unwrap_err().code(), "SERVER_ERROR");
    assert_eq!(out.state, State::Authorization);
}

#[test]
fn wrong_password_is_auth_failed_with_resp_code() {
    let out = replay_all_chunkings(
        "
        S: +OK ready
        C: USER mrose
        S: +OK
        C: PASS wrong
        S: -ERR [AUTH] Authentication failed.
        ",
    );
    let e = out.results[1].clone().unwrap().into_result(true).unwrap_err();
    assert_eq!(e.code(), "AUTH_FAILED");
    assert_eq!(e.server_reply().unwrap().resp_code.as_deref(), Some("AUTH"));
    assert_eq!(e.server_reply().unwrap().text, "Authentication failed.");
}

// ---- tolerated deviations, one vector each -------------------------------

#[test]
fn deviation_no_space_after_status() {
    let out = replay_all_chunkings("S: +OKready\nC: USER a\nS: +OKfine\n");
    assert_eq!(out.results[0].as_ref().unwrap().text, "fine");
    assert_eq!(out.deviations, vec![Deviation::NoSpaceAfterStatus]);
}

#[test]
fn deviation_bare_lf_line_endings() {
    // Bare LF everywhere: status lines, body lines and the terminator.
    let script = "S: +OK ready\n\nC: USER a\nS: +OK\n\nC: PASS b\nS: +OK\n\nC: RETR 1\nS: +OK\nx\n.\n\n";
    let mut s = Session::new(lockstep());
    let mut results = Vec::new();
    let mut server = Vec::new();
    for line in script.split_inclusive('\n') {
        if let Some(c) = line.strip_prefix("C: ") {
            for b in &server {
                s.feed(std::slice::from_ref(b));
            }
            server.clear();
            s.enqueue(Command::parse_raw(c.trim_end()).unwrap()).unwrap();
            s.take_output();
        } else if let Some(srv) = line.strip_prefix("S: ") {
            // "S: x\n\n" — the first LF is the line's own ending.
            server.extend_from_slice(srv.as_bytes());
        } else if line != "\n" {
            server.extend_from_slice(line.as_bytes());
        }
    }
    for b in &server {
        s.feed(std::slice::from_ref(b));
    }
    while let Some(ev) = s.poll_event() {
        if let Event::CommandCompleted { result, .. } = ev {
            results.push(result.unwrap());
        }
    }
    assert_eq!(results.len(), 3);
    assert_eq!(results[2].body.as_deref(), Some(&b"x\n"[..]));
    assert_eq!(s.deviations(), &[Deviation::BareLf]);
}

#[test]
fn deviation_long_status_line_within_bound() {
    let long = "x".repeat(2000);
    let out = replay_all_chunkings(&format!("S: +OK ready\nC: USER a\nS: +OK {long}\n"));
    assert_eq!(out.results[0].as_ref().unwrap().text, long);
    assert_eq!(out.deviations, vec![Deviation::LongLine]);
}

#[test]
fn status_line_beyond_the_bound_is_a_protocol_error() {
    let mut s = Session::new(Options { max_line: 1024, ..lockstep() });
    s.feed(b"+OK ready\r\n");
    let id = s.enqueue(Command::Noop).unwrap();
    let _ = id;
    s.feed(&vec![b'x'; 4096]);
    assert_eq!(s.fatal().unwrap().code(), "PROTOCOL_ERROR");
}

/// A mechanism with an empty initial response, to test the `=` rule.
struct EmptyIr;
impl Mechanism for EmptyIr {
    fn name(&self) -> &str {
        "EXTERNAL"
    }
    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>> {
        Some(Secret::new(Vec::new()))
    }
    fn respond(&mut self, _: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        Err(SaslError("no more".into()))
    }
}

fn logged_out_session(opts: Options) -> Session {
    let mut s = Session::new(opts);
    s.feed(b"+OK ready\r\n");
    s
}

fn next_result(s: &mut Session) -> Result<Response, pop3_wasm::proto::Error> {
    while let Some(ev) = s.poll_event() {
        if let Event::CommandCompleted { result, .. } = ev {
            return result;
        }
    }
    panic!("no completion")
}

#[test]
fn auth_plain_initial_response_inline() {
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Auth {
        mechanism: Box::new(Plain::new("tim", Secret::new("tanstaaftanstaaf".into()))),
    })
    .unwrap();
    assert_eq!(s.take_output(), b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
    s.feed(b"+OK Maildrop locked and ready\r\n");
    assert!(next_result(&mut s).unwrap().is_ok());
    assert_eq!(s.state(), State::Transaction);
}

#[test]
fn auth_empty_initial_response_is_an_equals_sign() {
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Auth { mechanism: Box::new(EmptyIr) }).unwrap();
    assert_eq!(s.take_output(), b"AUTH EXTERNAL =\r\n");
}

#[test]
fn auth_plain_too_long_for_one_line_waits_for_bare_continuation() {
    // 255-octet rule (RFC 5034 § 4): the response goes after the challenge.
    let password = "p".repeat(200);
    let mut s = logged_out_session(Options { transcript: true, ..lockstep() });
    s.enqueue(Command::Auth { mechanism: Box::new(Plain::new("tim", Secret::new(password.clone()))) })
        .unwrap();
    assert_eq!(s.take_output(), b"AUTH PLAIN\r\n");
    s.feed(b"+\r\n"); // bare "+", no space
    let mut expected = base64_of(&format!("\0tim\0{password}")).into_bytes();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(s.take_output(), expected);
    s.feed(b"+OK\r\n");
    let mut transcript = Vec::new();
    let mut result = None;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::LineTranscribed(l) => transcript.push(format!("{:?}: {}", l.dir, l.line)),
            Event::CommandCompleted { result: r, .. } => result = Some(r),
            _ => {}
        }
    }
    assert!(result.unwrap().unwrap().is_ok());
    assert_eq!(
        transcript,
        ["S: +OK ready", "C: AUTH PLAIN", "S: + ", "C: [redacted]", "S: +OK"]
            .iter()
            .map(|s| s.trim_end().to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(s.deviations(), &[Deviation::BareContinuation]);
}

#[test]
fn auth_exactly_at_the_255_octet_limit_stays_inline() {
    // "AUTH PLAIN " (11) + base64 + CRLF (2) <= 255 leaves 242 octets of
    // base64, so at most 240 (180 octets encoded): "\0u\0" + 177-octet password.
    let password = "q".repeat(177);
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Auth { mechanism: Box::new(Plain::new("u", Secret::new(password.clone()))) }).unwrap();
    let out = s.take_output();
    assert_eq!(out.len(), 253);
    assert!(out.starts_with(b"AUTH PLAIN AHUA"));
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Auth { mechanism: Box::new(Plain::new("u", Secret::new(format!("{password}q")))) })
        .unwrap();
    assert_eq!(s.take_output(), b"AUTH PLAIN\r\n");
}

#[test]
fn sasl_step_that_cannot_continue_cancels_with_star() {
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Auth { mechanism: Box::new(Plain::new("tim", Secret::new("x".into()))) }).unwrap();
    s.take_output();
    s.feed(b"+ c29tZXRoaW5n\r\n");
    assert_eq!(s.take_output(), b"*\r\n");
    s.feed(b"-ERR [AUTH] cancelled\r\n");
    let e = next_result(&mut s).unwrap_err();
    assert_eq!(e.code(), "AUTH_FAILED");
    assert_eq!(s.state(), State::Authorization);
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

// ---- states ---------------------------------------------------------------

#[test]
fn transaction_commands_before_login_are_refused_without_sending() {
    let mut s = logged_out_session(lockstep());
    for cmd in
        [Command::Stat, Command::Retr { msg: 1 }, Command::Dele { msg: 1 }, Command::Noop, Command::Rset]
    {
        s.enqueue(cmd).unwrap();
        let e = next_result(&mut s).unwrap_err();
        assert_eq!(e.code(), "INVALID_STATE");
    }
    s.enqueue(Command::Pass { password: Secret::new("x".into()) }).unwrap();
    assert_eq!(next_result(&mut s).unwrap_err().code(), "INVALID_STATE");
    assert!(s.take_output().is_empty(), "nothing may reach the wire");
}

#[test]
fn login_commands_after_login_are_refused() {
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    s.feed(b"+OK\r\n");
    s.enqueue(Command::Pass { password: Secret::new("b".into()) }).unwrap();
    s.feed(b"+OK\r\n");
    s.take_output();
    while s.poll_event().is_some() {}
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    assert_eq!(next_result(&mut s).unwrap_err().code(), "INVALID_STATE");
    s.enqueue(Command::Stls).unwrap();
    assert_eq!(next_result(&mut s).unwrap_err().code(), "INVALID_STATE");
    assert!(s.take_output().is_empty());
}

#[test]
fn capa_is_asked_again_after_login() {
    let mut s = logged_out_session(Options::default());
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    s.feed(b"+OK\r\n");
    s.enqueue(Command::Pass { password: Secret::new("b".into()) }).unwrap();
    s.enqueue(Command::Stat).unwrap();
    assert_eq!(s.take_output(), b"USER a\r\nPASS b\r\n");
    s.feed(b"+OK logged in\r\n");
    // The session's own CAPA goes before the caller's STAT.
    assert_eq!(s.take_output(), b"CAPA\r\n");
    s.feed(b"+OK\r\nPIPELINING\r\nTOP\r\n.\r\n");
    assert_eq!(s.take_output(), b"STAT\r\n");
    assert!(s.capabilities().unwrap().pipelining);
}

#[test]
fn stls_discards_bytes_after_ok_and_waits_for_tls() {
    let mut s = logged_out_session(Options::default());
    s.enqueue(Command::Stls).unwrap();
    assert_eq!(s.take_output(), b"STLS\r\n");
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    s.feed(b"+OK Begin TLS\r\n+OK injected\r\n");
    assert!(s.take_output().is_empty(), "nothing is sent before the handshake");
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&Event::TlsUpgradeRequired));
    assert_eq!(s.deviations(), &[Deviation::DataAfterStls]);
    assert!(s.tls_established().is_some(), "CAPA asked again after STLS");
    assert_eq!(s.take_output(), b"CAPA\r\n");
    s.feed(b"+OK\r\nUSER\r\n.\r\n");
    assert_eq!(s.take_output(), b"USER a\r\n");
    s.feed(b"+OK\r\n");
    let results: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::CommandCompleted { result, .. } => Some(result.unwrap().text),
            _ => None,
        })
        .collect();
    // The injected +OK must not have answered CAPA or USER.
    assert_eq!(results, vec!["", ""], "the injected +OK never answered anything");
    assert!(s.capabilities().unwrap().user);
}

#[test]
fn stls_by_transport_sends_no_bytes() {
    let mut s = logged_out_session(Options { stls_by_transport: true, ..Options::default() });
    s.enqueue(Command::Stls).unwrap();
    assert!(s.take_output().is_empty());
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == Event::StlsRequested));
    s.feed(b"+OK Begin TLS\r\n");
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == Event::TlsUpgradeRequired));
}

/// The session's own STLS, then a second one typed by hand: refused by
/// the client (INVALID_STATE, nothing sent), and the session goes on.
#[test]
fn stls_on_a_tls_session_is_refused_and_the_session_kept() {
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Stls).unwrap();
    assert_eq!(s.take_output(), b"STLS\r\n");
    s.feed(b"+OK Begin TLS\r\n");
    assert!(!s.tls());
    s.tls_established();
    assert!(s.tls());
    while s.poll_event().is_some() {}
    s.enqueue(Command::Stls).unwrap();
    assert!(s.take_output().is_empty(), "a second STLS never reaches the server");
    let e = next_result(&mut s).unwrap_err();
    assert_eq!(e.code(), "INVALID_STATE");
    assert_eq!(
        e.to_string(),
        "STLS is not allowed in the TLS-protected AUTHORIZATION state; nothing was sent"
    );
    assert!(s.fatal().is_none());
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    assert_eq!(s.take_output(), b"USER a\r\n");

    // On implicit TLS there is no STLS at all.
    let mut s = logged_out_session(Options { tls: true, ..lockstep() });
    s.enqueue(Command::Stls).unwrap();
    assert!(s.take_output().is_empty());
    assert_eq!(next_result(&mut s).unwrap_err().code(), "INVALID_STATE");
}

/// One rule for the answer to STLS (proto::stls_verdict): `+ok` is `+OK`,
/// as everywhere; anything else ends the session as TLS_FAILED at once,
/// however the bytes are split.
#[test]
fn stls_answer_in_lower_case_upgrades_and_anything_else_fails_at_once() {
    for chunk in [1, 3, usize::MAX] {
        let mut s = logged_out_session(Options { transcript: true, ..lockstep() });
        s.enqueue(Command::Stls).unwrap();
        s.take_output();
        for piece in b"+ok begin TLS\r\n".chunks(chunk) {
            s.feed(piece);
        }
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(events.contains(&Event::TlsUpgradeRequired), "chunk {chunk}: {events:?}");
        assert_eq!(s.deviations(), &[Deviation::StatusCase]);

        let mut s = logged_out_session(Options { transcript: true, ..lockstep() });
        s.enqueue(Command::Stls).unwrap();
        s.take_output();
        for piece in b"HTTP/1.1 400 Bad Request\r\n".chunks(chunk) {
            s.feed(piece);
        }
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::LineTranscribed(l) if l.line == "HTTP/1.1 400 Bad Request")),
            "the line the server sent is in the transcript: {events:?}"
        );
        let failed = events.iter().find_map(|e| match e {
            Event::CommandCompleted { result: Err(e), .. } => Some(e.clone()),
            _ => None,
        });
        let e = failed.expect("STLS completed with an error");
        assert_eq!(e.code(), "TLS_FAILED");
        assert_eq!(
            e.to_string(),
            "TLS failed: the server's answer to STLS is neither +OK nor -ERR: \"HTTP/1.1 400 Bad Request\""
        );
        assert_eq!(s.fatal().map(|e| e.code().as_str()), Some("TLS_FAILED"));
    }
    // No line end within MAX_STLS_REPLY octets: the same, without waiting for more.
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Stls).unwrap();
    s.take_output();
    s.feed(&vec![b'+'; pop3_wasm::proto::MAX_STLS_REPLY]);
    assert_eq!(next_result(&mut s).unwrap_err().code(), "TLS_FAILED");
}

/// What the client learnt at each step: CAPA before STLS, after STLS and
/// after login, and the mechanisms login would use at each point.
#[test]
fn capabilities_are_kept_per_step_and_drive_the_login_choice() {
    let mut s = Session::new(Options::default());
    s.feed(b"+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    assert!(s.apop_usable());
    s.enqueue(Command::Capa).unwrap();
    s.feed(b"+OK\r\nSTLS\r\nUSER\r\nSASL PLAIN SCRAM-SHA-256\r\n.\r\n");
    // Plain text: the readable ones are out.
    assert_eq!(s.offered_mechanisms(), ["SCRAM-SHA-256", "APOP", "PLAIN", "USER"]);
    assert_eq!(s.login_mechanisms(), ["SCRAM-SHA-256", "APOP"]);
    s.enqueue(Command::Stls).unwrap();
    s.feed(b"+OK\r\n");
    assert!(s.capabilities().is_none(), "forgotten at STLS");
    s.tls_established();
    s.feed(b"+OK\r\nUSER\r\nSASL PLAIN SCRAM-SHA-256 CRAM-MD5\r\n.\r\n");
    assert_eq!(s.login_mechanisms(), ["SCRAM-SHA-256", "CRAM-MD5", "APOP", "PLAIN", "USER"]);
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    s.feed(b"+OK\r\n");
    s.enqueue(Command::Pass { password: Secret::new("b".into()) }).unwrap();
    s.feed(b"+OK\r\n");
    s.feed(b"+OK\r\nPIPELINING\r\n.\r\n");
    let h = s.capa_history();
    assert_eq!(h.before_stls.as_ref().unwrap().raw, ["STLS", "USER", "SASL PLAIN SCRAM-SHA-256"]);
    assert_eq!(h.after_stls.as_ref().unwrap().raw, ["USER", "SASL PLAIN SCRAM-SHA-256 CRAM-MD5"]);
    assert_eq!(h.after_login.as_ref().unwrap().raw, ["PIPELINING"]);
    assert_eq!(s.capabilities().unwrap().raw, ["PIPELINING"]);
    assert!(s.login_mechanisms().is_empty(), "logged in: nothing to log in with");

    // Implicit TLS: the first CAPA is "before STLS" (there is none), and
    // readable mechanisms are allowed; an invalid timestamp is no APOP.
    let mut s = Session::new(Options { tls: true, ..Options::default() });
    s.feed(b"+OK ready <no-at-sign>\r\n");
    assert!(!s.apop_usable());
    s.enqueue(Command::Capa).unwrap();
    s.feed(b"+OK\r\nUSER\r\n.\r\n");
    assert!(s.capa_history().before_stls.is_some() && s.capa_history().after_stls.is_none());
    assert_eq!(s.login_mechanisms(), ["USER"]);
    // allowInsecureAuth on plain text.
    let mut s = Session::new(Options { allow_insecure_auth: true, ..Options::default() });
    s.feed(b"+OK ready\r\n");
    s.enqueue(Command::Capa).unwrap();
    s.feed(b"-ERR no CAPA here\r\n");
    assert_eq!(s.login_mechanisms(), ["USER"]);
}

// ---- pipelining -----------------------------------------------------------

fn transaction_session(pipelining: bool) -> Session {
    // Capabilities are forgotten at login; the session asks again.
    let mut s = logged_out_session(Options::default());
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    s.feed(b"+OK\r\n");
    s.enqueue(Command::Pass { password: Secret::new("b".into()) }).unwrap();
    s.feed(b"+OK\r\n");
    if pipelining {
        s.feed(b"+OK\r\nPIPELINING\r\n.\r\n");
    } else {
        s.feed(b"+OK\r\nTOP\r\n.\r\n");
    }
    s.take_output();
    while s.poll_event().is_some() {}
    s
}

#[test]
fn pipelined_commands_are_sent_before_replies_and_matched_in_order() {
    let mut s = transaction_session(true);
    let ids: Vec<_> = [
        Command::List { msg: Some(1) },
        Command::Uidl { msg: None },
        Command::Top { msg: 1, lines: 0 },
        Command::Retr { msg: 9 },
    ]
    .into_iter()
    .map(|c| s.enqueue(c).unwrap())
    .collect();
    assert_eq!(s.take_output(), b"LIST 1\r\nUIDL\r\nTOP 1 0\r\nRETR 9\r\n");
    s.feed(b"+OK 1 100\r\n+OK\r\n1 abc\r\n.\r\n+OK\r\nSubject: s\r\n\r\n.\r\n-ERR no such message\r\n");
    let done: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::CommandCompleted { id, result } => Some((id, result.unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), ids);
    assert_eq!(done[0].1.text, "1 100");
    assert_eq!(done[1].1.body.as_deref(), Some(&b"1 abc\r\n"[..]));
    assert_eq!(done[2].1.body.as_deref(), Some(&b"Subject: s\r\n\r\n"[..]));
    assert_eq!(done[3].1.status, Status::Err);
}

#[test]
fn without_pipelining_commands_go_in_lockstep() {
    let mut s = transaction_session(false);
    s.enqueue(Command::Stat).unwrap();
    s.enqueue(Command::Noop).unwrap();
    assert_eq!(s.take_output(), b"STAT\r\n");
    s.feed(b"+OK 0 0\r\n");
    assert_eq!(s.take_output(), b"NOOP\r\n");
}

#[test]
fn too_many_replies_is_a_protocol_error() {
    let mut s = transaction_session(true);
    s.enqueue(Command::Noop).unwrap();
    s.feed(b"+OK\r\n+OK extra\r\n");
    assert_eq!(s.fatal().unwrap().code(), "PROTOCOL_ERROR");
    assert_eq!(s.enqueue(Command::Noop).unwrap_err().code(), "PROTOCOL_ERROR", "errors are sticky");
}

// ---- greetings and endings ----------------------------------------------

#[test]
fn err_greeting_fails_the_session() {
    let mut s = Session::new(lockstep());
    s.enqueue(Command::User { name: "a".into() }).unwrap();
    s.feed(b"-ERR [SYS/TEMP] too busy\r\n");
    assert_eq!(next_result(&mut s).unwrap_err().code(), "SERVER_ERROR");
    let e = s.fatal().unwrap();
    assert_eq!(e.server_reply().unwrap().resp_code.as_deref(), Some("SYS/TEMP"));
    assert!(s.take_output().is_empty());
}

#[test]
fn garbage_greeting_is_a_protocol_error() {
    let mut s = Session::new(lockstep());
    s.feed(b"SSH-2.0-OpenSSH_9.2\r\n");
    assert_eq!(s.fatal().unwrap().code(), "PROTOCOL_ERROR");
}

#[test]
fn greeting_apop_timestamp_only_when_valid() {
    let mut s = Session::new(lockstep());
    s.feed(b"+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    assert_eq!(s.greeting().unwrap().apop_timestamp.as_deref(), Some("<1896.697170952@dbc.mtview.ca.us>"));
    let mut s = Session::new(lockstep());
    s.feed(b"+OK ready <evil\x01@x>\r\n");
    assert_eq!(s.greeting().unwrap().apop_timestamp, None);
}

#[test]
fn connection_lost_mid_body_fails_the_command() {
    let mut s = transaction_session(false);
    s.enqueue(Command::Retr { msg: 1 }).unwrap();
    s.feed(b"+OK\r\npartial body\r\n");
    s.connection_closed("the server closed the connection");
    let e = next_result(&mut s).unwrap_err();
    assert_eq!(e.code(), "CONNECTION_CLOSED");
    assert!(e.to_string().contains("multi-line"), "{e}");
}

#[test]
fn close_after_quit_is_the_normal_end() {
    let mut s = transaction_session(false);
    s.enqueue(Command::Quit).unwrap();
    s.feed(b"+OK bye\r\n");
    assert!(next_result(&mut s).unwrap().is_ok());
    s.connection_closed("eof");
    assert!(s.fatal().is_none());
    assert_eq!(s.state(), State::Closed);
}

// ---- bodies are bytes ----------------------------------------------------

#[test]
fn eight_bit_and_invalid_utf8_pass_through_at_every_split() {
    let body: &[u8] = b"Subject: \xe4\xf6\xfc\r\n\r\n\xc3\x28 \xff\xfe\x00 .\r\n..\r\n";
    let mut wire = b"+OK\r\n".to_vec();
    wire.extend_from_slice(body);
    wire.extend_from_slice(b".\r\n.\r\n");
    let expected: &[u8] = b"Subject: \xe4\xf6\xfc\r\n\r\n\xc3\x28 \xff\xfe\x00 .\r\n.\r\n";
    for chunk in 1..=wire.len() {
        let mut s = transaction_session(false);
        s.enqueue(Command::Retr { msg: 1 }).unwrap();
        for p in wire.chunks(chunk) {
            s.feed(p);
        }
        assert_eq!(next_result(&mut s).unwrap().body.as_deref(), Some(expected), "chunk {chunk}");
    }
}

#[test]
fn streamed_body_arrives_in_chunks_and_not_in_the_response() {
    let mut s = transaction_session(false);
    let id = s.enqueue_streaming(Command::Retr { msg: 1 }).unwrap();
    s.feed(b"+OK\r\nabc\r\n..d");
    s.feed(b"ef\r\n.\r\n");
    let mut got = Vec::new();
    let mut response = None;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::BodyChunkReceived { id: i, data } => {
                assert_eq!(i, id);
                got.extend(data);
            }
            Event::CommandCompleted { result, .. } => response = Some(result.unwrap()),
            _ => {}
        }
    }
    assert_eq!(got, b"abc\r\n.def\r\n");
    assert_eq!(response.unwrap().body.as_deref(), Some(&b""[..]));
}

// ---- secrets ---------------------------------------------------------------

#[test]
fn transcript_and_debug_never_show_secrets() {
    let mut s = logged_out_session(Options { transcript: true, ..lockstep() });
    s.enqueue(Command::User { name: "alice".into() }).unwrap();
    s.feed(b"+OK\r\n");
    s.enqueue(Command::Pass { password: Secret::new("s3cr3t-Pw".into()) }).unwrap();
    let wire = s.take_output();
    assert!(String::from_utf8_lossy(&wire).contains("PASS s3cr3t-Pw\r\n"));
    s.feed(b"-ERR [AUTH] no\r\n");
    s.enqueue(Command::Auth { mechanism: Box::new(Plain::new("alice", Secret::new("s3cr3t-Pw".into()))) })
        .unwrap();
    s.feed(b"+OK\r\n");
    let mut lines = Vec::new();
    let mut all = String::new();
    while let Some(ev) = s.poll_event() {
        all.push_str(&format!("{ev:?}"));
        if let Event::LineTranscribed(l) = ev {
            lines.push(format!("{}: {}", if l.dir == Direction::C { "C" } else { "S" }, l.line));
        }
    }
    all.push_str(&format!("{s:?}"));
    assert_eq!(
        lines,
        vec![
            "S: +OK ready",
            "C: USER alice",
            "S: +OK",
            "C: PASS [redacted]",
            "S: -ERR [AUTH] no",
            "C: AUTH PLAIN [redacted]",
            "S: +OK"
        ]
    );
    assert!(!all.contains("s3cr3t"));
    assert!(!all.contains(&base64_of("\0alice\0s3cr3t-Pw")));
}

// ---- SASL exchanges through the session, byte-exact --------------------------

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn sent_line(s: &mut Session) -> String {
    String::from_utf8(s.take_output()).unwrap()
}

#[test]
fn scram_sha256_exchange_verifies_the_server() {
    use pop3_wasm::proto::{Scram, ScramHash};
    let mut s = logged_out_session(lockstep());
    let m = Scram::new(ScramHash::Sha256, "user", Secret::new("pencil".into()), "rOprNGfwEbeRWgbNEkqO");
    s.enqueue(Command::Auth { mechanism: Box::new(m) }).unwrap();
    assert_eq!(
        sent_line(&mut s),
        format!("AUTH SCRAM-SHA-256 {}\r\n", b64(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
    );
    let server_first =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    s.feed(format!("+ {}\r\n", b64(server_first)).as_bytes());
    assert_eq!(
        sent_line(&mut s),
        format!(
            "{}\r\n",
            b64(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        )
    );
    s.feed(format!("+ {}\r\n", b64(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).as_bytes());
    assert_eq!(sent_line(&mut s), "\r\n", "an empty response after the server's proof");
    s.feed(b"+OK logged in\r\n");
    assert!(next_result(&mut s).unwrap().is_ok());
    assert_eq!(s.state(), State::Transaction);
}

#[test]
fn scram_with_a_bad_server_signature_is_auth_failed_even_after_ok() {
    use pop3_wasm::proto::{Scram, ScramHash};
    let first = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    // A server that skips its proof and says +OK at once.
    let mut s = logged_out_session(lockstep());
    let m = Scram::new(ScramHash::Sha1, "user", Secret::new("pencil".into()), "fyko+d2lbbFgONRv9qkxdawL");
    s.enqueue(Command::Auth { mechanism: Box::new(m) }).unwrap();
    s.take_output();
    s.feed(format!("+ {}\r\n", b64(first)).as_bytes());
    s.take_output();
    s.feed(b"+OK welcome\r\n");
    assert_eq!(next_result(&mut s).unwrap_err().code(), "AUTH_FAILED");
    assert_eq!(s.fatal().unwrap().code(), "AUTH_FAILED", "the session is not trusted any more");
    // A server whose proof is wrong: the client cancels.
    let mut s = logged_out_session(lockstep());
    let m = Scram::new(ScramHash::Sha1, "user", Secret::new("pencil".into()), "fyko+d2lbbFgONRv9qkxdawL");
    s.enqueue(Command::Auth { mechanism: Box::new(m) }).unwrap();
    s.take_output();
    s.feed(format!("+ {}\r\n", b64(first)).as_bytes());
    s.take_output();
    s.feed(format!("+ {}\r\n", b64(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")).as_bytes());
    assert_eq!(sent_line(&mut s), "*\r\n");
    s.feed(b"+OK fine by me\r\n");
    assert_eq!(next_result(&mut s).unwrap_err().code(), "AUTH_FAILED");
    assert!(s.fatal().is_some());
}

#[test]
fn xoauth2_two_step_failure_reports_the_error_json() {
    use pop3_wasm::proto::XOAuth2;
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Auth {
        mechanism: Box::new(XOAuth2::new("u@example.com", Secret::new("tok".into()))),
    })
    .unwrap();
    assert_eq!(sent_line(&mut s), "AUTH XOAUTH2\r\n");
    s.feed(b"+ \r\n");
    assert_eq!(sent_line(&mut s), format!("{}\r\n", b64(b"user=u@example.com\x01auth=Bearer tok\x01\x01")));
    let json = br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
    s.feed(format!("+ {}\r\n", b64(json)).as_bytes());
    assert_eq!(sent_line(&mut s), "\r\n");
    s.feed(b"-ERR [AUTH] Invalid credentials\r\n");
    let e = next_result(&mut s).unwrap_err();
    assert_eq!(e.code(), "AUTH_FAILED");
    assert!(e.to_string().contains("Invalid credentials"), "{e}");
    match e {
        pop3_wasm::proto::Error::AuthFailed { detail, .. } => assert!(detail.contains(r#""status":"400""#)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn oauthbearer_with_a_4k_token_goes_after_the_challenge_and_fails_cleanly() {
    use pop3_wasm::proto::OAuthBearer;
    let token = "t".repeat(4096);
    let mut s = logged_out_session(lockstep());
    s.enqueue(Command::Auth { mechanism: Box::new(OAuthBearer::new("u", Secret::new(token.clone()))) })
        .unwrap();
    assert_eq!(sent_line(&mut s), "AUTH OAUTHBEARER\r\n", "too long for the AUTH line");
    s.feed(b"+ \r\n");
    let expected = format!("n,a=u,\x01auth=Bearer {token}\x01\x01");
    assert_eq!(sent_line(&mut s), format!("{}\r\n", b64(expected.as_bytes())));
    s.feed(format!("+ {}\r\n", b64(br#"{"status":"invalid_token"}"#)).as_bytes());
    assert_eq!(sent_line(&mut s), "AQ==\r\n", "the \\x01 reply");
    s.feed(b"-ERR Authentication failed\r\n");
    let e = next_result(&mut s).unwrap_err();
    assert_eq!(e.code(), "AUTH_FAILED");
    assert_eq!(s.state(), State::Authorization);
    // Success with the same flow.
    s.enqueue(Command::Auth { mechanism: Box::new(OAuthBearer::new("u", Secret::new(token))) }).unwrap();
    s.take_output();
    s.feed(b"+\r\n");
    s.take_output();
    s.feed(b"+OK\r\n");
    assert!(next_result(&mut s).unwrap().is_ok());
    assert_eq!(s.state(), State::Transaction);
}
