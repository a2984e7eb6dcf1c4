//! The Dockerfile.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::common::*;
use easytier_probe::config::Command;

pub(crate) struct Stage {
    from: String,
    /// (INSTRUCTION, arguments), continuation lines joined.
    instructions: Vec<(String, String)>,
}

pub(crate) fn dockerfile() -> Vec<Stage> {
    let text = read(&repo().join("Dockerfile"));
    let mut stages: Vec<Stage> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let (word, args) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((&logical, ""));
        let (word, args) = (word.to_ascii_uppercase(), args.trim().to_string());
        if word == "FROM" {
            stages.push(Stage {
                from: args,
                instructions: Vec::new(),
            });
        } else if word == "ARG" && stages.is_empty() {
            // A build argument for the FROM lines; nothing this test checks.
        } else {
            stages
                .last_mut()
                .expect("Dockerfile: an instruction before FROM")
                .instructions
                .push((word, args));
        }
        logical.clear();
    }
    stages
}

impl Stage {
    fn all(&self, instruction: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    fn last(&self, instruction: &str) -> &str {
        self.all(instruction)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("Dockerfile: the runtime stage needs {instruction}"))
    }

    /// An exec-form (JSON array) argument list.
    fn exec_form(&self, instruction: &str) -> Vec<String> {
        let args = self.last(instruction);
        serde_json::from_str(args).unwrap_or_else(|e| {
            panic!("Dockerfile: {instruction} must be a JSON array (exec form): {e}: {args}")
        })
    }

    fn env(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for args in self.all("ENV") {
            assert!(
                !args.contains(['"', '\'']),
                "Dockerfile: ENV values are plain words here: {args}"
            );
            for pair in args.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("Dockerfile: ENV {pair} must be KEY=value"));
                vars.insert(k.to_string(), v.to_string());
            }
        }
        vars
    }
}

/// The image's ENTRYPOINT and CMD, and its runtime stage.
pub(crate) fn image() -> (Vec<String>, Vec<String>, Stage) {
    let runtime = dockerfile().pop().expect("Dockerfile: no FROM");
    let entrypoint = runtime.exec_form("ENTRYPOINT");
    let cmd = runtime.exec_form("CMD");
    (entrypoint, cmd, runtime)
}

/// The uid the image runs as.
pub(crate) fn image_uid(runtime: &Stage) -> u32 {
    let user = runtime.last("USER");
    let uid = user.split(':').next().unwrap_or(user);
    uid.parse()
        .unwrap_or_else(|_| panic!("Dockerfile: USER {user} must be numeric (uid:gid)"))
}

#[test]
fn dockerfile_runs_serve_as_non_root_with_a_health_check() {
    let stages = dockerfile();
    assert!(
        stages.len() >= 2,
        "Dockerfile: multi-stage (build, runtime)"
    );
    // The binary links against glibc: build on the Debian release the runtime image runs.
    let runtime_base = &stages[stages.len() - 1].from;
    let debian = runtime_base
        .strip_prefix("gcr.io/distroless/cc-debian")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| {
            panic!(
                "Dockerfile: runtime FROM {runtime_base}: expected gcr.io/distroless/cc-debian<N>"
            )
        });
    let codename = match debian {
        "12" => "bookworm",
        "13" => "trixie",
        other => panic!("Dockerfile: Debian {other}: add its code name here"),
    };
    assert!(
        stages[0].from.contains(codename),
        "Dockerfile: build stage FROM {} is not Debian {debian} ({codename})",
        stages[0].from
    );
    let (entrypoint, cmd, runtime) = image();
    let argv: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    assert!(matches!(
        command(&parse_cli(&argv, "Dockerfile ENTRYPOINT + CMD")),
        Command::Serve { no_schedule: false }
    ));
    assert!(
        runtime.all("COPY").iter().any(|c| c.ends_with(BINARY)),
        "Dockerfile: the runtime stage must copy the binary to {BINARY}"
    );
    assert_ne!(
        image_uid(&runtime),
        0,
        "Dockerfile: the image must not run as root"
    );

    // No shell in the image: the health check is the binary's own command, in exec form.
    assert!(
        runtime.all("RUN").is_empty(),
        "Dockerfile: the runtime image has no shell to RUN in"
    );
    let healthcheck = runtime.last("HEALTHCHECK");
    let (_, probe) = healthcheck
        .split_once("CMD ")
        .unwrap_or_else(|| panic!("Dockerfile: HEALTHCHECK ... CMD [...]: {healthcheck}"));
    let probe: Vec<String> = serde_json::from_str(probe.trim()).unwrap_or_else(|e| {
        panic!("Dockerfile: HEALTHCHECK CMD must be a JSON array (exec form): {e}: {probe}")
    });
    assert_eq!(
        probe.first().map(String::as_str),
        Some(BINARY),
        "Dockerfile: HEALTHCHECK runs the binary"
    );
    assert!(
        matches!(
            command(&parse_cli(&probe, "Dockerfile HEALTHCHECK")),
            Command::Healthcheck
        ),
        "Dockerfile: HEALTHCHECK must run `easytier-probe healthcheck`: {probe:?}"
    );

    let known = known_variables();
    let env = runtime.env();
    for name in env.keys() {
        check_variable(name, "Dockerfile ENV", &known);
        assert!(
            !secret_variables().contains(&name.as_str()),
            "Dockerfile: ENV {name} bakes a secret into the image"
        );
    }
    let volumes: Vec<String> = serde_json::from_str(runtime.last("VOLUME"))
        .expect("Dockerfile: VOLUME must be a JSON array");
    assert_eq!(
        env.get("DATA_DIR"),
        volumes.first(),
        "Dockerfile: the store (DATA_DIR) must be the volume"
    );
}

