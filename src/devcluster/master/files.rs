//! What a Mesos agent serves about its sandboxes, served on the master's port as `mesos-local`
//! does (its agents share the master's libprocess, hence the master's host and port, and are told
//! apart by their pid `slave(N)@host:port`):
//!
//! - `GET /master/slaves` (`operator/slaves.rs`) lists the agents and their pids;
//! - `GET /slave(N)/state`: agent N's frameworks, executors (a command executor per task, with the
//!   task's id) and their sandbox `directory`, live ones under `executors`, ended ones under
//!   `completed_executors`;
//! - `GET /files/read?path=&offset=&length=`, `/files/browse?path=`, `/files/download?path=`:
//!   upstream's `FilesProcess` (`src/files/files.cpp`): `{"data": ..., "offset": ...}` with
//!   `offset=-1` answering the file's size, reads capped at 16 pages (64 KiB), 400 for a missing
//!   path, a bad or negative offset or length, or a directory, 404 for a path outside every
//!   sandbox.
//!
//! Where the dev cluster differs: only paths under the cluster's work directory are attached (no
//! agent log files); `uid`/`gid` of a listing are numeric; file bytes that are not UTF-8 read as
//! `?` (one byte each, so offsets stay byte offsets) and a read never ends inside a UTF-8
//! character. A virtual agent's tasks have no process and no sandbox: their executors list an
//! empty `directory`.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::http::App;
use super::state::{Master, Msg};
use crate::devcluster::agent::{AgentCommand, AgentHandle, SandboxReport};

/// The most one `/files/read` returns: upstream's 16 pages.
pub(super) const MAX_READ: u64 = 16 * 4096;

/// An agent as `/slave(N)/state` needs it.
#[derive(Debug)]
pub(super) struct AgentLookup {
    pub id: String,
    pub hostname: String,
    pub pid: String,
    pub handle: Option<AgentHandle>,
}

impl Master {
    /// The agent whose pid is `slave(<n>)@...`.
    pub(super) fn agent_by_pid(&self, n: u64) -> Option<AgentLookup> {
        self.agents
            .values()
            .find(|a| a.pid == n)
            .map(|a| AgentLookup {
                id: a.id.clone(),
                hostname: a.hostname.clone(),
                pid: format!("slave({})@127.0.0.1:{}", a.pid, self.settings.port),
                handle: a.handle.clone(),
            })
    }
}

/// `GET /slave(N)/state` (and `/slave(N)/state.json`).
pub(super) async fn agent_state(
    State(app): State<App>,
    UrlPath((process, endpoint)): UrlPath<(String, String)>,
) -> Response {
    let number = process
        .strip_prefix("slave(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|n| n.parse::<u64>().ok());
    let (Some(n), "state" | "state.json") = (number, endpoint.as_str()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (reply, answer) = oneshot::channel();
    if app.tx.send(Msg::AgentByPid { n, reply }).is_err() {
        return super::http::stopped();
    }
    let Ok(Some(agent)) = answer.await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(handle) = &agent.handle else {
        // A killed agent's process is gone: nothing answers at its address.
        return (StatusCode::SERVICE_UNAVAILABLE, "agent is not running\n").into_response();
    };
    let (reply, answer) = oneshot::channel();
    handle.send(AgentCommand::Sandboxes { reply });
    let Ok(sandboxes) = answer.await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "agent is not running\n").into_response();
    };
    axum::Json(agent_state_json(&agent, &sandboxes, &app.settings.work_dir)).into_response()
}

