//! Alert state from consecutive checks: when a peer's alert fires and resolves, when the probe
//! itself is cut off ([`AlertName::ProbeIsolated`]), and silences. No I/O: the notify job feeds
//! each sweep in, in order, and stores the book and the changes that come out.
//!
//! A peer's alert fires after [`Thresholds::failure`] down checks in a row and resolves after
//! [`Thresholds::success`] up checks in a row (Gatus's failure/success thresholds).
//!
//! When peer alerts would fire in a sweep in which more than half of the peers that were fine
//! (not firing), and at least [`ISOLATION_MIN_PEERS`], are down, the probe is most likely the
//! one cut off: `ProbeIsolated` fires instead, and every peer change is held (the streaks go on
//! counting) until it resolves after `success` sweeps in a row without that pattern. Then the
//! peers still down fire; the peers that came back stay quiet. Counting the peers down in the
//! sweep, rather than only those reaching the threshold in it, keeps a cut that falls in the
//! middle of a sweep one isolation, not a few peer alerts.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::verdict::{ErrorKind, ProbeResult};

/// Consecutive checks before an alert changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Down checks in a row before a peer's alert fires.
    pub failure: u32,
    /// Up checks in a row before it resolves.
    pub success: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failure: 3,
            success: 2,
        }
    }
}

/// The fewest peers down at once that make the probe "isolated".
pub const ISOLATION_MIN_PEERS: usize = 3;

/// What one sweep's checks add up to, for the isolation rule.
#[derive(Clone, Copy)]
struct Sweep {
    checked: usize,
    down: usize,
    /// Peers checked whose alert was not firing, and how many of them are down.
    fine: usize,
    fine_down: usize,
}

/// The alerts there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertName {
    /// One peer is down.
    PeerDown,
    /// Most peers went down at once: the probe is most likely cut off, not they.
    ProbeIsolated,
}

impl AlertName {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::PeerDown => "PeerDown",
            AlertName::ProbeIsolated => "ProbeIsolated",
        }
    }

    pub fn severity(self) -> &'static str {
        match self {
            AlertName::PeerDown => "critical",
            AlertName::ProbeIsolated => "warning",
        }
    }
}

/// Firing or resolved (the words of Alertmanager's payloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One peer's alert state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PeerAlert {
    pub firing: bool,
    /// When the alert last changed state (fired or resolved).
    pub since: Option<DateTime<Utc>>,
    pub down_streak: u32,
    pub up_streak: u32,
    /// The first down check of the current run of them.
    pub down_since: Option<DateTime<Utc>>,
    /// Of the latest down check.
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
}

/// The probe's own alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Isolation {
    pub firing: bool,
    pub since: Option<DateTime<Utc>>,
    /// While firing: sweeps in a row without the pattern.
    pub clear_streak: u32,
    /// Peers down, and peers checked, in the sweep that fired it.
    pub down: usize,
    pub checked: usize,
}

/// Every alert's state: what the notify job keeps in the store between sweeps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertBook {
    pub peers: BTreeMap<String, PeerAlert>,
    pub isolation: Isolation,
}

/// One change of one alert's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub alert: AlertName,
    pub status: Status,
    /// The peer (for `PeerDown`).
    pub peer_id: Option<String>,
    /// The check (sweep) that made the change.
    pub at: DateTime<Utc>,
    /// When the trouble began: the first down check, or the sweep that isolated the probe.
    pub started_at: DateTime<Utc>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
    /// For `ProbeIsolated`: peers down and peers checked when it fired.
    pub down: Option<(usize, usize)>,
}

impl Change {
    /// How long the trouble has lasted at the change.
    pub fn lasted(&self) -> chrono::Duration {
        self.at - self.started_at
    }
}