#[test]
fn dockerfile_builds_from_the_tree_without_secrets() {
    let stages = dockerfile();
    let build = &stages[0];
    assert!(
        build.all("COPY").iter().any(|c| c.trim() == ". ."),
        "Dockerfile: the build stage copies the tree (COPY . .); cargo needs every target of \
         Cargo.toml, and the vendored protoc comes through .cargo/config.toml and tools/"
    );
    let ignored: Vec<String> = read(&repo().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_string())
        .collect();
    let excluded = |path: &str| {
        ignored.iter().any(|pattern| {
            path.split('/')
                .any(|component| match pattern.split_once('*') {
                    Some((prefix, suffix)) => {
                        component.starts_with(prefix) && component.ends_with(suffix)
                    }
                    None => component == pattern,
                })
        })
    };
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        ".cargo/config.toml",
        "tools/protoc",
        "jobs/peer-fetch.toml",
        "src/main.rs",
        "benches/sweep.rs",
    ] {
        assert!(
            repo().join(needed).exists(),
            "{needed} is gone: update this list"
        );
        assert!(
            !excluded(needed),
            ".dockerignore excludes {needed}, which the build needs"
        );
    }
    for local in [".env", "target", ".git", "easytier-probe-data"] {
        assert!(excluded(local), ".dockerignore must exclude {local}");
    }
}

#[test]
fn container_works_with_the_spec_docker_run_example() {
    let (entrypoint, cmd, runtime) = image();
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    let mut env = runtime.env();
    env.extend(SPEC_DOCKER_RUN.map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = resolve(&argv, &env).unwrap_or_else(|e| panic!("docker run example: {e}"));
    assert!(
        settings.listen.ip().is_unspecified(),
        "in a container the API must listen on all addresses, not {}",
        settings.listen
    );
    let expose: Vec<&str> = runtime.all("EXPOSE");
    assert!(
        expose.contains(&settings.listen.port().to_string().as_str()),
        "Dockerfile: EXPOSE {}",
        settings.listen.port()
    );
    let volumes: Vec<String> = serde_json::from_str(runtime.last("VOLUME")).expect("VOLUME");
    assert_eq!(
        Some(&settings.data_dir),
        volumes.first().map(PathBuf::from).as_ref()
    );
    assert!(settings.backend.is_some());
    assert_eq!(settings.region.as_deref(), Some("us-west"));
}

#[test]
fn dockerfile_builds_the_dist_profile_and_labels_the_image() {
    let stages = dockerfile();
    let build = stages[0].all("RUN").join(" ");
    assert!(
        build.contains("--profile dist") && build.contains("target/dist/easytier-probe"),
        "Dockerfile: the image is built with the dist profile: {build}"
    );
    let manifest: toml::Value = read(&repo().join("Cargo.toml"))
        .parse()
        .expect("Cargo.toml");
    let dist = &manifest["profile"]["dist"];
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(
        dist["strip"].as_bool(),
        Some(true),
        "the dist binary is stripped"
    );
    assert_eq!(dist["codegen-units"].as_integer(), Some(1));
    assert!(
        matches!(dist["lto"].as_str(), Some("fat")),
        "the dist profile has fat LTO"
    );
    // `cargo run --release -- demo` (the README's first command) stays a quick build.
    let release = &manifest["profile"]["release"];
    assert!(release.get("lto").is_none() && release.get("codegen-units").is_none());

    let (_, _, runtime) = image();
    let labels = runtime.all("LABEL").join(" ");
    for key in ["title", "description", "version", "revision", "licenses"] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "Dockerfile: LABEL org.opencontainers.image.{key}"
        );
    }
    let licenses = manifest["package"]["license"].as_str().unwrap();
    assert!(
        labels.contains(&format!("org.opencontainers.image.licenses=\"{licenses}\"")),
        "Dockerfile: the licenses label is Cargo.toml's: {licenses}"
    );
}

/// The image has one name wherever the repository names it.
#[test]
fn the_image_has_one_name_everywhere() {
    let mut paths = vec![repo().join("README.md"), repo().join("Dockerfile")];
    paths.extend(files(&repo().join("docs"), ".md"));
    paths.extend(files(&repo().join("deploy/ci"), ".sh"));
    paths.extend(files(&repo().join("deploy/nomad"), ".hcl"));
    for path in paths {
        let text = read(&path);
        for (i, line) in text.lines().enumerate() {
            for word in ["docker build -t ", "image=", "docker run "] {
                let Some((_, rest)) = line.split_once(word) else {
                    continue;
                };
                let name = rest.split_whitespace().next().unwrap_or("");
                let name = name.rsplit('/').next().unwrap_or(name);
                // Flags, shell variables and placeholders ("...") name no image.
                if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                    continue;
                }
                assert!(
                    name.starts_with("easytier-probe"),
                    "{}:{}: the image is easytier-probe, not {name}",
                    path.display(),
                    i + 1
                );
            }
        }
    }
}
