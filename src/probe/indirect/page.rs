//! The page of an `http://` or `https://` peer: a GET (no redirects followed, `X-Network-Name:
//! <the peer's network>`) answers either a 3xx whose `Location` is the URL (a connector URL
//! itself, a `?url=` query, or `http://tcp://…`), or a 2xx body with one URL per line.

use reqwest::Url;

use super::{dedup, is_indirect};
use crate::domain::ErrorKind;
use crate::probe::{fail, Failure, Resolver, Target};

/// The most of an answer read; a longer body is cut there.
const MAX_BODY: usize = 64 * 1024;

/// The page's address for `target`.
pub(super) fn page_url(target: &Target) -> String {
    let address = crate::domain::peer::host_port(&target.host, target.port);
    format!("{}://{address}/", target.protocol)
}

/// Reads the target's page and the URLs it names, names resolved through `dns`.
pub(super) async fn urls(target: &Target, dns: &Resolver) -> Result<Vec<String>, Failure> {
    let page = &page_url(target);
    let resolve_failed = |detail: String| fail(ErrorKind::ResolveFailed, detail);
    let mut response = dns
        .http()?
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
    Ok(urls)
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
    super::from_text(body.lines())
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
                secure: None,
            }),
            "http://[::1]:8080/"
        );
    }
}
