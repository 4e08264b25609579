//! One POP3 session of the demo server, without I/O: a command line goes
//! in, the reply bytes and what to do next come out.
//!
//! ```text
//!  AUTHORIZATION ── USER+PASS / APOP / AUTH ──► TRANSACTION ── QUIT ──► UPDATE (commit DELE)
//!    │  STLS → Action::StartTls, then tls_started()        │ drop without QUIT: nothing deleted
//!    └─ AUTH with a challenge → SaslWait (next line is the client's response, `*` cancels)
//! ```
//!
//! Covers RFC 1939 (all commands, APOP, the three states, dot-stuffing),
//! RFC 2449 (CAPA, PIPELINING, RESP-CODES, AUTH-RESP-CODE), RFC 2595 (STLS)
//! and RFC 5034 (AUTH with initial response, `+ ` continuations, `*`).

use std::sync::{Arc, Mutex};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use md5::{Digest, Md5};

use super::{
    mailbox::Message,
    scram::{self, Credentials},
};

/// The demo user, shared by every session.
#[derive(Debug)]
pub struct Account {
    pub user: String,
    pub password: String,
    pub scram: Credentials,
}

/// What every session shares: the account and the maildrop.
#[derive(Debug)]
pub struct Shared {
    pub account: Account,
    pub maildrop: Mutex<Vec<Arc<Message>>>,
    /// Host name in the greeting and the APOP timestamp.
    pub hostname: String,
}

impl Shared {
    pub fn new(account: Account, messages: Vec<Message>) -> Shared {
        Shared {
            account,
            maildrop: Mutex::new(messages.into_iter().map(Arc::new).collect()),
            hostname: "localhost".into(),
        }
    }

    fn maildrop(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Message>>> {
        self.maildrop.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the connection does after writing the reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Start the TLS handshake now (after `+OK` to STLS).
    StartTls,
    /// Close the connection.
    Close,
}

#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub action: Action,
}

impl Reply {
    fn line(text: impl AsRef<str>) -> Reply {
        let mut bytes = text.as_ref().as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        Reply { bytes, action: Action::Continue }
    }

    fn ok(text: impl AsRef<str>) -> Reply {
        Reply::line(format!("+OK {}", text.as_ref()))
    }

    fn err(text: impl AsRef<str>) -> Reply {
        Reply::line(format!("-ERR {}", text.as_ref()))
    }

    fn then(mut self, action: Action) -> Reply {
        self.action = action;
        self
    }

    /// `+OK text`, then `body` dot-stuffed, then `.`.
    fn multi(text: impl AsRef<str>, body: &[u8]) -> Reply {
        let mut bytes = format!("+OK {}\r\n", text.as_ref()).into_bytes();
        stuff_into(&mut bytes, body);
        bytes.extend_from_slice(b".\r\n");
        Reply { bytes, action: Action::Continue }
    }
}

/// Appends `body` with every line starting with `.` given one more `.`,
/// and a final CRLF if the body does not end with one (RFC 1939 §3).
pub fn stuff_into(out: &mut Vec<u8>, body: &[u8]) {
    out.reserve(body.len() + body.len() / 64 + 2);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
}

#[derive(Debug)]
enum Sasl {
    /// `AUTH PLAIN` without initial response: waiting for it.
    Plain,
    /// Waiting for the SCRAM client-first message.
    ScramFirst,
    /// Waiting for the client-final message.
    ScramFinal(scram::Exchange, Option<Credentials>),
    /// The server-final went out; waiting for the empty line.
    ScramDone,
}

#[derive(Debug)]
enum State {
    Authorization { user: Option<String> },
    SaslWait(Sasl),
    Transaction { messages: Vec<Arc<Message>>, deleted: Vec<bool> },
    Closed,
}

/// One session. Feed it lines (without CRLF) with [`Session::handle`].
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
    state: State,
    tls: bool,
    /// Whether STLS may be offered (the plain port, before TLS).
    stls_possible: bool,
    timestamp: String,
    server_nonce: String,
    failures: u32,
}

/// Failed logins before the server hangs up.
const MAX_FAILURES: u32 = 3;

