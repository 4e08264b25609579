//! The analyzer (`pop3_wasm::diagnose`, feature `diagnose`): the driver's
//! diagnosis operation against a scripted POP3 server in memory (and a
//! rustls server for end-to-end TLS), the report judged step by step.
//! The harness is tests/harness/pair.rs; the same cases against Dovecot
//! and through a real bridge are tests/e2e/diagnose*.test.mjs.

use pop3_wasm::{
    diagnose::{Ask, Credential, Diagnosis, Status, Step, rules},
    driver::TransportFailure,
    proto::Secret,
    wire,
};

include!("harness/pair.rs");

fn ask(user: Option<&str>, credential: Credential) -> Ask {
    Ask { user: user.map(str::to_string), credential, mechanism: None }
}

fn password(p: &str) -> Credential {
    Credential::Password(Secret::new(p.to_string()))
}

fn alice() -> Ask {
    ask(Some("alice"), password(PASSWORD))
}

fn bridge(tls: TlsMode) -> Pair {
    Pair::new(bridge_config(tls), Via::Bridge(wire::SUBPROTOCOL_V2))
}

/// Starts a diagnosis, opens the transport, and (when the server answers)
/// takes the result; `None` while it still waits.
fn start(p: &mut Pair, ask: Ask) -> OpId {
    let op = p.start(Request::Diagnose(ask));
    p.open();
    op
}

fn finish(p: &mut Pair, op: OpId) -> Diagnosis {
    match p.result(op) {
        Some(Ok(Output::Diagnosis(facts))) => Diagnosis::new(facts),
        other => panic!("{other:?} {:?}", p.server.lines),
    }
}

fn diagnose(p: &mut Pair, ask: Ask) -> Diagnosis {
    let op = start(p, ask);
    finish(p, op)
}

fn statuses(d: &Diagnosis) -> Vec<(&'static str, &'static str)> {
    d.steps().iter().map(|s| (s.name, s.status.as_str())).collect()
}

fn step(d: &Diagnosis, name: &str) -> Step {
    d.steps().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step {name}"))
}

fn hint(d: &Diagnosis, name: &str) -> String {
    step(d, name).hint.unwrap_or_else(|| panic!("no hint on {name}: {:?}", step(d, name)))
}

fn json(d: &Diagnosis) -> serde_json::Value {
    let text = d.to_json();
    assert!(!text.contains(PASSWORD) && !text.contains(TOKEN), "a secret in the report");
    serde_json::from_str(&text).expect("the report is JSON")
}

/// No QUIT ever, and the transport is closed.
fn closed_without_quit(p: &Pair) {
    assert!(p.closed, "the session is closed");
    assert!(!p.server.lines.iter().any(|l| l.eq_ignore_ascii_case("QUIT")), "{:?}", p.server.lines);
}

// ------------------------------------------------------------------ healthy

