//! Task sandboxes on Mesos agents, found and read the way the Mesos web UI finds and reads them:
//!
//! 1. the master's `GET /master/slaves` (or `/master/state` from a master without it) gives the
//!    agent's `pid` (`slave(1)@10.0.0.7:5051`) and `hostname`: the agent answers at
//!    `http://<hostname>:<port of the pid>`, its own endpoints under `/<pid name>/`;
//! 2. the agent's `GET /slave(1)/state` lists the executors of each framework (live under
//!    `executors`, ended under `completed_executors`) with their sandbox `directory`; a task's
//!    executor is the one with the task's id (the command executor) or the one listing it;
//! 3. the agent's `GET /files/read?path=<directory>/stdout&offset=N&length=M` answers
//!    `{"data": ..., "offset": N}`, at most 64 KiB at a time; `offset=-1` answers the size.
//!
//! Used by the `logs` command and by the status server's `/tasks/<id>/stdout` links. Talks to the
//! master and agents it is given only, never through a proxy from the environment.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// How long one request to a master or an agent may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most `/files/read` answers at once (upstream's 16 pages); asking for more is harmless.
pub const READ_CHUNK: u64 = 64 * 1024;

/// What went wrong finding or reading a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} answered something this version cannot read: {message}")]
    Decode { url: String, message: String },
    #[error(
        "the master at {master} does not know agent {agent_id} (removed, or not registered now)"
    )]
    NoSuchAgent { master: String, agent_id: String },
    #[error(
        "agent {agent_id} ({agent_url}) does not list task {task_id}: its sandbox is gone (garbage-collected, or the agent restarted)"
    )]
    NoSuchTask {
        agent_id: String,
        agent_url: String,
        task_id: String,
    },
    #[error(
        "agent {agent_id} reports no sandbox for task {task_id} (the dev cluster's virtual agents run no process and keep no output)"
    )]
    NoDirectory { agent_id: String, task_id: String },
}

/// Where one task's sandbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub agent_id: String,
    /// `http://host:port` of the agent (its `/files` endpoints are here).
    pub agent_url: String,
    /// The sandbox directory on the agent.
    pub directory: String,
}

impl Sandbox {
    /// The path of a file in the sandbox (`stdout`, `stderr`).
    pub fn path(&self, file: &str) -> String {
        format!("{}/{file}", self.directory.trim_end_matches('/'))
    }

