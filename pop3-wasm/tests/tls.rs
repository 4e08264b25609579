//! The TLS engine (`pop3_wasm::tls`, feature `tls`) against a rustls server,
//! wired back to back in memory as rustls' own tests do: no sockets, the
//! certificates made here with rcgen, the time passed in.

use std::{io::Read, io::Write, sync::Arc};

use pop3_wasm::tls::{TlsClient, TlsError};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519,
};
use rustls::{
    ServerConfig, ServerConnection,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

/// 2026-01-01T00:00:00Z: the clock the tests' client reads.
const NOW: u64 = 1_767_225_600;
const CA_NAME: &str = "pop3-wasm Test CA";

/// A CA, optionally an intermediate, and a leaf.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

struct Leaf<'a> {
    ca_name: &'a str,
    /// Replaces the leaf's subject (CN=localhost, O=Example Mail).
    subject: Option<rcgen::DistinguishedName>,
    names: &'a [&'a str],
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
    intermediate: bool,
    ed25519: bool,
}

impl Default for Leaf<'_> {
    fn default() -> Self {
        Leaf {
            ca_name: CA_NAME,
            subject: None,
            names: &["localhost", "127.0.0.1", "::1"],
            not_before: (2020, 1, 1),
            not_after: (2037, 1, 1),
            intermediate: false,
            ed25519: false,
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    params
}

impl Pki {
    fn new(leaf: Leaf<'_>) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params(leaf.ca_name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut issuer = Issuer::new(ca, ca_key);
        let mut intermediates = Vec::new();
        if leaf.intermediate {
            let key = KeyPair::generate().unwrap();
            let params = ca_params("pop3-wasm Test Intermediate");
            intermediates.push(params.signed_by(&key, &issuer).unwrap().der().clone());
            issuer = Issuer::new(params, key);
        }
        let key =
            if leaf.ed25519 { KeyPair::generate_for(&PKCS_ED25519) } else { KeyPair::generate() }.unwrap();
        let names: Vec<String> = leaf.names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = leaf.subject.unwrap_or_else(|| {
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(DnType::CommonName, "localhost");
            dn.push(DnType::OrganizationName, "Example Mail");
            dn
        });
        params.not_before = rcgen::date_time_ymd(leaf.not_before.0, leaf.not_before.1, leaf.not_before.2);
        params.not_after = rcgen::date_time_ymd(leaf.not_after.0, leaf.not_after.1, leaf.not_after.2);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(intermediates);
        Pki { ca_pem: ca_cert.pem(), ca_der: ca_cert.der().clone(), chain, key: key.serialize_der() }
    }

    fn server(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> ServerConnection {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .unwrap();
        let mut server = ServerConnection::new(Arc::new(config)).unwrap();
        // The tests hand the server whole bodies at once.
        server.set_buffer_limit(None);
        server
    }
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// A client engine and a rustls server, bytes moved between them by hand.
struct Pair {
    client: TlsClient,
    server: ServerConnection,
    /// What the server decrypted so far.
    server_got: Vec<u8>,
    /// What the client decrypted so far.
    client_got: Vec<u8>,
    /// The server's error, if it failed (an alert from the client, say).
    server_error: Option<rustls::Error>,
    server_saw_eof: bool,
}

impl Pair {
    fn new(pki: &Pki, host: &str, versions: &[&'static rustls::SupportedProtocolVersion]) -> Pair {
        Pair {
            client: TlsClient::new(host, pki.ca_pem.as_bytes(), NOW).unwrap(),
            server: pki.server(versions),
            server_got: Vec::new(),
            client_got: Vec::new(),
            server_error: None,
            server_saw_eof: false,
        }
    }

    /// Client to server: everything the client has to send.
    fn client_to_server(&mut self) -> bool {
        let bytes = self.client.take_ciphertext();
        let mut rest = &bytes[..];
        while !rest.is_empty() && self.server_error.is_none() {
            self.server.read_tls(&mut rest).unwrap();
            if let Err(e) = self.server.process_new_packets() {
                self.server_error = Some(e);
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.server.reader().read(&mut buf) {
                Ok(0) => {
                    self.server_saw_eof = true;
                    break;
                }
                Ok(n) => self.server_got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        !bytes.is_empty()
    }

    /// Server to client, in pieces of `chunk` bytes. Returns the client's
    /// first error.
    fn server_to_client(&mut self, chunk: usize) -> Result<bool, TlsError> {
        let mut bytes = Vec::new();
        while self.server.wants_write() {
            self.server.write_tls(&mut bytes).unwrap();
        }
        for piece in bytes.chunks(chunk) {
            self.client.feed(piece)?;
        }
        self.client_got.extend(self.client.take_plaintext());
        Ok(!bytes.is_empty())
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn run(&mut self, chunk: usize) -> Result<(), TlsError> {
        loop {
            let sent = self.client_to_server();
            let received = self.server_to_client(chunk)?;
            if !sent && !received {
                return Ok(());
            }
        }
    }

    fn server_says(&mut self, bytes: &[u8]) {
        self.server.writer().write_all(bytes).unwrap();
    }
}

/// Every byte value, in a pattern that does not repeat within a record.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn data_both_ways(versions: &[&'static rustls::SupportedProtocolVersion], chunk: usize) -> Pair {
    let pki = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", versions);
    // Written before the handshake: held, then sent once it is done.
    p.client.write(b"CAPA\r\n").unwrap();
    assert!(!p.client.is_established());
    p.server_says(b"+OK Dovecot ready.\r\n");
    p.run(chunk).unwrap();
    assert!(p.client.is_established());
    assert_eq!(p.server_got, b"CAPA\r\n");
    assert_eq!(p.client_got, b"+OK Dovecot ready.\r\n");

    let body = pattern(100_000);
    p.server_says(&body);
    p.client.write(b"RETR 1\r\n").unwrap();
    p.run(chunk).unwrap();
    assert_eq!(&p.client_got[20..], &body[..]);
    assert_eq!(p.server_got, b"CAPA\r\nRETR 1\r\n");
    p
}

#[test]
fn tls13_handshake_and_data_both_ways_in_big_chunks() {
    let p = data_both_ways(TLS13, 1 << 20);
    let info = p.client.info().unwrap();
    assert_eq!(info.protocol, "TLSv1.3");
    assert_eq!(info.cipher, "TLS13_AES_256_GCM_SHA384");
}

#[test]
fn tls13_handshake_and_data_fed_one_byte_at_a_time() {
    let p = data_both_ways(TLS13, 1);
    assert_eq!(p.client.info().unwrap().protocol, "TLSv1.3");
}

#[test]
fn tls12_handshake_and_data_both_ways() {
    for chunk in [1, 7, 1 << 20] {
        let p = data_both_ways(TLS12, chunk);
        let info = p.client.info().unwrap();
        assert_eq!(info.protocol, "TLSv1.2");
        assert_eq!(info.cipher, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    }
}

#[test]
fn client_hello_is_ready_at_once_and_carries_the_host_as_sni() {
    let pki = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", TLS13);
    let hello = p.client.take_ciphertext();
    // A handshake record whose first message is a ClientHello.
    assert_eq!(&hello[..1], &[0x16]);
    assert_eq!(hello[5], 0x01);
    assert!(hello.windows(9).any(|w| w == b"localhost"));
    let mut rest = &hello[..];
    p.server.read_tls(&mut rest).unwrap();
    p.server.process_new_packets().unwrap();
    assert_eq!(p.server.server_name(), Some("localhost"));
}

#[test]
fn info_has_the_bridges_three_fields_and_the_chain_as_sent() {
    let pki = Pki::new(Leaf { intermediate: true, not_after: (2031, 7, 15), ..Leaf::default() });
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.run(1 << 20).unwrap();
    let info = p.client.info().unwrap().clone();
    assert_eq!(info.certificate.subject, "CN=localhost, O=Example Mail");
    assert_eq!(info.certificate.issuer, "CN=pop3-wasm Test Intermediate");
    assert_eq!(info.certificate.not_after, "2031-07-15T00:00:00Z");
    assert_eq!(info.chain.len(), 2);
    let leaf = &info.chain[0];
    assert_eq!(leaf.subject, info.certificate.subject);
    assert_eq!(leaf.dns_names, ["localhost"]);
    assert_eq!(leaf.ip_addresses, ["127.0.0.1", "::1"]);
    assert_eq!(leaf.not_before, "2020-01-01T00:00:00Z");
    assert_eq!(leaf.not_after, "2031-07-15T00:00:00Z");
    assert_eq!((leaf.key_type.as_str(), leaf.key_bits, leaf.curve.as_deref()), ("EC", 256, Some("P-256")));
    assert_eq!(leaf.signature_algorithm, "ecdsa-with-SHA256");
    assert_eq!(leaf.sha256.len(), 32 * 3 - 1);
    assert_eq!(leaf.parse_error, None);
    let intermediate = &info.chain[1];
    assert_eq!(intermediate.subject, "CN=pop3-wasm Test Intermediate");
    assert_eq!(intermediate.issuer, format!("CN={CA_NAME}"));
    assert!(intermediate.dns_names.is_empty());
    assert_ne!(intermediate.sha256, leaf.sha256);
    assert_eq!(p.client.presented_chain(), &info.chain[..]);
}

#[test]
fn info_names_an_ed25519_key() {
    let pki = Pki::new(Leaf { ed25519: true, ..Leaf::default() });
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.run(1 << 20).unwrap();
    let leaf = &p.client.info().unwrap().chain[0];
    assert_eq!((leaf.key_type.as_str(), leaf.key_bits, leaf.curve.as_deref()), ("Ed25519", 256, None));
    // Signed by the CA's P-256 key.
    assert_eq!(leaf.signature_algorithm, "ecdsa-with-SHA256");
}

#[test]
fn close_notify_both_ways() {
    let mut p = data_both_ways(TLS13, 1 << 20);
    p.client.write(b"QUIT\r\n").unwrap();
    p.client.close();
    p.run(1 << 20).unwrap();
    assert_eq!(p.server_got, b"CAPA\r\nRETR 1\r\nQUIT\r\n");
    assert!(p.server_saw_eof, "the server saw the client's close_notify");
    assert_eq!(p.client.write(b"NOOP\r\n"), Err(TlsError::Closed));
    assert_eq!(p.client.error(), None, "writing after close is the caller's mistake, not fatal");

    p.server_says(b"+OK Bye\r\n");
    p.server.send_close_notify();
    assert!(!p.client.peer_closed());
    p.run(1 << 20).unwrap();
    assert!(p.client.peer_closed());
    assert!(p.client_got.ends_with(b"+OK Bye\r\n"));
    assert_eq!(p.client.transport_closed(), Ok(()));
}

#[test]
fn close_during_the_handshake_goes_out_once_it_completes() {
    let pki = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.client.write(b"QUIT\r\n").unwrap();
    p.client.close();
    p.run(1 << 20).unwrap();
    assert_eq!(p.server_got, b"QUIT\r\n");
    assert!(p.server_saw_eof);
}

#[test]
fn bytes_after_the_servers_close_notify_are_dropped_and_counted() {
    let mut p = data_both_ways(TLS13, 1 << 20);
    let before = p.client_got.len();
    p.server.send_close_notify();
    let mut close = Vec::new();
    p.server.write_tls(&mut close).unwrap();
    let mut wire = close.clone();
    wire.extend_from_slice(b"+OK and more\r\n");
    p.client.feed(&wire).unwrap();
    p.client.feed(b"even more").unwrap();
    assert!(p.client.peer_closed());
    assert!(p.client.take_plaintext().is_empty());
    assert_eq!(p.client_got.len(), before);
    assert_eq!(p.client.ignored_after_close(), 14 + 9);
    assert_eq!(p.client.pending_input(), 0);
    assert_eq!(p.client.transport_closed(), Ok(()));
}

#[test]
fn a_record_cut_short_is_reported_as_truncated_and_the_error_sticks() {
    let mut p = data_both_ways(TLS13, 1 << 20);
    p.server_says(b"+OK 2 messages\r\n");
    let mut wire = Vec::new();
    p.server.write_tls(&mut wire).unwrap();
    p.client.feed(&wire[..wire.len() - 5]).unwrap();
    assert!(p.client.take_plaintext().is_empty(), "no part of a record before it is whole");
    assert_eq!(p.client.pending_input(), wire.len() - 5);
    let e = p.client.transport_closed().unwrap_err();
    assert_eq!(e, TlsError::TransportClosed { handshaking: false, partial_record: true });
    assert_eq!(e.reason(), "truncated");
    assert_eq!(e.to_string(), "connection closed in the middle of a TLS record (truncated)");
    // Sticky: every call says it again.
    assert_eq!(p.client.feed(&wire[wire.len() - 5..]), Err(e.clone()));
    assert_eq!(p.client.write(b"NOOP\r\n"), Err(e.clone()));
    assert_eq!(p.client.transport_closed(), Err(e));
    assert!(p.client.take_plaintext().is_empty());
}

#[test]
fn a_close_without_close_notify_between_records_is_not_a_truncated_record() {
    let mut p = data_both_ways(TLS13, 1 << 20);
    assert_eq!(
        p.client.transport_closed(),
        Err(TlsError::TransportClosed { handshaking: false, partial_record: false })
    );
}

#[test]
fn the_server_hanging_up_in_the_handshake() {
    let pki = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.client_to_server();
    let e = p.client.transport_closed().unwrap_err();
    assert_eq!(e.to_string(), "server closed the connection during the TLS handshake");
}

#[test]
fn garbage_instead_of_a_server_hello() {
    let pki = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", TLS13);
    let _hello = p.client.take_ciphertext();
    // A server that does not speak TLS on this port: a POP3 greeting.
    let e = p.client.feed(b"+OK Dovecot ready.\r\n").unwrap_err();
    assert!(matches!(e, TlsError::Protocol { handshaking: true, .. }), "{e:?}");
    assert_eq!(e.reason(), "protocol");
    assert!(e.to_string().starts_with("TLS handshake failed: "), "{e}");
    // The alert that tells the server why: a plaintext fatal alert record.
    let alert = p.client.take_ciphertext();
    assert_eq!(&alert[..1], &[0x15]);
    assert_eq!(alert[5], 2, "fatal");
    assert_eq!(p.client.feed(b"more"), Err(e.clone()));
    assert!(p.client.take_ciphertext().is_empty(), "nothing more after the alert");
    assert!(!p.client.is_established());
}

#[test]
fn a_record_longer_than_tls_allows_fails_at_its_header() {
    let mut p = data_both_ways(TLS13, 1 << 20);
    // An application-data record header announcing 65535 bytes.
    let e = p.client.feed(&[0x17, 0x03, 0x03, 0xff, 0xff]).unwrap_err();
    assert!(matches!(e, TlsError::Protocol { handshaking: false, .. }), "{e:?}");
    assert_eq!(p.client.pending_input(), 0);
}

#[test]
fn input_held_stays_within_one_record_whatever_arrives() {
    let mut p = data_both_ways(TLS13, 1 << 20);
    // 4 MiB from the server, delivered in 64 KiB reads that cut records
    // anywhere: after each, at most one partial record is held.
    let body = pattern(4 << 20);
    p.server_says(&body);
    let mut wire = Vec::new();
    while p.server.wants_write() {
        p.server.write_tls(&mut wire).unwrap();
    }
    let mut got = Vec::new();
    let mut most = 0;
    for piece in wire.chunks(65_521) {
        p.client.feed(piece).unwrap();
        most = most.max(p.client.pending_input());
        got.extend(p.client.take_plaintext());
    }
    assert_eq!(got, body);
    assert!(most <= 16_384 + 256 + 5, "held {most} bytes of input");
    assert_eq!(p.client.pending_input(), 0);

    // All of it in one call, less its last byte: all but the last record
    // decrypted, that record held.
    p.server_says(&body);
    let mut wire = Vec::new();
    while p.server.wants_write() {
        p.server.write_tls(&mut wire).unwrap();
    }
    p.client.feed(&wire[..wire.len() - 1]).unwrap();
    let got = p.client.take_plaintext();
    assert!(body.starts_with(&got) && got.len() >= body.len() - 16_384, "{} of {}", got.len(), body.len());
    assert!((1..=16_384 + 256 + 5).contains(&p.client.pending_input()));
    p.client.feed(&wire[wire.len() - 1..]).unwrap();
    assert_eq!([got, p.client.take_plaintext()].concat(), body);
}

fn handshake_error(pki: &Pki, host: &str, now: u64) -> (TlsError, Pair) {
    let mut p = Pair::new(pki, host, TLS13);
    p.client.set_time(now);
    let e = p.run(1 << 20).unwrap_err();
    // Sticky, and the server is told (an alert).
    assert_eq!(p.client.feed(b"x"), Err(e.clone()));
    assert_eq!(p.client.error(), Some(&e));
    p.client_to_server();
    assert!(matches!(p.server_error, Some(rustls::Error::AlertReceived(_))), "{:?}", p.server_error);
    (e, p)
}

#[test]
fn untrusted_certificate_names_its_issuer() {
    let pki = Pki::new(Leaf::default());
    let other = Pki::new(Leaf { ca_name: "Another CA", ..Leaf::default() });
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.client = TlsClient::new("localhost", other.ca_pem.as_bytes(), NOW).unwrap();
    let e = p.run(1 << 20).unwrap_err();
    assert_eq!(e, TlsError::Untrusted { issuer: Some(format!("CN={CA_NAME}")) });
    assert_eq!(e.reason(), "untrusted");
    assert_eq!(e.to_string(), format!("certificate not trusted (unknown issuer: CN={CA_NAME})"));
    p.client_to_server();
    assert_eq!(p.server_error, Some(rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA)));
    // What the server presented is there to look at.
    assert_eq!(p.client.presented_chain()[0].subject, "CN=localhost, O=Example Mail");
}

#[test]
fn a_ca_of_the_same_name_that_did_not_sign_it() {
    // The caller passed the wrong CA file, one with the right name.
    let pki = Pki::new(Leaf::default());
    let impostor = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.client = TlsClient::new("localhost", impostor.ca_pem.as_bytes(), NOW).unwrap();
    let e = p.run(1 << 20).unwrap_err();
    assert_eq!(e, TlsError::BadCertificate("certificate has a bad signature".into()));
}

#[test]
fn untrusted_without_any_extra_ca() {
    let pki = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.client = TlsClient::new("localhost", b"", NOW).unwrap();
    assert_eq!(p.run(1 << 20).unwrap_err().reason(), "untrusted");
}

#[test]
fn expired_certificate_says_when() {
    let pki = Pki::new(Leaf { not_after: (2025, 3, 1), ..Leaf::default() });
    let (e, _) = handshake_error(&pki, "localhost", NOW);
    assert_eq!(
        e,
        TlsError::Expired {
            not_after: Some("2025-03-01T00:00:00Z".into()),
            now: Some("2026-01-01T00:00:00Z".into())
        }
    );
    assert_eq!(e.reason(), "expired");
    assert_eq!(
        e.to_string(),
        "certificate expired at 2025-03-01T00:00:00Z (the client's clock says 2026-01-01T00:00:00Z)"
    );
}

#[test]
fn not_yet_valid_certificate_says_from_when() {
    let pki = Pki::new(Leaf { not_before: (2027, 6, 1), ..Leaf::default() });
    let (e, _) = handshake_error(&pki, "localhost", NOW);
    assert_eq!(
        e,
        TlsError::NotYetValid {
            not_before: Some("2027-06-01T00:00:00Z".into()),
            now: Some("2026-01-01T00:00:00Z".into())
        }
    );
    assert_eq!(e.reason(), "not-yet-valid");
}

#[test]
fn the_time_passed_in_is_the_time_checked() {
    // Expired by today's clock; valid by the clock the caller sets.
    let pki = Pki::new(Leaf { not_after: (2025, 3, 1), ..Leaf::default() });
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.client.set_time(1_740_000_000); // 2025-02-19
    p.run(1 << 20).unwrap();
    assert!(p.client.is_established());
}

#[test]
fn wrong_name_quotes_the_names_the_certificate_has() {
    let pki =
        Pki::new(Leaf { names: &["mail.example.org", "pop.example.org", "192.0.2.7"], ..Leaf::default() });
    let (e, _) = handshake_error(&pki, "pop.example.com", NOW);
    assert_eq!(
        e,
        TlsError::WrongName {
            host: "pop.example.com".into(),
            names: vec!["mail.example.org".into(), "pop.example.org".into(), "192.0.2.7".into()],
        }
    );
    assert_eq!(e.reason(), "wrong-name");
    assert_eq!(
        e.to_string(),
        "certificate not valid for the host name pop.example.com (it is for mail.example.org, pop.example.org, 192.0.2.7)"
    );
}

#[test]
fn an_ip_address_host_matches_an_ip_san_and_sends_no_sni() {
    for host in ["127.0.0.1", "::1", "[::1]"] {
        let pki = Pki::new(Leaf::default());
        let mut p = Pair::new(&pki, host, TLS13);
        p.run(1 << 20).unwrap();
        assert!(p.client.is_established(), "{host}");
        assert_eq!(p.server.server_name(), None, "{host}: no SNI for an address");
    }
}

#[test]
fn an_ip_address_host_not_among_the_ip_sans_is_a_wrong_name() {
    let pki = Pki::new(Leaf::default());
    let (e, _) = handshake_error(&pki, "127.0.0.2", NOW);
    assert_eq!(
        e,
        TlsError::WrongName {
            host: "127.0.0.2".into(),
            names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
        }
    );
    // A DNS name in the certificate is no match for the address it names.
    let pki = Pki::new(Leaf { names: &["127.0.0.1.nip.io"], ..Leaf::default() });
    assert_eq!(handshake_error(&pki, "127.0.0.1", NOW).0.reason(), "wrong-name");
}

#[test]
fn ca_given_as_pem_with_several_certificates_or_as_der() {
    let pki = Pki::new(Leaf::default());
    let other = Pki::new(Leaf::default());
    let bundle = format!("{}\n{}", other.ca_pem, pki.ca_pem);
    for ca in [bundle.as_bytes(), pki.ca_der.as_ref()] {
        let mut p = Pair::new(&pki, "localhost", TLS13);
        p.client = TlsClient::new("localhost", ca, NOW).unwrap();
        p.run(1 << 20).unwrap();
        assert!(p.client.is_established());
    }
}

#[test]
fn unreadable_ca_and_host_are_refused_up_front() {
    let e =
        TlsClient::new("localhost", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", NOW)
            .unwrap_err();
    assert_eq!(e, TlsError::InvalidCa("no CERTIFICATE found".into()));
    let e = TlsClient::new("localhost", b"not a certificate", NOW).unwrap_err();
    assert_eq!(e.reason(), "invalid-ca");
    let e = TlsClient::new("bad host name!", b"", NOW).unwrap_err();
    assert_eq!(e, TlsError::InvalidHost("bad host name!".into()));
}

#[test]
fn the_server_refusing_the_handshake_with_an_alert() {
    let pki = Pki::new(Leaf::default());
    let mut p = Pair::new(&pki, "localhost", TLS13);
    let _hello = p.client.take_ciphertext();
    // A plaintext fatal handshake_failure alert, as a server with no
    // cipher in common sends it.
    let e = p.client.feed(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]).unwrap_err();
    assert_eq!(e, TlsError::AlertReceived("HandshakeFailure".into()));
    assert_eq!(e.reason(), "alert");
    assert_eq!(e.to_string(), "server sent TLS alert HandshakeFailure");
}

#[test]
fn a_key_update_from_the_server_is_answered_and_data_keeps_flowing() {
    let mut p = data_both_ways(TLS13, 1 << 20);
    p.server.refresh_traffic_keys().unwrap();
    p.server_says(b"+OK after the key update\r\n");
    p.client.write(b"NOOP\r\n").unwrap();
    p.run(1).unwrap();
    assert!(p.client_got.ends_with(b"+OK after the key update\r\n"));
    assert!(p.server_got.ends_with(b"NOOP\r\n"));
    assert_eq!(p.server_error, None);
}

/// What ws-bridge reports for a certificate (ws-bridge/src/upstream.rs):
/// x509-parser's distinguished names and `time`'s RFC 3339.
fn as_the_bridge_prints_it(der: &[u8]) -> (String, String, String) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let not_after = cert
        .validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    (cert.subject().to_string(), cert.issuer().to_string(), not_after)
}

#[test]
fn certificate_strings_are_the_bridges_for_many_kinds_of_names() {
    use rcgen::{DnValue, string};
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CountryName, DnValue::PrintableString(string::PrintableString::try_from("DE").unwrap()));
    dn.push(DnType::StateOrProvinceName, "Baden-Württemberg");
    dn.push(
        DnType::LocalityName,
        DnValue::TeletexString(string::TeletexString::try_from("Stuttgart").unwrap()),
    );
    dn.push(DnType::OrganizationName, "Jürgen Müller Mail GmbH");
    dn.push(
        DnType::OrganizationalUnitName,
        DnValue::BmpString(string::BmpString::try_from("Postmaster Ω").unwrap()),
    );
    dn.push(DnType::CommonName, "localhost");
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), "HRB 12345");
    dn.push(
        DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        DnValue::Ia5String(string::Ia5String::try_from("postmaster@example.org").unwrap()),
    );
    dn.push(DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]), "example");
    dn.push(DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3]), "DE");
    // organizationIdentifier: not in x509-parser's registry, so OID(…).
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 97]), "VATDE-123456789");
    let pki = Pki::new(Leaf { subject: Some(dn), not_after: (2034, 12, 31), ..Leaf::default() });
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.run(1 << 20).unwrap();
    let info = p.client.info().unwrap();
    let (subject, issuer, not_after) = as_the_bridge_prints_it(pki.chain[0].as_ref());
    assert_eq!(info.certificate.subject, subject);
    assert_eq!(info.certificate.issuer, issuer);
    assert_eq!(info.certificate.not_after, not_after);
    // And not by accident: the names are the ones made above.
    assert_eq!(
        subject,
        "C=DE, ST=Baden-Württemberg, L=Stuttgart, O=Jürgen Müller Mail GmbH, OU=Postmaster Ω, CN=localhost, \
         serialNumber=HRB 12345, Email=postmaster@example.org, DC=example, msJurisdictionCountry=DE, \
         OID(2.5.4.97)=VATDE-123456789"
    );
}

#[test]
fn a_certificate_the_parser_cannot_describe_still_makes_a_session() {
    // x509-cert (der 0.7) has no UniversalString; x509-parser, and so the
    // bridge, would show it in hex. webpki accepts the certificate, and so
    // does the engine: only the description is missing, and says why.
    use rcgen::{DnValue, string};
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    dn.push(
        DnType::OrganizationName,
        DnValue::UniversalString(string::UniversalString::try_from("Univ").unwrap()),
    );
    let pki = Pki::new(Leaf { subject: Some(dn), ..Leaf::default() });
    let mut p = Pair::new(&pki, "localhost", TLS13);
    p.run(1 << 20).unwrap();
    let info = p.client.info().unwrap();
    assert_eq!(info.certificate.subject, "");
    assert_eq!(info.certificate.not_after, "");
    let why = info.chain[0].parse_error.as_deref().unwrap();
    assert!(
        why.starts_with("cannot parse the certificate: unknown/unsupported ASN.1 DER tag: 0x1c"),
        "{why}"
    );
    assert_eq!(info.chain[0].sha256.len(), 95);
}