#[test]
fn a_healthy_implicit_session_passes_every_step_in_order_with_times() {
    let mut p = bridge(TlsMode::Implicit);
    p.server.capa_after_login = Some(vec!["TOP", "UIDL", "PIPELINING", "LOGIN-DELAY 900", "EXPIRE NEVER"]);
    let d = diagnose(&mut p, alice());
    assert_eq!(
        statuses(&d),
        [
            ("connect", "pass"),
            ("tls", "pass"),
            ("greeting", "pass"),
            ("capa", "pass"),
            ("auth", "pass"),
            ("capa-after-login", "pass"),
            ("stat", "pass"),
            ("uidl", "pass"),
        ]
    );
    assert_eq!(p.server.lines, ["CAPA", "AUTH PLAIN AGFsaWNlAHMzY3JldC1wYTU1", "CAPA", "STAT", "UIDL"]);
    closed_without_quit(&p);
    assert!(d.ok());
    assert_eq!(step(&d, "auth").detail, "logged in as alice with PLAIN");
    assert_eq!(step(&d, "stat").detail, format!("2 messages, {} octets", p.server.messages.concat().len()));
    assert!(step(&d, "uidl").detail.starts_with("2 unique-ids: unique, printable"), "{:?}", step(&d, "uidl"));
    // The bridge does the handshake within its connect: no time of its own.
    assert_eq!(step(&d, "tls").ms, None);
    assert!(step(&d, "tls").detail.contains("TLS ends in the bridge"), "{}", step(&d, "tls").detail);
    for s in ["connect", "greeting", "capa", "auth", "capa-after-login", "stat", "uidl"] {
        assert_eq!(step(&d, s).ms, Some(0.0), "{s}: the clock did not move");
    }
    let after = step(&d, "capa-after-login").detail;
    assert!(after.starts_with("+LOGIN-DELAY 900; +EXPIRE NEVER; -USER; -SASL PLAIN"), "{after}");

    let v = json(&d);
    assert_eq!(v["ok"], true);
    assert_eq!(v["target"]["via"], "bridge");
    assert_eq!(v["target"]["credential"], "password");
    assert_eq!(v["steps"].as_array().unwrap().len(), 8);
    assert_eq!(v["steps"][0]["name"], "connect");
    assert_eq!(v["steps"][0]["ok"], true);
    assert_eq!(v["mechanisms"]["used"], "PLAIN");
    assert_eq!(v["mechanisms"]["offered"], serde_json::json!(["PLAIN", "USER"]));
    assert_eq!(v["capabilities"]["changes"][0]["from"], "beforeStls");
    assert_eq!(v["capabilities"]["changes"][0]["to"], "afterLogin");
    assert_eq!(
        v["capabilities"]["changes"][0]["added"],
        serde_json::json!(["LOGIN-DELAY 900", "EXPIRE NEVER"])
    );
    assert_eq!(v["extensions"]["loginDelay"]["seconds"], 900);
    assert_eq!(v["extensions"]["expire"]["value"], "NEVER");
    assert_eq!(v["extensions"]["pipelining"], true);
    assert_eq!(v["mailbox"]["count"], 2);
    assert_eq!(v["uidl"]["ok"], true);
    assert_eq!(v["tls"]["ends"], "bridge");
    assert_eq!(v["tls"]["nameMatches"], true, "the bridge verified the name");
    assert!(v["tls"]["chain"].is_null());
    assert!(
        v["tls"]["chainNote"].as_str().unwrap().starts_with("The bridge reports the leaf certificate only")
    );
    assert_eq!(v["closedWithoutQuit"], true);
    assert!(v["error"].is_null());
    assert!(
        v["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("LOGIN-DELAY 900"))
    );
}

#[test]
fn the_steps_are_timed_on_the_drivers_clock() {
    // The bridge answers `connect` 7 ms after the WebSocket opened; the
    // server answers the rest at once.
    let mut p = bridge(TlsMode::Implicit);
    let op = p.start(Request::Diagnose(alice()));
    p.now += 7.0;
    p.open();
    let d = finish(&mut p, op);
    assert_eq!(step(&d, "connect").ms, Some(7.0));
    assert_eq!(step(&d, "greeting").ms, Some(0.0));
    assert_eq!(json(&d)["ms"], 7);
}

#[test]
fn stls_lists_stls_then_tls_and_what_changed_under_tls() {
    let mut p = bridge(TlsMode::Starttls);
    p.server.capa = vec!["USER", "TOP", "UIDL", "STLS"];
    // After STLS the server shows its SASL list and no STLS.
    p.server.capa_after_stls = Some(vec!["USER", "TOP", "UIDL", "SASL PLAIN"]);
    let d = diagnose(&mut p, alice());
    let names: Vec<_> = d.steps().iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "connect",
            "greeting",
            "capa",
            "stls",
            "tls",
            "capa-after-stls",
            "auth",
            "capa-after-login",
            "stat",
            "uidl"
        ]
    );
    assert!(d.ok(), "{:?}", d.steps());
    assert_eq!(
        step(&d, "capa-after-stls").detail,
        "+SASL PLAIN; -STLS (after STLS: USER, TOP, UIDL, SASL PLAIN)"
    );
    assert!(step(&d, "tls").detail.contains("after STLS, timed with it"));
    let v = json(&d);
    assert_eq!(v["capabilities"]["changes"][0]["to"], "afterStls");
    assert_eq!(v["capabilities"]["changes"][0]["removed"], serde_json::json!(["STLS"]));
    assert_eq!(v["capabilities"]["changes"][1]["from"], "afterStls");
}

#[test]
fn data_after_stls_is_a_warning_with_the_injection_named() {
    let mut p = bridge(TlsMode::Starttls);
    p.server.capa.push("STLS");
    p.server.after_stls = b"-ERR injected\r\n";
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "stls").status, Status::Warn);
    assert!(hint(&d, "stls").contains("CVE-2011-0411"));
    assert_eq!(json(&d)["deviations"][0]["id"], "data-after-stls");
}

