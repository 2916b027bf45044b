//! The Mesos session: one task that holds the subscription stream and pumps its events, converted
//! to the crate's model, into the controller loop.
//!
//! With `--master zk://...` the session also watches the detection: a new leading master ends
//! the stream as a lost connection would, so the loop subscribes again, to the new leader.
//!
//! The session decides nothing. The loop tells it to subscribe (with the framework id it has
//! persisted, or none), and it reports what happened: subscribed, events, and how the stream ended.
//! The answers of the master's read-only endpoints, asked in the background by `discover.rs` and
//! `adopt.rs`, come to the loop the same way.
//! Keeping the decision in the loop means the framework id on every SUBSCRIBE is always the one
//! that was flushed to the store (durability rule 1), and a removed framework's id is cleared
//! before a new subscription is attempted (rule 6).

use tokio::sync::mpsc;

use crate::mesos::client::{ClientError, MasterProblem, SchedulerClient};
use crate::mesos::convert;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{call, event};
use crate::model::{MasterFramework, MasterTask, Offer, TaskUpdate};
use crate::zk::detector::Detected;

/// What the session reports to the loop.
#[derive(Debug)]
pub enum SessionEvent {
    Subscribed {
        framework_id: String,
        master: String,
    },
    Offers(Vec<Offer>),
    Rescind(String),
    Update(TaskUpdate),
    /// The master sent ERROR: the subscription is over. `removed` is true when the message says
    /// the framework has been removed (its id is dead).
    Error {
        message: String,
        removed: bool,
    },
    /// The stream ended without an ERROR event (connection dead, master gone, refused subscribe).
    Disconnected(String),
    /// An attempt to subscribe failed and the client goes on trying: the status snapshot shows
    /// the latest such failure (the client has logged it).
    Unreachable(MasterProblem),
    /// The frameworks the master lists (`/master/frameworks`), asked for when no framework id is
    /// stored (`discover.rs`).
    Frameworks(Result<Vec<MasterFramework>, String>),
    /// The tasks of framework `framework_id` as the master lists them, labels included
    /// (`adopt.rs`).
    MasterTasks {
        framework_id: String,
        result: Result<Vec<MasterTask>, String>,
    },
}

/// Starts one subscription attempt and pumps its events until it ends. Runs as its own task; the
/// loop starts a new one after deciding on a backoff.
pub fn spawn_subscription(
    client: SchedulerClient,
    framework: pb::FrameworkInfo,
    tx: mpsc::Sender<SessionEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let outcome = pump(&client, framework, &tx).await;
        if let Err(reason) = outcome {
            let _ = tx.send(SessionEvent::Disconnected(reason)).await;
        }
    })
}

/// Returns `Err(reason)` when the stream ended without an ERROR event.
async fn pump(
    client: &SchedulerClient,
    framework: pb::FrameworkInfo,
    tx: &mpsc::Sender<SessionEvent>,
) -> Result<(), String> {
    let subscribe = call::Subscribe {
        framework_info: framework,
        ..Default::default()
    };
    let subscribed = reporting_problems(client, tx, client.subscribe(subscribe)).await;
    let mut sub = subscribed.map_err(|e| describe(&e))?;
    let master = sub.master.to_string();
    let mut detection = client.leader_watch().map(|w| w.rx);
    loop {
        let item = tokio::select! {
            item = sub.events.next() => item,
            new = leader_moved(&mut detection, &sub.master) => {
                // Dropping the stream closes its connection; the loop forgets the offers and
                // subscribes to the new leader, then reconciles.
                return Err(format!(
                    "ZooKeeper names a new leading master, {new}: leaving {master}"
                ));
            }
        };
        let Some(item) = item else { break };
        let ev = item.map_err(|e| describe(&e))?;
        let out = match event::Type::try_from(ev.r#type.unwrap_or_default()) {
            Ok(event::Type::Subscribed) => ev.subscribed.map(|s| SessionEvent::Subscribed {
                framework_id: s.framework_id.value,
                master: master.clone(),
            }),
            Ok(event::Type::Offers) => ev.offers.map(|o| {
                SessionEvent::Offers(o.offers.iter().map(convert::offer_from_wire).collect())
            }),
            Ok(event::Type::Rescind) => ev.rescind.map(|r| SessionEvent::Rescind(r.offer_id.value)),
            Ok(event::Type::Update) => {
                match ev.update.map(|u| convert::update_from_wire(&u.status)) {
                    Some(Ok(update)) => Some(SessionEvent::Update(update)),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "ignoring a status update the controller cannot read");
                        None
                    }
                    None => None,
                }
            }
            Ok(event::Type::Error) => {
                let message = ev.error.map(|e| e.message).unwrap_or_default();
                let removed = message.contains("removed");
                let _ = tx.send(SessionEvent::Error { message, removed }).await;
                return Ok(());
            }
            Ok(event::Type::Failure) => {
                if let Some(f) = ev.failure {
                    tracing::info!(agent = ?f.agent_id.map(|a| a.value), executor = ?f.executor_id.map(|e| e.value), status = ?f.status, "mesos reported a failure");
                }
                None
            }
            // Heartbeats only feed the client's watchdog; inverse offers, operation updates and
            // executor messages concern features the controller does not use.
            _ => None,
        };
        if let Some(out) = out {
            if tx.send(out).await.is_err() {
                // The loop is gone (shutdown): dropping the stream closes the connection.
                return Ok(());
            }
        }
    }
    Err(format!("the event stream from {master} ended"))
}

/// With `--master zk://...`: waits until ZooKeeper names a leading master other than `master`
/// (the one the stream is from), and returns it. ZooKeeper going silent or naming no leader does
/// not end a stream that works: only a different leader does.
async fn leader_moved(
    detection: &mut Option<tokio::sync::watch::Receiver<Detected>>,
    master: &reqwest::Url,
) -> reqwest::Url {
    let Some(rx) = detection else {
        return std::future::pending().await;
    };
    rx.mark_unchanged();
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Detected::Leader { url, .. } = &*rx.borrow_and_update() {
            if url != master {
                return url.clone();
            }
        }
    }
}

/// Runs `work`, a request that retries inside the client for a while, passing each failure the
/// client notes on to the loop at once, so the status page does not wait for it to give up.
pub(super) async fn reporting_problems<T>(
    client: &SchedulerClient,
    tx: &mpsc::Sender<SessionEvent>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut problems = client.watch_problems();
    problems.mark_unchanged();
    tokio::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            Ok(()) = problems.changed() => {
                let problem = problems.borrow_and_update().clone();
                if let Some(problem) = problem {
                    let _ = tx.send(SessionEvent::Unreachable(problem)).await;
                }
            }
        }
    }
}

fn describe(e: &ClientError) -> String {
    e.to_string()
}
