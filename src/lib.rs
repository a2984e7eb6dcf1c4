//! easytier-probe: a probe node for EasyTier networks.
//!
//! See ARCHITECTURE.md for the code map and the invariants that hold across modules.

pub mod api;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod demo;
pub mod history;
pub mod jobs;
pub mod localnet;
pub mod logging;
pub mod model;
pub mod peers_file;
pub mod probe;
pub mod runner;
pub mod scheduler;
pub mod serve;
pub mod store;
