//! The client driver (`pop3_wasm::driver`) wired back to back with a
//! POP3 server in memory: no sockets, the clock a number the test moves.
//! The test plays the transport (a bridge's control messages, or a byte
//! pipe) and a small scripted POP3 server; with the `tls` feature, a
//! rustls server behind it for end-to-end TLS (tests further down). The
//! harness is tests/harness/pair.rs.

use pop3_wasm::{
    driver::{Phase, TransportFailure},
    proto::Command,
    wire,
};

include!("harness/pair.rs");

// ------------------------------------------------------------------ tests

#[test]
fn connect_over_a_v2_bridge_offers_nothing_new_unless_end_to_end() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    assert!(matches!(p.connect(), Ok(Output::Connected)));
    assert_eq!(
        p.control,
        [r#"{"type":"connect","v":2,"host":"pop.example.test","port":995,"tls":"implicit"}"#]
    );
    assert_eq!(p.server.lines, ["CAPA"]);
    assert_eq!(p.driver.tls().map(|t| t.end_to_end), Some(false));
    let phases: Vec<_> = p.driver.phases().iter().map(|m| (m.phase, m.ok)).collect();
    assert_eq!(phases, [(Phase::Connect, true), (Phase::Greeting, true), (Phase::Capa, true)]);
}

#[test]
fn a_v1_bridge_gets_v1_and_end_to_end_needs_v2() {
    let mut p = Pair::new(bridge_config(TlsMode::None), Via::Bridge(wire::SUBPROTOCOL_V1));
    assert!(p.connect().is_ok());
    assert!(p.control[0].contains(r#""v":1"#), "{}", p.control[0]);

    let mut config = bridge_config(TlsMode::Implicit);
    config.end_to_end = true;
    if config.validate().is_err() {
        return; // no `tls` feature: refused earlier (see below)
    }
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V1));
    assert_eq!(code(p.connect()), (ErrorCode::Unsupported, wire::V1_NO_END_TO_END.to_string()));
    assert!(p.control.is_empty(), "nothing was asked of a v1 bridge");
    assert!(p.closed);
}

#[test]
fn end_to_end_without_tls_is_an_invalid_argument() {
    let mut config = bridge_config(TlsMode::None);
    config.end_to_end = true;
    assert_eq!(config.validate().unwrap_err().code, ErrorCode::InvalidArgument);
    let mut config = bridge_config(TlsMode::Implicit);
    config.ca = b"-----BEGIN CERTIFICATE-----".to_vec();
    assert_eq!(config.validate().unwrap_err().code, ErrorCode::InvalidArgument, "ca with bridge-side TLS");
}

#[test]
fn login_takes_the_strongest_usable_mechanism_and_asks_capa_after() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    assert_eq!(login(&mut p), "PLAIN");
    assert_eq!(p.server.lines[1..], ["AUTH PLAIN AGFsaWNlAHMzY3JldC1wYTU1".to_string(), "CAPA".to_string()]);
    assert!(!p.transcript().iter().any(|l| l.contains(PASSWORD) || l.contains("AGFsaWNl")));
    assert_eq!(p.driver.session().capa_history().after_login.as_ref().map(|c| c.raw.len()), Some(5));
}

