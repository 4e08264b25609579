//! pop3-wasm: a POP3 client for JavaScript, written in Rust.
//!
//! - [`proto`]: the sans-IO core (commands, responses, multi-line bodies,
//!   capabilities, SASL, the session state machine). Builds and tests
//!   natively; no I/O, no clock.
//! - `wasm` (wasm32 only): the JS face — `Pop3Client`, the WebSocket
//!   transport to `ws-bridge`, and the mapping of errors onto `Pop3Error`.

pub mod proto;
pub mod summary;

#[cfg(target_arch = "wasm32")]
mod wasm;
