//! Indirect peer URLs, resolved as EasyTier resolves them: an `http://` or `https://` peer is a
//! page that names the real peer URL(s). A GET (no redirects followed, `X-Network-Name: <the
//! peer's network>`) answers either a 3xx whose `Location` is the URL (a connector URL itself,
//! a `?url=` query, or `http://tcp://…`), or a 2xx body with one URL per line.
//!
//! EasyTier picks one of the URLs at random; the probe checks every one of them (up to
//! [`MAX_CANDIDATES`]) so the operator sees each, and the peer is up when one is.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use reqwest::Url;

use super::{fail, Failure, Target};
use crate::domain::{Candidate, ErrorKind, ProbeResult};

/// The schemes that name a page of peer URLs rather than a peer.
pub const SCHEMES: [&str; 2] = ["http", "https"];
/// URLs of one answer probed, at most; the rest are left out (and the detail says so).
pub const MAX_CANDIDATES: usize = 8;
/// The most of an answer read; a longer body is cut there.
const MAX_BODY: usize = 64 * 1024;

pub fn is_indirect(protocol: &str) -> bool {
    SCHEMES.contains(&protocol)
}

/// The longest URL taken from a page; longer lines are not peer URLs.
const MAX_URL: usize = 512;

/// The client for discovery pages: no redirects followed (a 3xx is the answer), rustls.
fn client() -> Result<&'static reqwest::Client, Failure> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("easytier-probe/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| fail(ErrorKind::ResolveFailed, format!("no HTTP client: {e}")))
}

/// The page's address for `target`.
fn page_url(target: &Target) -> String {
    let address = crate::domain::peer::host_port(&target.host, target.port);
    format!("{}://{address}/", target.protocol)
}

/// Probes an indirect peer: reads its page within `timeout`, then probes every URL named
/// there at once, each within `timeout`. Up when a candidate is up, with the smallest RTT.
pub async fn probe(target: &Target, timeout: Duration) -> ProbeResult {
    let checked_at = Utc::now();
    let page = page_url(target);
    let (urls, left_out) = match tokio::time::timeout(timeout, resolve(&page, target)).await {
        Ok(Ok(found)) => found,
        Ok(Err(f)) => return down(checked_at, f, Vec::new()),
        Err(_) => {
            return down(
                checked_at,
                fail(
                    ErrorKind::ResolveFailed,
                    format!("{page} did not answer within {timeout:?}"),
                ),
                Vec::new(),
            )
        }
    };
    let probes = urls.iter().map(|url| async move {
        let result = match candidate_target(url, target) {
            Ok(t) => Box::pin(super::probe(&t, timeout)).await,
            Err(f) => down(Utc::now(), f, Vec::new()),
        };
        Candidate {
            url: url.clone(),
            up: result.up,
            rtt_us: result.rtt_us,
            error_kind: result.error_kind,
            error: result.error,
        }
    });
    let candidates = futures::future::join_all(probes).await;
    judge(checked_at, candidates, left_out)
}

/// The peer's verdict from its candidates'.
fn judge(
    checked_at: chrono::DateTime<Utc>,
    candidates: Vec<Candidate>,
    left_out: usize,
) -> ProbeResult {
    let best = candidates
        .iter()
        .filter(|c| c.up)
        .filter_map(|c| c.rtt_us)
        .min();
    if let Some(rtt_us) = best {
        return ProbeResult {
            up: true,
            rtt_us: Some(rtt_us),
            error_kind: None,
            error: None,
            checked_at,
            candidates,
        };
    }
    let mut detail = candidates
        .iter()
        .map(|c| format!("{}: {}", c.url, c.error.as_deref().unwrap_or("down")))
        .collect::<Vec<_>>()
        .join("; ");
    if left_out > 0 {
        detail.push_str(&format!(" ({left_out} more URLs not probed)"));
    }
    // The first failure that says something of a node, before "cannot speak that URL".
    let kinds = || candidates.iter().filter_map(|c| c.error_kind);
    let kind = kinds()
        .find(|k| *k != ErrorKind::UnsupportedProtocol)
        .or_else(|| kinds().next())
        .unwrap_or(ErrorKind::ResolveFailed);
    down(
        checked_at,
        fail(kind, format!("no URL of the page answered: {detail}")),
        candidates,
    )
}

fn down(checked_at: chrono::DateTime<Utc>, f: Failure, candidates: Vec<Candidate>) -> ProbeResult {
    ProbeResult {
        up: false,
        rtt_us: None,
        error_kind: Some(f.kind),
        error: Some(f.detail),
        checked_at,
        candidates,
    }
}

/// Reads the page and the URLs it names: (the first [`MAX_CANDIDATES`], how many more).
async fn resolve(page: &str, target: &Target) -> Result<(Vec<String>, usize), Failure> {
    let resolve_failed = |detail: String| fail(ErrorKind::ResolveFailed, detail);
    let mut response = client()?
        .get(page)
        .header("X-Network-Name", &target.network_name)
        .header(reqwest::header::CONNECTION, "close")
        .send()
        .await
        .map_err(|e| resolve_failed(format!("fetching {page}: {}", error_chain(&e))))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(resolve_failed(format!("reading {page}: {e}"))),
        }
    }
    if body.len() > MAX_BODY {
        // Cut mid-line, the last line could be a wrong URL (`:11010` cut to `:110`): drop it.
        body.truncate(MAX_BODY);
        let whole = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        body.truncate(whole);
    }
    let urls = match status {
        300..=399 => {
            let location = location.ok_or_else(|| {
                resolve_failed(format!("{page} answered {status} with no Location"))
            })?;
            from_redirect(&location).ok_or_else(|| {
                resolve_failed(format!(
                    "{page} redirected to {location:?}, which names no peer URL"
                ))
            })?
        }
        200..=299 => {
            let urls = from_body(&String::from_utf8_lossy(&body));
            if urls.is_empty() {
                return Err(resolve_failed(format!(
                    "{page} answered {status} with no peer URL in its body"
                )));
            }
            urls
        }
        _ => return Err(resolve_failed(format!("{page} answered {status}"))),
    };
    let left_out = urls.len().saturating_sub(MAX_CANDIDATES);
    Ok((urls.into_iter().take(MAX_CANDIDATES).collect(), left_out))
}