#[test]
fn readable_credentials_without_tls_are_refused_before_anything_is_sent() {
    let mut p = Pair::new(bridge_config(TlsMode::None), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    let (c, message) = code(p.run(Request::Login { user: "alice".into(), password: PASSWORD.into() }));
    assert_eq!(c, ErrorCode::InsecureAuthRefused);
    assert!(message.contains("PLAIN, USER"), "{message}");
    let (c, _) = code(p.run(Request::Raw(format!("PASS {PASSWORD}"))));
    assert_eq!(c, ErrorCode::InsecureAuthRefused);
    assert_eq!(p.server.lines, ["CAPA"]);
    assert!(!String::from_utf8_lossy(&p.wire).contains(PASSWORD));
}

#[test]
fn stls_through_the_bridge_reports_injected_bytes_and_asks_capa_again() {
    let mut p = Pair::new(bridge_config(TlsMode::Starttls), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.server.capa.push("STLS");
    p.server.after_stls = b"-ERR injected\r\n";
    p.connect().unwrap();
    assert_eq!(p.control[1], wire::STLS_MESSAGE);
    assert_eq!(p.server.lines, ["CAPA", "STLS", "CAPA"]);
    let ids: Vec<_> = p.driver.session().deviations().iter().map(|d| d.id()).collect();
    assert_eq!(ids, ["data-after-stls"]);
    assert!(p.driver.session().capa_history().after_stls.is_some());
    let phases: Vec<_> = p.driver.phases().iter().map(|m| m.phase.as_str()).collect();
    assert_eq!(phases, ["connect", "greeting", "capa", "stls", "capa"]);
}

#[test]
fn summaries_pipeline_list_uidl_and_top() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    let op = p.start(Request::Summaries(None));
    let Some(Ok(Output::Summaries(list))) = p.result(op) else { panic!("{:?}", p.events) };
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].headers.subject.as_deref(), Some("two"));
    assert_eq!(list[1].uid.as_deref(), Some("uid-2"));
    assert_eq!(list[0].size, Some(p.server.messages[0].len() as u64));
    let progress: Vec<_> =
        p.events.iter().filter(|e| matches!(e, Event::Progress { op: o, .. } if *o == op)).collect();
    assert_eq!(progress.len(), 2);
}

#[test]
fn bodies_go_out_as_pieces_byte_exact_and_bounded() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.max_body = 60;
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    let op = p.start(Request::Collect(Command::Retr { msg: 2 }));
    assert!(matches!(p.result(op), Some(Ok(Output::Collected))));
    let body: Vec<u8> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Body { op: o, data, .. } if *o == op => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(body, p.server.messages[1]);
    p.server.messages.push(vec![b'x'; 100]);
    let (c, message) = code(p.run(Request::Collect(Command::Retr { msg: 3 })));
    assert_eq!(c, ErrorCode::ProtocolError);
    assert!(message.contains("longer than 60 octets"), "{message}");
    assert!(p.closed, "the session ends");
}

#[test]
fn a_silent_server_times_out_at_the_deadline_and_the_session_is_dropped() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.deadlines.greeting = 300.0;
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.server.answer_until = 0;
    // The bridge connects, the server says nothing.
    let op = p.start(Request::Connect);
    p.open();
    let due = p.driver.poll_timeout().expect("a deadline");
    assert_eq!(due, p.now + 300.0);
    p.advance(299.0);
    assert!(p.result(op).is_none());
    p.advance(1.0);
    let (c, message) = code(p.result(op).unwrap());
    assert_eq!(c, ErrorCode::Timeout);
    assert_eq!(message, "no answer to the server greeting within 300 ms; the session was dropped");
    assert!(p.closed);
    assert_eq!(p.driver.phases().last().map(|m| (m.phase, m.ok)), Some((Phase::Greeting, false)));
}

#[test]
fn keepalive_sends_noop_only_when_idle_in_transaction() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.keepalive = Some(150.0);
    let mut p = Pair::new(config, Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    assert_eq!(p.driver.poll_timeout(), None, "no keepalive before login");
    login(&mut p);
    let due = p.driver.poll_timeout().expect("keepalive");
    assert_eq!(due, p.now + 150.0);
    p.advance(149.0);
    assert!(!p.server.lines.contains(&"NOOP".to_string()));
    p.advance(1.0);
    assert_eq!(p.server.lines.last().map(String::as_str), Some("NOOP"));
    p.advance(150.0);
    assert_eq!(p.server.lines.iter().filter(|l| *l == "NOOP").count(), 2);
}

