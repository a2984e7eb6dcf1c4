//! Names through DNS: `txt://` and `srv://` peers and host-name peers resolved through a DNS
//! server the test runs on loopback (the probe's resolver pointed at it, as `DNS_SERVERS` does),
//! the real in-process node behind them answering.

use std::net::IpAddr;
use std::time::Duration;

use easytier_probe::domain::{ErrorKind, ProbeResult};
use easytier_probe::probe::{probe, Resolver, Target};
use easytier_probe::testkit::{free_port, DnsServer};
use libtest_mimic::Trial;

use crate::common::{
    bin, node, output, peer_entry, stderr, stdout_json, stop_node, target, ServeProcess,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "dns::txt_srv_and_host_name_peers_are_up_through_a_server_on_loopback",
            up_through_dns,
        ),
        trial(
            "dns::each_way_a_name_fails_has_its_kind",
            each_failure_has_its_kind,
        ),
        trial(
            "dns::answers_are_kept_for_their_ttl_and_no_longer",
            answers_are_cached_for_their_ttl,
        ),
        trial(
            "dns::run_job_asks_the_servers_dns_servers_names",
            run_job_asks_dns_servers,
        ),
        trial(
            "api::an_up_nodes_version_and_host_name_are_in_api_nodes",
            node_info_in_the_api,
        ),
    ]
}

const TIMEOUT: Duration = Duration::from_secs(3);
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn named(protocol: &str, host: &str, port: u16) -> Target {
    Target {
        host: host.into(),
        ..target(protocol, port, "probe-net", "s3cret")
    }
}

/// `r` is up through exactly the URLs `want`, in that order, each of them up.
fn up_through(r: &ProbeResult, want: &[String]) {
    assert!(r.up, "{:?} {:?}", r.error_kind, r.error);
    let urls: Vec<&str> = r.candidates.iter().map(|c| c.url.as_str()).collect();
    assert_eq!(urls, want);
    assert!(r.candidates.iter().all(|c| c.up), "{:?}", r.candidates);
}

async fn up_through_dns() {
    let node = node("dns", "probe-net", "s3cret", &["tcp", "udp"]).await;
    let (tcp, udp) = (node.port("tcp"), node.port("udp"));
    let server = DnsServer::start().await.unwrap();
    let dns = Resolver::new(&[server.addr()]);
    server.address("node.example.test", LOOPBACK, 300);

    // A host-name peer: its A record.
    let r = probe(&named("tcp", "node.example.test", tcp), TIMEOUT, &dns).await;
    assert!(r.up, "{:?} {:?}", r.error_kind, r.error);
    assert!(server.queries("node.example.test") > 0);

    // txt: the URLs of the first TXT string, an address or a name each.
    let record = format!("tcp://127.0.0.1:{tcp} udp://node.example.test:{udp}");
    server.txt("peers.example.test", &record, 300);
    let r = probe(&named("txt", "peers.example.test", 0), TIMEOUT, &dns).await;
    up_through(
        &r,
        &[
            format!("tcp://127.0.0.1:{tcp}"),
            format!("udp://node.example.test:{udp}"),
        ],
    );

    // srv: _easytier._<scheme>.<domain>, lowest priority first; a port 0 is no peer.
    server.srv(
        "_easytier._udp.srv.example.test",
        20,
        udp,
        "node.example.test",
        300,
    );
    server.srv(
        "_easytier._tcp.srv.example.test",
        10,
        tcp,
        "node.example.test",
        300,
    );
    server.srv(
        "_easytier._ws.srv.example.test",
        5,
        0,
        "node.example.test",
        300,
    );
    let r = probe(&named("srv", "srv.example.test", 0), TIMEOUT, &dns).await;
    up_through(
        &r,
        &[
            format!("tcp://node.example.test:{tcp}"),
            format!("udp://node.example.test:{udp}"),
        ],
    );
    stop_node(node).await;

    // A name with only an AAAA record reaches a node on ::1.
    let v6 = tokio::task::spawn_blocking(|| {
        easytier_probe::testkit::LocalNode::start_ipv6("dns6", "probe-net", "s3cret", &["tcp"])
    })
    .await
    .unwrap()
    .unwrap();
    server.address("six.example.test", "::1".parse().unwrap(), 300);
    let r = probe(
        &named("tcp", "six.example.test", v6.port("tcp")),
        TIMEOUT,
        &dns,
    )
    .await;
    assert!(r.up, "AAAA: {:?} {:?}", r.error_kind, r.error);
    stop_node(v6).await;
}

