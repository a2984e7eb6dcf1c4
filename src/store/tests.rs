use super::codec::*;
use super::keys::*;
use super::migrate::*;
use super::peers::SlotEntry;
use super::*;
use crate::domain::time::from_millis;
use crate::domain::*;
use chrono::{DateTime, TimeZone, Utc};
/// For tests of roll-ups over simulated gaps: no clock-jump guard.
const UNBOUNDED: Duration = Duration::days(100_000);
use chrono::Duration;

fn peer(id: &str) -> Peer {
    Peer::for_tests(id)
}

fn result(up: bool, at: DateTime<Utc>) -> ProbeResult {
    ProbeResult {
        up,
        rtt_us: up.then_some(1500),
        error_kind: None,
        error: None,
        checked_at: at,
        candidates: Vec::new(),
        node: None,
        node_key: None,
    }
}

#[test]
fn a_second_open_is_refused_with_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Store::open(dir.path(), "serve").unwrap();
    let err = Store::open(dir.path(), "run-job").unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("`serve`"), "{err}");
}

#[test]
fn peer_list_replacement_counts_and_drops_latest_of_removed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    let now = Utc::now();
    let list = |ids: &[&str]| PeerList {
        fetched_at: now,
        source: ListSource::File,
        peers: ids.iter().map(|i| peer(i)).collect(),
    };
    assert_eq!(s.replace_peer_list(&list(&["a", "b"])).unwrap(), (2, 0));
    let results = vec![
        ("a".to_string(), result(true, now)),
        ("b".to_string(), result(false, now)),
    ];
    let summary = SweepSummary::from_results(now, results.iter().map(|(_, r)| r));
    s.record_sweep(&results, &summary).unwrap();
    assert_eq!(s.replace_peer_list(&list(&["b", "c"])).unwrap(), (1, 1));
    assert!(s.latest_result("a").unwrap().is_none());
    assert!(s.latest_result("b").unwrap().is_some());
    assert_eq!(s.last_sweep().unwrap().unwrap().reachable, 1);
    let ids: Vec<_> = s
        .peer_list()
        .unwrap()
        .unwrap()
        .peers
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["b", "c"]);
}

#[test]
fn the_urls_an_indirect_peer_resolved_to_go_with_its_latest_result() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    s.replace_peer_list(&list(&["page", "direct"])).unwrap();
    let now = Utc::now();
    let via = Candidate {
        url: "tcp://10.0.0.1:11010".into(),
        up: true,
        rtt_us: Some(1500),
        error_kind: None,
        error: None,
    };
    let results = vec![
        (
            "page".to_string(),
            ProbeResult {
                candidates: vec![via.clone()],
                ..result(true, now)
            },
        ),
        ("direct".to_string(), result(true, now)),
    ];
    let summary = SweepSummary::from_results(now, results.iter().map(|(_, r)| r));
    s.record_sweep(&results, &summary).unwrap();
    let latest = s.latest_results().unwrap();
    assert_eq!(latest["page"].candidates, std::slice::from_ref(&via));
    assert!(latest["direct"].candidates.is_empty());
    assert_eq!(s.latest_result("page").unwrap().unwrap().candidates, [via]);
    // A later sweep where the page named nothing: its old URLs are not shown with it.
    let later = now + Duration::seconds(5);
    let results = vec![("page".to_string(), result(false, later))];
    let summary = SweepSummary::from_results(later, results.iter().map(|(_, r)| r));
    s.record_sweep(&results, &summary).unwrap();
    assert!(s.latest_results().unwrap()["page"].candidates.is_empty());
}

