//! Command line, environment and `.env` configuration, resolved into [`Settings`].
//!
//! Precedence: flag > environment > `.env` in the working directory > default. Secrets may
//! also come from `<NAME>_FILE` or from a systemd credential in `$CREDENTIALS_DIRECTORY`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::history::Retention;
use crate::jobs::JobName;

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "easytier-probe",
    version,
    about = "A probe node for EasyTier networks: fetches peers, checks each with a real EasyTier \
             handshake, keeps history and reports to a backend.",
    propagate_version = true
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
    },
    /// List the jobs: schedule, timeout, overlap policy and last run.
    Jobs,
    /// Start real EasyTier nodes on loopback and run `serve` against them.
    Demo,
}

/// Global options: every one is also an environment variable.
#[derive(Args, Debug, Clone, Default)]
pub struct Options {
    /// Fetch peers from and report to a backend.
    #[arg(long, global = true, env = "DISTRIBUTED_MODE_ENABLED", value_parser = parse_bool,
          num_args = 0..=1, default_missing_value = "true")]
    pub distributed_mode: Option<bool>,

    /// Backend base URL, e.g. https://backend.example.com
    #[arg(long, global = true, env = "BACKEND_BASE_URL")]
    pub backend_base_url: Option<String>,

    /// Token for PUT /nodes/status (also NODE_TOKEN_FILE or the credential node_token).
    #[arg(long, global = true, env = "NODE_TOKEN", hide_env_values = true)]
    pub node_token: Option<String>,

    /// Bearer key for GET /peers (also API_KEY_FILE or the credential api_key).
    #[arg(long, global = true, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Region of this probe; filters the peers the backend assigns.
    #[arg(long, global = true, env = "REGION")]
    pub region: Option<String>,

    /// Seconds between peer fetches [default: 60]
    #[arg(long, global = true, env = "PEER_FETCH_INTERVAL")]
    pub peer_fetch_interval: Option<String>,

    /// Seconds between status reports [default: 30]
    #[arg(long, global = true, env = "STATUS_REPORT_INTERVAL")]
    pub status_report_interval: Option<String>,

    /// Seconds between probe sweeps [default: 5]
    #[arg(long, global = true, env = "HEALTH_CHECK_INTERVAL")]
    pub health_check_interval: Option<String>,

    /// Directory of the store [default: $STATE_DIRECTORY, else ./easytier-probe-data]
    #[arg(long, global = true, env = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address of the HTTP API [default: 127.0.0.1:8080]
    #[arg(long = "listen", global = true, env = "LISTEN_ADDR")]
    pub listen: Option<String>,

    /// Standalone mode: read peers from this JSON or TOML file.
    #[arg(long, global = true, env = "PEERS_FILE")]
    pub peers_file: Option<PathBuf>,

    /// Network secret for peers whose entry carries none (also NETWORK_SECRET_FILE or the credential network_secret).
    #[arg(long, global = true, env = "NETWORK_SECRET", hide_env_values = true)]
    pub network_secret: Option<String>,

    /// Token that enables POST /api/jobs/{name}/run (also ADMIN_TOKEN_FILE or the credential admin_token).
    #[arg(long, global = true, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long raw probe checks are kept, e.g. "1h", "2d" [default: 1h]
    #[arg(long, global = true, env = "HISTORY_RETENTION")]
    pub history_retention: Option<String>,

    /// How long per-minute history buckets are kept [default: 2h]
    #[arg(long, global = true, env = "HISTORY_MINUTE_RETENTION")]
    pub history_minute_retention: Option<String>,

    /// How long per-hour history buckets are kept [default: 170h]
    #[arg(long, global = true, env = "HISTORY_HOUR_RETENTION")]
    pub history_hour_retention: Option<String>,

    /// How long per-day history buckets are kept [default: 400d]
    #[arg(long, global = true, env = "HISTORY_DAY_RETENTION")]
    pub history_day_retention: Option<String>,

    /// Job runs kept per job, newest first [default: 1000]
    #[arg(long, global = true, env = "RUNS_KEEP")]
    pub runs_keep: Option<String>,

    /// Job runs older than this are deleted (the newest run of a job always stays) [default: 30d]
    #[arg(long, global = true, env = "RUNS_RETENTION")]
    pub runs_retention: Option<String>,
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

/// Parses "30s", "5m", "1h", "250ms" or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 5m or 1h, got {value:?}"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "unknown unit in duration {value:?}; use ms, s, m or h"
            ))
        }
    };
    Ok(d)
}

