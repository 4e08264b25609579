//! `TlsEngine`: the TLS engine ([`crate::tls::TlsClient`]) for JavaScript,
//! thin — each method forwards and converts. The caller moves the bytes
//! (to node:net, to the bridge) and passes its clock in as `Date.now()`.
//!
//! ```js
//! const tls = new TlsEngine('pop.example.com', caPem ?? null, Date.now());
//! socket.write(tls.takeCiphertext());                   // the ClientHello
//! socket.on('data', (d) => { tls.feed(d); socket.write(tls.takeCiphertext()); use(tls.takePlaintext()); });
//! tls.established; tls.info;                            // { protocol, cipher, certificate, chain }
//! ```

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use super::{
    client::{object, opt_str, strings},
    failure::js_error as pop3_error,
};
use crate::driver::Failure;
use crate::tls::{CertificateDetails, TlsClient, TlsError, TlsInfo};

#[wasm_bindgen]
#[derive(Debug)]
pub struct TlsEngine {
    inner: TlsClient,
}

#[wasm_bindgen]
impl TlsEngine {
    /// `ca`: extra CA certificates (PEM string, or PEM/DER bytes), or
    /// null. `nowMs`: `Date.now()`.
    #[wasm_bindgen(constructor)]
    pub fn new(host: &str, ca: JsValue, now_ms: f64) -> Result<TlsEngine, JsValue> {
        let ca = match ca.as_string() {
            Some(pem) => pem.into_bytes(),
            None if ca.is_null() || ca.is_undefined() => Vec::new(),
            None => match ca.dyn_into::<Uint8Array>() {
                Ok(bytes) => bytes.to_vec(),
                Err(_) => {
                    return Err(pop3_error(&Failure::invalid_argument("`ca` must be a PEM string or bytes")));
                }
            },
        };
        TlsClient::new(host, &ca, secs(now_ms)).map(|inner| TlsEngine { inner }).map_err(js_error)
    }

    #[wasm_bindgen(js_name = setTime)]
    pub fn set_time(&mut self, now_ms: f64) {
        self.inner.set_time(secs(now_ms));
    }

    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<(), JsValue> {
        self.inner.feed(ciphertext).map_err(js_error)
    }

    #[wasm_bindgen(js_name = takePlaintext)]
    pub fn take_plaintext(&mut self) -> Vec<u8> {
        self.inner.take_plaintext()
    }

    pub fn write(&mut self, plaintext: &[u8]) -> Result<(), JsValue> {
        self.inner.write(plaintext).map_err(js_error)
    }

    #[wasm_bindgen(js_name = takeCiphertext)]
    pub fn take_ciphertext(&mut self) -> Vec<u8> {
        self.inner.take_ciphertext()
    }

    #[wasm_bindgen(getter)]
    pub fn established(&self) -> bool {
        self.inner.is_established()
    }

    pub fn close(&mut self) {
        self.inner.close();
    }

    #[wasm_bindgen(getter, js_name = peerClosed)]
    pub fn peer_closed(&self) -> bool {
        self.inner.peer_closed()
    }

    #[wasm_bindgen(getter, js_name = ignoredAfterClose)]
    pub fn ignored_after_close(&self) -> usize {
        self.inner.ignored_after_close()
    }

    #[wasm_bindgen(js_name = transportClosed)]
    pub fn transport_closed(&mut self) -> Result<(), JsValue> {
        self.inner.transport_closed().map_err(js_error)
    }

    /// `{ protocol, cipher, certificate: { subject, issuer, notAfter }, chain }`
    /// once established, else null.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> JsValue {
        self.inner.info().map_or(JsValue::NULL, info_js)
    }

    /// The certificates the server sent, also after a failed check.
    #[wasm_bindgen(getter, js_name = presentedChain)]
    pub fn presented_chain(&self) -> JsValue {
        chain_js(self.inner.presented_chain())
    }

    /// The fatal error (a `Pop3Error`), or null.
    #[wasm_bindgen(getter)]
    pub fn error(&self) -> JsValue {
        self.inner.error().cloned().map_or(JsValue::NULL, js_error)
    }
}

fn secs(now_ms: f64) -> u64 {
    (now_ms / 1000.0) as u64
}

/// A `Pop3Error`: `TLS_FAILED` (or `INVALID_ARGUMENT`, `INVALID_STATE` for
/// the caller's mistakes) with `reason`, the kind in one word.
fn js_error(e: TlsError) -> JsValue {
    let error = pop3_error(&Failure::from(e.clone()));
    let _ = js_sys::Reflect::set(&error, &"reason".into(), &e.reason().into());
    error
}

fn info_js(info: &TlsInfo) -> JsValue {
    let c = &info.certificate;
    object(&[
        ("protocol", info.protocol.as_str().into()),
        ("cipher", info.cipher.as_str().into()),
        (
            "certificate",
            object(&[
                ("subject", c.subject.as_str().into()),
                ("issuer", c.issuer.as_str().into()),
                ("notAfter", c.not_after.as_str().into()),
            ]),
        ),
        ("chain", chain_js(&info.chain)),
    ])
}

pub(super) fn chain_js(chain: &[CertificateDetails]) -> JsValue {
    chain
        .iter()
        .map(|c| {
            object(&[
                ("subject", c.subject.as_str().into()),
                ("issuer", c.issuer.as_str().into()),
                ("dnsNames", strings(&c.dns_names)),
                ("ipAddresses", strings(&c.ip_addresses)),
                ("notBefore", c.not_before.as_str().into()),
                ("notAfter", c.not_after.as_str().into()),
                ("keyType", c.key_type.as_str().into()),
                ("keyBits", c.key_bits.into()),
                ("curve", opt_str(&c.curve)),
                ("signatureAlgorithm", c.signature_algorithm.as_str().into()),
                ("sha256", c.sha256.as_str().into()),
                ("parseError", opt_str(&c.parse_error)),
            ])
        })
        .collect::<js_sys::Array>()
        .into()
}
