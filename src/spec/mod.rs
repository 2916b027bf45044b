//! Task specs: the user contract of `shared/task-spec.md` turned into checked, normalised data.
//!
//! - [`parse`] reads one file's text into a [`Spec`] or a [`SpecError`] that names the file, line,
//!   column and dotted field of the problem. It does no IO: callers hand it the bytes.
//! - [`Spec::content_hash`] says whether an edit is a new generation (it ignores `instances`).
//! - [`load_dir`] is the only function here that touches the filesystem: it reads a whole desired
//!   directory into a [`DirSnapshot`], and fails as a whole rather than return a partial or empty set.
//! - [`pattern::compile`] builds the whole-value matcher of a `like` / `unlike` constraint
//!   (the `regex` crate, size-bounded); the validator rejects what it cannot compile.

pub mod dir;
pub mod duration;
pub mod error;
pub mod hash;
pub mod model;
pub mod pattern;
pub mod policy;
mod raw;
pub mod redact;
pub mod validate;
mod validate_sections;

pub use dir::{
    DirError, DirSnapshot, MAX_SPEC_FILE_BYTES, is_ignored_name, load_dir, load_dir_with,
};
pub use duration::{DurationError, format_duration, millis, parse_duration};
pub use error::{SpecError, line_column};
pub use hash::{ParseHashError, SpecHash};
pub use model::{
    Backoff, Command, Constraint, ConstraintOp, Container, ContainerKind, HealthCheck, HealthKind,
    HttpScheme, IdError, RestartPolicy, Spec, SpecId, UpdatePolicy, UpdateStrategy, Uri,
};
pub use policy::{Limits, MAX_SPEC_ID_LEN, SpecPolicy};
pub use validate::{parse, parse_with};

#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod validate_tests;
