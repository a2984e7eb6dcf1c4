//! `serve`: holds the store, runs the jobs on their schedules (unless `--no-schedule`), serves
//! the HTTP API and the control channel, and shuts down gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, ApiState};
use crate::config::{PeerSource, Settings};
use crate::control;
use crate::domain::{JobName, Schedule, Trigger};
use crate::jobs::{effective_schedule, status_report, JobContext};
use crate::runner::Runner;
use crate::scheduler::Scheduler;
use crate::store::Store;

/// How long running jobs get to finish at shutdown.
pub const DRAIN_BOUND: Duration = Duration::from_secs(10);
/// How long interrupted runs get to record themselves, after the drain.
const INTERRUPT_BOUND: Duration = Duration::from_secs(2);
/// How long the `Offline` report may take at shutdown.
pub const OFFLINE_BOUND: Duration = Duration::from_secs(5);

/// Runs `serve` on an already-bound listener until `shutdown` resolves.
pub async fn run(
    settings: Arc<Settings>,
    store: Store,
    listener: TcpListener,
    no_schedule: bool,
    shutdown: impl Future,
) -> anyhow::Result<()> {
    if settings.peer_source == PeerSource::None {
        tracing::warn!(
            "no peer source: peer-fetch will fail until PEERS_FILE or distributed mode is configured"
        );
    }
    let ctx = JobContext::new(store.clone(), settings.clone());
    let runner = Runner::new(ctx.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let control = start_control(&settings, &runner, stopped());
    let jobs: Vec<(JobName, Schedule)> = JobName::ALL
        .into_iter()
        .filter(|j| *j != JobName::StatusReport || settings.backend.is_some())
        .map(|j| (j, effective_schedule(j, &settings)))
        .collect();
    let scheduler = if no_schedule {
        None
    } else {
        for (job, schedule) in &jobs {
            tracing::info!(job = %job, %schedule, "scheduled");
        }
        Some(Arc::new(Scheduler::start(runner.clone(), &jobs).await?))
    };
    // Probing starts at once rather than one interval after start.
    let kickoff = scheduler.is_some().then(|| {
        kick_off(
            runner.clone(),
            jobs.iter().map(|(j, _)| *j).collect(),
            stop_rx.clone(),
        )
    });
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        data_dir = %settings.data_dir.display(),
        scheduling = scheduler.is_some(),
        "serving"
    );
    let api = tokio::spawn(api::run(
        listener,
        ApiState {
            runner: runner.clone(),
            scheduler: scheduler.clone(),
            started: Instant::now(),
        },
        stopped(),
    ));
    let notified = super::notify::ready(store.clone(), scheduler.clone());

    shutdown.await;
    tracing::info!("shutting down");
    notified.stopping();
    if let Some(s) = &scheduler {
        s.shutdown().await;
    }
    let _ = stop_tx.send(true);
    wind_down(&runner, &ctx).await;
    store.flush().await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), api).await;
    if let Some(k) = kickoff {
        k.abort();
    }
    if let Some(c) = control {
        let _ = tokio::time::timeout(Duration::from_secs(1), c).await;
    }
    let _ = std::fs::remove_file(control::socket_path(&settings.data_dir));
    Ok(())
}

/// The control channel for `run-job`, until `stopped`; none (with a warning) when its socket
/// cannot be bound.
fn start_control(
    settings: &Settings,
    runner: &Runner,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    match control::bind(&settings.data_dir) {
        Ok(l) => Some(tokio::spawn(control::serve(l, runner.clone(), stopped))),
        Err(e) => {
            tracing::warn!(
                "no control channel at {}: {e}; run-job cannot reach this process",
                control::socket_path(&settings.data_dir).display()
            );
            None
        }
    }
}

/// Runs each job once now, in turn, unless serve is stopping.
fn kick_off(
    runner: Runner,
    jobs: Vec<JobName>,
    stopping: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for job in jobs {
            // A run already going finishes (the drain waits for it); no new one starts.
            if *stopping.borrow() {
                break;
            }
            if let Err(e) = runner.run(job, Trigger::Schedule).await {
                tracing::error!(job = %job, "could not record the run: {e}");
            }
        }
    })
}

/// At shutdown: runs in progress get [`DRAIN_BOUND`] to finish, then are interrupted; the
/// backend is told `Offline`.
async fn wind_down(runner: &Runner, ctx: &JobContext) {
    if !runner.drain(DRAIN_BOUND).await {
        tracing::warn!("jobs still running after {DRAIN_BOUND:?}; stopping them");
        runner.interrupt("serve shut down before the run finished");
        if !runner.drain(INTERRUPT_BOUND).await {
            tracing::warn!(
                "jobs still running; they are recorded as interrupted at the next start"
            );
        }
    }
    if ctx.settings.backend.is_some() {
        match tokio::time::timeout(OFFLINE_BOUND, status_report::send_offline(ctx)).await {
            Ok(Ok(_)) => tracing::info!("reported Offline to the backend"),
            Ok(Err(f)) => tracing::warn!("could not report Offline: {}", f.error),
            Err(_) => tracing::warn!("could not report Offline within {OFFLINE_BOUND:?}"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT, with the signal's name. SIGHUP is logged and ignored
/// (there is no configuration reload; restart to apply changes), so a closed terminal or a
/// `systemctl reload` does not end the process.
pub async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    let hup = signal(SignalKind::hangup());
    match (term, int, hup) {
        (Ok(mut term), Ok(mut int), Ok(mut hup)) => loop {
            tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = int.recv() => return "SIGINT",
                _ = hup.recv() => tracing::info!(
                    "SIGHUP ignored: there is no configuration reload; restart to apply changes"
                ),
            }
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
