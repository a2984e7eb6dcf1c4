//! The node page and the badges through a real server over a real store (in a temp dir).

use chrono::Utc;
use serde_json::Value;

use super::tests::serve;
use crate::domain::{ErrorKind, ListSource, Peer, PeerList, ProbeResult, SweepSummary};
use crate::runner::Runner;

const HOSTILE: &str = "<script>alert(\"x\")</script> & 'co'";

/// Peers `ok` (always up), `b/ad 1` (a hostile name, down with connect_refused on the last
/// three of six sweeps) and `idle` (never checked), behind a served API.
async fn fixture(dir: &std::path::Path) -> std::net::SocketAddr {
    let ctx = crate::jobs::test_context(dir, Default::default());
    let store = ctx.store.clone();
    let now = Utc::now();
    let bad = Peer {
        name: HOSTILE.into(),
        ..Peer::for_tests("b/ad 1")
    };
    store
        .replace_peer_list(&PeerList {
            fetched_at: now,
            source: ListSource::File,
            peers: vec![Peer::for_tests("ok"), bad, Peer::for_tests("idle")],
        })
        .unwrap();
    for i in 0..6i64 {
        let at = now - chrono::Duration::minutes(6 - i);
        let check = |up: bool| ProbeResult {
            up,
            rtt_us: up.then_some(1000 + 200 * i as u64),
            error_kind: (!up).then_some(ErrorKind::ConnectRefused),
            error: (!up).then(|| "refused <b>".to_string()),
            checked_at: at,
            candidates: Vec::new(),
            node: None,
            node_key: None,
        };
        let results = vec![
            ("ok".to_string(), check(true)),
            ("b/ad 1".to_string(), check(i < 3)),
        ];
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        store.record_sweep(&results, &summary).unwrap();
    }
    serve(Runner::new(ctx)).await
}

async fn get(addr: std::net::SocketAddr, path: &str) -> reqwest::Response {
    reqwest::get(format!("http://{addr}{path}")).await.unwrap()
}

#[tokio::test]
async fn a_node_page_shows_chart_uptimes_and_errors_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let addr = fixture(dir.path()).await;

    let r = get(addr, "/nodes/ok").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    // The 24h chart by default, its line through at least one point per minute's hour.
    assert!(page.contains("aria-current=\"page\">24h"), "{page}");
    assert!(page.contains("<svg class=\"chart\""), "{page}");
    assert!(page.contains("<circle "), "{page}");
    assert_eq!(page.matches("<svg class=\"uptime\"").count(), 4);
    assert!(page.contains("1h · <b>100.00 %</b>"), "{page}");
    assert!(page.contains("No down check among the raw checks kept (the last 1h 0m)"));
    assert!(page.contains("/api/nodes/ok/badge.svg"));

    // Over the last hour: one point per minute, the six sweeps' minutes joined by one line.
    let hour = get(addr, "/nodes/ok?window=1h").await.text().await.unwrap();
    assert!(hour.contains("aria-current=\"page\">1h"));
    let line = hour
        .split("<polyline class=\"rtt\" points=\"")
        .nth(1)
        .unwrap();
    let points = line[..line.find('"').unwrap()].split(' ').count();
    assert!((6..=7).contains(&points), "{points} points: {line}");
    // A window the page does not know shows the default.
    let odd = get(addr, "/nodes/ok?window=2h").await.text().await.unwrap();
    assert!(odd.contains("aria-current=\"page\">24h"));

    let r = get(addr, "/nodes/b%2Fad%201").await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        !page.contains("<script") && !page.contains("refused <b>"),
        "{page}"
    );
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;"));
    assert!(page.contains("down · connect_refused"));
    assert_eq!(
        page.matches("<td class=\"down\">connect_refused</td>")
            .count(),
        3
    );
    assert!(page.contains("refused &lt;b&gt;"));
    assert!(
        page.contains("<rect class=\"downs\""),
        "down steps are marked on the chart"
    );

    // The status page links each node to its page.
    let index = get(addr, "/").await.text().await.unwrap();
    assert!(
        index.contains("<a href=\"/nodes/b%2Fad%201\">&lt;script&gt;"),
        "{index}"
    );
    assert!(index.contains("<a href=\"/nodes/ok\">"));
}

#[tokio::test]
async fn an_unknown_node_is_an_html_404_with_the_id_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let addr = fixture(dir.path()).await;
    let r = get(addr, "/nodes/%3Cb%3Enope").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("No such node") && page.contains("&lt;b&gt;nope"));
    assert!(!page.contains("<b>nope"));
}

/// The badge's text: the label and the value, from its title.
fn badge_text(svg: &str) -> String {
    let title = svg.split("<title>").nth(1).unwrap();
    title[..title.find("</title>").unwrap()].to_string()
}

#[tokio::test]
async fn badges_say_state_and_uptime_in_colour() {
    let dir = tempfile::tempdir().unwrap();
    let addr = fixture(dir.path()).await;
    let badge = |path: &'static str| async move {
        let r = get(addr, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "image/svg+xml");
        assert_eq!(r.headers()["cache-control"], "public, max-age=30");
        r.text().await.unwrap()
    };
    let svg = badge("/api/nodes/ok/badge.svg").await;
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(badge_text(&svg), "status: up");
    assert!(svg.contains("fill=\"#4c1\""));
    let svg = badge("/api/nodes/b%2Fad%201/badge.svg?kind=status").await;
    assert_eq!(badge_text(&svg), "status: down");
    assert!(svg.contains("fill=\"#e05d44\""));
    let svg = badge("/api/nodes/idle/badge.svg").await;
    assert_eq!(badge_text(&svg), "status: unknown");

    let svg = badge("/api/nodes/ok/badge.svg?kind=uptime").await;
    assert_eq!(badge_text(&svg), "uptime 24h: 100%");
    // 3 of 6 up: 50 %, red.
    let svg = badge("/api/nodes/b%2Fad%201/badge.svg?kind=uptime&window=1h").await;
    assert_eq!(badge_text(&svg), "uptime 1h: 50.00%");
    assert!(svg.contains("fill=\"#e05d44\""));
    let svg = badge("/api/nodes/idle/badge.svg?kind=uptime&window=30d").await;
    assert_eq!(badge_text(&svg), "uptime 30d: no data");
    assert!(svg.contains("fill=\"#9f9f9f\""));
}

#[tokio::test]
async fn a_badge_of_an_unknown_node_is_404_and_bad_values_400_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let addr = fixture(dir.path()).await;
    let json = |path: &'static str| async move {
        let r = get(addr, path).await;
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (status, body) = json("/api/nodes/nope/badge.svg").await;
    assert_eq!((status, &body["code"]), (404, &Value::from(404)));
    let (status, body) = json("/api/nodes/ok/badge.svg?kind=ping").await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("status, uptime"),
        "{body}"
    );
    let (status, body) = json("/api/nodes/ok/badge.svg?kind=uptime&window=2h").await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("1h, 24h, 7d, 30d"),
        "{body}"
    );
}
