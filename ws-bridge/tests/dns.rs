//! Name resolution against a name server that never answers (a zone whose
//! servers are down or drop queries): lookups hold no thread, stop by
//! themselves, and only `max_lookups` run at once. One test in this file,
//! so that no other test's threads blur the thread count.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::net::{TcpListener, UdpSocket};
use ws_bridge::dns::Dns;

/// The query name of a DNS message (no compression in questions).
fn query_name(packet: &[u8]) -> Option<String> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(at)?);
        if len == 0 {
            return Some(labels.join("."));
        }
        labels.push(String::from_utf8_lossy(packet.get(at + 1..at + 1 + len)?).into_owned());
        at += 1 + len;
    }
}

/// A name server on 127.0.0.1 that takes every query (UDP and TCP) and
/// never answers; the names it was asked for.
async fn black_hole() -> (SocketAddr, Arc<Mutex<HashSet<String>>>) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let names = Arc::new(Mutex::new(HashSet::new()));
    let seen = names.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = udp.recv_from(&mut buf).await {
            if let Some(name) = query_name(&buf[..n]) {
                seen.lock().unwrap().insert(name);
            }
        }
    });
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = tcp.accept().await {
            held.push(stream);
        }
    });
    (addr, names)
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_nobody_answers_hold_no_thread_stop_by_themselves_and_are_capped() {
    let (server, asked) = black_hole().await;
    let (dns, warning) = Dns::new(&[server], Duration::from_secs(20), 4).unwrap();
    assert!(warning.is_none());
    let before = threads();
    // Sixty names in a dead zone at once (the system resolver took one
    // blocking thread each, for its whole retry time).
    let lookups: Vec<_> = (0..60)
        .map(|i| {
            let dns = dns.clone();
            tokio::spawn(async move { dns.lookup(&format!("n{i}.dead-zone.test"), 110).await })
        })
        .collect();
    let mut waited = 0;
    while asked.lock().unwrap().len() < 4 {
        assert!(waited < 100, "the name server was asked {:?}", asked.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dns.in_flight(), 4, "max_lookups run, the rest wait");
    assert_eq!(asked.lock().unwrap().len(), 4, "only max_lookups names reached the server");
    let during = threads();
    assert!(during <= before + 2, "{before} threads before, {during} with 60 lookups waiting");
    for lookup in &lookups {
        lookup.abort();
    }
    for lookup in lookups {
        let _ = lookup.await;
    }
    assert_eq!(dns.in_flight(), 0, "abandoned lookups give their place back");

    // Without any deadline of the caller's, a lookup ends by itself within
    // the resolver's own (two tries of half the resolve timeout).
    let (dns, _) = Dns::new(&[server], Duration::from_millis(600), 4).unwrap();
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), dns.lookup("alone.dead-zone.test", 995))
        .await
        .expect("hickory gave up by itself");
    assert!(result.is_err(), "{result:?}");
    assert!(asked.lock().unwrap().contains("alone.dead-zone.test"));
    eprintln!("an unanswered lookup gave up after {:?}", started.elapsed());
}
