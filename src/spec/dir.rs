//! Reading a whole desired directory: the only filesystem access of the `spec` module.
//!
//! The root is canonicalized once, first, so that when it is a symlink that a sync tool repoints
//! atomically (git-sync, a Kubernetes ConfigMap volume) the walk reads one consistent tree: the one
//! the link pointed at when the read began. Everything below is read through that resolved path.
//!
//! Failure is all-or-nothing where a partial answer could kill tasks: a missing or unreadable root,
//! or an unreadable subdirectory, is a [`DirError`], never a snapshot with fewer specs. A single file
//! that cannot be read or parsed is only an error entry for its spec id, so the controller keeps that
//! spec's previous valid version in force.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::error::{SpecError, line_column};
use super::model::{Spec, SpecId};
pub use super::policy::Limits;
use super::policy::SpecPolicy;
use super::validate::parse_with;

/// Larger files are reported, not parsed: a spec is a few dozen lines, and a link to something huge
/// (or endless, like `/dev/zero`) must not stall the loop.
pub const MAX_SPEC_FILE_BYTES: u64 = 1024 * 1024;

/// Everything one read of the desired directory found.
#[derive(Debug, Clone, Default)]
pub struct DirSnapshot {
    /// The directory actually read: the canonical path, i.e. the symlink target if the root given to
    /// [`load_dir`] was a symlink.
    pub root: PathBuf,
    /// Every spec that parsed and validated.
    pub specs: BTreeMap<SpecId, Spec>,
    /// Spec files that could not be read, parsed or validated, keyed by their spec id
    /// (`team-a/web`), whose previous valid version, if any, stays in force. A `.toml` file whose
    /// name is not a valid id (`Web.toml`, `a b.toml`) is keyed by its relative path instead
    /// (`Web.toml`); such a key never parses as a [`SpecId`], so `SpecId::new(key)` tells the two
    /// apart.
    pub errors: BTreeMap<String, SpecError>,
    /// Files and directories skipped by the ignore rules (and symlinked directories that loop),
    /// relative to the root, in walk order.
    pub ignored: Vec<PathBuf>,
}

impl DirSnapshot {
    /// The error of the file of spec `id`, if that file has one.
    pub fn error_for(&self, id: &SpecId) -> Option<&SpecError> {
        self.errors.get(id.as_str())
    }
}

/// Why the desired directory as a whole could not be read. The caller must not treat this as an
/// empty set of specs.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("desired directory {} does not exist", path.display())]
    Missing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("desired directory {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read desired directory {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "desired directory {} holds more than {max} spec files; nothing in it was applied (the \
         specs in force stay): remove files, or raise --max-spec-files",
        path.display()
    )]
    TooManyFiles { path: PathBuf, max: usize },
    #[error(
        "the spec files of desired directory {} add up to more than {} MiB; nothing in it was \
         applied (the specs in force stay)",
        path.display(),
        max_bytes / (1024 * 1024)
    )]
    TooLarge { path: PathBuf, max_bytes: u64 },
    #[error(
        "{} is nested more than {max} directories deep; nothing in the desired directory was \
         applied (the specs in force stay)",
        path.display()
    )]
    TooDeep { path: PathBuf, max: usize },
}

/// Reads every spec under `root` (subdirectories included), applying the ignore rules of
/// `shared/task-spec.md`. Symlinked files and directories inside the tree are followed; a symlinked
/// directory that points back at one of its ancestors is listed as ignored instead of looping.
/// Messages name files as `root` was given (`desired/web.toml`), not by their canonical path.
pub fn load_dir(root: &Path) -> Result<DirSnapshot, DirError> {
    load_dir_with(root, &SpecPolicy::default())
}

