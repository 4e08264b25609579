//! `Pop3Client`: the promise-based API of DESIGN.md over the sans-IO core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use futures_util::future::{Either, select};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::failure::Failure;
use super::js::{Socket, Timer, websocket_constructor};
use crate::proto::{
    Capabilities, Command, CommandId, Event, Expire, Options, Plain, Response, Secret, Session, State,
    Status, apop_digest, parse_list, parse_list_entry, parse_stat, parse_uidl, parse_uidl_entry,
};

/// The session wire format spoken with ws-bridge (see the README).
const SUBPROTOCOL: &str = "pop3-bridge.v1";
const DEFAULT_TIMEOUT_MS: f64 = 30_000.0;

type Shared = Rc<RefCell<Inner>>;
type Reply = Result<Response, Failure>;

struct Inner {
    session: Session,
    socket: Option<Socket>,
    waiters: HashMap<CommandId, oneshot::Sender<Reply>>,
    on_open: Option<oneshot::Sender<Result<(), Failure>>>,
    on_connected: Option<oneshot::Sender<Result<(), Failure>>>,
    on_greeting: Option<oneshot::Sender<Result<(), Failure>>>,
    on_tls: Option<oneshot::Sender<Result<Option<oneshot::Receiver<Reply>>, Failure>>>,
    /// Sticky: once set, every call fails with it.
    failure: Option<Failure>,
    opened: bool,
    tls: JsValue,
    transcript: Option<Function>,
    allow_insecure_auth: bool,
    timeout_ms: f64,
    bridge: String,
}

impl Inner {
    fn secure(&self) -> bool {
        self.tls.is_object()
    }

    fn close_socket(&mut self, reason: &str) {
        if let Some(s) = self.socket.take() {
            let _ = s.close(1000, reason);
        }
    }
}

/// Ends the session with `failure`: every outstanding and later call gets
/// it, and the WebSocket is closed. No QUIT is ever sent from here.
fn fail(shared: &Shared, failure: Failure) {
    {
        let mut inner = shared.borrow_mut();
        if inner.failure.is_some() {
            return;
        }
        inner.failure = Some(failure.clone());
        inner.close_socket("session ended");
        inner.session.fail(crate::proto::Error::ConnectionClosed(failure.message.clone()));
        for tx in
            [inner.on_open.take(), inner.on_connected.take(), inner.on_greeting.take()].into_iter().flatten()
        {
            let _ = tx.send(Err(failure.clone()));
        }
        if let Some(tx) = inner.on_tls.take() {
            let _ = tx.send(Err(failure.clone()));
        }
    }
    dispatch(shared);
}