/// A configuration problem; the message names the flag or variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where peers come from.
/// Why status-report cannot run without a backend, and what to set.
pub const NEEDS_BACKEND: &str =
    "status-report needs a backend: set DISTRIBUTED_MODE_ENABLED=true, BACKEND_BASE_URL and NODE_TOKEN";

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
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub network_secret: Secret,
    pub admin_token: Option<Secret>,
    /// How long each level of history and the job runs are kept; the sweep prunes.
    pub retention: Retention,
    pub probe: ProbeSettings,
}

/// Probe tuning; fixed defaults for now.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub timeout: Duration,
    pub concurrency: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            concurrency: 256,
        }
    }
}

/// The environment as seen by [`Settings::resolve`], so tests need not touch the process env.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// No environment at all (for callers that build their settings entirely from options).
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Loads `.env` from the working directory into the process environment without overriding
/// variables that are already set, which gives environment precedence over `.env`.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError(format!("could not read .env: {e}"))),
    }
}

impl Settings {
    /// Validates the options and fills in secrets from files and credentials.
    pub fn resolve(options: &Options, env: &dyn Env) -> Result<Self, ConfigError> {
        let defaults = Retention::default();
        let distributed = options.distributed_mode.unwrap_or(false);

        let node_token = secret(
            options.node_token.as_deref(),
            "NODE_TOKEN",
            "node_token",
            env,
        )?;
        let api_key = secret(options.api_key.as_deref(), "API_KEY", "api_key", env)?;
        let admin_token = secret(
            options.admin_token.as_deref(),
            "ADMIN_TOKEN",
            "admin_token",
            env,
        )?;

        let base_url = match options.backend_base_url.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => Some(parse_backend_url(raw)?),
            _ => None,
        };

        let backend = if distributed {
            let base_url = base_url.ok_or_else(|| {
                ConfigError(
                    "BACKEND_BASE_URL is required in distributed mode; set it or pass --backend-base-url"
                        .into(),
                )
            })?;
            let node_token = node_token.ok_or_else(|| {
                ConfigError(
                    "NODE_TOKEN is required in distributed mode; set it, NODE_TOKEN_FILE, the \
                     node_token credential, or pass --node-token"
                        .into(),
                )
            })?;
            Some(Backend {
                base_url,
                node_token,
                api_key,
            })
        } else {
            None
        };

        let peer_source = match (&backend, &options.peers_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "PEERS_FILE (--peers-file) and DISTRIBUTED_MODE_ENABLED both given: in \
                     distributed mode peers come from the backend; unset one of them"
                        .into(),
                ))
            }
            (Some(_), None) => PeerSource::Backend,
            (None, Some(path)) => PeerSource::File(path.clone()),
            (None, None) => PeerSource::None,
        };

        let data_dir = options
            .data_dir
            .clone()
            .or_else(|| env.var("DATABASE_PATH").map(PathBuf::from))
            .or_else(|| {
                env.var("STATE_DIRECTORY")
                    .and_then(|s| s.split(':').next().map(PathBuf::from))
            })
            .unwrap_or_else(|| PathBuf::from("./easytier-probe-data"));

        let listen_raw = options.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = listen_raw.trim().parse().map_err(|_| {
            ConfigError(format!(
                "LISTEN_ADDR (--listen) must be an address like 127.0.0.1:8080, got {listen_raw:?}"
            ))
        })?;

        Ok(Settings {
            backend,
            peer_source,
            region: options
                .region
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(String::from),
            peer_fetch_interval: interval(
                options.peer_fetch_interval.as_deref(),
                "PEER_FETCH_INTERVAL",
                "--peer-fetch-interval",
            )?,
            status_report_interval: interval(
                options.status_report_interval.as_deref(),
                "STATUS_REPORT_INTERVAL",
                "--status-report-interval",
            )?,
            health_check_interval: interval(
                options.health_check_interval.as_deref(),
                "HEALTH_CHECK_INTERVAL",
                "--health-check-interval",
            )?,
            data_dir,
            listen,
            network_secret: secret(
                options.network_secret.as_deref(),
                "NETWORK_SECRET",
                "network_secret",
                env,
            )?
            .unwrap_or_else(|| Secret::new("")),
            admin_token,
            retention: Retention {
                raw: retention(
                    options.history_retention.as_deref(),
                    ("HISTORY_RETENTION", "--history-retention"),
                    defaults.raw,
                    (10 * 60, 30 * 86_400),
                )?,
                minute: retention(
                    options.history_minute_retention.as_deref(),
                    ("HISTORY_MINUTE_RETENTION", "--history-minute-retention"),
                    defaults.minute,
                    (2 * 3600, 90 * 86_400),
                )?,
                hour: retention(
                    options.history_hour_retention.as_deref(),
                    ("HISTORY_HOUR_RETENTION", "--history-hour-retention"),
                    defaults.hour,
                    (170 * 3600, 3 * 365 * 86_400),
                )?,
                day: retention(
                    options.history_day_retention.as_deref(),
                    ("HISTORY_DAY_RETENTION", "--history-day-retention"),
                    defaults.day,
                    (31 * 86_400, 20 * 365 * 86_400),
                )?,
                runs_keep: runs_keep(options.runs_keep.as_deref(), defaults.runs_keep)?,
                runs_age: retention(
                    options.runs_retention.as_deref(),
                    ("RUNS_RETENTION", "--runs-retention"),
                    defaults.runs_age,
                    (3600, 20 * 365 * 86_400),
                )?,
            },
            probe: ProbeSettings::default(),
        })
    }
}

