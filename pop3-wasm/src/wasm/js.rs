//! Structural bindings to the few JS objects the transport touches: a
//! WebSocket (browser or `ws` package) and timers.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// Anything shaped like the browser WebSocket.
    pub type Socket;

    #[wasm_bindgen(method, setter = binaryType)]
    pub fn set_binary_type(this: &Socket, value: &str);
    #[wasm_bindgen(method, catch, js_name = send)]
    pub fn send_bytes(this: &Socket, data: &js_sys::Uint8Array) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_name = send)]
    pub fn send_text(this: &Socket, data: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn close(this: &Socket, code: u16, reason: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, setter = onopen)]
    pub fn set_onopen(this: &Socket, f: &js_sys::Function);
    #[wasm_bindgen(method, setter = onmessage)]
    pub fn set_onmessage(this: &Socket, f: &js_sys::Function);
    #[wasm_bindgen(method, setter = onclose)]
    pub fn set_onclose(this: &Socket, f: &js_sys::Function);
    #[wasm_bindgen(method, setter = onerror)]
    pub fn set_onerror(this: &Socket, f: &js_sys::Function);

    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &js_sys::Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

thread_local! {
    static DEFAULT_WEBSOCKET: RefCell<JsValue> = const { RefCell::new(JsValue::UNDEFINED) };
}

pub fn set_default_websocket(ctor: JsValue) {
    DEFAULT_WEBSOCKET.with(|d| *d.borrow_mut() = ctor);
}

/// The WebSocket constructor: the caller's, else the global one, else the
/// one the entry point configured (the `ws` package on Node 20).
pub fn websocket_constructor(given: JsValue) -> Option<js_sys::Function> {
    if given.is_function() {
        return given.dyn_into().ok();
    }
    let global = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("WebSocket")).ok();
    if let Some(g) = global.filter(JsValue::is_function) {
        return g.dyn_into().ok();
    }
    DEFAULT_WEBSOCKET.with(|d| d.borrow().clone().dyn_into().ok())
}

/// A timer that fires once; dropping it cancels it, so a finished call
/// never keeps a Node process alive.
pub struct Timer {
    id: JsValue,
    _callback: Closure<dyn FnMut()>,
}

impl Timer {
    pub fn once(ms: f64, f: impl FnOnce() + 'static) -> Timer {
        let callback = Closure::once(f);
        let id = set_timeout(callback.as_ref().unchecked_ref(), ms);
        Timer { id, _callback: callback }
    }
}

impl Timer {
    /// Does not keep a Node process alive (a no-op in browsers).
    pub fn unref(&self) {
        call_if_present(&self.id, "unref");
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}

/// Calls `obj.name()` if `obj` has such a method (the `ws` package's
/// `pause`/`resume`, Node's `unref`); browsers' objects may not.
pub fn call_if_present(obj: &JsValue, name: &str) {
    if let Ok(f) = js_sys::Reflect::get(obj, &JsValue::from_str(name))
        && let Some(f) = f.dyn_ref::<js_sys::Function>()
    {
        let _ = f.call0(obj);
    }
}

/// Fills `buf` from the platform's CSPRNG (`crypto.getRandomValues`, in
/// browsers and Node alike); false when there is none.
pub fn random_bytes(buf: &mut [u8]) -> bool {
    let mut fill = || -> Option<()> {
        let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
        let f: js_sys::Function =
            js_sys::Reflect::get(&crypto, &JsValue::from_str("getRandomValues")).ok()?.dyn_into().ok()?;
        let array = js_sys::Uint8Array::new_with_length(buf.len() as u32);
        f.call1(&crypto, &array).ok()?;
        array.copy_to(buf);
        Some(())
    };
    fill().is_some()
}
