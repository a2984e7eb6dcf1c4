//! easytier-probe: a probe node for EasyTier networks.
//!
//! The crate is built in floors; each imports only the floors below it (ARCHITECTURE.md, checked
//! by `tests/layers.rs`):
//!
//! 1. [`domain`]: what a probe is about; imports nothing of the crate;
//! 2. [`config`]: the command line and environment, resolved into settings;
//! 3. the adapters, which never import one another: [`store`] (the only sled user), [`backend`]
//!    (the only code that knows the backend's JSON), [`probe`] (the only easytier user),
//!    [`notifier`] (the only code that knows the notification services' formats);
//! 4. [`jobs`]: one module per job, on an injected clock;
//! 5. [`runner`], then [`scheduler`];
//! 6. [`api`] and [`control`];
//! 7. [`app`]: the commands.
//!
//! [`testkit`] (in-process EasyTier nodes and a recording backend, for the demo, the tests and
//! the benchmark) imports nothing of the crate; it is public only with the `testkit` feature.

pub mod api;
pub mod app;
pub mod backend;
pub mod config;
pub mod control;
pub mod domain;
pub mod jobs;
pub mod notifier;
pub mod probe;
pub mod runner;
pub mod scheduler;
pub mod store;

#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(not(feature = "testkit"))]
#[allow(dead_code, unused_imports)]
mod testkit;
