//! The sans-IO POP3 core: no sockets, no clock, no wasm-bindgen.
//!
//! ```text
//!            enqueue(Command)                 take_output() ──► bytes to the server
//!   caller ─────────────────► Session ──────►
//!            poll_event()  ◄──         ◄────── feed(bytes)  ◄── bytes from the server
//! ```
//!
//! The caller (the wasm transport, or a test) moves bytes and time; the core
//! frames commands, matches replies to them (pipelined or in lockstep),
//! unstuffs multi-line bodies byte-exactly, tracks the RFC 1939 states and
//! drives SASL exchanges. Incomplete input is never an error: the core waits
//! for more.

mod capability;
mod command;
mod deviation;
mod error;
mod login;
mod multiline;
mod response;
mod sasl;
mod saslprep;
mod secret;
mod session;
mod state;
mod stls;

pub use capability::{Capabilities, Expire};
pub use command::{Command, MAX_COMMAND_OCTETS, MsgNum};
pub use deviation::Deviation;
pub use error::{Error, ErrorCode, ServerReply};
pub use login::{PREFERENCE, offered_mechanisms, readable, usable_mechanisms};
pub use multiline::BodyDecoder;
pub use response::{
    Status, apop_timestamp, parse_list, parse_list_entry, parse_stat, parse_uidl, parse_uidl_entry,
};
pub use sasl::{
    CramMd5, Login, Mechanism, OAuthBearer, Plain, SCRAM_MAX_ITERATIONS, SaslError, Scram, ScramHash, XOAuth2,
};
pub use saslprep::{no_nfkc, saslprep};
pub use secret::{REDACTED, Secret};
pub use session::{
    CapaHistory, CommandId, Direction, Event, Greeting, LineKind, Options, Response, Session, TranscriptLine,
};
pub use state::State;
pub use stls::{MAX_STLS_REPLY, StlsVerdict, stls_verdict};

/// RFC 1939 § 7: the APOP digest, lowercase hex MD5 of timestamp + secret.
pub fn apop_digest(timestamp: &str, password: &Secret<String>) -> Secret<String> {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(password.expose().as_bytes());
    let digest = h.finalize();
    Secret::new(digest.iter().map(|b| format!("{b:02x}")).collect())
}
