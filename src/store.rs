//! The only user of sled: everything the controller must remember across a restart.
//!
//! What is kept, one sled tree each, values as JSON so a person can inspect them:
//! - `meta`: the schema version and the framework id;
//! - `specs`: the last applied (valid) spec of each spec id, so a file deleted while the controller
//!   was down is noticed at the next start;
//! - `ledger`: one record per task id the controller may have launched;
//! - `backoff`: the relaunch backoff of each instance;
//! - `history`: the last attempts of each instance, bounded;
//! - `rollouts`: rollouts that stopped (the generation that failed and why);
//! - `previous_specs`: the spec in force before each spec's latest generation change (a stopped
//!   rollout relaunches lost instances from it);
//! - `spec_stamps`: the size, times and inode of the file each spec in force was read from, so a
//!   restart reads only the files that changed while it was down (a cache: losing it costs one full
//!   read);
//! - `spec_commits` and `commits`: the git commit each spec in force was applied from, and those
//!   commits (sha, author, date, subject), shown by the status server (see `controller::origin`).
//!
//! Durability promises (the README repeats them for operators):
//! - A method documented as *flushed* returns only after sled has written the change to disk
//!   (`flush_async`). After it returns, a `kill -9` of the process, or a power loss on a disk that
//!   honours fsync, cannot lose the change.
//! - Every other write reaches disk within sled's background flush interval (500 ms by default); a
//!   crash may lose it. The controller only uses unflushed writes for data it can rebuild: the
//!   backoff and history of instances, which at worst relaunch a failed task sooner than planned.
//! - The ledger is written ahead: a task id is flushed before the ACCEPT that launches it is sent,
//!   and a status update is flushed before it is acknowledged.
//! - A write or flush that fails is remembered ([`Store::failure`]) until [`Store::probe`] writes
//!   again; the controller acts on nothing meanwhile. sled keeps its first i/o error and fails
//!   everything after it, so the probe closes and opens the database again when sled gave up.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The schema this build writes. A store written by a newer schema is refused rather than guessed at.
pub const SCHEMA_VERSION: u32 = 1;

/// sled's page cache (see [`Store::open`]). It only fills with what the store holds, so a small
/// controller never uses it all: at 10,000 specs the store is a few MiB. At 100,000 an 8 MiB cache
/// held about a tenth of the ledger, and every write first read its page back from the log: a
/// cold start at 100,000 spent 17.5 s of CPU, 13.7 s with 64 MiB (idle RSS 629 -> 675 MiB).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

const KEY_SCHEMA: &str = "schema_version";
const KEY_FRAMEWORK_ID: &str = "framework_id";
/// Written by [`Store::probe`]: whether the directory can be written again.
const KEY_PROBE: &str = "write_probe";

/// A named part of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    Specs,
    Ledger,
    Backoff,
    History,
    Rollouts,
    Previous,
    Stamps,
    SpecCommits,
    Commits,
}

