//! pop3-wasm: a POP3 client for JavaScript, written in Rust.
//!
//! - [`driver`]: the sans-IO client driver over the core: the connect
//!   sequence, login choice, summaries, deadlines and keepalive with the
//!   time passed in, and where TLS ends. Every front end goes through it.
//! - [`wire`]: ws-bridge's session wire format, for the bridge and the
//!   client both.
//! - [`diagnose`] (feature `diagnose`): the analyzer's rules — a
//!   diagnosis session's facts judged step by step, with hints.
//! - [`proto`]: the sans-IO core (commands, responses, multi-line bodies,
//!   capabilities, SASL, the session state machine). Builds and tests
//!   natively; no I/O, no clock.
//! - [`tls`] (feature `tls`): the sans-IO TLS client engine (rustls) for
//!   end-to-end TLS, the bridge relaying ciphertext only.
//! - [`wire`]: the session wire format between the client and ws-bridge
//!   (subprotocols, control messages, error and close codes), defined once
//!   for both; its JSON codec behind the `serde` feature.
//! - `wasm` (wasm32 only): the JS face — `Pop3Client`, the WebSocket
//!   transport to `ws-bridge`, and the mapping of errors onto `Pop3Error`.

#[cfg(feature = "diagnose")]
pub mod diagnose;
pub mod driver;
pub mod proto;
pub mod summary;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod wasm;