/// Hands the core's events to whoever waits for them and sends what the
/// core wants sent. JS callbacks run after the borrow ends, so a callback
/// may call back into the client.
fn dispatch(shared: &Shared) {
    let (lines, callback) = {
        let mut guard = shared.borrow_mut();
        let inner = &mut *guard;
        let mut lines = Vec::new();
        while let Some(ev) = inner.session.poll_event() {
            match ev {
                Event::GreetingReceived(_) => {
                    if let Some(tx) = inner.on_greeting.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::CommandCompleted { id, result } => {
                    let result = result.map_err(|e| inner.failure.clone().unwrap_or_else(|| e.into()));
                    if let Some(tx) = inner.waiters.remove(&id) {
                        let _ = tx.send(result);
                    }
                }
                Event::LineTranscribed(l) => lines.push(l),
                Event::StlsRequested => {
                    if let Some(s) = &inner.socket {
                        let _ = s.send_text(r#"{"type":"stls"}"#);
                    }
                }
                Event::SessionFailed(e) => {
                    let f = inner.failure.get_or_insert_with(|| e.into()).clone();
                    inner.close_socket("session ended");
                    for tx in [inner.on_connected.take(), inner.on_greeting.take()].into_iter().flatten() {
                        let _ = tx.send(Err(f.clone()));
                    }
                    if let Some(tx) = inner.on_tls.take() {
                        let _ = tx.send(Err(f.clone()));
                    }
                }
                Event::TlsUpgradeRequired | Event::CapabilitiesUpdated | Event::BodyChunkReceived { .. } => {}
            }
        }
        let out = inner.session.take_output();
        if !out.is_empty()
            && let Some(s) = &inner.socket
        {
            let _ = s.send_bytes(&Uint8Array::from(&out[..]));
        }
        (lines, inner.transcript.clone())
    };
    if let Some(f) = callback {
        for l in lines {
            let o = Object::new();
            let _ = Reflect::set(
                &o,
                &"dir".into(),
                &(if l.dir == crate::proto::Direction::C { "C" } else { "S" }).into(),
            );
            let _ = Reflect::set(&o, &"line".into(), &l.line.into());
            let _ = f.call1(&JsValue::NULL, &o);
        }
    }
}

/// Waits for `rx`, or fails the session with `TIMEOUT` after the deadline.
async fn wait<T>(
    shared: &Shared,
    rx: oneshot::Receiver<Result<T, Failure>>,
    what: &str,
) -> Result<T, Failure> {
    let ms = shared.borrow().timeout_ms;
    let (ttx, trx) = oneshot::channel::<()>();
    let _timer = Timer::once(ms, move || {
        let _ = ttx.send(());
    });
    match select(rx, trx).await {
        Either::Left((Ok(v), _)) => v,
        Either::Left((Err(_), _)) => Err(shared
            .borrow()
            .failure
            .clone()
            .unwrap_or_else(|| Failure::new("CONNECTION_CLOSED", "the session ended"))),
        Either::Right(_) => {
            let f = Failure::new(
                "TIMEOUT",
                format!("no answer to {what} within {ms} ms; the session was dropped"),
            );
            fail(shared, f.clone());
            Err(f)
        }
    }
}

fn enqueue(shared: &Shared, cmd: Command) -> Result<oneshot::Receiver<Reply>, Failure> {
    let mut inner = shared.borrow_mut();
    if let Some(f) = &inner.failure {
        return Err(f.clone());
    }
    let id = inner.session.enqueue(cmd)?;
    let (tx, rx) = oneshot::channel();
    inner.waiters.insert(id, tx);
    Ok(rx)
}

/// Sends one command and waits for its complete answer (`-ERR` included).
async fn command(shared: &Shared, cmd: Command) -> Reply {
    let what = cmd.verb();
    let rx = enqueue(shared, cmd)?;
    dispatch(shared);
    wait(shared, rx, what).await
}

fn on_message(shared: &Shared, event: JsValue) {
    let data = Reflect::get(&event, &"data".into()).unwrap_or(JsValue::UNDEFINED);
    if let Some(text) = data.as_string() {
        return on_control(shared, &text);
    }
    let bytes = if data.is_instance_of::<js_sys::ArrayBuffer>() || data.is_instance_of::<Uint8Array>() {
        Uint8Array::new(&data).to_vec()
    } else {
        return fail(shared, Failure::new("PROTOCOL_ERROR", "the bridge sent a frame of an unknown kind"));
    };
    shared.borrow_mut().session.feed(&bytes);
    dispatch(shared);
}

/// The bridge's control messages (JSON text frames).
fn on_control(shared: &Shared, text: &str) {
    let Ok(msg) = js_sys::JSON::parse(text) else {
        return fail(shared, Failure::new("PROTOCOL_ERROR", "the bridge sent a malformed control message"));
    };
    let field = |k: &str| Reflect::get(&msg, &k.into()).unwrap_or(JsValue::UNDEFINED);
    match field("type").as_string().as_deref() {
        Some("connected") => {
            let mut inner = shared.borrow_mut();
            inner.tls = field("tls");
            if let Some(tx) = inner.on_connected.take() {
                let _ = tx.send(Ok(()));
            }
        }
        Some("tls") => {
            {
                let mut inner = shared.borrow_mut();
                inner.tls = field("tls");
                let capa = inner.session.tls_established().map(|id| {
                    let (tx, rx) = oneshot::channel();
                    inner.waiters.insert(id, tx);
                    rx
                });
                if let Some(tx) = inner.on_tls.take() {
                    let _ = tx.send(Ok(capa));
                }
            }
            dispatch(shared);
        }
        Some("error") => {
            let code = match field("code").as_string().as_deref() {
                Some("BRIDGE_REJECTED") => "BRIDGE_REJECTED",
                Some("CONNECT_FAILED") => "CONNECT_FAILED",
                Some("TLS_FAILED") => "TLS_FAILED",
                Some("TIMEOUT") => "TIMEOUT",
                Some("PROTOCOL_ERROR") => "PROTOCOL_ERROR",
                _ => "BRIDGE_REJECTED",
            };
            let message = field("message").as_string().unwrap_or_else(|| "the bridge refused".into());
            fail(shared, Failure::new(code, format!("bridge: {message}")));
        }
        // Unknown control messages are for newer clients; ignore them.
        _ => {}
    }
}

fn on_close(shared: &Shared, event: JsValue) {
    let (opened, bridge) = {
        let inner = shared.borrow();
        (inner.opened, inner.bridge.clone())
    };
    if !opened {
        return fail(
            shared,
            Failure::new("BRIDGE_UNREACHABLE", format!("could not open a WebSocket to {bridge}")),
        );
    }
    let code = Reflect::get(&event, &"code".into()).ok().and_then(|c| c.as_f64()).unwrap_or(0.0);
    {
        let mut inner = shared.borrow_mut();
        inner.socket = None;
        inner.session.connection_closed(&format!("the bridge closed the WebSocket (code {code})"));
        if inner.failure.is_none()
            && let Some(e) = inner.session.fatal().cloned()
        {
            inner.failure = Some(e.into());
        }
    }
    dispatch(shared);
    let f = shared.borrow().failure.clone();
    fail(shared, f.unwrap_or_else(|| Failure::new("CONNECTION_CLOSED", "the connection is closed")));
}

fn on_error(shared: &Shared, event: JsValue) {
    let (opened, bridge) = {
        let inner = shared.borrow();
        (inner.opened, inner.bridge.clone())
    };
    if opened {
        return; // a close event follows
    }
    // The `ws` package says why the handshake failed; browsers do not.
    let detail = Reflect::get(&event, &"message".into()).ok().and_then(|m| m.as_string()).unwrap_or_default();
    let failure = if detail.contains("Unexpected server response: 403") {
        Failure::new("BRIDGE_REJECTED", format!("the bridge at {bridge} refused the WebSocket (HTTP 403)"))
    } else {
        let why = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        Failure::new("BRIDGE_UNREACHABLE", format!("could not open a WebSocket to {bridge}{why}"))
    };
    fail(shared, failure);
}

/// The options object of `Pop3Client.connect`.
struct ConnectOptions {
    bridge: String,
    host: String,
    port: u16,
    tls: String,
    token: Option<String>,
    timeout_ms: f64,
    websocket: JsValue,
    on_transcript: Option<Function>,
    allow_insecure_auth: bool,
}

impl ConnectOptions {
    fn read(o: &JsValue) -> Result<Self, Failure> {
        if !o.is_object() {
            return Err(Failure::invalid_argument("connect() takes an options object"));
        }
        let get = |k: &str| Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let string = |k: &str| -> Result<Option<String>, Failure> {
            let v = get(k);
            if v.is_undefined() || v.is_null() {
                return Ok(None);
            }
            v.as_string()
                .map(Some)
                .ok_or_else(|| Failure::invalid_argument(format!("`{k}` must be a string")))
        };
        let bridge = string("bridge")?.ok_or_else(|| {
            Failure::invalid_argument(
                "`bridge` (the ws-bridge URL, e.g. ws://127.0.0.1:8080/pop3) is required",
            )
        })?;
        let host = string("host")?
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Failure::invalid_argument("`host` is required"))?;
        let tls = string("tls")?.unwrap_or_else(|| "implicit".into());
        if !["implicit", "starttls", "none"].contains(&tls.as_str()) {
            return Err(Failure::invalid_argument("`tls` must be 'implicit', 'starttls' or 'none'"));
        }
        let port = match get("port").as_f64() {
            None if get("port").is_undefined() => {
                if tls == "implicit" {
                    995
                } else {
                    110
                }
            }
            Some(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => p as u16,
            _ => return Err(Failure::invalid_argument("`port` must be an integer from 1 to 65535")),
        };
        let timeout_ms = match get("timeoutMs").as_f64() {
            None => DEFAULT_TIMEOUT_MS,
            Some(t) if t > 0.0 && t.is_finite() => t,
            Some(_) => return Err(Failure::invalid_argument("`timeoutMs` must be a positive number")),
        };
        let on_transcript = match get("onTranscript") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(
                v.dyn_into::<Function>()
                    .map_err(|_| Failure::invalid_argument("`onTranscript` must be a function"))?,
            ),
        };
        Ok(Self {
            bridge,
            host,
            port,
            tls,
            token: string("token")?,
            timeout_ms,
            websocket: get("WebSocket"),
            on_transcript,
            allow_insecure_auth: get("allowInsecureAuth").is_truthy(),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CapaJs {
    raw: Vec<String>,
    top: bool,
    uidl: bool,
    user: bool,
    pipelining: bool,
    resp_codes: bool,
    auth_resp_code: bool,
    stls: bool,
    sasl: Vec<String>,
    utf8: bool,
    utf8_args: Vec<String>,
    login_delay: Option<u32>,
    expire: Option<String>,
    implementation: Option<String>,
}

impl From<&Capabilities> for CapaJs {
    fn from(c: &Capabilities) -> Self {
        CapaJs {
            raw: c.raw.clone(),
            top: c.top,
            uidl: c.uidl,
            user: c.user,
            pipelining: c.pipelining,
            resp_codes: c.resp_codes,
            auth_resp_code: c.auth_resp_code,
            stls: c.stls,
            sasl: c.sasl.clone(),
            utf8: c.utf8.is_some(),
            utf8_args: c.utf8.clone().unwrap_or_default(),
            login_delay: c.login_delay.map(|(s, _)| s),
            expire: c.expire.as_ref().map(|(e, _)| match e {
                Expire::Never => "NEVER".to_string(),
                Expire::Days(d) => d.to_string(),
            }),
            implementation: c.implementation.clone(),
        }
    }
}

#[derive(Serialize)]
struct StatJs {
    count: u64,
    size: u64,
}

#[derive(Serialize)]
struct ListJs {
    id: u32,
    size: u64,
}

#[derive(Serialize)]
struct UidlJs {
    id: u32,
    uid: String,
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, Failure> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| Failure::new("PROTOCOL_ERROR", format!("could not convert a result: {e}")))
}

fn msg_arg(v: &JsValue, what: &str) -> Result<u32, Failure> {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=u32::MAX as f64).contains(&n) => Ok(n as u32),
        _ => Err(Failure::invalid_argument(format!("{what} must be a message number (an integer from 1)"))),
    }
}

fn opt_msg_arg(v: &JsValue, what: &str) -> Result<Option<u32>, Failure> {
    if v.is_undefined() || v.is_null() { Ok(None) } else { msg_arg(v, what).map(Some) }
}

fn promise<F>(f: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue, Failure>> + 'static,
{
    future_to_promise(async move { f.await.map_err(JsValue::from) })
}

fn ok_or_server_error(r: Response) -> Result<Response, Failure> {
    r.into_result(false).map_err(Failure::from)
}

/// A POP3 session through ws-bridge. Create one with `Pop3Client.connect`.
#[wasm_bindgen]
pub struct Pop3Client {
    shared: Shared,
}

impl std::fmt::Debug for Pop3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Client").field("session", &self.shared.borrow().session).finish()
    }
}

impl Drop for Pop3Client {
    fn drop(&mut self) {
        // Freed from JS: drop the connection, never commit.
        fail(&self.shared, Failure::new("CONNECTION_CLOSED", "the client was freed"));
    }
}

/// A socket event handler. It is handed to JS for good (`into_js_value`):
/// the socket may fire events after the session is gone, and a dropped
/// closure must never be called. It holds the session weakly.
fn handler(weak: &Weak<RefCell<Inner>>, f: fn(&Shared, JsValue)) -> Function {
    let weak = weak.clone();
    Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        if let Some(shared) = weak.upgrade() {
            f(&shared, ev);
        }
    })
    .into_js_value()
    .unchecked_into()
}

