//! End-to-end TLS inside the client: a sans-IO TLS client engine (feature
//! `tls`).
//!
//! ```text
//!   write(plaintext) ──► [held until the handshake is done] ──► take_ciphertext() ──► transport
//!   take_plaintext() ◄── [decrypted records]  ◄── feed(ciphertext) ◄──────────────── transport
//!                          set_time(unix secs) ─► certificate validity, ticket ages
//! ```
//!
//! Like the POP3 core it does no I/O and reads no clock: the caller moves
//! bytes between it and whatever carries them (the bridge's WebSocket,
//! node:net, another engine in a test) and passes the time in. The same
//! rules as ws-bridge's upstream TLS: the webpki roots plus the caller's CA
//! certificates, SNI = the host name, the name checked against the
//! certificate (an IP address against its IP SANs, and no SNI sent).
//!
//! Why rustls' *unbuffered* API (`UnbufferedClientConnection`) rather than
//! the buffered `ClientConnection` over in-memory `read_tls`/`write_tls`:
//!
//! - It needs no `std` feature in rustls, and without `std` rustls has no
//!   code that reads the system clock: in wasm32-unknown-unknown
//!   `SystemTime::now` panics, and here nothing can call it. The time comes
//!   only from [`TlsClient::set_time`], through a rustls `TimeProvider`.
//! - Every buffer is ours and visible in this file, so the memory bound is
//!   ours to state (below), not a property of rustls internals to trust.
//! - Errors come back as `rustls::Error` values, not wrapped in `io::Error`
//!   from `Read`/`Write` adapters over slices.
//!
//! Memory: a TLS record is at most 16 KiB + 2 KiB of overhead (rustls
//! rejects a longer one at its header) and a handshake message at most
//! 64 KiB, so the unprocessed ciphertext held here after [`TlsClient::feed`]
//! is bounded by that whatever the server sends; plaintext waiting for
//! [`TlsClient::take_plaintext`] is at most what was fed since the last
//! take (decryption never grows data), and ciphertext waiting for
//! [`TlsClient::take_ciphertext`] is the caller's own writes plus the
//! handshake. Bytes the server sends after its close_notify are counted and
//! dropped.

mod error;
mod info;

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use rustls::{
    ClientConfig, ProtocolVersion, RootCertStore,
    client::{
        Resumption, UnbufferedClientConnection, WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
    time_provider::TimeProvider,
    unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus},
};

pub use self::{
    error::TlsError,
    info::{CertificateDetails, CertificateInfo, TlsInfo},
};

