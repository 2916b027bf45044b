//! What the state directory holds besides the sled database (`db/`, see `store`): a note naming
//! the process that holds the directory (`holder`), and the status server's address
//! (`status-addr`, written by the controller).
//!
//! sled locks its database file (an exclusive `flock`) for as long as a process has it open, so
//! a second controller pointed at the same directory cannot open it. sled's own error says only
//! "could not acquire lock"; the holder note, and the kernel's list of locks (`/proc/locks`), let
//! the second controller say which process holds it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The note naming the holder, written once the database is open.
pub const HOLDER_FILE: &str = "holder";

/// Who holds the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// When it opened the directory, ms since the epoch.
    pub since_ms: u64,
}

/// Records this process as the holder of `dir`. Best effort: the note only improves a message.
pub fn write_holder(dir: &Path) {
    let holder = Holder {
        pid: std::process::id(),
        host: local_hostname().unwrap_or_else(|| "unknown".to_owned()),
        since_ms: now_ms(),
    };
    let write = serde_json::to_vec(&holder)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(dir.join(HOLDER_FILE), bytes));
    if let Err(e) = write {
        tracing::debug!(error = %e, "cannot write the state directory's holder note");
    }
}

/// Who holds `dir`, in words, for the message of a controller that could not lock `lock_file`
/// (the database file sled locks): the pid the kernel names as the lock's owner, and from the
/// holder note its host and since when, plus its status server if it wrote one.
pub fn describe_holder(dir: &Path, lock_file: &Path) -> String {
    let note: Option<Holder> = std::fs::read(dir.join(HOLDER_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let locker = lock_owner(lock_file);
    let status = std::fs::read_to_string(dir.join(crate::controller::STATUS_ADDR_FILE))
        .ok()
        .map(|addr| addr.trim().to_owned())
        .filter(|addr| !addr.is_empty());
    let mut words = match (locker, &note) {
        (Some(pid), Some(note)) if note.pid == pid => format!(
            "pid {pid} on host {}, holding it since {}",
            note.host,
            crate::timefmt::utc(note.since_ms)
        ),
        (Some(pid), _) => format!(
            "pid {pid} on host {}",
            local_hostname().unwrap_or_else(|| "this host".to_owned())
        ),
        (None, Some(note)) => format!(
            "by its note pid {} on host {}, holding it since {}",
            note.pid,
            note.host,
            crate::timefmt::utc(note.since_ms)
        ),
        (None, None) => "a process this host cannot name".to_owned(),
    };
    if let Some(addr) = status {
        words.push_str(&format!("; its status server: http://{addr}"));
    }
    words
}

/// This machine's hostname, as the kernel has it.
pub fn local_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The pid holding a `flock` on `file`, from `/proc/locks` (Linux). Lines look like
/// `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF`; the file is matched by inode.
fn lock_owner(file: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let inode = std::fs::metadata(file).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    owner_in(&locks, inode)
}

fn owner_in(locks: &str, inode: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A blocked waiter's line has `->` after the number; it does not hold the lock.
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let position = fields.iter().position(|f| f.matches(':').count() == 2)?;
        let line_inode: u64 = fields[position].rsplit(':').next()?.parse().ok()?;
        if line_inode != inode {
            return None;
        }
        fields.get(position.checked_sub(1)?)?.parse().ok()
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_of_a_lock_is_found_by_inode() {
        let locks = "\
1: POSIX  ADVISORY  WRITE 100 08:01:777 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 00:2f:1234567 0 EOF
2: -> FLOCK  ADVISORY  WRITE 5151 00:2f:1234567 0 EOF
3: FLOCK  ADVISORY  WRITE 99 00:2f:42 0 EOF
";
        assert_eq!(owner_in(locks, 1_234_567), Some(4242));
        assert_eq!(owner_in(locks, 42), Some(99));
        assert_eq!(owner_in(locks, 777), None, "POSIX locks are not sled's");
        assert_eq!(owner_in(locks, 5), None);
    }
}
