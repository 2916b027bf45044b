//! Scheduler calls other than SUBSCRIBE and ACCEPT: the framework checks of §3.1 steps 12-17,
//! then TEARDOWN, DECLINE, REVIVE, SUPPRESS, KILL, ACKNOWLEDGE, SHUTDOWN, MESSAGE, REQUEST,
//! the inverse-offer and operation calls, RECONCILE_OPERATIONS and UPDATE_FRAMEWORK.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;

use super::state::{AgentState, CallResult, Conn, Master, is_terminal};
use super::streams;
use super::validate;
use crate::devcluster::agent::AgentCommand;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, call};

impl Master {
    /// Handles a non-SUBSCRIBE call that passed the stateless checks.
    pub(super) fn call(&mut self, call: Call, stream_id: Option<String>) -> CallResult {
        let ty = call
            .r#type
            .and_then(|t| call::Type::try_from(t).ok())
            .unwrap_or(call::Type::Unknown);
        let framework_id = call
            .framework_id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default();
        let Some(framework) = self.frameworks.get(&framework_id) else {
            return CallResult::new(StatusCode::BAD_REQUEST, "Framework cannot be found");
        };
        let Conn::Connected(stream) = &framework.conn else {
            return CallResult::new(StatusCode::FORBIDDEN, "Framework is not subscribed");
        };
        let Some(stream_id) = stream_id else {
            return CallResult::new(
                StatusCode::BAD_REQUEST,
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
            );
        };
        if stream_id != stream.id {
            return CallResult::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "The stream ID '{stream_id}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
                ),
            );
        }
        tracing::debug!(framework_id, call = ty.as_str_name(), "scheduler call");
        let fid = framework_id.as_str();
        match ty {
            call::Type::Teardown => {
                tracing::info!(framework_id, "framework asked for TEARDOWN");
                self.remove_framework(fid);
            }
            call::Type::Accept => {
                if let Some(accept) = call.accept {
                    self.accept(fid, accept);
                }
            }
            call::Type::Decline => {
                if let Some(decline) = call.decline {
                    self.decline(fid, &decline);
                }
            }
            call::Type::Revive => {
                let roles = call.revive.map(|r| r.roles).unwrap_or_default();
                self.revive(fid, &roles);
            }
            call::Type::Suppress => {
                let roles = call.suppress.map(|r| r.roles).unwrap_or_default();
                self.suppress(fid, &roles);
            }
            call::Type::Kill => {
                if let Some(kill) = call.kill {
                    self.kill(fid, &kill);
                }
            }
            call::Type::Acknowledge => {
                if let Some(ack) = call.acknowledge {
                    self.acknowledge(fid, ack);
                }
            }
            call::Type::Reconcile => {
                let tasks = call.reconcile.map(|r| r.tasks).unwrap_or_default();
                self.reconcile_tasks(fid, &tasks);
            }
            call::Type::Shutdown => {
                if let Some(shutdown) = call.shutdown {
                    self.shutdown_executor(fid, &shutdown);
                }
            }
            call::Type::ReconcileOperations => {
                self.metrics.messages_reconcile_operations += 1;
                let operations = call
                    .reconcile_operations
                    .map(|r| r.operations)
                    .unwrap_or_default();
                self.reconcile_operations(fid, &operations);
            }
            call::Type::Message => {
                // Upstream relays it to a registered, connected agent (valid) or drops it
                // (invalid). The dev cluster's agents run no custom executors, so there is
                // nobody to relay it to; upstream's agent drops it the same way when the
                // executor is unknown.
                self.metrics.messages_framework_to_executor += 1;
                let reachable = call.message.as_ref().is_some_and(|m| {
                    self.agents
                        .get(&m.agent_id.value)
                        .is_some_and(|a| a.connected_handle().is_some())
                });
                if reachable {
                    self.metrics.valid_framework_to_executor_messages += 1;
                } else {
                    self.metrics.invalid_framework_to_executor_messages += 1;
                }
                tracing::debug!(framework_id, "MESSAGE dropped: no custom executors here");
            }
            call::Type::Request => {
                // No allocator requests exist here; upstream's allocator ignores them too.
                self.metrics.messages_resource_request += 1;
                tracing::debug!(framework_id, "REQUEST ignored");
            }
            call::Type::AcceptInverseOffers
            | call::Type::DeclineInverseOffers
            | call::Type::AcknowledgeOperationStatus => {
                // No maintenance (so no inverse offers) and no operation feedback exist here;
                // upstream ignores such calls for unknown ids as well.
                tracing::debug!(framework_id, call = ty.as_str_name(), "call ignored");
            }
            call::Type::UpdateFramework => {
                return match call.update_framework {
                    Some(update) => self.update_framework(fid, update),
                    None => CallResult::new(StatusCode::BAD_REQUEST, "missing update_framework"),
                };
            }
            call::Type::Unknown => return CallResult::new(StatusCode::NOT_IMPLEMENTED, ""),
            call::Type::Subscribe => {
                // The http layer routes SUBSCRIBE to `Msg::Subscribe`; never answer it here.
                return CallResult::new(
                    StatusCode::BAD_REQUEST,
                    "SUBSCRIBE must be sent on its own connection",
                );
            }
        }
        CallResult::new(StatusCode::ACCEPTED, "")
    }

    fn decline(&mut self, framework_id: &str, decline: &call::Decline) {
        self.metrics.messages_decline_offers += 1;
        let refuse = refuse_duration(decline.filters.as_ref());
        for offer_id in &decline.offer_ids {
            // Unknown, stale or foreign offer ids are silently ignored.
            if self
                .offers
                .get(&offer_id.value)
                .is_some_and(|o| o.framework_id == framework_id)
            {
                self.remove_offer(&offer_id.value, refuse);
            }
        }
    }

    /// REVIVE: clears filters and un-suppresses the roles (all subscribed roles when empty), then
    /// allocates at once as upstream's `reviveOffers` does. A role the framework is not subscribed
    /// to voids the whole call, as upstream.
    fn revive(&mut self, framework_id: &str, roles: &[String]) {
        self.metrics.messages_revive_offers += 1;
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let subscribed = framework.roles();
        let Some(roles) = select_roles(&subscribed, roles) else {
            tracing::debug!(
                framework_id,
                ?roles,
                "REVIVE with unsubscribed roles dropped"
            );
            return;
        };
        for filters in framework.filters.values_mut() {
            filters.retain(|f| !roles.contains(&f.role));
        }
        framework.filters.retain(|_, f| !f.is_empty());
        for role in &roles {
            framework.suppressed.remove(role);
        }
        self.request_allocation();
    }

    /// SUPPRESS: no more offers for the roles until REVIVE; outstanding offers stay.
    fn suppress(&mut self, framework_id: &str, roles: &[String]) {
        self.metrics.messages_suppress_offers += 1;
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let subscribed = framework.roles();
        let Some(roles) = select_roles(&subscribed, roles) else {
            tracing::debug!(
                framework_id,
                ?roles,
                "SUPPRESS with unsubscribed roles dropped"
            );
            return;
        };
        framework.suppressed.extend(roles);
    }

    /// KILL (§12): known task -> forwarded to its agent; unknown task -> explicit reconciliation.
    fn kill(&mut self, framework_id: &str, kill: &call::Kill) {
        self.metrics.messages_kill_task += 1;
        let task_id = kill.task_id.value.clone();
        let key = (framework_id.to_owned(), task_id.clone());
        let Some(task) = self.tasks.get(&key) else {
            tracing::debug!(
                framework_id,
                task_id,
                "KILL of an unknown task: reconciling it"
            );
            let reconcile = call::reconcile::Task {
                task_id: kill.task_id.clone(),
                agent_id: kill.agent_id.clone(),
            };
            self.reconcile_tasks(framework_id, &[reconcile]);
            return;
        };
        if let Some(agent_id) = &kill.agent_id
            && *agent_id.value != *task.agent_id
        {
            tracing::debug!(framework_id, task_id, "KILL names another agent: ignored");
            return;
        }
        let grace = kill
            .kill_policy
            .as_ref()
            .and_then(|p| p.grace_period)
            .or(task.extras().kill_grace)
            .map(|d| Duration::from_nanos(u64::try_from(d.nanoseconds).unwrap_or(0)));
        // Killing one task of a group kills the group, as the default executor does.
        let targets: Vec<String> = match task.extras().group {
            Some(group) => self
                .agents
                .get(&*task.agent_id)
                .map(|a| {
                    a.tasks
                        .iter()
                        .filter(|k| {
                            k.0 == framework_id
                                && self
                                    .tasks
                                    .get(*k)
                                    .is_some_and(|t| t.extras().group == Some(group))
                        })
                        .map(|k| k.1.clone())
                        .collect()
                })
                .unwrap_or_default(),
            None => vec![task_id.clone()],
        };
        let Some(handle) = self
            .agents
            .get(&*task.agent_id)
            .and_then(|a| a.connected_handle())
        else {
            tracing::debug!(
                framework_id,
                task_id,
                "KILL for a disconnected agent dropped"
            );
            return;
        };
        tracing::info!(framework_id, task_id, ?grace, "killing task");
        for target in targets {
            handle.send(AgentCommand::Kill {
                framework_id: framework_id.to_owned(),
                task_id: target,
                grace,
            });
        }
    }

    /// ACKNOWLEDGE: relayed to the agent; acknowledging the latest terminal update also lets
    /// the master forget the task (it moves to `completed_tasks`). As upstream, it is dropped
    /// (and counted invalid) when the agent is not registered, or when the master knows the
    /// task but forwarded no update of it (e.g. one from before a master restart).
    fn acknowledge(&mut self, framework_id: &str, ack: call::Acknowledge) {
        self.metrics.messages_status_update_acknowledgement += 1;
        let agent_id = ack.agent_id.value;
        let task_id = ack.task_id.value;
        let Some(handle) = self
            .agents
            .get(&agent_id)
            .and_then(|a| a.connected_handle())
            .cloned()
        else {
            tracing::debug!(
                framework_id,
                agent_id,
                task_id,
                "ACKNOWLEDGE for an unknown or disconnected agent dropped"
            );
            self.metrics.invalid_status_update_acknowledgements += 1;
            return;
        };
        let key = (framework_id.to_owned(), task_id.clone());
        if self
            .tasks
            .get(&key)
            .is_some_and(|t| *t.agent_id == *agent_id && t.status_update_state.is_none())
        {
            tracing::debug!(
                framework_id,
                agent_id,
                task_id,
                "ACKNOWLEDGE of an update this master did not send dropped"
            );
            self.metrics.invalid_status_update_acknowledgements += 1;
            return;
        }
        let forget = self.tasks.get(&key).is_some_and(|t| {
            *t.agent_id == *agent_id
                && t.status_update_uuid.as_deref() == Some(ack.uuid.as_slice())
                && t.status_update_state.is_some_and(is_terminal)
        });
        if forget {
            self.forget_task(&key);
        }
        handle.send(AgentCommand::Acknowledge {
            framework_id: framework_id.to_owned(),
            task_id,
            uuid: ack.uuid,
        });
        self.metrics.valid_status_update_acknowledgements += 1;
    }

    /// SHUTDOWN of an executor: the dev cluster's agents have no executor processes, so the
    /// tasks running under that executor id are killed (for command tasks the executor id is
    /// the task id, as with Mesos's command executor).
    fn shutdown_executor(&mut self, framework_id: &str, shutdown: &call::Shutdown) {
        let Some(agent) = self.agents.get(&shutdown.agent_id.value) else {
            return;
        };
        let Some(handle) = agent.connected_handle() else {
            return;
        };
        let executor_id = &shutdown.executor_id.value;
        for key in &agent.tasks {
            let Some(task) = self.tasks.get(key) else {
                continue;
            };
            let runs_under = task
                .extras()
                .executor_id
                .as_deref()
                .unwrap_or(key.1.as_str());
            if key.0 == framework_id && runs_under == executor_id {
                handle.send(AgentCommand::Kill {
                    framework_id: framework_id.to_owned(),
                    task_id: key.1.clone(),
                    grace: None,
                });
            }
        }
    }

    /// RECONCILE_OPERATIONS: this master never runs operations with feedback, so each listed
    /// operation is answered from what is known of its agent, as upstream does for unknown ones.
    fn reconcile_operations(
        &mut self,
        framework_id: &str,
        operations: &[call::reconcile_operations::Operation],
    ) {
        use pb::OperationState as S;
        for op in operations {
            let agent = op.agent_id.as_ref().and_then(|a| self.agents.get(&a.value));
            let state = match agent.map(|a| a.state) {
                Some(AgentState::Recovered) => S::OperationRecovering,
                Some(AgentState::Unreachable { .. }) => S::OperationUnreachable,
                Some(AgentState::Gone) => S::OperationGoneByOperator,
                Some(AgentState::Registered) | None => S::OperationUnknown,
            };
            let status = pb::OperationStatus {
                operation_id: Some(op.operation_id.clone()),
                state: state as i32,
                message: Some("Reconciliation: operation is unknown".to_owned()),
                agent_id: op.agent_id.clone(),
                resource_provider_id: op.resource_provider_id.clone(),
                ..Default::default()
            };
            self.send_event(framework_id, &streams::operation_update(status));
        }
    }

    /// Removes an acknowledged terminal task from the live set and keeps it as completed.
    pub(super) fn forget_task(&mut self, key: &super::state::TaskKey) {
        let Some(task) = self.tasks.remove(key) else {
            return;
        };
        if let Some(agent) = self.agents.get_mut(&*task.agent_id) {
            agent.tasks.remove(key);
        }
        if let Some(framework) = self.frameworks.get_mut(&key.0) {
            framework.push_completed(key.1.clone(), task);
        }
    }
}