#[test]
fn without_credentials_it_stops_before_the_login() {
    let mut p = bridge(TlsMode::Implicit);
    let d = diagnose(&mut p, ask(None, Credential::None));
    assert_eq!(step(&d, "auth").status, Status::Skip);
    assert_eq!(step(&d, "auth").detail, "no user given: the diagnosis stopped before the login");
    assert_eq!(step(&d, "stat").status, Status::Skip);
    assert!(d.ok());
    assert_eq!(p.server.lines, ["CAPA"]);
    closed_without_quit(&p);
}

// ------------------------------------------------------------------ logins

#[test]
fn a_wrong_password_fails_auth_and_skips_the_rest() {
    let mut p = bridge(TlsMode::Implicit);
    let d = diagnose(&mut p, ask(Some("alice"), password("wrong")));
    assert_eq!(
        statuses(&d)[4..],
        [("auth", "fail"), ("capa-after-login", "skip"), ("stat", "skip"), ("uidl", "skip")]
    );
    assert_eq!(step(&d, "auth").detail, "-ERR [AUTH] no");
    assert!(hint(&d, "auth").contains("password is wrong"));
    assert_eq!(step(&d, "stat").detail, "not reached: auth failed");
    let v = json(&d);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "AUTH_FAILED");
    assert_eq!(v["error"]["respCode"], "AUTH");
    closed_without_quit(&p);
}

#[test]
fn response_codes_on_the_login_say_it_is_not_the_password() {
    for (reply, code, words) in [
        (
            "-ERR [IN-USE] Do you have another POP session running?\r\n",
            "IN-USE",
            "Another session has this mailbox open",
        ),
        ("-ERR [LOGIN-DELAY] too soon\r\n", "LOGIN-DELAY", "(CAPA says 600 s)"),
        ("-ERR [SYS/TEMP] try later\r\n", "SYS/TEMP", "should pass (SYS/TEMP)"),
        ("-ERR [SYS/PERM] mailbox broken\r\n", "SYS/PERM", "ask its administrator"),
    ] {
        let mut p = bridge(TlsMode::Implicit);
        p.server.capa.push("LOGIN-DELAY 600");
        p.server.overrides.push(("AUTH", reply.as_bytes().to_vec()));
        let d = diagnose(&mut p, alice());
        let s = step(&d, "auth");
        assert_eq!(s.status, Status::Fail);
        assert_eq!(json(&d)["error"]["respCode"], code);
        assert!(hint(&d, "auth").contains(words), "{code}: {:?}", s.hint);
    }
}

#[test]
fn a_server_offering_only_oauth_needs_a_token_not_a_password() {
    let mut p = bridge(TlsMode::Implicit);
    p.server.capa = vec!["TOP", "UIDL", "SASL XOAUTH2 OAUTHBEARER"];
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "auth").status, Status::Fail);
    assert!(
        hint(&d, "auth").starts_with("This server offers only OAuth 2.0 here (SASL XOAUTH2 OAUTHBEARER): this account needs an OAuth access token"),
        "{}",
        hint(&d, "auth")
    );
    assert_eq!(p.server.lines, ["CAPA"], "nothing was sent for the login");
}

#[test]
fn readable_mechanisms_without_tls_are_refused_and_stls_is_suggested() {
    let mut p = bridge(TlsMode::None);
    p.server.capa.push("STLS");
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "tls").status, Status::Warn);
    assert!(hint(&d, "tls").contains("offers STLS on this port"));
    assert_eq!(step(&d, "auth").status, Status::Fail);
    assert!(hint(&d, "auth").contains("use tls: 'starttls'"));
    assert!(!String::from_utf8_lossy(&p.wire).contains(PASSWORD));
}

#[test]
fn an_rfc_1939_server_without_capa_is_a_warning_and_user_pass_works() {
    let mut p = bridge(TlsMode::Implicit);
    p.server.overrides.push(("CAPA", b"-ERR unknown command\r\n".to_vec()));
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "capa").status, Status::Warn);
    assert_eq!(step(&d, "auth").detail, "logged in as alice with USER");
    assert_eq!(step(&d, "capa-after-login").status, Status::Skip);
    assert!(d.ok());
}

// -------------------------------------------------------------------- UIDL