async fn each_failure_has_its_kind() {
    let server = DnsServer::start().await.unwrap();
    let dns = Resolver::new(&[server.addr()]);
    let closed = free_port();
    server.txt("spf.example.test", "v=spf1 -all", 300);
    server.txt(
        "refused.example.test",
        &format!("tcp://127.0.0.1:{closed}"),
        300,
    );
    server.txt("loop.example.test", "txt://loop.example.test", 300);
    server.address("srvless.example.test", LOOPBACK, 300);
    server.silence("silent.example.test");
    let short = Duration::from_millis(800);
    let cases = [
        (
            "txt",
            "missing.example.test",
            ErrorKind::ResolveFailed,
            "TXT missing.example.test",
        ),
        (
            "txt",
            "spf.example.test",
            ErrorKind::ResolveFailed,
            "names no peer URL",
        ),
        (
            "txt",
            "silent.example.test",
            ErrorKind::ResolveFailed,
            "did not answer within",
        ),
        // The record answers, the URL it names does not.
        (
            "txt",
            "refused.example.test",
            ErrorKind::ConnectRefused,
            "no URL of the TXT record of refused.example.test answered",
        ),
        // A record naming another indirect peer: EasyTier does not follow that either.
        (
            "txt",
            "loop.example.test",
            ErrorKind::UnsupportedProtocol,
            "only tcp",
        ),
        (
            "srv",
            "srvless.example.test",
            ErrorKind::ResolveFailed,
            "none of them exists",
        ),
        (
            "srv",
            "silent.example.test",
            ErrorKind::ResolveFailed,
            "did not answer within",
        ),
        (
            "tcp",
            "missing.example.test",
            ErrorKind::Dns,
            "cannot resolve",
        ),
        ("tcp", "spf.example.test", ErrorKind::Dns, "cannot resolve"),
    ];
    for (protocol, host, kind, needle) in cases {
        let r = probe(&named(protocol, host, closed), short, &dns).await;
        let error = r.error.clone().unwrap_or_default();
        assert!(!r.up, "{protocol}://{host}");
        assert_eq!(r.error_kind, Some(kind), "{protocol}://{host}: {error}");
        assert!(error.contains(needle), "{protocol}://{host}: {error}");
    }
    // A dead server: a resolution failure within the timeout, never a peer timeout.
    let dead = Resolver::new(&[format!("127.0.0.1:{closed}").parse().unwrap()]);
    let r = probe(&named("txt", "peers.example.test", 0), short, &dead).await;
    assert_eq!(
        r.error_kind,
        Some(ErrorKind::ResolveFailed),
        "{:?}",
        r.error
    );
}

async fn answers_are_cached_for_their_ttl() {
    let server = DnsServer::start().await.unwrap();
    let dns = Resolver::new(&[server.addr()]);
    let closed = free_port();
    let url = format!("tcp://127.0.0.1:{closed}");
    server.txt("kept.example.test", &url, 300);
    server.txt("fresh.example.test", &url, 0);
    server.address("host.example.test", LOOPBACK, 300);

    for name in ["kept.example.test", "fresh.example.test"] {
        for _ in 0..3 {
            let r = probe(&named("txt", name, 0), TIMEOUT, &dns).await;
            assert_eq!(r.candidates.len(), 1, "{name}: {:?}", r.error);
        }
    }
    assert_eq!(
        server.queries("kept.example.test"),
        1,
        "TTL 300: asked once"
    );
    assert_eq!(
        server.queries("fresh.example.test"),
        3,
        "TTL 0: asked every time"
    );

    // Host names too, and across clones of the resolver (every job run shares one cache).
    let r = probe(&named("tcp", "host.example.test", closed), TIMEOUT, &dns).await;
    assert_eq!(
        r.error_kind,
        Some(ErrorKind::ConnectRefused),
        "{:?}",
        r.error
    );
    let first = server.queries("host.example.test");
    let clone = dns.clone();
    for _ in 0..3 {
        probe(&named("tcp", "host.example.test", closed), TIMEOUT, &clone).await;
    }
    assert_eq!(server.queries("host.example.test"), first);
}

