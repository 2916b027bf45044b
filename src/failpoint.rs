//! Test-only crash points. With `MESOS_RECONCILER_FAILPOINT=<name>` in the environment, the process
//! aborts (as `kill -9` would stop it: no destructor, no flush) the first time it reaches the named
//! point. The crash tests use them to stop the controller at the worst moments:
//! - `after-write-ahead`: launches are flushed to the ledger, the ACCEPT is not sent;
//! - `after-accept`: the ACCEPT is sent, nothing of its outcome is known;
//! - `after-persist-before-ack`: a status update is flushed, its acknowledgement is not sent.
//!
//! Without the variable, a failpoint costs one cached lookup.
//!
//! A second switch makes the state directory unwritable for as long as a file exists: with
//! `MESOS_RECONCILER_FAILPOINT_UNWRITABLE=<path>`, every write and flush of the store fails while
//! `<path>` exists (what a full or read-only disk does to sled), and succeeds again once it is
//! removed.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment variable naming the failpoint to trigger.
pub const ENV: &str = "MESOS_RECONCILER_FAILPOINT";

/// The environment variable naming the file whose existence makes the store unwritable.
pub const UNWRITABLE_ENV: &str = "MESOS_RECONCILER_FAILPOINT_UNWRITABLE";

/// `Err` with the reason while the unwritable switch is on.
pub fn check_writable() -> Result<(), String> {
    static SWITCH: OnceLock<Option<PathBuf>> = OnceLock::new();
    let switch = SWITCH.get_or_init(|| {
        std::env::var_os(UNWRITABLE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    match switch {
        Some(path) if path.exists() => Err(format!(
            "failpoint: the state directory is unwritable while {} exists",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// Aborts the process if `name` is the configured failpoint.
pub fn hit(name: &str) {
    static CONFIGURED: OnceLock<Option<String>> = OnceLock::new();
    let configured = CONFIGURED.get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()));
    if configured.as_deref() == Some(name) {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}
