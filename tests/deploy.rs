//! The deploy files agree with `jobs/` and with the binary.
//!
//! Every systemd unit in `deploy/systemd`, every Nomad file in `deploy/nomad` and the
//! `Dockerfile` are read here and checked against the job specs in `jobs/*.toml` (which jobs,
//! their schedules, timeouts and overlap policy) and against the binary itself: each command line
//! goes through the binary's own CLI parser, each environment variable must be one it reads, and
//! the settings a deployment hands it are resolved by its own code. Where systemd or Nomad cannot
//! say a schedule in the specs' terms, `deploy/schedules.rs` states the mapping once.
//!
//! `systemd-analyze verify` on the units is the other half (deploy/ci/verify-systemd.sh).

#[path = "deploy/common.rs"]
mod common;
#[path = "deploy/docker.rs"]
mod docker;
#[path = "deploy/nomad.rs"]
mod nomad;
#[path = "deploy/prometheus.rs"]
mod prometheus;
#[path = "deploy/schedules.rs"]
mod schedules;
#[path = "deploy/systemd.rs"]
mod systemd;