fn on_open(shared: &Shared, _event: JsValue) {
    let mut inner = shared.borrow_mut();
    inner.opened = true;
    if let Some(tx) = inner.on_open.take() {
        let _ = tx.send(Ok(()));
    }
}

async fn connect(opts: ConnectOptions) -> Result<Pop3Client, Failure> {
    let ctor = websocket_constructor(opts.websocket.clone()).ok_or_else(|| {
        Failure::invalid_argument(
            "no WebSocket implementation: pass the `WebSocket` option (e.g. the `ws` package)",
        )
    })?;
    let session = Session::new(Options {
        transcript: opts.on_transcript.is_some(),
        stls_by_transport: true,
        ..Options::default()
    });
    let shared: Shared = Rc::new(RefCell::new(Inner {
        session,
        socket: None,
        waiters: HashMap::new(),
        on_open: None,
        on_connected: None,
        on_greeting: None,
        on_tls: None,
        failure: None,
        opened: false,
        tls: JsValue::NULL,
        transcript: opts.on_transcript.clone(),
        allow_insecure_auth: opts.allow_insecure_auth,
        timeout_ms: opts.timeout_ms,
        bridge: opts.bridge.clone(),
    }));
    let client = Pop3Client { shared: shared.clone() };

    let socket: Socket =
        Reflect::construct(&ctor, &Array::of2(&opts.bridge.clone().into(), &Array::of1(&SUBPROTOCOL.into())))
            .map_err(|e| {
                let why = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
                Failure::invalid_argument(format!("cannot open a WebSocket to `{}`: {why}", opts.bridge))
            })?
            .unchecked_into();
    socket.set_binary_type("arraybuffer");
    let weak = Rc::downgrade(&shared);
    socket.set_onopen(&handler(&weak, on_open));
    socket.set_onmessage(&handler(&weak, on_message));
    socket.set_onclose(&handler(&weak, on_close));
    socket.set_onerror(&handler(&weak, on_error));
    let (open_tx, open_rx) = oneshot::channel();
    let (conn_tx, conn_rx) = oneshot::channel();
    let (greet_tx, greet_rx) = oneshot::channel();
    {
        let mut inner = shared.borrow_mut();
        inner.socket = Some(socket);
        inner.on_open = Some(open_tx);
        inner.on_connected = Some(conn_tx);
        inner.on_greeting = Some(greet_tx);
    }
    wait(&shared, open_rx, "the WebSocket handshake").await?;

    let hello = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&hello, &k.into(), &v);
    };
    set("type", "connect".into());
    set("v", 1.into());
    set("host", opts.host.clone().into());
    set("port", opts.port.into());
    set("tls", opts.tls.clone().into());
    if let Some(t) = &opts.token {
        set("token", t.into());
    }
    let hello = js_sys::JSON::stringify(&hello).map(String::from).unwrap_or_default();
    if let Some(s) = &shared.borrow().socket {
        let _ = s.send_text(&hello);
    }
    wait(&shared, conn_rx, "the bridge's connect").await?;
    wait(&shared, greet_rx, "the server greeting").await?;

    // What the server offers decides STLS and the login mechanism. A server
    // without CAPA (RFC 1939 only) answers -ERR; that is not a failure.
    command(&shared, Command::Capa).await?;

    if opts.tls == "starttls" {
        let (tls_tx, tls_rx) = oneshot::channel();
        shared.borrow_mut().on_tls = Some(tls_tx);
        let r = command(&shared, Command::Stls).await?;
        if !r.is_ok() {
            let f = Failure {
                code: "TLS_FAILED",
                message: format!("the server refused STLS: {}", r.text),
                resp_code: r.resp_code.clone(),
                server_text: Some(r.text.clone()),
            };
            fail(&shared, f.clone());
            return Err(f);
        }
        if let Some(capa) = wait(&shared, tls_rx, "the TLS handshake").await? {
            wait(&shared, capa, "CAPA").await?;
        }
    }
    Ok(client)
}