/// The roles a REVIVE/SUPPRESS applies to: all subscribed ones when none are listed; `None` when
/// a listed role is not subscribed (or invalid), which voids the call.
fn select_roles(subscribed: &[String], listed: &[String]) -> Option<HashSet<String>> {
    if listed.is_empty() {
        return Some(subscribed.iter().cloned().collect());
    }
    listed
        .iter()
        .all(|r| validate::role(r).is_ok() && subscribed.contains(r))
        .then(|| listed.iter().cloned().collect())
}

/// How long declined (or unused accepted) resources are filtered (§8): 5 s by default and for
/// negative values, none for exactly 0, at most 365 days.
pub(super) fn refuse_duration(filters: Option<&pb::Filters>) -> Option<Duration> {
    const DEFAULT: f64 = 5.0;
    const MAX: f64 = 31_536_000.0;
    let seconds = filters.and_then(|f| f.refuse_seconds).unwrap_or(DEFAULT);
    let seconds = if seconds.is_nan() || seconds < 0.0 {
        DEFAULT
    } else {
        seconds.min(MAX)
    };
    (seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(refuse: Option<f64>) -> pb::Filters {
        pb::Filters {
            refuse_seconds: refuse,
        }
    }

    #[test]
    fn refuse_seconds_as_upstream() {
        assert_eq!(refuse_duration(None), Some(Duration::from_secs(5)));
        assert_eq!(
            refuse_duration(Some(&filters(None))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(refuse_duration(Some(&filters(Some(0.0)))), None);
        assert_eq!(
            refuse_duration(Some(&filters(Some(-3.0)))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            refuse_duration(Some(&filters(Some(1e12)))),
            Some(Duration::from_secs(31_536_000))
        );
        assert_eq!(
            refuse_duration(Some(&filters(Some(0.25)))),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn revive_roles_all_or_nothing() {
        let subscribed = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(select_roles(&subscribed, &[]).unwrap().len(), 2);
        assert_eq!(select_roles(&subscribed, &["a".into()]).unwrap().len(), 1);
        assert!(select_roles(&subscribed, &["a".into(), "c".into()]).is_none());
    }
}