#[test]
fn uidl_sanity_names_duplicates_unprintables_long_ids_and_a_count_mismatch() {
    let mut p = bridge(TlsMode::Implicit);
    let long = "L".repeat(71);
    let listing = format!("+OK\r\n1 same\r\n2 same\r\n3 tab\there\r\n4 {long}\r\n.\r\n");
    p.server.overrides.push(("UIDL", listing.into_bytes()));
    let d = diagnose(&mut p, alice());
    let s = step(&d, "uidl");
    assert_eq!(s.status, Status::Warn);
    assert_eq!(
        s.detail,
        "1 unique-ids given to more than one message: same (messages 1, 2); 1 unique-ids with characters outside 0x21-0x7E (messages 3); 1 unique-ids longer than 70 characters (messages 4; longest 71); UIDL lists 4 messages, STAT said 2"
    );
    assert!(s.hint.unwrap().contains("RFC 1939 § 7"));
    let v = json(&d);
    assert_eq!(v["uidl"]["ok"], false);
    assert_eq!(v["uidl"]["duplicates"][0]["ids"], serde_json::json!([1, 2]));
    assert!(d.ok(), "a warning is not a failure");
}

#[test]
fn no_uidl_is_a_warning() {
    let mut p = bridge(TlsMode::Implicit);
    p.server.overrides.push(("UIDL", b"-ERR not supported\r\n".to_vec()));
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "uidl").status, Status::Warn);
    assert_eq!(step(&d, "uidl").detail, "-ERR not supported: no UIDL");
}

// ----------------------------------------------------- the bridge and TCP

fn refused(code: &'static str, message: &str, tls: TlsMode) -> Diagnosis {
    let mut p = bridge(tls);
    p.bridge_refuses = Some((code, message.to_string()));
    let d = diagnose(&mut p, alice());
    assert!(p.closed);
    d
}

#[test]
fn the_bridges_refusals_each_get_their_hint() {
    let d = refused("BRIDGE_REJECTED", wire::NOT_ALLOWED, TlsMode::Implicit);
    assert_eq!(statuses(&d)[..3], [("connect", "fail"), ("tls", "skip"), ("greeting", "skip")]);
    assert!(hint(&d, "connect").starts_with("The bridge's policy refused pop.example.test:995."));
    assert!(hint(&d, "connect").contains("token is missing, expired"));
    let d = refused("BRIDGE_REJECTED", wire::END_TO_END_REQUIRED, TlsMode::Implicit);
    assert!(hint(&d, "connect").contains("--end-to-end-only"));
    let d = refused("BRIDGE_REJECTED", "too many sessions from your address", TlsMode::Implicit);
    assert!(hint(&d, "connect").contains("its limits"));
    let d = refused("CONNECT_FAILED", "connection refused", TlsMode::Implicit);
    assert!(
        hint(&d, "connect")
            .starts_with("Nothing listens on pop.example.test:995 (as the bridge's machine sees it)")
    );
    let d = refused("CONNECT_FAILED", "host name did not resolve", TlsMode::Implicit);
    assert!(hint(&d, "connect").starts_with("The name pop.example.test does not resolve"));
    let d = refused("CONNECT_FAILED", "connection timed out", TlsMode::Implicit);
    assert!(hint(&d, "connect").contains("firewall"));

    let mut p = bridge(TlsMode::Implicit);
    let op = p.start(Request::Diagnose(alice()));
    p.driver.transport_failed(p.now, TransportFailure::Refused { status: 403 });
    p.pump();
    let d = finish(&mut p, op);
    assert!(hint(&d, "connect").contains("origin is not in its --origin list"));

    let mut p = bridge(TlsMode::Implicit);
    let op = p.start(Request::Diagnose(alice()));
    p.driver.transport_failed(p.now, TransportFailure::Unreachable { detail: String::new() });
    p.pump();
    let d = finish(&mut p, op);
    assert!(hint(&d, "connect").starts_with("Is ws-bridge running at ws://bridge.test/pop3?"));
}

#[test]
fn nothing_listening_directly_is_named_with_the_usual_ports() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.route = Route::Direct;
    let mut p = Pair::new(config, Via::Pipe);
    let op = p.start(Request::Diagnose(alice()));
    p.driver.transport_failed(p.now, TransportFailure::Connect(wire::ConnectFailure::Refused));
    p.pump();
    let d = finish(&mut p, op);
    assert_eq!(
        hint(&d, "connect"),
        "Nothing listens on pop.example.test:995: the connection was refused. Is the POP3 server running, and is this its port? POP3 uses 110 (plain, STLS) and 995 (implicit TLS)."
    );
    assert_eq!(json(&d)["target"]["via"], "direct");
}

