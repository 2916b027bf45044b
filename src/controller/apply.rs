//! One pass: run `plan` on the whole state and apply its actions through the Mesos client, keeping
//! the write-ahead rule (a launch is flushed to the ledger before its ACCEPT is sent).

use std::collections::BTreeMap;
use std::time::{Duration, Instant as StdInstant};

use super::reconcile::ReconcileCall;
use super::state::Controller;
use crate::mesos::convert::{self, LaunchTarget};
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, call};
use crate::model::{TaskId, TaskRecord, TaskState, TaskUpdate};
use crate::plan::{self, Action, OfferStats, PlanInput};
use crate::spec::model::SpecId;

/// A task's commit as log lines show it: `abc1234`, or `abc1234-dirty`.
fn short_commit(commit: &str) -> String {
    match commit.strip_suffix("-dirty") {
        Some(sha) => format!("{}-dirty", crate::sync::layout::short_sha(sha)),
        None => crate::sync::layout::short_sha(commit).to_owned(),
    }
}

/// Filter on the unused part of an accepted offer: short, the rest of the agent may fit the next task.
const ACCEPT_REFUSE_SECONDS: f64 = 1.0;

impl Controller {
    /// Plans and applies. Only a subscribed controller acts; a disconnected one still plans so that
    /// the status page shows what is pending and why.
    ///
    /// Incremental: only the specs something happened to are decided again (see `planned.rs`);
    /// the cross-spec step then looks at what is outstanding.
    pub async fn pass(&mut self, why: &'static str) {
        if !self.acting {
            self.publish();
            return;
        }
        let started = StdInstant::now();
        self.observe_store();
        let now_ms = self.clock.now_ms();
        let span = tracing::debug_span!("pass", why);
        let _enter = span.enter();
        // Until the framework's tasks are all known (`adopt.rs`), tasks in unknown states count
        // as possibly running, as while explicit reconciliation is unanswered.
        let awaiting = !self.connected || self.reconciliation.awaiting() || self.adoption.blocks();
        let dirty = self.planned.take_dirty(
            now_ms,
            awaiting,
            &mut self.ledger,
            &self.plan_desired,
            &self.desired.invalid_new,
        );
        let offers: Vec<_> = if self.connected {
            self.offers.values().cloned().collect()
        } else {
            Vec::new()
        };
        let offer_stats = OfferStats::from_offers(self.offer_log.iter().map(|(_, r)| r))
            .with_agents(self.agents.values());
        let input = PlanInput {
            now_ms,
            desired: &self.plan_desired,
            invalid: &self.desired.invalid_new,
            applied: &self.retired,
            ledger: self.ledger.map(),
            instances: &self.instances,
            rollouts: &self.rollouts,
            offers: &offers,
            offer_stats: &offer_stats,
            framework_role: &self.role,
            awaiting_reconciliation: awaiting,
            deletions_approved: self.deletions_approved,
            suppressed: self.suppressed,
        };
        for id in &dirty {
            self.planned.redecide(&input, &self.ledger, id);
        }
        let known_in_force = self.plan_desired.len()
            + self
                .desired
                .invalid_new
                .keys()
                .filter(|id| !self.plan_desired.contains_key(*id))
                .count();
        let outstanding = self.planned.outstanding(&self.ledger, known_in_force);
        let ledger = &self.ledger;
        let records_of = |id: &str| ledger.of_spec(id);
        let mut new_id = crate::task_ids::task_id;
        let finished = plan::finish(&input, outstanding, &records_of, &mut new_id);
        let rollout_updates: Vec<(SpecId, Option<crate::plan::RolloutState>)> = self
            .planned
            .rollout_updates(&dirty)
            .map(|(id, u)| (id.clone(), u.clone()))
            .collect();
        drop(_enter);

        let extra_pending: BTreeMap<_, _> = finished.pending.into_iter().collect();
        if !dirty.is_empty()
            || !finished.actions.is_empty()
            || extra_pending != self.planned.extra_pending
            || self.desired.dir_error.is_some()
        {
            self.published.stale = true;
        }
        self.planned.extra_pending = extra_pending;
        if finished.guard.is_some() && self.guard.is_none() {
            self.guard_since_ms = Some(now_ms);
            tracing::warn!(
                "mass-deletion guard: holding kills; run `mesos-reconciler approve-deletions` to apply them, or restore the files"
            );
        }
        if finished.guard.is_none() {
            self.deletions_approved = false;
            self.guard_since_ms = None;
        }
        self.guard = finished.guard;
        for (id, rollout) in rollout_updates {
            self.set_rollout(&id, rollout);
        }
        for id in finished.rollouts_over {
            self.set_rollout(&id, None);
        }

        if self.may_act() {
            let actions = match self.halted {
                Some(_) => super::health::without_writes(finished.actions),
                None => finished.actions,
            };
            self.apply(actions).await;
            self.observe_store();
        }
        self.forget_unwanted_instances(&dirty);
        self.prune_ledger(&dirty);
        self.counts.passes += 1;
        self.last_pass = Some((now_ms, why, started.elapsed().as_millis() as u64));
        if !self.ready && self.reconciled() {
            self.ready = true;
            tracing::info!(
                tasks = self.ledger.values().filter(|r| r.is_live()).count(),
                "reconciled with mesos: ready"
            );
        }
        self.publish();
    }