#[test]
fn what_a_node_said_of_itself_is_kept_until_it_says_otherwise_or_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    s.replace_peer_list(&list(&["a", "b"])).unwrap();
    let info = |v: &str| NodeInfo {
        version: v.into(),
        hostname: Some("node-a".into()),
        public_server: true,
    };
    let sweep = |at: DateTime<Utc>, a: Option<NodeInfo>| {
        let results = vec![
            (
                "a".to_string(),
                ProbeResult {
                    node: a,
                    ..result(true, at)
                },
            ),
            ("b".to_string(), result(false, at)),
        ];
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        s.record_sweep(&results, &summary).unwrap();
    };
    let now = Utc::now();
    sweep(now, Some(info("2.0.3")));
    assert_eq!(s.latest_results().unwrap()["a"].node, Some(info("2.0.3")));
    assert_eq!(s.latest_results().unwrap()["b"].node, None);
    // A sweep that read nothing of it keeps what was read; a new version replaces it.
    sweep(now + Duration::seconds(5), None);
    assert_eq!(
        s.latest_result("a").unwrap().unwrap().node,
        Some(info("2.0.3"))
    );
    sweep(now + Duration::seconds(10), Some(info("2.6.4")));
    assert_eq!(
        s.latest_result("a").unwrap().unwrap().node,
        Some(info("2.6.4"))
    );
    // A peer that leaves the list takes its info with it at the next sweep.
    s.replace_peer_list(&list(&["b"])).unwrap();
    let at = now + Duration::seconds(15);
    let results = vec![("b".to_string(), result(true, at))];
    s.record_sweep(
        &results,
        &SweepSummary::from_results(at, results.iter().map(|(_, r)| r)),
    )
    .unwrap();
    assert!(s.node_info().is_empty());
}

#[test]
fn node_keys_are_kept_flagged_when_changed_and_accepted_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let sweep = |s: &Store, at: DateTime<Utc>, ids: &[&str], key: Option<&str>| {
        let results: Vec<_> = ids
            .iter()
            .map(|id| {
                let r = ProbeResult {
                    node_key: key.filter(|_| *id == "a").map(String::from),
                    ..result(true, at)
                };
                (id.to_string(), r)
            })
            .collect();
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        s.record_sweep(&results, &summary).unwrap();
    };
    {
        let s = Store::open(dir.path(), "t").unwrap();
        s.replace_peer_list(&list(&["a", "b"])).unwrap();
        sweep(&s, now, &["a", "b"], Some("K1"));
        let keys = s.node_keys();
        assert_eq!(keys.len(), 1, "only a peer met in secure mode has a key");
        assert_eq!(keys["a"], NodeKey::first("K1", now));
        // A sweep without a key (the node was unreachable) keeps the one known.
        sweep(&s, now + Duration::seconds(5), &["a", "b"], None);
        assert_eq!(s.node_keys()["a"], NodeKey::first("K1", now));
        sweep(&s, now + Duration::seconds(10), &["a", "b"], Some("K2"));
    }
    // Flagged, and still after a restart.
    let s = Store::open(dir.path(), "t").unwrap();
    let changed = s.node_keys()["a"].clone();
    assert!(changed.changed());
    assert_eq!(
        (changed.accepted.as_str(), changed.current.as_str()),
        ("K1", "K2")
    );
    assert_eq!(changed.changed_at, Some(now + Duration::seconds(10)));
    assert_eq!(
        s.accept_node_key("b", None, now).unwrap(),
        KeyAccept::Unknown,
        "no key known"
    );
    let at = now + Duration::seconds(20);
    // The operator saw K3, the node presents K2: nothing is trusted unseen.
    assert_eq!(
        s.accept_node_key("a", Some("K3"), at).unwrap(),
        KeyAccept::NotPresented(changed.clone())
    );
    assert_eq!(s.node_keys()["a"], changed);
    let KeyAccept::Trusted(accepted) = s.accept_node_key("a", Some("K2"), at).unwrap() else {
        panic!("the key presented is trusted");
    };
    assert_eq!(s.node_keys()["a"], accepted);
    assert!(!accepted.changed());
    assert_eq!((accepted.accepted.as_str(), accepted.since), ("K2", at));
    // Accepting the trusted key again changes nothing (not even since when it is trusted).
    let later = now + Duration::seconds(25);
    assert_eq!(
        s.accept_node_key("a", None, later).unwrap(),
        KeyAccept::Trusted(accepted.clone())
    );
    // A peer missing from a list keeps its key (and would keep its flag) while the store knows
    // it; once it is forgotten, the key goes with it.
    s.replace_peer_list(&list(&["b"])).unwrap();
    sweep(&s, now + Duration::seconds(30), &["b"], None);
    assert_eq!(s.node_keys()["a"], accepted);
    let month = now + Duration::days(40);
    s.forget_slots(month.timestamp_millis(), &Retention::default())
        .unwrap();
    sweep(&s, month, &["b"], None);
    assert!(s.node_keys().is_empty());
}