fn parse_backend_url(raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw).map_err(|e| {
        ConfigError(format!(
            "BACKEND_BASE_URL (--backend-base-url) is not a valid URL ({e}); expected e.g. https://backend.example.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError(
            "BACKEND_BASE_URL (--backend-base-url) must be an http:// or https:// URL with a host"
                .into(),
        ));
    }
    Ok(url)
}

/// Whole seconds, at least 1.
fn interval(raw: Option<&str>, var: &str, flag: &str) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    match raw.parse::<u64>() {
        Ok(n) if (1..=7 * 24 * 3600).contains(&n) => Ok(Some(Duration::from_secs(n))),
        _ => Err(ConfigError(format!(
            "{var} ({flag}) must be a whole number of seconds between 1 and 604800, got {raw:?}"
        ))),
    }
}

/// A retention setting: a duration ("d" is accepted beside ms/s/m/h) within `bounds` seconds.
fn retention(
    raw: Option<&str>,
    (var, flag): (&str, &str),
    default: chrono::Duration,
    (min, max): (u64, u64),
) -> Result<chrono::Duration, ConfigError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    let parsed = match raw.strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .map(|d| Duration::from_secs(d.saturating_mul(86_400)))
            .map_err(|_| String::new()),
        None => parse_duration(raw),
    };
    match parsed {
        Ok(d) if (min..=max).contains(&d.as_secs()) => {
            Ok(chrono::Duration::seconds(d.as_secs() as i64))
        }
        _ => Err(ConfigError(format!(
            "{var} ({flag}) must be a duration from {} to {}, like 36h or 7d, got {raw:?}",
            human_secs(min),
            human_secs(max)
        ))),
    }
}

fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}m", s / 60),
    }
}

fn runs_keep(raw: Option<&str>, default: usize) -> Result<usize, ConfigError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(ConfigError(format!(
            "RUNS_KEEP (--runs-keep) must be a whole number from 1 to 1000000, got {raw:?}"
        ))),
    }
}

/// A secret from the flag/variable, else `<VAR>_FILE`, else `$CREDENTIALS_DIRECTORY/<credential>`.
fn secret(
    direct: Option<&str>,
    var: &str,
    credential: &str,
    env: &dyn Env,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = direct.filter(|v| !v.is_empty()) {
        return Ok(Some(Secret::new(v.trim_end_matches(['\r', '\n']))));
    }
    if let Some(path) = env.var(&format!("{var}_FILE")) {
        return read_secret_file(Path::new(&path), &format!("{var}_FILE")).map(Some);
    }
    if let Some(dir) = env.var("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(credential);
        if path.exists() {
            return read_secret_file(&path, &format!("credential {credential}")).map(Some);
        }
    }
    Ok(None)
}

