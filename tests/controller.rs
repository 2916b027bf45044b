//! End-to-end tests of the controller, run in-process: a dev cluster and `controller::run` share
//! the test's tokio runtime, the test writes spec files and watches the master's `/master/state`,
//! the TaskInfos the master received and the controller's status snapshot.
//!
//! Each submodule proves one group of behaviours of `shared/task-spec.md`; the helpers are in
//! `support/e2e.rs`. Regression tests for controller bugs are named after the bug.

#[path = "support/e2e.rs"]
mod e2e;

#[path = "controller/edits.rs"]
mod edits;
#[path = "controller/fields.rs"]
mod fields;
#[path = "controller/guard.rs"]
mod guard;
#[path = "controller/lifecycle.rs"]
mod lifecycle;
#[path = "controller/placement.rs"]
mod placement;
#[path = "controller/regressions.rs"]
mod regressions;
#[path = "controller/restarts.rs"]
mod restarts;
#[path = "controller/session.rs"]
mod session;