impl Pop3Client {
    fn call<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Shared) -> Fut,
        Fut: std::future::Future<Output = Result<JsValue, Failure>> + 'static,
    {
        promise(f(self.shared.clone()))
    }
}

/// Readable credentials need TLS to the server unless the caller opted out.
fn check_secure(shared: &Shared, what: &str) -> Result<(), Failure> {
    let inner = shared.borrow();
    if inner.secure() || inner.allow_insecure_auth {
        Ok(())
    } else {
        Err(Failure::new(
            "INSECURE_AUTH_REFUSED",
            format!(
                "{what} would send the password readable over a connection without TLS; use tls: 'implicit' or 'starttls', or pass allowInsecureAuth: true"
            ),
        ))
    }
}

async fn login_plain(shared: &Shared, user: String, password: String) -> Result<(), Failure> {
    check_secure(shared, "AUTH PLAIN")?;
    let mech = Plain::new(&user, Secret::new(password));
    let r = command(shared, Command::Auth { mechanism: Box::new(mech) }).await?;
    r.into_result(true).map(drop).map_err(Failure::from)
}

async fn login_user_pass(shared: &Shared, user: String, password: String) -> Result<(), Failure> {
    check_secure(shared, "USER/PASS")?;
    let r = command(shared, Command::User { name: user }).await?;
    r.into_result(true)?;
    let r = command(shared, Command::Pass { password: Secret::new(password) }).await?;
    r.into_result(true).map(drop).map_err(Failure::from)
}