#[test]
fn an_abort_drops_the_session_and_names_what_was_awaited() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    p.server.answer_until = p.server.lines.len();
    let op = p.start(Request::Command(Command::Stat));
    let other = p.start(Request::Command(Command::Noop));
    p.driver.abort(p.now, op);
    p.pump();
    assert_eq!(code(p.result(op).unwrap()), (ErrorCode::ConnectionClosed, "aborted".into()));
    assert_eq!(
        code(p.result(other).unwrap()),
        (ErrorCode::ConnectionClosed, "STAT was aborted; the session was dropped".into())
    );
    assert!(p.closed);
    assert!(!p.server.lines.contains(&"QUIT".to_string()));
}

#[test]
fn the_bridge_error_message_ends_the_session_with_its_code() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    let op = p.start(Request::Connect);
    p.driver.opened(p.now, wire::SUBPROTOCOL_V2);
    p.driver.control(
        p.now,
        ServerMessage::Error { code: "BRIDGE_REJECTED".into(), message: wire::END_TO_END_REQUIRED.into() },
    );
    p.pump();
    assert_eq!(
        code(p.result(op).unwrap()),
        (ErrorCode::BridgeRejected, "bridge: end-to-end TLS required".into())
    );

    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    let op = p.start(Request::Connect);
    p.driver.transport_failed(p.now, TransportFailure::Refused { status: 403 });
    p.pump();
    assert_eq!(
        code(p.result(op).unwrap()),
        (
            ErrorCode::BridgeRejected,
            "the bridge at ws://bridge.test/pop3 refused the WebSocket (HTTP 403)".into()
        )
    );
}

#[test]
fn a_direct_pipe_asks_its_transport_for_tls_and_words_its_failures() {
    let mut config = bridge_config(TlsMode::Implicit);
    config.route = Route::Direct;
    let mut p = Pair::new(config.clone(), Via::Pipe);
    assert!(p.connect().is_ok());
    assert!(p.control.is_empty(), "no control messages on a pipe");
    assert_eq!(
        p.driver.phases().iter().map(|m| m.phase.as_str()).collect::<Vec<_>>(),
        ["connect", "tls", "greeting", "capa"]
    );

    let mut p = Pair::new(config, Via::Pipe);
    let op = p.start(Request::Connect);
    p.driver.transport_failed(p.now, TransportFailure::Connect(wire::ConnectFailure::Refused));
    p.pump();
    assert_eq!(code(p.result(op).unwrap()), (ErrorCode::ConnectFailed, "connection refused".into()));
}

#[test]
fn the_server_closing_mid_answer_is_connection_closed() {
    let mut p = Pair::new(bridge_config(TlsMode::Implicit), Via::Bridge(wire::SUBPROTOCOL_V2));
    p.connect().unwrap();
    login(&mut p);
    p.server.answer_until = p.server.lines.len();
    let op = p.start(Request::Collect(Command::Retr { msg: 1 }));
    p.driver.data(p.now, b"+OK 5 octets\r\nhel");
    p.driver.closed(p.now, Some(1000));
    p.pump();
    let (c, message) = code(p.result(op).unwrap());
    assert_eq!(c, ErrorCode::ConnectionClosed);
    assert!(message.contains("in the middle of a multi-line answer"), "{message}");
}

#[cfg(feature = "tls")]
mod e2e {
    //! End-to-end TLS: the driver's own TLS engine against a rustls server
    //! behind the scripted POP3 server; the "bridge" relays bytes only.

    use super::*;

    fn e2e_pair(tls: TlsMode, names: &[&str], years: (i32, i32)) -> Pair {
        let (ca, server) = pki(names, years.0, years.1);
        let mut config = bridge_config(tls);
        config.end_to_end = true;
        config.ca = ca.into_bytes();
        config.validate().unwrap();
        let ca = config.ca.clone();
        let mut p = Pair::at(config, Via::Bridge(wire::SUBPROTOCOL_V2), NOW_MS);
        p.server.tls_config = Some(server);
        p.server.capa.push("STLS");
        p.driver_ca = ca;
        p
    }

