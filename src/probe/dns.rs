//! Host names to addresses for the probe: names that cannot be valid fail as `dns` before any
//! query is sent.

use std::net::{IpAddr, SocketAddr};

use super::{fail, Failure};
use crate::domain::ErrorKind;

/// Resolves the host, refusing names that cannot be valid before any query is sent.
pub(super) async fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    // An IPv6 literal may come bracketed, as in a URL.
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Ok(ip) = bare.unwrap_or(host).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    validate_host_name(host)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| fail(ErrorKind::Dns, format!("cannot resolve {host:?}: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| fail(ErrorKind::Dns, format!("{host:?} has no address")))
}

fn validate_host_name(host: &str) -> Result<(), Failure> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err(fail(
            ErrorKind::Dns,
            format!(
                "host name of {} characters is not valid (1..=253)",
                name.len()
            ),
        ));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(fail(
                ErrorKind::Dns,
                "host name has an empty label or one over 63 characters",
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(
                ErrorKind::Dns,
                format!("host name {host:?} has characters a DNS name cannot have"),
            ));
        }
    }
    Ok(())
}
