//! The answers, typed: what the API returns in `data`, and what `run-job --json` prints.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::domain::time::{ms, rfc3339};
use crate::domain::{
    Bucket, ErrorKind, JobName, JobRun, NodeKey, Outcome, Peer, ProbeResult, Trigger,
};

/// A job run, as `/api/jobs` and `run-job --json` show it.
#[derive(Debug, Serialize)]
pub struct RunView {
    /// Absent from `run-job --json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub job: String,
    pub trigger: Trigger,
    pub started_at: String,
    pub duration_ms: u64,
    pub outcome: Outcome,
    pub summary: Value,
    pub error: Option<String>,
}

impl RunView {
    /// The run as the API shows it.
    pub fn of(run: &JobRun) -> Self {
        RunView {
            id: Some(run.id),
            job: run.job.clone(),
            trigger: run.trigger,
            started_at: rfc3339(run.started_at),
            duration_ms: run.duration_ms,
            outcome: run.outcome,
            summary: run.summary.clone(),
            error: run.error.clone(),
        }
    }

    /// The run as `run-job --json` prints it: no id, and the outcome `ok` or `failed`.
    pub fn one_shot(run: &JobRun) -> Self {
        RunView {
            id: None,
            outcome: match run.outcome {
                Outcome::Ok => Outcome::Ok,
                _ => Outcome::Failed,
            },
            ..RunView::of(run)
        }
    }
}

/// `{"items": [..]}`.
#[derive(Debug, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// One job of `/api/jobs`.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub name: JobName,
    pub schedule: String,
    pub timeout_s: u64,
    pub overlap: String,
    pub next_run_at: Option<String>,
    pub last_run: Option<RunView>,
}

/// `/health`.
#[derive(Debug, Serialize)]
pub struct HealthView {
    pub status: &'static str,
    pub reason: Option<String>,
    pub version: &'static str,
    pub uptime_s: u64,
    pub peers: usize,
    pub jobs: BTreeMap<JobName, JobHealth>,
}

/// A job's last finished run, in `/health`.
#[derive(Debug, Serialize)]
pub struct JobHealth {
    pub last_run_at: Option<String>,
    pub last_outcome: Option<Outcome>,
}

/// `/api/nodes`.
#[derive(Debug, Serialize)]
pub struct NodesView {
    /// Peers that match the query (`state`, `q`), before paging.
    pub total: usize,
    /// Peers up, down and not yet checked among those that match `q` (whatever `state`).
    pub counts: NodeCounts,
    pub items: Vec<NodeView>,
}

/// How many peers are in each state.
#[derive(Debug, Serialize)]
pub struct NodeCounts {
    pub up: usize,
    pub down: usize,
    pub unchecked: usize,
}

/// One listed peer with its latest result and uptimes.
#[derive(Debug, Serialize)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub protocol: String,
    pub network_name: String,
    pub up: Option<bool>,
    pub rtt_ms: Option<f64>,
    pub error_kind: Option<ErrorKind>,
    pub last_checked_at: Option<String>,
    /// Window name → uptime percentage (`null` without checks).
    pub uptime: BTreeMap<&'static str, Option<f64>>,
    /// An indirect peer's (http, https): each peer URL its page named in the latest sweep,
    /// with its verdict. Left out for direct peers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateView>,
    /// The EasyTier version the node said it runs when last read; `null` when never read.
    pub version: Option<String>,
    /// The node's host name, as it said it; `null` when never read.
    pub hostname: Option<String>,
    /// The static key of a node met in secure mode; `null` for one never met in it.
    pub node_key: Option<NodeKeyView>,
}

/// A secure-mode node's key, flagged when it presents another than the one trusted.
#[derive(Debug, Serialize)]
pub struct NodeKeyView {
    /// The key the node presented last (base64).
    pub key: String,
    /// Whether that is another key than the trusted one.
    pub changed: bool,
    /// The key trusted: the first met, or the last accepted.
    pub accepted_key: String,
    /// When the trusted key was first met or accepted.
    pub accepted_at: String,
    /// When the node first presented another key; `null` while it presents the trusted one.
    pub changed_at: Option<String>,
}

