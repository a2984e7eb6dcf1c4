//! Verdicts against a current upstream core: EasyTier 2.6.4 (from the `easytier-pyo3` wheel, see
//! `testkit::upstream`) in a child process on loopback, with and without secure mode.

use std::time::Duration;

use easytier_probe::domain::{ErrorKind, ProbeResult};
use easytier_probe::probe::{Resolver, Target};
use easytier_probe::testkit::free_port;
use easytier_probe::testkit::upstream::{KeyPair, UpstreamConfig, UpstreamNode};
use libtest_mimic::Trial;

use crate::common::{bin, http, output, peer_entry, target, ServeProcess};
use crate::trial;

/// The protocols a 2.6 node listens on here without certificates (wss needs one).
const PROTOCOLS: [&str; 5] = ["tcp", "udp", "ws", "quic", "wg"];
const TIMEOUT: Duration = Duration::from_secs(3);

async fn probe(target: &Target) -> ProbeResult {
    easytier_probe::probe::probe(target, TIMEOUT, &Resolver::default()).await
}

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "upstream::a_2_6_node_is_judged_right_on_each_protocol",
            legacy_node,
        ),
        trial(
            "upstream::a_secure_mode_node_is_up_through_noise_with_its_key",
            secure_node,
        ),
        trial(
            "upstream::a_changed_node_key_is_flagged_until_an_operator_accepts_it",
            changed_key,
        ),
        trial(
            "upstream::a_node_that_leaves_secure_mode_is_up_again",
            leaves_secure_mode,
        ),
    ]
}