impl Session {
    /// A session and its greeting. `random` makes the APOP timestamp and
    /// the SCRAM nonce unique.
    pub fn new(shared: Arc<Shared>, tls: bool, random: &[u8; 18]) -> (Session, Vec<u8>) {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let tag = u32::from_le_bytes([random[0], random[1], random[2], random[3]]);
        let timestamp = format!("<{}.{tag:08x}.{stamp}@{}>", std::process::id(), shared.hostname);
        let greeting = format!("+OK POP3 {} ws-bridge-demo server ready {timestamp}\r\n", shared.hostname);
        let session = Session {
            shared,
            state: State::Authorization { user: None },
            tls,
            stls_possible: !tls,
            timestamp,
            server_nonce: B64.encode(&random[4..]),
            failures: 0,
        };
        (session, greeting.into_bytes())
    }

    /// Whether the session has ended (after QUIT or too many failures).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the session is in the TRANSACTION state.
    pub fn is_transaction(&self) -> bool {
        matches!(self.state, State::Transaction { .. })
    }

    /// The TLS handshake after STLS succeeded: start over, as RFC 2595 asks.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.stls_possible = false;
        self.state = State::Authorization { user: None };
    }

    /// One line from the client, without its CRLF.
    pub fn handle(&mut self, line: &[u8]) -> Reply {
        if let State::SaslWait(_) = self.state {
            return self.sasl_response(line);
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Reply::err("Command is not valid UTF-8");
        };
        let (word, args) = match line.split_once(' ') {
            Some((w, a)) => (w, a),
            None => (line, ""),
        };
        let word = word.to_ascii_uppercase();
        let argv: Vec<&str> = args.split(' ').filter(|a| !a.is_empty()).collect();
        match (&self.state, word.as_str()) {
            (State::Closed, _) => Reply::err("Session closed").then(Action::Close),
            (_, "CAPA") => self.capa(),
            (_, "NOOP") if self.is_transaction() => Reply::ok(""),
            (State::Authorization { .. }, "QUIT") => {
                self.state = State::Closed;
                Reply::ok("POP3 server signing off").then(Action::Close)
            }
            (State::Authorization { .. }, "USER") => {
                if args.is_empty() {
                    return Reply::err("USER needs a user name");
                }
                self.state = State::Authorization { user: Some(args.to_owned()) };
                Reply::ok("User name accepted, password please")
            }
            (State::Authorization { user }, "PASS") => {
                let Some(user) = user.clone() else {
                    return Reply::err("USER first");
                };
                self.state = State::Authorization { user: None };
                let ok = user == self.shared.account.user && args == self.shared.account.password;
                self.login(ok)
            }
            (State::Authorization { .. }, "APOP") => {
                let [user, digest] = argv[..] else {
                    return Reply::err("APOP needs a user name and a digest");
                };
                let expected =
                    hex(&Md5::digest(format!("{}{}", self.timestamp, self.shared.account.password)));
                let ok = user == self.shared.account.user && digest.eq_ignore_ascii_case(&expected);
                self.login(ok)
            }
            (State::Authorization { .. }, "AUTH") => self.auth(&argv),
            (State::Authorization { .. }, "STLS") => {
                if !argv.is_empty() {
                    Reply::err("STLS takes no argument")
                } else if self.stls_possible {
                    Reply::ok("Begin TLS negotiation").then(Action::StartTls)
                } else if self.tls {
                    Reply::err("Command not permitted when TLS active")
                } else {
                    Reply::err("STLS is not offered on this port")
                }
            }
            (State::Transaction { .. }, _) => self.transaction(&word, &argv),
            (
                _,
                "USER" | "PASS" | "APOP" | "AUTH" | "STLS" | "STAT" | "LIST" | "UIDL" | "TOP" | "RETR"
                | "DELE" | "RSET" | "NOOP",
            ) => Reply::err("Command not valid in this state"),
            _ => Reply::err("Unknown command"),
        }
    }

    fn capa(&self) -> Reply {
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"];
        if !self.is_transaction() {
            caps.push("USER");
            caps.push("SASL PLAIN SCRAM-SHA-256");
            if self.stls_possible {
                caps.push("STLS");
            }
        }
        caps.push("IMPLEMENTATION ws-bridge-demo");
        let body: String = caps.iter().map(|c| format!("{c}\r\n")).collect();
        Reply::multi("Capability list follows", body.as_bytes())
    }

    fn login(&mut self, ok: bool) -> Reply {
        if !ok {
            self.failures += 1;
            self.state = State::Authorization { user: None };
            let reply = Reply::err("[AUTH] Authentication failed");
            if self.failures >= MAX_FAILURES {
                self.state = State::Closed;
                return reply.then(Action::Close);
            }
            return reply;
        }
        let messages = self.shared.maildrop().clone();
        let count = messages.len();
        self.state = State::Transaction { deleted: vec![false; count], messages };
        Reply::ok(format!("Mailbox open, {count} messages"))
    }

    fn auth(&mut self, argv: &[&str]) -> Reply {
        let Some(mechanism) = argv.first() else {
            return Reply::multi("Supported mechanisms", b"PLAIN\r\nSCRAM-SHA-256\r\n");
        };
        let initial = argv.get(1).copied();
        if argv.len() > 2 {
            return Reply::err("AUTH takes a mechanism and at most one initial response");
        }
        match (mechanism.to_ascii_uppercase().as_str(), initial) {
            ("PLAIN", None) => {
                self.state = State::SaslWait(Sasl::Plain);
                Reply::line("+ ")
            }
            ("SCRAM-SHA-256", None) => {
                self.state = State::SaslWait(Sasl::ScramFirst);
                Reply::line("+ ")
            }
            ("PLAIN", Some(ir)) => {
                self.state = State::SaslWait(Sasl::Plain);
                self.sasl_response(ir.as_bytes())
            }
            ("SCRAM-SHA-256", Some(ir)) => {
                self.state = State::SaslWait(Sasl::ScramFirst);
                self.sasl_response(ir.as_bytes())
            }
            _ => Reply::err("Unsupported authentication mechanism"),
        }
    }

    fn sasl_response(&mut self, line: &[u8]) -> Reply {
        let State::SaslWait(step) = std::mem::replace(&mut self.state, State::Authorization { user: None })
        else {
            return Reply::err("No authentication in progress");
        };
        if line == b"*" {
            return Reply::err("Authentication cancelled");
        }
        // "=" is an empty initial response (RFC 5034 §4).
        let data = if line == b"=" {
            Vec::new()
        } else {
            match B64.decode(line) {
                Ok(data) => data,
                Err(_) => return Reply::err("Invalid base64 data"),
            }
        };
        match step {
            Sasl::Plain => {
                // authzid NUL authcid NUL passwd (RFC 4616)
                let mut parts = data.split(|&b| b == 0);
                let (Some(authzid), Some(authcid), Some(passwd), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return self.login(false);
                };
                let account = &self.shared.account;
                let ok = authcid == account.user.as_bytes()
                    && passwd == account.password.as_bytes()
                    && (authzid.is_empty() || authzid == authcid);
                self.login(ok)
            }
            Sasl::ScramFirst => {
                let account = &self.shared.account;
                let lookup = |user: &str| (user == account.user).then(|| account.scram.clone());
                match scram::start(&data, &self.server_nonce, lookup) {
                    Ok((exchange, server_first, creds)) => {
                        self.state = State::SaslWait(Sasl::ScramFinal(exchange, creds));
                        Reply::line(format!("+ {}", B64.encode(server_first)))
                    }
                    Err(_) => self.login(false),
                }
            }
            Sasl::ScramFinal(exchange, creds) => match exchange.finish(&data, creds.as_ref()) {
                Ok(server_final) => {
                    self.state = State::SaslWait(Sasl::ScramDone);
                    Reply::line(format!("+ {}", B64.encode(server_final)))
                }
                Err(_) => self.login(false),
            },
            Sasl::ScramDone => self.login(data.is_empty()),
        }
    }

    fn transaction(&mut self, word: &str, argv: &[&str]) -> Reply {
        let State::Transaction { messages, deleted } = &mut self.state else {
            return Reply::err("Command not valid in this state");
        };
        // A message number that exists and is not marked deleted.
        let pick = |arg: Option<&&str>, deleted: &[bool]| -> Result<usize, Reply> {
            let Some(arg) = arg else { return Err(Reply::err("Message number required")) };
            match arg.parse::<usize>() {
                Ok(n) if n >= 1 && n <= deleted.len() => {
                    if deleted[n - 1] {
                        Err(Reply::err(format!("Message {n} already deleted")))
                    } else {
                        Ok(n - 1)
                    }
                }
                Ok(_) => Err(Reply::err("No such message")),
                Err(_) => Err(Reply::err("Invalid message number")),
            }
        };
        let live = || messages.iter().zip(deleted.iter()).enumerate().filter(|(_, (_, d))| !**d);
        let (count, size) = live().fold((0, 0), |(c, s), (_, (m, _))| (c + 1, s + m.bytes.len()));
        match word {
            "STAT" => Reply::ok(format!("{count} {size}")),
            "LIST" | "UIDL" if argv.len() > 1 => Reply::err("Too many arguments"),
            "LIST" => match argv.first() {
                None => {
                    let body: String =
                        live().map(|(i, (m, _))| format!("{} {}\r\n", i + 1, m.bytes.len())).collect();
                    Reply::multi(format!("{count} messages ({size} octets)"), body.as_bytes())
                }
                arg => match pick(arg, deleted) {
                    Ok(i) => Reply::ok(format!("{} {}", i + 1, messages[i].bytes.len())),
                    Err(reply) => reply,
                },
            },
            "UIDL" => match argv.first() {
                None => {
                    let body: String = live().map(|(i, (m, _))| format!("{} {}\r\n", i + 1, m.uid)).collect();
                    Reply::multi("Unique-ID listing follows", body.as_bytes())
                }
                arg => match pick(arg, deleted) {
                    Ok(i) => Reply::ok(format!("{} {}", i + 1, messages[i].uid)),
                    Err(reply) => reply,
                },
            },
            "RETR" if argv.len() != 1 => Reply::err("RETR needs one message number"),
            "RETR" => match pick(argv.first(), deleted) {
                Ok(i) => Reply::multi(format!("{} octets", messages[i].bytes.len()), &messages[i].bytes),
                Err(reply) => reply,
            },
            "TOP" => {
                let (Some(_), Some(lines), 2) = (argv.first(), argv.get(1), argv.len()) else {
                    return Reply::err("TOP needs a message number and a number of lines");
                };
                let Ok(lines) = lines.parse::<usize>() else {
                    return Reply::err("Invalid number of lines");
                };
                match pick(argv.first(), deleted) {
                    Ok(i) => Reply::multi("Top of message follows", top(&messages[i].bytes, lines)),
                    Err(reply) => reply,
                }
            }
            "DELE" if argv.len() != 1 => Reply::err("DELE needs one message number"),
            "DELE" => match pick(argv.first(), deleted) {
                Ok(i) => {
                    deleted[i] = true;
                    Reply::ok(format!("Message {} deleted", i + 1))
                }
                Err(reply) => reply,
            },
            "RSET" => {
                deleted.iter_mut().for_each(|d| *d = false);
                let size: usize = messages.iter().map(|m| m.bytes.len()).sum();
                Reply::ok(format!("Maildrop has {} messages ({size} octets)", messages.len()))
            }
            "NOOP" => Reply::ok(""),
            "QUIT" => {
                // UPDATE state: remove what was marked, from the shared maildrop.
                let gone: Vec<&Arc<Message>> =
                    messages.iter().zip(deleted.iter()).filter(|(_, d)| **d).map(|(m, _)| m).collect();
                let removed = gone.len();
                {
                    let mut maildrop = self.shared.maildrop();
                    maildrop.retain(|m| !gone.iter().any(|g| Arc::ptr_eq(g, m)));
                }
                let left = count;
                self.state = State::Closed;
                let text = if removed == 0 {
                    format!("POP3 server signing off ({left} messages left)")
                } else {
                    format!("POP3 server signing off ({removed} deleted, {left} messages left)")
                };
                Reply::ok(text).then(Action::Close)
            }
            "USER" | "PASS" | "APOP" | "AUTH" | "STLS" => Reply::err("Command not valid in this state"),
            _ => Reply::err("Unknown command"),
        }
    }
}