/// [`load_dir`] under the operator's [`SpecPolicy`] (allowed users, limits).
pub fn load_dir_with(root: &Path, policy: &SpecPolicy) -> Result<DirSnapshot, DirError> {
    let canonical = canonical_root(root)?;
    let mut walk = Walk {
        policy,
        files: 0,
        bytes: 0,
        shown_root: root,
        snapshot: DirSnapshot {
            root: canonical.clone(),
            ..DirSnapshot::default()
        },
        ancestors: vec![canonical.clone()],
        incremental: None,
    };
    walk.dir(&canonical, Path::new(""))?;
    Ok(walk.snapshot)
}

/// The name-based ignore rules: hidden and "disabled" names (`.x`, `_x`) and editor leftovers
/// (`x~`, `x.swp`, `x.tmp`, `#x#`). Applied to files and directories alike; files must in addition
/// end in `.toml` to be read.
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('_')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp")
        || (name.len() >= 2 && name.starts_with('#') && name.ends_with('#'))
}

struct Walk<'a> {
    policy: &'a SpecPolicy,
    /// `.toml` files seen and their bytes, against the policy's limits.
    files: usize,
    bytes: u64,
    shown_root: &'a Path,
    snapshot: DirSnapshot,
    /// Canonical paths of the directories being walked, to stop symlink loops.
    ancestors: Vec<PathBuf>,
    /// Set by [`scan_dir`]: files whose stamp did not change are not read again.
    incremental: Option<Incremental<'a>>,
}

/// What identifies one version of a file without reading it: if any of these differs, the file is
/// read again. `ctime` changes on every write and rename, even one that restores the old `mtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }
}

/// What [`scan_dir`] remembers of one `.toml` file.
#[derive(Debug, Clone)]
struct CachedFile {
    stamp: Stamp,
    /// The spec id of the file, if its name is one.
    id: Option<SpecId>,
    /// Why the file is invalid, if it is.
    error: Option<Box<SpecError>>,
}

/// What [`scan_dir`] keeps between scans of one directory: the stamp and outcome of every file, by
/// path relative to the root.
#[derive(Debug, Default)]
pub struct DirCache {
    files: HashMap<PathBuf, CachedFile>,
    /// Entries were seeded (not seen by a scan yet): the next scan lists every valid id.
    seeded: bool,
}

/// The file of a spec id, relative to the root.
fn relative_of(id: &SpecId) -> PathBuf {
    PathBuf::from(format!("{}.toml", id.as_str()))
}

impl DirCache {
    /// The stamp of the file of `id` as the last scan saw it, if it was valid.
    pub fn stamp(&self, id: &SpecId) -> Option<Stamp> {
        self.files
            .get(&relative_of(id))
            .filter(|f| f.error.is_none())
            .map(|f| f.stamp)
    }

    /// Remembers that the file of `id` had `stamp` when its spec (which the caller keeps) was
    /// read, so that a scan after a restart does not read it again if it is unchanged. The next
    /// scan lists every valid id ([`DirDiff::valid`]), so ids the caller has and that were not
    /// seeded are still found missing.
    pub fn seed(&mut self, id: &SpecId, stamp: Stamp) {
        self.seeded = true;
        self.files.insert(
            relative_of(id),
            CachedFile {
                stamp,
                id: Some(id.clone()),
                error: None,
            },
        );
    }

    /// Forgets the stamp of the file of `id`, so that the next scan reads and checks it again
    /// (a spec in force from before the policy changed).
    pub fn forget(&mut self, id: &SpecId) {
        self.files.remove(&relative_of(id));
    }

