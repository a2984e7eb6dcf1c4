//! Server-rendered SVG for the node page: a window's RTT chart and its uptime strip. No script,
//! no library: a few elements a browser draws as they come, coloured by the page's stylesheet
//! (so dark mode applies).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::uptime_class;
use super::views::uptime_pct;
use crate::domain::time::{from_millis, ms};
use crate::domain::{Bucket, Window};

/// The chart's drawing area, in SVG units (it scales to the page's width).
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 30.0;

/// The points of `w` at `now`, oldest first: the start of each step from the window's first
/// bucket to the one holding `now`, the keys a window read gives.
pub(super) fn steps(w: &Window, now: DateTime<Utc>) -> Vec<i64> {
    let start = w.level.floor((now - w.length).timestamp_millis());
    let step = w.step.num_milliseconds().max(1);
    let last = (now.timestamp_millis() - start).div_euclid(step);
    (0..=last).map(|k| start + k * step).collect()
}

/// What one step of `w` is, in words.
pub(super) fn step_name(w: &Window) -> &'static str {
    match w.name {
        "1h" => "minute",
        "24h" => "hour",
        "7d" => "6 hours",
        _ => "day",
    }
}

fn time_label(w: &Window, at: i64) -> String {
    // A day's window starts and ends at the same hour: its ends need their dates.
    let format = if w.length < chrono::Duration::hours(24) {
        "%H:%M"
    } else if w.length == chrono::Duration::hours(24) {
        "%b %d %H:%M"
    } else {
        "%b %d"
    };
    from_millis(at).format(format).to_string()
}

fn fmt_ms(v: f64) -> String {
    match v {
        v if v < 1.0 => format!("{v:.2} ms"),
        v if v < 10.0 => format!("{v:.1} ms"),
        v => format!("{v:.0} ms"),
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `v`: the chart's top.
fn nice_ceiling(v: f64) -> f64 {
    let v = v.max(0.01);
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|top| *top >= v)
        .unwrap_or(10.0 * magnitude)
}

/// The average RTT of each step of `w` as a line with a dot per step (each with its figure as
/// a title), the steps with down checks marked red under it, a scale in ms and the window's
/// first and last times (UTC).
pub(super) fn rtt_chart(w: &Window, now: DateTime<Utc>, points: &BTreeMap<i64, Bucket>) -> String {
    let steps = steps(w, now);
    let rtts: Vec<Option<f64>> = steps
        .iter()
        .map(|at| points.get(at).and_then(|b| b.avg_rtt_us()).map(ms))
        .collect();
    if !steps
        .iter()
        .any(|at| points.get(at).is_some_and(|b| b.checks > 0))
    {
        return "<p class=\"unknown\">No checks in this window.</p>".into();
    }
    let top = nice_ceiling(rtts.iter().flatten().fold(0.0, |m, v| f64::max(m, *v)) * 1.1);
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |i: usize| LEFT + pw * (i as f64 + 0.5) / steps.len() as f64;
    let y = |v: f64| TOP + ph * (1.0 - v / top);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"average RTT per {} over the last {}\">",
        step_name(w),
        w.name
    );
    for v in [0.0, top / 2.0, top] {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y(v) + 4.0,
            fmt_ms(v),
            y = y(v)
        );
    }
    let mut line: Vec<String> = Vec::new();
    let mut dots = String::new();
    for (i, (at, rtt)) in steps.iter().zip(&rtts).enumerate() {
        let bucket = points.get(at);
        let when = from_millis(*at).format("%Y-%m-%d %H:%M UTC");
        match rtt {
            Some(v) => {
                line.push(format!("{:.1},{:.1}", x(i), y(*v)));
                let _ = write!(
                    dots,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{when}: {}</title></circle>",
                    x(i),
                    y(*v),
                    fmt_ms(*v)
                );
            }
            None => polyline(&mut svg, &mut line),
        }
        if let Some(b) = bucket.filter(|b| b.checks > b.up) {
            let cell = (pw / steps.len() as f64 - 1.0).max(1.0);
            let _ = write!(
                svg,
                "<rect class=\"downs\" x=\"{:.1}\" y=\"{:.1}\" width=\"{cell:.1}\" height=\"5\">\
                 <title>{when}: {} of {} checks down</title></rect>",
                x(i) - cell / 2.0,
                TOP + ph + 2.0,
                b.checks - b.up,
                b.checks
            );
        }
    }
    polyline(&mut svg, &mut line);
    svg.push_str(&dots);
    let last = steps.len() - 1;
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} UTC</text></svg>",
        HEIGHT - 6.0,
        time_label(w, steps[0]),
        WIDTH - RIGHT,
        HEIGHT - 6.0,
        time_label(w, steps[last]),
    );
    svg
}

/// Draws the points gathered so far as one line (a lone point is its dot alone), and empties them.
fn polyline(svg: &mut String, line: &mut Vec<String>) {
    if line.len() > 1 {
        let _ = write!(
            svg,
            "<polyline class=\"rtt\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    line.clear();
}

/// One cell per step of `w`, coloured by that step's uptime (titled with it); and the window's
/// uptime.
pub(super) fn uptime_strip(
    w: &Window,
    now: DateTime<Utc>,
    points: &BTreeMap<i64, Bucket>,
) -> String {
    let steps = steps(w, now);
    let mut svg = format!(
        "<svg class=\"uptime\" viewBox=\"0 0 {} 18\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"uptime per {} over the last {}\">",
        steps.len() * 10,
        step_name(w),
        w.name
    );
    for (i, at) in steps.iter().enumerate() {
        let bucket = points.get(at);
        let pct = bucket.and_then(uptime_pct);
        let title = match (pct, bucket) {
            (Some(p), Some(b)) => format!("{p:.2} % of {} checks", b.checks),
            _ => "no checks".into(),
        };
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{}\" width=\"9\" height=\"18\"><title>{}: {title}</title></rect>",
            uptime_class(pct),
            i * 10,
            from_millis(*at).format("%Y-%m-%d %H:%M UTC"),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::history::WINDOWS;

    /// A chart's ends say when they are: a 24h window starts and ends at the same hour, so its
    /// labels carry the date; an hour's need only the time.
    #[test]
    fn the_axis_labels_tell_the_ends_apart() {
        let at = 1_765_000_000_000; // 2025-12-06 05:46:40 UTC
        let label = |name: &str| {
            let w = WINDOWS.into_iter().find(|w| w.name == name).unwrap();
            time_label(&w, at)
        };
        assert_eq!(label("1h"), "05:46");
        assert_eq!(label("24h"), "Dec 06 05:46");
        assert_ne!(
            label("24h"),
            time_label(&WINDOWS[1], at - 86_400_000),
            "a day apart, the same label"
        );
        assert_eq!(label("30d"), "Dec 06");
    }
}
