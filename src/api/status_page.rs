//! `GET /`: the status page a person reads — nodes up or down, RTT, a 24-hour uptime bar, and
//! the recent job runs. The page is `status_page.html` and `status_page.css`, filled in here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::nodes::Listed;
use super::views::{merged, uptime_pct};
use super::ApiState;
use crate::domain::notice::encode_segment;
use crate::domain::time::{from_millis, ms, rfc3339};
use crate::domain::{Bucket, JobName, Level, Outcome, Peer, ProbeResult, Window};
use crate::store::Store;

const PAGE: &str = include_str!("status_page.html");
const CSS: &str = include_str!("status_page.css");

pub(super) async fn page(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let now = ctx.clock.now();
    let day = Window::named("24h").expect("a known window");
    let Listed {
        peers,
        slots,
        latest,
    } = Listed::read(store)?;
    let hours = store.window(&day, now, None, true)?;
    let (book, _) = store.alert_book()?;
    let firing: std::collections::HashSet<&str> = book.firing().map(|(id, _)| id).collect();
    let mut rows = String::new();
    let mut up = 0;
    for peer in &peers {
        let latest = latest.get(&peer.id);
        up += usize::from(latest.is_some_and(|r| r.up));
        let hours = slots.get(&peer.id).and_then(|slot| hours.get(slot));
        rows.push_str(&node_row(
            peer,
            latest,
            hours,
            firing.contains(peer.id.as_str()),
            now,
        ));
    }
    let html = fill(
        PAGE,
        &[
            ("css", CSS),
            ("up", &up.to_string()),
            ("total", &peers.len().to_string()),
            ("version", env!("CARGO_PKG_VERSION")),
            ("nodes", &rows),
            ("runs", &recent_runs(store)),
            ("alerts", &alert_banner(firing.len(), book.isolation.firing)),
        ],
    );
    Ok(Html(html).into_response())
}

/// `template` with each `{{name}}` replaced by its value; what is put in is not looked at again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}").map(|close| (&after[..close], close)) {
            Some((name, close)) => {
                match values.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[open..open + close + 4]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn node_row(
    peer: &Peer,
    latest: Option<&ProbeResult>,
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
    format!(
        "<tr id=\"peer-{}\"><td>{}</td><td>{}://{}:{}</td><td>{}</td><td class=\"{class}\">{state}</td>\
         <td>{}</td><td>{}<div class=\"bar\">{}</div></td><td>{}</td></tr>",
        html_escape(&encode_segment(&peer.id)),
        html_escape(&peer.name),
        html_escape(&peer.protocol),
        html_escape(&peer.host),
        peer.port,
        html_escape(&peer.network_name),
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

/// The last three runs of each job.
fn recent_runs(store: &Store) -> String {
    let mut runs = String::new();
    for job in JobName::ALL {
        for run in store.runs(job.as_str(), 3).unwrap_or_default() {
            let _ =
                write!(
                runs,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{} ms</td><td>{}</td></tr>",
                job,
                rfc3339(run.started_at),
                if run.outcome == Outcome::Ok { "up" } else { "down" },
                run.outcome.as_str(),
                run.duration_ms,
                html_escape(run.error.as_deref().unwrap_or("")),
            );
        }
    }
    runs
}

/// 24 cells, one per clock hour (oldest first, the current hour last), coloured by that
/// hour's uptime; a title says it.
fn uptime_bar(hours: Option<&BTreeMap<i64, Bucket>>, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let this_hour = Level::Hour.floor(now.timestamp_millis());
    for h in (0..24).rev() {
        let start = this_hour - h * Level::Hour.span_ms();
        let bucket = hours.and_then(|m| m.get(&start));
        let (class, title) = match bucket.and_then(uptime_pct) {
            None => ("none", "no checks".to_string()),
            Some(p) if p >= 99.0 => ("good", format!("{p:.1} %")),
            Some(p) if p >= 90.0 => ("some", format!("{p:.1} %")),
            Some(p) => ("bad", format!("{p:.1} %")),
        };
        let _ = write!(
            out,
            "<i class=\"{class}\" title=\"{} UTC: {title}\"></i>",
            from_millis(start).format("%H:00")
        );
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