fn list(ids: &[&str]) -> PeerList {
    PeerList {
        fetched_at: Utc::now(),
        source: ListSource::File,
        peers: ids.iter().map(|i| peer(i)).collect(),
    }
}

/// Three hours and a bit of sweeps every 20 s over two peers: `a` up with a varying RTT,
/// `b` down every fourth sweep. Returns the time of the last sweep and, per peer,
/// (checks, up, rtt sum).
fn three_hours(s: &Store, keep: &Retention) -> (DateTime<Utc>, [(u64, u64, u64); 2]) {
    // Ending a little before now (peers leave at the wall clock's time).
    let hour = Level::Hour.floor(Utc::now().timestamp_millis());
    let t0 = from_millis(hour) - Duration::hours(4) + Duration::seconds(30 * 60 + 10);
    let mut expected = [(0, 0, 0); 2];
    let mut at = t0;
    for i in 0..600u64 {
        at = t0 + Duration::seconds(20 * i as i64);
        let a = ProbeResult {
            rtt_us: Some(1000 + (i % 7) * 100),
            ..result(true, at)
        };
        let b = result(i % 4 != 0, at);
        for (n, r) in [&a, &b].into_iter().enumerate() {
            expected[n].0 += 1;
            expected[n].1 += u64::from(r.up);
            expected[n].2 += r.rtt_us.unwrap_or(0);
        }
        let results = vec![("a".to_string(), a), ("b".to_string(), b)];
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        s.record_sweep(&results, &summary).unwrap();
        s.maintain(at, keep, UNBOUNDED).unwrap();
    }
    (at, expected)
}

/// A store with peers "a" and "b", and a retention that keeps 26 hours of minutes.
fn two_peers(dir: &std::path::Path) -> (Store, Retention) {
    let s = Store::open(dir, "t").unwrap();
    s.replace_peer_list(&list(&["a", "b"])).unwrap();
    let keep = Retention {
        raw: Duration::minutes(10),
        minute: Duration::hours(26),
        ..Retention::default()
    };
    (s, keep)
}

/// A crash after a roll-up wrote its rows but before it moved the frontier: the next
/// maintenance makes the same rows again, and nothing is counted twice.
#[test]
fn a_roll_up_cut_short_before_its_frontier_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keep) = two_peers(dir.path());
    let (last, expected) = three_hours(&s, &keep);
    let from = from_millis(Level::Hour.floor(last.timestamp_millis())) - Duration::hours(4);
    let to = last + Duration::seconds(1);
    let hour_frontier = s.frontier(Level::Hour).unwrap().unwrap();
    // The frontier as it was before the last hour rows were made.
    s.frontier_tree(Level::Hour)
        .insert(
            frontier_key(Level::Hour),
            &(hour_frontier - 3 * 3_600_000).to_be_bytes(),
        )
        .unwrap();
    let done = s.maintain(last, &keep, UNBOUNDED).unwrap();
    assert!(done.rolled_up >= 3, "{done:?}");
    assert_eq!(s.frontier(Level::Hour).unwrap(), Some(hour_frontier));
    let roster = s.roster().unwrap();
    for (n, id) in ["a", "b"].into_iter().enumerate() {
        let slot = roster[id];
        let got = s.collect(Level::Hour, from, to, None, Some(slot)).unwrap();
        let b = got[&slot].values().next().unwrap();
        assert_eq!((b.checks, b.up, b.rtt_sum_us), expected[n], "{id}");
    }
}