impl Tree {
    fn name(self) -> &'static str {
        match self {
            Tree::Specs => "specs",
            Tree::Ledger => "ledger",
            Tree::Backoff => "backoff",
            Tree::History => "history",
            Tree::Rollouts => "rollouts",
            Tree::Previous => "previous_specs",
            Tree::Stamps => "spec_stamps",
            Tree::SpecCommits => "spec_commits",
            Tree::Commits => "commits",
        }
    }
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process has the database open (sled locks it).
    #[error(
        "the state directory {} is in use by another mesos-reconciler ({holder}); two controllers must not share a state directory: stop the other one, or give this one its own --state",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: String },
    #[error("cannot open the state store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error(
        "state store at {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; use a newer mesos-reconciler"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("state store i/o error: {0}")]
    Io(#[from] sled::Error),
    #[error("the state store at {} is closed: opening it again failed", path.display())]
    Closed { path: PathBuf },
    /// The test failpoint that makes the state directory unwritable (see `failpoint`).
    #[error("{0}")]
    Failpoint(String),
    #[error("state store record {tree}/{key} is corrupt: {source}")]
    Corrupt {
        tree: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The controller's durable state.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    /// The open database; `None` only after opening it again failed (see [`Store::probe`]).
    handles: Option<Handles>,
    /// Why the last write or flush failed, until [`Store::probe`] writes again.
    failure: std::sync::Mutex<Option<String>>,
}

#[derive(Debug)]
struct Handles {
    db: sled::Db,
    meta: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`, checking the schema version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let handles = open_db(dir)?;
        crate::state_dir::write_holder(dir);
        Ok(Self {
            dir: dir.to_owned(),
            path: dir.join("db"),
            handles: Some(handles),
            failure: std::sync::Mutex::new(None),
        })
    }

    /// Why writes fail, since the last write or flush that failed (until [`Store::probe`]
    /// succeeds).
    pub fn failure(&self) -> Option<String> {
        self.failure_slot().clone()
    }

    /// Tries a small write and a flush. On success the failure is forgotten (every earlier write
    /// that failed must be done again by the caller). sled stops for good after an i/o error of
    /// its own (a full disk): then the database is closed and opened again, which is how it
    /// recovers.
    pub async fn probe(&mut self) -> Result<(), StoreError> {
        let attempt = self.write_probe().await;
        let result = match attempt {
            Ok(()) => Ok(()),
            Err(StoreError::Failpoint(reason)) => Err(StoreError::Failpoint(reason)),
            Err(_) => {
                // sled keeps the first i/o error and fails everything after it until reopened.
                // The old handles go first: sled locks the database file while one is open.
                match reopen(self).await {
                    Ok(()) => self.write_probe().await,
                    Err(e) => Err(e),
                }
            }
        };
        match &result {
            Ok(()) => *self.failure_slot() = None,
            Err(e) => *self.failure_slot() = Some(e.to_string()),
        }
        result
    }

    async fn write_probe(&self) -> Result<(), StoreError> {
        crate::failpoint::check_writable().map_err(StoreError::Failpoint)?;
        let h = self.handles()?;
        h.meta.insert(KEY_PROBE, now_ms().to_string().as_bytes())?;
        h.db.flush_async().await?;
        Ok(())
    }

    /// The handles to write with, unless the failpoint says the directory is unwritable.
    fn writable(&self) -> Result<&Handles, StoreError> {
        crate::failpoint::check_writable().map_err(StoreError::Failpoint)?;
        self.handles()
    }

    fn handles(&self) -> Result<&Handles, StoreError> {
        self.handles.as_ref().ok_or_else(|| StoreError::Closed {
            path: self.path.clone(),
        })
    }

    fn failure_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A plain value set in one go: a panic elsewhere cannot leave it half-written.
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes a failed write (the controller stops launching and killing until a probe passes).
    fn written<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            let mut slot = self.failure_slot();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }
        result
    }
}

/// Opens sled in `dir/db` and checks the schema version.
fn open_db(dir: &Path) -> Result<Handles, StoreError> {
    {
        let path = dir.join("db");
        // sled's page cache defaults to 1 GiB, which it fills with every page it ever read; the
        // controller reads the store once at start and keeps what it needs in memory. The cache
        // still serves the write path (a write reads its leaf page first), so it is sized for
        // the ledger of a large cluster (see CACHE_BYTES).
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_BYTES)
            // Status updates are small writes in bursts: favour write throughput over compactness
            // (LowSpace, the default, rewrites pages to defragment, which costs more IO per update).
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| {
                if is_lock_error(&source) {
                    StoreError::Locked {
                        dir: dir.to_owned(),
                        holder: crate::state_dir::describe_holder(dir, &path.join("db")),
                    }
                } else {
                    StoreError::Open {
                        path: path.clone(),
                        source,
                    }
                }
            })?;
        let meta = db.open_tree("meta")?;
        match meta.get(KEY_SCHEMA)? {
            Some(v) => {
                let found = String::from_utf8_lossy(&v)
                    .parse::<u32>()
                    .unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
            }
            None => {
                meta.insert(KEY_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
                db.flush()?;
            }
        }
        Ok(Handles { db, meta })
    }
}

/// How long [`reopen`] waits for sled's own threads to let go of the database's lock.
const REOPEN_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes the database and opens it again (see [`Store::probe`]).
async fn reopen(store: &mut Store) -> Result<(), StoreError> {
    // sled's handles are reference counted: the database closes, and its file lock is released,
    // when the last one goes; only then can it be opened again. sled's background flusher holds
    // one for a moment after ours are dropped, so the lock is waited for, briefly; a lock still
    // held after that (another process took the directory) is reported as usual.
    drop(store.handles.take());
    let until = tokio::time::Instant::now() + REOPEN_LOCK_WAIT;
    let handles = loop {
        match open_db(&store.dir) {
            Err(StoreError::Locked { .. }) if tokio::time::Instant::now() < until => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => break other?,
        }
    };
    store.handles = Some(handles);
    tracing::info!(path = %store.path.display(), "the state store was opened again");
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Store {
    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state directory the database is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The framework id Mesos assigned, if the controller has registered before.
    pub fn framework_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .handles()?
            .meta
            .get(KEY_FRAMEWORK_ID)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records the framework id. Flushed.
    pub async fn set_framework_id(&self, id: &str) -> Result<(), StoreError> {
        let write = self.writable().and_then(|h| {
            h.meta.insert(KEY_FRAMEWORK_ID, id.as_bytes())?;
            Ok(())
        });
        self.written(write)?;
        self.flush().await
    }

    /// Forgets the framework id (Mesos removed the framework). Flushed.
    pub async fn clear_framework_id(&self) -> Result<(), StoreError> {
        let write = self.writable().and_then(|h| {
            h.meta.remove(KEY_FRAMEWORK_ID)?;
            Ok(())
        });
        self.written(write)?;
        self.flush().await
    }

    /// Every record of a tree, in key order.
    pub fn all<T: DeserializeOwned>(&self, tree: Tree) -> Result<Vec<(String, T)>, StoreError> {
        let t = self.handles()?.db.open_tree(tree.name())?;
        let mut out = Vec::new();
        for item in t.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt {
                tree: tree.name(),
                key: key.clone(),
                source,
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// One record, if present.
    pub fn get<T: DeserializeOwned>(&self, tree: Tree, key: &str) -> Result<Option<T>, StoreError> {
        let t = self.handles()?.db.open_tree(tree.name())?;
        match t.get(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|source| StoreError::Corrupt {
                    tree: tree.name(),
                    key: key.to_owned(),
                    source,
                }),
        }
    }

    /// Writes several records of one tree. Each record is written whole, but a crash may keep
    /// some of them and not others (they go in groups of [`BATCH_RECORDS`]): callers write
    /// records that stand alone. Not flushed: call [`Store::flush`] when the records must be
    /// durable before acting.
    pub fn put_all<'a, T: Serialize + 'a>(
        &self,
        tree: Tree,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError> {
        self.update(tree, records, [])
    }

    /// Writes `puts` and removes `removes` in one tree, each record whole (as
    /// [`Store::put_all`]). Not flushed.
    pub fn update<'a, T: Serialize + 'a>(
        &self,
        tree: Tree,
        puts: impl IntoIterator<Item = (&'a str, &'a T)>,
        removes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let t = self.written(
            self.writable()
                .and_then(|h| Ok(h.db.open_tree(tree.name())?)),
        )?;
        let mut ops: Vec<(&str, Option<Vec<u8>>)> = Vec::new();
        for (key, value) in puts {
            let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
                tree: tree.name(),
                key: key.to_owned(),
                source,
            })?;
            ops.push((key, Some(bytes)));
        }
        ops.extend(removes.into_iter().map(|key| (key, None)));
        self.written(apply(&t, ops).map_err(StoreError::from))
    }

    /// Writes one record. Not flushed.
    pub fn put<T: Serialize>(&self, tree: Tree, key: &str, value: &T) -> Result<(), StoreError> {
        self.put_all(tree, [(key, value)])
    }

    /// Removes one record. Not flushed.
    pub fn remove(&self, tree: Tree, key: &str) -> Result<(), StoreError> {
        let t = self.written(
            self.writable()
                .and_then(|h| Ok(h.db.open_tree(tree.name())?)),
        )?;
        self.written(t.remove(key).map(drop).map_err(StoreError::from))
    }

    /// Makes every earlier write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let flushed = match self.writable() {
            Ok(h) => h.db.flush_async().await.map(drop).map_err(StoreError::from),
            Err(e) => Err(e),
        };
        self.written(flushed)
    }
}

/// At most this many records go into one sled `Batch`.
///
/// While a batch is applied, sled holds every node version it replaces (each insert copies its
/// leaf) until the batch ends. One batch of the 10,000 launches of a cold start held 60 MiB
/// that way, 10 times the records themselves; at 100,000 it was most of a 2 GiB high-water mark,
/// and what the allocator kept of it afterwards stayed in the controller's RSS.
const BATCH_RECORDS: usize = 1024;

/// Applies writes to one tree, each group of up to [`BATCH_RECORDS`] all or none surviving a
/// crash. A single write goes alone: sled makes each write atomic by itself, while a `Batch` pins
/// the log, which seals and writes sled's current IO buffer twice (each with a disk sync) whatever
/// the batch holds. One status update is one write, so a burst of 20,000 updates costs 20,000
/// small writes, not 40,000 disk syncs; the burst is then made durable by one flush.
fn apply(tree: &sled::Tree, mut ops: Vec<(&str, Option<Vec<u8>>)>) -> sled::Result<()> {
    if ops.len() <= 1 {
        return match ops.pop() {
            Some((key, Some(value))) => tree.insert(key, value).map(drop),
            Some((key, None)) => tree.remove(key).map(drop),
            None => Ok(()),
        };
    }
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        let mut batch = sled::Batch::default();
        for (key, value) in ops.by_ref().take(BATCH_RECORDS) {
            match value {
                Some(v) => batch.insert(key.as_bytes(), v),
                None => batch.remove(key.as_bytes()),
            }
        }
        tree.apply_batch(batch)?;
    }
    Ok(())
}

/// sled's error when another process holds the database's lock (`Config::try_lock`).
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mesos-reconciler-store-{name}-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn framework_id_survives_reopen() {
        let dir = temp_dir("fwid");
        {
            let store = Store::open(&dir).unwrap();
            assert_eq!(store.framework_id().unwrap(), None);
            store.set_framework_id("abc-0000").await.unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.framework_id().unwrap().as_deref(), Some("abc-0000"));
        store.clear_framework_id().await.unwrap();
        assert_eq!(store.framework_id().unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn records_round_trip_in_key_order() {
        let dir = temp_dir("records");
        let store = Store::open(&dir).unwrap();
        store
            .put_all(Tree::Ledger, [("b", &2u32), ("a", &1u32)])
            .unwrap();
        store.flush().await.unwrap();
        let all: Vec<(String, u32)> = store.all(Tree::Ledger).unwrap();
        assert_eq!(all, vec![("a".into(), 1), ("b".into(), 2)]);
        store.remove(Tree::Ledger, "a").unwrap();
        assert_eq!(store.get::<u32>(Tree::Ledger, "a").unwrap(), None);
        assert_eq!(store.get::<u32>(Tree::Ledger, "b").unwrap(), Some(2));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn writes_larger_than_a_batch_land_whole() {
        let dir = temp_dir("large");
        let n = BATCH_RECORDS * 2 + 7;
        let keys: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
        let values: Vec<u32> = (0..n as u32).collect();
        let store = Store::open(&dir).unwrap();
        store
            .put_all(Tree::Ledger, keys.iter().map(String::as_str).zip(&values))
            .unwrap();
        // Puts and removes across batch boundaries.
        let removes: Vec<&str> = keys.iter().step_by(3).map(String::as_str).collect();
        let doubled: Vec<u32> = values.iter().map(|v| v * 2).collect();
        store
            .update(
                Tree::Ledger,
                keys.iter()
                    .skip(1)
                    .step_by(3)
                    .map(String::as_str)
                    .zip(doubled.iter().skip(1).step_by(3)),
                removes,
            )
            .unwrap();
        store.flush().await.unwrap();
        let all: Vec<(String, u32)> = store.all(Tree::Ledger).unwrap();
        let expected: Vec<(String, u32)> = (0..n)
            .filter(|i| i % 3 != 0)
            .map(|i| {
                let v = i as u32;
                (keys[i].clone(), if i % 3 == 1 { v * 2 } else { v })
            })
            .collect();
        assert_eq!(all, expected);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_open_names_the_directory_and_the_holder() {
        let dir = temp_dir("locked");
        let first = Store::open(&dir).unwrap();
        let err = Store::open(&dir).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&dir.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_failed_write_is_remembered_until_a_probe_writes_again() {
        let dir = temp_dir("probe");
        let mut store = Store::open(&dir).unwrap();
        store.put(Tree::Ledger, "a", &1u32).unwrap();
        assert_eq!(store.failure(), None);
        // A database that cannot be used any more (what sled is after an i/o error of its own).
        drop(store.handles.take());
        let err = store.put(Tree::Ledger, "b", &2u32).unwrap_err();
        assert!(matches!(err, StoreError::Closed { .. }), "{err:?}");
        assert!(store.flush().await.is_err());
        let failure = store.failure().expect("the failure is remembered");
        assert!(failure.contains("closed"), "{failure}");
        // The probe opens the database again and writes.
        store.probe().await.unwrap();
        assert_eq!(store.failure(), None);
        store.put(Tree::Ledger, "b", &2u32).unwrap();
        store.flush().await.unwrap();
        let all: Vec<(String, u32)> = store.all(Tree::Ledger).unwrap();
        assert_eq!(all, vec![("a".into(), 1), ("b".into(), 2)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = temp_dir("schema");
        {
            let store = Store::open(&dir).unwrap();
            store
                .handles()
                .unwrap()
                .meta
                .insert(KEY_SCHEMA, b"99")
                .unwrap();
            store.flush().await.unwrap();
        }
        let err = Store::open(&dir).unwrap_err();
        assert!(
            err.to_string().contains("schema version 99"),
            "unexpected error: {err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn corrupt_record_names_tree_and_key() {
        let dir = temp_dir("corrupt");
        let store = Store::open(&dir).unwrap();
        store
            .handles()
            .unwrap()
            .db
            .open_tree("ledger")
            .unwrap()
            .insert("t1", b"{not json".as_slice())
            .unwrap();
        let err = store.all::<u32>(Tree::Ledger).unwrap_err();
        assert!(err.to_string().contains("ledger/t1"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
