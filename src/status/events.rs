//! `GET /api/v1/events`: server-sent events (`text/event-stream`) for the page and for scripts.
//!
//! Two kinds of event, both JSON in `data`:
//! - `task`: one task transition, as the controller records it (a launch as `TASK_STAGING`,
//!   then every change of state or health from Mesos's status updates), in order. The loop
//!   sends them on a bounded `tokio::sync::broadcast` channel and never waits for a reader: a
//!   client too slow to keep up gets a `lagged` event saying how many it missed, and should read
//!   `GET /api/v1/status` again.
//! - `snapshot`: the controller published a new status snapshot (`seq` counts them for this
//!   connection, `passes` and `ready` are the snapshot's). The page reloads its content on it.
//!
//! `?events=task` or `?events=snapshot` asks for one kind only. A comment is sent every 15 s so
//! that proxies keep the connection open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::{ServerState, Snapshot};

/// The path of the stream.
pub const EVENTS_PATH: &str = "/api/v1/events";

/// Task transitions buffered for each reader before it counts as lagging.
pub const EVENTS_CAPACITY: usize = 4096;

/// One task transition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskEvent {
    pub task_id: String,
    pub spec: String,
    pub instance: u32,
    /// The generation the task runs (short hash).
    pub generation: String,
    /// The Mesos state now (`TASK_RUNNING`).
    pub state: String,
    /// The state before, none for a launch.
    pub previous: Option<String>,
    pub healthy: Option<bool>,
    pub agent_id: Option<String>,
    pub hostname: Option<String>,
    /// Reason and message of the status update, as Mesos gave them.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// When the controller recorded it (ms since the Unix epoch).
    pub at_ms: u64,
}

/// A new channel for task transitions: the controller keeps the sender, the status server
/// subscribes one receiver per client.
pub fn channel() -> broadcast::Sender<TaskEvent> {
    broadcast::channel(EVENTS_CAPACITY).0
}

/// Which kinds a client asked for.
#[derive(Debug, Clone, Copy)]
struct Kinds {
    task: bool,
    snapshot: bool,
}

fn kinds(raw: Option<&str>) -> Result<Kinds, String> {
    let mut asked: Option<Kinds> = None;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "events" {
            return Err(format!(
                "unknown parameter `{name}`; the only parameter is `events` (task, snapshot)"
            ));
        }
        let k = asked.get_or_insert(Kinds {
            task: false,
            snapshot: false,
        });
        for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "task" => k.task = true,
                "snapshot" => k.snapshot = true,
                other => {
                    return Err(format!(
                        "unknown event kind `{other}`; the kinds are task and snapshot"
                    ));
                }
            }
        }
    }
    Ok(match asked {
        Some(k) if k.task || k.snapshot => k,
        _ => Kinds {
            task: true,
            snapshot: true,
        },
    })
}

#[derive(Serialize)]
struct SnapshotEvent {
    seq: u64,
    ready: bool,
    connected: bool,
    passes: u64,
}

/// What the stream of one client holds between events.
struct Reader {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    tasks: Option<broadcast::Receiver<TaskEvent>>,
    kinds: Kinds,
    seq: u64,
}

pub(super) async fn events(State(state): State<ServerState>, RawQuery(raw): RawQuery) -> Response {
    let kinds = match kinds(raw.as_deref()) {
        Ok(kinds) => kinds,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    let mut snapshots = state.snapshots.clone();
    // The first event describes the snapshot in force, so a client knows where it starts.
    snapshots.mark_changed();
    let reader = Reader {
        snapshots,
        tasks: kinds.task.then(|| state.events.subscribe()),
        kinds,
        seq: 0,
    };
    let stream = futures_util::stream::unfold(reader, |mut reader| async move {
        let event = next_event(&mut reader).await?;
        Some((Ok::<Event, Infallible>(event), reader))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The next event for a reader, or None when the controller is gone.
async fn next_event(reader: &mut Reader) -> Option<Event> {
    loop {
        let want_snapshots = reader.kinds.snapshot;
        tokio::select! {
            changed = reader.snapshots.changed(), if want_snapshots => {
                if changed.is_err() {
                    return None;
                }
                let snapshot = Arc::clone(&reader.snapshots.borrow_and_update());
                reader.seq += 1;
                let data = SnapshotEvent {
                    seq: reader.seq,
                    ready: snapshot.ready,
                    connected: snapshot.connected,
                    passes: snapshot.counters.passes,
                };
                return Some(json_event("snapshot", &data));
            }
            received = recv(&mut reader.tasks) => match received {
                Ok(task) => return Some(json_event("task", &task)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Some(json_event("lagged", &serde_json::json!({ "missed": missed })));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    reader.tasks = None;
                    if !want_snapshots {
                        return None;
                    }
                }
            },
        }
    }
}

async fn recv(
    tasks: &mut Option<broadcast::Receiver<TaskEvent>>,
) -> Result<TaskEvent, broadcast::error::RecvError> {
    match tasks {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn json_event(kind: &str, data: &impl Serialize) -> Event {
    // These types always encode; an empty object would still be a well-formed event.
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Event::default().event(kind).data(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_default_to_both_and_bad_words_are_refused() {
        let both = kinds(None).unwrap();
        assert!(both.task && both.snapshot);
        let task = kinds(Some("events=task")).unwrap();
        assert!(task.task && !task.snapshot);
        assert!(
            kinds(Some("events=tasks"))
                .unwrap_err()
                .contains("task and snapshot")
        );
        assert!(
            kinds(Some("limit=3"))
                .unwrap_err()
                .contains("unknown parameter")
        );
    }
}
