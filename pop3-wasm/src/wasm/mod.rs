//! The JS face of the client: `Pop3Client`, its WebSocket transport to
//! `ws-bridge`, and the mapping of errors onto `Pop3Error`.
//!
//! ```text
//!   JS call ──► Pop3Client ──enqueue──► proto::Session ──bytes──► WebSocket (binary frames)
//!   Promise ◄── oneshot    ◄──events─── proto::Session ◄──feed─── WebSocket (binary frames)
//!                                         control (JSON text frames): connect, stls, tls, error
//! ```
//!
//! The WebSocket is whatever constructor the runtime has: the global one in
//! browsers and Node ≥ 22, the `ws` package on Node 20 (the Node entry
//! passes it in), or the caller's `WebSocket` option. The bindings below
//! are structural, so any object with the browser WebSocket's shape works.

mod client;
#[cfg(feature = "diagnose")]
mod diagnose;
mod failure;
mod js;
#[cfg(feature = "tls")]
mod tls;
mod transport;

use wasm_bindgen::prelude::*;

/// Called once by the JS entry points: the `Pop3Error` class to throw, and
/// the WebSocket constructor to use when neither the caller nor the global
/// scope provides one.
#[wasm_bindgen]
pub fn configure(error_class: JsValue, default_websocket: JsValue) {
    failure::set_error_class(error_class);
    js::set_default_websocket(default_websocket);
}

/// The size of this module's linear memory in bytes (it grows and never
/// shrinks). Internal: the tests check bodies do not pass through it.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64
}