/// The binary's sweep resolves through `DNS_SERVERS`: a peers file of a txt, an srv and a
/// host-name peer, all up through the test's server, the candidates kept in the store.
async fn run_job_asks_dns_servers() {
    let node = node("dns-job", "probe-net", "s3cret", &["tcp", "udp"]).await;
    let (tcp, udp) = (node.port("tcp"), node.port("udp"));
    let server = DnsServer::start().await.unwrap();
    server.address("node.example.test", LOOPBACK, 300);
    server.txt(
        "peers.example.test",
        &format!("udp://node.example.test:{udp}"),
        300,
    );
    server.srv(
        "_easytier._tcp.srv.example.test",
        1,
        tcp,
        "node.example.test",
        300,
    );
    let mut entries = Vec::new();
    for (id, protocol, host, port) in [
        (1, "txt", "peers.example.test", 0),
        (2, "srv", "srv.example.test", 0),
        (3, "tcp", "node.example.test", tcp),
    ] {
        let mut e = peer_entry(
            serde_json::json!(id),
            protocol,
            port,
            "probe-net",
            Some("s3cret"),
        );
        e["host"] = host.into();
        entries.push(e);
    }
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.json");
    std::fs::write(&peers, serde_json::Value::from(entries).to_string()).unwrap();
    for job in ["peer-fetch", "probe-sweep"] {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", dir.path().join("data"))
            .env("PEERS_FILE", &peers)
            .env("DNS_SERVERS", server.addr().to_string())
            .args(["run-job", job, "--json"]);
        let o = output(c).await;
        assert_eq!(o.status.code(), Some(0), "{job}: {}", stderr(&o));
        assert_eq!(stdout_json(&o)["outcome"], "ok", "{job}");
    }
    stop_node(node).await;

    let store = easytier_probe::store::Store::open(&dir.path().join("data"), "test").unwrap();
    let results = store.latest_results().unwrap();
    assert_eq!(results.len(), 3, "{results:?}");
    for (id, r) in &results {
        assert!(r.up, "peer {id}: {:?} {:?}", r.error_kind, r.error);
    }
    assert_eq!(
        results["1"].candidates[0].url,
        format!("udp://node.example.test:{udp}")
    );
    assert_eq!(
        results["2"].candidates[0].url,
        format!("tcp://node.example.test:{tcp}")
    );
    assert!(server.queries("peers.example.test") >= 1);
}

/// What a node said of itself after the handshake (its route sync) is in `/api/nodes` and
/// `/metrics` (`easytier_probe_node_info`), kept from the sweep that read it. A node sometimes
/// sends none to a new connection, so up to three sweeps are run.
async fn node_info_in_the_api() {
    let node = node("info-api", "probe-net", "s3cret", &["tcp"]).await;
    let entry = peer_entry(
        serde_json::json!(1),
        "tcp",
        node.port("tcp"),
        "probe-net",
        Some("s3cret"),
    );
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.json");
    std::fs::write(&peers, serde_json::json!([entry]).to_string()).unwrap();
    let command = |args: &[&str]| {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", dir.path().join("data"))
            .env("PEERS_FILE", &peers)
            .args(args);
        c
    };
    let fetched = output(command(&["run-job", "peer-fetch"])).await;
    assert_eq!(fetched.status.code(), Some(0));
    let (mut nodes, mut metrics) = (serde_json::Value::Null, serde_json::Value::Null);
    for _ in 0..3 {
        let swept = output(command(&["run-job", "probe-sweep"])).await;
        assert_eq!(swept.status.code(), Some(0));
        let mut serve = ServeProcess::start(command(&["serve", "--no-schedule"]), dir.path()).await;
        nodes = serve.get("/api/nodes").await.1;
        metrics = serve.get("/metrics").await.1;
        serve.terminate(Duration::from_secs(10)).await;
        if !nodes["data"]["items"][0]["version"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop_node(node).await;
    let item = &nodes["data"]["items"][0];
    assert_eq!(item["up"], true, "{nodes}");
    assert_eq!(item["version"], "2.0.3", "{nodes}");
    assert_eq!(item["hostname"], "info-api", "{nodes}");
    let metrics = metrics.as_str().unwrap_or_default();
    let series = r#"easytier_probe_node_info{id="1",version="2.0.3",hostname="info-api"} 1"#;
    assert!(metrics.lines().any(|l| l == series), "{metrics}");
}
