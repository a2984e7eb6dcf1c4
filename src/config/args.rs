//! The command line (clap): the commands and the global options, each also an environment
//! variable. Values stay text here; [`super::Settings::resolve`] checks them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::values;
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
    /// Resolve flags, environment, `.env` and the config file and print the settings (secrets
    /// never shown): exit 0, or 2 naming the problem.
    CheckConfig,
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

/// Global options: every one is also an environment variable and a config file key (the flag
/// without its dashes, `-` as `_`).
#[derive(Args, Debug, Clone, Default)]
pub struct Options {
    /// A TOML file of settings, one key per option (e.g. `listen = "0.0.0.0:8080"`); flags,
    /// the environment and `.env` win over it.
    #[arg(
        help_heading = "Configuration",
        long,
        global = true,
        env = "CONFIG_FILE",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Fetch peers from and report to a backend (a switch; `--distributed-mode=false` turns
    /// it off over the environment).
    #[arg(help_heading = "Backend", long, global = true, env = "DISTRIBUTED_MODE_ENABLED", value_parser = values::parse_bool, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub distributed_mode: Option<bool>,

    /// Backend base URL, e.g. https://backend.example.com
    #[arg(
        help_heading = "Backend",
        long,
        global = true,
        env = "BACKEND_BASE_URL",
        value_name = "URL"
    )]
    pub backend_base_url: Option<String>,

    /// Token for PUT /nodes/status (also NODE_TOKEN_FILE or the credential node_token).
    #[arg(
        help_heading = "Backend",
        long,
        global = true,
        env = "NODE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub node_token: Option<String>,

    /// Bearer key for GET /peers (also API_KEY_FILE or the credential api_key).
    #[arg(
        help_heading = "Backend",
        long,
        global = true,
        env = "API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,

    /// Region of this probe; filters the peers the backend assigns.
    #[arg(help_heading = "Backend", long, global = true, env = "REGION")]
    pub region: Option<String>,

    /// Standalone mode: read peers from this JSON or TOML file.
    #[arg(
        help_heading = "Backend",
        long,
        global = true,
        env = "PEERS_FILE",
        value_name = "FILE"
    )]
    pub peers_file: Option<PathBuf>,

    /// Time between peer fetches, e.g. 60, 90s, 5m [default: the job's, 60s]
    #[arg(help_heading = "Schedule", long, global = true, env = "PEER_FETCH_INTERVAL", value_name = "DURATION",
          value_parser = values::interval(("PEER_FETCH_INTERVAL", "--peer-fetch-interval")))]
    pub peer_fetch_interval: Option<Duration>,

    /// Time between status reports [default: the job's, 30s]
    #[arg(help_heading = "Schedule", long, global = true, env = "STATUS_REPORT_INTERVAL", value_name = "DURATION",
          value_parser = values::interval(("STATUS_REPORT_INTERVAL", "--status-report-interval")))]
    pub status_report_interval: Option<Duration>,

    /// Time between probe sweeps [default: the job's, 5s]
    #[arg(help_heading = "Schedule", long, global = true, env = "HEALTH_CHECK_INTERVAL", value_name = "DURATION",
          value_parser = values::interval(("HEALTH_CHECK_INTERVAL", "--health-check-interval")))]
    pub health_check_interval: Option<Duration>,

    /// Time between runs of the notify job (serve also runs it after each sweep) [default: the job's, 10s]
    #[arg(help_heading = "Schedule", long, global = true, env = "NOTIFY_INTERVAL", value_name = "DURATION",
          value_parser = values::interval(("NOTIFY_INTERVAL", "--notify-interval")))]
    pub notify_interval: Option<Duration>,

    /// Directory of the store [default: $STATE_DIRECTORY, else ./easytier-probe-data]
    #[arg(
        help_heading = "Storage",
        long,
        global = true,
        env = "DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,

    /// How long raw probe checks are kept.
    #[arg(help_heading = "Storage", long, global = true, env = "HISTORY_RETENTION", value_name = "DURATION",
          default_value = "1h", value_parser = values::history_retention)]
    pub history_retention: Option<Duration>,

    /// How long per-minute history buckets are kept.
    #[arg(help_heading = "Storage", long, global = true, env = "HISTORY_MINUTE_RETENTION", value_name = "DURATION",
          default_value = "2h", value_parser = values::minute_retention)]
    pub history_minute_retention: Option<Duration>,

    /// How long per-hour history buckets are kept.
    #[arg(help_heading = "Storage", long, global = true, env = "HISTORY_HOUR_RETENTION", value_name = "DURATION",
          default_value = "170h", value_parser = values::hour_retention)]
    pub history_hour_retention: Option<Duration>,

    /// How long per-day history buckets are kept.
    #[arg(help_heading = "Storage", long, global = true, env = "HISTORY_DAY_RETENTION", value_name = "DURATION",
          default_value = "400d", value_parser = values::day_retention)]
    pub history_day_retention: Option<Duration>,

    /// Job runs kept per job, newest first.
    #[arg(help_heading = "Storage", long, global = true, env = "RUNS_KEEP", value_name = "N",
          default_value = "1000", value_parser = values::runs_keep)]
    pub runs_keep: Option<usize>,

    /// Job runs older than this are deleted (the newest run of a job always stays).
    #[arg(help_heading = "Storage", long, global = true, env = "RUNS_RETENTION", value_name = "DURATION",
          default_value = "30d", value_parser = values::runs_retention)]
    pub runs_retention: Option<Duration>,

    /// Address of the HTTP API.
    #[arg(help_heading = "API and status page", long = "listen", global = true, env = "LISTEN_ADDR", value_name = "ADDR",
          default_value = "127.0.0.1:8080", value_parser = values::listen)]
    pub listen: Option<SocketAddr>,

    /// Token that enables POST /api/jobs/{name}/run (also ADMIN_TOKEN_FILE or the credential admin_token).
    #[arg(
        help_heading = "API and status page",
        long,
        global = true,
        env = "ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,

    /// Base URL of this probe's pages, for links in alerts, e.g. https://probe-1.example.com
    #[arg(
        help_heading = "API and status page",
        long,
        global = true,
        env = "PUBLIC_URL",
        value_name = "URL"
    )]
    pub public_url: Option<String>,

    /// Network secret for peers whose entry carries none (also NETWORK_SECRET_FILE or the credential network_secret).
    #[arg(
        help_heading = "Probe",
        long,
        global = true,
        env = "NETWORK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub network_secret: Option<String>,

    /// How long one peer's probe may take, from 100ms to 60s.
    #[arg(help_heading = "Probe", long, global = true, env = "PROBE_TIMEOUT", value_name = "DURATION",
          default_value = "3s", value_parser = values::probe_timeout)]
    pub probe_timeout: Option<Duration>,

    /// Most probes in flight at once [default: derived from the open-files limit, at most 4096]
    #[arg(help_heading = "Probe", long, global = true, env = "PROBE_CONCURRENCY", value_name = "N",
          value_parser = values::probe_concurrency)]
    pub probe_concurrency: Option<usize>,

    /// DNS servers for peers' names and TXT/SRV records, e.g. "1.1.1.1, [2606:4700::1111]:53"
    /// [default: the system's, from /etc/resolv.conf]
    #[arg(
        help_heading = "Probe",
        long,
        global = true,
        env = "DNS_SERVERS",
        value_name = "ADDRS"
    )]
    pub dns_servers: Option<String>,

    /// Where alerts go: comma-separated URLs (webhook, alertmanager, ntfy, telegram, discord, slack, smtp; also NOTIFY_URLS_FILE or the credential notify_urls).
    #[arg(
        help_heading = "Alerts",
        long,
        global = true,
        env = "NOTIFY_URLS",
        hide_env_values = true,
        value_name = "URLS"
    )]
    pub notify_urls: Option<String>,

    /// Down checks in a row before a peer's alert fires.
    #[arg(help_heading = "Alerts", long, global = true, env = "NOTIFY_FAILURE_THRESHOLD", value_name = "N", default_value = "3",
          value_parser = values::threshold(("NOTIFY_FAILURE_THRESHOLD", "--notify-failure-threshold")))]
    pub notify_failure_threshold: Option<u32>,

    /// Up checks in a row before a firing alert resolves.
    #[arg(help_heading = "Alerts", long, global = true, env = "NOTIFY_SUCCESS_THRESHOLD", value_name = "N", default_value = "2",
          value_parser = values::threshold(("NOTIFY_SUCCESS_THRESHOLD", "--notify-success-threshold")))]
    pub notify_success_threshold: Option<u32>,

    /// This probe's name in alerts [default: the host name]
    #[arg(
        help_heading = "Alerts",
        long,
        global = true,
        env = "PROBE_NAME",
        value_name = "NAME"
    )]
    pub probe_name: Option<String>,
}
