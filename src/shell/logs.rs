//! `mesos-reconciler logs SPEC[#INSTANCE]`: a task's `stdout` (or `stderr`), read from its
//! sandbox on the agent the way the Mesos web UI reads it (`crate::sandbox`). The controller
//! says which task is meant (the instance's latest attempt, or an earlier one with
//! `--attempt -1`), which agent ran it and which master to ask; the output comes from the agent.
//!
//! The text goes to stdout untouched; what was read from where goes to stderr. `--follow` asks
//! the agent for more once a second (as the web UI's pailer does) until the task has ended and
//! all it wrote is printed, or Ctrl-C. Exit 0, 1 when the controller, the master or the agent
//! cannot be reached or no longer has the sandbox, 64 for a bad SPEC#INSTANCE.

use std::io::Write as _;
use std::time::Duration;

use crate::cli::{LogsArgs, exit};
use crate::sandbox::{self, Sandbox};
use crate::spec::SpecId;
use crate::status::{Snapshot, query};

/// How often `--follow` asks the agent for more.
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// How often `--follow` asks the controller whether the task still runs.
const FOLLOW_STATUS_EVERY: u32 = 3;

/// `mesos-reconciler logs`.
pub async fn logs(args: LogsArgs) -> i32 {
    let server = match super::resolve(&args.server) {
        Ok(server) => server,
        Err(code) => return code,
    };
    let (spec, instance) = match parse_target(&args.task) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };
    let filter = format!("spec={}", query::encode(spec.as_str()));
    let snapshot = match crate::status::fetch_status_matching(&server, &filter).await {
        Ok(snapshot) => snapshot,
        Err(e) => return super::report(&e),
    };
    let attempts = attempts(&snapshot, spec.as_str(), instance);
    let back = args.attempt.unsigned_abs() as usize;
    let Some(attempt) = attempts.get(back) else {
        eprintln!(
            "error: {}",
            no_attempt(&snapshot, spec.as_str(), instance, back, attempts.len())
        );
        return exit::FAILURE;
    };
    let Some(agent_id) = &attempt.agent_id else {
        eprintln!(
            "error: task {} of {spec}#{instance} has no agent yet ({}); nothing was written",
            attempt.task_id, attempt.state
        );
        return exit::FAILURE;
    };
    let Some(master) = &snapshot.master else {
        eprintln!(
            "error: the controller at {server} is not connected to a Mesos master, which is how the agent of task {} is found",
            attempt.task_id
        );
        return exit::FAILURE;
    };
    let result = read(
        &server,
        master,
        agent_id,
        snapshot.framework_id.as_deref(),
        attempt,
        &args,
        (spec.as_str(), instance),
    )
    .await;
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILURE
        }
    }
}

/// `web` or `team-a/web#2`.
fn parse_target(text: &str) -> Result<(SpecId, u32), String> {
    let (spec, instance) = match text.rsplit_once('#') {
        Some((spec, n)) => {
            let n = n.parse::<u32>().map_err(|_| {
                format!("`{text}`: the instance after `#` must be a number, as in `web#1`")
            })?;
            (spec, n)
        }
        None => (text, 0),
    };
    let id = SpecId::new(spec.trim_end_matches(".toml")).map_err(|e| {
        format!("`{text}`: {e}; expected SPEC or SPEC#INSTANCE, e.g. `team-a/web#1`")
    })?;
    Ok((id, instance))
}

/// One attempt of an instance, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    task_id: String,
    agent_id: Option<String>,
    state: String,
    live: bool,
}

/// The attempts of `spec#instance`, newest first: the history's (which lists a live attempt
/// too), and any live task the history does not list yet.
fn attempts(snapshot: &Snapshot, spec: &str, instance: u32) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    let live: Vec<_> = snapshot
        .tasks
        .iter()
        .filter(|t| t.spec == spec && t.instance == instance)
        .collect();
    let history: Vec<_> = snapshot
        .specs
        .iter()
        .filter(|s| s.id == spec)
        .flat_map(|s| &s.history)
        .filter(|a| a.instance == instance)
        .collect();
    for t in &live {
        if !history.iter().any(|a| a.task_id == t.task_id) {
            out.push(Attempt {
                task_id: t.task_id.clone(),
                agent_id: t.agent_id.clone(),
                state: t.state.clone(),
                live: true,
            });
        }
    }
    for a in history {
        let task = live.iter().find(|t| t.task_id == a.task_id);
        out.push(Attempt {
            task_id: a.task_id.clone(),
            agent_id: a
                .agent
                .clone()
                .or_else(|| task.and_then(|t| t.agent_id.clone())),
            state: task.map_or_else(|| a.state.clone(), |t| t.state.clone()),
            live: task.is_some() || a.ended_ms.is_none(),
        });
    }
    out
}

