//! The load client and the TCP workload server of the benchmark's scenario 4
//! ("the bridge alone", `bench/run.mjs`): small and native, so that neither
//! end is the bottleneck and the figures are the relay's. The same client
//! drives the bridge (WebSocket, masked frames) and, for reference, plain
//! TCP and a bare TCP forwarder.
//!
//! ```text
//! relay_load serve
//!     TCP workload server on 127.0.0.1: prints {"port":N}, runs until stdin
//!     closes. The first byte of a connection picks its job, as in
//!     bench/workload-server.mjs: 'E' echo; 'D' + u64 BE n: send n bytes and
//!     stay open; 'U' + u64 BE n: read n bytes, then send 'K'.
//! relay_load download URL TARGET BYTES REPS   server → client MB/s per rep
//! relay_load upload   URL TARGET BYTES REPS   client → server MB/s per rep (64 KiB messages)
//! relay_load latency  URL TARGET N SIZE       echo round trips of SIZE bytes
//! relay_load tcp-latency PORT N SIZE          the same over plain TCP (the floor)
//! relay_load tcp-download PORT BYTES REPS     server → client over plain TCP
//! relay_load tcp-upload   PORT BYTES REPS     client → server over plain TCP (64 KiB writes)
//! relay_load forward PORT
//!     a bare TCP-to-TCP forwarder to 127.0.0.1:PORT (no WebSocket, no
//!     checks): prints {"port":N}, runs until stdin closes. The latency
//!     through it is the floor of any relay that opens its own TCP
//!     connection (two more loopback hops and two more process wake-ups).
//! ```
//!
//! TARGET is the workload port to name in the bridge's `connect` message,
//! or `-` for a WebSocket relay with a fixed target. The client is a
//! WebSocket client as a browser is: every frame it sends is masked, and it
//! offers the bridge's subprotocol only to the bridge. Each command prints
//! one JSON line. Everything runs on one thread (the client and the server
//! each use one core at most), and every wait has a deadline.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Bytes, Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig},
};

type Ws = WebSocketStream<TcpStream>;
type Res<T> = Result<T, Box<dyn std::error::Error>>;

const DEADLINE: Duration = Duration::from_secs(120);
const MSG: usize = 64 * 1024;

fn header(mode: u8, n: u64) -> Vec<u8> {
    let mut h = vec![mode];
    h.extend_from_slice(&n.to_be_bytes());
    h
}

async fn open(url: &str, target: Option<u16>) -> Res<Ws> {
    let mut request = url.into_client_request()?;
    if target.is_some() {
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("pop3-bridge.v1"));
    }
    let uri = request.uri().clone();
    let addr = format!("{}:{}", uri.host().unwrap_or("127.0.0.1"), uri.port_u16().unwrap_or(80));
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    // Large enough never to be the limit; no compression (none is offered).
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config)).await?;
    if let Some(port) = target {
        let connect = format!(r#"{{"type":"connect","v":1,"host":"127.0.0.1","port":{port},"tls":"none"}}"#);
        ws.send(Message::text(connect)).await?;
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""connected""#) => {}
            other => return Err(format!("bridge said {other:?}").into()),
        }
    }
    Ok(ws)
}

/// Reads binary payload until `n` bytes arrived; pings are answered by tungstenite.
async fn read_bytes(ws: &mut Ws, n: usize) -> Res<()> {
    let mut got = 0;
    while got < n {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => got += b.len(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            other => return Err(format!("after {got} of {n} bytes: {other:?}").into()),
        }
    }
    Ok(())
}

async fn download(url: &str, target: Option<u16>, n: u64) -> Res<f64> {
    let mut ws = open(url, target).await?;
    let t0 = Instant::now();
    ws.send(Message::binary(header(b'D', n))).await?;
    read_bytes(&mut ws, n as usize).await?;
    let s = t0.elapsed().as_secs_f64();
    drop(ws); // the server does not close by itself (see bench/workload-server.mjs)
    Ok(n as f64 / (1 << 20) as f64 / s)
}

