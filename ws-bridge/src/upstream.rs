//! The connection to the POP3 server: TCP, TLS, and the STLS exchange.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls::{CertificateError, ClientConfig, ProtocolVersion, pki_types::ServerName};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    time::timeout,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::{
    policy::Host,
    wire::{CertificateInfo, ConnectFailure, TlsInfo, TlsReason},
};

/// The longest STLS reply line the bridge reads: the core's, whose rule
/// (`pop3_wasm::proto::stls_verdict`) the reader and the relay apply.
pub use pop3_wasm::proto::MAX_STLS_REPLY;
use pop3_wasm::proto::{StlsVerdict, stls_verdict};

/// The upstream byte stream, plain or TLS.
#[derive(Debug)]
pub enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Upstream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Upstream::Tls(_))
    }
}

impl AsyncRead for Upstream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Connects to the first address that answers, all within `deadline`.
/// The error is a short, user-presentable reason.
pub async fn connect_tcp(addrs: &[SocketAddr], deadline: Duration) -> Result<TcpStream, String> {
    let attempt = async {
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => ConnectFailure::Refused.to_string(),
            Some(e) => ConnectFailure::Other(e.to_string()).to_string(),
            None => "no address to connect to".to_string(),
        })
    };
    timeout(deadline, attempt).await.unwrap_or_else(|_| Err(ConnectFailure::TimedOut.to_string()))
}

/// The name the certificate must match: an IP literal verifies against an
/// IP SAN, anything else against a DNS name.
pub fn server_name(host: &Host) -> Result<ServerName<'static>, String> {
    match host {
        Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        Host::Name(name) => {
            ServerName::try_from(name.clone()).map_err(|_| format!("{name} is not a valid TLS server name"))
        }
    }
}

/// Runs a verified TLS handshake. The error says why, for the client.
pub async fn tls_handshake(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
    deadline: Duration,
) -> Result<(TlsStream<TcpStream>, TlsInfo), String> {
    let connector = TlsConnector::from(config);
    let stream = match timeout(deadline, connector.connect(name, tcp)).await {
        Err(_) => return Err("TLS handshake timed out".into()),
        Ok(Err(e)) => return Err(describe_tls_error(&e)),
        Ok(Ok(stream)) => stream,
    };
    let info = tls_info(stream.get_ref().1)?;
    Ok((stream, info))
}

/// Turns a handshake failure into a sentence a postmaster can act on: the
/// shared words of [`TlsReason`] (the client's engine and its direct
/// transport say the same), with the detail rustls gives where there is
/// no word for it.
pub fn describe_tls_error(e: &io::Error) -> String {
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => TlsReason::Truncated.sentence().into(),
            _ => format!("TLS handshake failed: {e}"),
        };
    };
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => TlsReason::Untrusted.sentence().into(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsReason::Expired.sentence().into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsReason::NotYetValid.sentence().into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsReason::WrongName.sentence().into()
            }
            CertificateError::Revoked => "certificate revoked".into(),
            CertificateError::BadSignature => "certificate has a bad signature".into(),
            other => format!("invalid certificate: {other}"),
        },
        rustls::Error::AlertReceived(alert) => format!("server sent TLS alert {alert:?}"),
        other => format!("TLS handshake failed: {other}"),
    }
}

fn tls_info(conn: &rustls::ClientConnection) -> Result<TlsInfo, String> {
    let protocol = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let suite = s.suite();
            suite.as_str().map_or_else(|| format!("{suite:?}"), str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string());
    let leaf =
        conn.peer_certificates().and_then(|certs| certs.first()).ok_or("server sent no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("cannot parse the server certificate: {e}"))?;
    let not_after = cert
        .validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("cannot format notAfter: {e}"))?;
    Ok(TlsInfo {
        protocol,
        cipher,
        certificate: CertificateInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_after,
        },
    })
}

/// What the server answered to `STLS`.
#[derive(Debug)]
pub enum StlsReply {
    /// The reply line (with its CRLF) and whatever followed it in the
    /// same read. The caller decides what the rest is worth.
    Line { line: Vec<u8>, rest: Vec<u8> },
    /// The server closed before a full line; these bytes came first.
    Closed(Vec<u8>),
}

/// Splits the server's answer to `STLS` into its reply line and what came
/// after it in the same read, as the bytes arrive (no I/O, so that it can
/// be fuzzed: `fuzz/fuzz_targets/bridge_stls_reply.rs`).
///
/// The line is everything up to and including the first LF, which must
/// come within [`MAX_STLS_REPLY`] bytes whatever the reads were (the
/// core's [`stls_verdict`] decides; what the line says is the relay's to
/// judge, with the same function).
#[derive(Debug, Default)]
pub struct StlsReplyReader {
    line: Vec<u8>,
}

