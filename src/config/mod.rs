//! Configuration: the command line, the environment and `.env`, resolved into [`Settings`].
//!
//! Precedence: flag > environment > `.env` in the working directory > config file > default. Secrets may
//! also come from `<NAME>_FILE` or from a systemd credential in `$CREDENTIALS_DIRECTORY`.
//!
//! - [`args`]: the clap definitions;
//! - [`env`]: the environment and `.env`;
//! - `file`: the config file under the command line, and where each value came from;
//! - `values`: the typed values' parsers and bounds;
//! - [`secrets`]: the table of secret names and how a secret is sourced;
//! - `resolve`: options → settings, one function per section.

mod args;
mod check;
mod env;
mod file;
pub mod notify;
mod resolve;
pub mod secrets;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use args::{Cli, Command, Options};
pub use check::describe;
pub use env::{load_dotenv, EmptyEnv, Env, ProcessEnv};
pub use file::{file_keys, parse, ParseError, Parsed, Source};
pub use notify::{Destination, NotifySettings, SmtpTls, Target};
pub use resolve::listen_addr;

use crate::domain::{Retention, Secret};

/// A configuration problem; the message names the flag or variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Why status-report cannot run without a backend, and what to set.
pub const NEEDS_BACKEND: &str =
    "status-report needs a backend: set DISTRIBUTED_MODE_ENABLED=true, BACKEND_BASE_URL and NODE_TOKEN";

/// Why peer-fetch cannot run without a peer source, and what to set.
pub const NEEDS_PEER_SOURCE: &str =
    "no peer source: set PEERS_FILE (--peers-file) for standalone mode, or \
     DISTRIBUTED_MODE_ENABLED with BACKEND_BASE_URL and NODE_TOKEN";

/// The variables that override a job's interval (a spec's `interval_variable` names one), and
/// their flags.
pub const INTERVAL_VARIABLES: [(&str, &str); 4] = [
    ("PEER_FETCH_INTERVAL", "--peer-fetch-interval"),
    ("STATUS_REPORT_INTERVAL", "--status-report-interval"),
    ("HEALTH_CHECK_INTERVAL", "--health-check-interval"),
    ("NOTIFY_INTERVAL", "--notify-interval"),
];

/// Where peers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSource {
    Backend,
    File(PathBuf),
    /// Neither a backend nor a peers file: peer-fetch fails with a clear message.
    None,
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub base_url: url::Url,
    pub node_token: Secret,
    pub api_key: Option<Secret>,
}

/// Fully resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: Option<Backend>,
    pub peer_source: PeerSource,
    pub region: Option<String>,
    pub peer_fetch_interval: Option<Duration>,
    pub status_report_interval: Option<Duration>,
    pub health_check_interval: Option<Duration>,
    pub notify_interval: Option<Duration>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub network_secret: Secret,
    pub admin_token: Option<Secret>,
    /// How long each level of history and the job runs are kept; the sweep prunes.
    pub retention: Retention,
    pub probe: ProbeSettings,
    pub notify: NotifySettings,
}

impl Settings {
    /// The interval set by `variable` (one of [`INTERVAL_VARIABLES`], as a job spec's
    /// `interval_variable` names it), if it is set.
    pub fn interval(&self, variable: &str) -> Option<Duration> {
        match variable {
            "PEER_FETCH_INTERVAL" => self.peer_fetch_interval,
            "STATUS_REPORT_INTERVAL" => self.status_report_interval,
            "HEALTH_CHECK_INTERVAL" => self.health_check_interval,
            "NOTIFY_INTERVAL" => self.notify_interval,
            _ => None,
        }
    }
}

/// Probe tuning: `PROBE_TIMEOUT`, `PROBE_CONCURRENCY` and `DNS_SERVERS`.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub timeout: Duration,
    /// The DNS servers asked; empty: the system's.
    pub dns_servers: Vec<SocketAddr>,
    /// Probes in flight at most; `None`: derived from the open-files limit (see
    /// [`ProbeSettings::in_flight`]).
    pub concurrency: Option<usize>,
}

impl ProbeSettings {
    /// The default per-peer timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
    /// The derived bound on all probes in flight never goes past this.
    pub const MAX_DERIVED_CONCURRENCY: usize = 4096;
    /// Of those, probes of peers that answered last time (or were never checked) in flight at
    /// once, at most, when derived. Their work is CPU (ours and their nodes'): past what the
    /// machine serves, more at once only queues, until a probe waits out its timeout behind the
    /// others and a live peer is called down. Measured (BENCHMARKS.md): 10 000 peers with 2 000
    /// dead, 2048 at once gave 10 false timeouts, 1024 and 512 none. 1024 keeps a fleet of
    /// distant peers (0.5 s a probe) near 2 000 a second. The rest of the bound is for peers that
    /// were down, which only wait: 20 % dead peers of 10 000, or 1 000 dead ones, fit beside.
    pub const MAX_DERIVED_ANSWERING: usize = 1024;
    /// Descriptors a probe may hold at once (a udp or wg probe races up to 4 sessions).
    pub const FILES_PER_PROBE: u64 = 4;
    /// Descriptors kept for the store, the API's connections and the runtime.
    pub const FILES_RESERVED: u64 = 1024;

    /// How many probes may be in flight with `open_files` descriptors allowed: the configured
    /// cap, else what the limit allows up to [`Self::MAX_DERIVED_CONCURRENCY`]; at least 1.
    /// The second value is true when the open-files limit set it below that maximum.
    pub fn in_flight(&self, open_files: u64) -> (usize, bool) {
        if let Some(n) = self.concurrency {
            return (n.max(1), false);
        }
        let allowed = open_files.saturating_sub(Self::FILES_RESERVED.min(open_files / 2))
            / Self::FILES_PER_PROBE;
        let allowed = usize::try_from(allowed).unwrap_or(usize::MAX).max(1);
        (
            allowed.min(Self::MAX_DERIVED_CONCURRENCY),
            allowed < Self::MAX_DERIVED_CONCURRENCY,
        )
    }

    /// The in-flight bound split in two lanes for a sweep of `waiting` peers that were down
    /// last time (probed first) and `others`: (waiting lane, others' lane), together within
    /// [`Self::in_flight`]; a waiting lane of 0 means one lane for all. The others get half the
    /// bound (all of it when no peer is waiting), capped at [`Self::MAX_DERIVED_ANSWERING`] when
    /// derived; the waiting peers what is left. So a sweep takes about one timeout or the
    /// answering peers' work, whichever is longer, when the bound holds both.
    pub fn lanes(&self, open_files: u64, waiting: usize, others: usize) -> (usize, usize) {
        let (total, _) = self.in_flight(open_files);
        let answering_cap = self.concurrency.unwrap_or(Self::MAX_DERIVED_ANSWERING);
        let others_share = others.min(total.div_ceil(2)).min(answering_cap);
        let waiting_width = waiting.min(total - others_share);
        let width = (total - waiting_width).min(answering_cap).max(1);
        (waiting_width, width)
    }
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            dns_servers: Vec::new(),
            concurrency: None,
        }
    }
}

#[cfg(test)]
mod tests;