/// A TLS client session driven by bytes in and bytes out. See the module
/// documentation for the picture.
pub struct TlsClient {
    conn: UnbufferedClientConnection,
    host: String,
    clock: Arc<Clock>,
    /// The certificates the server sent, as the verifier saw them.
    presented: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    /// Ciphertext received and not yet a complete record.
    incoming: Vec<u8>,
    /// Ciphertext for the server.
    outgoing: Vec<u8>,
    /// Decrypted application data for the caller.
    plaintext: Vec<u8>,
    /// Application data written before the handshake completed.
    unsent: Vec<u8>,
    info: Option<TlsInfo>,
    chain: Vec<CertificateDetails>,
    close_requested: bool,
    close_sent: bool,
    peer_closed: bool,
    ignored_after_close: usize,
    error: Option<TlsError>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Buffer sizes only: their contents are mail and passwords.
        f.debug_struct("TlsClient")
            .field("host", &self.host)
            .field("established", &self.is_established())
            .field("incoming", &self.incoming.len())
            .field("outgoing", &self.outgoing.len())
            .field("plaintext", &self.plaintext.len())
            .field("unsent", &self.unsent.len())
            .field("peer_closed", &self.peer_closed)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Starts a session to `host` (a DNS name, or an IPv4/IPv6 address,
    /// brackets allowed). `extra_ca`: CA certificates to trust besides the
    /// webpki roots, as PEM (any number of `CERTIFICATE` blocks) or one DER
    /// certificate; empty for none. `now_unix_secs`: the caller's clock.
    ///
    /// The ClientHello is ready in [`TlsClient::take_ciphertext`] at once.
    pub fn new(host: &str, extra_ca: &[u8], now_unix_secs: u64) -> Result<TlsClient, TlsError> {
        let name = server_name(host)?;
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for ca in ca_certificates(extra_ca)? {
            roots.add(ca).map_err(|e| TlsError::InvalidCa(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let clock = Arc::new(Clock(AtomicU64::new(now_unix_secs)));
        let presented = Arc::new(Mutex::new(Vec::new()));
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::InvalidCa(e.to_string()))?;
        let verifier = Arc::new(RecordingVerifier { inner: verifier, presented: presented.clone() });
        let mut config = ClientConfig::builder_with_details(provider, clock.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Protocol { handshaking: true, detail: e.to_string() })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // One session per engine, nothing remembered between them.
        config.resumption = Resumption::disabled();
        let conn = UnbufferedClientConnection::new(Arc::new(config), name)
            .map_err(|e| TlsError::Protocol { handshaking: true, detail: e.to_string() })?;
        let mut client = TlsClient {
            conn,
            host: host.to_string(),
            clock,
            presented,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            plaintext: Vec::new(),
            unsent: Vec::new(),
            info: None,
            chain: Vec::new(),
            close_requested: false,
            close_sent: false,
            peer_closed: false,
            ignored_after_close: 0,
            error: None,
        };
        client.pump();
        match client.error.take() {
            Some(e) => Err(e),
            None => Ok(client),
        }
    }

    /// The caller's clock, in seconds since the Unix epoch. Call it before
    /// feeding bytes when time has passed (the certificate check reads it).
    pub fn set_time(&mut self, now_unix_secs: u64) {
        self.clock.0.store(now_unix_secs, Ordering::Relaxed);
    }

    /// Takes ciphertext from the server (any split: a byte at a time or
    /// many records at once). Incomplete records wait for more.
    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<(), TlsError> {
        self.check()?;
        if self.peer_closed {
            self.ignored_after_close += ciphertext.len();
            return Ok(());
        }
        self.incoming.extend_from_slice(ciphertext);
        self.pump();
        self.check()
    }

    /// The decrypted application data so far (empty if none).
    pub fn take_plaintext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.plaintext)
    }

    /// Application data for the server. Held until the handshake is done,
    /// then encrypted in order.
    pub fn write(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        self.check()?;
        if self.close_requested {
            return Err(TlsError::Closed);
        }
        self.unsent.extend_from_slice(plaintext);
        self.pump();
        self.check()
    }

    /// Ciphertext to send to the server (empty if none). After a fatal
    /// error this still hands out the alert that tells the server why.
    pub fn take_ciphertext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    /// The handshake is done and the certificate verified.
    pub fn is_established(&self) -> bool {
        self.info.is_some() && self.error.is_none()
    }

    /// Ends the session cleanly: a close_notify goes out (after whatever
    /// was written), now or, during the handshake, once it completes.
    pub fn close(&mut self) {
        self.close_requested = true;
        if self.error.is_none() {
            self.pump();
        }
    }

    /// The server sent its close_notify: all its data has arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Bytes the server sent after its close_notify, dropped unread.
    pub fn ignored_after_close(&self) -> usize {
        self.ignored_after_close
    }

    /// The transport closed (the server or the network hung up). `Ok` if
    /// the server had sent its close_notify; otherwise the session ends
    /// with [`TlsError::TransportClosed`], which says whether it was in the
    /// handshake or the middle of a record.
    pub fn transport_closed(&mut self) -> Result<(), TlsError> {
        self.check()?;
        if self.peer_closed {
            return Ok(());
        }
        self.error = Some(TlsError::TransportClosed {
            handshaking: self.info.is_none(),
            partial_record: !self.incoming.is_empty(),
        });
        self.check()
    }

    /// Ciphertext held for want of the rest of its record (or of a
    /// handshake message spread over records): the engine's only input
    /// buffer, bounded by the record and handshake-message limits.
    pub fn pending_input(&self) -> usize {
        self.incoming.len()
    }

    /// Version, cipher and certificates, once established.
    pub fn info(&self) -> Option<&TlsInfo> {
        self.info.as_ref()
    }

    /// The certificates the server sent, leaf first, as soon as they
    /// arrived: also after a failed verification, to show what was wrong.
    pub fn presented_chain(&self) -> &[CertificateDetails] {
        &self.chain
    }

    /// The fatal error, if the session failed.
    pub fn error(&self) -> Option<&TlsError> {
        self.error.as_ref()
    }

    fn check(&self) -> Result<(), TlsError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Runs rustls until it needs more input: encodes what it wants to
    /// send, decrypts what arrived, encrypts what waits to be written.
    fn pump(&mut self) {
        // What rustls has done with, from the front of `incoming`: passing
        // it the rest is removing it, without moving bytes once a record.
        let mut consumed = 0;
        while self.error.is_none() {
            let handshaking = self.info.is_none();
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming[consumed..]);
            let step = match state {
                Err(e) => Step::Fail(e),
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    encode(&mut self.outgoing, |buf| data.encode(buf).map_err(EncodeError::into_size));
                    Step::Again
                }
                // `outgoing` is the caller's to take: as far as rustls is
                // concerned it went out.
                Ok(ConnectionState::TransmitTlsData(data)) => {
                    data.done();
                    Step::Again
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut step = Step::Again;
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plaintext.extend_from_slice(record.payload);
                            }
                            Err(e) => {
                                step = Step::Fail(e);
                                break;
                            }
                        }
                    }
                    step
                }
                Ok(ConnectionState::WriteTraffic(_)) if handshaking => Step::Established,
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let mut sealed = true;
                    if !self.unsent.is_empty() && !self.close_sent {
                        let data = std::mem::take(&mut self.unsent);
                        sealed = encode(&mut self.outgoing, |buf| {
                            traffic.encrypt(&data, buf).map_err(EncryptError::into_size)
                        });
                    }
                    if sealed && self.close_requested && !self.close_sent {
                        sealed = encode(&mut self.outgoing, |buf| {
                            traffic.queue_close_notify(buf).map_err(EncryptError::into_size)
                        });
                        self.close_sent = true;
                    }
                    // Out of record sequence numbers (2^64 records).
                    if sealed { Step::Stop } else { Step::Fail(rustls::Error::EncryptError) }
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Step::Again
                }
                // BlockedHandshake, Closed, and early data (for servers):
                // nothing to do until more input comes.
                Ok(_) => Step::Stop,
            };
            consumed += discard;
            if self.peer_closed {
                self.ignored_after_close += self.incoming.len() - consumed;
                consumed = self.incoming.len();
            }
            match step {
                Step::Again => {}
                Step::Stop => break,
                Step::Established => self.established(),
                Step::Fail(e) => {
                    let chain = self.chain_details();
                    self.error = Some(TlsError::from_rustls(e, &self.host, &chain, handshaking));
                }
            }
        }
        self.incoming.drain(..consumed);
        if self.error.is_some() {
            self.flush_alert();
        }
    }

    /// After a fatal error rustls has queued an alert for the server:
    /// encode it, and nothing else, ever again.
    fn flush_alert(&mut self) {
        // Only while rustls has something queued: asked for more, it would
        // look at the input again (and fail on it a second time).
        while self.conn.wants_write() {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut self.incoming[..]);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    encode(&mut self.outgoing, |buf| data.encode(buf).map_err(EncodeError::into_size));
                }
                _ => break,
            }
        }
        self.incoming.clear();
        self.unsent.clear();
    }

    fn established(&mut self) {
        let chain = self.chain_details();
        let protocol = match self.conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_string(),
        };
        let cipher = self
            .conn
            .negotiated_cipher_suite()
            .map(|s| {
                let suite = s.suite();
                suite.as_str().map_or_else(|| format!("{suite:?}"), str::to_string)
            })
            .unwrap_or_else(|| "unknown".to_string());
        // webpki verified the certificate; describing it is secondary. One
        // the parser here cannot read (a UniversalString in a name, say)
        // leaves the fields empty and says why in `chain[0].parse_error`.
        let certificate = chain.first().map(CertificateDetails::summary).unwrap_or_default();
        self.info = Some(TlsInfo { protocol, cipher, certificate, chain });
    }

    /// The presented certificates, parsed once.
    fn chain_details(&mut self) -> Vec<CertificateDetails> {
        let presented = self.presented.lock().unwrap_or_else(PoisonError::into_inner);
        if self.chain.len() != presented.len() {
            self.chain = presented.iter().map(CertificateDetails::parse).collect();
        }
        self.chain.clone()
    }
}