#[test]
fn sweeps_roll_up_and_every_level_gives_the_same_totals() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keep) = two_peers(dir.path());
    let (last, expected) = three_hours(&s, &keep);
    let roster = s.roster().unwrap();
    let to = last + Duration::seconds(1);
    let from = from_millis(Level::Hour.floor(last.timestamp_millis())) - Duration::hours(4);
    for level in [Level::Minute, Level::Hour, Level::Day] {
        let all = s.collect(level, from, to, None, None).unwrap();
        for (n, id) in ["a", "b"].into_iter().enumerate() {
            let slot = roster[id];
            let one = s.collect(level, from, to, None, Some(slot)).unwrap();
            assert_eq!(one[&slot], all[&slot], "{level:?} {id}");
            let b = one[&slot].values().next().unwrap();
            assert_eq!(
                (b.checks, b.up, b.rtt_sum_us),
                expected[n],
                "{level:?} {id}"
            );
        }
    }
    let a = s
        .collect(Level::Hour, from, to, None, Some(roster["a"]))
        .unwrap()[&roster["a"]][&Level::Hour.floor(from.timestamp_millis())]
        .clone();
    assert_eq!((a.rtt_min_us, a.rtt_max_us), (1000, 1600));
    // Hourly series: hh:30:10 to hh:59:50 is 90 sweeps, then 180 an hour, 150 left over.
    let series = s
        .collect(
            Level::Minute,
            from,
            to,
            Some(Duration::hours(1)),
            Some(roster["b"]),
        )
        .unwrap()
        .remove(&roster["b"])
        .unwrap();
    let checks: Vec<u64> = series.values().map(|b| b.checks).collect();
    assert_eq!(checks, [90, 180, 180, 150]);
    // Raw rows beyond ten minutes went; the finer levels before the frontiers stay.
    let size = s.history_size();
    assert!((30..=34).contains(&size[0].1), "{size:?}");
    assert!(size[1].1 >= 180, "{size:?}");
    assert_eq!(size[2].1, 3, "{size:?}");
    // (a day row only if those hours crossed midnight UTC)
    assert!(size[3].1 <= 1, "{size:?}");
    assert_eq!(s.latest_result("a").unwrap().unwrap().checked_at, last);

    // A year and more later, with `b` gone: everything has aged out but the newest raw row,
    // and `b`'s slot is forgotten.
    s.replace_peer_list(&list(&["a"])).unwrap();
    assert!(s.slot("b").unwrap().is_some());
    let later = last + Duration::days(402);
    s.maintain(later, &keep, UNBOUNDED).unwrap();
    let size = s.history_size();
    assert_eq!(
        size.iter().map(|(_, rows, _)| *rows).collect::<Vec<_>>(),
        [1, 0, 0, 0],
        "{size:?}"
    );
    assert!(s.slot("b").unwrap().is_none());
    assert!(s.slot("a").unwrap().is_some());
}

#[test]
fn a_clock_jump_ahead_is_held_for_one_sweep_then_followed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    s.replace_peer_list(&list(&["a"])).unwrap();
    let keep = Retention::default();
    let bound = Duration::hours(1);
    let t0 = from_millis(Level::Hour.floor(Utc::now().timestamp_millis())) - Duration::hours(3);
    let sweep = |at: DateTime<Utc>| {
        let results = vec![("a".to_string(), result(true, at))];
        s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
            .unwrap();
        s.maintain(at, &keep, bound).unwrap()
    };
    for i in 0..6 {
        assert!(!sweep(t0 + Duration::minutes(10 * i)).held);
    }
    // Two days ahead (a real step, or the process was stopped that long): held once...
    let step = t0 + Duration::days(2);
    assert!(sweep(step).held);
    // ...and followed once the next sweep confirms it.
    let done = sweep(step + Duration::minutes(1));
    assert!(!done.held && done.rolled_up > 0, "{done:?}");
    // A single reading far ahead, then the clock is right again: the row it filed in the
    // future goes, nothing was acted on as of it.
    let right = step + Duration::minutes(2);
    assert!(sweep(right + Duration::days(30)).held);
    let done = sweep(right + Duration::minutes(1));
    assert!(!done.held, "{done:?}");
    assert_eq!(done.dropped_future, 1, "{done:?}");
}

#[test]
fn peers_gone_a_month_are_forgotten_and_their_slots_given_again_once_empty() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    let keep = Retention::default();
    let t0 = from_millis(Level::Day.floor(Utc::now().timestamp_millis())) - Duration::days(500);
    let ids = |p: &str| (0..10).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let at_time = |p: &str, at: DateTime<Utc>| {
        let names = ids(p);
        let mut l = list(&names.iter().map(String::as_str).collect::<Vec<_>>());
        l.fetched_at = at;
        s.replace_peer_list(&l).unwrap();
    };
    let sweep = |id: &str, at: DateTime<Utc>| {
        let results = vec![(id.to_string(), result(true, at))];
        s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
            .unwrap();
        s.maintain(at, &keep, UNBOUNDED).unwrap();
    };
    at_time("a", t0);
    sweep("a0", t0);
    at_time("b", t0 + Duration::hours(1));
    sweep("b0", t0 + Duration::hours(1));
    // A month and two days on: the `a` peers are forgotten; their slots are not given yet.
    sweep("b0", t0 + Duration::days(32));
    assert!(s.slot("a0").unwrap().is_none());
    assert_eq!(s.slot("b0").unwrap(), Some(10));
    at_time("c", t0 + Duration::days(33));
    assert_eq!(s.slot("c0").unwrap(), Some(20));
    // Once every row that could hold them is gone, the slots are given again: the counter
    // does not grow with churn.
    sweep("c0", t0 + Duration::days(450));
    at_time("d", t0 + Duration::days(451));
    let mut given: Vec<u32> = ids("d")
        .iter()
        .map(|id| s.slot(id).unwrap().unwrap())
        .collect();
    given.sort();
    assert_eq!(given, (0..10).collect::<Vec<_>>());
    assert_eq!(s.next_slot().unwrap(), 30);
}

