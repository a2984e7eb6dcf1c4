//! The command line (clap): the commands and the global options, each also an environment
//! variable. Values stay text here; [`super::Settings::resolve`] checks them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::duration::parse_duration;
use crate::domain::JobName;

#[derive(Parser, Debug)]
#[command(
    name = "easytier-probe",
    version,
    about = "A probe node for EasyTier networks: fetches peers, checks each with a real EasyTier \
             handshake, keeps history and reports to a backend.",
    propagate_version = true,
    after_help = "Logging (environment only): LOG_FORMAT=json writes JSON lines; RUST_LOG \
                  filters (default info, e.g. RUST_LOG=easytier_probe=debug); NO_COLOR turns \
                  colours off (they are only used on a terminal)."
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the jobs on their schedules and serve the HTTP API (the default).
    Serve {
        /// Serve the API and the control channel only; systemd timers or Nomad run the jobs.
        #[arg(long)]
        no_schedule: bool,
    },
    /// Run one job once and exit (0 ok, 1 failed, 2 usage/configuration, 75 store busy).
    RunJob {
        /// The job to run.
        job: JobName,
        /// Print one JSON object describing the run on stdout.
        #[arg(long)]
        json: bool,
        /// How long to wait for a store held by another one-shot run, e.g. "30s".
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        wait: Duration,
        /// Exit 0, not 75, when the job cannot run now (the store stayed busy past --wait, or
        /// its previous run is still going), saying so on stderr: for schedulers that count
        /// every other exit as a failure, such as Nomad.
        #[arg(long)]
        busy_ok: bool,
    },
    /// List the jobs: schedule, timeout, overlap policy and last run.
    Jobs {
        /// Print one JSON object, `{"items": [..]}` as `GET /api/jobs` answers.
        #[arg(long)]
        json: bool,
    },
    /// Start real EasyTier nodes on loopback and run `serve` against them.
    Demo,
    /// Print a shell completion script, e.g. `easytier-probe completions bash >
    /// /etc/bash_completion.d/easytier-probe`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `easytier-probe manpage > easytier-probe.1`.
    Manpage,
    /// Read the local `/health` (on LISTEN_ADDR): exit 0 when serve answers ok or degraded, 1
    /// otherwise. For container health checks in images without a shell.
    Healthcheck,
}

/// Global options: every one is also an environment variable.
#[derive(Args, Debug, Clone, Default)]
pub struct Options {
    /// Fetch peers from and report to a backend (a switch; `--distributed-mode=false` turns
    /// it off over the environment).
    #[arg(help_heading = "Backend", long, global = true, env = "DISTRIBUTED_MODE_ENABLED", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub distributed_mode: Option<bool>,

