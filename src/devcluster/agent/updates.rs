//! Status updates as an agent produces and delivers them: building a fully filled-in
//! `TaskStatus` ([`StatusFactory`]) and the per-task delivery queue ([`UpdateQueue`]).
//!
//! The queue is pure (no clock, no IO): the agent's runtime asks it what to send and when to
//! re-send, and owns the timers. That keeps the delivery contract of API notes §10 in one small,
//! unit-tested place: updates go out in order, only the oldest unacknowledged one is in flight, it
//! is re-sent with a doubling (capped) delay until acknowledged with exactly its uuid, and only
//! then does the next one go out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::mesos::proto::v1 as pb;
use pb::task_status::{Reason, Source};

/// Builds the `TaskStatus`es of one agent, with every field a real agent fills in.
#[derive(Debug, Clone)]
pub(crate) struct StatusFactory {
    agent_id: Arc<str>,
    ip: Arc<str>,
}

impl StatusFactory {
    pub(crate) fn new(agent_id: &str, ip: &str) -> Self {
        Self {
            agent_id: agent_id.into(),
            ip: ip.into(),
        }
    }

    /// A new update with a fresh uuid and timestamp. The executor id is the task id, as for the
    /// Mesos command executor.
    pub(crate) fn status(
        &self,
        task_id: &str,
        state: pb::TaskState,
        source: Source,
        reason: Option<Reason>,
        message: Option<String>,
    ) -> pb::TaskStatus {
        pb::TaskStatus {
            task_id: pb::TaskId {
                value: task_id.to_owned(),
            },
            state: state as i32,
            message,
            source: Some(source as i32),
            reason: reason.map(|r| r as i32),
            agent_id: Some(pb::AgentId {
                value: self.agent_id.to_string(),
            }),
            executor_id: Some(pb::ExecutorId {
                value: task_id.to_owned(),
            }),
            timestamp: Some(now_seconds()),
            uuid: Some(uuid::Uuid::new_v4().as_bytes().to_vec()),
            ..Default::default()
        }
    }

    /// A TASK_RUNNING update from the executor, with the container's network status as a real
    /// agent reports it.
    pub(crate) fn running(
        &self,
        task_id: &str,
        container_id: &str,
        executor_pid: Option<u32>,
    ) -> pb::TaskStatus {
        let mut status = self.status(
            task_id,
            pb::TaskState::TaskRunning,
            Source::Executor,
            None,
            None,
        );
        status.container_status = Some(self.container_status(container_id, executor_pid));
        status
    }

    /// A TASK_RUNNING health update (API notes §9, HealthCheck).
    pub(crate) fn health(
        &self,
        task_id: &str,
        container_id: &str,
        executor_pid: Option<u32>,
        healthy: bool,
        message: Option<String>,
    ) -> pb::TaskStatus {
        let mut status = self.running(task_id, container_id, executor_pid);
        status.healthy = Some(healthy);
        status.reason = Some(Reason::TaskHealthCheckStatusUpdated as i32);
        status.message = message;
        status
    }

    fn container_status(
        &self,
        container_id: &str,
        executor_pid: Option<u32>,
    ) -> pb::ContainerStatus {
        pb::ContainerStatus {
            container_id: Some(pb::ContainerId {
                value: container_id.to_owned(),
                parent: None,
            }),
            network_infos: vec![pb::NetworkInfo {
                ip_addresses: vec![pb::network_info::IpAddress {
                    protocol: Some(pb::network_info::Protocol::IPv4 as i32),
                    ip_address: Some(self.ip.to_string()),
                }],
                ..Default::default()
            }],
            cgroup_info: None,
            executor_pid,
        }
    }
}

pub(crate) use crate::mesos::proto::is_terminal_state as is_terminal;

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The re-send delays of unacknowledged updates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

/// One update waiting for its acknowledgement, kept protobuf-encoded: while a big launch waits
/// for its acknowledgements, 100,000 tasks each hold two of these (a decoded `TaskStatus` is
/// some 600 bytes with its strings and container status, its encoding about 200).
#[derive(Debug, Clone)]
struct Pending {
    encoded: Bytes,
    uuid: Box<[u8]>,
    state: i32,
}

/// The ordered, not yet acknowledged updates of one task.
#[derive(Debug)]
pub(crate) struct UpdateQueue {
    pending: VecDeque<Pending>,
    /// Delay before the next re-send of the head.
    backoff: Duration,
}

/// What an acknowledgement did to a queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Acked {
    /// The uuid was not the head's: nothing changed.
    Ignored,
    /// The head was released and the next update is now the head: send it.
    Next,
    /// The head was released and nothing is pending; `terminal` if the released update was
    /// terminal, after which the task can be forgotten.
    Drained { terminal: bool },
}