#[test]
fn an_unchanged_peer_list_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    let first = list(&["a", "b"]);
    s.replace_peer_list(&first).unwrap();
    let mut same = list(&["a", "b"]);
    same.fetched_at = first.fetched_at + Duration::minutes(1);
    assert_eq!(s.replace_peer_list(&same).unwrap(), (0, 0));
    // Not rewritten: the stored list is still the first one.
    assert_eq!(s.peer_list().unwrap().unwrap().fetched_at, first.fetched_at);
    let mut changed = list(&["a", "c"]);
    changed.fetched_at = same.fetched_at;
    assert_eq!(s.replace_peer_list(&changed).unwrap(), (1, 1));
    assert_eq!(
        s.peer_list().unwrap().unwrap().fetched_at,
        changed.fetched_at
    );
}

#[test]
fn a_damaged_chunk_is_left_out_and_the_rest_rolls_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    s.replace_peer_list(&list(&["a", "b"])).unwrap();
    let t0 = from_millis(Level::Hour.floor(Utc::now().timestamp_millis())) - Duration::hours(2);
    for i in 0..3 {
        let at = t0 + Duration::seconds(10 * i);
        let results = vec![("a".to_string(), result(true, at))];
        s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
            .unwrap();
    }
    s.inner
        .raw
        .insert(
            row_key(t0.timestamp_millis() + 10_000, 0),
            &b"\xff\xff garbage"[..],
        )
        .unwrap();
    let done = s
        .maintain(t0 + Duration::minutes(5), &Retention::default(), UNBOUNDED)
        .unwrap();
    assert_eq!(done.skipped, 1);
    let slot = s.slot("a").unwrap().unwrap();
    let got = s
        .collect(
            Level::Minute,
            t0,
            t0 + Duration::minutes(5),
            None,
            Some(slot),
        )
        .unwrap();
    assert_eq!(got[&slot].values().next().unwrap().checks, 2);
}

#[test]
fn a_clock_set_back_loses_no_check_and_freezes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    s.replace_peer_list(&list(&["a"])).unwrap();
    let keep = Retention::default();
    let t0 =
        from_millis(Level::Minute.floor(Utc::now().timestamp_millis())) - Duration::minutes(30);
    let sweep = |at: DateTime<Utc>| {
        let results = vec![("a".to_string(), result(true, at))];
        s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
            .unwrap();
        s.maintain(at, &keep, UNBOUNDED).unwrap();
    };
    for i in 0..10 {
        sweep(t0 + Duration::seconds(30 * i));
    }
    // The clock jumps back a year (a board without a real-time clock, before NTP)...
    let back = t0 - Duration::days(365);
    sweep(back);
    sweep(back + Duration::seconds(30));
    let latest = s.latest_result("a").unwrap().unwrap();
    assert_eq!(
        latest.checked_at,
        back + Duration::seconds(30),
        "the latest is the last sweep"
    );
    // ...then is right again: every check is counted, none twice.
    sweep(t0 + Duration::minutes(10));
    let later = t0 + Duration::minutes(12);
    s.maintain(later, &keep, UNBOUNDED).unwrap();
    let slot = s.slot("a").unwrap().unwrap();
    let all = s
        .collect(
            Level::Minute,
            t0 - Duration::hours(1),
            later,
            None,
            Some(slot),
        )
        .unwrap();
    assert_eq!(all[&slot].values().next().unwrap().checks, 13);
    assert_eq!(
        s.latest_result("a").unwrap().unwrap().checked_at,
        t0 + Duration::minutes(10)
    );
}

