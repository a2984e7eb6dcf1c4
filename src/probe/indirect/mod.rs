//! Indirect peer URLs, resolved as EasyTier resolves them, to the real peer URL(s):
//! - `http://` / `https://`: a page that names them ([`page`]);
//! - `txt://domain`: the first TXT record of the domain, URLs separated by spaces;
//! - `srv://domain`: the SRV records `_easytier._<scheme>.<domain>`, one name per scheme.
//!
//! EasyTier picks one of the URLs at random; the probe checks every one of them (up to
//! [`MAX_CANDIDATES`]) so the operator sees each, and the peer is up when one is.

mod page;

use std::time::Duration;

use chrono::Utc;
use reqwest::Url;

use super::{fail, Failure, Resolver, Target};
use crate::domain::peer::{INDIRECT_SCHEMES, SUPPORTED_PROTOCOLS};
use crate::domain::{Candidate, ErrorKind, ProbeResult};

/// URLs of one answer probed, at most; the rest are left out (and the detail says so).
pub const MAX_CANDIDATES: usize = 8;

pub fn is_indirect(protocol: &str) -> bool {
    INDIRECT_SCHEMES.contains(&protocol)
}

/// The longest URL taken from an answer; longer ones are not peer URLs.
const MAX_URL: usize = 512;

/// Probes an indirect peer: finds the URLs it names within `timeout`, then probes every one at
/// once, each within `timeout`. Up when a candidate is up, with the smallest RTT.
pub async fn probe(target: &Target, timeout: Duration, dns: &Resolver) -> ProbeResult {
    let checked_at = Utc::now();
    let urls = match tokio::time::timeout(timeout, urls(target, dns)).await {
        Ok(Ok(found)) => found,
        Ok(Err(f)) => return down(checked_at, f, Vec::new()),
        Err(_) => {
            return down(
                checked_at,
                fail(
                    ErrorKind::ResolveFailed,
                    format!("{} did not answer within {timeout:?}", source(target)),
                ),
                Vec::new(),
            )
        }
    };
    let left_out = urls.len().saturating_sub(MAX_CANDIDATES);
    let probes = urls.iter().take(MAX_CANDIDATES).map(|url| async move {
        let result = match candidate_target(url, target) {
            Ok(t) => Box::pin(super::probe(&t, timeout, dns)).await,
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
    judge(checked_at, candidates, left_out, &source(target))
}

/// Where an indirect peer's URLs are read from, as a person would name it.
fn source(target: &Target) -> String {
    match target.protocol.as_str() {
        "txt" => format!("the TXT record of {}", target.host),
        "srv" => format!("the SRV records _easytier._<scheme>.{}", target.host),
        _ => page::page_url(target),
    }
}

/// The URLs an indirect peer names (deduplicated, in its order).
async fn urls(target: &Target, dns: &Resolver) -> Result<Vec<String>, Failure> {
    match target.protocol.as_str() {
        "txt" => {
            let record = dns.txt(&target.host).await?;
            let urls = from_text(record.split_whitespace());
            if urls.is_empty() {
                return Err(fail(
                    ErrorKind::ResolveFailed,
                    format!(
                        "the TXT record of {} names no peer URL: {record:?}",
                        target.host
                    ),
                ));
            }
            Ok(urls)
        }
        "srv" => srv_urls(&target.host, dns).await,
        _ => page::urls(target, dns).await,
    }
}

/// The URLs of a domain's SRV records, every scheme asked at once, lowest priority first.
async fn srv_urls(domain: &str, dns: &Resolver) -> Result<Vec<String>, Failure> {
    super::dns::domain_name(domain)?;
    let asked = SUPPORTED_PROTOCOLS.map(|scheme| async move {
        let name = format!("_easytier._{scheme}.{domain}");
        (scheme, dns.srv(&name).await)
    });
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for (scheme, answer) in futures::future::join_all(asked).await {
        match answer {
            Ok(records) => found.extend(records.into_iter().filter(|(_, _, port)| *port != 0).map(
                |(priority, host, port)| {
                    let address = crate::domain::peer::host_port(&host, port);
                    (priority, format!("{scheme}://{address}"))
                },
            )),
            Err(f) => failures.push(f.detail),
        }
    }
    found.sort_by_key(|(priority, _)| *priority);
    let urls = from_text(found.iter().map(|(_, url)| url.as_str()));
    if urls.is_empty() {
        let why = if failures.is_empty() {
            "none of them exists".to_string()
        } else {
            failures.join("; ")
        };
        return Err(fail(
            ErrorKind::ResolveFailed,
            format!("no SRV record _easytier._<scheme>.{domain} names a peer: {why}"),
        ));
    }
    Ok(urls)
}

/// The peer URLs among `items`: what parses as a URL, each once.
fn from_text<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    dedup(
        items
            .map(str::trim)
            .filter_map(|item| Url::parse(item).ok())
            .map(|u| u.to_string())
            .collect(),
    )
}

/// The peer's verdict from its candidates', the URLs read from `source`.
fn judge(
    checked_at: chrono::DateTime<Utc>,
    candidates: Vec<Candidate>,
    left_out: usize,
    source: &str,
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
            node: None,
            node_key: None,
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
        fail(kind, format!("no URL of {source} answered: {detail}")),
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
        node: None,
        node_key: None,
    }
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
            "{url}: it names a {scheme:?} URL; only tcp, udp, ws, wss, quic and wg are probed"
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
        secure: of.secure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_needs_a_direct_scheme_a_host_and_a_port() {
        let of = Target {
            protocol: "http".into(),
            host: "h".into(),
            port: 80,
            network_name: "net".into(),
            network_secret: "s".into(),
            timeout: None,
            secure: None,
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
