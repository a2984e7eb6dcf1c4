//! `GET /`: the status page a person reads — nodes up or down (down first, a page of 100 at a
//! time, by state and search), RTT, a 24-hour uptime bar, and the recent job runs. Each node's name links to its page
//! ([`super::node_page`]). The page is `status_page.html`, filled in here ([`super::html`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::ApiError;
use super::fleet::{node_windows, select, NodesQuery, PeerState, Selection};
use super::html::{answer, escape, fill, key_line, node_href, runs_rows, uptime_class, CSS};
use super::nodes::Listed;
use super::views::{merged, uptime_pct, NodeCounts};
use super::ApiState;
use crate::domain::notice::encode_segment;
use crate::domain::time::{from_millis, ms};
use crate::domain::{Bucket, JobName, Level, NodeKey, Peer, ProbeResult, Window};

const PAGE: &str = include_str!("status_page.html");

/// Peers on one page of the status page.
pub(super) const PER_PAGE: usize = 100;

/// `/?state=&q=&page=`: which peers the page shows (down first, then not yet checked, then
/// up; [`PER_PAGE`] at a time). A value the page does not know shows everything.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    state: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

pub(super) async fn page(
    State(s): State<ApiState>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let now = ctx.clock.now();
    let number = query
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let asked = |state: Option<String>| NodesQuery {
        limit: Some(PER_PAGE.to_string()),
        offset: Some(((number - 1).saturating_mul(PER_PAGE)).to_string()),
        state,
        q: query.q.clone(),
        sort: Some("state".into()),
    };
    let mut selection = match asked(query.state.clone()).selection() {
        Ok(s) => s,
        Err(_) => asked(None).selection()?,
    };
    let listed = Listed::read(store)?;
    let uptimes = store.uptimes(&node_windows(), now)?;
    let (counts, rows) = select(&listed, &uptimes, &selection);
    // A page past the end shows the last one.
    let number = number.min(rows.len().div_ceil(PER_PAGE).max(1));
    selection.offset = (number - 1) * PER_PAGE;
    let day = Window::named("24h").expect("a known window");
    let (book, _) = store.alert_book()?;
    let firing: std::collections::HashSet<&str> = book.firing().map(|(id, _)| id).collect();
    let mut nodes = String::new();
    for row in selection.page(&rows) {
        // The hours of this page's peers only: one small read per hour and peer.
        let hours = match listed.slots.get(&row.peer.id) {
            Some(slot) => store.window(&day, now, Some(*slot), true)?.remove(slot),
            None => None,
        };
        nodes.push_str(&node_row(
            row.peer,
            row.latest,
            listed.keys.get(&row.peer.id),
            hours.as_ref(),
            firing.contains(row.peer.id.as_str()),
            now,
        ));
    }
    let up = listed
        .peers
        .iter()
        .filter(|p| listed.latest.get(&p.id).is_some_and(|r| r.up))
        .count();
    let html = fill(
        PAGE,
        &[
            ("css", CSS),
            ("up", &up.to_string()),
            ("total", &listed.peers.len().to_string()),
            ("version", env!("CARGO_PKG_VERSION")),
            ("filters", &filters(&selection, &counts)),
            ("nodes", &nodes),
            ("pages", &pager(&selection, rows.len(), number)),
            ("runs", &runs_rows(store, &JobName::ALL.map(|j| (j, 3)))),
            ("alerts", &alert_banner(firing.len(), book.isolation.firing)),
        ],
    );
    Ok(answer(StatusCode::OK, html))
}

/// A link to the status page with `state`, `q` and `page` (left out when they are the
/// defaults).
fn link(state: Option<PeerState>, q: Option<&str>, page: usize) -> String {
    let mut parts = Vec::new();
    if let Some(state) = state {
        parts.push(format!("state={}", state.as_str()));
    }
    if let Some(q) = q {
        parts.push(format!("q={}", encode_segment(q)));
    }
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    escape(&format!("/?{}", parts.join("&")))
}

