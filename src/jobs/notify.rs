//! notify: the sweeps in the store → alert state → a durable outbox → the destinations in
//! `NOTIFY_URLS`.
//!
//! A run first takes in the sweeps it has not seen (in order, so "consecutive checks" are
//! the sweeps' own), turns the changes of each sweep into one message, and stores book,
//! changes and messages in one batch. Then it delivers what is due: every destination gets
//! every message at least once; one that fails is tried again with exponential backoff
//! (2 s doubling up to 5 min), across runs and restarts, until the message is a day old.
//! Probing never waits for any of this: the sweep only writes its rows.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{JobContext, JobFailure, JobResult};
use crate::config::{Destination, Target};
use crate::domain::time::from_millis;
use crate::domain::{AlertBook, AlertName, Change, Message, Notice, Peer, Silence, Status};
use crate::store::{ChangeRecord, Evaluation, OutboxEntry, StoreError};

/// Sweeps taken in by one run at most; a notify that was stopped for longer starts from the
/// newest ones (the older changes would be stale news).
pub const MAX_SWEEPS_PER_RUN: usize = 720;
/// A message not delivered by then is given up on.
pub const MAX_MESSAGE_AGE: chrono::Duration = chrono::Duration::hours(24);
/// Silences are deleted this long after they end.
const SILENCE_KEEP: chrono::Duration = chrono::Duration::days(7);
/// Firing alerts are pushed to Alertmanager again after this long.
const REFRESH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// The wait before try `n + 1` after `n` failed tries: 2 s, doubling, at most 5 min.
pub fn backoff(failed_tries: u32) -> chrono::Duration {
    let secs = 2u64.saturating_mul(1 << failed_tries.saturating_sub(1).min(20));
    chrono::Duration::seconds(secs.min(300) as i64)
}

#[derive(Default)]
struct Taken {
    sweeps: usize,
    changes: usize,
    queued: usize,
    silenced: usize,
    dropped: usize,
}

#[derive(Default)]
struct Delivered {
    delivered: usize,
    failed: Vec<String>,
    expired: usize,
}

pub async fn run(ctx: &JobContext) -> JobResult {
    let store = &ctx.store;
    let taken = take_in(ctx).map_err(|e| JobFailure::new(e, json!({})))?;
    store
        .flush()
        .await
        .map_err(|e| JobFailure::new(e, json!({})))?;
    let delivered = deliver(ctx).await;
    refresh_alertmanagers(ctx).await;
    if let Err(e) = store.prune_silences(ctx.clock.now() - SILENCE_KEEP) {
        tracing::warn!("notify: pruning silences: {e}");
    }
    let flushed = store.flush().await;
    let summary = summary(ctx, &taken, &delivered);
    match (delivered, flushed) {
        (Err(e), _) | (_, Err(e)) => Err(JobFailure::new(e, summary)),
        (Ok(d), Ok(())) if !d.failed.is_empty() => Err(JobFailure::new(
            format!("delivery failed: {}", d.failed.join("; ")),
            summary,
        )),
        (Ok(_), Ok(())) => Ok(summary),
    }
}

fn summary(ctx: &JobContext, taken: &Taken, delivered: &Result<Delivered, StoreError>) -> Value {
    let (book, _) = ctx.store.alert_book().unwrap_or_default();
    let outbox = ctx.store.outbox().map(|o| o.len()).unwrap_or(0);
    let (sent, failed, expired) = match delivered {
        Ok(d) => (d.delivered, d.failed.len(), d.expired),
        Err(_) => (0, 0, 0),
    };
    json!({
        "sweeps": taken.sweeps,
        "changes": taken.changes,
        "queued": taken.queued,
        "silenced": taken.silenced,
        "firing": book.firing().count() + usize::from(book.isolation.firing),
        "delivered": sent,
        "failed": failed,
        "expired": expired,
        "dropped": taken.dropped,
        "outbox": outbox,
        "destinations": ctx.settings.notify.destinations.len(),
    })
}