/// A node on a fresh port per protocol (`tcp`, `udp`, ...), in `network`.
fn start(network: &str, secure: Option<KeyPair>) -> (UpstreamNode, Vec<(&'static str, u16)>) {
    let ports: Vec<_> = PROTOCOLS.iter().map(|p| (*p, free_port())).collect();
    let config = UpstreamConfig {
        network_name: network.into(),
        network_secret: "s3cret".into(),
        hostname: format!("{network}-host"),
        listeners: ports
            .iter()
            .map(|(p, port)| format!("{p}://127.0.0.1:{port}"))
            .collect(),
        secure,
    };
    let node = UpstreamNode::start(&config).unwrap_or_else(|e| panic!("{e}"));
    (node, ports)
}

/// `r` is down with `kind`.
fn down_with(r: &ProbeResult, kind: ErrorKind, what: &str) {
    assert!(!r.up, "{what}: up");
    assert_eq!(r.error_kind, Some(kind), "{what}: {:?}", r.error);
}

/// What a wrong secret gets: a rejection, but over wg (whose keys derive from the secret) no
/// answer at all, and over udp against a legacy node a handshake answer and then silence.
fn wrong_secret_kind(protocol: &str, secure_node: bool) -> ErrorKind {
    match protocol {
        "wg" => ErrorKind::Timeout,
        "udp" if !secure_node => ErrorKind::Timeout,
        _ => ErrorKind::HandshakeRejected,
    }
}

async fn legacy_node() {
    let (_node, ports) = start("plain26", None);
    for (p, port) in ports {
        let own = target(p, port, "plain26", "s3cret");
        let r = probe(&own).await;
        assert!(r.up, "{p}: {:?} {:?}", r.error_kind, r.error);
        assert!(r.rtt_us.unwrap() > 0, "{p}");
        assert!(r.node_key.is_none(), "{p}: a legacy handshake has no key");
        // A 2.6 node's wg listener takes only its own network's keys (2.0.3 relays foreign ones).
        if p != "wg" {
            let r = probe(&target(p, port, "someone-else", "")).await;
            assert!(r.up, "{p} foreign: {:?} {:?}", r.error_kind, r.error);
        }
        let r = probe(&target(p, port, "plain26", "wrong")).await;
        down_with(
            &r,
            wrong_secret_kind(p, false),
            &format!("{p} wrong secret"),
        );
        // An entry that forces secure mode on a node without it is never up.
        let forced = Target {
            secure: Some(true),
            ..own.clone()
        };
        let r = probe(&forced).await;
        assert!(!r.up, "{p}: up through Noise on a node without secure mode");
    }
    let learnt = easytier_probe::probe::handshakes();
    assert!(
        !learnt.iter().any(|(key, _)| key.ends_with(" plain26")),
        "a legacy node is never learnt as secure: {learnt:?}"
    );
}

async fn secure_node() {
    let keys = KeyPair::generate();
    let (_node, ports) = start("secure26", Some(keys.clone()));
    for (p, port) in ports {
        let own = target(p, port, "secure26", "s3cret");
        // What every probe got before secure mode was known: the legacy handshake, rejected.
        let legacy = Target {
            secure: Some(false),
            ..own.clone()
        };
        let r = probe(&legacy).await;
        let silent = if matches!(p, "udp" | "wg") {
            ErrorKind::Timeout
        } else {
            ErrorKind::HandshakeRejected
        };
        down_with(&r, silent, &format!("{p} legacy only"));
        // Unknown mode: the legacy handshake is rejected, Noise is tried and learnt.
        let r = probe(&own).await;
        assert!(r.up, "{p}: {:?} {:?}", r.error_kind, r.error);
        assert!(r.rtt_us.unwrap() > 0, "{p}");
        assert_eq!(r.node_key, Some(keys.public_base64()), "{p}");
        let learnt = easytier_probe::probe::handshakes();
        assert!(
            learnt.contains(&(format!("127.0.0.1:{port} secure26"), "noise")),
            "{p}: {learnt:?}"
        );
        // Known now: straight to Noise, up again.
        let r = probe(&own).await;
        assert!(r.up, "{p} again: {:?} {:?}", r.error_kind, r.error);
        let r = probe(&target(p, port, "secure26", "wrong")).await;
        down_with(&r, wrong_secret_kind(p, true), &format!("{p} wrong secret"));
        if p != "wg" {
            // The node still relays foreign networks with the legacy handshake.
            let r = probe(&target(p, port, "someone-else", "")).await;
            assert!(r.up, "{p} foreign: {:?} {:?}", r.error_kind, r.error);
            assert!(r.node_key.is_none(), "{p} foreign");
        }
    }
}

const ADMIN: &str = "admin-token-Qw81";

/// A secure-mode node reinstalled with another key on the same address: the sweeps that
/// `run-job` runs (each a process of its own, the handshake learnt kept in the store) record
/// the first key, then flag the new one in `/api/nodes`, `/metrics` and on the status page,
/// until an operator accepts it.
async fn changed_key() {
    let port = free_port();
    let config = |keys: &KeyPair| UpstreamConfig {
        network_name: "keyed26".into(),
        network_secret: "s3cret".into(),
        hostname: "keyed26-host".into(),
        listeners: vec![format!("tcp://127.0.0.1:{port}")],
        secure: Some(keys.clone()),
    };
    let (first, second) = (KeyPair::generate(), KeyPair::generate());
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.json");
    let entry = peer_entry(serde_json::json!(7), "tcp", port, "keyed26", Some("s3cret"));
    std::fs::write(&peers, serde_json::json!([entry]).to_string()).unwrap();
    let command = |args: &[&str]| {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", dir.path().join("data"))
            .env("PEERS_FILE", &peers)
            .env("ADMIN_TOKEN", ADMIN)
            .args(args);
        c
    };
    let sweep = || async {
        let swept = output(command(&["run-job", "probe-sweep", "--json"])).await;
        assert_eq!(swept.status.code(), Some(0), "{swept:?}");
    };
    assert_eq!(
        output(command(&["run-job", "peer-fetch"]))
            .await
            .status
            .code(),
        Some(0)
    );

    let mut node = UpstreamNode::start(&config(&first)).unwrap_or_else(|e| panic!("{e}"));
    sweep().await;
    {
        let store = easytier_probe::store::Store::open(&dir.path().join("data"), "t").unwrap();
        let learnt = store.handshakes().unwrap();
        assert_eq!(
            learnt
                .get(&format!("127.0.0.1:{port} keyed26"))
                .map(String::as_str),
            Some("noise"),
            "{learnt:?}"
        );
    }
    node.stop();
    let _node = UpstreamNode::start(&config(&second)).unwrap_or_else(|e| panic!("{e}"));
    sweep().await;

    let serve = ServeProcess::start(command(&["serve", "--no-schedule"]), dir.path()).await;
    let (_, nodes) = serve.get("/api/nodes").await;
    let key = &nodes["data"]["items"][0]["node_key"];
    assert_eq!(nodes["data"]["items"][0]["up"], true, "{nodes}");
    assert_eq!(key["changed"], true, "{nodes}");
    assert_eq!(key["key"], second.public_base64(), "{nodes}");
    assert_eq!(key["accepted_key"], first.public_base64(), "{nodes}");
    assert!(key["changed_at"].is_string(), "{nodes}");
    let metric = |v: u8| format!("easytier_probe_peer_key_changed{{id=\"7\"}} {v}");
    let (_, metrics) = serve.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.lines().any(|l| l == metric(1)), "{metrics}");
    let (_, page) = serve.get("/").await;
    let page = page.as_str().unwrap_or_default().to_string();
    assert!(page.contains("class=\"keychanged\""), "{page}");

    let accept = format!("{}/api/nodes/7/key/accept", serve.base);
    let client = reqwest::Client::new();
    let (code, _) = http(client.post(&accept)).await;
    assert_eq!(code, 401, "accepting a key takes the admin token");
    let (code, _) = http(
        client
            .post(format!("{}/api/nodes/8/key/accept", serve.base))
            .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(code, 404, "no key is known for a peer never met");
    // The key the operator saw is not the one presented now: nothing is trusted.
    let saw = |key: String| serde_json::json!({ "key": key }).to_string();
    let stale = client
        .post(&accept)
        .bearer_auth(ADMIN)
        .body(saw(first.public_base64()));
    let (code, body) = http(stale).await;
    assert_eq!(code, 409, "{body}");
    let seen = client
        .post(&accept)
        .bearer_auth(ADMIN)
        .body(saw(second.public_base64()));
    let (code, accepted) = http(seen).await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(accepted["data"]["changed"], false, "{accepted}");
    assert_eq!(accepted["data"]["accepted_key"], second.public_base64());
    let (_, metrics) = serve.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.lines().any(|l| l == metric(0)), "{metrics}");
    let (_, page) = serve.get("/").await;
    let page = page.as_str().unwrap_or_default().to_string();
    assert!(!page.contains("class=\"keychanged\""), "{page}");

    // Accepted is kept: the next sweep meets the key trusted now.
    sweep().await;
    let (_, nodes) = serve.get("/api/nodes").await;
    assert_eq!(
        nodes["data"]["items"][0]["node_key"]["changed"], false,
        "{nodes}"
    );
}