// ------------------------------------------------------- the wrong TLS mode

#[test]
fn plain_text_on_a_silent_tls_port_asks_for_a_probe_and_the_probe_names_the_port() {
    let mut config = bridge_config(TlsMode::Starttls);
    config.deadlines.greeting = 500.0;
    config.port = 995;
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.server.answer_until = 0; // a TLS port waits for a ClientHello
    let op = start(&mut p, alice());
    p.advance(500.0);
    let mut d = finish(&mut p, op);
    assert_eq!(step(&d, "greeting").status, Status::Fail);
    assert!(hint(&d, "greeting").starts_with(
        "Port 995 sent nothing within 500 ms. A port that stays silent usually waits for a TLS handshake"
    ));
    assert_eq!(d.probe_mode(), Some(TlsMode::Implicit));

    // The probe: the same port with implicit TLS (the bridge's handshake works).
    let mut config = bridge_config(TlsMode::Implicit);
    config.port = 995;
    let mut q = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    let probe = diagnose(&mut q, ask(None, Credential::None));
    d.add_probe(&probe);
    assert_eq!(d.probe_mode(), None, "one probe");
    assert_eq!(
        hint(&d, "greeting"),
        "Port 995 sends nothing in plain text, and a second connection with implicit TLS got a TLS handshake (TLSv1.3, TLS13_AES_256_GCM_SHA384): it is an implicit-TLS port (usually 995), where the client starts with a TLS handshake. Use tls: 'implicit'."
    );
    let v = json(&d);
    assert_eq!(v["probe"]["tls"], "implicit");
    assert_eq!(v["probe"]["saw"], "tls");
}

#[test]
fn a_tls_record_where_the_greeting_belongs_says_implicit_tls_without_a_probe() {
    let mut config = bridge_config(TlsMode::None);
    config.deadlines.greeting = 100.0;
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    // A TLS alert (unexpected_message): no line end, so it times out.
    p.server.raw_greeting = Some(b"\x15\x03\x03\x00\x02\x02\x0a".to_vec());
    let op = start(&mut p, alice());
    p.advance(100.0);
    let d = finish(&mut p, op);
    assert!(
        hint(&d, "greeting").starts_with("Port 110 answered with TLS where a POP3 greeting was expected")
    );
    assert_eq!(d.probe_mode(), None);
}

#[test]
fn another_protocols_greeting_is_named() {
    let mut p = bridge(TlsMode::None);
    p.server.raw_greeting = Some(b"220 mx.example.test ESMTP Postfix\r\n".to_vec());
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "greeting").status, Status::Fail);
    assert_eq!(
        hint(&d, "greeting"),
        "Port 110 speaks SMTP, not POP3 (it said \"220 mx.example.test ESMTP Postfix\"): POP3 is on port 110 (plain, STLS) and 995 (implicit TLS)."
    );
}

#[test]
fn a_greeting_refusal_quotes_the_server_and_its_code() {
    let mut p = bridge(TlsMode::Implicit);
    p.server.raw_greeting = Some(b"-ERR [SYS/TEMP] too many connections\r\n".to_vec());
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "greeting").detail, "-ERR [SYS/TEMP] too many connections");
    assert!(hint(&d, "greeting").contains("(SYS/TEMP)"));
}

#[test]
fn the_bridges_tls_failures_are_read_from_its_sentences() {
    let d = refused("TLS_FAILED", "certificate not trusted (unknown issuer)", TlsMode::Implicit);
    assert_eq!(statuses(&d)[..3], [("connect", "pass"), ("tls", "fail"), ("greeting", "skip")]);
    assert!(hint(&d, "tls").contains("make the bridge trust it (--ca-file CA.pem)"));
    assert_eq!(json(&d)["error"]["reason"], "untrusted");
    let d = refused("TLS_FAILED", "certificate not valid for the host name", TlsMode::Implicit);
    assert!(hint(&d, "tls").contains("The bridge does not report which names it has"));
    assert_eq!(json(&d)["tls"], serde_json::Value::Null);
    let mut d = refused(
        "TLS_FAILED",
        "TLS handshake failed: received corrupt message of type InvalidContentType",
        TlsMode::Implicit,
    );
    assert!(hint(&d, "tls").starts_with("The TLS handshake failed: is port 995 a TLS port?"));
    // The bridge's handshake broke on something that is not TLS: look
    // at the port in plain text.
    assert_eq!(d.probe_mode(), Some(TlsMode::None));
    let mut config = bridge_config(TlsMode::None);
    config.port = 995;
    let mut q = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    q.server.capa.push("STLS");
    let probe = diagnose(&mut q, ask(None, Credential::None));
    d.add_probe(&probe);
    assert_eq!(
        hint(&d, "tls"),
        "Port 995 speaks plain POP3: a second connection without TLS got its greeting (\"+OK POP3 ready\"), and it offers STLS. It is not an implicit-TLS port (those are usually 995). Use tls: 'starttls' on it."
    );
}

