//! What every part of the deploy test uses: the repository, the job specs and the binary's own
//! parsers and settings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser};
use easytier_probe::config::secrets::SECRETS;
use easytier_probe::config::{Cli, Command, Env, ProbeSettings, Settings};
use easytier_probe::domain::{JobName, JobSpec};

/// Where every deploy file installs the binary.
pub(crate) const BINARY: &str = "/usr/local/bin/easytier-probe";
/// What `run-job` gives a serve that runs the job for it, beyond the job's timeout, to answer.
/// A systemd start timeout must leave at least that.
pub(crate) use easytier_probe::app::cli::SERVE_ANSWER_MARGIN;
/// How long serve may take to send `Offline` at shutdown, after the drain.
pub(crate) use easytier_probe::app::serve::OFFLINE_BOUND;

/// Secrets: never a literal value in a deploy file, only their `_FILE` forms or credentials.
pub(crate) fn secret_variables() -> Vec<&'static str> {
    SECRETS.iter().map(|s| s.variable).collect()
}

/// The systemd credentials the binary reads from `$CREDENTIALS_DIRECTORY`.
pub(crate) fn credentials() -> Vec<&'static str> {
    SECRETS.iter().map(|s| s.credential).collect()
}

/// The variables of the `docker run` example in spec/distributed-mode.md ("Docker Deployment").
pub(crate) const SPEC_DOCKER_RUN: [(&str, &str); 4] = [
    ("DISTRIBUTED_MODE_ENABLED", "true"),
    ("BACKEND_BASE_URL", "http://backend.example.com"),
    ("NODE_TOKEN", "your-secret-token"),
    ("REGION", "us-west"),
];

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files directly in `dir` whose names end with `suffix`, sorted.
pub(crate) fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && file_name(p).ends_with(suffix))
        .collect();
    out.sort();
    out
}

pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// The job specs as `jobs/*.toml` has them, parsed by the binary's own parser; one per job the
/// binary knows, each named for its file.
pub(crate) fn specs() -> BTreeMap<JobName, JobSpec> {
    let mut specs = BTreeMap::new();
    for path in files(&repo().join("jobs"), ".toml") {
        let stem = file_name(&path).trim_end_matches(".toml");
        let job = JobName::parse(stem)
            .unwrap_or_else(|| panic!("{}: the binary has no job {stem:?}", path.display()));
        let spec =
            JobSpec::parse(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            spec.name,
            stem,
            "{}: name must match the file",
            path.display()
        );
        specs.insert(job, spec);
    }
    assert_eq!(
        specs.keys().copied().collect::<Vec<_>>(),
        JobName::ALL.to_vec(),
        "jobs/ must hold one spec per job of the binary"
    );
    specs
}

/// A deploy file's command line, parsed by the binary's parser; a flag or command it does not
/// accept fails here with clap's message.
pub(crate) fn parse_cli(argv: &[String], origin: &str) -> Cli {
    assert_eq!(
        argv.first().map(String::as_str),
        Some(BINARY),
        "{origin}: runs {argv:?}"
    );
    <Cli as Parser>::try_parse_from(argv).unwrap_or_else(|e| {
        panic!(
            "{origin}: the binary does not accept `{}`:\n{e}",
            argv.join(" ")
        )
    })
}

/// The command a parsed command line runs (none means `serve`).
pub(crate) fn command(cli: &Cli) -> Command {
    cli.command
        .clone()
        .unwrap_or(Command::Serve { no_schedule: false })
}

/// Every environment variable the binary reads: the `env` of each CLI option, plus the ones read
/// outside clap (secret files, the data dir alias, logging).
pub(crate) fn known_variables() -> BTreeSet<String> {
    let mut vars: BTreeSet<String> = Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    vars.extend(SECRETS.iter().map(|s| s.file_variable()));
    for var in ["DATABASE_PATH", "RUST_LOG", "LOG_FORMAT"] {
        vars.insert(var.to_string());
    }
    vars
}

pub(crate) fn check_variable(name: &str, origin: &str, known: &BTreeSet<String>) {
    assert!(
        known.contains(name),
        "{origin}: the binary reads no variable {name} (it reads {known:?})"
    );
}

/// The environment a deployment gives the binary, for [`Settings::resolve`].
pub(crate) struct MapEnv(BTreeMap<String, String>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// The settings the binary makes of a command line and an environment, with nothing taken from
/// this test's own environment: clap sees the variables only as the flags they stand for.
pub(crate) fn resolve(
    argv: &[String],
    vars: &BTreeMap<String, String>,
) -> Result<Settings, String> {
    let mut args = vec![argv[0].clone()];
    for arg in Cli::command().get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        if let Some(value) = vars.get(env.to_str().unwrap_or_default()) {
            args.push(format!("--{long}={value}"));
        }
    }
    args.extend(argv[1..].iter().cloned());
    let matches = Cli::command()
        .mut_args(|arg| arg.env(None::<&'static str>))
        .try_get_matches_from(&args)
        .map_err(|e| e.to_string())?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    Settings::resolve(&cli.options, &MapEnv(vars.clone())).map_err(|e| e.to_string())
}

/// A directory holding every credential the binary reads, as systemd or Nomad would provide.
pub(crate) fn credentials_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in credentials() {
        // Each a value the binary accepts: notify_urls holds URLs.
        let value = match name {
            "notify_urls" => "https://alerts.example/hook\n".to_string(),
            _ => format!("{name}-value\n"),
        };
        std::fs::write(dir.path().join(name), value).expect("credential");
    }
    dir
}

/// Enough descriptors for a sweep's concurrent probes (a few each: socket, timers, QUIC
/// endpoint) beside the API's connections and the store.
pub(crate) fn needed_open_files() -> u64 {
    ProbeSettings::FILES_PER_PROBE * ProbeSettings::MAX_DERIVED_CONCURRENCY as u64
        + ProbeSettings::FILES_RESERVED
}

/// `KEY=value` lines of an environment file; with `commented`, `#KEY=value` lines too.
pub(crate) fn env_file(text: &str, commented: bool) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter_map(|line| match line.strip_prefix('#') {
            Some(rest) if commented => Some(rest.trim()),
            Some(_) => None,
            None => Some(line),
        })
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