    /// Files known (valid or not).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// What changed since the previous [`scan_dir`] with the same cache.
#[derive(Debug, Clone, Default)]
pub struct DirDiff {
    /// The directory actually read (see [`DirSnapshot::root`]).
    pub root: PathBuf,
    /// Specs whose file is new, or changed and valid (their content may still be the same).
    pub changed: BTreeMap<SpecId, Spec>,
    /// Spec ids whose file was valid and is now invalid, or whose file is gone.
    pub removed: BTreeSet<SpecId>,
    /// Every invalid file now, as in [`DirSnapshot::errors`] (not only the changed ones).
    pub errors: BTreeMap<String, SpecError>,
    /// On the first scan of a cache (empty or seeded): every valid spec id now. The caller compares
    /// it with what it had to find deletions (`removed` only knows the files the cache knew).
    pub valid: Option<BTreeSet<SpecId>>,
    /// Files read and parsed in this scan (the others were known by their stamp).
    pub files_read: usize,
    /// Files seen in this scan.
    pub files_seen: usize,
}

struct Incremental<'a> {
    old: &'a HashMap<PathBuf, CachedFile>,
    new: HashMap<PathBuf, CachedFile>,
    diff: DirDiff,
}

/// Reads what changed under `root` since the last scan with `cache`: every file is looked at
/// (`stat`), but only files whose size, times or inode changed are read and parsed again. The ignore
/// rules and messages are those of [`load_dir`]. On error the cache is left as it was, so the next
/// scan reports everything this one would have.
pub fn scan_dir(root: &Path, cache: &mut DirCache) -> Result<DirDiff, DirError> {
    scan_dir_with(root, cache, &SpecPolicy::default())
}

/// [`scan_dir`] under the operator's [`SpecPolicy`] (allowed users, limits).
pub fn scan_dir_with(
    root: &Path,
    cache: &mut DirCache,
    policy: &SpecPolicy,
) -> Result<DirDiff, DirError> {
    let canonical = canonical_root(root)?;
    let complete = cache.files.is_empty() || cache.seeded;
    let mut walk = Walk {
        policy,
        files: 0,
        bytes: 0,
        shown_root: root,
        snapshot: DirSnapshot::default(),
        ancestors: vec![canonical.clone()],
        incremental: Some(Incremental {
            old: &cache.files,
            new: HashMap::with_capacity(cache.files.len()),
            diff: DirDiff {
                root: canonical.clone(),
                valid: complete.then(BTreeSet::new),
                ..DirDiff::default()
            },
        }),
    };
    walk.dir(&canonical, Path::new(""))?;
    let Some(Incremental { old, new, mut diff }) = walk.incremental else {
        unreachable!("set above");
    };
    for (path, file) in old {
        if !new.contains_key(path) {
            if let Some(id) = &file.id {
                diff.removed.insert(id.clone());
            }
        }
    }
    diff.errors = walk.snapshot.errors;
    cache.files = new;
    cache.seeded = false;
    Ok(diff)
}

