//! Options (flags, environment, `.env`) → [`Settings`], one function per section; every error
//! names the flag and the variable to fix.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::env::Env;
use super::notify::{default_probe_name, parse_destinations};
use super::secrets::{secret, ADMIN_TOKEN, API_KEY, NETWORK_SECRET, NODE_TOKEN, NOTIFY_URLS};
use super::{Backend, ConfigError, NotifySettings, Options, PeerSource, ProbeSettings, Settings};
use crate::domain::{ProbeIdentity, Retention, Secret, Thresholds};

impl Settings {
    /// Validates the options and fills in secrets from files and credentials.
    pub fn resolve(options: &Options, env: &dyn Env) -> Result<Self, ConfigError> {
        // Secrets first: a secret file that cannot be read is an error in any mode.
        let node_token = secret(NODE_TOKEN, options.node_token.as_deref(), env)?;
        let api_key = secret(API_KEY, options.api_key.as_deref(), env)?;
        let admin_token = secret(ADMIN_TOKEN, options.admin_token.as_deref(), env)?;
        let backend = backend(options, node_token, api_key)?;
        let peer_source = peer_source(backend.is_some(), options)?;
        let data_dir = data_dir(options, env);
        let listen = listen_addr(options);
        let notify = notify(options, env)?;
        Ok(Settings {
            backend,
            peer_source,
            region: region(options),
            peer_fetch_interval: options.peer_fetch_interval,
            status_report_interval: options.status_report_interval,
            health_check_interval: options.health_check_interval,
            notify_interval: options.notify_interval,
            data_dir,
            listen,
            network_secret: secret(NETWORK_SECRET, options.network_secret.as_deref(), env)?
                .unwrap_or_else(|| Secret::new("")),
            admin_token,
            retention: retention(options),
            probe: probe(options)?,
            notify,
        })
    }
}

/// The backend in distributed mode (its URL and node token are then required), else none.
fn backend(
    options: &Options,
    node_token: Option<Secret>,
    api_key: Option<Secret>,
) -> Result<Option<Backend>, ConfigError> {
    let base_url = match options.backend_base_url.as_deref().map(str::trim) {
        Some(raw) if !raw.is_empty() => Some(parse_backend_url(raw)?),
        _ => None,
    };
    if !options.distributed_mode.unwrap_or(false) {
        return Ok(None);
    }
    let base_url = base_url.ok_or_else(|| {
        ConfigError(
            "BACKEND_BASE_URL is required in distributed mode; set it or pass --backend-base-url"
                .into(),
        )
    })?;
    let node_token = node_token.ok_or_else(|| {
        ConfigError(
            "NODE_TOKEN is required in distributed mode; set it, NODE_TOKEN_FILE, the \
             node_token credential, or pass --node-token"
                .into(),
        )
    })?;
    Ok(Some(Backend {
        base_url,
        node_token,
        api_key,
    }))
}

fn parse_backend_url(raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw).map_err(|e| {
        ConfigError(format!(
            "BACKEND_BASE_URL (--backend-base-url) is not a valid URL ({e}); expected e.g. https://backend.example.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError(
            "BACKEND_BASE_URL (--backend-base-url) must be an http:// or https:// URL with a host"
                .into(),
        ));
    }
    Ok(url)
}

fn peer_source(distributed: bool, options: &Options) -> Result<PeerSource, ConfigError> {
    match (distributed, &options.peers_file) {
        (true, Some(_)) => Err(ConfigError(
            "PEERS_FILE (--peers-file) and DISTRIBUTED_MODE_ENABLED both given: in \
             distributed mode peers come from the backend; unset one of them"
                .into(),
        )),
        (true, None) => Ok(PeerSource::Backend),
        (false, Some(path)) => Ok(PeerSource::File(path.clone())),
        (false, None) => Ok(PeerSource::None),
    }
}