/// The state tabs with their counts, and the search box.
fn filters(selection: &Selection, counts: &NodeCounts) -> String {
    let q = selection.q.as_deref();
    let all = counts.up + counts.down + counts.unchecked;
    let mut out = String::from("<nav class=\"filters\">");
    for (state, label, n) in [
        (None, "All", all),
        (Some(PeerState::Down), "Down", counts.down),
        (Some(PeerState::Unchecked), "Unchecked", counts.unchecked),
        (Some(PeerState::Up), "Up", counts.up),
    ] {
        let current = if selection.state == state {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<a href=\"{}\"{current}>{label} ({n})</a> ",
            link(state, q, 1)
        );
    }
    let _ = write!(
        out,
        "<form method=\"get\" action=\"/\">{}<input type=\"search\" name=\"q\" \
         value=\"{}\" placeholder=\"name, host, network or id\" aria-label=\"search\">\
         <button>Search</button></form></nav>",
        selection
            .state
            .map(|s| format!(
                "<input type=\"hidden\" name=\"state\" value=\"{}\">",
                s.as_str()
            ))
            .unwrap_or_default(),
        escape(q.unwrap_or(""))
    );
    out
}

/// Which peers this page shows of how many, and links to the pages before and after.
fn pager(selection: &Selection, matching: usize, number: usize) -> String {
    if matching == 0 {
        return "<p class=\"pages\">No node matches.</p>".into();
    }
    let pages = matching.div_ceil(PER_PAGE);
    let first = selection.offset.min(matching);
    let last = (first + PER_PAGE).min(matching);
    let mut out = format!(
        "<p class=\"pages\">{}–{last} of {matching} · page {} of {pages}",
        first + 1,
        number.min(pages)
    );
    let (state, q) = (selection.state, selection.q.as_deref());
    if number > 1 {
        let _ = write!(
            out,
            " · <a rel=\"prev\" href=\"{}\">previous</a>",
            link(state, q, (number - 1).min(pages))
        );
    }
    if number < pages {
        let _ = write!(
            out,
            " · <a rel=\"next\" href=\"{}\">next</a>",
            link(state, q, number + 1)
        );
    }
    out.push_str("</p>");
    out
}

