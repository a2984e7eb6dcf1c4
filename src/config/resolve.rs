//! Options (flags, environment, `.env`) → [`Settings`], one function per section; every error
//! names the flag and the variable to fix.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::env::Env;
use super::notify::{default_probe_name, parse_destinations};
use super::secrets::{secret, ADMIN_TOKEN, API_KEY, NETWORK_SECRET, NODE_TOKEN, NOTIFY_URLS};
use super::{
    Backend, ConfigError, NotifySettings, Options, PeerSource, ProbeSettings, Settings,
    INTERVAL_VARIABLES,
};
use crate::domain::duration::parse_span;
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
        let listen = listen_addr(options)?;
        let notify = notify(options, env)?;
        let [peer_fetch, status_report, health_check, notify_every] = INTERVAL_VARIABLES;
        Ok(Settings {
            backend,
            peer_source,
            region: region(options),
            peer_fetch_interval: interval(options.peer_fetch_interval.as_deref(), peer_fetch)?,
            status_report_interval: interval(
                options.status_report_interval.as_deref(),
                status_report,
            )?,
            health_check_interval: interval(
                options.health_check_interval.as_deref(),
                health_check,
            )?,
            notify_interval: interval(options.notify_interval.as_deref(), notify_every)?,
            data_dir,
            listen,
            network_secret: secret(NETWORK_SECRET, options.network_secret.as_deref(), env)?
                .unwrap_or_else(|| Secret::new("")),
            admin_token,
            retention: retention(options)?,
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
pub fn listen_addr(options: &Options) -> Result<SocketAddr, ConfigError> {
    let raw = options.listen.as_deref().unwrap_or("127.0.0.1:8080");
    raw.trim().parse().map_err(|_| {
        ConfigError(format!(
            "LISTEN_ADDR (--listen) must be an address like 127.0.0.1:8080, got {raw:?}"
        ))
    })
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
        failure: threshold(
            options.notify_failure_threshold.as_deref(),
            ("NOTIFY_FAILURE_THRESHOLD", "--notify-failure-threshold"),
            defaults.failure,
        )?,
        success: threshold(
            options.notify_success_threshold.as_deref(),
            ("NOTIFY_SUCCESS_THRESHOLD", "--notify-success-threshold"),
            defaults.success,
        )?,
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

fn threshold(
    raw: Option<&str>,
    (var, flag): (&str, &str),
    default: u32,
) -> Result<u32, ConfigError> {
    let Some(raw) = given(raw) else {
        return Ok(default);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(ConfigError(format!(
            "{var} ({flag}) must be a whole number of checks from 1 to 1000, got {raw:?}"
        ))),
    }
}

/// `PROBE_TIMEOUT` (100 ms to 60 s) and `PROBE_CONCURRENCY` (1 to 65 536).
fn probe(options: &Options) -> Result<ProbeSettings, ConfigError> {
    let mut probe = ProbeSettings::default();
    if let Some(raw) = given(options.probe_timeout.as_deref()) {
        probe.timeout = crate::domain::duration::parse_duration(raw)
            .ok()
            .filter(|d| crate::domain::TIMEOUT_RANGE.contains(d))
            .ok_or_else(|| {
                ConfigError(format!(
                    "PROBE_TIMEOUT (--probe-timeout) must be a duration from 100ms to 60s, e.g. 3s, got {raw:?}"
                ))
            })?;
    }
    if let Some(raw) = given(options.probe_concurrency.as_deref()) {
        match raw.parse::<usize>() {
            Ok(n) if (1..=65_536).contains(&n) => probe.concurrency = Some(n),
            _ => {
                return Err(ConfigError(format!(
                    "PROBE_CONCURRENCY (--probe-concurrency) must be a whole number from 1 to 65536, got {raw:?}"
                )))
            }
        }
    }
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

/// Whole seconds, at least 1.
fn interval(raw: Option<&str>, (var, flag): (&str, &str)) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = given(raw) else {
        return Ok(None);
    };
    match raw.parse::<u64>() {
        Ok(n) if (1..=7 * 24 * 3600).contains(&n) => Ok(Some(Duration::from_secs(n))),
        _ => Err(ConfigError(format!(
            "{var} ({flag}) must be a whole number of seconds between 1 and 604800, got {raw:?}"
        ))),
    }
}

const DAY: u64 = 86_400;
const YEAR: u64 = 365 * DAY;

fn retention(options: &Options) -> Result<Retention, ConfigError> {
    let defaults = Retention::default();
    Ok(Retention {
        raw: span(
            options.history_retention.as_deref(),
            ("HISTORY_RETENTION", "--history-retention"),
            defaults.raw,
            (10 * 60, 30 * DAY),
        )?,
        minute: span(
            options.history_minute_retention.as_deref(),
            ("HISTORY_MINUTE_RETENTION", "--history-minute-retention"),
            defaults.minute,
            (2 * 3600, 90 * DAY),
        )?,
        hour: span(
            options.history_hour_retention.as_deref(),
            ("HISTORY_HOUR_RETENTION", "--history-hour-retention"),
            defaults.hour,
            (170 * 3600, 3 * YEAR),
        )?,
        day: span(
            options.history_day_retention.as_deref(),
            ("HISTORY_DAY_RETENTION", "--history-day-retention"),
            defaults.day,
            (31 * DAY, 20 * YEAR),
        )?,
        runs_keep: runs_keep(options.runs_keep.as_deref(), defaults.runs_keep)?,
        runs_age: span(
            options.runs_retention.as_deref(),
            ("RUNS_RETENTION", "--runs-retention"),
            defaults.runs_age,
            (3600, 20 * YEAR),
        )?,
    })
}

/// A retention setting: a duration ("d" is accepted beside ms/s/m/h) within `bounds` seconds.
fn span(
    raw: Option<&str>,
    (var, flag): (&str, &str),
    default: chrono::Duration,
    (min, max): (u64, u64),
) -> Result<chrono::Duration, ConfigError> {
    let Some(raw) = given(raw) else {
        return Ok(default);
    };
    match parse_span(raw) {
        Ok(d) if (min..=max).contains(&d.as_secs()) => {
            Ok(chrono::Duration::seconds(d.as_secs() as i64))
        }
        _ => Err(ConfigError(format!(
            "{var} ({flag}) must be a duration from {} to {}, like 36h or 7d, got {raw:?}",
            human_secs(min),
            human_secs(max)
        ))),
    }
}

fn human_secs(secs: u64) -> String {
    match secs {
        s if s % DAY == 0 => format!("{}d", s / DAY),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}m", s / 60),
    }
}

fn runs_keep(raw: Option<&str>, default: usize) -> Result<usize, ConfigError> {
    let Some(raw) = given(raw) else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(ConfigError(format!(
            "RUNS_KEEP (--runs-keep) must be a whole number from 1 to 1000000, got {raw:?}"
        ))),
    }
}