#[test]
fn stls_not_offered_is_named() {
    let mut p = bridge(TlsMode::Starttls);
    p.server.overrides.push(("STLS", b"-ERR unknown command\r\n".to_vec()));
    let d = diagnose(&mut p, alice());
    assert_eq!(step(&d, "capa").status, Status::Warn);
    assert_eq!(step(&d, "stls").status, Status::Fail);
    assert_eq!(step(&d, "stls").detail, "-ERR unknown command");
    assert!(hint(&d, "stls").starts_with("The server does not offer STLS on port 110 (CAPA has no STLS)"));
    assert_eq!(step(&d, "tls").status, Status::Skip);
}

// --------------------------------------------------------------- providers

#[test]
fn gmail_is_recognised_by_its_greeting_with_its_popped_and_recent_ways() {
    let mut p = bridge(TlsMode::Implicit);
    p.server.greeting = "Gpop ready for requests from 192.0.2.7 u5mb1234567abc".into();
    p.server.capa = vec![
        "USER",
        "RESP-CODES",
        "EXPIRE 0",
        "LOGIN-DELAY 300",
        "TOP",
        "UIDL",
        "X-GOOGLE-RICO",
        "SASL PLAIN XOAUTH2 OAUTHBEARER",
    ];
    p.server.capa_after_login = Some(vec![
        "USER",
        "RESP-CODES",
        "EXPIRE 0",
        "LOGIN-DELAY 300",
        "TOP",
        "UIDL",
        "X-GOOGLE-RICO",
        "PIPELINING",
    ]);
    let d = diagnose(&mut p, ask(Some("recent:alice@gmail.com"), password(PASSWORD)));
    let v = json(&d);
    assert_eq!(v["provider"]["id"], "gmail");
    let notes: Vec<&str> = v["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(notes.iter().any(|n| n.contains("\"popped\"")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("Recent mode: logging in as recent:")));
    assert!(notes.iter().any(|n| n.starts_with("This session is in Gmail's recent mode")));
    assert!(notes.iter().any(|n| n.starts_with("EXPIRE 0:")));
    assert!(
        step(&d, "capa-after-login").detail.starts_with("+PIPELINING"),
        "Gmail announces PIPELINING after login"
    );

    let mut p = bridge(TlsMode::Implicit);
    p.server.greeting = "Gpop ready for requests from 192.0.2.7 u5mb1234567abc".into();
    let d = diagnose(&mut p, ask(Some("alice@gmail.com"), password("wrong")));
    assert!(
        hint(&d, "auth").starts_with("Gmail refuses the account password here: log in with an app password")
    );
}

#[test]
fn microsoft_365_takes_xoauth2_after_a_continuation_and_refuses_passwords() {
    let o365 = |p: &mut Pair| {
        p.server.greeting = "The Microsoft Exchange POP3 service is ready. [TQBOADIAUABSADAA]".into();
        p.server.capa = vec!["TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER"];
        // Basic authentication is off.
        p.server
            .overrides
            .push(("AUTH PLAIN", b"-ERR Logon failure: unknown user name or bad password.\r\n".to_vec()));
    };
    let mut config = bridge_config(TlsMode::Implicit);
    config.host = "outlook.office365.com".into();
    let mut p = Pair::new(config.clone(), Via::Bridge(wire::SUBPROTOCOL_V2));
    o365(&mut p);
    let token = Credential::Token(Secret::new(TOKEN.into()));
    let d = diagnose(&mut p, ask(Some("alice@contoso.example"), token));
    assert!(d.ok(), "{:?}", d.steps());
    assert_eq!(step(&d, "auth").detail, "logged in as alice@contoso.example with XOAUTH2");
    // The token went after the server's "+", not on the AUTH line.
    assert_eq!(p.server.lines[1], "AUTH XOAUTH2");
    assert!(p.server.lines[2].len() > 255);
    assert!(p.transcript().iter().all(|l| !l.contains(TOKEN)));
    assert_eq!(json(&d)["provider"]["id"], "microsoft");

    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    o365(&mut p);
    let d = diagnose(&mut p, ask(Some("alice@contoso.example"), password(PASSWORD)));
    assert_eq!(step(&d, "auth").detail, "-ERR Logon failure: unknown user name or bad password.");
    assert!(
        hint(&d, "auth").starts_with(
            "Microsoft 365 and Outlook.com refuse passwords for POP (basic authentication is off)"
        )
    );
}

