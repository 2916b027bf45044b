//! The desired set in force: what the spec files say, except that a file which does not parse or
//! validate keeps its last valid version in force, and a directory that cannot be read changes
//! nothing at all. This is where "a bad commit never kills a running task" is kept.

use std::collections::BTreeMap;
use std::path::Path;

use crate::spec::dir::{DirSnapshot, load_dir};
use crate::spec::error::SpecError;
use crate::spec::model::{Spec, SpecId};

/// The result of one full re-read of the directory, merged with what was applied before.
#[derive(Debug, Clone, Default)]
pub struct DesiredSet {
    /// The specs in force, by id.
    pub specs: BTreeMap<SpecId, Spec>,
    /// Files that do not parse or validate, by the spec id they would have (or their path when
    /// the name itself is not a valid id). Their previous version, if any, is still in `specs`.
    pub errors: BTreeMap<String, SpecError>,
    /// Spec ids whose current file is invalid and that have no previous valid version: nothing
    /// runs for them; the message says why.
    pub invalid_new: BTreeMap<SpecId, String>,
    /// The directory itself could not be read; `specs` is the previous set, unchanged.
    pub dir_error: Option<String>,
}

/// Re-reads `dir` and merges the result with `applied` (the specs in force before).
pub fn reread(dir: &Path, applied: &BTreeMap<SpecId, Spec>) -> DesiredSet {
    match load_dir(dir) {
        Ok(snapshot) => merge(snapshot, applied),
        Err(e) => DesiredSet {
            specs: applied.clone(),
            dir_error: Some(format!(
                "{e}; keeping the {} specs in force, nothing is killed",
                applied.len()
            )),
            ..Default::default()
        },
    }
}

fn merge(snapshot: DirSnapshot, applied: &BTreeMap<SpecId, Spec>) -> DesiredSet {
    let mut set = DesiredSet {
        specs: snapshot.specs,
        ..Default::default()
    };
    for (key, error) in snapshot.errors {
        let id = SpecId::new(key.clone()).ok();
        match id.as_ref().and_then(|id| applied.get(id).map(|s| (id, s))) {
            Some((id, previous)) => {
                set.specs.insert(id.clone(), previous.clone());
            }
            None => {
                if let Some(id) = id {
                    set.invalid_new.insert(id, error.to_string());
                }
            }
        }
        set.errors.insert(key, error);
    }
    set
}
