//! ws-bridge: relays each WebSocket session to one POP3 server.
//!
//! ```text
//!  client (wasm)                ws-bridge                                POP3 server
//!  ─────────────  WebSocket     ───────────────────────────────────────  TCP / TLS
//!  TEXT  connect ──────────────► policy::check ─► upstream::connect_tcp ──►
//!                ◄── connected ─ (implicit: TLS handshake, verified)
//!  BINARY bytes  ◄────────────► relay (both directions at once) ◄────────►  POP3
//!  TEXT  stls    ──────────────► STLS\r\n, +OK line forwarded, rest dropped,
//!                ◄──── tls ───── TLS handshake, relay resumes over TLS
//!  TEXT  error + close 44xx/45xx on any failure
//!
//!  end to end (wire v2, "endToEnd": true): no TLS in the bridge
//!  TEXT  connect ──────────────► policy::check ─► upstream::connect_tcp ──►
//!                ◄── connected ─ ("endToEnd": true)
//!  BINARY bytes  ─► guard ──────► relay: CAPA/STLS, the client's ClientHello, its TLS records ──►
//!                ◄──────────────  the server's bytes, unread ◄──────────────
//! ```
//!
//! * [`config`]: settings and the checked configuration.
//! * [`policy`]: the allowlist and the address guard (SSRF defence).
//! * [`wire`]: the session wire format v1 and v2 (control messages, error codes), shared with the client.
//! * [`upstream`]: TCP, TLS and the STLS exchange.
//! * [`relay`]: one session, from connect to close.
//! * [`guard`]: what an end-to-end session lets through before (and after) the client's TLS handshake.
//! * [`http`]: routes, security headers, static files, [`serve`], graceful shutdown.
//! * [`conn`]: accepting HTTP connections, their caps and deadlines.
//! * [`forwarded`]: the client's address behind trusted proxies (`X-Forwarded-For`).
//! * [`dns`]: the asynchronous resolver (hickory), with a deadline and a cap.
//! * [`limits`]: sessions, connections, rates and bytes, per client and in total.
//! * [`metrics`]: the counters behind `/metrics`.
//! * [`token`]: HMAC access tokens bound to a destination and where TLS ends.
//! * [`options`]: flags, environment and config file; [`logging`]: tracing set-up.

pub mod config;
pub mod conn;
pub mod demo;
pub mod dns;
pub mod forwarded;
pub mod guard;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod policy;
pub mod relay;
pub mod token;
pub mod upstream;

/// The session wire format (control messages, error and close codes),
/// defined once for the bridge and the client in the client crate.
pub use pop3_wasm::wire;

pub use config::{Config, ConfigError, Limits, Settings, Timeouts};
pub use http::{router, serve, serve_with_metrics};
