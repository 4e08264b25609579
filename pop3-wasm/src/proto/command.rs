//! POP3 commands: how each is written on the wire, how it shows in a
//! transcript (secrets redacted), in which states it is valid, and whether
//! its `+OK` answer is multi-line.

use super::Error;
use super::sasl::Mechanism;
use super::secret::{REDACTED, Secret};
use super::state::State;

/// A message number as the server numbers them (1-based).
pub type MsgNum = u32;

#[non_exhaustive]
pub enum Command {
    User {
        name: String,
    },
    Pass {
        password: Secret<String>,
    },
    /// `digest` is the lowercase hex MD5 of timestamp + password.
    Apop {
        name: String,
        digest: Secret<String>,
    },
    /// RFC 5034 AUTH; the core drives the mechanism's continuations itself.
    Auth {
        mechanism: Box<dyn Mechanism>,
    },
    Capa,
    Stls,
    /// RFC 6856.
    Utf8,
    Stat,
    List {
        msg: Option<MsgNum>,
    },
    Uidl {
        msg: Option<MsgNum>,
    },
    Top {
        msg: MsgNum,
        lines: u32,
    },
    Retr {
        msg: MsgNum,
    },
    Dele {
        msg: MsgNum,
    },
    Rset,
    Noop,
    Quit,
    /// A command line the core does not model (the playground's free form:
    /// `AUTH` with no argument, `LAST`, `XTND …`). Sent as given.
    Other {
        line: String,
        multiline: bool,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.transcript_line())
    }
}

fn check_line_safe(what: &str, s: &str) -> Result<(), Error> {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Error::InvalidArgument(format!("{what} contains CR, LF or NUL")));
    }
    Ok(())
}

fn check_msg(msg: MsgNum) -> Result<(), Error> {
    if msg == 0 {
        return Err(Error::InvalidArgument("message numbers start at 1".into()));
    }
    Ok(())
}

