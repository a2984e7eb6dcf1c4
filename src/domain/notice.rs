//! What goes out when alerts change: a [`Notice`] per alert change (labels, texts, keys) and a
//! [`Message`] per sweep that changed something, which every destination gets once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::alert::{AlertName, Change, Status};
use super::peer::Peer;
use super::time::rfc3339_seconds;

/// Who sends: this probe, as alerts name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeIdentity {
    /// `PROBE_NAME`, by default the host name.
    pub name: String,
    pub region: Option<String>,
    /// `PUBLIC_URL`: base of the links in alerts.
    pub public_url: Option<String>,
}

/// The labels every alert carries, in this order.
pub const LABELS: [&str; 8] = [
    "alertname",
    "peer_id",
    "peer_name",
    "protocol",
    "network_name",
    "probe",
    "region",
    "severity",
];

/// One alert's change of state, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub status: Status,
    /// Every one of [`LABELS`]; empty where it does not apply (no peer for `ProbeIsolated`).
    pub labels: BTreeMap<String, String>,
    /// One line.
    pub summary: String,
    pub description: String,
    /// When the trouble began.
    pub starts_at: DateTime<Utc>,
    /// When it ended (resolved).
    pub ends_at: Option<DateTime<Utc>>,
    /// The change's check.
    pub at: DateTime<Utc>,
    /// The peer's row on the status page (or the page), when `PUBLIC_URL` is set.
    pub link: Option<String>,
    /// The alert's identity (hash of its labels, as Alertmanager's).
    pub fingerprint: String,
    /// Stable idempotency key of this (alert, state change).
    pub key: String,
}

impl Notice {
    /// The notice of `change`; `peer` is the listed peer it is about, when known.
    pub fn of(change: &Change, peer: Option<&Peer>, probe: &ProbeIdentity) -> Notice {
        let label = |v: Option<&str>| v.unwrap_or_default().to_string();
        let peer_id = change.peer_id.as_deref();
        let labels: BTreeMap<String, String> = LABELS
            .iter()
            .map(|k| {
                let v = match *k {
                    "alertname" => change.alert.as_str().to_string(),
                    "peer_id" => label(peer_id),
                    "peer_name" => label(peer.map(|p| p.name.as_str()).or(peer_id)),
                    "protocol" => label(peer.map(|p| p.protocol.as_str())),
                    "network_name" => label(peer.map(|p| p.network_name.as_str())),
                    "probe" => probe.name.clone(),
                    "region" => label(probe.region.as_deref()),
                    _ => change.alert.severity().to_string(),
                };
                (k.to_string(), v)
            })
            .collect();
        let fingerprint = hex(
            &digest(labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])),
            8,
        );
        let at_ms = change.at.timestamp_millis().to_string();
        let key = hex(
            &digest([
                probe.name.as_str(),
                change.alert.as_str(),
                peer_id.unwrap_or_default(),
                change.status.as_str(),
                &at_ms,
            ]),
            16,
        );
        let (summary, description) = texts(change, peer, probe);
        let link = probe.public_url.as_deref().map(|base| {
            let base = base.trim_end_matches('/');
            match peer_id {
                // The peer's own page: its chart, uptimes and recent errors.
                Some(id) => format!("{base}/nodes/{}", encode_segment(id)),
                None => format!("{base}/"),
            }
        });
        Notice {
            status: change.status,
            labels,
            summary,
            description,
            starts_at: change.started_at,
            ends_at: (change.status == Status::Resolved).then_some(change.at),
            at: change.at,
            link,
            fingerprint,
            key,
        }
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

fn texts(change: &Change, peer: Option<&Peer>, probe: &ProbeIdentity) -> (String, String) {
    let from = match &probe.region {
        Some(region) => format!("probe {} ({region})", probe.name),
        None => format!("probe {}", probe.name),
    };
    let lasted = human(change.lasted());
    match (change.alert, change.status) {
        (AlertName::ProbeIsolated, Status::Firing) => {
            let (down, checked) = change.down.unwrap_or_default();
            (
                format!("{from} is cut off: {down} of {checked} peers went down at once"),
                format!(
                    "{down} of {checked} peers went down in the same sweep, so {from} itself \
                     is most likely cut off. Peer alerts are held until it reaches its peers again."
                ),
            )
        }
        (AlertName::ProbeIsolated, Status::Resolved) => (
            format!("{from} reaches its peers again"),
            format!("{from} reaches its peers again after {lasted}; held peer alerts follow."),
        ),
        (AlertName::PeerDown, status) => {
            let id = change.peer_id.as_deref().unwrap_or_default();
            let (name, place) = match peer {
                Some(p) => (
                    p.name.as_str(),
                    format!(
                        "{}://{}:{} in network {}",
                        p.protocol, p.host, p.port, p.network_name
                    ),
                ),
                None => (id, "no longer listed".to_string()),
            };
            let why = match (change.error_kind, &change.error) {
                (Some(kind), Some(detail)) => format!("{}: {detail}", kind.as_str()),
                (Some(kind), None) => kind.as_str().to_string(),
                (None, Some(detail)) => detail.clone(),
                (None, None) => "down".to_string(),
            };
            match status {
                Status::Firing => (
                    format!("peer {name} is down ({why})"),
                    format!(
                        "Peer {name} (id {id}, {place}) is down since {}, {lasted} ago, \
                         as seen from {from}: {why}.",
                        rfc3339_seconds(change.started_at)
                    ),
                ),
                Status::Resolved => (
                    format!("peer {name} is up again"),
                    format!(
                        "Peer {name} (id {id}, {place}) is up again after {lasted} down, \
                         as seen from {from}."
                    ),
                ),
            }
        }
    }
}

