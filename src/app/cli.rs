//! The commands: what `main` calls once the command line is parsed.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use serde_json::Value;

use crate::api::views::{JobView, RunView};
use crate::config::{
    Cli, Command, Parsed, PeerSource, ProcessEnv, Settings, NEEDS_BACKEND, NEEDS_PEER_SOURCE,
};
use crate::control::{self, ControlError};
use crate::domain::time::rfc3339_seconds;
use crate::domain::{JobName, JobRun, Outcome, Trigger};
use crate::jobs::{effective_schedule, JobContext};
use crate::runner::Runner;
use crate::store::{Store, StoreError};

/// Exit codes of `run-job` (and of the other commands where they apply).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// EX_TEMPFAIL: the store is busy; systemd/Nomad retry later.
    pub const TEMPFAIL: u8 = 75;
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(exit::USAGE)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Runs the parsed command line.
pub fn run(parsed: Parsed) -> ExitCode {
    let cli = &parsed.cli;
    let command = cli
        .command
        .clone()
        .unwrap_or(Command::Serve { no_schedule: false });
    // Every probe in flight holds a socket: take all the descriptors the system allows.
    let open_files = crate::probe::limits::raise_open_files_limit();
    tracing::debug!(open_files, "open-files limit");
    match command {
        Command::Demo => return super::demo::run(cli.options.clone()),
        Command::Completions { shell } => return completions(shell),
        Command::Manpage => return manpage(),
        Command::Healthcheck => return healthcheck(&cli.options),
        _ => {}
    }
    let settings = match Settings::resolve(&cli.options, &ProcessEnv) {
        Ok(s) => Arc::new(s),
        Err(e) => return usage(e),
    };
    if let Command::CheckConfig = command {
        print!("{}", crate::config::describe(&settings, &parsed));
        return ExitCode::SUCCESS;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match command {
        Command::Serve { no_schedule } => rt.block_on(serve(settings, no_schedule)),
        Command::RunJob {
            job,
            json,
            wait,
            busy_ok,
        } => rt.block_on(run_job(settings, job, json, wait, busy_ok)),
        Command::Jobs { json } => list_jobs(&settings, json),
        Command::Demo
        | Command::Completions { .. }
        | Command::Manpage
        | Command::Healthcheck
        | Command::CheckConfig => {
            unreachable!("handled above")
        }
    }
}

/// `completions <shell>`: the shell's completion script for every command and option.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    clap_complete::generate(
        shell,
        &mut command,
        "easytier-probe",
        &mut std::io::stdout(),
    );
    ExitCode::from(exit::OK)
}

