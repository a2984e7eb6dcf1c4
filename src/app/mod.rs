//! The application: the commands ([`cli`]), `serve` ([`serve`]), `demo` ([`demo`]) and logging.
//! It may use every other floor.

pub mod cli;
mod demo;
pub mod logging;
pub mod serve;
