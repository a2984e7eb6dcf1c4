//! The application: the commands ([`cli`]), `serve` ([`serve`]), `demo` ([`demo`]), logging and
//! systemd's readiness and watchdog protocol ([`notify`]).
//! It may use every other floor.

pub mod cli;
mod demo;
pub mod logging;
pub mod notify;
pub mod serve;
