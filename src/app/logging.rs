//! Logging to stderr (stdout is kept for `run-job --json`): human-readable by default,
//! JSON lines with `LOG_FORMAT=json`; `RUST_LOG` filters as usual. Colours only when stderr is
//! a terminal (not in a file, a pipe or the journal) and `NO_COLOR` is unset.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Sets up the global subscriber. `default` is the filter used when `RUST_LOG` is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The default filter: our own messages at info, everything else (easytier, sled, quinn) at warn.
pub const DEFAULT_FILTER: &str = "warn,easytier=off,easytier_probe=info";
