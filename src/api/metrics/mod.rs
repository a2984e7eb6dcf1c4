//! `/metrics`: the Prometheus text format, after Prometheus' naming conventions. Value series
//! of a peer carry only its `id`; what is said of it (name, address, network) is in
//! `easytier_probe_peer_info`, joined on `id`. Every counter is there from the start, at zero.
//!
//! The figures are read from the store at each scrape (the sweeps of every process on the
//! data dir count), so there is no registry to update: [`text`] writes the format.

mod process;
mod text;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::nodes::Listed;
use super::ApiState;
use crate::config::Settings;
use crate::domain::{JobName, Outcome};
use crate::runner::Runner;
use crate::store::{CheckTotals, Store};
use process::Process;
use text::{Kind, Text};

/// Every family `/metrics` serves, in its order (deploy/prometheus/alerts.yml may name only
/// these).
pub const METRICS: [&str; 21] = [
    "easytier_probe_build_info",
    "easytier_probe_probe_info",
    "easytier_probe_peer_info",
    "easytier_probe_peer_up",
    "easytier_probe_peer_rtt_seconds",
    "easytier_probe_peer_last_check_timestamp_seconds",
    "easytier_probe_peer_checks_total",
    "easytier_probe_node_info",
    "easytier_probe_peer_key_changed",
    "easytier_probe_job_runs_total",
    "easytier_probe_job_last_success_timestamp_seconds",
    "easytier_probe_job_duration_seconds",
    "easytier_probe_alerts_firing",
    "easytier_probe_notifications_total",
    "easytier_probe_notify_outbox_messages",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// The outcomes a finished or refused run is counted under (`running` is a state, not one).
const RUN_OUTCOMES: [Outcome; 4] = [
    Outcome::Ok,
    Outcome::Failed,
    Outcome::Skipped,
    Outcome::Interrupted,
];

pub(super) async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    // Store reads (every peer's totals among them) off the async workers.
    let body = tokio::task::spawn_blocking(move || body(&s.runner))
        .await
        .map_err(|e| ApiError::Internal(format!("/metrics: {e}")))??;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

fn body(runner: &Runner) -> Result<String, ApiError> {
    let ctx = runner.context();
    let store = &ctx.store;
    let mut text = Text::default();
    identity(&mut text, &ctx.settings);
    let listed = Listed::read(store)?;
    peer_values(&mut text, &listed, &store.check_totals()?);
    peer_facts(&mut text, &listed);
    jobs(&mut text, runner, store)?;
    alerts(&mut text, store, &ctx.settings)?;
    Process::read().write(&mut text);
    Ok(text.finish())
}

/// What this build is, and which probe this is.
fn identity(text: &mut Text, settings: &Settings) {
    text.family(
        "easytier_probe_build_info",
        Kind::Gauge,
        "The build of easytier-probe serving these metrics (1).",
    )
    .sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
        ],
        1.0,
    );
    let probe = &settings.notify.probe;
    text.family(
        "easytier_probe_probe_info",
        Kind::Gauge,
        "This probe: its PROBE_NAME and REGION (1).",
    )
    .sample(
        &[
            ("name", &probe.name),
            ("region", settings.region.as_deref().unwrap_or("")),
        ],
        1.0,
    );
}

/// The listed peers and their latest results, each series labelled by the peer's `id` only.
fn peer_values(text: &mut Text, listed: &Listed, totals: &CheckTotals) {
    let Listed {
        peers,
        latest,
        slots,
        ..
    } = listed;
    let mut info = text.family(
        "easytier_probe_peer_info",
        Kind::Gauge,
        "Every listed peer, with what the peer list says of it (1); join on id.",
    );
    for p in peers {
        let port = p.port.to_string();
        info.sample(
            &[
                ("id", &p.id),
                ("name", &p.name),
                ("host", &p.host),
                ("port", &port),
                ("protocol", &p.protocol),
                ("network_name", &p.network_name),
            ],
            1.0,
        );
    }
    let checked = || {
        peers
            .iter()
            .filter_map(|p| Some((&p.id, latest.get(&p.id)?)))
    };
    let mut up = text.family(
        "easytier_probe_peer_up",
        Kind::Gauge,
        "Whether the peer passed its last check (1) or not (0).",
    );
    for (id, r) in checked() {
        up.sample(&[("id", id)], f64::from(u8::from(r.up)));
    }
    let mut rtt = text.family(
        "easytier_probe_peer_rtt_seconds",
        Kind::Gauge,
        "EasyTier ping/pong round trip of the peer's last check, when it was up.",
    );
    for (id, r) in checked() {
        if let Some(us) = r.rtt_us {
            rtt.sample(&[("id", id)], us as f64 / 1e6);
        }
    }
    let mut last = text.family(
        "easytier_probe_peer_last_check_timestamp_seconds",
        Kind::Gauge,
        "When the peer's last check finished, in seconds since the Unix epoch.",
    );
    for (id, r) in checked() {
        last.sample(
            &[("id", id)],
            r.checked_at.timestamp_millis() as f64 / 1000.0,
        );
    }
    let mut checks = text.family(
        "easytier_probe_peer_checks_total",
        Kind::Counter,
        "Checks of the peer by result, every sweep of every process on this store.",
    );
    for p in peers {
        let (all, ok) = slots.get(&p.id).map_or((0, 0), |s| totals.of(*s));
        checks.sample(&[("id", &p.id), ("result", "up")], ok as f64);
        checks.sample(&[("id", &p.id), ("result", "down")], (all - ok) as f64);
    }
}