impl AlertBook {
    /// Takes in one sweep's checks (at `at`) and returns the changes they make.
    pub fn observe<'a>(
        &mut self,
        at: DateTime<Utc>,
        checks: impl IntoIterator<Item = (&'a str, &'a ProbeResult)>,
        t: Thresholds,
    ) -> Vec<Change> {
        let (failure, success) = (t.failure.max(1), t.success.max(1));
        let mut checked = 0;
        let mut down_now = 0;
        // Peers checked that were not firing, and how many of them are down now.
        let (mut fine, mut fine_down) = (0, 0);
        for (id, r) in checks {
            checked += 1;
            let state = self.peers.entry(id.to_string()).or_default();
            if !state.firing {
                fine += 1;
                fine_down += usize::from(!r.up);
            }
            if r.up {
                state.up_streak = state.up_streak.saturating_add(1);
                state.down_streak = 0;
                if !state.firing {
                    state.down_since = None;
                }
            } else {
                down_now += 1;
                state.down_streak = state.down_streak.saturating_add(1);
                state.up_streak = 0;
                state.down_since.get_or_insert(r.checked_at.min(at));
                state.error_kind = r.error_kind;
                state.error = r.error.clone();
            }
        }
        let sweep = Sweep {
            checked,
            down: down_now,
            fine,
            fine_down,
        };
        if self.held(at, sweep, failure, success) {
            return self.isolation_change(at).into_iter().collect();
        }
        let mut changes: Vec<Change> = self.isolation_change(at).into_iter().collect();
        for (id, state) in self.peers.iter_mut() {
            let status = if !state.firing && state.down_streak >= failure {
                Status::Firing
            } else if state.firing && state.up_streak >= success {
                Status::Resolved
            } else {
                continue;
            };
            changes.push(Change {
                alert: AlertName::PeerDown,
                status,
                peer_id: Some(id.clone()),
                at,
                started_at: state.down_since.unwrap_or(at),
                error_kind: state.error_kind,
                error: state.error.clone(),
                down: None,
            });
            state.firing = status == Status::Firing;
            state.since = Some(at);
            if status == Status::Resolved {
                state.down_since = None;
            }
        }
        changes
    }

    /// Judges isolation after a sweep's streaks are counted: whether peer changes are held.
    /// Leaves the isolation alert's new state for [`AlertBook::isolation_change`] to report.
    fn held(&mut self, at: DateTime<Utc>, sweep: Sweep, f: u32, s: u32) -> bool {
        let iso = &mut self.isolation;
        if iso.firing {
            let pattern = sweep.down >= ISOLATION_MIN_PEERS && sweep.down * 2 > sweep.checked;
            iso.clear_streak = if pattern { 0 } else { iso.clear_streak + 1 };
            if iso.clear_streak < s {
                return true;
            }
            iso.firing = false;
            iso.since = Some(at);
            return false;
        }
        let would_fire = self
            .peers
            .values()
            .filter(|p| !p.firing && p.down_streak >= f)
            .count();
        if would_fire > 0
            && sweep.fine_down >= ISOLATION_MIN_PEERS
            && sweep.fine_down * 2 > sweep.fine
        {
            *iso = Isolation {
                firing: true,
                since: Some(at),
                clear_streak: 0,
                down: sweep.down,
                checked: sweep.checked,
            };
            return true;
        }
        false
    }

    /// The isolation alert's change in the sweep at `at`, if it changed then.
    fn isolation_change(&self, at: DateTime<Utc>) -> Option<Change> {
        let iso = &self.isolation;
        if iso.since != Some(at) {
            return None;
        }
        Some(Change {
            alert: AlertName::ProbeIsolated,
            status: if iso.firing {
                Status::Firing
            } else {
                Status::Resolved
            },
            peer_id: None,
            at,
            started_at: at,
            error_kind: None,
            error: None,
            down: Some((iso.down, iso.checked)),
        })
    }

    /// Drops the peers no longer listed. A firing one resolves: its change is returned, for
    /// the record (a peer that leaves is not news).
    pub fn forget_unlisted(&mut self, listed: &HashSet<&str>, at: DateTime<Utc>) -> Vec<Change> {
        let gone: Vec<String> = self
            .peers
            .keys()
            .filter(|id| !listed.contains(id.as_str()))
            .cloned()
            .collect();
        let mut changes = Vec::new();
        for id in gone {
            let Some(state) = self.peers.remove(&id) else {
                continue;
            };
            if state.firing {
                changes.push(Change {
                    alert: AlertName::PeerDown,
                    status: Status::Resolved,
                    peer_id: Some(id),
                    at,
                    started_at: state.down_since.unwrap_or(at),
                    error_kind: state.error_kind,
                    error: state.error,
                    down: None,
                });
            }
        }
        changes
    }

    /// The alerts firing now: the isolation first, then peers by id.
    pub fn firing(&self) -> impl Iterator<Item = (&str, &PeerAlert)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.firing)
            .map(|(id, p)| (id.as_str(), p))
    }
}

/// Labels a silence may match on.
pub const SILENCE_LABELS: [&str; 5] = [
    "alertname",
    "peer_id",
    "peer_name",
    "network_name",
    "protocol",
];

