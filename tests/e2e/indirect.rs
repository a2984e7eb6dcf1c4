//! Indirect peers (`http`): a page on loopback names the peer URLs, as EasyTier's http
//! connector reads them, and the real in-process node behind them answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use easytier_probe::domain::{ErrorKind, ProbeResult};
use easytier_probe::probe::{probe, Resolver};
use easytier_probe::testkit::free_port;
use libtest_mimic::Trial;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{node, stop_node, target};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "indirect::an_http_peer_is_up_through_the_urls_its_page_names",
            up_through_its_page,
        ),
        trial(
            "indirect::each_way_an_http_peer_fails_has_its_kind",
            each_failure_has_its_kind,
        ),
    ]
}

/// An HTTP server on loopback answering every request with `response` (a whole HTTP/1.1
/// answer; `None`: accepts and never answers). Returns its port and the `X-Network-Name`
/// headers it was sent.
async fn page(response: Option<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let names = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (response, names) = (response.clone(), names.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(name) = text.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("x-network-name")
                        .then(|| v.trim().to_string())
                }) {
                    names.lock().unwrap().push(name);
                }
                match response {
                    Some(r) => {
                        let _ = conn.write_all(r.as_bytes()).await;
                        let _ = conn.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (port, seen)
}

fn ok_body(body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

fn redirect(status: u16, location: Option<&str>) -> Option<String> {
    let location = location.map_or(String::new(), |l| format!("location: {l}\r\n"));
    Some(format!(
        "HTTP/1.1 {status} Moved\r\n{location}content-length: 0\r\nconnection: close\r\n\r\n"
    ))
}

async fn probe_page(port: u16, timeout: Duration) -> ProbeResult {
    probe(
        &target("http", port, "probe-net", "s3cret"),
        timeout,
        &Resolver::default(),
    )
    .await
}

async fn up_through_its_page() {
    let node = node("indirect", "probe-net", "s3cret", &["tcp", "udp"]).await;
    let (tcp, udp, closed) = (node.port("tcp"), node.port("udp"), free_port());
    let timeout = Duration::from_secs(3);

    // A body with one URL a line: every URL is probed, the peer is up through the live ones.
    let body =
        format!("tcp://127.0.0.1:{tcp}\n\nudp://127.0.0.1:{udp}\ntcp://127.0.0.1:{closed}\n");
    let (port, seen) = page(ok_body(&body)).await;
    let r = probe_page(port, timeout).await;
    assert!(r.up, "{:?} {:?}", r.error_kind, r.error);
    assert_eq!(seen.lock().unwrap().as_slice(), ["probe-net"]);
    let urls: Vec<&str> = r.candidates.iter().map(|c| c.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            format!("tcp://127.0.0.1:{tcp}"),
            format!("udp://127.0.0.1:{udp}"),
            format!("tcp://127.0.0.1:{closed}")
        ]
    );
    assert!(r.candidates[0].up && r.candidates[1].up);
    assert_eq!(r.candidates[2].error_kind, Some(ErrorKind::ConnectRefused));
    let fastest = r.candidates.iter().filter_map(|c| c.rtt_us).min();
    assert_eq!(r.rtt_us, fastest);

    // A redirect to the URL itself, and one with the URL in its query.
    for location in [
        format!("tcp://127.0.0.1:{tcp}"),
        format!("http://redirector.invalid/?url=tcp://127.0.0.1:{tcp}"),
        format!("http://tcp://127.0.0.1:{tcp}"),
    ] {
        let (port, _) = page(redirect(302, Some(&location))).await;
        let r = probe_page(port, timeout).await;
        assert!(r.up, "{location}: {:?} {:?}", r.error_kind, r.error);
        assert_eq!(r.candidates.len(), 1, "{location}");
        assert_eq!(r.candidates[0].url, format!("tcp://127.0.0.1:{tcp}"));
    }
    stop_node(node).await;
}

async fn each_failure_has_its_kind() {
    let closed = free_port();
    let short = Duration::from_millis(700);
    let cases: Vec<(Option<String>, ErrorKind, &str)> = vec![
        (
            Some("HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n".into()),
            ErrorKind::ResolveFailed,
            "answered 500",
        ),
        (
            ok_body("<html>no peer here</html>"),
            ErrorKind::ResolveFailed,
            "no peer URL in its body",
        ),
        (redirect(302, None), ErrorKind::ResolveFailed, "no Location"),
        (
            redirect(301, Some("http://example.invalid/elsewhere")),
            ErrorKind::ResolveFailed,
            "names no peer URL",
        ),
        // The page answers, the URL it names does not.
        (
            ok_body(&format!("tcp://127.0.0.1:{closed}")),
            ErrorKind::ConnectRefused,
            "/ answered: tcp://127.0.0.1:",
        ),
        // A page naming another page: EasyTier does not follow that either.
        (
            ok_body("http://127.0.0.1:1/"),
            ErrorKind::UnsupportedProtocol,
            "only tcp, udp, ws, wss, quic and wg",
        ),
        // A page that never answers: a resolution failure, not a peer timeout.
        (None, ErrorKind::ResolveFailed, "did not answer within"),
    ];
    for (response, kind, needle) in cases {
        let (port, _) = page(response.clone()).await;
        let r = probe_page(port, short).await;
        let error = r.error.clone().unwrap_or_default();
        assert!(!r.up, "{response:?}");
        assert_eq!(r.error_kind, Some(kind), "{response:?}: {error}");
        assert!(error.contains(needle), "{response:?}: {error}");
    }
    // No page at all.
    let r = probe_page(closed, short).await;
    assert_eq!(
        r.error_kind,
        Some(ErrorKind::ResolveFailed),
        "{:?}",
        r.error
    );
    assert!(r.error.unwrap().contains("fetching"));
}