fn canonical_root(root: &Path) -> Result<PathBuf, DirError> {
    let canonical = fs::canonicalize(root).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => DirError::Missing {
            path: root.to_owned(),
            source,
        },
        _ => DirError::Unreadable {
            path: root.to_owned(),
            source,
        },
    })?;
    let metadata = fs::metadata(&canonical).map_err(|source| DirError::Unreadable {
        path: root.to_owned(),
        source,
    })?;
    if !metadata.is_dir() {
        return Err(DirError::NotADirectory {
            path: root.to_owned(),
        });
    }
    Ok(canonical)
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, relative: &Path) -> Result<(), DirError> {
        let unreadable = |source| DirError::Unreadable {
            path: self.shown_root.join(relative),
            source,
        };
        let max_depth = self.policy.limits.max_depth;
        if relative.components().count() > max_depth {
            return Err(DirError::TooDeep {
                path: self.shown_root.join(relative),
                max: max_depth,
            });
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(unreadable)? {
            names.push(entry.map_err(unreadable)?.file_name());
        }
        // Sorted so that `ignored` and error order do not depend on the filesystem.
        names.sort();
        for name in names {
            let shown_name = name.to_string_lossy().into_owned();
            let path = dir.join(&name);
            let relative = relative.join(&name);
            if is_ignored_name(&shown_name) {
                self.snapshot.ignored.push(relative);
                continue;
            }
            // `metadata` follows symlinks: a ConfigMap's `web.toml -> ..data/web.toml` is a file.
            let metadata = fs::metadata(&path);
            if matches!(&metadata, Ok(m) if m.is_dir()) || shown_name.ends_with(".toml") {
                // A link may point anywhere, and whoever writes the tree chooses where: only
                // what stays inside the desired directory is a spec source.
                if let Some(outside) = self.leaves_root(&path) {
                    let message = format!(
                        "is a symlink to {outside}, outside the desired directory; spec files and \
                         directories must stay inside it"
                    );
                    let key = match &metadata {
                        Ok(m) if m.is_dir() => format!("{}/", path_key(&relative)),
                        _ => String::new(),
                    };
                    self.file_problem_keyed(&relative, message, key);
                    continue;
                }
            }
            match metadata {
                Ok(metadata) if metadata.is_dir() => self.subdir(&path, &relative)?,
                _ if !shown_name.ends_with(".toml") => self.snapshot.ignored.push(relative),
                Ok(metadata) if !metadata.is_file() => {
                    self.file_problem(&relative, "is not a regular file".to_owned());
                }
                Ok(metadata) => {
                    self.count(&metadata)?;
                    self.file(&path, &relative, &metadata);
                }
                Err(err) => self.file_problem(&relative, format!("cannot read: {err}")),
            }
        }
        Ok(())
    }

    /// Where `path` leads when it is a symlink out of the desired directory (`None` for
    /// everything else, broken links included: reading those fails on its own).
    fn leaves_root(&self, path: &Path) -> Option<String> {
        let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            return None;
        }
        let target = fs::canonicalize(path).ok()?;
        let root = self.ancestors.first()?;
        (!target.starts_with(root)).then(|| target.display().to_string())
    }

    /// Counts one `.toml` file against the limits.
    fn count(&mut self, metadata: &fs::Metadata) -> Result<(), DirError> {
        let limits = self.policy.limits;
        self.files += 1;
        self.bytes = self.bytes.saturating_add(metadata.len());
        if self.files > limits.max_files {
            return Err(DirError::TooManyFiles {
                path: self.shown_root.to_owned(),
                max: limits.max_files,
            });
        }
        if self.bytes > limits.max_total_bytes {
            return Err(DirError::TooLarge {
                path: self.shown_root.to_owned(),
                max_bytes: limits.max_total_bytes,
            });
        }
        Ok(())
    }

    fn subdir(&mut self, path: &Path, relative: &Path) -> Result<(), DirError> {
        let canonical = fs::canonicalize(path).map_err(|source| DirError::Unreadable {
            path: self.shown_root.join(relative),
            source,
        })?;
        if self.ancestors.contains(&canonical) {
            self.snapshot.ignored.push(relative.to_owned());
            return Ok(());
        }
        self.ancestors.push(canonical);
        let result = self.dir(path, relative);
        self.ancestors.pop();
        result
    }

    fn file(&mut self, path: &Path, relative: &Path, metadata: &fs::Metadata) {
        let Some(inc) = &mut self.incremental else {
            self.read_file(path, relative);
            return;
        };
        inc.diff.files_seen += 1;
        let stamp = Stamp::of(metadata);
        if let Some(old) = inc.old.get(relative).filter(|f| f.stamp == stamp) {
            if let Some(error) = &old.error {
                let key = old
                    .id
                    .as_ref()
                    .map_or_else(|| path_key(relative), |id| id.as_str().to_owned());
                self.snapshot.errors.insert(key, SpecError::clone(error));
            } else if let (Some(valid), Some(id)) = (&mut inc.diff.valid, &old.id) {
                valid.insert(id.clone());
            }
            inc.new.insert(relative.to_owned(), old.clone());
            return;
        }
        let was_valid = inc.old.get(relative).is_some_and(|f| f.error.is_none());
        inc.diff.files_read += 1;
        let before = self.snapshot.errors.len();
        let parsed = self.read_file(path, relative);
        let Some(inc) = &mut self.incremental else {
            return;
        };
        let id = SpecId::from_relative_path(relative).ok();
        let error = if self.snapshot.errors.len() > before {
            let key = id
                .as_ref()
                .map_or_else(|| path_key(relative), |id| id.as_str().to_owned());
            self.snapshot.errors.get(&key).cloned()
        } else {
            None
        };
        match parsed {
            Some(spec) => {
                if let Some(valid) = &mut inc.diff.valid {
                    valid.insert(spec.id.clone());
                }
                inc.diff.changed.insert(spec.id.clone(), spec);
            }
            None => {
                if was_valid {
                    if let Some(id) = &id {
                        inc.diff.removed.insert(id.clone());
                    }
                }
            }
        }
        inc.new.insert(
            relative.to_owned(),
            CachedFile {
                stamp,
                id,
                error: error.map(Box::new),
            },
        );
    }

    /// Reads and parses one file into the snapshot (full mode), or returns the spec (incremental
    /// mode; errors go to the snapshot's errors either way).
    fn read_file(&mut self, path: &Path, relative: &Path) -> Option<Spec> {
        let shown = self.shown_root.join(relative).display().to_string();
        let id = match SpecId::from_relative_path(relative) {
            Ok(id) => id,
            Err(err) => {
                let error = SpecError::whole_file(&shown, format!("invalid spec file name: {err}"))
                    .with_hint("rename the file, e.g. `my-app.toml`, or start its name with `_` to disable it");
                self.snapshot.errors.insert(path_key(relative), error);
                return None;
            }
        };
        let result = read_limited(path)
            .map_err(|err| SpecError::whole_file(&shown, format!("cannot read: {err}")))
            .and_then(|bytes| parse_bytes(&id, &shown, bytes, self.policy));
        match result {
            Ok(spec) if self.incremental.is_some() => Some(spec),
            Ok(spec) => {
                self.snapshot.specs.insert(id, spec);
                None
            }
            Err(error) => {
                self.snapshot.errors.insert(id.into(), error);
                None
            }
        }
    }

    /// A problem with a `.toml` entry before its content could be read.
    fn file_problem(&mut self, relative: &Path, message: String) {
        self.file_problem_keyed(relative, message, String::new());
    }

    /// [`Self::file_problem`] under `key` when it is not empty (a directory's `team-a/`, which
    /// is never a spec id).
    fn file_problem_keyed(&mut self, relative: &Path, message: String, key: String) {
        let shown = self.shown_root.join(relative).display().to_string();
        let error = SpecError::whole_file(&shown, message);
        let key = if !key.is_empty() {
            key
        } else {
            match SpecId::from_relative_path(relative) {
                Ok(id) => id.into(),
                Err(_) => path_key(relative),
            }
        };
        self.snapshot.errors.insert(key, error);
    }
}