async fn upload(url: &str, target: Option<u16>, n: u64) -> Res<f64> {
    let mut ws = open(url, target).await?;
    let chunk = Bytes::from(vec![0x62u8; MSG]);
    let t0 = Instant::now();
    ws.send(Message::binary(header(b'U', n))).await?;
    let mut sent = 0u64;
    while sent < n {
        let len = (n - sent).min(MSG as u64) as usize;
        // One masked frame per message, written as it is sent (no batching).
        ws.send(Message::Binary(chunk.slice(..len))).await?;
        sent += len as u64;
    }
    read_bytes(&mut ws, 1).await?;
    let s = t0.elapsed().as_secs_f64();
    drop(ws);
    Ok(n as f64 / (1 << 20) as f64 / s)
}

fn summary(mut us: Vec<f64>) -> String {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() as f64 * q) as usize).min(us.len() - 1)];
    let median =
        if us.len() % 2 == 1 { us[us.len() / 2] } else { (us[us.len() / 2 - 1] + us[us.len() / 2]) / 2.0 };
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    format!(
        r#"{{"n":{},"medianUs":{median:.3},"p99Us":{:.3},"p10Us":{:.3},"meanUs":{mean:.3},"minUs":{:.3}}}"#,
        us.len(),
        at(0.99),
        at(0.10),
        us[0]
    )
}

const WARM_UP: usize = 200;

async fn latency(url: &str, target: Option<u16>, n: usize, size: usize) -> Res<String> {
    let mut ws = open(url, target).await?;
    ws.send(Message::binary(b"E".to_vec())).await?;
    let msg = Bytes::from(vec![0x63u8; size]);
    let mut us = Vec::with_capacity(n);
    for i in 0..n + WARM_UP {
        let t0 = Instant::now();
        ws.send(Message::Binary(msg.clone())).await?;
        read_bytes(&mut ws, size).await?;
        if i >= WARM_UP {
            us.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(summary(us))
}

async fn tcp_latency(port: u16, n: usize, size: usize) -> Res<String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    tcp.write_all(b"E").await?;
    let msg = vec![0x63u8; size];
    let mut buf = vec![0u8; 64 * 1024];
    let mut us = Vec::with_capacity(n);
    for i in 0..n + WARM_UP {
        let t0 = Instant::now();
        tcp.write_all(&msg).await?;
        let mut got = 0;
        while got < size {
            match tcp.read(&mut buf).await? {
                0 => return Err("echo server closed".into()),
                k => got += k,
            }
        }
        if i >= WARM_UP {
            us.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(summary(us))
}

async fn tcp_download(port: u16, n: u64) -> Res<f64> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let mut buf = vec![0u8; 256 * 1024];
    let t0 = Instant::now();
    tcp.write_all(&header(b'D', n)).await?;
    let mut got = 0u64;
    while got < n {
        match tcp.read(&mut buf).await? {
            0 => return Err("server closed".into()),
            k => got += k as u64,
        }
    }
    Ok(n as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64())
}

async fn tcp_upload(port: u16, n: u64) -> Res<f64> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let chunk = vec![0x62u8; MSG];
    let t0 = Instant::now();
    tcp.write_all(&header(b'U', n)).await?;
    let mut sent = 0u64;
    while sent < n {
        let len = (n - sent).min(MSG as u64) as usize;
        tcp.write_all(&chunk[..len]).await?;
        sent += len as u64;
    }
    let mut ack = [0u8; 1];
    if tcp.read(&mut ack).await? == 0 {
        return Err("server closed before acknowledging".into());
    }
    Ok(n as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64())
}

async fn serve_one(mut tcp: TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    while head.is_empty() || (head[0] != b'E' && head.len() < 9) {
        match tcp.read(&mut buf).await? {
            0 => return Ok(()),
            k => head.extend_from_slice(&buf[..k]),
        }
    }
    match head[0] {
        b'E' => {
            tcp.write_all(&head[1..]).await?;
            loop {
                match tcp.read(&mut buf).await? {
                    0 => return Ok(()),
                    k => tcp.write_all(&buf[..k]).await?,
                }
            }
        }
        b'D' => {
            let mut left = u64::from_be_bytes(head[1..9].try_into().unwrap_or_default());
            let data = vec![0x61u8; 256 * 1024];
            while left > 0 {
                let k = left.min(data.len() as u64) as usize;
                tcp.write_all(&data[..k]).await?;
                left -= k as u64;
            }
            // Stay open until the client leaves (websockify would drop the tail).
            while tcp.read(&mut buf).await? > 0 {}
            Ok(())
        }
        b'U' => {
            let want = u64::from_be_bytes(head[1..9].try_into().unwrap_or_default());
            let mut got = (head.len() - 9) as u64;
            while got < want {
                match tcp.read(&mut buf).await? {
                    0 => return Ok(()),
                    k => got += k as u64,
                }
            }
            tcp.write_all(b"K").await?;
            while tcp.read(&mut buf).await? > 0 {}
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Listens on a free loopback port, prints it as `{"port":N}`, and hands
/// every connection to `handle` (a task each) until stdin closes.
async fn accept_until_stdin_closes<F, Fut>(handle: F) -> Res<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    println!(r#"{{"port":{}}}"#, listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _) = accepted?;
                tokio::spawn(handle(tcp));
            }
            read = stdin.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { return Ok(()) },
        }
    }
}

async fn serve() -> Res<()> {
    accept_until_stdin_closes(|tcp| async move {
        let _ = serve_one(tcp).await;
    })
    .await
}

async fn forward(to: u16) -> Res<()> {
    accept_until_stdin_closes(move |mut a| async move {
        let Ok(mut b) = TcpStream::connect(("127.0.0.1", to)).await else { return };
        let _ = (a.set_nodelay(true), b.set_nodelay(true));
        let _ = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, 256 << 10, 256 << 10).await;
    })
    .await
}