fn read_secret_file(path: &Path, what: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{what}: cannot read secret file {}: {e}",
            path.display()
        ))
    })?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(ConfigError(format!(
            "{what}: secret file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<String, String>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("easytier-probe").chain(args.iter().copied()))
            .expect("arguments parse")
    }

    #[test]
    fn distributed_mode_names_the_missing_setting() {
        let cli = parse(&["--distributed-mode", "--node-token", "t"]);
        let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
        assert!(err.0.contains("BACKEND_BASE_URL"), "{err}");

        let cli = parse(&["--distributed-mode", "--backend-base-url", "http://b.test"]);
        let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
        assert!(err.0.contains("NODE_TOKEN"), "{err}");
    }

    #[test]
    fn flags_work_after_the_command_and_secrets_are_redacted() {
        let cli = parse(&[
            "run-job",
            "peer-fetch",
            "--distributed-mode",
            "--backend-base-url",
            "http://b.test/api",
            "--node-token",
            "tok-123",
            "--region",
            "us-west",
        ]);
        let s = Settings::resolve(&cli.options, &env(&[])).unwrap();
        let backend = s.backend.as_ref().unwrap();
        assert_eq!(backend.node_token.expose(), "tok-123");
        assert_eq!(s.region.as_deref(), Some("us-west"));
        assert_eq!(s.peer_source, PeerSource::Backend);
        let debug = format!("{s:?}");
        assert!(!debug.contains("tok-123"), "{debug}");
    }

    #[test]
    fn secret_files_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
        std::fs::write(dir.path().join("api_key"), "from-credential").unwrap();
        let e = env(&[
            (
                "NODE_TOKEN_FILE",
                dir.path().join("token").to_str().unwrap(),
            ),
            ("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap()),
        ]);
        let cli = parse(&["--distributed-mode", "--backend-base-url", "http://b.test"]);
        let s = Settings::resolve(&cli.options, &e).unwrap();
        let b = s.backend.unwrap();
        assert_eq!(b.node_token.expose(), "from-file");
        assert_eq!(b.api_key.unwrap().expose(), "from-credential");

        std::fs::write(dir.path().join("network_secret"), "net-from-credential\n").unwrap();
        let s = Settings::resolve(&parse(&[]).options, &e).unwrap();
        assert_eq!(s.network_secret.expose(), "net-from-credential");

        let e = env(&[("NODE_TOKEN_FILE", "/nonexistent/secret")]);
        let err = Settings::resolve(&cli.options, &e).unwrap_err();
        assert!(err.0.contains("NODE_TOKEN_FILE"), "{err}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (args, name) in [
            (
                vec!["--health-check-interval", "0"],
                "HEALTH_CHECK_INTERVAL",
            ),
            (vec!["--peer-fetch-interval", "abc"], "PEER_FETCH_INTERVAL"),
            (vec!["--listen", "nowhere"], "LISTEN_ADDR"),
        ] {
            let cli = parse(&args);
            let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
            assert!(err.0.contains(name), "{err}");
        }
        let cli = parse(&[
            "--distributed-mode",
            "--backend-base-url",
            "ftp://x",
            "--node-token",
            "t",
        ]);
        let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
        assert!(err.0.contains("BACKEND_BASE_URL"), "{err}");
    }

    #[test]
    fn data_dir_falls_back_to_alias_then_state_directory() {
        let cli = parse(&[]);
        let s =
            Settings::resolve(&cli.options, &env(&[("STATE_DIRECTORY", "/var/lib/p:/x")])).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/p"));
        let s = Settings::resolve(
            &cli.options,
            &env(&[("DATABASE_PATH", "/db"), ("STATE_DIRECTORY", "/s")]),
        )
        .unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/db"));
        let s = Settings::resolve(&cli.options, &env(&[])).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("./easytier-probe-data"));
        assert_eq!(s.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn retentions_default_parse_and_bound() {
        let s = Settings::resolve(&parse(&[]).options, &env(&[])).unwrap();
        assert_eq!(s.retention, Retention::default());
        let s = Settings::resolve(
            &parse(&[
                "--history-retention",
                "2h",
                "--history-minute-retention",
                "3d",
                "--history-hour-retention",
                "40d",
                "--history-day-retention",
                "3650d",
                "--runs-keep",
                "10",
                "--runs-retention",
                "36h",
            ])
            .options,
            &env(&[]),
        )
        .unwrap();
        let r = s.retention;
        assert_eq!(r.raw, chrono::Duration::hours(2));
        assert_eq!(r.minute, chrono::Duration::days(3));
        assert_eq!(r.hour, chrono::Duration::days(40));
        assert_eq!(r.day, chrono::Duration::days(3650));
        assert_eq!((r.runs_keep, r.runs_age), (10, chrono::Duration::hours(36)));
        for (flag, var, bad) in [
            ("--history-retention", "HISTORY_RETENTION", "5m"),
            ("--history-retention", "HISTORY_RETENTION", "31d"),
            (
                "--history-minute-retention",
                "HISTORY_MINUTE_RETENTION",
                "soon",
            ),
            ("--history-hour-retention", "HISTORY_HOUR_RETENTION", "d"),
            ("--history-day-retention", "HISTORY_DAY_RETENTION", "30d"),
            (
                "--history-minute-retention",
                "HISTORY_MINUTE_RETENTION",
                "1h",
            ),
            ("--history-hour-retention", "HISTORY_HOUR_RETENTION", "7d"),
            ("--runs-keep", "RUNS_KEEP", "0"),
            ("--runs-retention", "RUNS_RETENTION", "1x"),
        ] {
            let err = Settings::resolve(&parse(&[flag, bad]).options, &env(&[])).unwrap_err();
            assert!(err.0.contains(var), "{var}={bad}: {err}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