    async fn apply(&mut self, actions: Vec<Action>) {
        let now_ms = self.clock.now_ms();
        // Kills first: marking them in the ledger makes their ends expected, not failures.
        let mut kills = Vec::new();
        let mut launches = Vec::new();
        let mut other = Vec::new();
        for a in actions {
            match a {
                Action::Kill { .. } => kills.push(a),
                Action::Launch { .. } => launches.push(a),
                _ => other.push(a),
            }
        }
        if !kills.is_empty() {
            let mut marked = Vec::new();
            for a in &kills {
                if let Action::Kill { task_id, .. } = a {
                    if let Some(r) = self.ledger.get(task_id) {
                        if !r.kill_requested {
                            let mut r = r.clone();
                            r.kill_requested = true;
                            r.updated_at_ms = now_ms;
                            self.ledger.put(r.clone());
                            marked.push(r);
                        }
                    }
                }
            }
            if !self.persist_records(&marked).await {
                // The marks could not be written: no kill goes out (see `health.rs`), and the
                // next pass decides them again.
                for mut r in marked {
                    r.kill_requested = false;
                    self.ledger.put(r);
                }
                kills.clear();
            }
            for a in kills {
                if let Action::Kill {
                    task_id,
                    agent_id,
                    grace,
                    reason,
                } = a
                {
                    let record = self.ledger.get(&task_id);
                    let spec = record.map(|r| r.spec_id.clone());
                    let commit = record.and_then(|r| r.commit.as_deref()).map(short_commit);
                    tracing::info!(%task_id, spec = spec.as_deref().unwrap_or(""), ?reason, commit, "killing");
                    self.send_kill(&task_id, agent_id.as_deref(), grace).await;
                }
            }
        }

        if !launches.is_empty() {
            // Durability rule 2: every task id of this pass is flushed before any ACCEPT.
            let mut records = Vec::new();
            for a in &launches {
                if let Action::Launch {
                    agent_id,
                    hostname,
                    tasks,
                    ..
                } = a
                {
                    for t in tasks {
                        records.push(TaskRecord {
                            task_id: t.task_id.clone(),
                            spec_id: t.spec_id.as_str().to_owned(),
                            generation: t.generation.clone(),
                            instance: t.instance,
                            agent_id: Some(agent_id.clone()),
                            hostname: Some(hostname.clone()),
                            ports: t.ports.clone(),
                            state: TaskState::Staging,
                            launched_at_ms: now_ms,
                            running_since_ms: None,
                            unreachable_since_ms: None,
                            updated_at_ms: now_ms,
                            healthy: None,
                            reason: None,
                            message: None,
                            kill_requested: false,
                            cluster_caused: false,
                            commit: self.origins.task_commit(&t.spec_id),
                        });
                    }
                }
            }
            for r in &records {
                self.ledger.put(r.clone());
                self.touch_history(r);
                self.emit_transition(r, None);
            }
            if !self.persist_records(&records).await {
                // Write-ahead failed: these tasks are not launched. Their offers are declined
                // below and the instances stay wanted.
                for r in &records {
                    self.ledger.remove(&r.task_id);
                    let key = format!("{}#{}", r.spec_id, r.instance);
                    if let Some(attempts) = self.history.get_mut(&key) {
                        attempts.retain(|a| a.task_id != r.task_id.0);
                    }
                }
                for a in launches.drain(..) {
                    if let Action::Launch { offer_id, .. } = a {
                        other.push(Action::Decline {
                            offer_ids: vec![offer_id],
                            refuse_seconds: plan::SHORT_REFUSE_SECONDS,
                        });
                    }
                }
            }
            crate::failpoint::hit("after-write-ahead");
            let Some(framework_id) = self.framework_id.clone() else {
                return;
            };
            let mut batches = Vec::new();
            for a in launches {
                if let Action::Launch {
                    offer_id,
                    agent_id,
                    tasks,
                    ..
                } = a
                {
                    let role = self
                        .offers
                        .remove(&offer_id)
                        .map_or_else(|| self.role.clone(), |o| o.role);
                    for t in &tasks {
                        let commit = self.origins.task_commit(&t.spec_id);
                        tracing::info!(task_id = %t.task_id, spec = %t.spec_id.as_str(), instance = t.instance, agent = %agent_id, commit = commit.as_deref().map(short_commit), "launching");
                    }
                    self.counts.launches += tasks.len() as u64;
                    batches.push(AcceptBatch {
                        offer_id,
                        agent_id,
                        role,
                        tasks,
                    });
                }
            }
            self.send_accepts(&framework_id, batches).await;
        }

        for a in other {
            match a {
                Action::Decline {
                    offer_ids,
                    refuse_seconds,
                } => {
                    self.counts.offers_declined += offer_ids.len() as u64;
                    for id in &offer_ids {
                        self.offers.remove(id);
                    }
                    let decline = call::Decline {
                        offer_ids: offer_ids
                            .into_iter()
                            .map(|value| pb::OfferId { value })
                            .collect(),
                        filters: Some(pb::Filters {
                            refuse_seconds: Some(refuse_seconds),
                        }),
                    };
                    self.send(call::Type::Decline, |c| c.decline = Some(decline))
                        .await;
                }
                Action::Suppress => {
                    tracing::info!("nothing needs an offer: suppressing offers");
                    self.suppressed = true;
                    self.send(call::Type::Suppress, |c| {
                        c.suppress = Some(call::Suppress::default());
                    })
                    .await;
                }
                Action::Revive => {
                    tracing::info!("something needs an offer: reviving offers");
                    self.suppressed = false;
                    self.send(call::Type::Revive, |c| {
                        c.revive = Some(call::Revive::default());
                    })
                    .await;
                }
                Action::Kill { .. } | Action::Launch { .. } => {}
            }
        }
    }

