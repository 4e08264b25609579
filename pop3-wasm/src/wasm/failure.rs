//! Failures as the JS side sees them: a `code` from the documented list,
//! a message, and the server's response code and text when there was one.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::proto::Error;

#[derive(Debug, Clone)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub resp_code: Option<String>,
    pub server_text: Option<String>,
    /// An `AbortSignal`'s reason: the call rejects with exactly that value.
    pub abort_reason: Option<JsValue>,
}

impl Failure {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), resp_code: None, server_text: None, abort_reason: None }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("INVALID_ARGUMENT", message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let reply = e.server_reply().cloned();
        Failure {
            code: e.code(),
            message: e.to_string(),
            resp_code: reply.as_ref().and_then(|r| r.resp_code.clone()),
            server_text: reply.map(|r| r.text),
            abort_reason: None,
        }
    }
}

thread_local! {
    static ERROR_CLASS: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

pub fn set_error_class(class: JsValue) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = class.dyn_into().ok());
}

impl From<Failure> for JsValue {
    fn from(f: Failure) -> JsValue {
        if let Some(reason) = f.abort_reason {
            return reason;
        }
        let fields = js_sys::Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = js_sys::Reflect::set(&fields, &JsValue::from_str(k), &v);
        };
        set("code", JsValue::from_str(f.code));
        set("respCode", f.resp_code.as_deref().map_or(JsValue::NULL, JsValue::from_str));
        set("serverText", f.server_text.as_deref().map_or(JsValue::NULL, JsValue::from_str));
        let message = JsValue::from_str(&f.message);
        let class = ERROR_CLASS.with(|c| c.borrow().clone());
        match class {
            Some(class) => js_sys::Reflect::construct(&class, &js_sys::Array::of2(&message, &fields))
                .unwrap_or_else(|e| e),
            None => {
                // Not configured (the raw wasm module used directly): a plain
                // Error with the same fields.
                let e = js_sys::Error::new(&f.message);
                let _ = js_sys::Object::assign(&e, &fields);
                e.into()
            }
        }
    }
}