/// What [`TlsClient::pump`] does after one step of rustls.
enum Step {
    Again,
    Stop,
    Established,
    Fail(rustls::Error),
}

/// Appends what `write` produces to `out`, growing it to the size rustls
/// asks for. `false` if rustls could not (out of sequence numbers).
fn encode(out: &mut Vec<u8>, mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>) -> bool {
    let start = out.len();
    let mut room = 4096;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return true;
            }
            Err(Some(required)) if required > room => room = required,
            Err(_) => {
                out.truncate(start);
                return false;
            }
        }
    }
}

trait IntoSize {
    /// The size rustls asks for, if that is what went wrong.
    fn into_size(self) -> Option<usize>;
}

impl IntoSize for EncodeError {
    fn into_size(self) -> Option<usize> {
        match self {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => Some(required_size),
            _ => None,
        }
    }
}

impl IntoSize for EncryptError {
    fn into_size(self) -> Option<usize> {
        match self {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => Some(required_size),
            _ => None,
        }
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::InvalidHost(host.to_string()))
}

/// The caller's CA certificates: PEM with one or more CERTIFICATE blocks,
/// or a single DER certificate.
fn ca_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidCa(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::InvalidCa("no CERTIFICATE found".into()));
    }
    Ok(certs)
}

/// The caller's clock, for rustls: set by [`TlsClient::set_time`].
#[derive(Debug)]
struct Clock(AtomicU64);

impl TimeProvider for Clock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(self.0.load(Ordering::Relaxed))))
    }
}

/// webpki's verifier, remembering what the server presented so that a
/// failure can say which names and which issuer the certificate has.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    presented: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.presented.lock().unwrap_or_else(PoisonError::into_inner) =
            std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}