impl Command {
    /// The command's keyword, as used in errors and state checks.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User { .. } => "USER",
            Command::Pass { .. } => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Auth { .. } => "AUTH",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Utf8 => "UTF8",
            Command::Stat => "STAT",
            Command::List { .. } => "LIST",
            Command::Uidl { .. } => "UIDL",
            Command::Top { .. } => "TOP",
            Command::Retr { .. } => "RETR",
            Command::Dele { .. } => "DELE",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Other { .. } => "command",
        }
    }

    /// Checks the arguments can be sent at all. Called when the command is
    /// enqueued, so a bad argument never reaches the wire.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Command::User { name } => {
                if name.is_empty() {
                    return Err(Error::InvalidArgument("empty user name".into()));
                }
                check_line_safe("user name", name)
            }
            Command::Pass { password } => check_line_safe("password", password.expose()),
            Command::Apop { name, .. } => {
                if name.is_empty() || name.contains(' ') {
                    return Err(Error::InvalidArgument("APOP needs a user name without spaces".into()));
                }
                check_line_safe("user name", name)
            }
            Command::List { msg: Some(m) }
            | Command::Uidl { msg: Some(m) }
            | Command::Top { msg: m, .. }
            | Command::Retr { msg: m }
            | Command::Dele { msg: m } => check_msg(*m),
            Command::Other { line, .. } => {
                if line.trim().is_empty() {
                    return Err(Error::InvalidArgument("empty command line".into()));
                }
                check_line_safe("command line", line)?;
                if line.len() + 2 > MAX_COMMAND_OCTETS {
                    return Err(Error::InvalidArgument(format!(
                        "command line longer than {MAX_COMMAND_OCTETS} octets"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether a `+OK` answer to this command is followed by a multi-line
    /// body ending in `.CRLF`. LIST and UIDL differ with and without an
    /// argument; `-ERR` is always one line.
    pub fn is_multiline(&self) -> bool {
        match self {
            Command::List { msg } | Command::Uidl { msg } => msg.is_none(),
            Command::Top { .. } | Command::Retr { .. } | Command::Capa => true,
            Command::Other { multiline, .. } => *multiline,
            _ => false,
        }
    }

    /// Commands that change the session's state: nothing is pipelined past
    /// them, and they are sent only when nothing else is outstanding.
    pub fn is_barrier(&self) -> bool {
        matches!(
            self,
            Command::User { .. }
                | Command::Pass { .. }
                | Command::Apop { .. }
                | Command::Auth { .. }
                | Command::Stls
                | Command::Utf8
                | Command::Quit
        )
    }

    /// Whether the command may be sent in `state` (RFC 1939 §§ 4–6, RFC 2449
    /// for CAPA, RFC 2595 for STLS, RFC 6856 for UTF8).
    pub fn allowed_in(&self, state: State, user_accepted: bool) -> bool {
        match self {
            Command::Capa | Command::Quit | Command::Other { .. } => {
                matches!(state, State::Authorization | State::Transaction)
            }
            Command::User { .. }
            | Command::Apop { .. }
            | Command::Auth { .. }
            | Command::Stls
            | Command::Utf8 => state == State::Authorization,
            Command::Pass { .. } => state == State::Authorization && user_accepted,
            Command::Stat
            | Command::List { .. }
            | Command::Uidl { .. }
            | Command::Top { .. }
            | Command::Retr { .. }
            | Command::Dele { .. }
            | Command::Rset
            | Command::Noop => state == State::Transaction,
        }
    }

    /// The exact line sent to the server, CRLF included.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, sasl_initial: Option<&str>) {
        let line = match self {
            Command::User { name } => format!("USER {name}"),
            Command::Pass { password } => format!("PASS {}", password.expose()),
            Command::Apop { name, digest } => format!("APOP {name} {}", digest.expose()),
            Command::Auth { mechanism } => match sasl_initial {
                Some(ir) => format!("AUTH {} {ir}", mechanism.name()),
                None => format!("AUTH {}", mechanism.name()),
            },
            Command::Other { line, .. } => line.clone(),
            _ => self.transcript_line(),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// The line as it appears in a transcript: identical to the wire for
    /// everything except secrets.
    pub fn transcript_line(&self) -> String {
        match self {
            Command::User { name } => format!("USER {name}"),
            Command::Pass { .. } => format!("PASS {REDACTED}"),
            Command::Apop { name, .. } => format!("APOP {name} {REDACTED}"),
            Command::Auth { mechanism } => format!("AUTH {} {REDACTED}", mechanism.name()),
            Command::Capa => "CAPA".into(),
            Command::Stls => "STLS".into(),
            Command::Utf8 => "UTF8".into(),
            Command::Stat => "STAT".into(),
            Command::List { msg: None } => "LIST".into(),
            Command::List { msg: Some(m) } => format!("LIST {m}"),
            Command::Uidl { msg: None } => "UIDL".into(),
            Command::Uidl { msg: Some(m) } => format!("UIDL {m}"),
            Command::Top { msg, lines } => format!("TOP {msg} {lines}"),
            Command::Retr { msg } => format!("RETR {msg}"),
            Command::Dele { msg } => format!("DELE {msg}"),
            Command::Rset => "RSET".into(),
            Command::Noop => "NOOP".into(),
            Command::Quit => "QUIT".into(),
            Command::Other { line, .. } => redact_raw_line(line),
        }
    }

    /// Parses a free-form command line (the playground's input) into the
    /// command it names, so state, multi-line framing and redaction follow
    /// the same rules as the typed calls. Unknown verbs become `Other`.
    ///
    /// `AUTH` with a mechanism is refused here: a SASL exchange needs the
    /// typed `auth` call, which knows how to answer continuations.
    pub fn parse_raw(line: &str) -> Result<Command, Error> {
        check_line_safe("command line", line)?;
        let trimmed = line.trim_end_matches(' ');
        let mut parts = trimmed.splitn(2, ' ');
        let verb = parts.next().unwrap_or("").to_ascii_uppercase();
        let rest = parts.next().unwrap_or("");
        // A password may contain (even end in) spaces: take it untrimmed.
        let untrimmed_rest = line.split_once(' ').map(|(_, r)| r).unwrap_or("");
        let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
        let num = |s: &str| -> Result<MsgNum, Error> {
            s.parse::<MsgNum>()
                .map_err(|_| Error::InvalidArgument(format!("{verb}: `{s}` is not a message number")))
        };
        let arity = |n: std::ops::RangeInclusive<usize>| -> Result<(), Error> {
            if n.contains(&args.len()) {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!("{verb}: wrong number of arguments")))
            }
        };
        let cmd = match verb.as_str() {
            "USER" => {
                arity(1..=usize::MAX)?;
                Command::User { name: rest.to_string() }
            }
            "PASS" => Command::Pass { password: Secret::new(untrimmed_rest.to_string()) },
            "APOP" => {
                arity(2..=2)?;
                Command::Apop { name: args[0].to_string(), digest: Secret::new(args[1].to_string()) }
            }
            "AUTH" if args.is_empty() => Command::Other { line: "AUTH".into(), multiline: true },
            "AUTH" => {
                return Err(Error::Unsupported(
                    "SASL exchanges need the auth() call; raw AUTH only lists mechanisms".into(),
                ));
            }
            "CAPA" => Command::Capa,
            "STLS" => Command::Stls,
            "UTF8" => Command::Utf8,
            "STAT" => Command::Stat,
            "LIST" => {
                arity(0..=1)?;
                Command::List { msg: args.first().map(|a| num(a)).transpose()? }
            }
            "UIDL" => {
                arity(0..=1)?;
                Command::Uidl { msg: args.first().map(|a| num(a)).transpose()? }
            }
            "TOP" => {
                arity(2..=2)?;
                let lines = args[1]
                    .parse::<u32>()
                    .map_err(|_| Error::InvalidArgument(format!("TOP: `{}` is not a line count", args[1])))?;
                Command::Top { msg: num(args[0])?, lines }
            }
            "RETR" => {
                arity(1..=1)?;
                Command::Retr { msg: num(args[0])? }
            }
            "DELE" => {
                arity(1..=1)?;
                Command::Dele { msg: num(args[0])? }
            }
            "RSET" => Command::Rset,
            "NOOP" => Command::Noop,
            "QUIT" => Command::Quit,
            _ => Command::Other { line: trimmed.to_string(), multiline: false },
        };
        cmd.validate()?;
        Ok(cmd)
    }
}

/// RFC 2449 § 4: commands, CRLF included, are at most 255 octets.
pub const MAX_COMMAND_OCTETS: usize = 255;

/// Lines the core does not model may still carry a secret (a server's own
/// login extension, say): redact everything after the verb of anything
/// that looks like one.
fn redact_raw_line(line: &str) -> String {
    let verb = line.split(' ').next().unwrap_or("");
    let upper = verb.to_ascii_uppercase();
    if ["PASS", "APOP", "AUTH", "XOAUTH2", "LOGIN"].contains(&upper.as_str()) && line.len() > verb.len() {
        if upper == "AUTH" && line.len() == 4 {
            return line.to_string();
        }
        format!("{verb} {REDACTED}")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_uidl_are_multiline_only_without_argument() {
        assert!(Command::List { msg: None }.is_multiline());
        assert!(!Command::List { msg: Some(1) }.is_multiline());
        assert!(Command::Uidl { msg: None }.is_multiline());
        assert!(!Command::Uidl { msg: Some(1) }.is_multiline());
        assert!(Command::Top { msg: 1, lines: 0 }.is_multiline());
        assert!(Command::Retr { msg: 1 }.is_multiline());
        assert!(Command::Capa.is_multiline());
        for c in [
            Command::Stat,
            Command::Dele { msg: 1 },
            Command::Rset,
            Command::Noop,
            Command::Quit,
            Command::Stls,
        ] {
            assert!(!c.is_multiline(), "{c:?}");
        }
    }

    #[test]
    fn raw_lines_parse_into_typed_commands() {
        assert!(matches!(Command::parse_raw("list").unwrap(), Command::List { msg: None }));
        assert!(matches!(Command::parse_raw("LIST 3").unwrap(), Command::List { msg: Some(3) }));
        assert!(matches!(Command::parse_raw("top 2 10").unwrap(), Command::Top { msg: 2, lines: 10 }));
        assert!(matches!(Command::parse_raw("XTND XLST").unwrap(), Command::Other { multiline: false, .. }));
        assert!(matches!(Command::parse_raw("AUTH").unwrap(), Command::Other { multiline: true, .. }));
        assert_eq!(Command::parse_raw("RETR 0").unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(Command::parse_raw("RETR x").unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(Command::parse_raw("NOOP\r\nDELE 1").unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(Command::parse_raw("AUTH PLAIN AGFsaWNl").unwrap_err().code(), "UNSUPPORTED");
    }

    #[test]
    fn transcript_lines_hide_secrets() {
        let pass = Command::parse_raw("PASS hunter2").unwrap();
        assert_eq!(pass.transcript_line(), "PASS [redacted]");
        assert_eq!(format!("{pass:?}"), "PASS [redacted]");
        let apop = Command::parse_raw("APOP mrose c4c9334bac560ecc979e58001b3e22fb").unwrap();
        assert_eq!(apop.transcript_line(), "APOP mrose [redacted]");
        assert_eq!(redact_raw_line("XOAUTH2 dG9rZW4="), "XOAUTH2 [redacted]");
        let mut wire = Vec::new();
        pass.encode(&mut wire, None);
        assert_eq!(wire, b"PASS hunter2\r\n");
    }
}