impl StlsReplyReader {
    /// How many bytes the next read should take at most.
    pub fn room(&self) -> usize {
        MAX_STLS_REPLY - self.line.len()
    }

    /// Takes one read's bytes. `Ok(Some(_))` once the line is complete
    /// (the rest of this read goes with it); `Err` when there is no LF
    /// within [`MAX_STLS_REPLY`] bytes.
    pub fn feed(&mut self, read: &[u8]) -> Result<Option<StlsReply>, String> {
        let start = self.line.len();
        self.line.extend_from_slice(&read[..read.len().min(self.room())]);
        match stls_verdict(&self.line) {
            StlsVerdict::Incomplete => Ok(None),
            StlsVerdict::Unusable { line_len: None, reason } => Err(reason),
            StlsVerdict::Proceed { line_len }
            | StlsVerdict::Refused { line_len }
            | StlsVerdict::Unusable { line_len: Some(line_len), .. } => {
                let rest = read[line_len - start..].to_vec();
                self.line.truncate(line_len);
                Ok(Some(StlsReply::Line { line: std::mem::take(&mut self.line), rest }))
            }
        }
    }

    /// The server closed: what it sent of a line, if anything.
    pub fn closed(self) -> StlsReply {
        StlsReply::Closed(self.line)
    }
}

/// Sends `STLS` and reads the reply line, at most [`MAX_STLS_REPLY`] bytes.
/// Reads straight from the socket (no buffered reader), so nothing after
/// the line can slip into the TLS handshake unseen.
pub async fn send_stls(tcp: &mut TcpStream, deadline: Duration) -> Result<StlsReply, String> {
    let exchange = async {
        tcp.write_all(b"STLS\r\n").await.map_err(|e| format!("writing STLS failed: {e}"))?;
        let mut reader = StlsReplyReader::default();
        let mut buf = vec![0u8; MAX_STLS_REPLY];
        loop {
            let room = reader.room();
            let n = tcp
                .read(&mut buf[..room])
                .await
                .map_err(|e| format!("reading the STLS reply failed: {e}"))?;
            if n == 0 {
                return Ok(reader.closed());
            }
            if let Some(reply) = reader.feed(&buf[..n])? {
                return Ok(reply);
            }
        }
    };
    timeout(deadline, exchange)
        .await
        .unwrap_or_else(|_| Err("server did not answer STLS in time".to_string()))
}

/// Throws away whatever the server has already sent that is waiting in the
/// socket, without waiting for more. Returns how many bytes went.
pub fn discard_pending(tcp: &TcpStream) -> usize {
    let mut buf = [0u8; 4096];
    let mut discarded = 0;
    loop {
        match tcp.try_read(&mut buf) {
            Ok(0) => return discarded,
            Ok(n) => discarded += n,
            Err(_) => return discarded,
        }
        if discarded > 1 << 20 {
            return discarded;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_and_rest(reply: StlsReply) -> (Vec<u8>, Vec<u8>) {
        match reply {
            StlsReply::Line { line, rest } => (line, rest),
            StlsReply::Closed(partial) => panic!("closed after {partial:?}"),
        }
    }

    #[test]
    fn stls_reply_line_across_reads_keeps_what_followed() {
        let mut r = StlsReplyReader::default();
        assert!(r.feed(b"+OK Be").unwrap().is_none());
        assert!(r.feed(b"gin TLS\r").unwrap().is_none());
        let (line, rest) = line_and_rest(r.feed(b"\nINJECTED\r\n").unwrap().unwrap());
        assert_eq!(line, b"+OK Begin TLS\r\n");
        assert_eq!(rest, b"INJECTED\r\n");
    }

    #[test]
    fn stls_reply_line_of_the_longest_length_and_one_byte_more() {
        let mut longest = vec![b'x'; MAX_STLS_REPLY - 1];
        longest.push(b'\n');
        let (line, rest) = line_and_rest(StlsReplyReader::default().feed(&longest).unwrap().unwrap());
        assert_eq!(line.len(), MAX_STLS_REPLY);
        assert!(rest.is_empty());

        // The LF one byte too far, in one read or byte by byte.
        let mut too_long = vec![b'x'; MAX_STLS_REPLY];
        too_long.push(b'\n');
        assert!(StlsReplyReader::default().feed(&too_long).is_err());
        let mut r = StlsReplyReader::default();
        let first_err = too_long.iter().position(|b| r.feed(std::slice::from_ref(b)).is_err());
        assert_eq!(first_err, Some(MAX_STLS_REPLY - 1));
    }

    #[test]
    fn stls_reply_cut_short_is_handed_back() {
        let mut r = StlsReplyReader::default();
        assert!(r.feed(b"-ERR no").unwrap().is_none());
        match r.closed() {
            StlsReply::Closed(partial) => assert_eq!(partial, b"-ERR no"),
            StlsReply::Line { .. } => panic!("a line without LF"),
        }
    }
}