#[test]
fn a_schema_1_store_is_migrated_keeping_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 5).unwrap();
    {
        let s = Store::open(dir.path(), "t").unwrap();
        s.inner
            .peers
            .insert(KEY_PEERS, serde_json::to_vec(&list(&["a", "b"])).unwrap())
            .unwrap();
        let history = s.inner.db.open_tree("history").unwrap();
        let latest = s.inner.db.open_tree("latest").unwrap();
        // `a` and `gone` (no longer listed) every 30 s for 5 minutes; `gone` half down.
        for i in 0..10 {
            let at = t0 + Duration::seconds(30 * i);
            for (id, up) in [("a", true), ("gone", i % 2 == 0)] {
                let sample = Sample {
                    at,
                    up,
                    rtt_us: up.then_some(2000),
                    error_kind: None,
                };
                history
                    .insert(history_key(id, at), serde_json::to_vec(&sample).unwrap())
                    .unwrap();
            }
            latest
                .insert("a", serde_json::to_vec(&result(true, at)).unwrap())
                .unwrap();
        }
        // As if an earlier attempt had given `gone` its slot and then crashed.
        let entry = SlotEntry {
            slot: 7,
            removed_ms: Some(0),
        };
        s.inner
            .slots
            .insert("gone", encode(&entry, "slot").unwrap())
            .unwrap();
        s.inner
            .meta
            .insert(KEY_NEXT_SLOT, &8u32.to_be_bytes())
            .unwrap();
        s.inner
            .meta
            .insert(KEY_SCHEMA, &1u32.to_be_bytes())
            .unwrap();
        s.inner.db.flush().unwrap();
    }
    let s = Store::open(dir.path(), "t").unwrap();
    let names = s.inner.db.tree_names();
    assert!(!names.iter().any(|n| n.as_ref() == b"history"));
    let from = t0 - Duration::hours(1);
    let to = t0 + Duration::hours(1);
    for (id, up) in [("a", 10), ("gone", 5)] {
        let slot = s.slot(id).unwrap().unwrap();
        let got = s
            .collect(Level::Minute, from, to, None, Some(slot))
            .unwrap()
            .remove(&slot)
            .unwrap();
        let b = got.values().next().unwrap();
        assert_eq!((b.checks, b.up), (10, up), "{id}");
    }
    assert_eq!(
        s.latest_result("a").unwrap().unwrap().checked_at,
        t0 + Duration::seconds(270)
    );
    assert!(s.latest_result("b").unwrap().is_none());
    assert_eq!(s.roster().unwrap().len(), 2);
}

#[test]
fn runs_are_pruned_by_count_and_age_keeping_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    let now = Utc::now();
    let record = |job: JobName, started_at| {
        let run = JobRun {
            duration_ms: 1,
            ..JobRun::new(job, Trigger::Schedule, started_at, Outcome::Ok)
        };
        let run = s.start_run(run).unwrap();
        s.put_run(&run).unwrap();
    };
    for i in 0..30 {
        record(
            JobName::ProbeSweep,
            now - Duration::days(60) + Duration::days(2 * i),
        );
    }
    // Another job's runs, whose keys sort after these: untouched.
    for _ in 0..3 {
        record(JobName::StatusReport, now);
    }
    let keep = Retention {
        runs_keep: 10,
        ..Retention::default()
    };
    assert_eq!(s.prune_runs("probe-sweep", now, &keep).unwrap(), 20);
    assert_eq!(s.runs("status-report", 100).unwrap().len(), 3);
    assert_eq!(s.runs("probe-sweep", 100).unwrap().len(), 10);
    // 30 days of age: of the last ten (18 days old to the newest), all stay; at a year
    // on, only the newest.
    let later = now + Duration::days(365);
    s.prune_runs("probe-sweep", later, &keep).unwrap();
    let left = s.runs("probe-sweep", 100).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].started_at, now - Duration::days(2));
}

