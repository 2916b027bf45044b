//! Virtual tasks: what the [`labels`](super::labels) of a task script on a virtual agent, and the
//! terminal update each scripted outcome produces.
//!
//! A virtual task has no process and no sandbox; the agent's runtime keeps its whole lifecycle in
//! its task table (a scripted task costs one timer entry, an unscripted one nothing), so that tens of
//! thousands of them fit in a few megabytes.

use std::time::Duration;

use super::labels;
use super::updates::StatusFactory;
use crate::mesos::proto::v1 as pb;
use crate::spec::{DurationError, parse_duration};
use pb::task_status::{Reason, Source};

/// How a virtual task behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    /// Runs until killed.
    UntilKilled,
    /// Ends by itself after `after`.
    EndAfter { after: Duration, outcome: Outcome },
}

/// How a scripted virtual task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Finished,
    Failed,
    Error,
    Lost,
}

/// A task label that does not script anything sensible.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ScriptError {
    /// The duration is read as task specs write them, with the same messages.
    #[error("invalid label {label}='{value}': {source}")]
    BadDuration {
        label: &'static str,
        value: String,
        source: DurationError,
    },
    #[error("invalid label {label}='{value}': expected finished, failed, error or lost")]
    BadOutcome { label: &'static str, value: String },
}

/// Reads the script of a task from its labels.
pub(crate) fn script_of(task: &pb::TaskInfo) -> Result<Script, ScriptError> {
    let label = |key: &str| {
        task.labels
            .as_ref()
            .and_then(|l| l.labels.iter().find(|l| l.key == key))
            .map(|l| l.value.clone().unwrap_or_default())
    };
    let Some(run_for) = label(labels::RUN_FOR) else {
        return Ok(Script::UntilKilled);
    };
    let after = match parse_duration(run_for.trim()) {
        Ok(after) => after,
        Err(source) => {
            return Err(ScriptError::BadDuration {
                label: labels::RUN_FOR,
                value: run_for,
                source,
            });
        }
    };
    let outcome = match label(labels::OUTCOME) {
        None => Outcome::Finished,
        Some(value) => match value.trim() {
            "finished" | "" => Outcome::Finished,
            "failed" => Outcome::Failed,
            "error" => Outcome::Error,
            "lost" => Outcome::Lost,
            _ => {
                return Err(ScriptError::BadOutcome {
                    label: labels::OUTCOME,
                    value,
                });
            }
        },
    };
    Ok(Script::EndAfter { after, outcome })
}

/// The terminal update of a virtual task that ended by itself.
pub(crate) fn outcome_status(
    factory: &StatusFactory,
    task_id: &str,
    outcome: Outcome,
) -> pb::TaskStatus {
    match outcome {
        Outcome::Finished => factory.status(
            task_id,
            pb::TaskState::TaskFinished,
            Source::Executor,
            None,
            Some("Command exited with status 0".to_owned()),
        ),
        Outcome::Failed => factory.status(
            task_id,
            pb::TaskState::TaskFailed,
            Source::Executor,
            None,
            Some("Command exited with status 1".to_owned()),
        ),
        // TASK_ERROR and TASK_LOST are never sent by the command executor; a virtual task that
        // scripts them stands for the agent giving up on the task.
        Outcome::Error => factory.status(
            task_id,
            pb::TaskState::TaskError,
            Source::Agent,
            None,
            Some("Task ended with a scripted error".to_owned()),
        ),
        Outcome::Lost => factory.status(
            task_id,
            pb::TaskState::TaskLost,
            Source::Agent,
            Some(Reason::ExecutorTerminated),
            Some("Executor terminated".to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pairs: &[(&str, &str)]) -> pb::TaskInfo {
        pb::TaskInfo {
            labels: Some(pb::Labels::from_pairs(pairs.iter().copied())),
            ..Default::default()
        }
    }

    #[test]
    fn run_for_is_a_spec_duration() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500))),
            ("2s", Some(Duration::from_secs(2))),
            ("1s500ms", Some(Duration::from_millis(1500))),
            ("1m", Some(Duration::from_secs(60))),
            ("2h", Some(Duration::from_secs(7200))),
            (" 3s ", Some(Duration::from_secs(3))),
            ("1.5s", None),
            ("3", None),
            ("s", None),
            ("-1s", None),
            ("1d", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = match script_of(&task(&[(labels::RUN_FOR, text)])) {
                Ok(Script::EndAfter { after, .. }) => Some(after),
                Ok(Script::UntilKilled) => panic!("{text:?}: no script"),
                Err(_) => None,
            };
            assert_eq!(got, want, "{text:?}");
        }
        let err = script_of(&task(&[(labels::RUN_FOR, "10sec")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid label devcluster.run_for='10sec': unknown unit `sec` in duration \"10sec\"; \
             units are ms, s, m and h"
        );
    }

    #[test]
    fn scripts() {
        assert_eq!(script_of(&task(&[])), Ok(Script::UntilKilled));
        assert_eq!(
            script_of(&task(&[(labels::OUTCOME, "failed")])),
            Ok(Script::UntilKilled)
        );
        assert_eq!(
            script_of(&task(&[(labels::RUN_FOR, "2s")])),
            Ok(Script::EndAfter {
                after: Duration::from_secs(2),
                outcome: Outcome::Finished
            })
        );
        assert_eq!(
            script_of(&task(&[(labels::RUN_FOR, "1s"), (labels::OUTCOME, "lost")])),
            Ok(Script::EndAfter {
                after: Duration::from_secs(1),
                outcome: Outcome::Lost
            })
        );
        assert!(matches!(
            script_of(&task(&[(labels::RUN_FOR, "soon")])),
            Err(ScriptError::BadDuration { .. })
        ));
        assert!(matches!(
            script_of(&task(&[
                (labels::RUN_FOR, "1s"),
                (labels::OUTCOME, "exploded")
            ])),
            Err(ScriptError::BadOutcome { .. })
        ));
    }

    #[test]
    fn outcomes_map_to_states() {
        let f = StatusFactory::new("A-S0", "127.0.0.1");
        let state = |o| outcome_status(&f, "t", o).state;
        assert_eq!(state(Outcome::Finished), pb::TaskState::TaskFinished as i32);
        assert_eq!(state(Outcome::Failed), pb::TaskState::TaskFailed as i32);
        assert_eq!(state(Outcome::Error), pb::TaskState::TaskError as i32);
        assert_eq!(state(Outcome::Lost), pb::TaskState::TaskLost as i32);
    }
}
