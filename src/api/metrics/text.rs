//! The Prometheus text format (0.0.4): every family with its HELP and TYPE, label values
//! escaped, histograms as `_bucket`/`_sum`/`_count`.

use std::fmt::Write as _;

use crate::domain::Durations;

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Gauge,
    /// Its name ends in `_total`.
    Counter,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// A `/metrics` body being written, family by family.
#[derive(Default)]
pub(super) struct Text {
    out: String,
}

impl Text {
    /// Starts the family `name`: its HELP and TYPE lines. Its samples follow.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        debug_assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "{name}");
        let _ = write!(
            self.out,
            "# HELP {name} {}\n# TYPE {name} {}\n",
            help.replace('\\', "\\\\").replace('\n', "\\n"),
            kind.as_str()
        );
        Family {
            out: &mut self.out,
            name,
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The samples of one family.
pub(super) struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// One sample with `labels` (names are ours, values escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        sample(self.out, self.name, "", labels, value);
    }

    /// The series of one histogram of run durations.
    pub fn histogram(&mut self, labels: &[(&str, &str)], d: &Durations) {
        for (le, n) in d.cumulative() {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                le.to_string()
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            sample(self.out, self.name, "_bucket", &with_le, n as f64);
        }
        sample(
            self.out,
            self.name,
            "_sum",
            labels,
            d.sum_ms as f64 / 1000.0,
        );
        sample(self.out, self.name, "_count", labels, d.count as f64);
    }
}

fn sample(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], value: f64) {
    let _ = write!(out, "{name}{suffix}");
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A label value, escaped as the text format wants.
pub(super) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as the text format writes it (`+Inf`, `NaN`).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut t = Text::default();
        t.family("x_total", Kind::Counter, "a\nb")
            .sample(&[("id", "q\"\n")], 2.0);
        assert_eq!(
            t.finish(),
            "# HELP x_total a\\nb\n# TYPE x_total counter\nx_total{id=\"q\\\"\\n\"} 2\n"
        );
    }

    #[test]
    fn a_histogram_is_buckets_sum_and_count() {
        let mut d = Durations::default();
        d.observe(800);
        let mut t = Text::default();
        t.family("d_seconds", Kind::Histogram, "h")
            .histogram(&[("job", "j")], &d);
        let text = t.finish();
        assert!(
            text.contains("d_seconds_bucket{job=\"j\",le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{job=\"j\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_sum{job=\"j\"} 0.8\n"), "{text}");
        assert!(text.contains("d_seconds_count{job=\"j\"} 1\n"), "{text}");
    }
}
