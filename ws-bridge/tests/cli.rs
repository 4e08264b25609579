//! The built binary: the startup line on stdout, and a working server.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

#[tokio::test]
async fn binary_prints_the_bound_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ws-bridge"))
        .args(["--listen", "127.0.0.1:0", "--allow", "127.0.0.1:1110,1995"])
        .args(["--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
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
             max_sessions_per_ip = 3\nidle_timeout = \"11m\"\ntoken_secret_file = {:?}\n",
            secret.display().to_string()
        ),
    );
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&file)
        .args(["--max-sessions", "9"])
        .env("WS_BRIDGE_MAX_SESSIONS", "7")
        .env("WS_BRIDGE_MAX_SESSIONS_PER_IP", "4")
        .env("WS_BRIDGE_LOG_FORMAT", "json")
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
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} missing in\n{stdout}");
    }
    assert!(!stdout.contains("super-secret-value"), "{stdout}");

    for bad in ["max_sessions = \"many\"\n", "no_such_key = 1\n", "allow = [\"::1:110\"]\n"] {
        let file = write_temp("bad.toml", bad);
        let out = bin().args(["check-config", "--config"]).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(out.stdout.is_empty());
    }
    let out = bin().args(["check-config", "--token-secret-file", "/nonexistent"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Starts the binary with `args`; returns it and its port.
fn spawn_bridge(args: &[&str]) -> (std::process::Child, u16) {
    let mut child = bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim_end().rsplit(':').next().unwrap().parse().unwrap();
    (child, port)
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
        let token = {
            let out = bin()
                .args(["token", "--host", "127.0.0.1", "--port", &upstream_port.to_string(), "--tls", "none"])
                .args(["--ttl", "5m"])
                .arg("--token-secret-file")
                .arg(&secret)
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let allow = format!("127.0.0.1:{upstream_port}");
        let secret_arg = secret.display().to_string();
        let (child, port) = spawn_bridge(&[
            "--listen",
            "127.0.0.1:0",
            "--allow",
            &allow,
            "--token-secret-file",
            &secret_arg,
            "--log-level",
            filter,
            "--log-format",
            format,
        ]);
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
        assert!(
            logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\"") || logs.contains("DEBUG"),
            "{logs}"
        );
        for secret in [PASSWORD, BODY, token.as_str(), "alice", "log-scan-secret"] {
            assert!(!logs.contains(secret), "{format} logs under {filter:?} contain {secret:?}:\n{logs}");
        }
        if format == "json" {
            for line in logs.lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    }
}