    /// Sends a call of this framework; failures are logged (the loop's reconciliation and the
    /// stale-launch check recover from lost calls).
    pub(super) async fn send(&mut self, kind: call::Type, fill: impl FnOnce(&mut Call)) {
        let Some(c) = self.call(kind, fill) else {
            return;
        };
        if let Err(e) = self.client.call(c).await {
            tracing::warn!(call = kind.as_str_name(), error = %e, "mesos call failed");
        }
    }

    /// A call of this framework (none before it has an id).
    fn call(&self, kind: call::Type, fill: impl FnOnce(&mut Call)) -> Option<Call> {
        let mut c = Call {
            framework_id: Some(pb::FrameworkId {
                value: self.framework_id.clone()?,
            }),
            r#type: Some(kind as i32),
            ..Default::default()
        };
        fill(&mut c);
        Some(c)
    }

    /// Sends the ACCEPTs of one pass, a few at a time: each is its own HTTP call and they do not
    /// depend on each other (each names its own offer), so a pass with hundreds of offers does not
    /// wait for them one by one. Each call's TaskInfos are built when it is sent, so a pass
    /// launching 10,000 tasks never holds 10,000 TaskInfos at once.
    async fn send_accepts(&mut self, framework_id: &str, batches: Vec<AcceptBatch>) {
        use futures_util::StreamExt;
        const IN_FLIGHT: usize = 8;
        let client = self.client.clone();
        let mut sent = futures_util::stream::iter(batches.into_iter().map(|b| {
            let client = client.clone();
            let call = b.into_call(framework_id);
            async move { client.call(call).await }
        }))
        .buffer_unordered(IN_FLIGHT);
        while let Some(result) = sent.next().await {
            if let Err(e) = result {
                tracing::warn!(call = "ACCEPT", error = %e, "mesos call failed");
            }
            crate::failpoint::hit("after-accept");
        }
    }

