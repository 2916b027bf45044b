//! ACCEPT (§9): offer checks that fail the whole call, LAUNCH and LAUNCH_GROUP with upstream's
//! task validation order, and shipping valid tasks to their agent.

use super::calls::refuse_duration;
use super::resources::Resources;
use super::state::{Executor, Master, master_status};
use super::tasks::{NewTask, Task};
use super::validate;
use crate::devcluster::agent::AgentCommand;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::call;
use pb::framework_info::capability::Type as Capability;
use pb::offer::operation::Type as OpType;
use pb::task_status::Reason;

/// What the offers of one valid ACCEPT pooled together.
struct Pool {
    agent_id: String,
    role: String,
    available: Resources,
}

impl Master {
    pub(super) fn accept(&mut self, framework_id: &str, accept: call::Accept) {
        for op in &accept.operations {
            for task in operation_tasks(op) {
                let encoded = prost::Message::encode_to_vec(task).into_boxed_slice();
                self.received_task_infos.push_back(encoded);
                if self.received_task_infos.len() > super::state::RECEIVED_TASK_INFOS_KEPT {
                    self.received_task_infos.pop_front();
                }
            }
        }
        // Counted before any check, as upstream's `Master::accept` does (LAUNCH_GROUP is not).
        for op in &accept.operations {
            if op.r#type == Some(OpType::Launch as i32) {
                match op.launch.as_ref().is_some_and(|l| !l.task_infos.is_empty()) {
                    true => self.metrics.messages_launch_tasks += 1,
                    false => self.metrics.messages_decline_offers += 1,
                }
            }
        }
        let mut pool = match self.take_offers(framework_id, &accept.offer_ids) {
            Ok(pool) => pool,
            Err(error) => {
                self.fail_launches(framework_id, &accept.operations, &error);
                return;
            }
        };
        for op in accept.operations {
            match op.r#type.and_then(|t| OpType::try_from(t).ok()) {
                Some(OpType::Launch) => {
                    let tasks = op.launch.map(|l| l.task_infos).unwrap_or_default();
                    if op.id.is_some() {
                        self.error_tasks(
                            framework_id,
                            &tasks,
                            Reason::TaskInvalid,
                            "The `id` field is not supported for LAUNCH operations",
                        );
                        continue;
                    }
                    for task in tasks {
                        self.launch_task(framework_id, &mut pool, task);
                    }
                }
                Some(OpType::LaunchGroup) => {
                    let Some(group) = op.launch_group else {
                        continue;
                    };
                    if op.id.is_some() {
                        self.error_tasks(
                            framework_id,
                            &group.task_group.tasks,
                            Reason::TaskGroupInvalid,
                            "The `id` field is not supported for LAUNCH_GROUP operations",
                        );
                        continue;
                    }
                    self.launch_group(framework_id, &mut pool, group);
                }
                other => {
                    // Reservations, volumes and disks do not exist in the dev cluster.
                    tracing::warn!(
                        framework_id,
                        operation = ?other,
                        "offer operation not supported by the dev cluster: dropped"
                    );
                }
            }
        }
        // Whatever no operation used is declined with the accept's filters.
        if !pool.available.is_empty()
            && let Some(refuse) = refuse_duration(accept.filters.as_ref())
        {
            self.add_filter(
                framework_id,
                &pool.agent_id,
                &pool.role,
                pool.available,
                refuse,
            );
        }
    }

    /// The offer checks of §9; on success the offers are consumed and their resources pooled.
    /// On failure the still-valid listed offers are dropped without a filter.
    fn take_offers(&mut self, framework_id: &str, ids: &[pb::OfferId]) -> Result<Pool, String> {
        let mut error = None;
        if ids.is_empty() {
            error = Some("No offers specified".to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        let mut first: Option<(String, String, String)> = None;
        for id in ids {
            if error.is_some() {
                break;
            }
            if !seen.insert(id.value.as_str()) {
                error = Some(format!("Duplicate offer {} in accept", id.value));
                break;
            }
            let Some(offer) = self.offers.get(&id.value) else {
                error = Some(format!("Offer {} is no longer valid", id.value));
                break;
            };
            if offer.framework_id != framework_id {
                error = Some(format!(
                    "Offer {} has invalid framework {} while framework {} is expected",
                    id.value, offer.framework_id, framework_id
                ));
                break;
            }
            match &first {
                None => {
                    first = Some((id.value.clone(), offer.agent_id.clone(), offer.role.clone()));
                }
                Some((first_id, agent, role)) => {
                    if *agent != offer.agent_id {
                        error = Some(format!(
                            "Aggregated offers must belong to one single agent. Offer {} uses agent {} and offer {} uses agent {}",
                            id.value, offer.agent_id, first_id, agent
                        ));
                    } else if *role != offer.role {
                        error = Some(format!(
                            "Aggregated offers must be allocated to the same role. Offer {} uses role {} and offer {} uses role {}",
                            id.value, offer.role, first_id, role
                        ));
                    }
                }
            }
        }
        let mut available = Resources::default();
        for id in ids {
            let owned = self
                .offers
                .get(&id.value)
                .is_some_and(|o| o.framework_id == framework_id);
            if owned && let Some(offer) = self.remove_offer(&id.value, None) {
                available.add(&offer.resources);
            }
        }
        match (error, first) {
            (Some(e), _) => Err(e),
            (None, Some((_, agent_id, role))) => Ok(Pool {
                agent_id,
                role,
                available,
            }),
            (None, None) => Err("No offers specified".to_owned()),
        }
    }

    /// Every task of a failed ACCEPT: TASK_LOST (TASK_DROPPED for PARTITION_AWARE) with
    /// REASON_INVALID_OFFERS.
    fn fail_launches(&mut self, framework_id: &str, ops: &[pb::offer::Operation], error: &str) {
        let partition_aware = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.partition_aware());
        let state = if partition_aware {
            pb::TaskState::TaskDropped
        } else {
            pb::TaskState::TaskLost
        };
        tracing::info!(framework_id, error, "ACCEPT with invalid offers");
        for op in ops {
            for task in operation_tasks(op) {
                let status = master_status(
                    &task.task_id.value,
                    Some(&task.agent_id.value),
                    state,
                    Reason::InvalidOffers,
                    format!("Task launched with invalid offers: {error}"),
                );
                self.metrics.tasks_ended.add(state as i32);
                self.send_master_update(framework_id, status);
            }
        }
    }

    fn error_tasks(
        &mut self,
        framework_id: &str,
        tasks: &[pb::TaskInfo],
        reason: Reason,
        message: &str,
    ) {
        for task in tasks {
            tracing::info!(framework_id, task_id = %task.task_id.value, message, "task refused");
            let status = master_status(
                &task.task_id.value,
                Some(&task.agent_id.value),
                pb::TaskState::TaskError,
                reason,
                message,
            );
            self.metrics
                .tasks_ended
                .add(pb::TaskState::TaskError as i32);
            self.send_master_update(framework_id, status);
        }
    }

    fn launch_task(&mut self, framework_id: &str, pool: &mut Pool, mut task: pb::TaskInfo) {
        let checked = self
            .check_task(framework_id, pool, &task, None)
            .and_then(|needed| {
                if task.command.is_some() == task.executor.is_some() {
                    return Err("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present".to_owned());
                }
                if let Some(executor) = &task.executor {
                    self.check_executor(executor, pb::executor_info::Type::Custom)?;
                }
                let executor = self.new_executor_resources(framework_id, pool, task.executor.as_ref())?;
                let mut total = needed;
                total.add(&executor);
                check_fits(pool, &total)?;
                Ok((total, executor))
            });
        match checked {
            Err(message) => {
                self.error_tasks(framework_id, &[task], Reason::TaskInvalid, &message);
            }
            Ok((total, executor_resources)) => {
                pool.available.subtract(&total);
                if let Some(executor) = task.executor.as_mut()
                    && executor.framework_id.is_none()
                {
                    executor.framework_id = Some(super::streams::framework_id_pb(framework_id));
                }
                self.start_task(framework_id, pool, task, executor_resources, None);
            }
        }
    }

    fn launch_group(
        &mut self,
        framework_id: &str,
        pool: &mut Pool,
        group: pb::offer::operation::LaunchGroup,
    ) {
        let mut executor = group.executor;
        let tasks = group.task_group.tasks;
        let checked = (|| {
            if tasks.is_empty() {
                return Err("Task group is empty".to_owned());
            }
            self.check_executor(&executor, pb::executor_info::Type::Default)?;
            let executor_resources = Resources::from_pb(&executor.resources)
                .map_err(|e| format!("Executor uses invalid resources: {e}"))?;
            if executor_resources.scalar("cpus") < 0.01 || executor_resources.scalar("mem") < 32.0 {
                return Err("Executor must have at least cpus:0.01 and mem:32".to_owned());
            }
            let mut total = self.new_executor_resources(framework_id, pool, Some(&executor))?;
            let mut ids = std::collections::HashSet::new();
            for task in &tasks {
                if !ids.insert(task.task_id.value.as_str()) {
                    return Err(format!("Task has duplicate ID: {}", task.task_id.value));
                }
                let needed = self.check_task(framework_id, pool, task, Some(&executor))?;
                total.add(&needed);
            }
            check_fits(pool, &total)?;
            Ok(total)
        })();
        let total = match checked {
            Err(message) => {
                self.error_tasks(framework_id, &tasks, Reason::TaskGroupInvalid, &message);
                return;
            }
            Ok(total) => total,
        };
        pool.available.subtract(&total);
        if executor.framework_id.is_none() {
            executor.framework_id = Some(super::streams::framework_id_pb(framework_id));
        }
        let mut executor_resources = self
            .new_executor_resources(framework_id, pool, Some(&executor))
            .unwrap_or_default();
        let group_id = self.next_group;
        self.next_group += 1;
        for mut task in tasks {
            task.executor = Some(executor.clone());
            let resources = std::mem::take(&mut executor_resources);
            self.start_task(framework_id, pool, task, resources, Some(group_id));
        }
    }

    /// Upstream's per-task checks, in its order, up to (not including) containment; returns the
    /// task's own resources.
    fn check_task(
        &self,
        framework_id: &str,
        pool: &Pool,
        task: &pb::TaskInfo,
        group_executor: Option<&pb::ExecutorInfo>,
    ) -> Result<Resources, String> {
        let task_id = &task.task_id.value;
        validate::id(task_id).map_err(|e| format!("Task ID '{task_id}' is invalid: {e}"))?;
        let framework = self
            .frameworks
            .get(framework_id)
            .ok_or("Framework cannot be found")?;
        if self
            .tasks
            .contains_key(&(framework_id.to_owned(), task_id.clone()))
            || framework.unreachable_tasks.contains_key(task_id)
        {
            return Err(format!("Task has duplicate ID: {task_id}"));
        }
        if task.agent_id.value != pool.agent_id {
            return Err(format!("Task uses invalid agent: {}", task.agent_id.value));
        }
        if task
            .kill_policy
            .as_ref()
            .and_then(|p| p.grace_period)
            .is_some_and(|d| d.nanoseconds < 0)
        {
            return Err("Task's 'kill_policy.grace_period' must be non-negative".to_owned());
        }
        if task.max_completion_time.is_some_and(|d| d.nanoseconds < 0) {
            return Err("Task's `max_completion_time` must be non-negative".to_owned());
        }
        if let Some(executor) = group_executor {
            if task.command.is_none() {
                return Err("Task in a task group must have a CommandInfo".to_owned());
            }
            if let Some(own) = &task.executor
                && own.executor_id != executor.executor_id
            {
                return Err(format!(
                    "The executor '{}' of the task is different from the task group executor '{}'",
                    own.executor_id.value, executor.executor_id.value
                ));
            }
        }
        if task.resources.is_empty() {
            return Err("Task uses no resources".to_owned());
        }
        let resources = Resources::from_pb(&task.resources)
            .map_err(|e| format!("Task uses invalid resources: {e}"))?;
        if resources.is_empty() {
            return Err("Task uses no resources".to_owned());
        }
        Ok(resources)
    }

    fn check_executor(
        &self,
        executor: &pb::ExecutorInfo,
        expected: pb::executor_info::Type,
    ) -> Result<(), String> {
        validate::id(&executor.executor_id.value).map_err(|e| {
            format!(
                "Executor ID '{}' is invalid: {e}",
                executor.executor_id.value
            )
        })?;
        if let Some(ty) = executor.r#type
            && ty != expected as i32
        {
            return Err(format!(
                "'ExecutorInfo.type' must be '{}'",
                expected.as_str_name()
            ));
        }
        if expected == pb::executor_info::Type::Custom && executor.command.is_none() {
            return Err("Executor must have a CommandInfo".to_owned());
        }
        Ok(())
    }

    /// The resources an executor adds: its own when it is not already running on the agent.
    fn new_executor_resources(
        &self,
        framework_id: &str,
        pool: &Pool,
        executor: Option<&pb::ExecutorInfo>,
    ) -> Result<Resources, String> {
        let Some(executor) = executor else {
            return Ok(Resources::default());
        };
        let running = self.frameworks.get(framework_id).is_some_and(|f| {
            f.executors
                .contains_key(&(pool.agent_id.clone(), executor.executor_id.value.clone()))
        });
        if running {
            return Ok(Resources::default());
        }
        Resources::from_pb(&executor.resources)
            .map_err(|e| format!("Executor uses invalid resources: {e}"))
    }

    /// Records a validated task as TASK_STAGING (never sent as an update) and ships it.
    fn start_task(
        &mut self,
        framework_id: &str,
        pool: &Pool,
        task: pb::TaskInfo,
        executor_resources: Resources,
        group: Option<u64>,
    ) {
        let key = (framework_id.to_owned(), task.task_id.value.clone());
        let resources = Resources::from_pb(&task.resources).unwrap_or_default();
        let executor_id = task.executor.as_ref().map(|e| e.executor_id.value.clone());
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let user = framework.info.user.clone();
        let multi_role = framework.has(Capability::MultiRole);
        if let Some(executor_id) = &executor_id {
            let executor_key = (pool.agent_id.clone(), executor_id.clone());
            if !framework.executors.contains_key(&executor_key)
                && let Some(agent) = self.agents.get_mut(&pool.agent_id)
            {
                // A new executor: its resources are used for as long as it has tasks.
                agent.used.add(&executor_resources);
            }
            framework
                .executors
                .entry(executor_key)
                .or_insert_with(|| Executor {
                    resources: executor_resources,
                    live_tasks: 0,
                })
                .live_tasks += 1;
        }
        let mut stored = task;
        if multi_role {
            // The master fills allocation_info into task resources the scheduler left it out of.
            for r in &mut stored.resources {
                r.allocation_info
                    .get_or_insert_with(|| pb::resource::AllocationInfo {
                        role: Some(pool.role.clone()),
                    });
            }
        }
        tracing::info!(
            framework_id,
            task_id = %key.1,
            agent_id = %pool.agent_id,
            resources = %resources,
            "launching task"
        );
        let role = self.shared_role(&pool.role);
        let Some(agent) = self.agents.get_mut(&pool.agent_id) else {
            return;
        };
        let record = Task::new(NewTask {
            info: &stored,
            agent_id: agent.shared_id.clone(),
            state: pb::TaskState::TaskStaging as i32,
            resources,
            executor_id,
            group,
            role,
        });
        agent.used.add(&record.resources);
        agent.tasks.insert(key.clone());
        if let Some(handle) = agent.connected_handle() {
            // The agent keeps the TaskInfo; the master keeps only what it reads back.
            handle.send(AgentCommand::LaunchEncoded {
                framework_id: framework_id.to_owned(),
                framework_user: user,
                task: prost::Message::encode_to_vec(&stored).into(),
            });
        }
        self.tasks.insert(key.clone(), record);
        self.operator_task_added(&key.0, &key.1);
    }
}

/// The last check of §9: the offers contain everything the task (and a new executor) needs.
fn check_fits(pool: &Pool, total: &Resources) -> Result<(), String> {
    if pool.available.contains(total) {
        Ok(())
    } else {
        Err(format!(
            "Task uses more resources {total} than available {}",
            pool.available
        ))
    }
}

/// The tasks a LAUNCH or LAUNCH_GROUP operation carries.
fn operation_tasks(op: &pb::offer::Operation) -> Vec<&pb::TaskInfo> {
    let mut out: Vec<&pb::TaskInfo> = Vec::new();
    if let Some(launch) = &op.launch {
        out.extend(launch.task_infos.iter());
    }
    if let Some(group) = &op.launch_group {
        out.extend(group.task_group.tasks.iter());
    }
    out
}
