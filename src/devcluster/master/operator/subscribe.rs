//! The operator API's `SUBSCRIBE`: a RecordIO stream of `mesos.v1.master.Event`s. The first
//! event is SUBSCRIBED with the whole state (as `GET_STATE`) and the heartbeat interval; then,
//! as upstream's `Master::Subscribers` sends them, TASK_ADDED when a task is launched (or learnt
//! from a re-registering agent), TASK_UPDATED for every new state in a task's statuses and every
//! check or health change (the status, and the task's latest state, which may be ahead of it),
//! also for the master's own updates (agent lost, framework removed), FRAMEWORK_ADDED /
//! FRAMEWORK_UPDATED when a framework subscribes / re-subscribes or updates its FrameworkInfo,
//! FRAMEWORK_REMOVED when it is torn down or its failover timeout expires, AGENT_ADDED when an
//! agent registers or re-registers, AGENT_REMOVED when it is lost (gone or unreachable), and a
//! HEARTBEAT every heartbeat interval.
//!
//! The master holds each subscriber's sending half; a subscriber whose body was dropped (the
//! client went away) is forgotten at the next event. Heartbeats come from a task of each
//! subscriber's own that holds only a weak sender, so the stream ends when the master drops it
//! (shutdown, restart). With no subscriber, the hooks cost one check each.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::super::state::Master;
use super::model;
use crate::mesos::encoding::Encoding;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::master::{Event, event};
use crate::mesos::recordio;

/// The open operator event streams.
#[derive(Debug, Default)]
pub(in super::super) struct Subscribers {
    open: Vec<Subscriber>,
}

#[derive(Debug)]
struct Subscriber {
    encoding: Encoding,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn send(&mut self, event: &Event) {
        self.open.retain(|s| {
            let frame = recordio::encode(&s.encoding.encode(event));
            s.tx.send(frame).is_ok()
        });
    }
}

fn event(ty: event::Type, fill: impl FnOnce(&mut Event)) -> Event {
    let mut e = Event {
        r#type: Some(ty as i32),
        ..Default::default()
    };
    fill(&mut e);
    e
}

impl Master {
    /// A new subscriber: its body, which starts with SUBSCRIBED.
    pub(super) fn operator_subscribe(&mut self, encoding: Encoding, heartbeat: Duration) -> Body {
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let subscribed = event(event::Type::Subscribed, |e| {
            e.subscribed = Some(event::Subscribed {
                get_state: Some(self.get_state()),
                heartbeat_interval_seconds: Some(heartbeat.as_secs_f64()),
            });
        });
        let _ = tx.send(recordio::encode(&encoding.encode(&subscribed)));
        let weak = tx.downgrade();
        let beat = recordio::encode(&encoding.encode(&event(event::Type::Heartbeat, |_| {})));
        tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
            loop {
                ticks.tick().await;
                let Some(tx) = weak.upgrade() else { return };
                if tx.send(beat.clone()).is_err() {
                    return;
                }
            }
        });
        self.operator_subscribers
            .open
            .push(Subscriber { encoding, tx });
        let stream = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|frame| frame.map(Ok::<_, std::convert::Infallible>))
        });
        Body::from_stream(stream)
    }

    /// TASK_ADDED, after a launch put the task in the table.
    pub(in super::super) fn operator_task_added(&mut self, framework_id: &str, task_id: &str) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let key = (framework_id.to_owned(), task_id.to_owned());
        let Some(task) = self.tasks.get(&key) else {
            return;
        };
        let e = event(event::Type::TaskAdded, |e| {
            e.task_added = Some(event::TaskAdded {
                task: model::task(framework_id, task_id, task),
            });
        });
        self.operator_subscribers.send(&e);
    }

    /// TASK_UPDATED: `status` moved the task to `state`.
    pub(in super::super) fn operator_task_updated(
        &mut self,
        framework_id: &str,
        status: &pb::TaskStatus,
        state: i32,
    ) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let e = event(event::Type::TaskUpdated, |e| {
            e.task_updated = Some(event::TaskUpdated {
                framework_id: pb::FrameworkId {
                    value: framework_id.to_owned(),
                },
                status: status.clone(),
                state,
            });
        });
        self.operator_subscribers.send(&e);
    }

    /// FRAMEWORK_ADDED (`added`) or FRAMEWORK_UPDATED, after a (re-)subscription.
    pub(in super::super) fn operator_framework_changed(&mut self, framework_id: &str, added: bool) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let framework = model::framework(self, framework);
        let e = if added {
            event(event::Type::FrameworkAdded, |e| {
                e.framework_added = Some(event::FrameworkAdded { framework });
            })
        } else {
            event(event::Type::FrameworkUpdated, |e| {
                e.framework_updated = Some(event::FrameworkUpdated { framework });
            })
        };
        self.operator_subscribers.send(&e);
    }

    /// FRAMEWORK_REMOVED.
    pub(in super::super) fn operator_framework_removed(&mut self, info: &pb::FrameworkInfo) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let e = event(event::Type::FrameworkRemoved, |e| {
            e.framework_removed = Some(event::FrameworkRemoved {
                framework_info: info.clone(),
            });
        });
        self.operator_subscribers.send(&e);
    }

    /// AGENT_ADDED, after an agent registered or re-registered.
    pub(in super::super) fn operator_agent_added(&mut self, agent_id: &str) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        let agent = model::agent(agent);
        let e = event(event::Type::AgentAdded, |e| {
            e.agent_added = Some(event::AgentAdded { agent });
        });
        self.operator_subscribers.send(&e);
    }

    /// AGENT_REMOVED, after an agent was lost.
    pub(in super::super) fn operator_agent_removed(&mut self, agent_id: &str) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let e = event(event::Type::AgentRemoved, |e| {
            e.agent_removed = Some(event::AgentRemoved {
                agent_id: pb::AgentId {
                    value: agent_id.to_owned(),
                },
            });
        });
        self.operator_subscribers.send(&e);
    }
}