fn target(arg: &str) -> Res<Option<u16>> {
    Ok(if arg == "-" { None } else { Some(arg.parse()?) })
}

async fn main_inner(args: &[String]) -> Res<()> {
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or("missing argument (see the file's header)");
    match arg(1)? {
        "serve" => serve().await,
        "forward" => forward(arg(2)?.parse()?).await,
        cmd @ ("tcp-download" | "tcp-upload") => {
            let (port, n, reps) = (arg(2)?.parse()?, arg(3)?.parse::<u64>()?, arg(4)?.parse::<usize>()?);
            let mut out = Vec::new();
            for _ in 0..reps {
                let run = async {
                    if cmd == "tcp-download" {
                        tcp_download(port, n).await
                    } else {
                        tcp_upload(port, n).await
                    }
                };
                out.push(tokio::time::timeout(DEADLINE, run).await.map_err(|_| "timed out")??);
            }
            let list: Vec<String> = out.iter().map(|x| format!("{x:.3}")).collect();
            println!(r#"{{"mbps":[{}]}}"#, list.join(","));
            Ok(())
        }
        cmd @ ("download" | "upload") => {
            let (url, to, n, reps) =
                (arg(2)?, target(arg(3)?)?, arg(4)?.parse::<u64>()?, arg(5)?.parse::<usize>()?);
            let mut out = Vec::new();
            for _ in 0..reps {
                let run = async {
                    if cmd == "download" { download(url, to, n).await } else { upload(url, to, n).await }
                };
                out.push(tokio::time::timeout(DEADLINE, run).await.map_err(|_| "timed out")??);
            }
            let list: Vec<String> = out.iter().map(|x| format!("{x:.3}")).collect();
            println!(r#"{{"mbps":[{}]}}"#, list.join(","));
            Ok(())
        }
        "latency" => {
            let (url, to, n, size) = (arg(2)?, target(arg(3)?)?, arg(4)?.parse()?, arg(5)?.parse()?);
            let s = tokio::time::timeout(DEADLINE, latency(url, to, n, size))
                .await
                .map_err(|_| "timed out")??;
            println!("{s}");
            Ok(())
        }
        "tcp-latency" => {
            let (port, n, size) = (arg(2)?.parse()?, arg(3)?.parse()?, arg(4)?.parse()?);
            let s = tokio::time::timeout(DEADLINE, tcp_latency(port, n, size))
                .await
                .map_err(|_| "timed out")??;
            println!("{s}");
            Ok(())
        }
        other => Err(format!("unknown command {other}").into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(main_inner(&args)) {
        eprintln!("relay_load: {e}");
        std::process::exit(1);
    }
}
