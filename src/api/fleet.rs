//! Which of the listed peers a fleet view shows, in what order: the `/api/nodes` query
//! (`limit`, `offset`, `state`, `q`, `sort`), also behind the status page.

use serde::Deserialize;

use super::error::ApiError;
use super::nodes::Listed;
use super::views::{percent, NodeCounts};
use crate::domain::{Peer, ProbeResult, Window};
use crate::store::Uptimes;

/// The windows `/api/nodes` gives each peer's uptime for.
pub(super) const NODE_UPTIMES: [&str; 3] = ["1h", "24h", "7d"];

/// The most peers one page of `/api/nodes` holds.
const MAX_LIMIT: usize = 1000;

/// `/api/nodes?limit=&offset=&state=&q=&sort=`; every parameter optional.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NodesQuery {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub state: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
}

/// A peer's state from its latest result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum PeerState {
    Down,
    Unchecked,
    Up,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Down => "down",
            PeerState::Unchecked => "unchecked",
            PeerState::Up => "up",
        }
    }
}

/// How `/api/nodes` orders the peers it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    /// The peer list's own order.
    List,
    Id,
    Name,
    /// Down first, then not yet checked, then up; by name within each.
    State,
    /// Lowest RTT first; peers without one last.
    Rtt,
    /// Lowest uptime of that window first; peers without checks last.
    Uptime(usize),
}

/// What the query asks for, checked.
pub(super) struct Selection {
    pub limit: Option<usize>,
    pub offset: usize,
    pub state: Option<PeerState>,
    /// The search as given (trimmed); matched without regard to case.
    pub q: Option<String>,
    sort: SortKey,
    descending: bool,
}

impl Selection {
    /// The page of `rows` asked for.
    pub fn page<'r, 'a>(&self, rows: &'r [Row<'a>]) -> &'r [Row<'a>] {
        let from = self.offset.min(rows.len());
        let to = from
            .saturating_add(self.limit.unwrap_or(usize::MAX))
            .min(rows.len());
        &rows[from..to]
    }
}

impl NodesQuery {
    pub fn selection(&self) -> Result<Selection, ApiError> {
        let number =
            |raw: &Option<String>, what: &'static str| -> Result<Option<usize>, ApiError> {
                match raw.as_deref().map(str::trim) {
                    None | Some("") => Ok(None),
                    Some(v) => v.parse().map(Some).map_err(|_| ApiError::BadRequest(what)),
                }
            };
        let limit = number(&self.limit, "limit must be a number from 1 to 1000")?;
        if limit.is_some_and(|n| !(1..=MAX_LIMIT).contains(&n)) {
            return Err(ApiError::BadRequest(
                "limit must be a number from 1 to 1000",
            ));
        }
        let offset = number(&self.offset, "offset must be a number, 0 or more")?.unwrap_or(0);
        let state = match self.state.as_deref().map(str::trim) {
            None | Some("") | Some("all") => None,
            Some("up") => Some(PeerState::Up),
            Some("down") => Some(PeerState::Down),
            Some("unchecked") => Some(PeerState::Unchecked),
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "state must be one of up, down, unchecked, all",
                ))
            }
        };
        let q = self
            .q
            .as_deref()
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty());
        let sort = self.sort.as_deref().map(str::trim).unwrap_or("");
        let (descending, sort) = match sort.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, sort),
        };
        let sort =
            match sort {
                "" | "list" => SortKey::List,
                "id" => SortKey::Id,
                "name" => SortKey::Name,
                "state" => SortKey::State,
                "rtt" => SortKey::Rtt,
                other => match other
                    .strip_prefix("uptime_")
                    .and_then(|w| NODE_UPTIMES.iter().position(|n| *n == w))
                {
                    Some(i) => SortKey::Uptime(i),
                    None => return Err(ApiError::BadRequest(
                        "sort must be one of list, id, name, state, rtt, uptime_1h, uptime_24h, \
                         uptime_7d (a leading - reverses it)",
                    )),
                },
            };
        Ok(Selection {
            limit,
            offset,
            state,
            q,
            sort,
            descending,
        })
    }
}

