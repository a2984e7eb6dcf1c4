//! The Nomad job files.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::common::*;
use super::docker::{image, image_uid};
use super::schedules::nomad_cron;
use easytier_probe::config::{Cli, Command};
use easytier_probe::domain::{JobName, Schedule};

pub(crate) fn nomad_dir() -> PathBuf {
    repo().join("deploy/nomad")
}

pub(crate) const NOMAD_SERVE_JOB: &str = "easytier-probe";

pub(crate) fn nomad_job_id(job: JobName) -> String {
    format!("easytier-probe-{job}")
}

/// The `job` block of a Nomad job file, with its ID.
pub(crate) fn nomad_job(path: &Path) -> (String, hcl::Body) {
    let body = hcl::parse(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let jobs: Vec<&hcl::Block> = body
        .blocks()
        .filter(|b| b.identifier.as_str() == "job")
        .collect();
    assert_eq!(jobs.len(), 1, "{}: one job per file", path.display());
    let id = jobs[0]
        .labels
        .first()
        .map(|l| l.as_str().to_string())
        .unwrap_or_else(|| panic!("{}: job without an ID", path.display()));
    (id, jobs[0].body.clone())
}

pub(crate) fn blocks<'a>(body: &'a hcl::Body, identifier: &str) -> Vec<&'a hcl::Block> {
    body.blocks()
        .filter(|b| b.identifier.as_str() == identifier)
        .collect()
}

pub(crate) fn block<'a>(body: &'a hcl::Body, identifier: &str, origin: &str) -> &'a hcl::Body {
    let found = blocks(body, identifier);
    assert_eq!(found.len(), 1, "{origin}: needs one {identifier} block");
    &found[0].body
}

pub(crate) fn attr<'a>(body: &'a hcl::Body, key: &str) -> Option<&'a hcl::Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

/// A string attribute's text; a template (`"${...}"`, heredoc) as written.
pub(crate) fn text(expr: &hcl::Expression) -> Option<String> {
    match expr {
        hcl::Expression::String(s) => Some(s.clone()),
        hcl::Expression::TemplateExpr(t) => Some(t.to_string()),
        _ => None,
    }
}

pub(crate) fn string_attr(body: &hcl::Body, key: &str, origin: &str) -> String {
    attr(body, key)
        .and_then(text)
        .unwrap_or_else(|| panic!("{origin}: {key} must be a string"))
}

pub(crate) fn string_list(body: &hcl::Body, key: &str, origin: &str) -> Vec<String> {
    match attr(body, key) {
        Some(hcl::Expression::Array(items)) => items
            .iter()
            .map(|item| {
                text(item).unwrap_or_else(|| panic!("{origin}: {key} must hold plain strings"))
            })
            .collect(),
        None => Vec::new(),
        Some(other) => panic!("{origin}: {key} must be a list of strings, got {other:?}"),
    }
}

/// One Nomad job's single task, with where it comes from.
pub(crate) struct NomadTask {
    origin: String,
    job: hcl::Body,
    group: hcl::Body,
    task: hcl::Body,
}

impl NomadTask {
    fn load(id: &str) -> NomadTask {
        let path = nomad_dir().join(format!("{id}.nomad.hcl"));
        let (found, job) = nomad_job(&path);
        let origin = format!("deploy/nomad/{id}.nomad.hcl");
        assert_eq!(found, id, "{origin}: job ID must match the file name");
        let group = block(&job, "group", &origin).clone();
        let task = block(&group, "task", &origin).clone();
        NomadTask {
            origin,
            job,
            group,
            task,
        }
    }

    /// The task's command line: the image's ENTRYPOINT (or `entrypoint`), then `command` and
    /// `args`, or the image's CMD when neither is given (the docker driver's rules).
    fn argv(&self) -> Vec<String> {
        assert_eq!(string_attr(&self.task, "driver", &self.origin), "docker");
        let config = block(&self.task, "config", &self.origin);
        let (image_entrypoint, image_cmd, _) = image();
        let mut argv = match string_list(config, "entrypoint", &self.origin) {
            e if e.is_empty() => image_entrypoint,
            e => e,
        };
        let command = attr(config, "command").and_then(text);
        let args = string_list(config, "args", &self.origin);
        if command.is_none() && args.is_empty() {
            argv.extend(image_cmd);
        } else {
            argv.extend(command);
            argv.extend(args);
        }
        argv
    }

