//! Host names to addresses, and the TXT and SRV records of indirect peers, through one caching
//! resolver (hickory): answers are kept for their TTL, so a sweep of many peers on one name,
//! and the next sweep within the TTL, send no query. `DNS_SERVERS` pins the servers; otherwise
//! `/etc/resolv.conf` names them (and `/etc/hosts` is read first). Names that cannot be valid
//! fail as `dns` before any query is sent.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::{fail, Failure};
use crate::domain::ErrorKind;

/// One query's wait for a server's answer, before the next attempt or server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The probe's resolver: cheap to clone, one cache for every clone.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: no servers could be read from the system; addresses come from the C library.
    dns: Option<TokioResolver>,
    /// Why there is no `dns`.
    no_dns: String,
    /// The client for discovery pages, built on first use over this resolver.
    http: OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("caching", &self.inner.dns.is_some())
            .finish()
    }
}

impl Default for Resolver {
    /// The system's servers.
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Resolver {
    /// A resolver asking `servers` (each over UDP, then TCP for long answers); none: the
    /// system's, from `/etc/resolv.conf`.
    pub fn new(servers: &[SocketAddr]) -> Self {
        let built = if servers.is_empty() {
            TokioResolver::builder_tokio()
        } else {
            let name_servers = servers.iter().map(|s| name_server(*s)).collect();
            Ok(TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            ))
        };
        let built = built.and_then(|mut b| {
            let opts: &mut ResolverOpts = b.options_mut();
            opts.timeout = QUERY_TIMEOUT;
            opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            b.build()
        });
        let (dns, no_dns) = match built {
            Ok(r) => (Some(r), String::new()),
            Err(e) => {
                let why = format!("no DNS servers could be read from the system ({e})");
                tracing::warn!("{why}: host names resolve through the C library; TXT and SRV peers cannot be resolved (set DNS_SERVERS)");
                (None, why)
            }
        };
        Self {
            inner: Arc::new(Inner {
                dns,
                no_dns,
                http: OnceLock::new(),
            }),
        }
    }

    /// The host's address for `port` (an IPv4 one when it has both), refusing names that cannot
    /// be valid before any query is sent.
    pub(super) async fn addr(&self, host: &str, port: u16) -> Result<SocketAddr, Failure> {
        // An IPv6 literal may come bracketed, as in a URL.
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Ok(ip) = bare.unwrap_or(host).parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        validate_host_name(host)?;
        let addrs = self.ips(host).await?;
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .map(|ip| SocketAddr::new(*ip, port))
            .ok_or_else(|| fail(ErrorKind::Dns, format!("{host:?} has no address")))
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        let cannot = |e: &dyn std::fmt::Display| {
            fail(ErrorKind::Dns, format!("cannot resolve {host:?}: {e}"))
        };
        match &self.inner.dns {
            Some(dns) => Ok(dns
                .lookup_ip(host)
                .await
                .map_err(|e| cannot(&e))?
                .iter()
                .collect()),
            None => Ok(tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| cannot(&e))?
                .map(|a| a.ip())
                .collect()),
        }
    }

    /// The strings of `name`'s first TXT record, joined (a long record comes split in strings
    /// of 255 bytes).
    pub(super) async fn txt(&self, name: &str) -> Result<String, Failure> {
        domain_name(name)?;
        let lookup = self
            .dns()?
            .txt_lookup(name)
            .await
            .map_err(|e| fail(ErrorKind::ResolveFailed, format!("TXT {name}: {e}")))?;
        lookup
            .answers()
            .iter()
            .find_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .ok_or_else(|| fail(ErrorKind::ResolveFailed, format!("TXT {name}: no record")))
    }

    /// `name`'s SRV records as (priority, target, port), lowest priority first; `Ok(empty)` when
    /// the name has none.
    pub(super) async fn srv(&self, name: &str) -> Result<Vec<(u16, String, u16)>, Failure> {
        domain_name(name)?;
        let lookup = match self.dns()?.srv_lookup(name).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
            Err(e) => return Err(fail(ErrorKind::ResolveFailed, format!("SRV {name}: {e}"))),
        };
        let mut records: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some((
                    srv.priority,
                    srv.target.to_utf8().trim_end_matches('.').to_string(),
                    srv.port,
                )),
                _ => None,
            })
            .collect();
        records.sort();
        Ok(records)
    }

    fn dns(&self) -> Result<&TokioResolver, Failure> {
        self.inner
            .dns
            .as_ref()
            .ok_or_else(|| fail(ErrorKind::ResolveFailed, self.inner.no_dns.clone()))
    }

    /// The client for discovery pages: no redirects followed (a 3xx is the answer), rustls, its
    /// names resolved here.
    pub(super) fn http(&self) -> Result<&reqwest::Client, Failure> {
        self.inner
            .http
            .get_or_init(|| {
                let mut builder = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("easytier-probe/", env!("CARGO_PKG_VERSION")));
                if let Some(dns) = &self.inner.dns {
                    builder = builder.dns_resolver(Arc::new(ForHttp(dns.clone())));
                }
                builder.build().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| fail(ErrorKind::ResolveFailed, format!("no HTTP client: {e}")))
    }
}

/// The domain of a txt:// or srv:// peer: a valid name, never an address (no query is sent
/// for an address or a name no server could hold).
pub(super) fn domain_name(name: &str) -> Result<(), Failure> {
    if name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Err(fail(
            ErrorKind::ResolveFailed,
            format!("{name} is an IP address; txt and srv peers name a domain"),
        ));
    }
    validate_host_name(name).map_err(|f| fail(ErrorKind::ResolveFailed, f.detail))
}

/// A server of `DNS_SERVERS`: UDP, and TCP for answers too long for a datagram.
fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut config = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut config.connections {
        connection.port = addr.port();
    }
    config
}

/// The resolver under reqwest, for the pages of http(s) peers.
struct ForHttp(TokioResolver);

impl reqwest::dns::Resolve for ForHttp {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.0.clone();
        Box::pin(async move {
            let found = dns.lookup_ip(name.as_str()).await?;
            let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
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