/// What one sweep's changes send: every destination gets it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Stable idempotency key of the message (from its notices' keys).
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub probe: ProbeIdentity,
    pub notices: Vec<Notice>,
}

impl Message {
    pub fn new(created_at: DateTime<Utc>, probe: ProbeIdentity, notices: Vec<Notice>) -> Message {
        let key = hex(&digest(notices.iter().map(|n| n.key.as_str())), 16);
        Message {
            key,
            created_at,
            probe,
            notices,
        }
    }

    pub fn count(&self, status: Status) -> usize {
        self.notices.iter().filter(|n| n.status == status).count()
    }

    /// Firing if any notice is firing (Alertmanager's group status).
    pub fn status(&self) -> Status {
        if self.count(Status::Firing) > 0 {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// A one-line title: the one notice's summary, or the counts.
    pub fn title(&self) -> String {
        match self.notices.as_slice() {
            [one] => format!("[{}] {}", one.status.as_str().to_uppercase(), one.summary),
            _ => {
                let (firing, resolved) = (self.count(Status::Firing), self.count(Status::Resolved));
                let mut parts = Vec::new();
                if firing > 0 {
                    parts.push(format!("{firing} firing"));
                }
                if resolved > 0 {
                    parts.push(format!("{resolved} resolved"));
                }
                format!("[{}] easytier-probe {}", parts.join(", "), self.probe.name)
            }
        }
    }

    /// The body as plain text: a paragraph per notice, with its link.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        for n in &self.notices {
            let mut p = format!("{}: {}", n.status.as_str().to_uppercase(), n.description);
            if let Some(link) = &n.link {
                p.push('\n');
                p.push_str(link);
            }
            out.push(p);
        }
        out.join("\n\n")
    }
}

/// "2h 5m", "3m 10s", "42s".
pub fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

fn digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().to_vec()
}

fn hex(bytes: &[u8], take: usize) -> String {
    bytes
        .iter()
        .take(take)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A path segment or fragment, percent-encoded (peer ids are free text): how alerts link to a
/// peer's row and how the status page names it.
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_millis;
    use crate::domain::ErrorKind;

    fn change(status: Status, at: i64) -> Change {
        Change {
            alert: AlertName::PeerDown,
            status,
            peer_id: Some("a b".into()),
            at: from_millis(at),
            started_at: from_millis(1_000),
            error_kind: Some(ErrorKind::Timeout),
            error: Some("no answer in 3s".into()),
            down: None,
        }
    }

    fn probe() -> ProbeIdentity {
        ProbeIdentity {
            name: "fra-1".into(),
            region: Some("eu".into()),
            public_url: Some("https://probe.example/".into()),
        }
    }

    #[test]
    fn a_notice_names_the_peer_the_probe_and_links_to_the_peer() {
        let mut peer = Peer::for_tests("a b");
        peer.name = "Frankfurt public".into();
        let n = Notice::of(&change(Status::Firing, 3_725_000), Some(&peer), &probe());
        assert_eq!(n.labels.keys().count(), LABELS.len());
        assert_eq!(n.label("alertname"), "PeerDown");
        assert_eq!(n.label("peer_name"), "Frankfurt public");
        assert_eq!(n.label("network_name"), "n");
        assert_eq!(n.label("probe"), "fra-1");
        assert_eq!(n.label("region"), "eu");
        assert_eq!(n.label("severity"), "critical");
        assert_eq!(n.link.as_deref(), Some("https://probe.example/nodes/a%20b"));
        assert!(
            n.description.contains("tcp://127.0.0.1:1 in network n"),
            "{}",
            n.description
        );
        assert!(n.description.contains("timeout: no answer in 3s"));
        assert!(n.description.contains("1h 2m ago"), "{}", n.description);
        assert!(n.description.contains("probe fra-1 (eu)"));
        assert_eq!(n.ends_at, None);
    }

    #[test]
    fn keys_are_stable_per_change_and_fingerprints_per_alert() {
        let peer = Peer::for_tests("a b");
        let fired = Notice::of(&change(Status::Firing, 5_000), Some(&peer), &probe());
        let again = Notice::of(&change(Status::Firing, 5_000), Some(&peer), &probe());
        let resolved = Notice::of(&change(Status::Resolved, 9_000), Some(&peer), &probe());
        assert_eq!(fired.key, again.key);
        assert_ne!(fired.key, resolved.key);
        assert_eq!(fired.fingerprint, resolved.fingerprint);
        assert_eq!(fired.fingerprint.len(), 16);
        assert_eq!(resolved.ends_at, Some(from_millis(9_000)));
        let m = Message::new(from_millis(9_000), probe(), vec![fired, resolved]);
        assert_eq!(m.title(), "[1 firing, 1 resolved] easytier-probe fra-1");
        assert_eq!(m.status(), Status::Firing);
        assert!(m.text().contains("RESOLVED: Peer a b"), "{}", m.text());
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let s = chrono::Duration::seconds;
        assert_eq!(human(s(42)), "42s");
        assert_eq!(human(s(190)), "3m 10s");
        assert_eq!(human(s(7500)), "2h 5m");
        assert_eq!(human(s(90_000)), "1d 1h");
        assert_eq!(human(s(-5)), "0s");
    }
}