/// The URLs a redirect's `Location` names: itself when it is not http(s); else the URLs in
/// its query's values; else what follows its scheme (`http://tcp://…`).
fn from_redirect(location: &str) -> Option<Vec<String>> {
    let url = Url::parse(location).ok()?;
    if !is_indirect(url.scheme()) {
        return Some(vec![url.to_string()]);
    }
    let in_query: Vec<String> = url
        .query_pairs()
        .filter_map(|(_, v)| Url::parse(&v).ok())
        .map(|u| u.to_string())
        .collect();
    if !in_query.is_empty() {
        return Some(dedup(in_query));
    }
    let rest = location.strip_prefix(&format!("{}://", url.scheme()))?;
    Url::parse(rest).ok().map(|u| vec![u.to_string()])
}

/// The URLs of a body: one a line, blank lines and lines that are not URLs skipped.
fn from_body(body: &str) -> Vec<String> {
    dedup(
        body.lines()
            .map(str::trim)
            .filter_map(|line| Url::parse(line).ok())
            .map(|u| u.to_string())
            .collect(),
    )
}

fn dedup(mut urls: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    urls.retain(|u| u.len() <= MAX_URL && seen.insert(u.clone()));
    urls
}

/// The direct peer a candidate URL names, probed with the indirect peer's network.
fn candidate_target(url: &str, of: &Target) -> Result<Target, Failure> {
    let unsupported = |detail: String| fail(ErrorKind::UnsupportedProtocol, detail);
    let parsed = Url::parse(url).map_err(|e| unsupported(format!("{url}: {e}")))?;
    let scheme = parsed.scheme();
    if is_indirect(scheme) || !crate::domain::peer::is_supported(scheme) {
        return Err(unsupported(format!(
            "{url}: the page names a {scheme:?} URL; only tcp, udp, ws, wss, quic and wg are probed"
        )));
    }
    let host = match parsed.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        _ => return Err(unsupported(format!("{url}: no host"))),
    };
    let port = parsed.port_or_known_default().ok_or_else(|| {
        fail(
            ErrorKind::ResolveFailed,
            format!("{url}: no port (EasyTier needs one)"),
        )
    })?;
    Ok(Target {
        protocol: scheme.to_string(),
        host,
        port,
        network_name: of.network_name.clone(),
        network_secret: of.network_secret.clone(),
        timeout: of.timeout,
    })
}

/// An error with its sources, so "connection refused" is not hidden behind "error sending
/// request".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_and_bodies_name_urls_as_easytier_reads_them() {
        assert_eq!(
            from_redirect("tcp://10.0.0.1:11010").unwrap(),
            ["tcp://10.0.0.1:11010"]
        );
        assert_eq!(
            from_redirect("http://example.com/?url=udp://10.0.0.2:11010").unwrap(),
            ["udp://10.0.0.2:11010"]
        );
        assert_eq!(
            from_redirect("http://tcp://10.0.0.3:11010").unwrap(),
            ["tcp://10.0.0.3:11010"]
        );
        assert_eq!(from_redirect("http://example.com/nothing"), None);
        assert_eq!(from_redirect("not a url"), None);
        assert_eq!(
            from_body("\n tcp://a:1 \nnonsense\nudp://b:2\ntcp://a:1\n"),
            ["tcp://a:1", "udp://b:2"]
        );
        assert!(from_body("<html>no urls</html>").is_empty());
        let long = format!("tcp://{}.example:1", "a".repeat(600));
        assert!(from_body(&long).is_empty());
        assert_eq!(
            page_url(&Target {
                protocol: "http".into(),
                host: "::1".into(),
                port: 8080,
                network_name: String::new(),
                network_secret: String::new(),
                timeout: None,
            }),
            "http://[::1]:8080/"
        );
    }

    #[test]
    fn a_candidate_needs_a_direct_scheme_a_host_and_a_port() {
        let of = Target {
            protocol: "http".into(),
            host: "h".into(),
            port: 80,
            network_name: "net".into(),
            network_secret: "s".into(),
            timeout: None,
        };
        let t = candidate_target("wss://[::1]:443/x", &of).unwrap();
        assert_eq!(
            (t.protocol.as_str(), t.host.as_str(), t.port),
            ("wss", "::1", 443)
        );
        assert_eq!(t.network_name, "net");
        for (url, kind) in [
            ("http://other:80", ErrorKind::UnsupportedProtocol),
            ("faketcp://h:1", ErrorKind::UnsupportedProtocol),
            ("tcp://h", ErrorKind::ResolveFailed),
        ] {
            assert_eq!(candidate_target(url, &of).unwrap_err().kind, kind, "{url}");
        }
    }
}