    pub(super) async fn send_kill(
        &mut self,
        task_id: &TaskId,
        agent_id: Option<&str>,
        grace: Duration,
    ) {
        self.counts.kills += 1;
        let kill = call::Kill {
            task_id: pb::TaskId {
                value: task_id.0.clone(),
            },
            agent_id: agent_id.map(|a| pb::AgentId {
                value: a.to_owned(),
            }),
            kill_policy: Some(pb::KillPolicy {
                grace_period: Some(pb::DurationInfo {
                    nanoseconds: i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX),
                }),
            }),
        };
        self.send(call::Type::Kill, |c| c.kill = Some(kill)).await;
    }

    pub(super) async fn send_reconcile(&mut self, rc: ReconcileCall) {
        let tasks = match rc {
            ReconcileCall::Implicit => Vec::new(),
            ReconcileCall::Explicit(tasks) => tasks
                .into_iter()
                .map(|(t, a)| call::reconcile::Task {
                    task_id: pb::TaskId { value: t.0 },
                    agent_id: a.map(|value| pb::AgentId { value }),
                })
                .collect(),
        };
        self.send(call::Type::Reconcile, |c| {
            c.reconcile = Some(call::Reconcile { tasks });
        })
        .await;
    }

    /// Acknowledges an update that carries a uuid (agent and executor updates); master-generated
    /// ones carry none and must not be acknowledged.
    pub(super) async fn acknowledge(&mut self, u: &TaskUpdate) {
        self.acknowledge_all(std::slice::from_ref(u)).await;
    }

    /// Acknowledges several updates: their calls go to the acknowledgement worker (`acks.rs`),
    /// which sends them while the loop goes on.
    pub(super) async fn acknowledge_all(&mut self, updates: &[TaskUpdate]) {
        let Some(framework_id) = self.framework_id.clone() else {
            return;
        };
        let calls: Vec<Call> = updates
            .iter()
            .filter_map(|u| {
                let (Some(uuid), Some(agent)) = (&u.uuid, &u.agent_id) else {
                    return None;
                };
                Some(Call {
                    framework_id: Some(pb::FrameworkId {
                        value: framework_id.clone(),
                    }),
                    r#type: Some(call::Type::Acknowledge as i32),
                    acknowledge: Some(call::Acknowledge {
                        agent_id: pb::AgentId {
                            value: agent.clone(),
                        },
                        task_id: pb::TaskId {
                            value: u.task_id.0.clone(),
                        },
                        uuid: uuid.clone(),
                    }),
                    ..Default::default()
                })
            })
            .collect();
        self.acker.send(calls);
    }
}

/// The launches of one pass on one offer, until they are sent.
struct AcceptBatch {
    offer_id: String,
    agent_id: String,
    role: String,
    tasks: Vec<plan::Launch>,
}

impl AcceptBatch {
    /// The ACCEPT with one LAUNCH of every task.
    fn into_call(self, framework_id: &str) -> Call {
        let task_infos = self
            .tasks
            .iter()
            .map(|t| {
                convert::task_info(
                    &t.spec,
                    &LaunchTarget {
                        task_id: &t.task_id,
                        agent_id: &self.agent_id,
                        role: &self.role,
                        generation: &t.generation,
                        instance: t.instance,
                        resources: &t.resources,
                        ports: &t.ports,
                    },
                )
            })
            .collect();
        Call {
            framework_id: Some(pb::FrameworkId {
                value: framework_id.to_owned(),
            }),
            r#type: Some(call::Type::Accept as i32),
            accept: Some(call::Accept {
                offer_ids: vec![pb::OfferId {
                    value: self.offer_id,
                }],
                operations: vec![pb::offer::Operation {
                    r#type: Some(pb::offer::operation::Type::Launch as i32),
                    launch: Some(pb::offer::operation::Launch { task_infos }),
                    ..Default::default()
                }],
                filters: Some(pb::Filters {
                    refuse_seconds: Some(ACCEPT_REFUSE_SECONDS),
                }),
            }),
            ..Default::default()
        }
    }
}