#[test]
fn yahoo_wants_an_app_password() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.host = "pop.mail.yahoo.com".into();
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.server.greeting = "hello from popgate-0.8.0.504198 pop001.mail.ir2.yahoo.com".into();
    let d = diagnose(&mut p, ask(Some("alice@yahoo.com"), password("account-password")));
    assert!(
        hint(&d, "auth").starts_with("Yahoo refuses the account password here: generate an app password")
    );
    assert_eq!(json(&d)["provider"]["name"], "Yahoo Mail");
}

#[test]
fn invalid_arguments_are_refused_before_anything_is_sent() {
    let mut p = bridge(TlsMode::Implicit);
    let mut a = alice();
    a.mechanism = Some("XOAUTH2".into());
    let op = p.start(Request::Diagnose(a));
    let r = p.result(op).expect("refused at once");
    assert_eq!(r.unwrap_err().code, ErrorCode::InvalidArgument);
}

// ------------------------------------------------------------ end to end

#[cfg(feature = "tls")]
mod end_to_end {
    use super::*;

    fn e2e(tls: TlsMode, names: &[&str], years: (i32, i32), trust: bool) -> Pair {
        let (ca, server) = pki(names, years.0, years.1);
        let mut config = bridge_config(tls);
        config.end_to_end = true;
        if trust {
            config.ca = ca.into_bytes();
        }
        let mut p = Pair::at(config, Via::Bridge(wire::SUBPROTOCOL_V2), NOW_MS);
        p.server.tls_config = Some(server);
        p.server.capa.push("STLS");
        p
    }

    #[test]
    fn a_healthy_end_to_end_session_shows_the_chain_as_sent_and_times_the_handshake() {
        let mut p = e2e(TlsMode::Implicit, &["pop.example.test", "10.0.0.1"], (2025, 2030), true);
        let d = diagnose(&mut p, alice());
        assert!(d.ok(), "{:?}", d.steps());
        assert_eq!(step(&d, "tls").ms, Some(0.0), "the client's own handshake has a time");
        assert!(step(&d, "tls").detail.contains("TLS ends in this client (end to end"));
        let v = json(&d);
        assert_eq!(v["tls"]["ends"], "client");
        assert_eq!(v["tls"]["endToEnd"], true);
        assert_eq!(v["tls"]["chain"][0]["dnsNames"], serde_json::json!(["pop.example.test"]));
        assert_eq!(v["tls"]["chain"][0]["ipAddresses"], serde_json::json!(["10.0.0.1"]));
        assert_eq!(v["tls"]["chain"][0]["issuer"], "CN=driver test CA");
        assert_eq!(v["tls"]["names"], serde_json::json!(["pop.example.test", "10.0.0.1"]));
        assert_eq!(v["tls"]["nameMatches"], true);
        assert!(v["tls"]["chain"][0]["keyBits"].as_i64().unwrap() > 0);
        assert!(v["tls"]["chainNote"].is_null());
        assert_eq!(v["tls"]["days"], 1310, "2026-06-01 to 2030-01-01");
    }

    #[test]
    fn an_untrusted_chain_is_laid_out_and_the_ca_named() {
        let mut p = e2e(TlsMode::Implicit, &["pop.example.test"], (2025, 2030), false);
        let d = diagnose(&mut p, alice());
        assert_eq!(statuses(&d)[..3], [("connect", "pass"), ("tls", "fail"), ("greeting", "skip")]);
        assert_eq!(step(&d, "tls").detail, "certificate not trusted (unknown issuer: CN=driver test CA)");
        assert_eq!(
            hint(&d, "tls"),
            "The server sent 1 certificate(s); the last one was issued by \"CN=driver test CA\", a CA this client does not trust. The server sends only its own certificate: if its CA is a public one, configure the server to send the intermediate certificate(s) too (the full chain). If the server uses a private CA, trust it with the `ca` option (its certificate in PEM)."
        );
        let v = json(&d);
        assert_eq!(v["tls"]["protocol"], serde_json::Value::Null, "no session");
        assert_eq!(v["tls"]["chain"][0]["subject"], "CN=pop.example.test");
        assert_eq!(v["tls"]["nameMatches"], true, "the name is right; only the issuer is unknown");
        assert_eq!(v["error"]["reason"], "untrusted");
        assert_eq!(d.probe_mode(), None);
        assert!(!p.server.lines.iter().any(|l| l.starts_with("AUTH")));
    }

