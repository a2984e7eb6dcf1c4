//! `/metrics`: the Prometheus text format.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::nodes::Listed;
use super::ApiState;
use crate::domain::JobName;

/// Every metric `/metrics` serves (deploy/prometheus/alerts.yml may name only these).
pub const METRICS: [&str; 10] = [
    "easytier_probe_peer_up",
    "easytier_probe_peer_rtt_seconds",
    "easytier_probe_peer_info",
    "easytier_probe_peer_key_changed",
    "easytier_probe_job_runs_total",
    "easytier_probe_job_last_success_timestamp_seconds",
    "easytier_probe_sweep_duration_seconds",
    "easytier_probe_alerts_firing",
    "easytier_probe_notifications_total",
    "easytier_probe_notify_outbox_messages",
];

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let region = label(ctx.settings.region.as_deref().unwrap_or(""));
    let PeerSeries {
        up,
        rtt,
        info,
        key_changed,
    } = peer_series(&Listed::read(store)?, &region);
    let mut runs = String::new();
    let mut success = String::new();
    for job in JobName::ALL {
        for (outcome, n) in s.runner.counts(job) {
            let _ = writeln!(
                runs,
                "easytier_probe_job_runs_total{{job=\"{job}\",outcome=\"{}\"}} {n}",
                outcome.as_str()
            );
        }
        if let Ok(Some(run)) = store.last_success(job.as_str()) {
            let _ = writeln!(
                success,
                "easytier_probe_job_last_success_timestamp_seconds{{job=\"{job}\"}} {}",
                run.started_at.timestamp_millis() as f64 / 1000.0
            );
        }
    }
    let sweeps = sweep_durations(&store.durations(JobName::ProbeSweep.as_str())?);
    let alerts = alert_metrics(store)?;
    let body = format!(
        "# HELP easytier_probe_peer_up Whether the peer passed the last probe (1) or not (0).\n\
         # TYPE easytier_probe_peer_up gauge\n{up}\
         # HELP easytier_probe_peer_rtt_seconds EasyTier ping/pong round trip of the last probe.\n\
         # TYPE easytier_probe_peer_rtt_seconds gauge\n{rtt}\
         # HELP easytier_probe_peer_info What the node said of itself when last read (1).\n\
         # TYPE easytier_probe_peer_info gauge\n{info}\
         # HELP easytier_probe_peer_key_changed Whether a secure-mode node presents another static key than the trusted one (1) or not (0).\n\
         # TYPE easytier_probe_peer_key_changed gauge\n{key_changed}\
         # HELP easytier_probe_job_runs_total Job runs by this process, by outcome.\n\
         # TYPE easytier_probe_job_runs_total counter\n{runs}\
         # HELP easytier_probe_job_last_success_timestamp_seconds Start of the last successful run.\n\
         # TYPE easytier_probe_job_last_success_timestamp_seconds gauge\n{success}{sweeps}{alerts}"
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// The per-peer series of `/metrics`, each family's lines.
struct PeerSeries {
    up: String,
    rtt: String,
    info: String,
    key_changed: String,
}

fn peer_series(listed: &Listed, region: &str) -> PeerSeries {
    let Listed {
        peers,
        latest,
        keys,
        ..
    } = listed;
    let mut up = String::new();
    let mut rtt = String::new();
    let mut info = String::new();
    let mut key_changed = String::new();
    for peer in peers {
        if let Some(key) = keys.get(&peer.id) {
            let _ = writeln!(
                key_changed,
                "easytier_probe_peer_key_changed{{id=\"{}\"}} {}",
                label(&peer.id),
                u8::from(key.changed())
            );
        }
        let Some(latest) = latest.get(&peer.id) else {
            continue;
        };
        if let Some(node) = &latest.node {
            node_info(&mut info, &peer.id, node);
        }
        let labels = format!(
            "id=\"{}\",name=\"{}\",protocol=\"{}\",region=\"{}\"",
            label(&peer.id),
            label(&peer.name),
            label(&peer.protocol),
            region
        );
        let _ = writeln!(
            up,
            "easytier_probe_peer_up{{{labels}}} {}",
            u8::from(latest.up)
        );
        if let Some(us) = latest.rtt_us {
            let _ = writeln!(
                rtt,
                "easytier_probe_peer_rtt_seconds{{{labels}}} {}",
                us as f64 / 1e6
            );
        }
    }
    PeerSeries {
        up,
        rtt,
        info,
        key_changed,
    }
}

/// One peer's `easytier_probe_peer_info` series.
fn node_info(out: &mut String, id: &str, node: &crate::domain::NodeInfo) {
    let _ = writeln!(
        out,
        "easytier_probe_peer_info{{id=\"{}\",version=\"{}\",hostname=\"{}\"}} 1",
        label(id),
        label(&node.version),
        label(node.hostname.as_deref().unwrap_or(""))
    );
}

/// The histogram of how long probe sweeps took, over the store's life (timer-run sweeps too).
fn sweep_durations(d: &crate::domain::Durations) -> String {
    let mut out = String::from(
        "# HELP easytier_probe_sweep_duration_seconds How long finished probe sweeps took, \
         every process on this store.\n\
         # TYPE easytier_probe_sweep_duration_seconds histogram\n",
    );
    for (le, n) in d.cumulative() {
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            le.to_string()
        };
        let _ = writeln!(
            out,
            "easytier_probe_sweep_duration_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = write!(
        out,
        "easytier_probe_sweep_duration_seconds_sum {}\n\
         easytier_probe_sweep_duration_seconds_count {}\n",
        d.sum_ms as f64 / 1000.0,
        d.count
    );
    out
}

/// The alerts firing (by alert name), the notifications by destination and outcome, and the
/// outbox depth. A destination is named by its kind and place (`telegram#2`), never its URL.
fn alert_metrics(store: &crate::store::Store) -> Result<String, ApiError> {
    let (book, _) = store.alert_book()?;
    let mut out = String::new();
    let _ = write!(
        out,
        "# HELP easytier_probe_alerts_firing Alerts firing now, by alert name.\n\
         # TYPE easytier_probe_alerts_firing gauge\n\
         easytier_probe_alerts_firing{{alertname=\"PeerDown\"}} {}\n\
         easytier_probe_alerts_firing{{alertname=\"ProbeIsolated\"}} {}\n",
        book.firing().count(),
        u8::from(book.isolation.firing)
    );
    out.push_str(
        "# HELP easytier_probe_notifications_total Notification deliveries, by destination and outcome.\n\
         # TYPE easytier_probe_notifications_total counter\n",
    );
    for (dest, st) in store.destination_stats()? {
        for (outcome, n) in [
            ("sent", st.sent),
            ("failed", st.failed),
            ("dropped", st.dropped),
        ] {
            let _ = writeln!(
                out,
                "easytier_probe_notifications_total{{destination=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(&dest)
            );
        }
    }
    let _ = write!(
        out,
        "# HELP easytier_probe_notify_outbox_messages Alert messages waiting for delivery.\n\
         # TYPE easytier_probe_notify_outbox_messages gauge\n\
         easytier_probe_notify_outbox_messages {}\n",
        store.outbox()?.len()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