fn agent_state_json(agent: &AgentLookup, sandboxes: &[SandboxReport], work_dir: &Path) -> Value {
    use std::collections::BTreeMap;
    #[derive(Default)]
    struct Framework {
        executors: Vec<Value>,
        completed: Vec<Value>,
    }
    let mut frameworks: BTreeMap<&str, Framework> = BTreeMap::new();
    for s in sandboxes {
        let state = s.state.map_or("TASK_STAGING", super::state::state_name);
        let task = json!({
            "id": s.task_id,
            "framework_id": s.framework_id,
            "executor_id": "",
            "slave_id": agent.id,
            "state": state,
        });
        let directory = s
            .directory
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let (tasks, completed_tasks) = if s.completed {
            (vec![], vec![task])
        } else {
            (vec![task], vec![])
        };
        let executor = json!({
            "id": s.task_id,
            "name": format!("Command Executor (Task: {})", s.task_id),
            "source": s.task_id,
            "directory": directory,
            "tasks": tasks,
            "queued_tasks": [],
            "completed_tasks": completed_tasks,
        });
        let framework = frameworks.entry(s.framework_id.as_str()).or_default();
        if s.completed {
            framework.completed.push(executor);
        } else {
            framework.executors.push(executor);
        }
    }
    let (mut live, mut gone) = (Vec::new(), Vec::new());
    for (id, f) in frameworks {
        let has_live = !f.executors.is_empty();
        let doc = json!({
            "id": id,
            "executors": f.executors,
            "completed_executors": f.completed,
        });
        if has_live {
            live.push(doc);
        } else {
            gone.push(doc);
        }
    }
    json!({
        "version": super::state::MESOS_VERSION,
        "id": agent.id,
        "pid": agent.pid,
        "hostname": agent.hostname,
        "flags": { "work_dir": work_dir.display().to_string() },
        "frameworks": live,
        "completed_frameworks": gone,
    })
}

/// The query of the `/files` endpoints, as text (upstream parses the numbers itself).
#[derive(Debug, Default)]
pub(super) struct FilesQuery {
    path: Option<String>,
    offset: Option<String>,
    length: Option<String>,
}

impl FilesQuery {
    /// Decodes a raw query as libprocess does (`%XX`, and `+` for a space); the last of a
    /// repeated key wins, unknown keys (`jsonp`) are ignored.
    fn parse(raw: Option<&str>) -> FilesQuery {
        let mut q = FilesQuery::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value.replace('+', " ");
            let value = percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned();
            match key {
                "path" => q.path = Some(value),
                "offset" => q.offset = Some(value),
                "length" => q.length = Some(value),
                _ => {}
            }
        }
        q
    }
}

/// `GET /files/read`.
pub(super) async fn read(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    let q = FilesQuery::parse(raw.as_deref());
    let root = app.settings.work_dir.clone();
    tokio::task::spawn_blocking(move || read_blocking(&root, q))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn read_blocking(root: &Path, q: FilesQuery) -> Response {
    let Some(path) = q.path.filter(|p| !p.is_empty()) else {
        return bad("Expecting 'path=value' in query.\n");
    };
    let mut offset: i64 = -1;
    if let Some(text) = &q.offset {
        match text.parse::<i64>() {
            Ok(n) if n < -1 => return bad(&format!("Negative offset provided: {n}.\n")),
            Ok(n) => offset = n,
            Err(e) => return bad(&format!("Failed to parse offset: {e}.\n")),
        }
    }
    let mut length: Option<u64> = None;
    if let Some(text) = &q.length {
        match text.parse::<i64>() {
            Ok(n) if n < -1 => return bad(&format!("Negative length provided: {n}.\n")),
            Ok(-1) => {}
            Ok(n) => length = Some(n as u64),
            Err(e) => return bad(&format!("Failed to parse length: {e}.\n")),
        }
    }
    let Some(resolved) = resolve(root, &path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if resolved.is_dir() {
        return bad("Cannot read a directory.\n");
    }
    let mut file = match std::fs::File::open(&resolved) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Failed to open file at '{}': {e}.\n", resolved.display()),
            )
                .into_response();
        }
    };
    let size = file.metadata().map_or(0, |m| m.len());
    // `offset=-1` asks for the size (the web UI's pailer starts so).
    let (start, length) = if offset == -1 {
        (0, Some(0))
    } else {
        (offset as u64, length)
    };
    let shown_offset = if offset == -1 { size } else { start };
    if start >= size {
        return files_json("", shown_offset);
    }
    let length = length.unwrap_or(size - start).min(MAX_READ);
    if length == 0 {
        return files_json("", shown_offset);
    }
    let mut bytes = Vec::with_capacity(length as usize);
    let read = file
        .seek(SeekFrom::Start(start))
        .and_then(|_| (&mut file).take(length).read_to_end(&mut bytes));
    if let Err(e) = read {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file at '{}': {e}.\n", resolved.display()),
        )
            .into_response();
    }
    files_json(&text_of(&bytes), shown_offset)
}