/// One listed peer with what it is sorted and filtered by.
pub(super) struct Row<'a> {
    pub peer: &'a Peer,
    pub latest: Option<&'a ProbeResult>,
    pub state: PeerState,
    /// The uptime per cent of each of [`NODE_UPTIMES`].
    pub uptime: [Option<f64>; NODE_UPTIMES.len()],
}

impl Row<'_> {
    fn matches(&self, q: &str) -> bool {
        let p = self.peer;
        [&p.id, &p.name, &p.host, &p.network_name]
            .iter()
            .any(|field| field.to_lowercase().contains(q))
    }
}

/// Orders `a` and `b` by `key`, reversed when `descending`; ties keep the list's order (the
/// sort is stable).
fn compare(key: SortKey, descending: bool, a: &Row, b: &Row) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let way = |o: Ordering| if descending { o.reverse() } else { o };
    // Missing figures last, whichever way the rest goes.
    let figure = |a: Option<f64>, b: Option<f64>| -> Ordering {
        match (a, b) {
            (Some(a), Some(b)) => way(a.total_cmp(&b)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    };
    match key {
        SortKey::List => Ordering::Equal,
        SortKey::Id => way(a.peer.id.cmp(&b.peer.id)),
        SortKey::Name => way(a.peer.name.cmp(&b.peer.name)),
        SortKey::State => way(a
            .state
            .cmp(&b.state)
            .then_with(|| a.peer.name.cmp(&b.peer.name))),
        SortKey::Rtt => figure(
            a.latest.and_then(|r| r.rtt_us).map(|us| us as f64),
            b.latest.and_then(|r| r.rtt_us).map(|us| us as f64),
        ),
        SortKey::Uptime(i) => figure(a.uptime[i], b.uptime[i]),
    }
}

/// The windows of [`NODE_UPTIMES`].
pub(super) fn node_windows() -> Vec<Window> {
    NODE_UPTIMES
        .iter()
        .map(|name| Window::named(name).expect("a known window"))
        .collect()
}

/// The listed peers that `selection` matches, in its order (not yet paged), and the counts
/// of each state among those that match its search.
pub(super) fn select<'a>(
    listed: &'a Listed,
    uptimes: &[Uptimes],
    selection: &Selection,
) -> (NodeCounts, Vec<Row<'a>>) {
    let mut rows: Vec<Row> = listed
        .peers
        .iter()
        .map(|peer| {
            let latest = listed.latest.get(&peer.id);
            let slot = listed.slots.get(&peer.id);
            Row {
                peer,
                latest,
                state: match latest {
                    Some(r) if r.up => PeerState::Up,
                    Some(_) => PeerState::Down,
                    None => PeerState::Unchecked,
                },
                uptime: std::array::from_fn(|i| {
                    slot.zip(uptimes.get(i))
                        .and_then(|(s, u)| u.of(*s))
                        .and_then(|(checks, up)| percent(checks, up))
                }),
            }
        })
        .collect();
    if let Some(q) = &selection.q {
        let q = q.to_lowercase();
        rows.retain(|r| r.matches(&q));
    }
    let count = |state| rows.iter().filter(|r| r.state == state).count();
    let counts = NodeCounts {
        up: count(PeerState::Up),
        down: count(PeerState::Down),
        unchecked: count(PeerState::Unchecked),
    };
    if let Some(state) = selection.state {
        rows.retain(|r| r.state == state);
    }
    match (selection.sort, selection.descending) {
        (SortKey::List, false) => {}
        (SortKey::List, true) => rows.reverse(),
        (key, descending) => rows.sort_by(|a, b| compare(key, descending, a, b)),
    }
    (counts, rows)
}
