//! What the HTML pages (`/` and `/nodes/{id}`) share: the template filler, escaping, the one
//! stylesheet, the uptime colour thresholds, the job runs table and the headers of an answer.

use std::fmt::Write as _;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::domain::time::rfc3339;
use crate::domain::{JobName, NodeKey, Outcome};
use crate::store::Store;

/// The stylesheet of both pages (light and dark), inlined in each.
pub(super) const CSS: &str = include_str!("status_page.css");

/// The pages run no script and load nothing from elsewhere; a browser enforces it (and reports a
/// breach in its console, which the browser test reads).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; base-uri 'none'";

/// An HTML answer with `status`, the pages' content security policy, and no caching (the
/// pages refresh themselves).
pub(super) fn answer(status: StatusCode, html: String) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `template` with each `{{name}}` replaced by its value; what is put in is not looked at again.
pub(super) fn fill(template: &str, values: &[(&str, &str)]) -> String {
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

/// Text made safe inside an element or a quoted attribute (of HTML and of SVG).
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// How an uptime reads at a glance: `good` from 99 %, `some` from 90 %, `bad` below, `none`
/// without checks. The bars, the chart's marks and the badges use these thresholds.
pub(super) fn uptime_class(pct: Option<f64>) -> &'static str {
    match pct {
        None => "none",
        Some(p) if p >= 99.0 => "good",
        Some(p) if p >= 90.0 => "some",
        Some(_) => "bad",
    }
}

/// The node page's address for `id`.
pub(super) fn node_href(id: &str) -> String {
    format!("/nodes/{}", crate::domain::notice::encode_segment(id))
}

/// Rows of the job runs table: the last `n` runs of each job with its `n`, newest first.
pub(super) fn runs_rows(store: &Store, jobs: &[(JobName, usize)]) -> String {
    let mut runs = String::new();
    for (job, n) in jobs {
        for run in store.runs(job.as_str(), *n).unwrap_or_default() {
            let _ = write!(
                runs,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{} ms</td><td>{}</td></tr>",
                job,
                rfc3339(run.started_at),
                if run.outcome == Outcome::Ok {
                    "up"
                } else {
                    "down"
                },
                run.outcome.as_str(),
                run.duration_ms,
                escape(run.error.as_deref().unwrap_or("")),
            );
        }
    }
    runs
}

/// A secure-mode node's key, shortened (the whole key in its title); flagged as SSH flags a
/// changed host key while the node presents another key than the trusted one.
pub(super) fn key_line(key: &NodeKey) -> String {
    let short = |k: &str| {
        let cut: String = k.chars().take(12).collect();
        format!("<code title=\"{}\">{}…</code>", escape(k), escape(&cut))
    };
    match key.changed_at {
        Some(at) if key.changed() => format!(
            "<div class=\"keychanged\" role=\"alert\">key changed since {}: trusted {}, \
             now {}</div>",
            rfc3339(at),
            short(&key.accepted),
            short(&key.current)
        ),
        _ => format!("<div class=\"via\">key {}</div>", short(&key.current)),
    }
}