/// Takes in the sweeps not seen yet and stores what they change.
fn take_in(ctx: &JobContext) -> Result<Taken, StoreError> {
    let store = &ctx.store;
    let settings = &ctx.settings.notify;
    let (mut book, cursor) = store.alert_book()?;
    let mut times = store.sweeps_after(cursor)?;
    let skip = times.len().saturating_sub(MAX_SWEEPS_PER_RUN);
    if skip > 0 {
        tracing::warn!(
            skipped = skip,
            "notify: {skip} sweeps not taken in (notify was not run for long); going on from the newest {MAX_SWEEPS_PER_RUN}"
        );
        times.drain(..skip);
    }
    let Some(&newest) = times.last() else {
        return Ok(Taken::default());
    };
    let list = store.peer_list()?;
    let peers: HashMap<&str, &Peer> = list
        .iter()
        .flat_map(|l| &l.peers)
        .map(|p| (p.id.as_str(), p))
        .collect();
    let silences = store.silences()?;
    let mut grouper = Grouper {
        peers: &peers,
        silences: &silences,
        ctx,
        records: Vec::new(),
        messages: Vec::new(),
        taken: Taken::default(),
    };
    for &at_ms in &times {
        let results = store.sweep_at(at_ms)?;
        let at = from_millis(at_ms);
        let checks = results.iter().map(|(id, r)| (id.as_str(), r));
        let changes = book.observe(at, checks, settings.thresholds);
        grouper.add(at, changes, false);
    }
    if let Some(list) = &list {
        let listed: HashSet<&str> = list.peers.iter().map(|p| p.id.as_str()).collect();
        let gone = book.forget_unlisted(&listed, from_millis(newest));
        grouper.add(from_millis(newest), gone, true);
    }
    let Grouper {
        records,
        messages,
        mut taken,
        ..
    } = grouper;
    taken.sweeps = times.len();
    let dropped = store.commit_alerts(Evaluation {
        book,
        cursor: newest,
        changes: records,
        messages,
    })?;
    if !dropped.is_empty() {
        tracing::warn!(
            dropped = dropped.len(),
            "notify: the outbox is full ({} messages): dropped the oldest",
            crate::store::OUTBOX_MAX
        );
        for entry in &dropped {
            count_dropped(ctx, entry);
        }
    }
    taken.dropped = dropped.len();
    Ok(taken)
}

/// Turns each sweep's changes into records and (what is to be sent) one message.
struct Grouper<'a> {
    peers: &'a HashMap<&'a str, &'a Peer>,
    silences: &'a [Silence],
    ctx: &'a JobContext,
    records: Vec<ChangeRecord>,
    messages: Vec<Message>,
    taken: Taken,
}

impl Grouper<'_> {
    fn add(&mut self, at: DateTime<Utc>, changes: Vec<Change>, left: bool) {
        let settings = &self.ctx.settings.notify;
        let mut notices = Vec::new();
        for change in changes {
            let peer = change.peer_id.as_deref().and_then(|id| self.peers.get(id));
            let notice = Notice::of(&change, peer.copied(), &settings.probe);
            let silence = self
                .silences
                .iter()
                .find(|s| s.matches(&notice.labels, change.at))
                .map(|s| s.id.clone());
            let fate = if left {
                "left the list"
            } else if silence.is_some() {
                self.taken.silenced += 1;
                "silenced"
            } else if settings.destinations.is_empty() {
                "no destination"
            } else {
                notices.push(notice.clone());
                "queued"
            };
            tracing::info!(
                alert = change.alert.as_str(),
                status = change.status.as_str(),
                peer = change.peer_id.as_deref().unwrap_or(""),
                fate,
                "alert {}",
                change.status.as_str()
            );
            self.taken.changes += 1;
            self.records.push(ChangeRecord {
                change,
                notice,
                fate: fate.to_string(),
                silence,
            });
        }
        if !notices.is_empty() {
            self.taken.queued += 1;
            self.messages
                .push(Message::new(at, settings.probe.clone(), notices));
        }
    }
}

