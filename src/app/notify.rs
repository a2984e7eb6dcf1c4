//! systemd's service protocol for `serve` (`Type=notify`, `WatchdogSec=`): `READY=1` once the
//! store is open and the API listens, `WATCHDOG=1` every half `WATCHDOG_USEC` **while the store
//! and the scheduler are healthy**, `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET` nothing is
//! sent and nothing runs.
//!
//! Healthy means: the store takes a write and a flush within [`STORE_BOUND`] (a hung sled write,
//! sled#1412, never returns: no ping is sent while one is pending, and no second one is started),
//! the store's last flush did not fail or stall ([`Store::writable`], `/health`'s `store`), and
//! the scheduler, when there is one, is at most [`SCHEDULER_SLACK`] behind its plan
//! ([`Scheduler::behind`]). When the pings stop, systemd kills and restarts the process after
//! `WatchdogSec=`.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::scheduler::Scheduler;
use crate::store::Store;

/// How long the watchdog's write and flush may take before the store counts as hung.
pub const STORE_BOUND: Duration = Duration::from_secs(5);
/// How far behind its plan the scheduler may be (its ticks are whole seconds, polled every
/// 500 ms; a suspend or a stall gives one late fire).
pub const SCHEDULER_SLACK: Duration = Duration::from_secs(10);

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// What `serve` told the service manager: the watchdog pings it started, if asked for.
pub struct Notified {
    watchdog: Option<JoinHandle<()>>,
}

/// Sends `READY=1` and starts the watchdog pings (see [`watchdog`]).
pub fn ready(store: Store, scheduler: Option<Arc<Scheduler>>) -> Notified {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
    Notified {
        watchdog: watchdog(store, scheduler),
    }
}

impl Notified {
    /// Sends `STOPPING=1`; no watchdog ping follows it.
    pub fn stopping(self) {
        send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
        if let Some(w) = self.watchdog {
            w.abort();
        }
    }
}

fn send(state: &[NotifyState]) {
    if !enabled() {
        return;
    }
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("could not notify the service manager (NOTIFY_SOCKET): {e}");
    }
}

/// Starts the watchdog pings when the service manager asked for them (`WATCHDOG_USEC`, and
/// `WATCHDOG_PID` naming this process if set); they end when the task is aborted.
pub fn watchdog(store: Store, scheduler: Option<Arc<Scheduler>>) -> Option<JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled().filter(|_| enabled())?;
    let every = (interval / 2).max(Duration::from_millis(100));
    tracing::info!(
        every_ms = every.as_millis() as u64,
        "systemd watchdog pings"
    );
    Some(tokio::spawn(async move {
        let mut checks = Checks {
            store,
            scheduler,
            pending: None,
            failing: None,
        };
        loop {
            match checks.run(every.min(STORE_BOUND)).await {
                Ok(()) => {
                    if let Some(why) = checks.failing.take() {
                        tracing::warn!("watchdog pings resumed (was: {why})");
                    }
                    send(&[NotifyState::Watchdog]);
                }
                Err(why) => {
                    if checks.failing.is_none() {
                        tracing::error!("watchdog pings withheld: {why}");
                    }
                    checks.failing = Some(why);
                }
            }
            tokio::time::sleep(every).await;
        }
    }))
}

struct Checks {
    store: Store,
    scheduler: Option<Arc<Scheduler>>,
    /// The store write and flush that has not returned yet.
    pending: Option<JoinHandle<Result<(), String>>>,
    /// Why the last ping was withheld (logged once per reason).
    failing: Option<String>,
}

impl Checks {
    /// Ok while the store takes a write and a flush within `bound` and the scheduler keeps to
    /// its plan; otherwise why not.
    async fn run(&mut self, bound: Duration) -> Result<(), String> {
        if let Some(s) = &self.scheduler {
            let behind = s.behind().await;
            if behind > SCHEDULER_SLACK {
                return Err(format!(
                    "the scheduler is {}s behind its plan",
                    behind.as_secs()
                ));
            }
        }
        let path = self.store.path().display().to_string();
        if self.pending.as_ref().is_some_and(|p| !p.is_finished()) {
            return Err(format!("a write to the store in {path} has not returned"));
        }
        let store = self.store.clone();
        let mut probe = tokio::spawn(async move {
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.touch()).await {
                Ok(Ok(())) => store.flush().await.map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("the store write panicked: {e}")),
            }
        });
        let done = match tokio::time::timeout(bound, &mut probe).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => Err(format!("the store check panicked: {e}")),
            Err(_) => {
                self.pending = Some(probe);
                return Err(format!(
                    "a write to the store in {path} has not returned within {}s",
                    bound.as_secs_f32()
                ));
            }
        };
        self.pending = None;
        done?;
        if !self.store.writable() {
            return Err(format!("the store in {path} cannot be written to disk"));
        }
        Ok(())
    }
}