impl NodeKeyView {
    pub fn of(key: &NodeKey) -> Self {
        NodeKeyView {
            key: key.current.clone(),
            changed: key.changed(),
            accepted_key: key.accepted.clone(),
            accepted_at: rfc3339(key.since),
            changed_at: key.changed_at.map(rfc3339),
        }
    }
}

/// One URL an indirect peer's page named, and its verdict.
#[derive(Debug, Serialize)]
pub struct CandidateView {
    pub url: String,
    pub up: bool,
    pub rtt_ms: Option<f64>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
}

impl NodeView {
    pub fn new(
        peer: &Peer,
        latest: Option<&ProbeResult>,
        key: Option<&NodeKey>,
        uptime: BTreeMap<&'static str, Option<f64>>,
    ) -> Self {
        let node = latest.and_then(|r| r.node.as_ref());
        NodeView {
            id: peer.id.clone(),
            name: peer.name.clone(),
            host: peer.host.clone(),
            port: peer.port,
            protocol: peer.protocol.clone(),
            network_name: peer.network_name.clone(),
            up: latest.map(|r| r.up),
            rtt_ms: latest.and_then(|r| r.rtt_us).map(ms),
            error_kind: latest.and_then(|r| r.error_kind),
            last_checked_at: latest.map(|r| rfc3339(r.checked_at)),
            uptime,
            candidates: latest
                .into_iter()
                .flat_map(|r| &r.candidates)
                .map(|c| CandidateView {
                    url: c.url.clone(),
                    up: c.up,
                    rtt_ms: c.rtt_us.map(ms),
                    error_kind: c.error_kind,
                    error: c.error.clone(),
                })
                .collect(),
            version: node.map(|n| n.version.clone()),
            hostname: node.and_then(|n| n.hostname.clone()),
            node_key: key.map(NodeKeyView::of),
        }
    }
}

/// `/api/nodes/{id}/health`.
#[derive(Debug, Serialize)]
pub struct NodeHealthView {
    pub id: String,
    pub window: &'static str,
    pub from: String,
    pub step_s: i64,
    pub stats: Stats,
    pub series: Vec<SeriesPoint>,
}

/// Checks, up, loss, uptime and RTT figures of a stretch of history.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub checks: u64,
    pub up: u64,
    pub loss_pct: Option<f64>,
    pub uptime_pct: Option<f64>,
    pub rtt_ms: RttMs,
}

#[derive(Debug, Serialize)]
pub struct RttMs {
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

/// One step of a window's series.
#[derive(Debug, Serialize)]
pub struct SeriesPoint {
    pub at: String,
    pub checks: u64,
    pub up: u64,
    pub uptime_pct: Option<f64>,
    pub rtt_ms: Option<f64>,
}

/// Uptime percentage of a bucket, `None` when it has no checks.
pub fn uptime_pct(b: &Bucket) -> Option<f64> {
    percent(b.checks, b.up)
}

/// `up` of `checks` in per cent, to two places; `None` without checks.
pub fn percent(checks: u64, up: u64) -> Option<f64> {
    (checks > 0).then(|| round2(up as f64 * 100.0 / checks as f64))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The figures of a bucket.
pub fn stats(b: &Bucket) -> Stats {
    let has_rtt = b.rtt_n > 0;
    Stats {
        checks: b.checks,
        up: b.up,
        loss_pct: (b.checks > 0)
            .then(|| round2((b.checks - b.up) as f64 * 100.0 / b.checks as f64)),
        uptime_pct: uptime_pct(b),
        rtt_ms: RttMs {
            min: has_rtt.then_some(b.rtt_min_us).map(ms),
            avg: b.avg_rtt_us().map(ms),
            p95: b.rtt_quantile_us(0.95).map(ms),
            max: has_rtt.then_some(b.rtt_max_us).map(ms),
        },
    }
}

/// One bucket of everything in `buckets`.
pub fn merged<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Bucket {
    let mut all = Bucket::default();
    for b in buckets {
        all.merge(b);
    }
    all
}
