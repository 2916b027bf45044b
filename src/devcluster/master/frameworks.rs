//! The framework lifecycle (§7): SUBSCRIBE (new, re-subscribe, failover of a live stream,
//! refusals as ERROR-then-close), disconnection when the stream closes, the failover timer,
//! removal (TEARDOWN or timeout) and UPDATE_FRAMEWORK.

use axum::body::Body;
use axum::http::StatusCode;

use super::state::MAX_COMPLETED_FRAMEWORKS;
use super::state::{CallResult, Conn, Framework, Master, Timer, is_terminal, now_secs};
use super::streams::{self, EventStream};
use super::validate;
use crate::devcluster::agent::AgentCommand;
use crate::mesos::encoding::Encoding;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, call};

impl Master {
    /// SUBSCRIBE: always a 200 stream; refusals are one ERROR event and the end of the stream.
    pub(super) fn subscribe(&mut self, call: Call, encoding: Encoding) -> (String, Body) {
        let Some(subscribe) = call.subscribe else {
            return refuse(encoding, "Expecting 'subscribe' to be present");
        };
        let mut info = subscribe.framework_info;
        // Counted before any check, as upstream's `Master::subscribe` does.
        if info.id.as_ref().is_none_or(|id| id.value.is_empty()) {
            self.metrics.messages_register_framework += 1;
        } else {
            self.metrics.messages_reregister_framework += 1;
        }
        if let Err(message) = validate::framework_info(&info, &subscribe.suppressed_roles) {
            return refuse(encoding, &message);
        }
        let requested_id = info.id.as_ref().map(|f| f.value.clone());
        if let Some(id) = &requested_id
            && self.completed_frameworks.iter().any(|(c, _)| c == id)
        {
            return refuse(encoding, "Framework has been removed");
        }
        let suppressed = subscribe.suppressed_roles.into_iter().collect();
        let Some(id) = requested_id else {
            let id = format!("{}-{:04}", self.master_id, self.next_framework);
            self.next_framework += 1;
            info.id = Some(streams::framework_id_pb(&id));
            tracing::info!(framework_id = %id, name = %info.name, "framework subscribed");
            let mut framework = Framework::new(id.clone(), info, Conn::Disconnected);
            framework.suppressed = suppressed;
            self.frameworks.insert(id.clone(), framework);
            // Upstream `addFramework` of an active framework allocates at once.
            self.request_allocation();
            let answer = self.connect(&id, encoding);
            self.operator_framework_changed(&id, true);
            return answer;
        };
        let added = !self.frameworks.contains_key(&id);
        match self.frameworks.get_mut(&id) {
            Some(framework) => {
                let recovered = matches!(framework.conn, Conn::Recovered);
                // Disconnected or recovered: upstream activates it (`activateFramework`), which
                // allocates at once. A failover of an open stream activates nothing.
                let activated = framework.stream().is_none();
                if !recovered && framework.info.principal != info.principal {
                    return refuse(encoding, "Changing framework's principal is not allowed.");
                }
                if let Conn::Connected(old) = &framework.conn {
                    old.send(&streams::error("Framework failed over"));
                }
                // Dropping the old stream closes it right after the ERROR.
                framework.conn = Conn::Disconnected;
                if !recovered {
                    // `user` and `checkpoint` cannot change; upstream silently keeps the old ones.
                    info.user = framework.info.user.clone();
                    info.checkpoint = framework.info.checkpoint;
                }
                framework.info = info;
                framework.suppressed = suppressed;
                framework.failover_epoch += 1;
                framework.unregistered_time = None;
                let offers: Vec<String> = framework.offers.iter().cloned().collect();
                for offer in offers {
                    // Offers of the previous subscription are dropped without RESCIND.
                    self.remove_offer(&offer, None);
                }
                tracing::info!(framework_id = %id, "framework re-subscribed");
                if activated {
                    self.request_allocation();
                }
            }
            None => {
                // An id this master never saw (typically after a master failover) is accepted and
                // the framework rebuilt from the FrameworkInfo.
                tracing::info!(framework_id = %id, "framework re-subscribed with an id new to this master");
                let mut framework = Framework::new(id.clone(), info, Conn::Disconnected);
                framework.suppressed = suppressed;
                self.frameworks.insert(id.clone(), framework);
                // Recovered, then activated: an allocation at once.
                self.request_allocation();
            }
        }
        let answer = self.connect(&id, encoding);
        self.operator_framework_changed(&id, added);
        // Upstream tells every agent about the re-subscribed framework, which makes each re-send
        // its oldest unacknowledged update per task at once.
        for agent in self.agents.values() {
            if let Some(handle) = agent.connected_handle() {
                handle.send(AgentCommand::ResendUnacknowledged {
                    framework_id: id.clone(),
                });
            }
        }
        answer
    }

