//! The two things that carry a session's bytes, as the driver's
//! [`Transmit`]s need them:
//!
//! - a WebSocket to ws-bridge (the browser's, the `ws` package's, or any
//!   object of that shape): control messages as TEXT frames, POP3 (or TLS)
//!   bytes as BINARY frames;
//! - in Node, a byte pipe over a TCP socket (`pop3-wasm/js/direct.js`),
//!   made by a factory `(host, port, handlers) => pipe`: `pipe.write(bytes)`,
//!   `pipe.startTls()` (Node's TLS, when TLS is not the client's),
//!   `pipe.close()`, `pipe.pause()`, `pipe.resume()`; it calls
//!   `handlers.open()`, `.data(bytes)`, `.tls(info)`, `.error(failure)`
//!   and `.close()`, never from inside one of its own methods.

use js_sys::{Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::js::{Socket, call_if_present};
use crate::driver::Transmit;

/// The event handlers the transport calls.
pub struct Handlers {
    pub open: Function,
    pub message: Function,
    pub close: Function,
    pub error: Function,
    pub data: Function,
    pub tls: Function,
    pub failed: Function,
}

pub enum Transport {
    WebSocket(Socket),
    Pipe(JsValue),
}

impl Transport {
    pub fn websocket(socket: Socket, h: &Handlers) -> Transport {
        socket.set_binary_type("arraybuffer");
        socket.set_onopen(&h.open);
        socket.set_onmessage(&h.message);
        socket.set_onclose(&h.close);
        socket.set_onerror(&h.error);
        Transport::WebSocket(socket)
    }

    /// Opens the pipe to `host:port` with `factory`.
    pub fn pipe(factory: &JsValue, host: &str, port: u16, h: &Handlers) -> Result<Transport, String> {
        let factory: &Function = factory.dyn_ref().ok_or("`transport` is not a function")?;
        let handlers = Object::new();
        for (k, f) in
            [("open", &h.open), ("data", &h.data), ("tls", &h.tls), ("error", &h.failed), ("close", &h.close)]
        {
            let _ = Reflect::set(&handlers, &k.into(), f);
        }
        let pipe = factory.call3(&JsValue::NULL, &host.into(), &port.into(), &handlers).map_err(|e| {
            e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default()
        })?;
        Ok(Transport::Pipe(pipe))
    }

    /// The subprotocol the bridge selected ("" for a pipe).
    pub fn protocol(&self) -> String {
        match self {
            Transport::WebSocket(s) => {
                Reflect::get(s, &"protocol".into()).ok().and_then(|p| p.as_string()).unwrap_or_default()
            }
            Transport::Pipe(_) => String::new(),
        }
    }

    pub fn transmit(&self, t: Transmit) {
        match (self, t) {
            (Transport::WebSocket(s), Transmit::Control(text)) => {
                let _ = s.send_text(&text);
            }
            (Transport::WebSocket(s), Transmit::Data(bytes)) => {
                let _ = s.send_bytes(&Uint8Array::from(&bytes[..]));
            }
            (Transport::WebSocket(s), Transmit::Close) => {
                let _ = s.close(1000, "session ended");
            }
            // Not asked of a bridge: it does TLS on its own messages.
            (Transport::WebSocket(_), Transmit::StartTls) => {}
            (Transport::Pipe(p), Transmit::Data(bytes)) => {
                call(p, "write", &Uint8Array::from(&bytes[..]).into());
            }
            (Transport::Pipe(p), Transmit::StartTls) => call_if_present(p, "startTls"),
            (Transport::Pipe(p), Transmit::Close) => call_if_present(p, "close"),
            // No control channel in a pipe.
            (Transport::Pipe(_), Transmit::Control(_)) => {}
        }
    }

    /// Backpressure: stop (or resume) reading, where the runtime can (the
    /// `ws` package and the pipe can; a browser WebSocket cannot).
    pub fn set_paused(&self, pause: bool) {
        let name = if pause { "pause" } else { "resume" };
        match self {
            Transport::WebSocket(s) => call_if_present(s, name),
            Transport::Pipe(p) => call_if_present(p, name),
        }
    }
}

fn call(obj: &JsValue, name: &str, arg: &JsValue) {
    if let Ok(f) = Reflect::get(obj, &name.into())
        && let Some(f) = f.dyn_ref::<Function>()
    {
        let _ = f.call1(obj, arg);
    }
}