/// A node learnt as secure that is restarted without secure mode on the same ports: the probe
/// goes to Noise first, gets no answer (over udp and wg none at all) and is up through the
/// legacy handshake in the same probe, which it learns again.
async fn leaves_secure_mode() {
    let ports: Vec<_> = ["tcp", "udp", "wg"].map(|p| (p, free_port())).into();
    let config = |secure: Option<KeyPair>| UpstreamConfig {
        network_name: "leaving26".into(),
        network_secret: "s3cret".into(),
        hostname: "leaving26-host".into(),
        listeners: ports
            .iter()
            .map(|(p, port)| format!("{p}://127.0.0.1:{port}"))
            .collect(),
        secure,
    };
    let learnt = |port: u16| {
        easytier_probe::probe::handshakes()
            .contains(&(format!("127.0.0.1:{port} leaving26"), "noise"))
    };
    let mut node =
        UpstreamNode::start(&config(Some(KeyPair::generate()))).unwrap_or_else(|e| panic!("{e}"));
    for (p, port) in &ports {
        let r = probe(&target(p, *port, "leaving26", "s3cret")).await;
        assert!(
            r.up && r.node_key.is_some(),
            "{p}: {:?} {:?}",
            r.error_kind,
            r.error
        );
        assert!(learnt(*port), "{p}");
    }
    node.stop();
    let _node = UpstreamNode::start(&config(None)).unwrap_or_else(|e| panic!("{e}"));
    for (p, port) in &ports {
        let r = probe(&target(p, *port, "leaving26", "s3cret")).await;
        assert!(
            r.up,
            "{p} after secure mode: {:?} {:?}",
            r.error_kind, r.error
        );
        assert!(r.node_key.is_none(), "{p}: a legacy handshake has no key");
        assert!(!learnt(*port), "{p}: still learnt as secure");
    }
}