impl UpdateQueue {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            pending: VecDeque::new(),
            backoff: policy.initial,
        }
    }

    /// Appends an update (`encoded` is its encoding); true if it became the head, i.e. must be
    /// sent now.
    pub(crate) fn push(
        &mut self,
        status: &pb::TaskStatus,
        encoded: Bytes,
        policy: RetryPolicy,
    ) -> bool {
        self.pending.push_back(Pending {
            encoded,
            uuid: status.uuid.as_deref().unwrap_or_default().into(),
            state: status.state,
        });
        if self.pending.len() == 1 {
            self.backoff = policy.initial;
            true
        } else {
            false
        }
    }

    /// The encoding of the update in flight, if any.
    pub(crate) fn head_encoded(&self) -> Option<&Bytes> {
        self.pending.front().map(|p| &p.encoded)
    }

    /// The state of the update in flight, if any.
    pub(crate) fn head_state(&self) -> Option<i32> {
        self.pending.front().map(|p| p.state)
    }

    /// The update in flight, if any.
    #[cfg(test)]
    pub(crate) fn head(&self) -> Option<pb::TaskStatus> {
        // Encoded by the agent from a valid message, so decoding cannot fail.
        self.pending
            .front()
            .and_then(|p| <pb::TaskStatus as prost::Message>::decode(&p.encoded[..]).ok())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Releases the head if `uuid` is exactly its uuid.
    pub(crate) fn acknowledge(&mut self, uuid: &[u8], policy: RetryPolicy) -> Acked {
        let matches = self.pending.front().is_some_and(|head| *head.uuid == *uuid);
        if !matches {
            return Acked::Ignored;
        }
        let released = self.pending.pop_front();
        self.backoff = policy.initial;
        if self.pending.is_empty() {
            // Most tasks sit acknowledged for their whole life: give the buffer back.
            self.pending = VecDeque::new();
            Acked::Drained {
                terminal: released.is_some_and(|p| is_terminal(p.state)),
            }
        } else {
            Acked::Next
        }
    }

    /// The delay until the head is re-sent, counted from a send that just happened. Each call
    /// doubles the following delay, capped at `policy.max`.
    pub(crate) fn next_retry_delay(&mut self, policy: RetryPolicy) -> Duration {
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(policy.max);
        delay
    }

    /// Starts the backoff over (the framework re-subscribed and the head was just re-sent).
    pub(crate) fn reset_backoff(&mut self, policy: RetryPolicy) {
        self.backoff = policy.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    const POLICY: RetryPolicy = RetryPolicy {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(45),
    };

    fn factory() -> StatusFactory {
        StatusFactory::new("A-S0", "127.0.0.1")
    }

    fn push(q: &mut UpdateQueue, status: pb::TaskStatus) -> bool {
        let encoded = Bytes::from(status.encode_to_vec());
        q.push(&status, encoded, POLICY)
    }

    fn update(state: pb::TaskState) -> pb::TaskStatus {
        factory().status("t", state, Source::Executor, None, None)
    }

    #[test]
    fn status_is_fully_filled_in() {
        let s = factory().running("t1", "c1", Some(42));
        assert_eq!(s.task_id.value, "t1");
        assert_eq!(s.state, pb::TaskState::TaskRunning as i32);
        assert_eq!(s.source, Some(Source::Executor as i32));
        assert_eq!(s.agent_id.unwrap().value, "A-S0");
        assert_eq!(s.executor_id.unwrap().value, "t1");
        assert_eq!(s.uuid.unwrap().len(), 16);
        assert!(s.timestamp.unwrap() > 1.0e9);
        let cs = s.container_status.unwrap();
        assert_eq!(cs.container_id.unwrap().value, "c1");
        assert_eq!(cs.executor_pid, Some(42));
        let ip = &cs.network_infos[0].ip_addresses[0];
        assert_eq!(ip.ip_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(ip.protocol, Some(pb::network_info::Protocol::IPv4 as i32));
    }

    #[test]
    fn every_update_has_its_own_uuid() {
        let a = update(pb::TaskState::TaskStarting);
        let b = update(pb::TaskState::TaskStarting);
        assert_ne!(a.uuid, b.uuid);
    }

    #[test]
    fn only_the_first_push_is_sent_at_once() {
        let mut q = UpdateQueue::new(POLICY);
        assert!(push(&mut q, update(pb::TaskState::TaskStarting)));
        assert!(!push(&mut q, update(pb::TaskState::TaskRunning)));
        assert_eq!(q.head().unwrap().state, pb::TaskState::TaskStarting as i32);
    }

    #[test]
    fn ack_must_name_the_head() {
        let mut q = UpdateQueue::new(POLICY);
        let starting = update(pb::TaskState::TaskStarting);
        let running = update(pb::TaskState::TaskRunning);
        push(&mut q, starting.clone());
        push(&mut q, running.clone());
        assert_eq!(
            q.acknowledge(running.uuid.as_deref().unwrap(), POLICY),
            Acked::Ignored
        );
        assert_eq!(
            q.acknowledge(starting.uuid.as_deref().unwrap(), POLICY),
            Acked::Next
        );
        assert_eq!(q.head().unwrap().uuid, running.uuid);
        assert_eq!(
            q.acknowledge(running.uuid.as_deref().unwrap(), POLICY),
            Acked::Drained { terminal: false }
        );
        assert!(q.is_empty());
    }

    #[test]
    fn terminal_ack_drains_as_terminal() {
        let mut q = UpdateQueue::new(POLICY);
        let done = update(pb::TaskState::TaskFinished);
        push(&mut q, done.clone());
        assert_eq!(
            q.acknowledge(done.uuid.as_deref().unwrap(), POLICY),
            Acked::Drained { terminal: true }
        );
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap_and_resets() {
        let mut q = UpdateQueue::new(POLICY);
        push(&mut q, update(pb::TaskState::TaskStarting));
        let delays: Vec<u64> = (0..5)
            .map(|_| q.next_retry_delay(POLICY).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 45, 45]);
        q.reset_backoff(POLICY);
        assert_eq!(q.next_retry_delay(POLICY).as_secs(), 10);
    }

    #[test]
    fn terminal_states_match_mesos() {
        use pb::TaskState as S;
        for s in [
            S::TaskFinished,
            S::TaskFailed,
            S::TaskKilled,
            S::TaskError,
            S::TaskLost,
        ] {
            assert!(is_terminal(s as i32), "{s:?}");
        }
        for s in [
            S::TaskStaging,
            S::TaskStarting,
            S::TaskRunning,
            S::TaskKilling,
            S::TaskUnreachable,
        ] {
            assert!(!is_terminal(s as i32), "{s:?}");
        }
    }
}
