//! The built binary: the startup line on stdout, and a working server.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

#[tokio::test]
async fn binary_prints_the_bound_address_and_serves() {
    let (mut child, line) = start_reading_first_line(
        bin()
            .args(["--listen", "127.0.0.1:0", "--allow", "127.0.0.1:1110,1995"])
            .args(["--log-level", "warn"]),
    );
    let addr = line
        .trim_end()
        .strip_prefix("ws-bridge listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let port: u16 = addr.parse().unwrap();
    assert_ne!(port, 0);
    let response = common::http_get(([127, 0, 0, 1], port).into(), "/healthz", "").await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn binary_refuses_a_bad_allow_entry() {
    let out = Command::new(env!("CARGO_BIN_EXE_ws-bridge"))
        .args(["--listen", "127.0.0.1:0", "--allow", "::1:110"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ws-bridge"))
}

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let path = common::temp_path(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_prints_the_effective_settings_with_flags_over_env_over_file() {
    let secret = write_temp("secret", "super-secret-value-that-must-not-be-printed-0123\n");
    let file = write_temp(
        "bridge.toml",
        &format!(
            "listen = \"127.0.0.1:9000\"\nallow = [\"pop.example.com:995\"]\nmax_sessions = 5\n\
             max_sessions_per_ip = 3\nidle_timeout = \"11m\"\ntoken_secret_file = {:?}\n\
             global_connect_rate = 600\nheader_timeout = \"4s\"\ndns_server = [\"192.0.2.53\"]\n",
            secret.display().to_string()
        ),
    );
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&file)
        .args(["--max-sessions", "9", "--ipv6-prefix", "56", "--origin", "*"])
        .env("WS_BRIDGE_MAX_SESSIONS", "7")
        .env("WS_BRIDGE_MAX_SESSIONS_PER_IP", "4")
        .env("WS_BRIDGE_LOG_FORMAT", "json")
        .env("WS_BRIDGE_MAX_SESSIONS_PER_DEST", "17")
        .env("WS_BRIDGE_KEEPALIVE_TIMEOUT", "3s")
        .env("WS_BRIDGE_TOKEN_MAX_TTL", "2h")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "listen = \"127.0.0.1:9000\"",
        "allow = [\"pop.example.com:995\"]",
        "max_sessions = 9",
        "max_sessions_per_ip = 4",
        "idle_timeout = \"11m\"",
        "log_format = \"json\"",
        "# access tokens: required",
        "global_connect_rate = 600",
        "header_timeout = \"4s\"",
        "dns_server = [\"192.0.2.53\"]",
        "ipv6_prefix = 56",
        "origin = [\"*\"]",
        "max_sessions_per_dest = 17",
        "keepalive_timeout = \"3s\"",
        "token_max_ttl = \"2h\"",
        // defaults are printed too
        "max_connections = 1024",
        "max_connections_per_ip = 64",
        "max_destinations_per_ip = 10",
        "max_bytes_per_ip_hour = 1073741824",
        "global_connect_burst = 100",
        "max_header_size = 16384",
        "max_lookups = 256",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} missing in\n{stdout}");
    }
    assert!(!stdout.contains("super-secret-value"), "{stdout}");

    for bad in [
        "max_sessions = \"many\"\n",
        "no_such_key = 1\n",
        "allow = [\"::1:110\"]\n",
        "max_header_size = 4096\n",
        "ipv6_prefix = 129\n",
        "dns_server = [\"dns.example\"]\n",
        "max_sessions_per_dest = 0\n",
    ] {
        let file = write_temp("bad.toml", bad);
        let out = bin().args(["check-config", "--config"]).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(out.stdout.is_empty());
    }
    let out = bin().args(["check-config", "--token-secret-file", "/nonexistent"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn end_to_end_only_from_the_flag_the_variable_or_the_file() {
    let check = |args: &[&str], env: Option<&str>| {
        let mut command = bin();
        command.arg("check-config").args(args).env_remove("WS_BRIDGE_END_TO_END_ONLY");
        if let Some(value) = env {
            command.env("WS_BRIDGE_END_TO_END_ONLY", value);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().find(|l| l.starts_with("end_to_end_only = ")).unwrap().to_string()
    };
    let on = "end_to_end_only = true";
    let off = "end_to_end_only = false";
    let file = write_temp("e2e.toml", "end_to_end_only = true\n");
    let file = file.to_str().unwrap();
    assert_eq!(check(&[], None), off);
    assert_eq!(check(&["--end-to-end-only"], None), on);
    assert_eq!(check(&["--end-to-end-only=false"], Some("1")), off);
    assert_eq!(check(&[], Some("true")), on);
    assert_eq!(check(&["--config", file], None), on);
    assert_eq!(check(&["--config", file], Some("false")), off);
    let out = bin().args(["check-config", "--end-to-end-only=maybe"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Starts the binary with `args`; returns it and its port.
fn spawn_bridge(args: &[&str]) -> (std::process::Child, u16) {
    let (child, line) = start_reading_first_line(bin().args(args));
    (child, port_of(&line))
}

/// Starts `command` (stdout and stderr piped) and reads its first line.
fn start_reading_first_line(command: &mut Command) -> (std::process::Child, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line)
}

/// The port in `ws-bridge listening on ADDR:PORT`.
fn port_of(line: &str) -> u16 {
    line.trim_end().rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("{line:?}"))
}

/// Stops the binary with SIGTERM and returns everything it logged.
fn stop_bridge(child: std::process::Child) -> String {
    Command::new("kill").arg(child.id().to_string()).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "graceful exit on SIGTERM");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const PASSWORD: &str = "pa55-Word-never-logged";
const BODY: &str = "Body-text-never-logged";

/// A full session at trace level, through a server that receives a
/// password and sends a message: neither they nor the token may show up
/// in the logs, in either format, under a plain level, a span directive
/// (which enables every event inside a session, whoever emits it) or
/// directives naming the crates that log frame payloads.
#[tokio::test]
async fn trace_logs_of_a_full_session_hold_no_password_token_or_content() {
    use futures_util::SinkExt;
    use tokio::io::BufReader as TokioBufReader;
    use tokio_tungstenite::tungstenite::Message;

    let secret = write_temp("secret", "log-scan-secret-0123456789abcdef0123456789\n");
    for (format, filter) in [
        ("text", "trace"),
        ("json", "trace"),
        ("text", "info,[session]=trace"),
        ("json", "info,[session]=trace"),
        ("text", "trace,tungstenite=trace,tokio_tungstenite=trace,hyper=trace,rustls=trace,axum=trace"),
    ] {
        let (upstream_port, server) = common::scripted_upstream(|stream| async move {
            let mut s = TokioBufReader::new(stream);
            common::write(s.get_mut(), b"+OK ready\r\n").await;
            assert_eq!(common::read_line(&mut s).await, b"USER alice\r\n");
            common::write(s.get_mut(), b"+OK\r\n").await;
            assert_eq!(common::read_line(&mut s).await, format!("PASS {PASSWORD}\r\n").as_bytes());
            common::write(s.get_mut(), b"+OK logged in\r\n").await;
            assert_eq!(common::read_line(&mut s).await, b"RETR 1\r\n");
            let msg = format!("+OK\r\nSubject: {BODY}\r\n\r\n{BODY}\r\n.\r\n");
            common::write(s.get_mut(), msg.as_bytes()).await;
            assert_eq!(common::read_line(&mut s).await, b"QUIT\r\n");
            common::write(s.get_mut(), b"+OK bye\r\n").await;
        })
        .await;
        let token = mint_token(&secret, "127.0.0.1", upstream_port, &["--tls", "none", "--ttl", "5m"]);
        let allow = format!("127.0.0.1:{upstream_port}");
        let (child, port) = spawn_logging_bridge(&allow, &secret, filter, format, &[]);
        let bridge = common::Bridge::at(([127, 0, 0, 1], port).into());
        let mut ws = bridge.ws().await;
        common::send_json(
            &mut ws,
            serde_json::json!({"type":"connect","v":1,"host":"127.0.0.1","port":upstream_port,"tls":"none","token":token}),
        )
        .await;
        assert_eq!(common::next_json(&mut ws).await["type"], "connected");
        assert_eq!(common::next_binary(&mut ws).await, b"+OK ready\r\n");
        ws.send(Message::binary(&b"USER alice\r\n"[..])).await.unwrap();
        assert_eq!(common::next_binary(&mut ws).await, b"+OK\r\n");
        ws.send(Message::binary(format!("PASS {PASSWORD}\r\n").into_bytes())).await.unwrap();
        assert_eq!(common::next_binary(&mut ws).await, b"+OK logged in\r\n");
        ws.send(Message::binary(&b"RETR 1\r\n"[..])).await.unwrap();
        let want = format!("+OK\r\nSubject: {BODY}\r\n\r\n{BODY}\r\n.\r\n");
        let got = common::read_binary_exact(&mut ws, want.len()).await;
        assert_eq!(got, want.as_bytes());
        ws.send(Message::binary(&b"QUIT\r\n"[..])).await.unwrap();
        assert_eq!(common::next_binary(&mut ws).await, b"+OK bye\r\n");
        assert_eq!(common::expect_close(&mut ws).await.0, 1000);
        server.await.unwrap();
        drop(ws);

        let logs = stop_bridge(child);
        // The logs are not empty: the session and its summary are there.
        assert!(logs.contains("session closed"), "{logs}");
        assert!(logs.contains("bytes_up") && logs.contains("127.0.0.1"), "{logs}");
        assert_no_secrets(&logs, format, filter, &[&token]);
        if format == "json" {
            for line in logs.lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    }
}

/// The same for end-to-end sessions (wire v2) at trace level: one logs in
/// and reads a message over the client's own TLS through the bridge, one
/// sends a plaintext PASS before its ClientHello and is cut. The logs say
/// `e2e=true` and why the second ended, and hold neither password, the
/// message, nor the token.
#[tokio::test]
async fn trace_logs_of_end_to_end_sessions_hold_no_password_token_or_content() {
    use futures_util::SinkExt;
    use tokio::io::BufReader as TokioBufReader;
    use tokio_tungstenite::tungstenite::Message;

    let secret = write_temp("secret", "log-scan-secret-0123456789abcdef0123456789\n");
    let pki = common::TestPki::new(&["localhost"], (2035, 6, 1));
    for (format, filter) in [("text", "trace"), ("json", "trace"), ("text", "info,[session]=trace")] {
        let (upstream_port, server) = common::tls_upstream(&pki, |mut s| async move {
            common::write(s.get_mut(), b"+OK ready\r\n").await;
            assert_eq!(common::read_line(&mut s).await, b"USER alice\r\n");
            common::write(s.get_mut(), b"+OK\r\n").await;
            assert_eq!(common::read_line(&mut s).await, format!("PASS {PASSWORD}\r\n").as_bytes());
            common::write(s.get_mut(), format!("+OK\r\nSubject: {BODY}\r\n\r\n{BODY}\r\n.\r\n").as_bytes())
                .await;
            common::expect_quit_say_bye(&mut s).await;
        })
        .await;
        // The second session's server: it must see nothing.
        let (silent_port, recorded) = common::recording_upstream(b"").await;
        let mint = |port| mint_token(&secret, "localhost", port, &["--tls", "implicit", "--end-to-end"]);
        let (token, token2) = (mint(upstream_port), mint(silent_port));
        let allow = format!("localhost:{upstream_port},{silent_port}");
        let (child, port) = spawn_logging_bridge(&allow, &secret, filter, format, &["--end-to-end-only"]);
        let bridge = common::Bridge::at(([127, 0, 0, 1], port).into());
        let (ws, answer) = bridge.open_e2e("localhost", upstream_port, "implicit", Some(&token)).await;
        assert_eq!(answer["endToEnd"], true, "{answer}");
        let (stream, _pipe) = common::pipe(ws);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = TokioBufReader::new(pki.connector().connect(name, stream).await.unwrap());
        assert_eq!(common::read_line(&mut tls).await, b"+OK ready\r\n");
        common::write(tls.get_mut(), b"USER alice\r\n").await;
        assert_eq!(common::read_line(&mut tls).await, b"+OK\r\n");
        common::write(tls.get_mut(), format!("PASS {PASSWORD}\r\n").as_bytes()).await;
        assert_eq!(common::read_line(&mut tls).await, b"+OK\r\n");
        for line in [format!("Subject: {BODY}\r\n"), "\r\n".into(), format!("{BODY}\r\n"), ".\r\n".into()] {
            assert_eq!(common::read_line(&mut tls).await, line.as_bytes());
        }
        common::write(tls.get_mut(), b"QUIT\r\n").await;
        assert_eq!(common::read_line(&mut tls).await, b"+OK bye\r\n");
        server.await.unwrap();

        // A plaintext password before the ClientHello: cut, never logged.
        let (mut ws, _) = bridge.open_e2e("localhost", silent_port, "implicit", Some(&token2)).await;
        ws.send(Message::binary(format!("PASS {PASSWORD}\r\n").into_bytes())).await.unwrap();
        let message = common::expect_error(&mut ws, "PROTOCOL_ERROR", 4400).await;
        assert_eq!(message, "plaintext not allowed before TLS");
        assert_eq!(recorded.await.unwrap(), b"");
        drop((ws, tls));

        let logs = stop_bridge(child);
        assert!(logs.contains("session closed") && logs.contains("e2e"), "{logs}");
        assert!(logs.contains("a TLS handshake record"), "the reason is logged: {logs}");
        assert_no_secrets(&logs, format, filter, &[&token, &token2]);
    }
}

/// Mints a token with the binary (`args`: `--tls` and the rest).
fn mint_token(secret: &std::path::Path, host: &str, port: u16, args: &[&str]) -> String {
    let out = bin()
        .args(["token", "--host", host, "--port", &port.to_string()])
        .args(args)
        .arg("--token-secret-file")
        .arg(secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Starts the binary for a log scan: `allow`, tokens from `secret`
/// required, logs under `filter` in `format`, and `extra` flags.
fn spawn_logging_bridge(
    allow: &str,
    secret: &std::path::Path,
    filter: &str,
    format: &str,
    extra: &[&str],
) -> (std::process::Child, u16) {
    let secret = secret.display().to_string();
    let mut args = vec!["--listen", "127.0.0.1:0", "--allow", allow, "--token-secret-file", &secret];
    args.extend(["--log-level", filter, "--log-format", format]);
    args.extend(extra);
    spawn_bridge(&args)
}

/// The logs show trace or debug lines and none of the session's secrets:
/// the password, the message, the user name, the token secret, `tokens`.
fn assert_no_secrets(logs: &str, format: &str, filter: &str, tokens: &[&str]) {
    assert!(
        logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\"") || logs.contains("DEBUG"),
        "{logs}"
    );
    for secret in [PASSWORD, BODY, "alice", "log-scan-secret"].iter().chain(tokens) {
        assert!(!logs.contains(secret), "{format} logs under {filter:?} contain {secret:?}:\n{logs}");
    }
}

// ---- access tokens ------------------------------------------------------------

#[test]
fn token_binds_the_tls_mode_keeps_to_the_longest_lifetime_and_warns_about_an_open_secret_file() {
    use std::os::unix::fs::PermissionsExt;
    let secret = write_temp("secret", "token-cli-secret-0123456789abcdef0123456789\n");
    let mint = |extra: &[&str]| {
        bin()
            .args(["token", "--host", "pop.example.com", "--port", "995"])
            .arg("--token-secret-file")
            .arg(&secret)
            .args(extra)
            .output()
            .unwrap()
    };
    // --tls is required, and one of the three modes.
    assert_eq!(mint(&[]).status.code(), Some(2));
    assert_eq!(mint(&["--tls", "ssl"]).status.code(), Some(2));
    // The payload names the mode.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = mint(&["--tls", "implicit"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "no warning for a 0600 file: {}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let payload = token.trim().split('.').next().unwrap();
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let payload = String::from_utf8(payload).unwrap();
    assert!(payload.starts_with("2.") && payload.ends_with(".995.implicit.pop.example.com"), "{payload}");
    // --end-to-end: a token for end-to-end sessions, which need TLS.
    let out = mint(&["--tls", "starttls", "--end-to-end"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap());
    let payload = String::from_utf8(payload.unwrap()).unwrap();
    assert!(payload.ends_with(".995.e2e-starttls.pop.example.com"), "{payload}");
    let out = mint(&["--tls", "none", "--end-to-end"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--end-to-end needs --tls implicit or starttls"));
    // Longer than token_max_ttl (24 h, or the configured one): refused.
    let out = mint(&["--tls", "none", "--ttl", "25h"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token_max_ttl"));
    let config = write_temp("token.toml", "token_max_ttl = \"30d\"\n");
    let out = mint(&["--tls", "none", "--ttl", "25h", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A secret file others can read: minted, with a warning; check-config warns too.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = mint(&["--tls", "starttls"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin().args(["check-config", "--token-secret-file"]).arg(&secret).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("open to group or others"));
}

// ---- the demo ------------------------------------------------------------------

#[test]
fn the_demo_refuses_a_public_address_without_public_demo_and_writes_no_temporary_files() {
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/../web");
    let out = bin().args(["demo", "--listen", "0.0.0.0:0", "--web", web]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it did not start: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--public-demo") && stderr.contains("not a loopback address"), "{stderr}");

    // With the flag it starts; in a network namespace of its own, so that
    // nothing outside can reach it.
    let (mut child, line) = start_reading_first_line(
        Command::new("unshare")
            .args([
                "--net",
                env!("CARGO_BIN_EXE_ws-bridge"),
                "demo",
                "--listen",
                "0.0.0.0:0",
                "--public-demo",
            ])
            .args(["--web", web, "--log-level", "warn"]),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.starts_with("ws-bridge listening on 0.0.0.0:"), "{line:?}");

    // On loopback: the pages and /demo.json come from memory and the web
    // directory; no directory is made in /tmp for them.
    let temp_before = demo_temp_entries();
    let (child, port) =
        spawn_bridge(&["demo", "--listen", "127.0.0.1:0", "--web", web, "--log-level", "warn"]);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (json, index) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        (common::http_get(addr, "/demo.json", "").await, common::http_get(addr, "/", "").await)
    });
    let stderr = stop_bridge(child);
    assert!(json.starts_with("HTTP/1.1 200") && json.contains("\"password\":\"demo\""), "{json}\n{stderr}");
    assert!(index.starts_with("HTTP/1.1 200") && index.contains("content-security-policy"), "{index}");
    assert_eq!(demo_temp_entries(), temp_before);
}

/// Entries in the temporary directory that the old demo made (its name
/// was predictable: pid and port).
fn demo_temp_entries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("ws-bridge-demo"))
        .collect();
    names.sort();
    names
}

// ---- floods, measured on the process -------------------------------------------

/// Open file descriptors and resident memory (KiB) of process `pid`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    (fds, rss.trim().trim_end_matches("kB").trim().parse().unwrap())
}

#[tokio::test]
async fn unfinished_request_heads_from_one_client_cost_a_bounded_number_of_files_and_memory() {
    use tokio::io::AsyncWriteExt;
    let (child, port) = spawn_bridge(&["--listen", "127.0.0.1:0", "--log-level", "warn"]);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(common::http_get(addr, "/healthz", "").await.ends_with("ok"));
    let (fds_before, rss_before) = fds_and_rss(child.id());
    // The reported flood: 200 connections, each sending unfinished headers
    // (here just under max_header_size, so that they stay until the header
    // timeout), all from one address.
    let line = format!("X-Fill: {}\r\n", "a".repeat(1000));
    let mut held = Vec::new();
    for _ in 0..200 {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { continue };
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        for _ in 0..15 {
            if s.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
        held.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (fds, rss) = fds_and_rss(child.id());
    drop(held);
    let logs = stop_bridge(child);
    // max_connections_per_ip (64) connections are held; the rest were
    // refused at accept.
    assert!(fds <= fds_before + 64 + 4, "{fds_before} open files before, {fds} during the flood\n{logs}");
    assert!(rss <= rss_before + 16 * 1024, "{rss_before} KiB before, {rss} KiB during the flood");
    eprintln!("flood: {fds_before} -> {fds} open files, {rss_before} -> {rss} KiB");
}

#[test]
fn out_of_file_descriptors_the_bridge_backs_off_and_recovers() {
    // 48 descriptors in all: the connections below exhaust them.
    let (child, line) = start_reading_first_line(Command::new("sh").arg("-c").arg(format!(
        "ulimit -n 48 && exec {} --listen 127.0.0.1:0 --log-level warn --max-connections-per-ip 1000",
        env!("CARGO_BIN_EXE_ws-bridge")
    )));
    let port = port_of(&line);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let held: Vec<_> = (0..80).filter_map(|_| std::net::TcpStream::connect(addr).ok()).collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    drop(held);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut answer = String::new();
    for _ in 0..100 {
        answer = runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(2), common::http_get(addr, "/healthz", ""))
                .await
                .unwrap_or_default()
        });
        if answer.ends_with("ok") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let logs = stop_bridge(child);
    assert!(answer.ends_with("ok"), "the bridge serves again: {answer:?}\n{logs}");
    // Each failed accept waited twice as long as the one before.
    let waits: Vec<u64> = logs
        .lines()
        .filter(|l| l.contains("accept failed"))
        .filter_map(|l| l.split("retry_in_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(waits.len() >= 3, "{logs}");
    assert_eq!(&waits[..3], &[5, 10, 20], "{waits:?}");
    assert!(waits.iter().all(|w| *w <= 1000), "{waits:?}");
}