#[test]
fn a_stored_sweep_run_keeps_only_down_results() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    let results: Vec<serde_json::Value> = (0..90)
        .map(|i| serde_json::json!({"id": i.to_string(), "up": i % 3 != 0}))
        .collect();
    let run = JobRun {
        duration_ms: 1,
        summary: serde_json::json!({"peers": 90, "results": results}),
        ..JobRun::new(JobName::ProbeSweep, Trigger::Cli, Utc::now(), Outcome::Ok)
    };
    let run = s.start_run(run).unwrap();
    s.put_run(&run).unwrap();
    let stored = s.last_run("probe-sweep").unwrap().unwrap();
    let kept = stored.summary["results"].as_array().unwrap();
    assert_eq!(kept.len(), STORED_RESULTS);
    assert!(kept.iter().all(|r| r["up"] == false));
    assert_eq!(stored.summary["results_omitted"], 70);
    assert_eq!(stored.summary["peers"], 90);
}

#[test]
fn runs_newest_first_and_interrupted_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), "t").unwrap();
        for outcome in [Outcome::Ok, Outcome::Failed] {
            let run = JobRun::new(
                JobName::PeerFetch,
                Trigger::Cli,
                Utc::now(),
                Outcome::Running,
            );
            let mut run = s.start_run(run).unwrap();
            run.outcome = outcome;
            s.put_run(&run).unwrap();
        }
        let run = JobRun::new(
            JobName::PeerFetch,
            Trigger::Schedule,
            Utc::now(),
            Outcome::Running,
        );
        s.start_run(run).unwrap();
        s.inner.db.flush().unwrap();
    }
    let s = Store::open(dir.path(), "t").unwrap();
    let runs = s.runs("peer-fetch", 10).unwrap();
    let outcomes: Vec<_> = runs.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Interrupted, Outcome::Failed, Outcome::Ok]
    );
    assert_eq!(
        s.last_success("peer-fetch").unwrap().unwrap().id,
        runs[2].id
    );
    assert!(s.runs("probe-sweep", 10).unwrap().is_empty());
    // The finished runs' durations outlive the process; the interrupted one has none.
    assert_eq!(s.durations("peer-fetch").unwrap().count, 2);
    assert_eq!(s.durations("probe-sweep").unwrap(), Durations::default());
}

#[test]
fn newer_or_unknown_schema_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), "t").unwrap();
        s.inner
            .meta
            .insert(KEY_SCHEMA, &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        s.inner.db.flush().unwrap();
    }
    let err = Store::open(dir.path(), "t").unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(dir.path().join("db").exists());

    let other = tempfile::tempdir().unwrap();
    {
        let db = sled::open(other.path().join("db")).unwrap();
        db.open_tree("somebody-else")
            .unwrap()
            .insert("k", "v")
            .unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(other.path(), "t").unwrap_err();
    assert!(matches!(err, StoreError::UnknownSchema { .. }), "{err}");
    let db = sled::open(other.path().join("db")).unwrap();
    assert_eq!(db.open_tree("somebody-else").unwrap().len(), 1);
}

mod damage_tests {
    use super::*;

    /// A process killed while sled wrote a snapshot leaves `snap.<lsn>.generating` half
    /// written; sled alone would refuse the store ("Corruption"). It opens, with what it held.
    #[test]
    fn a_half_written_snapshot_left_by_a_kill_is_no_damage() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), "t").unwrap();
            s.replace_peer_list(&list(&["a", "b"])).unwrap();
            s.inner.db.flush().unwrap();
            s.inner.archive.flush().unwrap();
        }
        for db in ["db", "archive"] {
            let half = dir.path().join(db).join("snap.FFFFFFFFFFFFFFFF.generating");
            std::fs::write(&half, vec![0x5Au8; 40]).unwrap();
        }
        let s = Store::open(dir.path(), "t").expect("the store opens");
        assert_eq!(s.peer_list().unwrap().unwrap().peers.len(), 2);
        assert_eq!(s.roster().unwrap().len(), 2);
        for db in ["db", "archive"] {
            assert!(!dir
                .path()
                .join(db)
                .join("snap.FFFFFFFFFFFFFFFF.generating")
                .exists());
        }
    }

    #[test]
    fn damaged_files_give_an_error_naming_the_path_and_are_kept() {
        for victim in ["conf", "db"] {
            let dir = tempfile::tempdir().unwrap();
            {
                let s = Store::open(dir.path(), "t").unwrap();
                s.inner.meta.insert(b"x", b"1".to_vec()).unwrap();
                s.inner.db.flush().unwrap();
            }
            let path = dir.path().join("db").join(victim);
            let len = std::fs::metadata(&path).unwrap().len().max(64);
            std::fs::write(&path, vec![0xA5u8; len as usize]).unwrap();
            // (sled may rewrite a damaged file while it opens it; ours must not go further.)
            for _ in 0..2 {
                let err = Store::open(dir.path(), "t").unwrap_err();
                assert!(
                    err.to_string().contains(dir.path().to_str().unwrap()),
                    "{victim}: {err}"
                );
                assert!(path.exists(), "{victim} was deleted");
            }
        }
    }
}