/// A spec file's bytes as the directory reader takes them: UTF-8 (else an error at the first bad
/// byte), then parsed and validated under `policy`. No IO; the fuzz target of the spec reader.
pub fn parse_bytes(
    id: &SpecId,
    shown: &str,
    bytes: Vec<u8>,
    policy: &SpecPolicy,
) -> Result<Spec, SpecError> {
    decode(shown, bytes).and_then(|text| parse_with(id, shown, &text, policy))
}

/// The error key of a file whose name is not a spec id: its relative path with `/` separators.
fn path_key(relative: &Path) -> String {
    let parts: Vec<_> = relative.iter().map(|part| part.to_string_lossy()).collect();
    parts.join("/")
}

fn read_limited(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(MAX_SPEC_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SPEC_FILE_BYTES {
        return Err(io::Error::other(format!(
            "file is larger than {} KiB; a task spec is a few dozen lines",
            MAX_SPEC_FILE_BYTES / 1024
        )));
    }
    Ok(bytes)
}

/// The file's text, or an error at the line and column of the first byte that is not UTF-8.
fn decode(shown: &str, bytes: Vec<u8>) -> Result<String, SpecError> {
    String::from_utf8(bytes).map_err(|err| {
        let valid = err.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&err.as_bytes()[..valid]).into_owned();
        let (line, column) = line_column(&prefix, prefix.len());
        SpecError {
            line,
            column,
            ..SpecError::whole_file(shown, "is not valid UTF-8".to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        for name in [
            ".git",
            "_disabled.toml",
            "web.toml~",
            ".web.toml.swp",
            "x.tmp",
            "#web.toml#",
            "_",
        ] {
            assert!(is_ignored_name(name), "{name}");
        }
        for name in ["web.toml", "team-a", "a#b.toml", "#", "web.toml.bak"] {
            assert!(!is_ignored_name(name), "{name}");
        }
    }

    #[test]
    fn invalid_utf8_points_at_the_first_bad_byte() {
        let err = decode("d/x.toml", b"command = \"a\"\nmem = \xff\n".to_vec()).unwrap_err();
        assert_eq!((err.line, err.column), (2, 7));
        assert_eq!(err.to_string(), "d/x.toml:2:7: is not valid UTF-8");
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mr-scan-{name}-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const SPEC: &str = "command = \"sleep 1\"\n";

    #[test]
    fn a_scan_reads_only_what_changed_and_reports_removals() {
        let dir = temp("changes");
        fs::write(dir.join("a.toml"), SPEC).unwrap();
        fs::write(dir.join("b.toml"), SPEC).unwrap();
        let mut cache = DirCache::default();
        let first = scan_dir(&dir, &mut cache).unwrap();
        assert_eq!(first.changed.len(), 2);
        assert_eq!(first.valid.as_ref().map(BTreeSet::len), Some(2));

        let again = scan_dir(&dir, &mut cache).unwrap();
        assert_eq!((again.files_read, again.files_seen), (0, 2));
        assert!(again.changed.is_empty() && again.removed.is_empty());
        assert!(again.valid.is_none());

        fs::write(dir.join("a.toml"), "command = \"sleep 2\"\n").unwrap();
        fs::remove_file(dir.join("b.toml")).unwrap();
        fs::write(dir.join("c.toml"), "nonsense = [").unwrap();
        let diff = scan_dir(&dir, &mut cache).unwrap();
        assert_eq!(diff.files_read, 2);
        let ids = |m: &BTreeMap<SpecId, Spec>| {
            m.keys().map(|k| k.as_str().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&diff.changed), ["a"]);
        assert_eq!(
            diff.removed.iter().map(SpecId::as_str).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(diff.errors.contains_key("c"));

        // An unchanged invalid file is still reported, without being read.
        let quiet = scan_dir(&dir, &mut cache).unwrap();
        assert_eq!(quiet.files_read, 0);
        assert!(quiet.errors.contains_key("c"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_seeded_cache_reads_nothing_unchanged_and_lists_every_valid_id() {
        let dir = temp("seeded");
        fs::write(dir.join("a.toml"), SPEC).unwrap();
        fs::write(dir.join("b.toml"), SPEC).unwrap();
        let mut cache = DirCache::default();
        scan_dir(&dir, &mut cache).unwrap();
        let a = SpecId::new("a").unwrap();
        let b = SpecId::new("b").unwrap();
        let (sa, sb) = (cache.stamp(&a).unwrap(), cache.stamp(&b).unwrap());

        let mut seeded = DirCache::default();
        seeded.seed(&a, sa);
        seeded.seed(&b, sb);
        fs::remove_file(dir.join("b.toml")).unwrap();
        let diff = scan_dir(&dir, &mut seeded).unwrap();
        assert_eq!(diff.files_read, 0, "a is known by its stamp");
        assert!(diff.changed.is_empty());
        assert_eq!(diff.valid, Some(BTreeSet::from([a])));
        assert_eq!(diff.removed, BTreeSet::from([b]));
        fs::remove_dir_all(dir).unwrap();
    }
}
