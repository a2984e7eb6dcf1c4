//! peer-fetch: the backend (or the peers file) → the stored peer list.
//! The stored list is replaced only by a valid answer; on failure the last list stays.

use serde_json::json;

use super::{JobContext, JobFailure, JobResult};
use crate::backend::peers_file;
use crate::config::{PeerSource, NEEDS_PEER_SOURCE};
use crate::domain::{ListSource, ParsedList, PeerList};

/// Bad entries listed one by one in the summary (all are counted).
const MAX_REPORTED_PROBLEMS: usize = 20;

pub async fn run(ctx: &JobContext) -> JobResult {
    let stored = ctx
        .store
        .peer_list()
        .map_err(|e| JobFailure::new(e, json!({})))?;
    let kept = |error: String| {
        JobFailure::new(
            format!(
                "{error}; keeping the stored list of {} peers",
                stored.as_ref().map_or(0, |l| l.peers.len())
            ),
            json!({
                "peers": stored.as_ref().map_or(0, |l| l.peers.len()),
                "added": 0,
                "removed": 0,
                "source": "cache",
            }),
        )
    };

    let (ParsedList { peers, rejected }, source) = match (&ctx.settings.peer_source, &ctx.backend) {
        (PeerSource::Backend, Some(client)) => {
            let fetched = client
                .fetch_peers(ctx.settings.region.as_deref())
                .await
                .map_err(|e| kept(e.to_string()))?;
            (fetched, ListSource::Backend)
        }
        (PeerSource::File(path), _) => {
            let loaded = peers_file::load(path).map_err(|e| kept(e.to_string()))?;
            (loaded, ListSource::File)
        }
        _ => return Err(kept(NEEDS_PEER_SOURCE.into())),
    };
    for r in rejected.iter().take(MAX_REPORTED_PROBLEMS) {
        tracing::warn!(job = "peer-fetch", "skipped a bad peer entry: {r}");
    }
    if rejected.len() > MAX_REPORTED_PROBLEMS {
        tracing::warn!(
            job = "peer-fetch",
            "… and {} more bad peer entries",
            rejected.len() - MAX_REPORTED_PROBLEMS
        );
    }

    let list = PeerList {
        fetched_at: ctx.clock.now(),
        source,
        peers,
    };
    let (added, removed) = ctx
        .store
        .replace_peer_list(&list)
        .map_err(|e| kept(e.to_string()))?;
    Ok(json!({
        "peers": list.peers.len(),
        "added": added,
        "removed": removed,
        "source": match source { ListSource::Backend => "backend", ListSource::File => "file" },
        "rejected": rejected.len(),
        // The first problems, so a bad entry is visible in the run record and the API.
        "rejected_entries": rejected
            .iter()
            .take(MAX_REPORTED_PROBLEMS)
            .map(|r| json!({"index": r.index, "reason": r.to_string()}))
            .collect::<Vec<_>>(),
    }))
}