/// `manpage`: easytier-probe(1) in roff, from the same definitions as `--help`.
fn manpage() -> ExitCode {
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: writing the man page: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// `healthcheck`: GET /health of the serve on LISTEN_ADDR (its loopback when it listens on
/// every address) within 5 s; 0 for HTTP 200 (ok, degraded), 1 for anything else.
fn healthcheck(options: &crate::config::Options) -> ExitCode {
    let mut addr = crate::config::listen_addr(options);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{addr}/health");
    let answer = runtime().map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| e.to_string())?;
            let resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let code = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            Ok::<_, String>((code, body))
        })
    });
    match answer {
        Ok((200, body)) => {
            println!(
                "healthy: {}",
                body["data"]["status"].as_str().unwrap_or("ok")
            );
            ExitCode::from(exit::OK)
        }
        Ok((code, body)) => {
            let data = &body["data"];
            println!(
                "unhealthy: HTTP {code} {} ({})",
                data["status"].as_str().unwrap_or("?"),
                data["reason"].as_str().unwrap_or("no reason given")
            );
            ExitCode::from(exit::FAILED)
        }
        Err(e) => {
            println!("unhealthy: {url} does not answer: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// How long `serve` waits for a one-shot `run-job` to release the store (a timer may have
/// started one just before serve, e.g. at boot). Longer than any job's timeout.
pub const SERVE_WAITS_FOR_ONE_SHOT: Duration = Duration::from_secs(120);

async fn serve(settings: Arc<Settings>, no_schedule: bool) -> ExitCode {
    let start = Instant::now();
    let store = loop {
        match Store::open(&settings.data_dir, "serve") {
            Ok(s) => break s,
            Err(e @ StoreError::Busy { .. }) => {
                // Another serve answers on the control socket: that one is not going away.
                let serving =
                    tokio::net::UnixStream::connect(control::socket_path(&settings.data_dir))
                        .await
                        .is_ok();
                if serving || start.elapsed() > SERVE_WAITS_FOR_ONE_SHOT {
                    eprintln!("error: {e}; stop it first or use another --data-dir");
                    return ExitCode::from(exit::FAILED);
                }
                if start.elapsed() < Duration::from_millis(300) {
                    tracing::info!("{e}; waiting for it to finish");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return usage(format!("{e} (DATA_DIR / --data-dir)")),
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            return usage(format!(
                "cannot listen on {} (LISTEN_ADDR / --listen): {e}",
                settings.listen
            ))
        }
    };
    match super::serve::run(
        settings,
        store,
        listener,
        no_schedule,
        super::serve::signal(),
    )
    .await
    {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// `run-job`'s "try later": 75, or 0 under `--busy-ok`, with a line saying so.
fn tempfail(busy_ok: bool) -> ExitCode {
    if busy_ok {
        eprintln!("exit 0 rather than 75 (--busy-ok): the next scheduled run is the retry");
        return ExitCode::from(exit::OK);
    }
    ExitCode::from(exit::TEMPFAIL)
}

/// What `run-job` gives a `serve` that runs the job for it, beyond the job's timeout, to answer.
pub const SERVE_ANSWER_MARGIN: Duration = Duration::from_secs(15);

/// How long `run-job` gives an interrupted run to record itself before it exits.
const INTERRUPT_BOUND: Duration = Duration::from_secs(4);

/// `run-job`: runs locally when the store is free, through the control channel when a
/// `serve` holds it, and waits up to `wait` when another one-shot holds it.
async fn run_job(
    settings: Arc<Settings>,
    job: JobName,
    json_out: bool,
    wait: Duration,
    busy_ok: bool,
) -> ExitCode {
    if job == JobName::StatusReport && settings.backend.is_none() {
        return usage(NEEDS_BACKEND);
    }
    if job == JobName::PeerFetch && settings.peer_source == PeerSource::None {
        return usage(format!("peer-fetch cannot run: {NEEDS_PEER_SOURCE}"));
    }
    // SIGHUP is ignored for the whole command (also while waiting or asking serve).
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP ignored");
            }
        });
    }
    let deadline = Instant::now() + wait;
    let command = format!("run-job {job}");
    let run = loop {
        let outcome = match Store::open(&settings.data_dir, &command) {
            Ok(store) => run_here(store, &settings, job).await.map(Some),
            // A serve holds the store: it runs the job; a one-shot holds it: wait for it.
            Err(StoreError::Busy { owner, .. }) => {
                let answer_within = job.spec().timeout + SERVE_ANSWER_MARGIN;
                match control::request(&settings.data_dir, job, answer_within).await {
                    Ok(run) => Ok(Some(run)),
                    Err(ControlError::NotServing(_)) if Instant::now() < deadline => Ok(None),
                    Err(ControlError::NotServing(_)) => {
                        eprintln!(
                            "error: the store in {} is in use by {owner}; gave up after waiting {}s (--wait)",
                            settings.data_dir.display(),
                            wait.as_secs()
                        );
                        Err(tempfail(busy_ok))
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        Err(ExitCode::from(exit::FAILED))
                    }
                }
            }
            Err(e) => return usage(format!("{e} (DATA_DIR / --data-dir)")),
        };
        match outcome {
            Ok(Some(run)) => break run,
            Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(code) => return code,
        }
    };
    report_run(&run, json_out, busy_ok)
}

/// Runs `job` in this process on `store`; on SIGTERM/SIGINT the run is interrupted and
/// recorded so, and the command fails.
async fn run_here(
    store: Store,
    settings: &Arc<Settings>,
    job: JobName,
) -> Result<JobRun, ExitCode> {
    let runner = Runner::new(JobContext::new(store, settings.clone()));
    let work = runner.run(job, Trigger::Cli);
    tokio::pin!(work);
    let recorded = tokio::select! {
        recorded = &mut work => recorded,
        signal = super::serve::signal() => {
            // The run records itself as interrupted and ends; bounded, so a job stuck in a
            // system call cannot keep the process from exiting.
            runner.interrupt(signal);
            match tokio::time::timeout(INTERRUPT_BOUND, &mut work).await {
                Ok(recorded) => recorded,
                Err(_) => {
                    eprintln!("error: {job} interrupted by {signal}; its run could not be recorded in time");
                    return Err(ExitCode::from(exit::FAILED));
                }
            }
        }
    };
    recorded.map_err(|e| {
        eprintln!("error: could not record the run: {e}");
        ExitCode::from(exit::FAILED)
    })
}

fn report_run(run: &JobRun, json_out: bool, busy_ok: bool) -> ExitCode {
    if run.outcome == Outcome::Skipped {
        eprintln!(
            "{} was not run: {}",
            run.job,
            run.error.as_deref().unwrap_or("skipped")
        );
        return tempfail(busy_ok);
    }
    let outcome = if run.outcome == Outcome::Ok {
        "ok"
    } else {
        "failed"
    };
    if json_out {
        match serde_json::to_string(&RunView::one_shot(run)) {
            Ok(object) => println!("{object}"),
            Err(e) => eprintln!("error: cannot write the run as JSON: {e}"),
        }
    } else {
        println!("{} {outcome} in {} ms", run.job, run.duration_ms);
        print_summary(&run.summary);
    }
    if run.outcome == Outcome::Ok {
        ExitCode::from(exit::OK)
    } else {
        eprintln!(
            "error: {} failed: {}",
            run.job,
            run.error.as_deref().unwrap_or("unknown error")
        );
        ExitCode::from(exit::FAILED)
    }
}

fn print_summary(summary: &Value) {
    let Value::Object(map) = summary else { return };
    for (k, v) in map {
        if k == "results" {
            continue;
        }
        println!("  {k}: {v}");
    }
    if let Some(Value::Array(results)) = map.get("results") {
        for r in results {
            let state = if r["up"] == Value::Bool(true) {
                format!("up   {} ms", r["rtt_ms"])
            } else {
                format!("down {}", r["error_kind"].as_str().unwrap_or("?"))
            };
            println!("  peer {}: {state}", r["id"].as_str().unwrap_or("?"));
        }
    }
}

/// `jobs`: from the store when it is free, else from the `serve` that holds it.
fn list_jobs(settings: &Settings, json: bool) -> ExitCode {
    let (last_runs, note) = last_runs(settings);
    if json {
        return list_jobs_json(settings, &last_runs, note);
    }
    println!(
        "{:<14} {:<16} {:>8}  {:<8} LAST RUN",
        "JOB", "SCHEDULE", "TIMEOUT", "OVERLAP"
    );
    for (i, job) in JobName::ALL.into_iter().enumerate() {
        let spec = job.spec();
        let last = match last_runs.get(i) {
            Some(Some(r)) => format!(
                "{} {} ({} ms, {})",
                rfc3339_seconds(r.started_at),
                r.outcome.as_str(),
                r.duration_ms,
                r.trigger.as_str()
            ),
            Some(None) => "never".into(),
            None => "?".into(),
        };
        println!(
            "{:<14} {:<16} {:>7}s  {:<8} {last}",
            job.as_str(),
            effective_schedule(job, settings).to_string(),
            spec.timeout.as_secs(),
            spec.overlap,
        );
    }
    if let Some(note) = note {
        println!("({note})");
    }
    ExitCode::from(exit::OK)
}

/// `jobs --json`: the items of `GET /api/jobs` (no next run: no scheduler runs here), and
/// `last_runs_unavailable` saying why when the last runs could not be read.
fn list_jobs_json(
    settings: &Settings,
    last_runs: &[Option<JobRun>],
    note: Option<String>,
) -> ExitCode {
    let items: Vec<JobView> = JobName::ALL
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let spec = job.spec();
            JobView {
                name: job,
                schedule: effective_schedule(job, settings).to_string(),
                timeout_s: spec.timeout.as_secs(),
                overlap: spec.overlap,
                next_run_at: None,
                last_run: last_runs.get(i).and_then(Option::as_ref).map(RunView::of),
            }
        })
        .collect();
    let out = serde_json::json!({"items": items, "last_runs_unavailable": note});
    println!("{out}");
    ExitCode::from(exit::OK)
}

/// The last run of every job (in `JobName::ALL` order), and a note when they are unavailable.
fn last_runs(settings: &Settings) -> (Vec<Option<JobRun>>, Option<String>) {
    match Store::open(&settings.data_dir, "jobs") {
        Ok(store) => match store.last_runs(JobName::ALL.map(JobName::as_str)) {
            Ok(r) => (r, None),
            Err(e) => (Vec::new(), Some(format!("last runs unavailable: {e}"))),
        },
        Err(StoreError::Busy { owner, .. }) => {
            let asked = runtime().map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(control::last_runs(&settings.data_dir))
                    .map_err(|e| e.to_string())
            });
            match asked {
                Ok(r) => (r, None),
                Err(e) => (
                    Vec::new(),
                    Some(format!(
                        "last runs unavailable: the store is in use by {owner} ({e})"
                    )),
                ),
            }
        }
        Err(e) => (Vec::new(), Some(format!("last runs unavailable: {e}"))),
    }
}
