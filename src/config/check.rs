//! `check-config`'s report: every option's effective value as a line of TOML, with where it
//! came from. Secrets are never shown: their lines are comments saying only that they are set.
//! So the report is itself a valid config file (less the secrets).

use std::fmt::Write as _;

use super::{Parsed, PeerSource, Settings, Source};
use crate::domain::duration::format_duration;

/// One option's line: its key, its value as TOML (`None`: not set), and whether it is secret.
struct Line {
    key: &'static str,
    value: Option<String>,
    secret: bool,
}

fn quoted(s: impl AsRef<str>) -> Option<String> {
    Some(toml::Value::String(s.as_ref().to_string()).to_string())
}

fn duration(d: std::time::Duration) -> Option<String> {
    quoted(format_duration(d))
}

fn chrono_span(d: chrono::Duration) -> Option<String> {
    duration(d.to_std().unwrap_or_default())
}

fn secret(set: bool) -> Option<String> {
    set.then(String::new)
}

/// The effective settings, one line per config-file key.
fn lines(s: &Settings) -> Vec<Line> {
    let backend = s.backend.as_ref();
    let plain = |key, value| Line {
        key,
        value,
        secret: false,
    };
    let hidden = |key, set| Line {
        key,
        value: secret(set),
        secret: true,
    };
    let peers_file = match &s.peer_source {
        PeerSource::File(path) => quoted(path.display().to_string()),
        _ => None,
    };
    let dns = (!s.probe.dns_servers.is_empty()).then(|| {
        let list: Vec<String> = s.probe.dns_servers.iter().map(|a| a.to_string()).collect();
        toml::Value::from(list).to_string()
    });
    vec![
        plain("distributed_mode", Some(backend.is_some().to_string())),
        plain(
            "backend_base_url",
            backend.and_then(|b| quoted(b.base_url.as_str())),
        ),
        hidden("node_token", backend.is_some()),
        hidden("api_key", backend.is_some_and(|b| b.api_key.is_some())),
        plain("region", s.region.as_ref().and_then(quoted)),
        plain("peers_file", peers_file),
        plain(
            "peer_fetch_interval",
            s.peer_fetch_interval.and_then(duration),
        ),
        plain(
            "status_report_interval",
            s.status_report_interval.and_then(duration),
        ),
        plain(
            "health_check_interval",
            s.health_check_interval.and_then(duration),
        ),
        plain("notify_interval", s.notify_interval.and_then(duration)),
        plain("data_dir", quoted(s.data_dir.display().to_string())),
        plain("history_retention", chrono_span(s.retention.raw)),
        plain("history_minute_retention", chrono_span(s.retention.minute)),
        plain("history_hour_retention", chrono_span(s.retention.hour)),
        plain("history_day_retention", chrono_span(s.retention.day)),
        plain("runs_keep", Some(s.retention.runs_keep.to_string())),
        plain("runs_retention", chrono_span(s.retention.runs_age)),
        plain("listen", quoted(s.listen.to_string())),
        hidden("admin_token", s.admin_token.is_some()),
        plain(
            "public_url",
            s.notify.probe.public_url.as_ref().and_then(quoted),
        ),
        hidden("network_secret", !s.network_secret.expose().is_empty()),
        plain("probe_timeout", duration(s.probe.timeout)),
        plain(
            "probe_concurrency",
            s.probe.concurrency.map(|n| n.to_string()),
        ),
        plain("dns_servers", dns),
        hidden("notify_urls", !s.notify.destinations.is_empty()),
        plain(
            "notify_failure_threshold",
            Some(s.notify.thresholds.failure.to_string()),
        ),
        plain(
            "notify_success_threshold",
            Some(s.notify.thresholds.success.to_string()),
        ),
        plain("probe_name", quoted(&s.notify.probe.name)),
    ]
}

/// What an unset option means.
fn unset_meaning(key: &str) -> &'static str {
    match key {
        "peer_fetch_interval"
        | "status_report_interval"
        | "health_check_interval"
        | "notify_interval" => "not set: the job's own schedule (see `jobs`)",
        "probe_concurrency" => "not set: derived from the open-files limit",
        "dns_servers" => "not set: the system's resolvers",
        _ => "not set",
    }
}

/// The report `check-config` prints.
pub fn describe(settings: &Settings, parsed: &Parsed) -> String {
    let mut out = String::from(
        "# easytier-probe settings, resolved: flag > environment > .env > config file > default\n",
    );
    match &parsed.file {
        Some(path) => {
            let _ = writeln!(out, "# config file: {}", path.display());
        }
        None => out.push_str("# config file: none (--config / CONFIG_FILE)\n"),
    }
    for line in lines(settings) {
        let source = parsed.sources.get(line.key).copied();
        let from = match (source, line.key) {
            (Some(s), _) => s.as_str(),
            (None, "data_dir") => "DATABASE_PATH, STATE_DIRECTORY or default",
            (None, "probe_name") => "default: the host name",
            (None, _) if line.secret && line.value.is_some() => "*_FILE or credential",
            (None, _) => Source::Default.as_str(),
        };
        let _ = match (&line.value, line.secret) {
            (Some(_), true) => writeln!(out, "# {} = <set, not shown>  # {from}", line.key),
            (Some(value), false) => writeln!(out, "{} = {value}  # {from}", line.key),
            (None, _) if source.is_some() => writeln!(
                out,
                "# {}: given ({from}) but unused: distributed mode is off",
                line.key
            ),
            (None, _) => writeln!(out, "# {}: {}", line.key, unset_meaning(line.key)),
        };
    }
    out
}
