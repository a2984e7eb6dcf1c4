//! One process at a time holds a data dir: an exclusive `flock` on `<data-dir>/lock`, with the
//! holder described in `<data-dir>/owner` for a clear "in use by" message.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::time::rfc3339_seconds;

/// Takes `<dir>/lock` (creating `dir`, private to its owner, if needed) and describes this
/// process in `<dir>/owner`; [`StoreError::Busy`], naming the holder, when another has it.
/// The lock lasts as long as the file returned.
pub(super) fn acquire(dir: &Path, command: &str) -> Result<File, StoreError> {
    let open_err = |source| StoreError::Open {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(open_err)?;
        // The store holds network secrets: keep it to its owner.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(open_err)?;
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join("lock"))
        .map_err(open_err)?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StoreError::Busy {
                path: dir.to_path_buf(),
                owner: describe_owner(dir),
            });
        }
        return Err(open_err(err));
    }
    let owner = Owner {
        pid: std::process::id(),
        command: command.to_string(),
        since: Utc::now(),
    };
    // Best effort: the owner file only improves the "in use" message.
    if let Ok(mut f) = File::create(dir.join("owner")) {
        let _ = f.write_all(serde_json::to_string(&owner).unwrap_or_default().as_bytes());
    }
    Ok(lock)
}

/// Who holds the store, written to `<data-dir>/owner` for a clear "in use by" message.
#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    pid: u32,
    command: String,
    since: DateTime<Utc>,
}

fn describe_owner(dir: &Path) -> String {
    match std::fs::read(dir.join("owner"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Owner>(&b).ok())
    {
        Some(o) => format!(
            "another easytier-probe process (pid {}, `{}`, since {})",
            o.pid,
            o.command,
            rfc3339_seconds(o.since)
        ),
        None => "another easytier-probe process".into(),
    }
}