    /// Opens the framework's new stream: SUBSCRIBED, an immediate HEARTBEAT, then one every
    /// heartbeat interval.
    fn connect(&mut self, framework_id: &str, encoding: Encoding) -> (String, Body) {
        let notify = Some((self.self_tx.clone(), framework_id.to_owned()));
        let (stream, body) = EventStream::open(encoding, notify);
        let stream_id = stream.id.clone();
        let heartbeat_seconds = self.settings.heartbeat_interval.as_secs_f64();
        stream.send(&streams::subscribed(
            framework_id,
            heartbeat_seconds,
            &self.info,
        ));
        stream.send(&streams::heartbeat());
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.conn = Conn::Connected(stream);
        }
        self.schedule(
            self.settings.heartbeat_interval,
            Timer::Heartbeat {
                framework_id: framework_id.to_owned(),
                stream_id: stream_id.clone(),
            },
        );
        (stream_id, body)
    }

    /// A stream body went away. Only the framework's current stream matters: older ones were
    /// closed by a failover or by the master itself.
    pub(super) fn stream_closed(&mut self, framework_id: &str, stream_id: &str) {
        let current = self
            .frameworks
            .get(framework_id)
            .and_then(Framework::stream)
            .is_some_and(|s| s.id == stream_id);
        if current {
            self.disconnect(framework_id);
        }
    }

    /// The framework lost its stream: no more offers (outstanding ones are rescinded, and the
    /// RESCINDs go nowhere), and the failover timer starts.
    pub(super) fn disconnect(&mut self, framework_id: &str) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        framework.conn = Conn::Disconnected;
        framework.unregistered_time = Some(now_secs());
        let timeout = framework.info.failover_timeout.unwrap_or(0.0);
        let epoch = framework.failover_epoch;
        let offers: Vec<String> = framework.offers.iter().cloned().collect();
        for offer in offers {
            self.remove_offer(&offer, None);
        }
        tracing::info!(
            framework_id,
            failover_timeout = timeout,
            "framework disconnected"
        );
        if timeout > 0.0 {
            self.schedule(
                std::time::Duration::from_secs_f64(timeout),
                Timer::FailoverTimeout {
                    framework_id: framework_id.to_owned(),
                    epoch,
                },
            );
        } else {
            self.remove_framework(framework_id);
        }
    }

    pub(super) fn failover_timeout(&mut self, framework_id: &str, epoch: u64) {
        let expired = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| matches!(f.conn, Conn::Disconnected) && f.failover_epoch == epoch);
        if expired {
            tracing::info!(framework_id, "framework failover timeout expired");
            self.remove_framework(framework_id);
        }
    }

    /// TEARDOWN or failover timeout: the framework's tasks are killed on the agents, marked
    /// TASK_KILLED internally (no updates are sent), its offers dropped, its stream closed
    /// without an ERROR, and its id remembered as completed.
    pub(super) fn remove_framework(&mut self, framework_id: &str) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let task_ids: Vec<String> = self
            .tasks
            .of_framework(framework_id)
            .map(|(id, _)| id.to_owned())
            .collect();
        let offers: Vec<String> = framework.offers.iter().cloned().collect();
        for offer in offers {
            self.remove_offer(&offer, None);
        }
        let mut killed = Vec::new();
        for task_id in task_ids {
            let key = (framework_id.to_owned(), task_id);
            if self
                .tasks
                .get(&key)
                .is_some_and(|t| !is_terminal(t.state()))
            {
                self.release_task(&key);
                // Upstream's `removeFramework` updates each live task to TASK_KILLED.
                let killed = pb::TaskState::TaskKilled as i32;
                self.tasks
                    .set_state(&key, killed, &mut self.metrics.tasks_ended);
                let agent_id = self.tasks.get(&key).map(|t| t.agent_id.to_string());
                let status = super::state::master_status(
                    &key.1,
                    agent_id.as_deref(),
                    pb::TaskState::TaskKilled,
                    pb::task_status::Reason::FrameworkRemoved,
                    "Framework removed",
                );
                self.operator_task_updated(framework_id, &status, killed);
            }
            if let Some(task) = self.tasks.remove(&key) {
                if let Some(agent) = self.agents.get_mut(&*task.agent_id) {
                    agent.tasks.remove(&key);
                }
                killed.push((key.1, task));
            }
        }
        for agent in self.agents.values() {
            if let Some(handle) = agent.connected_handle() {
                handle.send(AgentCommand::ShutdownFramework {
                    framework_id: framework_id.to_owned(),
                });
            }
        }
        let Some(mut framework) = self.frameworks.remove(framework_id) else {
            return;
        };
        for (task_id, task) in killed {
            framework.push_completed(task_id, task);
        }
        framework.conn = Conn::Disconnected;
        framework.unregistered_time.get_or_insert_with(now_secs);
        self.operator_framework_removed(&framework.info);
        let mut snapshot = Vec::new();
        self.write_framework(&mut snapshot, &framework, false);
        let snapshot = snapshot.into_boxed_slice();
        if self.completed_frameworks.len() >= MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
        self.completed_frameworks
            .push_back((framework_id.to_owned(), snapshot));
        tracing::info!(framework_id, "framework removed");
    }

    /// UPDATE_FRAMEWORK: synchronous 200, or 400 for an invalid FrameworkInfo or a change of
    /// `principal`, `user` or `checkpoint`; all or nothing.
    pub(super) fn update_framework(
        &mut self,
        framework_id: &str,
        update: call::UpdateFramework,
    ) -> CallResult {
        let bad = |m: String| CallResult::new(StatusCode::BAD_REQUEST, m);
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return bad("Framework cannot be found".to_owned());
        };
        let mut info = update.framework_info;
        if let Err(e) = validate::framework_info(&info, &update.suppressed_roles) {
            return bad(format!("Invalid FrameworkInfo: {e}"));
        }
        for (field, changed) in [
            ("principal", framework.info.principal != info.principal),
            ("user", framework.info.user != info.user),
            (
                "checkpoint",
                framework.info.checkpoint.unwrap_or(false) != info.checkpoint.unwrap_or(false),
            ),
        ] {
            if changed {
                return bad(format!("Updating 'FrameworkInfo.{field}' is unsupported"));
            }
        }
        info.id = Some(streams::framework_id_pb(framework_id));
        let old_suppressed = std::mem::take(&mut framework.suppressed);
        framework.info = info;
        framework.suppressed = update.suppressed_roles.into_iter().collect();
        let roles = framework.roles();
        // Filters of removed roles go, and so do those of roles leaving the suppressed set.
        let unsuppressed: Vec<String> = old_suppressed
            .iter()
            .filter(|r| !framework.suppressed.contains(*r))
            .cloned()
            .collect();
        for filters in framework.filters.values_mut() {
            filters.retain(|f| roles.contains(&f.role) && !unsuppressed.contains(&f.role));
        }
        let removed_role_offers: Vec<String> = framework
            .offers
            .iter()
            .filter(|o| {
                self.offers
                    .get(*o)
                    .is_some_and(|rec| !roles.contains(&rec.role))
            })
            .cloned()
            .collect();
        for offer in removed_role_offers {
            self.rescind_offer(&offer);
        }
        self.operator_framework_changed(framework_id, false);
        tracing::info!(framework_id, "framework updated");
        CallResult::new(StatusCode::OK, "")
    }
}

/// An ERROR-then-close stream (§3.2), with its own fresh stream id.
fn refuse(encoding: Encoding, message: &str) -> (String, Body) {
    tracing::info!(message, "SUBSCRIBE refused");
    let (stream, body) = EventStream::open(encoding, None);
    stream.send(&streams::error(message));
    (stream.id, body)
}
