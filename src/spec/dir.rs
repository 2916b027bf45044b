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

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::error::{SpecError, line_column};
use super::model::{Spec, SpecId};
use super::validate::parse;

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
}

/// Reads every spec under `root` (subdirectories included), applying the ignore rules of
/// `shared/task-spec.md`. Symlinked files and directories inside the tree are followed; a symlinked
/// directory that points back at one of its ancestors is listed as ignored instead of looping.
/// Messages name files as `root` was given (`desired/web.toml`), not by their canonical path.
pub fn load_dir(root: &Path) -> Result<DirSnapshot, DirError> {
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
    let mut walk = Walk {
        shown_root: root,
        snapshot: DirSnapshot {
            root: canonical.clone(),
            ..DirSnapshot::default()
        },
        ancestors: vec![canonical.clone()],
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
    shown_root: &'a Path,
    snapshot: DirSnapshot,
    /// Canonical paths of the directories being walked, to stop symlink loops.
    ancestors: Vec<PathBuf>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, relative: &Path) -> Result<(), DirError> {
        let unreadable = |source| DirError::Unreadable {
            path: self.shown_root.join(relative),
            source,
        };
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
            match fs::metadata(&path) {
                Ok(metadata) if metadata.is_dir() => self.subdir(&path, &relative)?,
                _ if !shown_name.ends_with(".toml") => self.snapshot.ignored.push(relative),
                Ok(metadata) if !metadata.is_file() => {
                    self.file_problem(&relative, "is not a regular file".to_owned());
                }
                Ok(_) => self.file(&path, &relative),
                Err(err) => self.file_problem(&relative, format!("cannot read: {err}")),
            }
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

    fn file(&mut self, path: &Path, relative: &Path) {
        let shown = self.shown_root.join(relative).display().to_string();
        let id = match SpecId::from_relative_path(relative) {
            Ok(id) => id,
            Err(err) => {
                let error = SpecError::whole_file(&shown, format!("invalid spec file name: {err}"))
                    .with_hint("rename the file, e.g. `my-app.toml`, or start its name with `_` to disable it");
                self.snapshot.errors.insert(path_key(relative), error);
                return;
            }
        };
        let result = read_limited(path)
            .map_err(|err| SpecError::whole_file(&shown, format!("cannot read: {err}")))
            .and_then(|bytes| decode(&shown, bytes))
            .and_then(|text| parse(&id, &shown, &text));
        match result {
            Ok(spec) => {
                self.snapshot.specs.insert(id, spec);
            }
            Err(error) => {
                self.snapshot.errors.insert(id.into(), error);
            }
        }
    }

    /// A problem with a `.toml` entry before its content could be read.
    fn file_problem(&mut self, relative: &Path, message: String) {
        let shown = self.shown_root.join(relative).display().to_string();
        let error = SpecError::whole_file(&shown, message);
        let key = match SpecId::from_relative_path(relative) {
            Ok(id) => id.into(),
            Err(_) => path_key(relative),
        };
        self.snapshot.errors.insert(key, error);
    }
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