/// The header block with its blank line, then the first `lines` body lines.
fn top(message: &[u8], lines: usize) -> &[u8] {
    let header_end = match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => i + 4,
        None => return message,
    };
    let mut end = header_end;
    for _ in 0..lines {
        match message[end..].iter().position(|&b| b == b'\n') {
            Some(i) => end += i + 1,
            None => {
                end = message.len();
                break;
            }
        }
    }
    &message[..end]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        let account = Account {
            user: "demo".into(),
            password: "demo".into(),
            scram: Credentials::new("demo", b"0123456789abcdef", scram::ITERATIONS),
        };
        let messages = vec![
            Message {
                uid: "u1".into(),
                bytes: b"Subject: one\r\n\r\nline 1\r\n.hidden\r\n.\r\nline 4\r\n".to_vec(),
            },
            Message { uid: "u2".into(), bytes: b"Subject: two\r\n\r\nbody\r\n".to_vec() },
        ];
        Arc::new(Shared::new(account, messages))
    }

    fn say(s: &mut Session, line: &str) -> String {
        String::from_utf8(s.handle(line.as_bytes()).bytes).unwrap()
    }

    fn logged_in(shared: &Arc<Shared>) -> Session {
        let (mut s, _) = Session::new(shared.clone(), true, &[7; 18]);
        assert_eq!(say(&mut s, "USER demo"), "+OK User name accepted, password please\r\n");
        assert_eq!(say(&mut s, "PASS demo"), "+OK Mailbox open, 2 messages\r\n");
        s
    }

    #[test]
    fn stuffing_doubles_leading_dots_and_terminates_lines() {
        let mut out = Vec::new();
        stuff_into(&mut out, b".a\r\nb\r\n.\r\n..c\r\nd");
        assert_eq!(out, b"..a\r\nb\r\n..\r\n...c\r\nd\r\n");
        let mut empty = Vec::new();
        stuff_into(&mut empty, b"");
        assert!(empty.is_empty());
    }

    #[test]
    fn seed_dialogue_user_pass_then_retr_is_stuffed() {
        let shared = shared();
        let (mut s, greeting) = Session::new(shared.clone(), false, &[1; 18]);
        let greeting = String::from_utf8(greeting).unwrap();
        assert!(greeting.starts_with("+OK POP3 localhost ws-bridge-demo server ready <"), "{greeting}");
        assert_eq!(say(&mut s, "STAT"), "-ERR Command not valid in this state\r\n");
        assert_eq!(say(&mut s, "USER demo"), "+OK User name accepted, password please\r\n");
        assert_eq!(say(&mut s, "PASS demo"), "+OK Mailbox open, 2 messages\r\n");
        assert_eq!(say(&mut s, "STAT"), "+OK 2 66\r\n");
        assert_eq!(say(&mut s, "LIST"), "+OK 2 messages (66 octets)\r\n1 44\r\n2 22\r\n.\r\n");
        assert_eq!(
            say(&mut s, "RETR 1"),
            "+OK 44 octets\r\nSubject: one\r\n\r\nline 1\r\n..hidden\r\n..\r\nline 4\r\n.\r\n"
        );
        assert_eq!(
            say(&mut s, "TOP 1 1"),
            "+OK Top of message follows\r\nSubject: one\r\n\r\nline 1\r\n.\r\n"
        );
        assert_eq!(say(&mut s, "TOP 2 0"), "+OK Top of message follows\r\nSubject: two\r\n\r\n.\r\n");
        assert_eq!(say(&mut s, "UIDL 2"), "+OK 2 u2\r\n");
        assert_eq!(say(&mut s, "RETR 3"), "-ERR No such message\r\n");
        assert_eq!(say(&mut s, "USER x"), "-ERR Command not valid in this state\r\n");
        assert_eq!(say(&mut s, "FOO"), "-ERR Unknown command\r\n");
    }

    #[test]
    fn dele_commits_only_on_quit() {
        let shared = shared();
        let mut s = logged_in(&shared);
        assert_eq!(say(&mut s, "DELE 1"), "+OK Message 1 deleted\r\n");
        assert_eq!(say(&mut s, "DELE 1"), "-ERR Message 1 already deleted\r\n");
        assert_eq!(say(&mut s, "RETR 1"), "-ERR Message 1 already deleted\r\n");
        assert_eq!(say(&mut s, "LIST"), "+OK 1 messages (22 octets)\r\n2 22\r\n.\r\n");
        assert_eq!(say(&mut s, "RSET"), "+OK Maildrop has 2 messages (66 octets)\r\n");
        say(&mut s, "DELE 2");
        drop(s); // connection lost: nothing is deleted
        assert_eq!(shared.maildrop().len(), 2);

        let mut s = logged_in(&shared);
        say(&mut s, "DELE 2");
        let quit = s.handle(b"QUIT");
        assert_eq!(quit.action, Action::Close);
        assert_eq!(
            String::from_utf8(quit.bytes).unwrap(),
            "+OK POP3 server signing off (1 deleted, 1 messages left)\r\n"
        );
        assert!(s.is_closed());
        assert_eq!(shared.maildrop().len(), 1);
        assert_eq!(shared.maildrop()[0].uid, "u1");
    }

    #[test]
    fn wrong_password_has_auth_code_and_three_strikes_close() {
        let (mut s, _) = Session::new(shared(), false, &[1; 18]);
        assert_eq!(say(&mut s, "PASS demo"), "-ERR USER first\r\n");
        for i in 1..=3 {
            say(&mut s, "USER demo");
            let r = s.handle(b"PASS nope");
            assert_eq!(r.bytes, b"-ERR [AUTH] Authentication failed\r\n");
            assert_eq!(r.action == Action::Close, i == 3);
        }
    }

    #[test]
    fn stls_only_on_plain_port_in_authorization_and_resets() {
        let shared = shared();
        let (mut s, _) = Session::new(shared.clone(), false, &[1; 18]);
        assert!(say(&mut s, "CAPA").contains("\r\nSTLS\r\n"));
        say(&mut s, "USER demo");
        let r = s.handle(b"STLS");
        assert_eq!(r.action, Action::StartTls);
        s.tls_started();
        assert_eq!(say(&mut s, "PASS demo"), "-ERR USER first\r\n");
        assert_eq!(say(&mut s, "STLS"), "-ERR Command not permitted when TLS active\r\n");
        assert!(!say(&mut s, "CAPA").contains("STLS"));

        let mut s = logged_in(&shared);
        assert_eq!(say(&mut s, "STLS"), "-ERR Command not valid in this state\r\n");
        let capa = say(&mut s, "CAPA");
        assert!(!capa.contains("SASL") && !capa.contains("USER") && capa.contains("PIPELINING"));
    }

    #[test]
    fn sasl_plain_with_and_without_initial_response_and_cancel() {
        let plain = B64.encode(b"\0demo\0demo");
        let (mut s, _) = Session::new(shared(), true, &[1; 18]);
        assert_eq!(say(&mut s, &format!("AUTH PLAIN {plain}")), "+OK Mailbox open, 2 messages\r\n");

        let (mut s, _) = Session::new(shared(), true, &[1; 18]);
        assert_eq!(say(&mut s, "AUTH PLAIN"), "+ \r\n");
        assert_eq!(say(&mut s, "*"), "-ERR Authentication cancelled\r\n");
        assert_eq!(say(&mut s, "AUTH PLAIN"), "+ \r\n");
        assert_eq!(say(&mut s, &B64.encode(b"\0demo\0bad")), "-ERR [AUTH] Authentication failed\r\n");
        assert_eq!(say(&mut s, "AUTH CRAM-MD5"), "-ERR Unsupported authentication mechanism\r\n");
        assert_eq!(say(&mut s, "AUTH"), "+OK Supported mechanisms\r\nPLAIN\r\nSCRAM-SHA-256\r\n.\r\n");
    }

    #[test]
    fn sasl_scram_sha256_full_exchange() {
        use hmac::{Hmac, Mac};
        use sha2::Sha256;
        let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        };
        let (mut s, _) = Session::new(shared(), true, &[9; 18]);
        let first = say(&mut s, &format!("AUTH SCRAM-SHA-256 {}", B64.encode("n,,n=demo,r=clientnonce")));
        let server_first =
            String::from_utf8(B64.decode(first.trim_end().strip_prefix("+ ").unwrap()).unwrap()).unwrap();
        let nonce = server_first.split(',').next().unwrap().strip_prefix("r=").unwrap();
        assert!(nonce.starts_with("clientnonce") && nonce.len() > 11);
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2::<Hmac<Sha256>>(b"demo", b"0123456789abcdef", 4096, &mut salted).unwrap();
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = <Sha256 as sha2::Digest>::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n=demo,r=clientnonce,{server_first},{without_proof}");
        let sig = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        let reply = say(&mut s, &B64.encode(format!("{without_proof},p={}", B64.encode(proof))));
        let server_final =
            String::from_utf8(B64.decode(reply.trim_end().strip_prefix("+ ").unwrap()).unwrap()).unwrap();
        let server_key = hmac(&salted, b"Server Key");
        assert_eq!(server_final, format!("v={}", B64.encode(hmac(&server_key, auth_message.as_bytes()))));
        assert_eq!(say(&mut s, ""), "+OK Mailbox open, 2 messages\r\n");
    }

    #[test]
    fn apop_with_the_greeting_timestamp() {
        let (mut s, greeting) = Session::new(shared(), false, &[3; 18]);
        let greeting = String::from_utf8(greeting).unwrap();
        let ts = &greeting[greeting.find('<').unwrap()..=greeting.find('>').unwrap()];
        let digest = hex(&Md5::digest(format!("{ts}demo")));
        assert_eq!(say(&mut s, "APOP demo 0123"), "-ERR [AUTH] Authentication failed\r\n");
        assert_eq!(say(&mut s, &format!("APOP demo {digest}")), "+OK Mailbox open, 2 messages\r\n");
    }
}
