//! What the page links to besides itself: a task's `stdout` and `stderr`
//! (`GET /tasks/<task id>/stdout`), read from its agent the way `logs` reads them
//! ([`crate::sandbox`]), and a spec's file as the controller reads it (`GET /specs/<spec id>`).
//!
//! Both are plain text, so they work in any browser and with `curl`. The task's agent and the
//! master come from the snapshot; the requests to them run in the server's handler, never in the
//! controller loop.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ServerState, Snapshot};
use crate::spec::SpecId;

/// How much of a file the page's link shows: its end.
pub const SHOWN_BYTES: u64 = 256 * 1024;

/// `GET /tasks/{task_id}/{file}`.
pub(super) async fn task_file(
    State(state): State<ServerState>,
    Path((task_id, file)): Path<(String, String)>,
) -> Response {
    if file != "stdout" && file != "stderr" {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no such file `{file}`: a task has `stdout` and `stderr`\n"),
        );
    }
    // A partial snapshot has the tasks of the problems, whose logs are the ones most looked at;
    // for another task, the controller is asked for every row.
    let (mut snapshot, _) = state.read();
    let mut agent = agent_of(&snapshot, &task_id);
    if agent.is_none() && snapshot.partial.is_some() {
        let Some((cached, _)) = state.read_rows().await else {
            return super::rows_unavailable();
        };
        snapshot = Arc::clone(&cached.snapshot);
        agent = agent_of(&snapshot, &task_id);
    }
    let Some(agent_id) = agent else {
        return plain(
            StatusCode::NOT_FOUND,
            format!(
                "task {task_id} is not in the controller's snapshot (it keeps live tasks and the last attempts of each instance), or has no agent yet\n"
            ),
        );
    };
    let Some(master) = snapshot.master.clone() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller is not connected to a Mesos master, which is how agents are found\n"
                .to_owned(),
        );
    };
    match read_tail(
        &master,
        &agent_id,
        snapshot.framework_id.as_deref(),
        &task_id,
        &file,
    )
    .await
    {
        Ok(text) => plain(StatusCode::OK, text),
        Err(e) => plain(StatusCode::BAD_GATEWAY, format!("{e}\n")),
    }
}

async fn read_tail(
    master: &str,
    agent_id: &str,
    framework_id: Option<&str>,
    task_id: &str,
    file: &str,
) -> Result<String, crate::sandbox::SandboxError> {
    let client = crate::sandbox::client()?;
    let sandbox = crate::sandbox::locate(&client, master, agent_id, framework_id, task_id).await?;
    let size = sandbox.size(&client, file).await?;
    let from = size.saturating_sub(SHOWN_BYTES);
    let (text, _) = sandbox.read_from(&client, file, from, size).await?;
    if from == 0 {
        return Ok(text);
    }
    Ok(format!(
        "[the last {} KiB of {size} bytes of {}; `mesos-reconciler logs` reads all of it]\n{}",
        SHOWN_BYTES / 1024,
        sandbox.path(file),
        text.split_once('\n')
            .map_or(text.as_str(), |(_, rest)| rest)
    ))
}

/// The agent a task ran on: a live task's, else its attempt's in the history.
fn agent_of(snapshot: &Arc<Snapshot>, task_id: &str) -> Option<String> {
    if let Some(task) = snapshot.tasks.iter().find(|t| t.task_id == task_id) {
        return task.agent_id.clone();
    }
    snapshot
        .specs
        .iter()
        .flat_map(|s| &s.history)
        .find(|a| a.task_id == task_id)
        .and_then(|a| a.agent.clone())
}

/// `GET /specs/{*id}`: the spec file of `id` in the desired directory, as it is on disk now.
pub(super) async fn spec_file(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = SpecId::new(id.trim_end_matches(".toml")) else {
        return plain(
            StatusCode::NOT_FOUND,
            "not a spec id (`team-a/web`)\n".to_owned(),
        );
    };
    let (snapshot, _) = state.read();
    let path = std::path::Path::new(&snapshot.desired_dir).join(format!("{}.toml", id.as_str()));
    let limit = crate::spec::MAX_SPEC_FILE_BYTES;
    let root = std::path::PathBuf::from(&snapshot.desired_dir);
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        // As the controller reads spec files: never through a link out of the directory.
        let inside = match (std::fs::canonicalize(&root), std::fs::canonicalize(&path)) {
            (Ok(root), Ok(target)) => target.starts_with(root),
            _ => false,
        };
        if !inside {
            return Err(format!(
                "cannot read {}: missing, or a link out of the desired directory\n",
                path.display()
            ));
        }
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(limit).read_to_string(&mut text))
            .map_err(|e| format!("cannot read {}: {e}\n", path.display()))?;
        // Secret `env` values are not shown (`spec::redact`).
        Ok(crate::spec::redact::spec_text_for_display(&text))
    })
    .await;
    match read {
        Ok(Ok(text)) => plain(StatusCode::OK, text),
        Ok(Err(message)) => plain(StatusCode::NOT_FOUND, message),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "read failed\n".to_owned(),
        ),
    }
}

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}