fn count_dropped(ctx: &JobContext, entry: &OutboxEntry) {
    for dest in &ctx.settings.notify.destinations {
        if !entry.delivered.contains(&dest.id) {
            if let Err(e) = ctx
                .store
                .update_destination(&dest.label, |s| s.dropped += 1)
            {
                tracing::warn!("notify: counting a dropped message: {e}");
            }
        }
    }
}

/// Delivers every message that is due to every destination that lacks it.
async fn deliver(ctx: &JobContext) -> Result<Delivered, StoreError> {
    let store = &ctx.store;
    let destinations = &ctx.settings.notify.destinations;
    let mut out = Delivered::default();
    if destinations.is_empty() {
        return Ok(out);
    }
    // A destination that fails is not tried again in this run (its next try waits anyway).
    let mut failing: HashSet<String> = HashSet::new();
    for mut entry in store.outbox()? {
        let now = ctx.clock.now();
        if now - entry.message.created_at > MAX_MESSAGE_AGE {
            tracing::warn!(
                message = %entry.message.key,
                "notify: a message undelivered for {}h is given up",
                MAX_MESSAGE_AGE.num_hours()
            );
            count_dropped(ctx, &entry);
            store.update_outbox(&entry, true)?;
            out.expired += 1;
            continue;
        }
        let due: Vec<&Destination> = destinations
            .iter()
            .filter(|d| !entry.delivered.contains(&d.id) && !failing.contains(&d.id))
            .filter(|d| {
                let next = entry.attempts.get(&d.id).and_then(|a| a.next_at);
                next.is_none_or(|t| t <= now)
            })
            .collect();
        let message = &entry.message;
        let sends = due
            .iter()
            .map(|d| async move { (*d, ctx.notifier.send(d, message, now).await) });
        let results = futures::future::join_all(sends).await;
        for (dest, result) in results {
            let now = ctx.clock.now();
            if let Err(e) = &result {
                out.failed.push(format!("{}: {e}", dest.label));
                failing.insert(dest.id.clone());
            } else {
                out.delivered += 1;
            }
            record(ctx, &mut entry, dest, result, now)?;
        }
        let done = destinations.iter().all(|d| entry.delivered.contains(&d.id));
        store.update_outbox(&entry, done)?;
    }
    Ok(out)
}

/// Records one delivery attempt in the message and the destination's figures.
fn record(
    ctx: &JobContext,
    entry: &mut OutboxEntry,
    dest: &Destination,
    result: Result<(), crate::notifier::DeliveryError>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match result {
        Ok(()) => {
            let latency = entry
                .message
                .notices
                .iter()
                .map(|n| (now - n.at).num_milliseconds())
                .max()
                .unwrap_or(0);
            tracing::info!(
                destination = %dest.label,
                message = %entry.message.key,
                latency_ms = latency,
                "notify: delivered"
            );
            entry.delivered.insert(dest.id.clone());
            entry.attempts.remove(&dest.id);
            ctx.store.update_destination(&dest.label, |s| {
                s.sent += 1;
                s.last_ok_at = Some(now);
            })
        }
        Err(e) => {
            let attempt = entry.attempts.entry(dest.id.clone()).or_default();
            attempt.count += 1;
            let wait = backoff(attempt.count);
            attempt.next_at = Some(now + wait);
            attempt.last_error = Some(e.to_string());
            tracing::warn!(
                destination = %dest.label,
                attempt = attempt.count,
                "notify: {}: {e}; next try in {}s",
                dest.label,
                wait.num_seconds()
            );
            ctx.store.update_destination(&dest.label, |s| {
                s.failed += 1;
                s.last_error = Some(e.to_string());
                s.last_error_at = Some(now);
            })
        }
    }
}

