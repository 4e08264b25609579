//! The demo POP3 server's sockets: a plain port (STLS offered) and an
//! implicit-TLS port, each connection driving one [`Session`].

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use super::session::{Action, Session, Shared};

/// Longest command line (RFC 2449 allows 255 octets; SASL responses are longer).
const MAX_LINE: u64 = 8 * 1024;
/// RFC 1939 §3: an autologout timer of at least 10 minutes.
const IDLE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Plain POP3; STLS offered.
    Plain,
    /// TLS from the first byte (POP3S).
    Implicit,
}

/// Accepts connections until the task is dropped.
pub async fn run(listener: TcpListener, port: Port, shared: Arc<Shared>, acceptor: TlsAcceptor) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                debug!(error = %e, "demo accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            debug!(%peer, ?port, "demo POP3 connection");
            if let Err(e) = connection(tcp, port, shared, acceptor).await {
                debug!(%peer, error = %e, "demo POP3 connection ended");
            }
        });
    }
}

fn random() -> [u8; 18] {
    let mut bytes = [0u8; 18];
    // The ring provider's generator; it does not fail on a working OS.
    let _ = rustls::crypto::ring::default_provider().secure_random.fill(&mut bytes);
    bytes
}

async fn connection(
    tcp: TcpStream,
    port: Port,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
) -> std::io::Result<()> {
    match port {
        Port::Implicit => {
            let mut tls = tokio::time::timeout(IDLE, acceptor.accept(tcp)).await??;
            let (mut session, greeting) = Session::new(shared, true, &random());
            tls.write_all(&greeting).await?;
            drive(&mut tls, &mut session).await?;
            tls.shutdown().await
        }
        Port::Plain => {
            let mut tcp = tcp;
            let (mut session, greeting) = Session::new(shared, false, &random());
            tcp.write_all(&greeting).await?;
            if drive(&mut tcp, &mut session).await? == Action::StartTls {
                let mut tls = tokio::time::timeout(IDLE, acceptor.accept(tcp)).await??;
                session.tls_started();
                info!("demo POP3 session upgraded with STLS");
                drive(&mut tls, &mut session).await?;
                tls.shutdown().await?;
            }
            Ok(())
        }
    }
}

/// Reads lines and writes replies until the session closes, the peer goes
/// away, or STLS asks for a handshake (then returns `StartTls`; bytes the
/// client pipelined after STLS are dropped with the read buffer).
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    session: &mut Session,
) -> std::io::Result<Action> {
    let (read, write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::with_capacity(64 * 1024, write);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = tokio::time::timeout(IDLE, (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)).await;
        let n = match n {
            Ok(n) => n?,
            Err(_) => {
                writer.write_all(b"-ERR Autologout; idle for too long\r\n").await?;
                writer.flush().await?;
                return Ok(Action::Close);
            }
        };
        if n == 0 {
            return Ok(Action::Close);
        }
        if !line.ends_with(b"\n") {
            writer.write_all(b"-ERR Line too long\r\n").await?;
            writer.flush().await?;
            return Ok(Action::Close);
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let reply = session.handle(text);
        writer.write_all(&reply.bytes).await?;
        // Pipelined commands: answer them all, flush once the client waits.
        if reply.action != Action::Continue || reader.buffer().is_empty() {
            writer.flush().await?;
        }
        if reply.action != Action::Continue {
            return Ok(reply.action);
        }
    }
}
