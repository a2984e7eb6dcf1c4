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