/// Pushes the alerts firing now to each Alertmanager again, at most every [`REFRESH_EVERY`],
/// so they stay firing there (a pushed alert lapses after
/// [`crate::notifier::alertmanager::PUSH_LIFETIME`]).
async fn refresh_alertmanagers(ctx: &JobContext) {
    let managers: Vec<&Destination> = ctx
        .settings
        .notify
        .destinations
        .iter()
        .filter(|d| matches!(d.target, Target::Alertmanager { .. }))
        .collect();
    if managers.is_empty() {
        return;
    }
    let Ok((book, _)) = ctx.store.alert_book() else {
        return;
    };
    let notices = firing_notices(ctx, &book);
    if notices.is_empty() {
        return;
    }
    let stats = ctx.store.destination_stats().unwrap_or_default();
    let now = ctx.clock.now();
    let message = Message::new(now, ctx.settings.notify.probe.clone(), notices);
    for dest in managers {
        let fresh = stats
            .get(&dest.label)
            .and_then(|s| s.last_ok_at)
            .is_some_and(|t| now - t < REFRESH_EVERY && t <= now);
        if fresh {
            continue;
        }
        match ctx.notifier.send(dest, &message, now).await {
            Ok(()) => {
                let _ = ctx
                    .store
                    .update_destination(&dest.label, |s| s.last_ok_at = Some(now));
            }
            Err(e) => tracing::warn!("notify: {}: refreshing firing alerts: {e}", dest.label),
        }
    }
}