fn node_row(
    peer: &Peer,
    latest: Option<&ProbeResult>,
    key: Option<&NodeKey>,
    hours: Option<&BTreeMap<i64, Bucket>>,
    firing: bool,
    now: DateTime<Utc>,
) -> String {
    let (state, class) = match latest {
        Some(r) if r.up => ("up", "up"),
        Some(_) => ("down", "down"),
        None => ("unchecked", "unknown"),
    };
    let state = if firing {
        format!(
            "{state}<span class=\"alert\" title=\"an alert is firing for this peer\">alert</span>"
        )
    } else {
        state.to_string()
    };
    // An indirect peer: the URLs its page named, each with its state.
    let via: String = latest
        .into_iter()
        .flat_map(|r| &r.candidates)
        .map(|c| {
            let (class, state) = if c.up {
                ("up", "up".to_string())
            } else {
                (
                    "down",
                    c.error_kind.map_or("down", |k| k.as_str()).to_string(),
                )
            };
            format!(
                "<div class=\"via\">→ {} <span class=\"{class}\">{state}</span></div>",
                escape(&c.url)
            )
        })
        .collect();
    // What the node said of itself: its EasyTier version and host name.
    let about = latest
        .and_then(|r| r.node.as_ref())
        .map(|n| {
            let host = n.hostname.as_deref().map(|h| format!(" · {}", escape(h)));
            format!(
                "<div class=\"via\">EasyTier {}{}</div>",
                escape(&n.version),
                host.unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let key = key.map(key_line).unwrap_or_default();
    format!(
        "<tr id=\"peer-{}\"><td><a href=\"{}\">{}</a>{about}{key}</td><td>{}://{}{via}</td><td>{}</td><td class=\"{class}\">{state}</td>\
         <td>{}</td><td>{}<div class=\"bar\">{}</div></td><td>{}</td></tr>",
        escape(&encode_segment(&peer.id)),
        escape(&node_href(&peer.id)),
        escape(&peer.name),
        escape(&peer.protocol),
        escape(&crate::domain::peer::host_port(&peer.host, peer.port)),
        escape(&peer.network_name),
        latest
            .and_then(|r| r.rtt_us)
            .map(|us| format!("{:.2} ms", ms(us)))
            .unwrap_or_else(|| "–".into()),
        hours
            .and_then(|h| uptime_pct(&merged(h.values())))
            .map(|p| format!("{p:.1} %"))
            .unwrap_or_else(|| "–".into()),
        uptime_bar(hours, now),
        latest
            .and_then(|r| r.error_kind)
            .map(|k| k.as_str())
            .unwrap_or(""),
    )
}

/// A line above the table when alerts fire: how many, and whether the probe is cut off.
fn alert_banner(firing: usize, isolated: bool) -> String {
    let mut parts = Vec::new();
    if isolated {
        parts.push("this probe looks cut off from its peers (ProbeIsolated)".to_string());
    }
    if firing > 0 {
        parts.push(format!(
            "{firing} peer alert{} firing",
            if firing == 1 { "" } else { "s" }
        ));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!(
        "<p class=\"alerts\" role=\"alert\">{} · <a href=\"/api/alerts\">details</a></p>",
        parts.join("; ")
    )
}

/// 24 cells, one per clock hour (oldest first, the current hour last), coloured by that
/// hour's uptime; a title says it.
fn uptime_bar(hours: Option<&BTreeMap<i64, Bucket>>, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let this_hour = Level::Hour.floor(now.timestamp_millis());
    for h in (0..24).rev() {
        let start = this_hour - h * Level::Hour.span_ms();
        let bucket = hours.and_then(|m| m.get(&start));
        let pct = bucket.and_then(uptime_pct);
        let class = uptime_class(pct);
        let title = pct.map_or("no checks".to_string(), |p| format!("{p:.1} %"));
        let _ = write!(
            out,
            "<i class=\"{class}\" title=\"{} UTC: {title}\"></i>",
            from_millis(start).format("%H:00")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn the_template_is_filled_once() {
        let page = fill("a {{x}} b {{y}} {{z}}", &[("x", "{{y}}"), ("y", "2")]);
        assert_eq!(page, "a {{y}} b 2 {{z}}");
        let page = fill(PAGE, &[("nodes", "<tr>N</tr>"), ("runs", "<tr>R</tr>")]);
        assert!(
            page.contains("<tr>N</tr>") && page.contains("<tr>R</tr>"),
            "{page}"
        );
    }

    #[test]
    fn the_uptime_bar_has_a_clock_hour_per_cell_oldest_first() {
        let now = Utc::now();
        let hour = |ago: i64| Level::Hour.floor(now.timestamp_millis()) - ago * 3_600_000;
        let bucket = |up: u64, down: u64| {
            let mut b = Bucket::default();
            (0..up).for_each(|_| b.add(true, Some(1000)));
            (0..down).for_each(|_| b.add(false, None));
            b
        };
        // This hour all up; three hours ago half down; 30 hours ago (off the bar) down.
        let hours = BTreeMap::from([
            (hour(0), bucket(10, 0)),
            (hour(3), bucket(5, 5)),
            (hour(30), bucket(0, 5)),
        ]);
        let bar = uptime_bar(Some(&hours), now);
        let cells: Vec<&str> = bar
            .split("<i class=\"")
            .skip(1)
            .map(|c| &c[..c.find('"').unwrap()])
            .collect();
        assert_eq!(cells.len(), 24);
        assert_eq!(cells[23], "good");
        assert_eq!(cells[20], "bad");
        assert_eq!(cells.iter().filter(|c| **c == "none").count(), 22);
        assert!(bar.contains("50.0 %"), "{bar}");
        assert_eq!(uptime_bar(None, now).matches("none").count(), 24);
    }
}
