//! The bridge's own addresses: a public address on one of the host's
//! interfaces passes the address check and is routed over loopback, so a
//! POP3 server on the bridge's host that is firewalled only from outside
//! would be reachable. The default rule denies the host's interface
//! addresses.
//!
//! The test runs in a network namespace of its own (made with unshare(2)
//! for one thread, which then runs everything: the namespace's interfaces,
//! the server, the bridge and the client), with a public-looking address
//! on a veth interface there. Needs root (CAP_SYS_ADMIN), as the test run has.

mod common;

use std::{process::Command, time::Duration};

use common::*;
use nix::sched::{CloneFlags, unshare};
use ws_bridge::Settings;

/// An address outside every denied range, as a host's public address is.
const OWN: &str = "11.22.33.44";

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("iproute2's ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

#[test]
fn the_hosts_own_public_address_is_denied_unless_allowed() {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET).expect("a network namespace (the tests run as root)");
        ip(&["link", "set", "lo", "up"]);
        ip(&["link", "add", "own0", "type", "veth", "peer", "name", "own1"]);
        ip(&["addr", "add", &format!("{OWN}/32"), "dev", "own0"]);
        ip(&["link", "set", "own0", "up"]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(scenario());
    })
    .join()
    .expect("the scenario passed");
}

async fn scenario() {
    assert!(ws_bridge::policy::judge_ip(OWN.parse().unwrap()).is_ok(), "{OWN} looks public");
    // A POP3 server on the host's public address.
    let listener = tokio::net::TcpListener::bind((OWN, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    let count = || accepted.load(std::sync::atomic::Ordering::SeqCst);

    // The default rule (on this port instead of 110/995): denied, no connection.
    let bridge = Bridge::start(Settings { default_ports: vec![port], ..Settings::default() }).await;
    let (mut ws, answer) = bridge.open_session(OWN, port, "none").await;
    assert_eq!(answer, serde_json::json!({"type":"error","code":"BRIDGE_REJECTED","message":"not allowed"}));
    assert_eq!(expect_close(&mut ws).await.0, 4403);
    let (mut ws, answer) = bridge.open_session(&format!("::ffff:{OWN}"), port, "none").await;
    assert_eq!(answer["code"], "BRIDGE_REJECTED");
    assert_eq!(expect_close(&mut ws).await.0, 4403);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(), 0, "the bridge connected to its own address");

    // An allowlist entry naming it on purpose: allowed.
    let bridge = Bridge::start(settings_allowing(&[format!("{OWN}:{port}")])).await;
    let _ws = bridge.connected_session(OWN, port, "none").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(), 1);
}