    /// `GET /files/read` of `file` from `offset` (`-1`: only the size), at most `length` bytes.
    pub async fn read(
        &self,
        client: &reqwest::Client,
        file: &str,
        offset: i64,
        length: u64,
    ) -> Result<Chunk, SandboxError> {
        let url = format!(
            "{}/files/read?path={}&offset={offset}&length={length}",
            self.agent_url,
            percent_encoding::utf8_percent_encode(
                &self.path(file),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let body = get(client, &url).await?;
        serde_json::from_str(&body).map_err(|e| SandboxError::Decode {
            url,
            message: e.to_string(),
        })
    }

    /// The size of `file` now.
    pub async fn size(&self, client: &reqwest::Client, file: &str) -> Result<u64, SandboxError> {
        Ok(self.read(client, file, -1, 0).await?.offset)
    }

    /// The bytes of `file` from `from` to its current end (read in [`READ_CHUNK`] pieces), as
    /// text, and the offset after them.
    pub async fn read_from(
        &self,
        client: &reqwest::Client,
        file: &str,
        from: u64,
        to: u64,
    ) -> Result<(String, u64), SandboxError> {
        let mut text = String::new();
        let mut at = from;
        while at < to {
            let chunk = self
                .read(client, file, at as i64, READ_CHUNK.min(to - at))
                .await?;
            if chunk.data.is_empty() {
                break;
            }
            at += chunk.data.len() as u64;
            text.push_str(&chunk.data);
        }
        Ok((text, at))
    }

    /// The last `lines` lines of `file` (reading back from the end a chunk at a time), and the
    /// offset of its end.
    pub async fn tail(
        &self,
        client: &reqwest::Client,
        file: &str,
        lines: usize,
    ) -> Result<(String, u64), SandboxError> {
        let size = self.size(client, file).await?;
        let mut start = size;
        loop {
            start = start.saturating_sub(READ_CHUNK);
            let (text, end) = self.read_from(client, file, start, size).await?;
            // One more newline than lines: the text then starts at a line's beginning.
            let newlines = text.matches('\n').count();
            let complete = text.ends_with('\n');
            let needed = if complete { lines + 1 } else { lines };
            if start == 0 || newlines >= needed {
                return Ok((last_lines(&text, lines, start == 0), end));
            }
        }
    }
}

/// One answer of `/files/read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Chunk {
    pub data: String,
    pub offset: u64,
}

/// The last `n` lines of `text`; when `whole` is false the first line may be partial and never
/// counts.
fn last_lines(text: &str, n: usize, whole: bool) -> String {
    if n == 0 {
        return String::new();
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut cut = body.len();
    let mut found = 0;
    while found < n {
        match body[..cut].rfind('\n') {
            Some(at) => {
                cut = at;
                found += 1;
            }
            // Fewer lines than asked: all of them, but for a partial first line.
            None => {
                return match text.split_once('\n') {
                    Some((_, rest)) if !whole && !rest.is_empty() => rest.to_owned(),
                    _ => text.to_owned(),
                };
            }
        }
    }
    text[cut + 1..].to_owned()
}

/// An HTTP client for masters and agents.
pub fn client() -> Result<reqwest::Client, SandboxError> {
    crate::http::client_builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(SandboxError::Client)
}

/// Finds the sandbox of `task_id` (of `framework_id`, when known) on agent `agent_id`, asking the
/// master at `master_url` where the agent is.
pub async fn locate(
    client: &reqwest::Client,
    master_url: &str,
    agent_id: &str,
    framework_id: Option<&str>,
    task_id: &str,
) -> Result<Sandbox, SandboxError> {
    let master = master_url.trim_end_matches('/');
    let agent = find_agent(client, master, agent_id).await?;
    let url = format!("{}/{}/state", agent.url, agent.process);
    let body = get(client, &url).await?;
    let state: Value = serde_json::from_str(&body).map_err(|e| SandboxError::Decode {
        url: url.clone(),
        message: e.to_string(),
    })?;
    match directory_of(&state, framework_id, task_id) {
        Some(dir) if !dir.is_empty() => Ok(Sandbox {
            agent_id: agent_id.to_owned(),
            agent_url: agent.url,
            directory: dir,
        }),
        Some(_) => Err(SandboxError::NoDirectory {
            agent_id: agent_id.to_owned(),
            task_id: task_id.to_owned(),
        }),
        None => Err(SandboxError::NoSuchTask {
            agent_id: agent_id.to_owned(),
            agent_url: agent.url,
            task_id: task_id.to_owned(),
        }),
    }
}

/// An agent's address, as the web UI computes it from the master's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentAddress {
    /// `http://hostname:port`.
    url: String,
    /// `slave(1)`.
    process: String,
}

async fn find_agent(
    client: &reqwest::Client,
    master: &str,
    agent_id: &str,
) -> Result<AgentAddress, SandboxError> {
    let url = format!("{master}/master/slaves");
    let body = match get(client, &url).await {
        // A master without /master/slaves: the whole state has the same `slaves`.
        Err(SandboxError::Refused { status: 404, .. }) => {
            get(client, &format!("{master}/master/state")).await?
        }
        other => other?,
    };
    let doc: Value = serde_json::from_str(&body).map_err(|e| SandboxError::Decode {
        url: url.clone(),
        message: e.to_string(),
    })?;
    doc.get("slaves")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| s.get("id").and_then(Value::as_str) == Some(agent_id))
        .and_then(agent_address)
        .ok_or_else(|| SandboxError::NoSuchAgent {
            master: master.to_owned(),
            agent_id: agent_id.to_owned(),
        })
}

