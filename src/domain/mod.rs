//! The domain: what a probe is about, with no I/O and nothing else of the crate. Every other
//! floor builds on it.
//!
//! - [`peer`]: a peer and the parser of peer entries from outside;
//! - [`verdict`]: the result of one probe, the summary of a sweep;
//! - [`history`]: levels, buckets, retention and the API's windows;
//! - [`job`]: job names, specs and schedules, runs, and whether the probe is probing;
//! - [`alert`]: alert state from consecutive checks, isolation, silences;
//! - [`notice`]: what an alert change sends;
//! - [`clock`]: the one injectable clock;
//! - [`secret`], [`time`], [`duration`]: a value never printed, how times are written, the one
//!   duration grammar.

pub mod alert;
pub mod clock;
pub mod duration;
pub mod history;
pub mod job;
pub mod notice;
pub mod peer;
pub mod secret;
pub mod time;
pub mod verdict;

pub use alert::{AlertBook, AlertName, Change, Silence, Status, Thresholds};
pub use clock::{Clock, ManualClock, SharedClock};
pub use history::{Bucket, Level, Retention, Window, WINDOWS};
pub use job::{
    overrun, Durations, Freshness, JobName, JobRun, JobSpec, Outcome, Schedule, Trigger,
    DURATION_BOUNDS_S, OVERRUN_SWEEPS,
};
pub use notice::{Message, Notice, ProbeIdentity};
pub use peer::{ListSource, ParsedList, Peer, PeerEntryError, PeerList, TIMEOUT_RANGE};
pub use secret::Secret;
pub use verdict::{Candidate, ErrorKind, NodeInfo, NodeKey, ProbeResult, SweepSummary};
