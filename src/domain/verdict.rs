//! The verdict of one probe of one peer, and the summary of a sweep.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The classes of a failed probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Timeout,
    ConnectRefused,
    Dns,
    HandshakeRejected,
    ProtocolError,
    UnsupportedProtocol,
    /// An indirect peer URL (http, https) could not be resolved into peer URLs.
    ResolveFailed,
}

impl ErrorKind {
    /// Every kind; the store keeps a kind as its index here, so only append.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Timeout,
        ErrorKind::ConnectRefused,
        ErrorKind::Dns,
        ErrorKind::HandshakeRejected,
        ErrorKind::ProtocolError,
        ErrorKind::UnsupportedProtocol,
        ErrorKind::ResolveFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::Dns => "dns",
            ErrorKind::HandshakeRejected => "handshake_rejected",
            ErrorKind::ProtocolError => "protocol_error",
            ErrorKind::UnsupportedProtocol => "unsupported_protocol",
            ErrorKind::ResolveFailed => "resolve_failed",
        }
    }
}

/// The verdict of one probe of one peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub up: bool,
    /// Round trip of an EasyTier ping/pong, microseconds; only when up.
    pub rtt_us: Option<u64>,
    pub error_kind: Option<ErrorKind>,
    /// Human-readable detail of a failure, for logs and the API.
    pub error: Option<String>,
    pub checked_at: DateTime<Utc>,
    /// For an indirect peer (an http or https page naming peer URLs): each URL it named and
    /// its verdict. Empty for a direct peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// What the node said of itself after the handshake, when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeInfo>,
    /// The node's static public key (base64, as EasyTier writes keys), when the handshake was
    /// secure mode's Noise one; `None` after a legacy handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
}

/// A secure-mode node's static public key as the probe knows it, the way SSH knows a host key:
/// the key first met (or last accepted by an operator), and the key it presents now. A node
/// presenting another key than the accepted one is flagged until it presents the accepted key
/// again or an operator accepts the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKey {
    /// The key trusted for this peer (base64).
    pub accepted: String,
    /// The key the node presented last (base64).
    pub current: String,
    /// When the accepted key was first met or accepted.
    pub since: DateTime<Utc>,
    /// When the node first presented a key other than the accepted one; `None` while it
    /// presents the accepted one.
    pub changed_at: Option<DateTime<Utc>>,
}

impl NodeKey {
    /// A key met for the first time.
    pub fn first(key: &str, at: DateTime<Utc>) -> NodeKey {
        NodeKey {
            accepted: key.to_string(),
            current: key.to_string(),
            since: at,
            changed_at: None,
        }
    }

    /// Whether the node presents another key than the accepted one.
    pub fn changed(&self) -> bool {
        self.current != self.accepted
    }

    /// The record after the node presented `key` at `at`; `None` when nothing changes.
    pub fn presented(&self, key: &str, at: DateTime<Utc>) -> Option<NodeKey> {
        if key == self.current {
            return None;
        }
        let back = key == self.accepted;
        Some(NodeKey {
            current: key.to_string(),
            changed_at: if back {
                None
            } else {
                self.changed_at.or(Some(at))
            },
            ..self.clone()
        })
    }

    /// The record once an operator accepts the current key at `at`.
    pub fn accept(&self, at: DateTime<Utc>) -> NodeKey {
        NodeKey {
            accepted: self.current.clone(),
            current: self.current.clone(),
            since: at,
            changed_at: None,
        }
    }
}

/// What a node tells its peers of itself after a handshake (its route sync): read from what it
/// sends while the probe pings it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The EasyTier version the node runs, e.g. `"2.0.3"` (as it says it; may carry a commit).
    pub version: String,
    /// Its host name (or the name it was given), without the `PublicServer_` prefix that a node
    /// shows a foreign network.
    pub hostname: Option<String>,
    /// Whether it runs as a public server (relaying other networks).
    #[serde(default)]
    pub public_server: bool,
}

/// One peer URL an indirect peer's page named, and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub url: String,
    pub up: bool,
    pub rtt_us: Option<u64>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
}

/// Aggregate of the latest sweep, which status-report sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub at: DateTime<Utc>,
    pub peers: usize,
    pub reachable: usize,
    pub avg_rtt_us: Option<u64>,
    pub max_rtt_us: Option<u64>,
}

impl SweepSummary {
    pub fn from_results<'a>(
        at: DateTime<Utc>,
        results: impl IntoIterator<Item = &'a ProbeResult>,
    ) -> Self {
        let mut peers = 0;
        let mut rtts = Vec::new();
        for r in results {
            peers += 1;
            if r.up {
                rtts.push(r.rtt_us.unwrap_or(0));
            }
        }
        let reachable = rtts.len();
        let avg_rtt_us = (reachable > 0).then(|| rtts.iter().sum::<u64>() / reachable as u64);
        SweepSummary {
            at,
            peers,
            reachable,
            avg_rtt_us,
            max_rtt_us: rtts.iter().copied().max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_key_is_flagged_from_its_first_change_until_accepted_or_restored() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let a = NodeKey::first("A", t(0));
        assert!(!a.changed());
        assert_eq!(a.presented("A", t(5)), None, "the same key changes nothing");
        let b = a.presented("B", t(10)).unwrap();
        assert!(b.changed());
        assert_eq!((b.accepted.as_str(), b.changed_at), ("A", Some(t(10))));
        // A second change keeps the time of the first and the key trusted.
        let c = b.presented("C", t(20)).unwrap();
        assert_eq!((c.accepted.as_str(), c.current.as_str()), ("A", "C"));
        assert_eq!(c.changed_at, Some(t(10)));
        // Back to the accepted key: no longer flagged.
        let back = c.presented("A", t(30)).unwrap();
        assert!(!back.changed());
        assert_eq!(back.changed_at, None);
        // Accepting the new key trusts it from then on.
        let accepted = c.accept(t(40));
        assert!(!accepted.changed());
        assert_eq!((accepted.accepted.as_str(), accepted.since), ("C", t(40)));
        assert_eq!(accepted.presented("C", t(50)), None);
    }

    #[test]
    fn sweep_summary_averages_reachable_peers_only() {
        let now = Utc::now();
        let r = |up, rtt| ProbeResult {
            up,
            rtt_us: rtt,
            error_kind: None,
            error: None,
            checked_at: now,
            candidates: Vec::new(),
            node: None,
            node_key: None,
        };
        let s = SweepSummary::from_results(
            now,
            &[r(true, Some(1000)), r(true, Some(3500)), r(false, None)],
        );
        assert_eq!((s.peers, s.reachable), (3, 2));
        assert_eq!(s.avg_rtt_us, Some(2250));
        assert_eq!(s.max_rtt_us, Some(3500));
        let s = SweepSummary::from_results(now, &[r(false, None)]);
        assert_eq!(s.avg_rtt_us, None);
    }
}