/// What the nodes said of themselves, and the secure-mode nodes' key changes.
fn peer_facts(text: &mut Text, listed: &Listed) {
    let mut info = text.family(
        "easytier_probe_node_info",
        Kind::Gauge,
        "What the peer's node said of itself when last read (1).",
    );
    for p in &listed.peers {
        if let Some(node) = listed.latest.get(&p.id).and_then(|r| r.node.as_ref()) {
            info.sample(
                &[
                    ("id", &p.id),
                    ("version", &node.version),
                    ("hostname", node.hostname.as_deref().unwrap_or("")),
                ],
                1.0,
            );
        }
    }
    let mut changed = text.family(
        "easytier_probe_peer_key_changed",
        Kind::Gauge,
        "Whether a secure-mode node presents another static key than the trusted one (1) or not (0).",
    );
    for p in &listed.peers {
        if let Some(key) = listed.keys.get(&p.id) {
            changed.sample(&[("id", &p.id)], f64::from(u8::from(key.changed())));
        }
    }
}

/// Every job's runs by outcome (this process's), last success and durations (the store's).
fn jobs(text: &mut Text, runner: &Runner, store: &Store) -> Result<(), ApiError> {
    let mut runs = text.family(
        "easytier_probe_job_runs_total",
        Kind::Counter,
        "Job runs by this process, by outcome.",
    );
    for job in JobName::ALL {
        let counts = runner.counts(job);
        for outcome in RUN_OUTCOMES {
            let n = counts
                .iter()
                .find(|(o, _)| *o == outcome)
                .map_or(0, |c| c.1);
            runs.sample(
                &[("job", job.as_str()), ("outcome", outcome.as_str())],
                n as f64,
            );
        }
    }
    let mut success = text.family(
        "easytier_probe_job_last_success_timestamp_seconds",
        Kind::Gauge,
        "Start of the job's last successful run, in seconds since the Unix epoch.",
    );
    for job in JobName::ALL {
        if let Ok(Some(run)) = store.last_success(job.as_str()) {
            success.sample(
                &[("job", job.as_str())],
                run.started_at.timestamp_millis() as f64 / 1000.0,
            );
        }
    }
    let mut durations = text.family(
        "easytier_probe_job_duration_seconds",
        Kind::Histogram,
        "How long the job's finished runs took, every process on this store.",
    );
    for job in JobName::ALL {
        durations.histogram(&[("job", job.as_str())], &store.durations(job.as_str())?);
    }
    Ok(())
}

/// The alerts firing (by alert name), the notifications by destination and outcome (every
/// configured destination from the start), and the outbox depth. A destination is named by
/// its kind and place (`telegram#2`), never its URL.
fn alerts(text: &mut Text, store: &Store, settings: &Settings) -> Result<(), ApiError> {
    let (book, _) = store.alert_book()?;
    let mut firing = text.family(
        "easytier_probe_alerts_firing",
        Kind::Gauge,
        "Alerts firing now, by alert name.",
    );
    firing.sample(&[("alertname", "PeerDown")], book.firing().count() as f64);
    firing.sample(
        &[("alertname", "ProbeIsolated")],
        f64::from(u8::from(book.isolation.firing)),
    );
    let mut by_destination = store.destination_stats()?;
    for d in &settings.notify.destinations {
        by_destination.entry(d.label.clone()).or_default();
    }
    let mut sent = text.family(
        "easytier_probe_notifications_total",
        Kind::Counter,
        "Notification deliveries, by destination and outcome.",
    );
    for (dest, st) in &by_destination {
        for (outcome, n) in [
            ("sent", st.sent),
            ("failed", st.failed),
            ("dropped", st.dropped),
        ] {
            sent.sample(&[("destination", dest), ("outcome", outcome)], n as f64);
        }
    }
    text.family(
        "easytier_probe_notify_outbox_messages",
        Kind::Gauge,
        "Alert messages waiting for delivery.",
    )
    .sample(&[], store.outbox()?.len() as f64);
    Ok(())
}

#[cfg(test)]
mod tests;