/// `GET /files/browse`.
pub(super) async fn browse(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    let q = FilesQuery::parse(raw.as_deref());
    let root = app.settings.work_dir.clone();
    tokio::task::spawn_blocking(move || {
        let Some(path) = q.path.filter(|p| !p.is_empty()) else {
            return bad("Expecting 'path=value' in query.\n");
        };
        let Some(resolved) = resolve(&root, &path) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let mut names: Vec<_> = std::fs::read_dir(&resolved)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let listing: Vec<Value> = names
            .iter()
            .filter_map(|name| {
                let meta = std::fs::metadata(resolved.join(name)).ok()?;
                let shown = format!("{}/{}", path.trim_end_matches('/'), name.to_string_lossy());
                Some(json!({
                    "path": shown,
                    "nlink": meta.nlink(),
                    "size": meta.len(),
                    "mtime": meta.mtime(),
                    "mode": mode_string(&meta),
                    "uid": meta.uid().to_string(),
                    "gid": meta.gid().to_string(),
                }))
            })
            .collect();
        axum::Json(listing).into_response()
    })
    .await
    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `GET /files/download`.
pub(super) async fn download(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    let q = FilesQuery::parse(raw.as_deref());
    let Some(path) = q.path.filter(|p| !p.is_empty()) else {
        return bad("Expecting 'path=value' in query.\n");
    };
    let Some(resolved) = resolve(&app.settings.work_dir, &path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if resolved.is_dir() {
        return bad("Cannot download a directory.\n");
    }
    match tokio::fs::read(&resolved).await {
        Ok(bytes) => {
            let name = resolved
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename={name}"),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn bad(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_owned()).into_response()
}

fn files_json(data: &str, offset: u64) -> Response {
    axum::Json(json!({ "data": data, "offset": offset })).into_response()
}

/// The canonical path of `path` if it exists inside `root` (the sandboxes' work directory),
/// which is all the dev cluster attaches; None otherwise (404, as for a path upstream has not
/// attached).
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    if !path.is_absolute() {
        return None;
    }
    let root = std::fs::canonicalize(root).ok()?;
    let resolved = std::fs::canonicalize(path).ok()?;
    resolved.starts_with(&root).then_some(resolved)
}

/// Bytes as JSON text, one byte per byte: a UTF-8 character split at the end of the read is left
/// for the next read, and a byte that is not UTF-8 reads as `?`.
fn text_of(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match e.error_len() {
                    // Incomplete at the end: the next read starts at that character.
                    None => return out,
                    Some(n) => {
                        out.extend(std::iter::repeat_n('?', n));
                        rest = &after[n..];
                    }
                }
            }
        }
    }
}

/// `-rw-r--r--`, as upstream's listing writes a file's mode.
fn mode_string(meta: &std::fs::Metadata) -> String {
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mode = meta.mode();
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_byte_offsets() {
        assert_eq!(text_of(b"plain\n"), "plain\n");
        // An invalid byte is one `?`.
        assert_eq!(text_of(b"a\xffb"), "a?b");
        // "é" is two bytes; cut after the first, the read ends before it.
        assert_eq!(text_of(b"caf\xc3"), "caf");
        assert_eq!(text_of("café".as_bytes()), "café");
    }
}