/// A notice for every alert firing now, as it was when it fired.
pub fn firing_notices(ctx: &JobContext, book: &AlertBook) -> Vec<Notice> {
    let list = ctx.store.peer_list().ok().flatten();
    let peer = |id: &str| {
        list.as_ref()
            .and_then(|l| l.peers.iter().find(|p| p.id == id))
    };
    let probe = &ctx.settings.notify.probe;
    let now = ctx.clock.now();
    let mut out = Vec::new();
    if book.isolation.firing {
        let at = book.isolation.since.unwrap_or(now);
        let change = Change {
            alert: AlertName::ProbeIsolated,
            status: Status::Firing,
            peer_id: None,
            at,
            started_at: at,
            error_kind: None,
            error: None,
            down: Some((book.isolation.down, book.isolation.checked)),
        };
        out.push(Notice::of(&change, None, probe));
    }
    for (id, state) in book.firing() {
        let at = state.since.unwrap_or(now);
        let change = Change {
            alert: AlertName::PeerDown,
            status: Status::Firing,
            peer_id: Some(id.to_string()),
            at,
            started_at: state.down_since.unwrap_or(at),
            error_kind: state.error_kind,
            error: state.error.clone(),
            down: None,
        };
        out.push(Notice::of(&change, peer(id), probe));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;
    use crate::domain::{ListSource, ManualClock, PeerList, ProbeResult, SweepSummary};
    use crate::store::Store;
    use crate::testkit::Receiver;

    #[test]
    fn backoff_doubles_from_two_seconds_to_five_minutes() {
        let secs: Vec<i64> = (1..=10).map(|n| backoff(n).num_seconds()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX).num_seconds(), 300);
    }

    fn options(hook: Option<&str>) -> Options {
        Options {
            notify_urls: hook.map(String::from),
            notify_failure_threshold: Some(2),
            notify_success_threshold: Some(2),
            probe_name: Some("unit".into()),
            ..Options::default()
        }
    }

    /// A context on the store in `dir` (opened anew), on `clock`.
    fn context(dir: &std::path::Path, hook: Option<&str>, clock: &ManualClock) -> JobContext {
        let ctx = crate::jobs::test_context(dir, options(hook));
        ctx.with_clock(clock.shared())
    }

    fn listed(store: &Store, ids: &[&str], clock: &ManualClock) {
        let peers = ids.iter().map(|id| Peer::for_tests(id)).collect();
        store
            .replace_peer_list(&PeerList {
                fetched_at: clock.shared().now(),
                source: ListSource::File,
                peers,
            })
            .unwrap();
    }

    /// One sweep at the clock's time: `pattern[i]` ('u' or 'd') for peer `ids[i]`; then a second.
    fn sweep(ctx: &JobContext, ids: &[&str], pattern: &str, clock: &ManualClock) {
        let at = clock.shared().now();
        let results: Vec<(String, ProbeResult)> = ids
            .iter()
            .zip(pattern.chars())
            .map(|(id, c)| {
                let up = c == 'u';
                let r = ProbeResult {
                    up,
                    rtt_us: up.then_some(900),
                    error_kind: (!up).then_some(crate::domain::ErrorKind::Timeout),
                    error: (!up).then(|| "no answer".into()),
                    checked_at: at,
                    candidates: Vec::new(),
                    node: None,
                    node_key: None,
                };
                (id.to_string(), r)
            })
            .collect();
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        ctx.store.record_sweep(&results, &summary).unwrap();
        clock.advance(std::time::Duration::from_secs(1));
    }

    fn statuses(ctx: &JobContext) -> Vec<String> {
        let mut out: Vec<String> = ctx
            .store
            .alert_changes(100)
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.change.peer_id.clone().unwrap_or_default(),
                    r.change.status.as_str()
                )
            })
            .collect();
        out.reverse();
        out
    }

    #[tokio::test]
    async fn state_survives_a_restart_and_a_restart_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Utc::now());
        let ids = ["a", "b"];
        {
            let ctx = context(dir.path(), None, &clock);
            listed(&ctx.store, &ids, &clock);
            sweep(&ctx, &ids, "du", &clock);
            run(&ctx).await.unwrap();
            assert!(
                statuses(&ctx).is_empty(),
                "one failure is under the threshold"
            );
            sweep(&ctx, &ids, "du", &clock);
            let summary = run(&ctx).await.unwrap();
            assert_eq!(statuses(&ctx), ["a firing"]);
            assert_eq!(summary["firing"], 1);
            // No destination: recorded, not queued.
            assert_eq!(
                ctx.store.alert_changes(1).unwrap()[0].fate,
                "no destination"
            );
            assert!(ctx.store.outbox().unwrap().is_empty());
        }
        // A new process: no sweep yet, so nothing changes; one good check is not yet recovery.
        let ctx = context(dir.path(), None, &clock);
        run(&ctx).await.unwrap();
        run(&ctx).await.unwrap();
        assert_eq!(statuses(&ctx), ["a firing"]);
        sweep(&ctx, &ids, "uu", &clock);
        run(&ctx).await.unwrap();
        assert_eq!(statuses(&ctx), ["a firing"]);
        sweep(&ctx, &ids, "uu", &clock);
        run(&ctx).await.unwrap();
        assert_eq!(statuses(&ctx), ["a firing", "a resolved"]);
        // Leaving the list while firing: resolved for the record only.
        sweep(&ctx, &ids, "dd", &clock);
        sweep(&ctx, &ids, "dd", &clock);
        run(&ctx).await.unwrap();
        listed(&ctx.store, &["b"], &clock);
        sweep(&ctx, &["b"], "d", &clock);
        run(&ctx).await.unwrap();
        let last = &ctx.store.alert_changes(1).unwrap()[0];
        assert_eq!(
            (last.change.peer_id.as_deref(), last.fate.as_str()),
            (Some("a"), "left the list")
        );
    }

    #[tokio::test]
    async fn a_failed_delivery_waits_its_backoff_then_is_retried_until_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::default();
        let hook = format!("{}/hook", receiver.start().await.unwrap());
        receiver.set_status(503);
        let clock = ManualClock::new(Utc::now());
        let ctx = context(dir.path(), Some(&hook), &clock);
        let ids = ["a"];
        listed(&ctx.store, &ids, &clock);
        // The first run takes in only the newest sweep; later runs every one since.
        sweep(&ctx, &ids, "d", &clock);
        run(&ctx).await.unwrap();
        sweep(&ctx, &ids, "d", &clock);
        let failed = run(&ctx).await.unwrap_err();
        assert!(
            failed.error.contains("webhook#1: answered HTTP 503"),
            "{}",
            failed.error
        );
        assert!(!failed.error.contains("/hook"), "{}", failed.error);
        assert_eq!(receiver.all().len(), 1);
        // Not due yet: no second try within the backoff.
        run(&ctx).await.unwrap();
        assert_eq!(receiver.all().len(), 1);
        clock.advance(std::time::Duration::from_secs(2));
        run(&ctx).await.unwrap_err();
        assert_eq!(receiver.all().len(), 2, "retried after 2 s");
        clock.advance(std::time::Duration::from_secs(3));
        run(&ctx).await.unwrap();
        assert_eq!(receiver.all().len(), 2, "the second wait is 4 s");
        receiver.set_status(200);
        clock.advance(std::time::Duration::from_secs(1));
        let done = run(&ctx).await.unwrap();
        assert_eq!(done["delivered"], 1);
        assert_eq!(receiver.delivered().len(), 1);
        assert!(ctx.store.outbox().unwrap().is_empty());
        let stats = ctx.store.destination_stats().unwrap();
        assert_eq!((stats["webhook#1"].sent, stats["webhook#1"].failed), (1, 2));
        // The same (alert, change) on every try.
        let keys: std::collections::BTreeSet<String> = receiver
            .all()
            .iter()
            .map(|r| r.header("idempotency-key").unwrap().to_string())
            .collect();
        assert_eq!(keys.len(), 1);
    }

    #[tokio::test]
    async fn messages_a_day_old_are_given_up_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Utc::now());
        let port = crate::testkit::free_port();
        let hook = format!("http://127.0.0.1:{port}/nobody");
        let ctx = context(dir.path(), Some(&hook), &clock);
        listed(&ctx.store, &["a"], &clock);
        sweep(&ctx, &["a"], "d", &clock);
        run(&ctx).await.unwrap();
        sweep(&ctx, &["a"], "d", &clock);
        run(&ctx).await.unwrap_err();
        assert_eq!(ctx.store.outbox().unwrap().len(), 1);
        clock.advance(std::time::Duration::from_secs(25 * 3600));
        let summary = run(&ctx).await.unwrap();
        assert_eq!(summary["expired"], 1);
        assert!(ctx.store.outbox().unwrap().is_empty());
        assert_eq!(
            ctx.store.destination_stats().unwrap()["webhook#1"].dropped,
            1
        );
    }

    #[tokio::test]
    async fn the_outbox_keeps_the_newest_messages_up_to_its_bound() {
        use crate::domain::{Message, ProbeIdentity};
        use crate::store::{Evaluation, OUTBOX_MAX};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "test").unwrap();
        let probe = ProbeIdentity {
            name: "unit".into(),
            region: None,
            public_url: None,
        };
        let message = |n: i64| Message::new(from_millis(n), probe.clone(), Vec::new());
        let first = store
            .commit_alerts(Evaluation {
                book: AlertBook::default(),
                cursor: 1,
                changes: Vec::new(),
                messages: (0..OUTBOX_MAX as i64 - 2).map(message).collect(),
            })
            .unwrap();
        assert!(first.is_empty());
        let dropped = store
            .commit_alerts(Evaluation {
                book: AlertBook::default(),
                cursor: 2,
                changes: Vec::new(),
                messages: (0..5).map(|n| message(10_000 + n)).collect(),
            })
            .unwrap();
        assert_eq!(dropped.len(), 3);
        assert_eq!(
            dropped
                .iter()
                .map(|e| e.message.created_at)
                .collect::<Vec<_>>(),
            (0..3).map(from_millis).collect::<Vec<_>>(),
            "the oldest go first"
        );
        let kept = store.outbox().unwrap();
        assert_eq!(kept.len(), OUTBOX_MAX);
        assert_eq!(kept.last().unwrap().message.created_at, from_millis(10_004));
        assert_eq!(store.outbox_dropped().unwrap(), 3);
    }
}