/// A silence: changes of alerts whose labels match, in its time range, are recorded, not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    /// Label → value; every one must be equal. At least one, from [`SILENCE_LABELS`].
    pub matchers: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(default)]
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

impl Silence {
    /// Checks the matchers and the time range; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err(format!(
                "a silence needs at least one matcher, on {}",
                SILENCE_LABELS.join(", ")
            ));
        }
        for (label, value) in &self.matchers {
            if !SILENCE_LABELS.contains(&label.as_str()) {
                return Err(format!(
                    "cannot match on {label:?}; matchers may name {}",
                    SILENCE_LABELS.join(", ")
                ));
            }
            if value.is_empty() || value.len() > 256 {
                return Err(format!("matcher {label:?}: a value of 1 to 256 bytes"));
            }
        }
        if self.ends_at <= self.starts_at {
            return Err("ends_at must be after starts_at".into());
        }
        if self.comment.len() > 1024 {
            return Err("comment: at most 1024 bytes".into());
        }
        Ok(())
    }

    pub fn active_at(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }

    /// Whether it silences an alert with `labels` at `at`.
    pub fn matches(&self, labels: &BTreeMap<String, String>, at: DateTime<Utc>) -> bool {
        self.active_at(at)
            && self
                .matchers
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_millis;

    fn check(up: bool, at: DateTime<Utc>) -> ProbeResult {
        ProbeResult {
            up,
            rtt_us: up.then_some(1000),
            error_kind: (!up).then_some(ErrorKind::ConnectRefused),
            error: (!up).then(|| "refused".to_string()),
            checked_at: at,
            candidates: Vec::new(),
            node: None,
            node_key: None,
        }
    }

    /// Feeds one sweep: `pattern[i]` is peer `p{i}`'s check ('u' up, 'd' down).
    fn sweep(book: &mut AlertBook, n: i64, pattern: &str, t: Thresholds) -> Vec<Change> {
        let at = from_millis(n * 1000);
        let results: Vec<(String, ProbeResult)> = pattern
            .chars()
            .enumerate()
            .map(|(i, c)| (format!("p{i}"), check(c == 'u', at)))
            .collect();
        book.observe(at, results.iter().map(|(id, r)| (id.as_str(), r)), t)
    }

    fn said(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                let who = c.peer_id.clone().unwrap_or_else(|| c.alert.as_str().into());
                format!("{who} {}", c.status.as_str())
            })
            .collect()
    }

    #[test]
    fn fires_after_the_failure_threshold_and_resolves_after_the_success_threshold() {
        let t = Thresholds::default();
        let mut book = AlertBook::default();
        assert!(sweep(&mut book, 1, "uu", t).is_empty());
        assert!(sweep(&mut book, 2, "du", t).is_empty());
        assert!(sweep(&mut book, 3, "du", t).is_empty());
        let fired = sweep(&mut book, 4, "du", t);
        assert_eq!(said(&fired), ["p0 firing"]);
        assert_eq!(
            fired[0].started_at,
            from_millis(2000),
            "down since the first failure"
        );
        assert_eq!(fired[0].lasted(), chrono::Duration::seconds(2));
        assert_eq!(fired[0].error_kind, Some(ErrorKind::ConnectRefused));
        assert!(sweep(&mut book, 5, "du", t).is_empty(), "fires once");
        assert!(sweep(&mut book, 6, "uu", t).is_empty());
        assert!(
            sweep(&mut book, 7, "du", t).is_empty(),
            "a flap resets the count"
        );
        assert!(sweep(&mut book, 8, "uu", t).is_empty());
        let resolved = sweep(&mut book, 9, "uu", t);
        assert_eq!(said(&resolved), ["p0 resolved"]);
        assert_eq!(resolved[0].started_at, from_millis(2000));
        assert!(book.firing().next().is_none());
        // Short blips under the threshold never fire.
        for n in 10..20 {
            let p = if n % 3 == 0 { "du" } else { "uu" };
            assert!(sweep(&mut book, n, p, t).is_empty());
        }
    }

    #[test]
    fn most_peers_down_at_once_is_one_isolation_alert_and_holds_the_peers() {
        let t = Thresholds {
            failure: 2,
            success: 2,
        };
        let mut book = AlertBook::default();
        sweep(&mut book, 1, "uuuuuuuuuu", t);
        assert!(sweep(&mut book, 2, "dddddddduu", t).is_empty());
        let iso = sweep(&mut book, 3, "dddddddduu", t);
        assert_eq!(said(&iso), ["ProbeIsolated firing"]);
        assert_eq!(iso[0].down, Some((8, 10)));
        assert!(sweep(&mut book, 4, "dddddddduu", t).is_empty(), "held");
        // One sweep without the pattern is not yet recovery.
        assert!(sweep(&mut book, 5, "ddduuuuuuu", t).is_empty());
        let back = sweep(&mut book, 6, "ddduuuuuuu", t);
        assert_eq!(
            said(&back),
            [
                "ProbeIsolated resolved",
                "p0 firing",
                "p1 firing",
                "p2 firing"
            ],
            "the peers still down fire once the probe is back; the others never did"
        );
        assert_eq!(back[1].started_at, from_millis(2000));
    }

    #[test]
    fn a_cut_in_the_middle_of_a_sweep_is_still_one_isolation() {
        let t = Thresholds {
            failure: 2,
            success: 2,
        };
        let mut book = AlertBook::default();
        sweep(&mut book, 1, "uuuuuuuuuu", t);
        // The cut falls mid-sweep: five peers see it one sweep before the other three.
        assert!(sweep(&mut book, 2, "ddddduuuuu", t).is_empty());
        assert_eq!(
            said(&sweep(&mut book, 3, "dddddddduu", t)),
            ["ProbeIsolated firing"]
        );
        assert!(
            sweep(&mut book, 4, "dddddddduu", t).is_empty(),
            "the other three are held"
        );
    }

    #[test]
    fn peers_long_down_do_not_make_the_next_one_an_isolation() {
        let t = Thresholds {
            failure: 1,
            success: 1,
        };
        let mut book = AlertBook::default();
        // Six peers go down one sweep after another, each its own alert.
        for n in 1..=6 {
            let pattern = format!("{}{}", "d".repeat(n), "u".repeat(10 - n));
            let fired = sweep(&mut book, n as i64, &pattern, t);
            assert_eq!(said(&fired), [format!("p{} firing", n - 1)]);
        }
        // Seven of ten are down now, but of the four that were fine only one went down.
        let one = sweep(&mut book, 7, "ddddddduuu", t);
        assert_eq!(said(&one), ["p6 firing"]);
    }

    #[test]
    fn isolation_needs_more_than_half_and_at_least_three() {
        let t = Thresholds {
            failure: 1,
            success: 1,
        };
        let mut book = AlertBook::default();
        assert_eq!(
            said(&sweep(&mut book, 1, "dd", t)),
            ["p0 firing", "p1 firing"]
        );
        let mut book = AlertBook::default();
        assert_eq!(
            said(&sweep(&mut book, 1, "dddddduuuuuu", t)).len(),
            6,
            "half"
        );
        let mut book = AlertBook::default();
        assert_eq!(
            said(&sweep(&mut book, 1, "dddu", t)),
            ["ProbeIsolated firing"]
        );
    }

    #[test]
    fn peers_that_leave_resolve_for_the_record_and_are_forgotten() {
        let t = Thresholds {
            failure: 1,
            success: 1,
        };
        let mut book = AlertBook::default();
        sweep(&mut book, 1, "duu", t);
        let listed: HashSet<&str> = ["p2"].into();
        let gone = book.forget_unlisted(&listed, from_millis(5000));
        assert_eq!(said(&gone), ["p0 resolved"]);
        assert_eq!(book.peers.keys().collect::<Vec<_>>(), ["p2"]);
    }

    #[test]
    fn silences_match_every_matcher_within_their_range() {
        let labels: BTreeMap<String, String> = [("peer_id", "7"), ("protocol", "tcp")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let silence = Silence {
            id: "s".into(),
            matchers: [("peer_id".to_string(), "7".to_string())].into(),
            starts_at: from_millis(1000),
            ends_at: from_millis(5000),
            comment: String::new(),
            created_at: from_millis(0),
        };
        assert!(silence.validate().is_ok());
        assert!(silence.matches(&labels, from_millis(1000)));
        assert!(
            !silence.matches(&labels, from_millis(5000)),
            "ends exclusive"
        );
        assert!(!silence.matches(&labels, from_millis(999)));
        let mut other = silence.clone();
        other.matchers.insert("protocol".into(), "udp".into());
        assert!(!other.matches(&labels, from_millis(2000)));
        let mut bad = silence.clone();
        bad.matchers = [("host".to_string(), "x".to_string())].into();
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("cannot match on \"host\""));
        bad.matchers.clear();
        assert!(bad.validate().is_err());
        let mut backwards = silence;
        backwards.ends_at = from_millis(0);
        assert!(backwards.validate().is_err());
    }
}