/// `//hostname:<port of pid>` and the pid's name, as the web UI's `agentURLPrefix`.
fn agent_address(slave: &Value) -> Option<AgentAddress> {
    let pid = slave.get("pid")?.as_str()?;
    let hostname = slave.get("hostname")?.as_str()?;
    let (process, at) = pid.split_once('@')?;
    let port = at.rsplit_once(':')?.1;
    let host = if hostname.contains(':') && !hostname.starts_with('[') {
        format!("[{hostname}]")
    } else {
        hostname.to_owned()
    };
    Some(AgentAddress {
        url: format!("http://{host}:{port}"),
        process: process.to_owned(),
    })
}

/// The sandbox directory of `task_id` in an agent's `/state`: the executor whose id is the task's
/// (a command executor), or that lists the task; live executors first, then completed ones.
fn directory_of(state: &Value, framework_id: Option<&str>, task_id: &str) -> Option<String> {
    let frameworks = ["frameworks", "completed_frameworks"]
        .iter()
        .filter_map(|key| state.get(*key)?.as_array())
        .flatten()
        .filter(|f| framework_id.is_none_or(|id| f.get("id").and_then(Value::as_str) == Some(id)));
    for framework in frameworks {
        for key in ["executors", "completed_executors"] {
            for executor in framework
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let lists = |k: &str| {
                    executor
                        .get(k)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|t| t.get("id").and_then(Value::as_str) == Some(task_id))
                };
                let is_it = executor.get("id").and_then(Value::as_str) == Some(task_id)
                    || lists("tasks")
                    || lists("queued_tasks")
                    || lists("completed_tasks");
                if is_it {
                    return Some(
                        executor
                            .get("directory")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    );
                }
            }
        }
    }
    None
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, SandboxError> {
    let request = |source| SandboxError::Request {
        url: url.to_owned(),
        source,
    };
    let response = client.get(url).send().await.map_err(request)?;
    let status = response.status();
    let body = response.text().await.map_err(request)?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(SandboxError::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
            body: body.trim_end().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_address_follows_the_web_ui() {
        let slave = json!({"id": "S0", "pid": "slave(1)@10.0.0.7:5051", "hostname": "agent-7"});
        assert_eq!(
            agent_address(&slave).unwrap(),
            AgentAddress {
                url: "http://agent-7:5051".to_owned(),
                process: "slave(1)".to_owned()
            }
        );
    }

    #[test]
    fn the_directory_is_the_executors_live_or_completed() {
        let state = json!({
            "frameworks": [{"id": "F1", "executors": [
                {"id": "web.0.a", "directory": "/var/lib/mesos/slaves/S0/frameworks/F1/executors/web.0.a/runs/c1", "tasks": [{"id": "web.0.a"}]}
            ], "completed_executors": [
                {"id": "custom-executor", "directory": "/sandbox/old", "completed_tasks": [{"id": "web.0.old"}]}
            ]}],
            "completed_frameworks": []
        });
        assert_eq!(
            directory_of(&state, Some("F1"), "web.0.a").unwrap(),
            "/var/lib/mesos/slaves/S0/frameworks/F1/executors/web.0.a/runs/c1"
        );
        assert_eq!(
            directory_of(&state, None, "web.0.old").unwrap(),
            "/sandbox/old"
        );
        assert_eq!(directory_of(&state, Some("F2"), "web.0.a"), None);
        assert_eq!(directory_of(&state, None, "nope"), None);
    }

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2, true), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2, true), "b\nc");
        assert_eq!(last_lines("a\nb\n", 5, true), "a\nb\n");
        assert_eq!(last_lines("partial\nb\n", 1, false), "b\n");
        assert_eq!(last_lines("x\n", 0, true), "");
    }
}