fn no_attempt(snapshot: &Snapshot, spec: &str, instance: u32, back: usize, known: usize) -> String {
    let exists = snapshot.specs.iter().any(|s| s.id == spec)
        || snapshot.tasks.iter().any(|t| t.spec == spec);
    if !exists {
        format!("the controller knows no spec `{spec}` (see `mesos-reconciler status`)")
    } else if known == 0 {
        format!(
            "{spec}#{instance} has not been launched yet (see `mesos-reconciler status {spec}`)"
        )
    } else {
        format!(
            "{spec}#{instance} has {known} attempt(s) on record; --attempt -{back} asks for one before the oldest (the controller keeps the last 10 per instance)"
        )
    }
}

async fn read(
    server: &str,
    master: &str,
    agent_id: &str,
    framework_id: Option<&str>,
    attempt: &Attempt,
    args: &LogsArgs,
    (spec, instance): (&str, u32),
) -> Result<(), sandbox::SandboxError> {
    let client = sandbox::client()?;
    let located =
        sandbox::locate(&client, master, agent_id, framework_id, &attempt.task_id).await?;
    let file = if args.stderr { "stderr" } else { "stdout" };
    eprintln!(
        "==> {spec}#{instance}: task {} ({}) on agent {agent_id} ({}): {}",
        attempt.task_id,
        attempt.state,
        located.agent_url,
        located.path(file)
    );
    let mut at = match args.tail {
        Some(lines) => {
            let (text, end) = located.tail(&client, file, lines).await?;
            print_now(&text);
            end
        }
        None => {
            let size = located.size(&client, file).await?;
            let (text, end) = located.read_from(&client, file, 0, size).await?;
            print_now(&text);
            end
        }
    };
    if !args.follow {
        return Ok(());
    }
    follow(
        &client,
        server,
        &located,
        file,
        &mut at,
        attempt,
        (spec, instance),
    )
    .await
}

/// Prints what the task writes until it has ended and everything is printed.
async fn follow(
    client: &reqwest::Client,
    server: &str,
    located: &Sandbox,
    file: &str,
    at: &mut u64,
    attempt: &Attempt,
    (spec, instance): (&str, u32),
) -> Result<(), sandbox::SandboxError> {
    let mut live = attempt.live;
    let mut round = 0u32;
    loop {
        let size = located.size(client, file).await?;
        if size > *at {
            let (text, end) = located.read_from(client, file, *at, size).await?;
            print_now(&text);
            *at = end;
            continue;
        }
        if !live {
            return Ok(());
        }
        round += 1;
        if round % FOLLOW_STATUS_EVERY == 0 {
            let filter = format!("spec={}", query::encode(spec));
            // A controller that cannot be reached for a moment does not end the follow.
            if let Ok(snapshot) = crate::status::fetch_status_matching(server, &filter).await {
                live = attempts(&snapshot, spec, instance)
                    .iter()
                    .any(|a| a.task_id == attempt.task_id && a.live);
            }
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

fn print_now(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AttemptRow, SpecStatus, TaskStatusRow};

    #[test]
    fn targets_name_a_spec_and_an_instance() {
        assert_eq!(
            parse_target("web").unwrap(),
            (SpecId::new("web").unwrap(), 0)
        );
        assert_eq!(
            parse_target("team-a/web#2").unwrap(),
            (SpecId::new("team-a/web").unwrap(), 2)
        );
        assert!(
            parse_target("web#x")
                .unwrap_err()
                .contains("must be a number")
        );
        assert!(parse_target("Web").unwrap_err().contains("SPEC#INSTANCE"));
    }

    #[test]
    fn attempts_are_newest_first_with_the_live_task() {
        let snapshot = Snapshot {
            specs: vec![SpecStatus {
                id: "web".to_owned(),
                history: vec![
                    AttemptRow {
                        instance: 0,
                        task_id: "web.0.b".to_owned(),
                        state: "TASK_RUNNING".to_owned(),
                        ..AttemptRow::default()
                    },
                    AttemptRow {
                        instance: 0,
                        task_id: "web.0.a".to_owned(),
                        ended_ms: Some(5),
                        state: "TASK_FAILED".to_owned(),
                        agent: Some("S0".to_owned()),
                        ..AttemptRow::default()
                    },
                    AttemptRow {
                        instance: 1,
                        task_id: "web.1.a".to_owned(),
                        ..AttemptRow::default()
                    },
                ],
                ..SpecStatus::default()
            }],
            tasks: vec![TaskStatusRow {
                task_id: "web.0.b".to_owned(),
                spec: "web".to_owned(),
                instance: 0,
                state: "TASK_RUNNING".to_owned(),
                agent_id: Some("S1".to_owned()),
                ..TaskStatusRow::default()
            }],
            ..Snapshot::default()
        };
        let got = attempts(&snapshot, "web", 0);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (
                got[0].task_id.as_str(),
                got[0].agent_id.as_deref(),
                got[0].live
            ),
            ("web.0.b", Some("S1"), true)
        );
        assert_eq!((got[1].task_id.as_str(), got[1].live), ("web.0.a", false));
        assert!(no_attempt(&snapshot, "api", 0, 0, 0).contains("no spec `api`"));
        assert!(no_attempt(&snapshot, "web", 0, 2, 2).contains("has 2 attempt(s)"));
    }
}