    /// Backend base URL, e.g. https://backend.example.com
    #[arg(
        help_heading = "Backend",
        long,
        global = true,
        env = "BACKEND_BASE_URL"
    )]
    pub backend_base_url: Option<String>,

    /// Token for PUT /nodes/status (also NODE_TOKEN_FILE or the credential node_token).
    #[arg(
        help_heading = "Backend",
        long,
        global = true,
        env = "NODE_TOKEN",
        hide_env_values = true
    )]
    pub node_token: Option<String>,

    /// Bearer key for GET /peers (also API_KEY_FILE or the credential api_key).
    #[arg(
        help_heading = "Backend",
        long,
        global = true,
        env = "API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Region of this probe; filters the peers the backend assigns.
    #[arg(help_heading = "Backend", long, global = true, env = "REGION")]
    pub region: Option<String>,

    /// Seconds between peer fetches [default: 60]
    #[arg(
        help_heading = "Schedule",
        long,
        global = true,
        env = "PEER_FETCH_INTERVAL"
    )]
    pub peer_fetch_interval: Option<String>,

    /// Seconds between status reports [default: 30]
    #[arg(
        help_heading = "Schedule",
        long,
        global = true,
        env = "STATUS_REPORT_INTERVAL"
    )]
    pub status_report_interval: Option<String>,

    /// Seconds between probe sweeps [default: 5]
    #[arg(
        help_heading = "Schedule",
        long,
        global = true,
        env = "HEALTH_CHECK_INTERVAL"
    )]
    pub health_check_interval: Option<String>,

    /// Directory of the store [default: $STATE_DIRECTORY, else ./easytier-probe-data]
    #[arg(help_heading = "Storage", long, global = true, env = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address of the HTTP API [default: 127.0.0.1:8080]
    #[arg(
        help_heading = "API and status page",
        long = "listen",
        global = true,
        env = "LISTEN_ADDR"
    )]
    pub listen: Option<String>,

    /// Standalone mode: read peers from this JSON or TOML file.
    #[arg(help_heading = "Backend", long, global = true, env = "PEERS_FILE")]
    pub peers_file: Option<PathBuf>,

    /// Network secret for peers whose entry carries none (also NETWORK_SECRET_FILE or the credential network_secret).
    #[arg(
        help_heading = "Probe",
        long,
        global = true,
        env = "NETWORK_SECRET",
        hide_env_values = true
    )]
    pub network_secret: Option<String>,

    /// Token that enables POST /api/jobs/{name}/run (also ADMIN_TOKEN_FILE or the credential admin_token).
    #[arg(
        help_heading = "API and status page",
        long,
        global = true,
        env = "ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Where alerts go: comma-separated URLs (webhook, alertmanager, ntfy, telegram, discord, slack, smtp; also NOTIFY_URLS_FILE or the credential notify_urls).
    #[arg(
        help_heading = "Alerts",
        long,
        global = true,
        env = "NOTIFY_URLS",
        hide_env_values = true
    )]
    pub notify_urls: Option<String>,

    /// Down checks in a row before a peer's alert fires [default: 3]
    #[arg(
        help_heading = "Alerts",
        long,
        global = true,
        env = "NOTIFY_FAILURE_THRESHOLD"
    )]
    pub notify_failure_threshold: Option<String>,

    /// Up checks in a row before a firing alert resolves [default: 2]
    #[arg(
        help_heading = "Alerts",
        long,
        global = true,
        env = "NOTIFY_SUCCESS_THRESHOLD"
    )]
    pub notify_success_threshold: Option<String>,

    /// Seconds between runs of the notify job (serve also runs it after each sweep) [default: 10]
    #[arg(
        help_heading = "Schedule",
        long,
        global = true,
        env = "NOTIFY_INTERVAL"
    )]
    pub notify_interval: Option<String>,

    /// This probe's name in alerts [default: the host name]
    #[arg(help_heading = "Alerts", long, global = true, env = "PROBE_NAME")]
    pub probe_name: Option<String>,

    /// Base URL of this probe's pages, for links in alerts, e.g. https://probe-1.example.com
    #[arg(
        help_heading = "API and status page",
        long,
        global = true,
        env = "PUBLIC_URL"
    )]
    pub public_url: Option<String>,

    /// How long raw probe checks are kept, e.g. "1h", "2d" [default: 1h]
    #[arg(
        help_heading = "Storage",
        long,
        global = true,
        env = "HISTORY_RETENTION"
    )]
    pub history_retention: Option<String>,

    /// How long per-minute history buckets are kept [default: 2h]
    #[arg(
        help_heading = "Storage",
        long,
        global = true,
        env = "HISTORY_MINUTE_RETENTION"
    )]
    pub history_minute_retention: Option<String>,

    /// How long per-hour history buckets are kept [default: 170h]
    #[arg(
        help_heading = "Storage",
        long,
        global = true,
        env = "HISTORY_HOUR_RETENTION"
    )]
    pub history_hour_retention: Option<String>,

    /// How long per-day history buckets are kept [default: 400d]
    #[arg(
        help_heading = "Storage",
        long,
        global = true,
        env = "HISTORY_DAY_RETENTION"
    )]
    pub history_day_retention: Option<String>,

    /// Job runs kept per job, newest first [default: 1000]
    #[arg(help_heading = "Storage", long, global = true, env = "RUNS_KEEP")]
    pub runs_keep: Option<String>,

    /// Job runs older than this are deleted (the newest run of a job always stays) [default: 30d]
    #[arg(help_heading = "Storage", long, global = true, env = "RUNS_RETENTION")]
    pub runs_retention: Option<String>,

    /// How long one peer's probe may take, e.g. "3s", "1500ms" [default: 3s]
    #[arg(help_heading = "Probe", long, global = true, env = "PROBE_TIMEOUT")]
    pub probe_timeout: Option<String>,

    /// Most probes in flight at once [default: derived from the open-files limit, at most 4096]
    #[arg(help_heading = "Probe", long, global = true, env = "PROBE_CONCURRENCY")]
    pub probe_concurrency: Option<String>,

    /// DNS servers for peers' names and TXT/SRV records, e.g. "1.1.1.1, [2606:4700::1111]:53"
    /// [default: the system's, from /etc/resolv.conf]
    #[arg(help_heading = "Probe", long, global = true, env = "DNS_SERVERS")]
    pub dns_servers: Option<String>,
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}