    #[test]
    fn a_wrong_name_quotes_the_names_the_certificate_has() {
        let mut p = e2e(TlsMode::Implicit, &["mail.other.test", "*.other.test"], (2025, 2030), true);
        let d = diagnose(&mut p, alice());
        assert_eq!(
            hint(&d, "tls"),
            "The certificate is for mail.other.test, *.other.test, not pop.example.test: connect with one of those names, or install a certificate that also names pop.example.test."
        );
        assert_eq!(json(&d)["tls"]["nameMatches"], false);
    }

    #[test]
    fn an_expired_certificate_says_when() {
        let mut p = e2e(TlsMode::Starttls, &["pop.example.test"], (2020, 2021), true);
        let d = diagnose(&mut p, alice());
        assert_eq!(step(&d, "stls").status, Status::Pass);
        assert_eq!(step(&d, "tls").status, Status::Fail);
        assert!(
            hint(&d, "tls").starts_with("The server's certificate expired on 2021-01-01T00:00:00Z: renew it")
        );
        assert_eq!(json(&d)["tls"]["days"], -1977);
    }

    #[test]
    fn a_certificate_expiring_soon_is_a_warning() {
        let (ca, server) = pki(&["pop.example.test"], 2025, 2026);
        let mut config = bridge_config(TlsMode::Implicit);
        config.end_to_end = true;
        config.ca = ca.into_bytes();
        // A week before the leaf ends (2026-01-01).
        let now = rules::unix_secs("2025-12-25T00:00:00Z").unwrap() as f64 * 1000.0;
        let mut p = Pair::at(config, Via::Bridge(wire::SUBPROTOCOL_V2), now);
        p.server.tls_config = Some(server);
        let d = diagnose(&mut p, alice());
        assert_eq!(step(&d, "tls").status, Status::Warn);
        assert_eq!(hint(&d, "tls"), "The certificate expires in 7 days: renew it.");
        assert!(d.ok());
    }

    #[test]
    fn tls_on_a_plain_port_is_read_from_the_greeting_that_came_instead() {
        let mut config = bridge_config(TlsMode::Implicit);
        config.end_to_end = true;
        config.port = 110;
        let mut p = Pair::at(config, Via::Bridge(wire::SUBPROTOCOL_V2), NOW_MS);
        p.server.greeting = "Dovecot (Debian) ready.".into();
        let d = diagnose(&mut p, alice());
        assert_eq!(step(&d, "tls").status, Status::Fail);
        assert_eq!(
            hint(&d, "tls"),
            "Port 110 answered in plain text (\"+OK Dovecot (Debian) ready.\") where a TLS handshake was expected: it is a plain POP3 port (usually 110). Use tls: 'starttls' on it, or implicit TLS on the server's TLS port (usually 995)."
        );
        assert_eq!(d.probe_mode(), None, "the bytes told");
    }
}

#[test]
fn the_greeting_is_reported_byte_for_byte_and_values_fall_back_to_before_login() {
    let mut p = bridge(TlsMode::Implicit);
    p.server.raw_greeting = Some(b"+OKready\n".to_vec());
    p.server.capa = vec!["USER", "IMPLEMENTATION scripted", "EXPIRE 30"];
    p.server.capa_after_login = Some(vec!["LOGIN-DELAY 900"]);
    let d = diagnose(&mut p, alice());
    let v = json(&d);
    assert_eq!(v["greeting"], "+OKready");
    assert_eq!(step(&d, "greeting").detail, "+OKready");
    assert_eq!(v["extensions"]["implementation"], "scripted", "said before login only");
    assert_eq!(v["extensions"]["loginDelay"]["seconds"], 900, "said after login only");
    assert_eq!(v["extensions"]["expire"]["value"], "30");
    let ids: Vec<&str> =
        v["deviations"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bare-lf", "no-space-after-status"]);
}
