//! Failures as JavaScript sees them: the driver's [`Failure`] as a
//! `Pop3Error` (automerge's way: a real error object, never a string).

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::driver::Failure;
use crate::proto::Error;

thread_local! {
    static ERROR_CLASS: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

pub fn set_error_class(class: JsValue) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = class.dyn_into().ok());
}

/// A `Pop3Error` with `code`, `respCode`, `serverText` and, for TLS
/// failures, `reason`.
pub fn js_error(f: &Failure) -> JsValue {
    let fields = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&fields, &JsValue::from_str(k), &v);
    };
    set("code", JsValue::from_str(f.code.as_str()));
    set("respCode", f.resp_code.as_deref().map_or(JsValue::NULL, JsValue::from_str));
    set("serverText", f.server_text.as_deref().map_or(JsValue::NULL, JsValue::from_str));
    if let Some(reason) = f.tls_reason {
        set("reason", JsValue::from_str(reason.as_str()));
    }
    let message = JsValue::from_str(&f.message);
    let class = ERROR_CLASS.with(|c| c.borrow().clone());
    match class {
        Some(class) => {
            js_sys::Reflect::construct(&class, &js_sys::Array::of2(&message, &fields)).unwrap_or_else(|e| e)
        }
        None => {
            // Not configured (the raw wasm module used directly): a plain
            // Error with the same fields.
            let e = js_sys::Error::new(&f.message);
            let _ = js_sys::Object::assign(&e, &fields);
            e.into()
        }
    }
}

impl From<Failure> for JsValue {
    fn from(f: Failure) -> JsValue {
        js_error(&f)
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        js_error(&e.into())
    }
}
