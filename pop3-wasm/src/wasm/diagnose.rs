//! `runDiagnosis(options)` (feature `diagnose`, the TLS-capable module):
//! the driver's diagnosis operation over the same transport as
//! `Pop3Client.connect`, and the report the core writes. Thin: the options
//! are read, the operation started, the facts wrapped; pop3-wasm/js/
//! diagnose.js adds the probe in the other TLS mode and the transcript.
//!
//! ```js
//! const d = await runDiagnosis({ bridge, host, port, tls, user, password });
//! const mode = d.probeMode();            // 'implicit' | 'starttls' | 'none' | undefined
//! if (mode) d.addProbe(await runDiagnosis({ …, tls: mode }));
//! JSON.parse(d.report());
//! ```

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::client::{Kind, get, open, opt_string, read_connect, rejected};
use crate::{
    diagnose::{self, Ask, Credential, Facts},
    driver::{Failure, Request},
    proto::Secret,
};

/// Starts a diagnosis: `connect`'s options plus `user`, `password` or
/// `oauthToken` (an OAuth 2.0 access token; `token` stays the bridge's
/// access token, as for `connect`), and `mechanism`. Resolves with a
/// `Diagnosis` whatever the server did; rejects only for invalid options.
#[wasm_bindgen(js_name = runDiagnosis, skip_typescript)]
pub fn run_diagnosis(opts: JsValue) -> Promise {
    match read(&opts).and_then(|(c, ask)| open(c, Request::Diagnose(ask), Kind::Diagnosis)) {
        Ok(p) => p,
        Err(f) => rejected(f),
    }
}

fn read(opts: &JsValue) -> Result<(super::client::Connect, Ask), Failure> {
    let mut c = read_connect(opts)?;
    // A diagnosis runs the whole sequence itself, STLS included.
    c.config.manual_stls = false;
    let password = opt_string(opts, "password")?;
    let token = opt_string(opts, "oauthToken")?;
    let credential = match (password, token) {
        (Some(_), Some(_)) => {
            return Err(Failure::invalid_argument("give `password` or `oauthToken`, not both"));
        }
        (Some(p), None) => Credential::Password(Secret::new(p)),
        (None, Some(t)) => Credential::Token(Secret::new(t)),
        (None, None) => Credential::None,
    };
    let mut ask =
        Ask { user: opt_string(opts, "user")?, credential, mechanism: opt_string(opts, "mechanism")? };
    if get(opts, "mechanism").as_string().as_deref() == Some("auto") {
        ask.mechanism = None;
    }
    ask.validate()?;
    Ok((c, ask))
}

/// A finished diagnosis (the session is closed, without QUIT).
#[wasm_bindgen(skip_typescript)]
#[derive(Debug)]
pub struct Diagnosis {
    inner: diagnose::Diagnosis,
}

pub(super) fn diagnosis_js(facts: Box<Facts>) -> JsValue {
    Diagnosis { inner: diagnose::Diagnosis::new(facts) }.into()
}

#[wasm_bindgen]
impl Diagnosis {
    /// The TLS mode a second session should try on the same port, if the
    /// failure hints that the port speaks the other one.
    #[wasm_bindgen(js_name = probeMode)]
    pub fn probe_mode(&self) -> Option<String> {
        self.inner.probe_mode().map(|m| m.as_str().to_string())
    }

    /// Takes in what the probe session found.
    #[wasm_bindgen(js_name = addProbe)]
    pub fn add_probe(&mut self, probe: &Diagnosis) {
        self.inner.add_probe(&probe.inner);
    }

    /// The report, as JSON text.
    pub fn report(&self) -> String {
        self.inner.to_json()
    }
}