    fn cli(&self) -> Cli {
        parse_cli(&self.argv(), &self.origin)
    }

    fn env(&self) -> Vec<(String, hcl::Expression)> {
        block(&self.task, "env", &self.origin)
            .attributes()
            .map(|a| (a.key.as_str().to_string(), a.expr.clone()))
            .collect()
    }

    fn templates(&self) -> Vec<&hcl::Body> {
        blocks(&self.task, "template")
            .into_iter()
            .map(|b| &b.body)
            .collect()
    }
}

pub(crate) fn nomad_tasks() -> Vec<NomadTask> {
    std::iter::once(NOMAD_SERVE_JOB.to_string())
        .chain(JobName::ALL.iter().map(|j| nomad_job_id(*j)))
        .map(|id| NomadTask::load(&id))
        .collect()
}

#[test]
fn every_nomad_file_parses_and_each_job_has_one() {
    let mut ids = BTreeSet::new();
    for path in files(&nomad_dir(), ".hcl") {
        let body = hcl::parse(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if file_name(&path).ends_with(".nomad.hcl") {
            ids.insert(nomad_job(&path).0);
        } else {
            assert!(
                blocks(&body, "job").is_empty(),
                "{}: a job file must end in .nomad.hcl",
                path.display()
            );
        }
    }
    let expected: BTreeSet<String> = std::iter::once(NOMAD_SERVE_JOB.to_string())
        .chain(specs().keys().map(|j| nomad_job_id(*j)))
        .collect();
    assert_eq!(
        ids, expected,
        "deploy/nomad must have exactly one job per job in jobs/, and serve"
    );
}

#[test]
fn nomad_serve_job_runs_serve_with_a_health_check() {
    let serve = NomadTask::load(NOMAD_SERVE_JOB);
    let origin = &serve.origin;
    assert!(matches!(
        command(&serve.cli()),
        Command::Serve { no_schedule: true }
    ));
    assert_eq!(string_attr(&serve.job, "type", origin), "system");
    let service = block(&serve.group, "service", origin);
    let check = block(service, "check", origin);
    assert_eq!(string_attr(check, "type", origin), "http");
    assert_eq!(string_attr(check, "path", origin), "/health");
    // Restarted by Nomad when /health keeps failing; rolled out one node at a time.
    let check_restart = block(check, "check_restart", origin);
    assert!(int_attr(check_restart, "limit", origin) >= 1, "{origin}");
    let update = block(&serve.job, "update", origin);
    assert_eq!(int_attr(update, "max_parallel", origin), 1, "{origin}");
    let kill = parse_go_duration(&string_attr(&serve.task, "kill_timeout", origin));
    assert!(
        kill > easytier_probe::app::serve::DRAIN_BOUND + OFFLINE_BOUND,
        "{origin}: kill_timeout cuts the graceful shutdown short"
    );
    let listen: SocketAddr = env_text(&serve, "LISTEN_ADDR")
        .parse()
        .expect("LISTEN_ADDR is an address");
    assert!(
        listen.ip().is_unspecified(),
        "{origin}: LISTEN_ADDR must be reachable from outside"
    );
    let network = block(&serve.group, "network", origin);
    let port = block(network, "port", origin);
    assert_eq!(
        attr(port, "to"),
        Some(&hcl::Expression::from(listen.port() as u64)),
        "{origin}: the port maps to LISTEN_ADDR's"
    );
}

/// Peak RSS of `run-job <job>` handing its job to a `serve` (`/usr/bin/time -v`, each job).
const RUN_JOB_RSS_MB: u64 = 19;
/// Peak memory of a 1000-peer sweep (docs/deploy.md).
const SWEEP_1000_PEERS_MB: u64 = 64;

fn int_attr(body: &hcl::Body, key: &str, origin: &str) -> u64 {
    match attr(body, key) {
        Some(hcl::Expression::Number(n)) => n.as_u64(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{origin}: {key} must be a whole number"))
}

#[test]
fn nomad_image_is_a_variable_with_no_latest_default() {
    for path in files(&nomad_dir(), ".nomad.hcl") {
        let origin = path.display().to_string();
        let body = hcl::parse(&read(&path)).unwrap_or_else(|e| panic!("{origin}: {e}"));
        let image = blocks(&body, "variable")
            .into_iter()
            .find(|b| b.labels.first().map(|l| l.as_str()) == Some("image"))
            .unwrap_or_else(|| panic!("{origin}: needs variable \"image\""));
        assert!(
            attr(&image.body, "default").is_none(),
            "{origin}: the image has no default; each deploy names its release"
        );
        let validation = block(&image.body, "validation", &origin);
        let condition = attr(validation, "condition")
            .map(|c| c.to_string())
            .unwrap_or_default();
        assert!(condition.contains(":latest"), "{origin}: {condition}");
        let config = |job: &hcl::Body| {
            let group = block(job, "group", &origin).clone();
            let task = block(&group, "task", &origin).clone();
            block(&task, "config", &origin).clone()
        };
        let image_expr = attr(&config(&nomad_job(&path).1), "image")
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(image_expr, "var.image", "{origin}: config.image");
    }
}

pub(crate) fn parse_go_duration(value: &str) -> Duration {
    easytier_probe::domain::duration::parse_duration(value).expect("a duration like 30s")
}

pub(crate) fn env_text(task: &NomadTask, key: &str) -> String {
    task.env()
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| text(&v))
        .unwrap_or_else(|| panic!("{}: env needs {key}", task.origin))
}

#[test]
fn nomad_periodic_jobs_match_jobs() {
    for (job, spec) in specs() {
        let task = NomadTask::load(&nomad_job_id(job));
        let origin = &task.origin;
        let Command::RunJob {
            job: runs, busy_ok, ..
        } = command(&task.cli())
        else {
            panic!("{origin}: args must be `run-job {job}`");
        };
        assert_eq!(runs, job, "{origin}: runs the wrong job");
        // Nomad has no per-exit-code success: "try later" must not be a failed allocation.
        assert!(
            busy_ok,
            "{origin}: run-job needs --busy-ok (exit 0, not 75)"
        );
        let config = block(&task.task, "config", origin);
        assert_eq!(
            attr(config, "init"),
            Some(&hcl::Expression::Bool(true)),
            "{origin}: a one-shot task runs under an init (docker init = true)"
        );
        // Sized for a run-job that hands the job to serve (measured 19 MB peak RSS), with room
        // above for one that runs the job itself.
        let resources = block(&task.task, "resources", origin);
        let memory = int_attr(resources, "memory", origin);
        assert!(
            (2 * RUN_JOB_RSS_MB..=4 * RUN_JOB_RSS_MB).contains(&memory),
            "{origin}: memory = {memory} MB for a run-job of {RUN_JOB_RSS_MB} MB"
        );
        assert!(
            int_attr(resources, "memory_max", origin) >= 4 * SWEEP_1000_PEERS_MB,
            "{origin}: memory_max leaves no room for a run-job that sweeps itself"
        );
        assert_eq!(
            string_attr(&task.job, "type", origin),
            "sysbatch",
            "{origin}: run on every probe node"
        );
        let periodic = block(&task.job, "periodic", origin);
        let cron = nomad_cron(&spec.schedule).unwrap_or_else(|e| panic!("jobs/{job}.toml: {e}"));
        assert_eq!(
            string_list(periodic, "crons", origin),
            vec![cron],
            "{origin}: crons must be the schedule of jobs/{job}.toml"
        );
        assert_eq!(
            attr(periodic, "prohibit_overlap"),
            Some(&hcl::Expression::Bool(true)),
            "{origin}: overlap = \"forbid\" in jobs/{job}.toml"
        );
        assert_eq!(string_attr(periodic, "time_zone", origin), "UTC");
    }
}

/// The three periodic job files are one template (HCL has no includes), filled in per job:
/// `deploy/nomad/periodic.nomad.hcl.in`. `DEPLOY_WRITE=1` writes them from it.
#[test]
fn nomad_periodic_files_are_the_template_filled_in() {
    let template = read(&nomad_dir().join("periodic.nomad.hcl.in"));
    let write = std::env::var_os("DEPLOY_WRITE").is_some();
    for (job, spec) in specs() {
        let schedule = match &spec.schedule {
            Schedule::Every(d) => format!("every = \"{}s\"", d.as_secs()),
            Schedule::Cron(c) => format!("cron = \"{c}\""),
        };
        let cron = nomad_cron(&spec.schedule).unwrap_or_else(|e| panic!("jobs/{job}.toml: {e}"));
        let filled = template
            .replace("@JOB@", job.as_str())
            .replace("@SCHEDULE@", &schedule)
            .replace("@CRON@", &cron);
        assert!(
            !filled.contains('@'),
            "periodic.nomad.hcl.in: a placeholder is left"
        );
        let path = nomad_dir().join(format!("{}.nomad.hcl", nomad_job_id(job)));
        if write {
            std::fs::write(&path, &filled).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        assert!(
            read(&path) == filled,
            "{} is not periodic.nomad.hcl.in filled in for {job}: change the template, then \
             run `DEPLOY_WRITE=1 cargo test --test deploy`",
            path.display()
        );
    }
}

#[test]
fn nomad_jobs_share_the_data_dir_settings_and_secrets() {
    let tasks = nomad_tasks();
    let known = known_variables();
    let (_, _, runtime) = image();
    let uid = image_uid(&runtime) as u64;
    let reference_env = tasks[0].env();
    for task in &tasks {
        let origin = &task.origin;

        // One node, one volume, one store: run-job reaches serve over the control socket.
        let volume = block(&task.group, "volume", origin);
        assert_eq!(string_attr(volume, "type", origin), "host");
        assert_eq!(string_attr(volume, "source", origin), "easytier-probe");
        let mount = block(&task.task, "volume_mount", origin);
        assert_eq!(
            string_attr(mount, "destination", origin),
            env_text(task, "DATA_DIR"),
            "{origin}: the store must be in the volume"
        );
        let constraint = block(&task.job, "constraint", origin);
        assert_eq!(
            string_attr(constraint, "attribute", origin),
            "${meta.easytier_probe_region}"
        );
        assert_eq!(env_text(task, "REGION"), "${meta.easytier_probe_region}");

        // The same settings everywhere; no secret among them.
        assert_eq!(
            task.env(),
            reference_env,
            "{origin}: env must match {}",
            tasks[0].origin
        );
        for (name, _) in task.env() {
            check_variable(&name, origin, &known);
            assert!(
                !secret_variables().contains(&name.as_str()),
                "{origin}: {name} in the job file; secrets come from Nomad variables"
            );
        }

        // Secrets: files from the Nomad variable, owned by the image's user, passed by path.
        let mut files = BTreeSet::new();
        let mut file_vars = BTreeSet::new();
        for template in task.templates() {
            let data = string_attr(template, "data", origin);
            let destination = string_attr(template, "destination", origin);
            assert!(
                data.contains("nomadVar"),
                "{origin}: {destination} from a Nomad variable"
            );
            if attr(template, "env") == Some(&hcl::Expression::Bool(true)) {
                for (name, _) in env_file(&data, false) {
                    check_variable(&name, origin, &known);
                    file_vars.insert(name);
                }
            } else {
                assert!(
                    destination.starts_with("secrets/"),
                    "{origin}: {destination}"
                );
                assert_eq!(string_attr(template, "perms", origin), "0400", "{origin}");
                for key in ["uid", "gid"] {
                    assert_eq!(
                        attr(template, key),
                        Some(&hcl::Expression::from(uid)),
                        "{origin}: {destination} must belong to the image's user"
                    );
                }
                files.insert(destination.trim_start_matches("secrets/").to_string());
            }
        }
        let serves = task
            .origin
            .ends_with(&format!("/{NOMAD_SERVE_JOB}.nomad.hcl"));
        let expected: BTreeSet<String> = credentials()
            .iter()
            .filter(|c| serves || **c != "admin_token")
            .map(|c| c.to_string())
            .collect();
        assert_eq!(files, expected, "{origin}: secret files");
        for file in &files {
            let var = format!("{}_FILE", file.to_ascii_uppercase());
            assert!(
                file_vars.contains(&var),
                "{origin}: {var} must point at secrets/{file}"
            );
        }

        // Open files for the sweep's concurrent probes.
        let config = block(&task.task, "config", origin);
        let ulimit = block(config, "ulimit", origin);
        let nofile = string_attr(ulimit, "nofile", origin);
        let soft: u64 = nofile
            .split(':')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("nofile = \"soft:hard\"");
        assert!(
            soft >= needed_open_files(),
            "{origin}: nofile {nofile} is too low"
        );
    }
}