fn credential(v: JsValue, what: &str) -> Result<String, Failure> {
    v.as_string().ok_or_else(|| Failure::invalid_argument(format!("{what} must be a string")))
}

#[wasm_bindgen]
impl Pop3Client {
    /// Opens a session: WebSocket to the bridge, the bridge's connection to
    /// the server, greeting, CAPA, and STLS when `tls: 'starttls'`.
    #[wasm_bindgen(js_name = connect)]
    pub fn connect_js(opts: JsValue) -> Promise {
        promise(async move {
            let opts = ConnectOptions::read(&opts)?;
            connect(opts).await.map(JsValue::from)
        })
    }

    /// The server's greeting text (after `+OK `).
    #[wasm_bindgen(getter)]
    pub fn greeting(&self) -> Option<String> {
        self.shared.borrow().session.greeting().map(|g| g.text.clone())
    }

    /// TLS to the server: `{ protocol, cipher, certificate: { subject, issuer, notAfter } }`, or null.
    #[wasm_bindgen(getter)]
    pub fn tls(&self) -> JsValue {
        self.shared.borrow().tls.clone()
    }

    /// The session's state: AUTHORIZATION, TRANSACTION or CLOSED.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        let inner = self.shared.borrow();
        let s = inner.session.state();
        if inner.failure.is_some() { State::Closed.name() } else { s.name() }.to_string()
    }

    /// Spec deviations the client tolerated so far: `[{ id, description }]`.
    #[wasm_bindgen(getter)]
    pub fn deviations(&self) -> JsValue {
        #[derive(Serialize)]
        struct D {
            id: &'static str,
            description: &'static str,
        }
        let list: Vec<D> = self
            .shared
            .borrow()
            .session
            .deviations()
            .iter()
            .map(|d| D { id: d.id(), description: d.description() })
            .collect();
        to_js(&list).unwrap_or(JsValue::NULL)
    }

    /// Asks CAPA and returns the parsed capabilities.
    pub fn capa(&self) -> Promise {
        self.call(|s| async move {
            let r = ok_or_server_error(command(&s, Command::Capa).await?)?;
            let caps = Capabilities::parse(r.body.as_deref().unwrap_or_default());
            to_js(&CapaJs::from(&caps))
        })
    }

    /// Logs in with the strongest mechanism the server offers; returns its name.
    pub fn login(&self, user: JsValue, password: JsValue) -> Promise {
        self.call(|s| async move {
            let user = credential(user, "the user name")?;
            let password = credential(password, "the password")?;
            let caps = s.borrow().session.capabilities().cloned().unwrap_or_default();
            if caps.sasl.iter().any(|m| m == "PLAIN") {
                login_plain(&s, user, password).await?;
                Ok("PLAIN".into())
            } else {
                login_user_pass(&s, user, password).await?;
                Ok("USER".into())
            }
        })
    }

    /// Logs in with a named SASL mechanism: `auth('PLAIN', { username, password })`.
    pub fn auth(&self, mechanism: JsValue, credentials: JsValue) -> Promise {
        self.call(|s| async move {
            let mechanism = credential(mechanism, "the mechanism")?.to_ascii_uppercase();
            let field = |k: &str| Reflect::get(&credentials, &k.into()).unwrap_or(JsValue::UNDEFINED);
            let username = credential(field("username"), "`username`")?;
            match mechanism.as_str() {
                "PLAIN" => {
                    let password = credential(field("password"), "`password`")?;
                    login_plain(&s, username, password).await?;
                }
                "USER" => {
                    let password = credential(field("password"), "`password`")?;
                    login_user_pass(&s, username, password).await?;
                }
                other => {
                    return Err(Failure::new(
                        "UNSUPPORTED",
                        format!("SASL mechanism {other} is not supported"),
                    ));
                }
            }
            Ok(JsValue::from_str(&mechanism))
        })
    }

    /// RFC 1939 APOP: only when the greeting carries a valid timestamp.
    pub fn apop(&self, user: JsValue, password: JsValue) -> Promise {
        self.call(|s| async move {
            let user = credential(user, "the user name")?;
            let password = Secret::new(credential(password, "the password")?);
            let stamp = s.borrow().session.greeting().and_then(|g| g.apop_timestamp.clone());
            let stamp = stamp.ok_or_else(|| {
                Failure::new(
                    "UNSUPPORTED",
                    "the greeting has no valid APOP timestamp; the server does not offer APOP",
                )
            })?;
            let digest = apop_digest(&stamp, &password);
            let r = command(&s, Command::Apop { name: user, digest }).await?;
            r.into_result(true)?;
            Ok("APOP".into())
        })
    }

    pub fn stat(&self) -> Promise {
        self.call(|s| async move {
            let r = ok_or_server_error(command(&s, Command::Stat).await?)?;
            let (count, size) = parse_stat(&r.text)?;
            to_js(&StatJs { count, size })
        })
    }

    /// `list()` → `[{ id, size }]`; `list(n)` → `{ id, size }`.
    pub fn list(&self, msg: JsValue) -> Promise {
        self.call(|s| async move {
            let msg = opt_msg_arg(&msg, "list(n)")?;
            let r = ok_or_server_error(command(&s, Command::List { msg }).await?)?;
            match msg {
                Some(_) => {
                    let (id, size) = parse_list_entry(&r.text)?;
                    to_js(&ListJs { id, size })
                }
                None => {
                    let list = parse_list(r.body.as_deref().unwrap_or_default())?;
                    to_js(&list.into_iter().map(|(id, size)| ListJs { id, size }).collect::<Vec<_>>())
                }
            }
        })
    }

    /// `uidl()` → `[{ id, uid }]`; `uidl(n)` → `{ id, uid }`.
    pub fn uidl(&self, msg: JsValue) -> Promise {
        self.call(|s| async move {
            let msg = opt_msg_arg(&msg, "uidl(n)")?;
            let r = ok_or_server_error(command(&s, Command::Uidl { msg }).await?)?;
            match msg {
                Some(_) => {
                    let (id, uid) = parse_uidl_entry(&r.text)?;
                    to_js(&UidlJs { id, uid })
                }
                None => {
                    let list = parse_uidl(r.body.as_deref().unwrap_or_default())?;
                    to_js(&list.into_iter().map(|(id, uid)| UidlJs { id, uid }).collect::<Vec<_>>())
                }
            }
        })
    }

    /// The headers and the first `lines` body lines, as bytes.
    pub fn top(&self, msg: JsValue, lines: JsValue) -> Promise {
        self.call(|s| async move {
            let msg = msg_arg(&msg, "top(n, lines)")?;
            let lines = match lines.as_f64() {
                Some(l) if l.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&l) => l as u32,
                _ => return Err(Failure::invalid_argument("top(n, lines): lines must be an integer from 0")),
            };
            let r = ok_or_server_error(command(&s, Command::Top { msg, lines }).await?)?;
            Ok(Uint8Array::from(r.body.as_deref().unwrap_or_default()).into())
        })
    }

    /// The whole message, byte-exact after dot-unstuffing.
    pub fn retr(&self, msg: JsValue) -> Promise {
        self.call(|s| async move {
            let msg = msg_arg(&msg, "retr(n)")?;
            let r = ok_or_server_error(command(&s, Command::Retr { msg }).await?)?;
            Ok(Uint8Array::from(r.body.as_deref().unwrap_or_default()).into())
        })
    }

    /// Marks a message deleted; it goes only when `quit()` is answered.
    pub fn dele(&self, msg: JsValue) -> Promise {
        self.call(|s| async move {
            let msg = msg_arg(&msg, "dele(n)")?;
            let r = ok_or_server_error(command(&s, Command::Dele { msg }).await?)?;
            Ok(r.text.into())
        })
    }

    pub fn rset(&self) -> Promise {
        self.call(|s| async move {
            let r = ok_or_server_error(command(&s, Command::Rset).await?)?;
            Ok(r.text.into())
        })
    }

    pub fn noop(&self) -> Promise {
        self.call(|s| async move {
            let r = ok_or_server_error(command(&s, Command::Noop).await?)?;
            Ok(r.text.into())
        })
    }

    /// Sends one command line as typed and returns the answer whatever it
    /// is: `{ ok, status, respCode, text, body }` (`body`: Uint8Array for
    /// multi-line answers, else null). `-ERR` does not reject.
    pub fn raw(&self, line: JsValue) -> Promise {
        self.call(|s| async move {
            let line = credential(line, "the command line")?;
            let cmd = Command::parse_raw(&line)?;
            if matches!(cmd, Command::Pass { .. }) {
                check_secure(&s, "PASS")?;
            }
            let r = command(&s, cmd).await?;
            let o = Object::new();
            let set = |k: &str, v: JsValue| {
                let _ = Reflect::set(&o, &k.into(), &v);
            };
            set("ok", r.is_ok().into());
            set("status", (if r.status == Status::Ok { "+OK" } else { "-ERR" }).into());
            set("respCode", r.resp_code.as_deref().map_or(JsValue::NULL, JsValue::from_str));
            set("text", r.text.as_str().into());
            set("body", r.body.as_deref().map_or(JsValue::NULL, |b| Uint8Array::from(b).into()));
            Ok(o.into())
        })
    }

    /// QUIT: the server commits the deletions, then the connection closes.
    pub fn quit(&self) -> Promise {
        self.call(|s| async move {
            let r = command(&s, Command::Quit).await;
            s.borrow_mut().close_socket("quit");
            let r = ok_or_server_error(r?)?;
            Ok(r.text.into())
        })
    }

    /// Drops the session without QUIT: nothing marked is deleted.
    pub fn close(&self) {
        fail(
            &self.shared,
            Failure::new("CONNECTION_CLOSED", "the session was closed by close(); nothing was committed"),
        );
    }
}