    /// What the relay saw going to the server, as text (ciphertext is noise).
    fn readable(p: &Pair) -> String {
        String::from_utf8_lossy(&p.wire).into_owned()
    }

    fn retr(p: &mut Pair, msg: u32) -> Vec<u8> {
        let op = p.start(Request::Collect(Command::Retr { msg }));
        assert!(matches!(p.result(op), Some(Ok(Output::Collected))), "{:?}", p.events);
        p.events
            .iter()
            .filter_map(|e| match e {
                Event::Body { op: o, data, .. } if *o == op => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn implicit_tls_end_to_end_the_relay_carries_only_ciphertext() {
        let mut p = e2e_pair(TlsMode::Implicit, &["pop.example.test"], (2025, 2030));
        assert!(matches!(p.connect(), Ok(Output::Connected)), "{:?}", p.events);
        assert_eq!(
            p.control,
            [
                r#"{"type":"connect","v":2,"host":"pop.example.test","port":995,"tls":"implicit","endToEnd":true}"#
            ]
        );
        let tls = p.driver.tls().expect("TLS up");
        assert!(tls.end_to_end);
        assert_eq!(tls.info.certificate.subject, "CN=pop.example.test");
        assert_eq!(tls.chain.len(), 1);
        assert_eq!(tls.chain[0].dns_names, ["pop.example.test"]);
        assert_eq!(login(&mut p), "PLAIN");
        assert_eq!(retr(&mut p, 2), p.server.messages[1]);
        assert_eq!(p.server.lines, ["CAPA", "AUTH PLAIN AGFsaWNlAHMzY3JldC1wYTU1", "CAPA", "RETR 2"]);
        let seen = readable(&p);
        for word in ["CAPA", "AUTH", "PLAIN", "RETR", PASSWORD, "AGFsaWNl"] {
            assert!(!seen.contains(word), "{word} readable on the relay");
        }
        let phases: Vec<_> = p.driver.phases().iter().map(|m| m.phase.as_str()).collect();
        assert_eq!(phases, ["connect", "tls", "greeting", "capa", "auth"]);
    }

    #[test]
    fn stls_end_to_end_only_capa_and_stls_are_readable_and_injected_bytes_are_dropped() {
        let mut p = e2e_pair(TlsMode::Starttls, &["pop.example.test"], (2025, 2030));
        p.server.after_stls = b"+OK injected\r\n";
        assert!(matches!(p.connect(), Ok(Output::Connected)), "{:?}", p.events);
        assert!(p.control[0].contains(r#""tls":"starttls","endToEnd":true"#), "{}", p.control[0]);
        assert_eq!(p.control.len(), 1, "no stls control message in an end-to-end session");
        assert!(p.wire.starts_with(b"CAPA\r\nSTLS\r\n\x16\x03"), "{:?}", &p.wire[..20]);
        let ids: Vec<_> = p.driver.session().deviations().iter().map(|d| d.id()).collect();
        assert_eq!(ids, ["data-after-stls"]);
        assert_eq!(login(&mut p), "PLAIN");
        assert_eq!(p.server.lines, ["CAPA", "STLS", "CAPA", "AUTH PLAIN AGFsaWNlAHMzY3JldC1wYTU1", "CAPA"]);
        let after = String::from_utf8_lossy(&p.wire[b"CAPA\r\nSTLS\r\n".len()..]).into_owned();
        for word in ["CAPA", "AUTH", PASSWORD, "AGFsaWNl"] {
            assert!(!after.contains(word), "{word} readable after STLS");
        }
        let phases: Vec<_> = p.driver.phases().iter().map(|m| m.phase.as_str()).collect();
        assert_eq!(phases, ["connect", "greeting", "capa", "stls", "capa", "auth"]);
    }

    fn tls_failure(p: &mut Pair) -> Failure {
        let f = p.connect().expect_err("TLS fails");
        assert_eq!(f.code, ErrorCode::TlsFailed, "{f:?}");
        assert!(p.closed);
        let seen = readable(p);
        assert!(!seen.contains("AUTH") && !seen.contains("USER"), "no credentials were sent");
        f
    }

    #[test]
    fn a_certificate_for_other_names_says_which_names() {
        let mut p = e2e_pair(TlsMode::Implicit, &["mail.other.test", "10.0.0.1"], (2025, 2030));
        let f = tls_failure(&mut p);
        assert_eq!(f.tls_reason, Some(wire::TlsReason::WrongName));
        assert_eq!(
            f.message,
            "certificate not valid for the host name pop.example.test (it is for mail.other.test, 10.0.0.1)"
        );
    }

    #[test]
    fn an_expired_certificate_says_when() {
        let mut p = e2e_pair(TlsMode::Starttls, &["pop.example.test"], (2020, 2021));
        let f = tls_failure(&mut p);
        assert_eq!(f.tls_reason, Some(wire::TlsReason::Expired));
        assert!(f.message.starts_with("certificate expired at 2021-01-01T00:00:00Z"), "{}", f.message);
    }

    #[test]
    fn a_certificate_from_an_unknown_ca_is_untrusted() {
        let mut p = e2e_pair(TlsMode::Implicit, &["pop.example.test"], (2025, 2030));
        let (other_ca, _) = pki_of("another CA", &["x"], 2025, 2030);
        let mut config = bridge_config(TlsMode::Implicit);
        config.end_to_end = true;
        config.ca = other_ca.into_bytes();
        p.driver = Driver::new(config, NOW_MS);
        let f = tls_failure(&mut p);
        assert_eq!(f.tls_reason, Some(wire::TlsReason::Untrusted));
        assert_eq!(f.message, "certificate not trusted (unknown issuer: CN=driver test CA)");
    }

    #[test]
    fn stls_by_hand_end_to_end_refuses_anything_readable_before_tls() {
        let mut p = e2e_pair(TlsMode::Starttls, &["pop.example.test"], (2025, 2030));
        let mut config = bridge_config(TlsMode::Starttls);
        config.end_to_end = true;
        config.manual_stls = true;
        config.ca = p.driver_ca.clone();
        p.driver = Driver::new(config, NOW_MS);
        assert!(matches!(p.connect(), Ok(Output::Connected)));
        assert!(p.driver.tls().is_none(), "plain text so far");
        let (c, message) = code(p.run(Request::Raw("USER alice".into())));
        assert_eq!(c, ErrorCode::InvalidState);
        assert_eq!(message, "USER is not sent before TLS in an end-to-end session; send STLS first");
        assert!(matches!(p.run(Request::Raw("STLS".into())), Ok(Output::Raw { .. })));
        assert!(p.driver.tls().unwrap().end_to_end);
        assert!(matches!(p.run(Request::Raw("USER alice".into())), Ok(Output::Raw { .. })));
        assert_eq!(p.server.lines, ["CAPA", "STLS", "CAPA", "USER alice"]);
        assert!(p.wire.starts_with(b"CAPA\r\nSTLS\r\n\x16\x03"));
    }

    #[test]
    fn direct_end_to_end_is_the_same_engine_over_a_pipe() {
        let (ca, server) = pki(&["pop.example.test"], 2025, 2030);
        let mut config = bridge_config(TlsMode::Implicit);
        config.route = Route::Direct;
        config.end_to_end = true;
        config.ca = ca.into_bytes();
        let mut p = Pair::at(config, Via::Pipe, NOW_MS);
        p.server.tls = Some(ServerTls::new(server));
        let op = p.start(Request::Connect);
        p.driver.opened(p.now, "");
        p.server.greet();
        p.pump();
        assert!(matches!(p.result(op), Some(Ok(Output::Connected))), "{:?}", p.events);
        assert!(p.driver.tls().unwrap().end_to_end);
        assert_eq!(retr_after_login(&mut p), p.server.messages[0]);
    }

    fn retr_after_login(p: &mut Pair) -> Vec<u8> {
        login(p);
        retr(p, 1)
    }
}
