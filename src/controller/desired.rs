//! The desired set in force: what the spec files say, except that a file which does not parse or
//! validate keeps its last valid version in force, and a directory that cannot be read changes
//! nothing at all. This is where "a bad commit never kills a running task" is kept.
//!
//! The set is changed by the differences a scan of the directory reports (`spec::dir::scan_dir`),
//! so a re-read costs a `stat` per file plus the work of the files that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::spec::dir::DirDiff;
use crate::spec::error::SpecError;
use crate::spec::model::{Spec, SpecId};

/// The specs in force, merged from every scan of the directory.
#[derive(Debug, Clone, Default)]
pub struct DesiredSet {
    /// The specs in force, by id.
    pub specs: BTreeMap<SpecId, Arc<Spec>>,
    /// Files that do not parse or validate, by the spec id they would have (or their path when
    /// the name itself is not a valid id). Their previous version, if any, is still in `specs`.
    pub errors: BTreeMap<String, SpecError>,
    /// Spec ids whose current file is invalid and that have no previous valid version: nothing
    /// runs for them; the message says why.
    pub invalid_new: BTreeMap<SpecId, String>,
    /// The directory itself could not be read; `specs` is the previous set, unchanged.
    pub dir_error: Option<String>,
}

/// What one scan changed in force.
#[derive(Debug, Default)]
pub struct Changes {
    /// Specs new or changed, with the version in force before (if any).
    pub changed: Vec<(SpecId, Option<Arc<Spec>>)>,
    /// Specs no longer in force (their file is gone), with their last version.
    pub removed: Vec<(SpecId, Arc<Spec>)>,
    /// Spec ids that became, or stopped being, invalid new specs.
    pub invalid: BTreeSet<SpecId>,
}

impl DesiredSet {
    /// Applies the differences one scan found.
    pub fn apply(&mut self, diff: DirDiff) -> Changes {
        let mut changes = Changes::default();
        self.dir_error = None;
        self.errors = diff.errors;
        let candidates: Vec<SpecId> = if let Some(valid) = &diff.valid {
            self.specs
                .keys()
                .filter(|id| !valid.contains(*id))
                .cloned()
                .collect()
        } else {
            diff.removed
                .into_iter()
                .filter(|id| !diff.changed.contains_key(id))
                .collect()
        };
        for id in candidates {
            // An invalid file keeps its previous version in force.
            if self.errors.contains_key(id.as_str()) {
                continue;
            }
            if let Some(old) = self.specs.remove(&id) {
                changes.removed.push((id, old));
            }
        }
        for (id, spec) in diff.changed {
            if self.specs.get(&id).map(|s| &**s) == Some(&spec) {
                continue;
            }
            let old = self.specs.insert(id.clone(), Arc::new(spec));
            changes.changed.push((id, old));
        }
        let invalid_new: BTreeMap<SpecId, String> = self
            .errors
            .iter()
            .filter_map(|(key, error)| {
                let id = SpecId::new(key.clone()).ok()?;
                (!self.specs.contains_key(&id)).then(|| (id, error.to_string()))
            })
            .collect();
        for id in self.invalid_new.keys().chain(invalid_new.keys()) {
            if self.invalid_new.get(id) != invalid_new.get(id) {
                changes.invalid.insert(id.clone());
            }
        }
        self.invalid_new = invalid_new;
        changes
    }

    /// The directory could not be read: everything stays in force.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) {
        self.dir_error = Some(format!(
            "{error}; keeping the {} specs in force, nothing is killed",
            self.specs.len()
        ));
    }
}
