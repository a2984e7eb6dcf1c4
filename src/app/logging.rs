//! Logging to stderr (stdout is kept for `run-job --json`): human-readable by default,
//! JSON lines with `LOG_FORMAT=json`; `RUST_LOG` filters as usual. Colours only when stderr is
//! a terminal (not in a file, a pipe or the journal) and `NO_COLOR` is unset.
//!
//! When stderr is the journal (systemd's `JOURNAL_STREAM` names it), lines take the journal's
//! form: a syslog priority prefix (`<3>` error … `<7>` debug, so `journalctl -p warning` works)
//! and no timestamp (the journal keeps its own). `LOG_FORMAT=text` keeps the plain form there.

use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Sets up the global subscriber. `default` is the filter used when `RUST_LOG` is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = if format.eq_ignore_ascii_case("json") {
        builder.json().try_init()
    } else if format.eq_ignore_ascii_case("journal")
        || (format.is_empty() && stderr_is_the_journal())
    {
        builder.with_ansi(false).event_format(Journal).try_init()
    } else {
        builder.try_init()
    };
}

/// Whether stderr is the stream `JOURNAL_STREAM` (`<device>:<inode>`) names, as systemd asks
/// programs to check (a child whose stderr was redirected inherits the variable).
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream == format!("{}:{}", meta.dev(), meta.ino())
}

/// The journal's line form: `<priority>target: message fields`.
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let priority = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>{}: ", meta.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The default filter: our own messages at info, everything else (easytier, sled, quinn) at warn.
pub const DEFAULT_FILTER: &str = "warn,easytier=off,easytier_probe=info";