/// `--data-dir`, else `DATABASE_PATH`, else systemd's `STATE_DIRECTORY`, else a directory in
/// the working directory.
fn data_dir(options: &Options, env: &dyn Env) -> PathBuf {
    options
        .data_dir
        .clone()
        .or_else(|| env.var("DATABASE_PATH").map(PathBuf::from))
        .or_else(|| {
            env.var("STATE_DIRECTORY")
                .and_then(|s| s.split(':').next().map(PathBuf::from))
        })
        .unwrap_or_else(|| PathBuf::from("./easytier-probe-data"))
}

/// `LISTEN_ADDR` (`--listen`), default 127.0.0.1:8080: read alone by `healthcheck`.
pub fn listen_addr(options: &Options) -> SocketAddr {
    options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))
}

/// `REGION`, trimmed; empty is none.
fn region(options: &Options) -> Option<String> {
    given(options.region.as_deref()).map(String::from)
}

/// A value as given, trimmed; empty counts as not given.
fn given(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|r| !r.is_empty())
}

/// The destinations, thresholds and how this probe names itself in alerts.
fn notify(options: &Options, env: &dyn Env) -> Result<NotifySettings, ConfigError> {
    let urls = secret(NOTIFY_URLS, options.notify_urls.as_deref(), env)?;
    let destinations = match &urls {
        Some(urls) => parse_destinations(urls.expose())?,
        None => Vec::new(),
    };
    let defaults = Thresholds::default();
    let thresholds = Thresholds {
        failure: options.notify_failure_threshold.unwrap_or(defaults.failure),
        success: options.notify_success_threshold.unwrap_or(defaults.success),
    };
    let public_url = match options.public_url.as_deref().map(str::trim) {
        Some(raw) if !raw.is_empty() => {
            let url = url::Url::parse(raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if url.is_none() {
                return Err(ConfigError(format!(
                    "PUBLIC_URL (--public-url) must be an http:// or https:// URL, got {raw:?}"
                )));
            }
            Some(raw.trim_end_matches('/').to_string())
        }
        _ => None,
    };
    let name = given(options.probe_name.as_deref())
        .map(String::from)
        .unwrap_or_else(default_probe_name);
    Ok(NotifySettings {
        destinations,
        thresholds,
        probe: ProbeIdentity {
            name,
            region: region(options),
            public_url,
        },
    })
}

/// `PROBE_TIMEOUT`, `PROBE_CONCURRENCY` (checked by their parsers) and `DNS_SERVERS`.
fn probe(options: &Options) -> Result<ProbeSettings, ConfigError> {
    let mut probe = ProbeSettings::default();
    if let Some(timeout) = options.probe_timeout {
        probe.timeout = timeout;
    }
    probe.concurrency = options.probe_concurrency;
    if let Some(raw) = given(options.dns_servers.as_deref()) {
        probe.dns_servers = dns_servers(raw)?;
    }
    Ok(probe)
}

/// `DNS_SERVERS`: addresses separated by commas or spaces, each `IP` (port 53), `IP:port` or
/// `[IPv6]:port`.
fn dns_servers(raw: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    raw.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    s.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    ConfigError(format!(
                        "DNS_SERVERS (--dns-servers) must be IP addresses, each with an optional \
                         port (1.1.1.1, 1.1.1.1:53, [2606:4700::1111]:53), got {s:?}"
                    ))
                })
        })
        .collect()
}

/// The retentions (checked by their parsers), each defaulting to [`Retention::default`]'s.
fn retention(options: &Options) -> Retention {
    let defaults = Retention::default();
    let span = |given: Option<std::time::Duration>, default| {
        given.map_or(default, |d| chrono::Duration::seconds(d.as_secs() as i64))
    };
    Retention {
        raw: span(options.history_retention, defaults.raw),
        minute: span(options.history_minute_retention, defaults.minute),
        hour: span(options.history_hour_retention, defaults.hour),
        day: span(options.history_day_retention, defaults.day),
        runs_keep: options.runs_keep.unwrap_or(defaults.runs_keep),
        runs_age: span(options.runs_retention, defaults.runs_age),
    }
}
