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