/// The fleet uptimes `/api/nodes` reads from kept row counts are exactly those of the
/// window reads, as sweeps land, rows roll up and prune (an hour retention shorter than the
/// 7d window, so pruned rows must leave the kept counts), and peers join.
#[test]
fn fleet_uptimes_from_kept_counts_match_the_window_reads() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), "t").unwrap();
    s.replace_peer_list(&list(&["a", "b"])).unwrap();
    let keep = Retention {
        hour: Duration::hours(30),
        ..Retention::default()
    };
    let windows: Vec<Window> = ["1h", "24h", "7d"]
        .iter()
        .map(|n| Window::named(n).unwrap())
        .collect();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 7).unwrap();
    let mut checked = 0;
    // Every 2 minutes for 3 days, then every 10 s for 2 hours; "c" joins on day 2.
    let times = (0..3 * 720)
        .map(|i| t0 + Duration::minutes(2 * i))
        .chain((0..720).map(|i| t0 + Duration::days(3) + Duration::seconds(10 * i)));
    let mut ids = vec!["a", "b"];
    for (n, at) in times.enumerate() {
        if at == t0 + Duration::days(2) {
            ids.push("c");
            s.replace_peer_list(&list(&ids)).unwrap();
        }
        let results: Vec<(String, ProbeResult)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), result((n + i) % (3 + i) != 0, at)))
            .collect();
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        s.record_sweep(&results, &summary).unwrap();
        s.maintain(at, &keep, UNBOUNDED).unwrap();
        if n % 97 != 0 && n != 3 * 720 + 719 {
            continue;
        }
        let now = at + Duration::seconds(3);
        let fast = s.uptimes(&windows, now).unwrap();
        for (w, fast) in windows.iter().zip(&fast) {
            let slow = s.window(w, now, None, false).unwrap();
            for slot in 0..4 {
                let want = slow.get(&slot).map(|points| {
                    let b = points.values().fold(Bucket::default(), |mut all, b| {
                        all.merge(b);
                        all
                    });
                    (b.checks, b.up)
                });
                assert_eq!(
                    fast.of(slot),
                    want.filter(|(c, _)| *c > 0),
                    "{} at {now}, slot {slot}",
                    w.name
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 30, "{checked}");
    // Only the rows the windows read are kept: 7d of 30 h of hours, 1 h of minutes at most.
    assert!(s.kept_row_counts() <= 31 + 61, "{}", s.kept_row_counts());
    assert!(s.kept_row_counts() > 24, "{}", s.kept_row_counts());
}

/// The node page's recent errors: the newest down checks of one peer from the raw rows, newest
/// first, with their kind, and not another peer's.
#[test]
fn recent_down_checks_are_one_peers_newest_from_the_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = two_peers(dir.path());
    let t0 = Utc::now() - Duration::minutes(5);
    for i in 0..10i64 {
        let at = t0 + Duration::seconds(10 * i);
        // a is down on the even sweeps (refused), b always down (timeout).
        let a = ProbeResult {
            error_kind: (i % 2 == 0).then_some(ErrorKind::ConnectRefused),
            ..result(i % 2 != 0, at)
        };
        let b = ProbeResult {
            error_kind: Some(ErrorKind::Timeout),
            ..result(false, at)
        };
        let results = vec![("a".to_string(), a), ("b".to_string(), b)];
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        s.record_sweep(&results, &summary).unwrap();
    }
    let a = s.slot("a").unwrap().unwrap();
    let down = s.recent_down(a, 3).unwrap();
    let times: Vec<_> = down.iter().map(|r| r.checked_at).collect();
    let at = |i: i64| from_millis((t0 + Duration::seconds(10 * i)).timestamp_millis());
    assert_eq!(times, [at(8), at(6), at(4)]);
    assert!(down
        .iter()
        .all(|r| !r.up && r.error_kind == Some(ErrorKind::ConnectRefused)));
    assert_eq!(s.recent_down(a, 100).unwrap().len(), 5);
}
