//! Machinery for the demo, the tests and the benchmark: real EasyTier nodes on loopback, the
//! private namespaces they run in ([`localnet`]), a recording backend ([`backend`]), a
//! recording notification receiver ([`receiver`]), a DNS server ([`dns`]) and a current
//! upstream EasyTier core run as a child process ([`upstream`]).
//!
//! Imports nothing else of the crate. It is in the library's public API only with the
//! `testkit` feature, which the tests and the benchmark turn on (a dev-dependency of the crate on
//! itself); the binary's `demo` uses it from inside the crate.

pub mod backend;
pub mod dns;
pub mod localnet;
pub mod receiver;
pub mod upstream;

pub use backend::{DemoBackend, Recorded};
pub use dns::DnsServer;
pub use localnet::{free_port, isolate_network, private_mounts, LocalNode};
pub use receiver::{Received, Receiver};
