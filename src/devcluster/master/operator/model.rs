//! The master's state as the v1 operator API's protobuf messages (`mesos.v1.master`): what
//! `GET_STATE`, `GET_TASKS`, `GET_AGENTS`, `GET_FRAMEWORKS`, `GET_EXECUTORS` answer and what
//! the `SUBSCRIBE` events carry. Upstream builds these from its own records
//! (`protobuf::master::event::*`, `Master::ReadOnlyHandler::_get*`); the dev master has leaner
//! records (`tasks.rs`), so a task's `statuses` carry what the master keeps of each update
//! (state, timestamp, health, container status) and its latest update whole.
//!
//! Resources are written as upstream's master keeps them: the post-refinement format (no
//! `role`), with `allocation_info` on what is allocated or offered.

use serde_json::Value;

use super::super::resources::{Resources, WireFormat};
use super::super::state::{
    Agent, AgentState, Conn, Framework, MESOS_VERSION, Master, Task, time_info,
};
use super::AGENT_CAPABILITIES;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::master::response;

fn unallocated() -> WireFormat {
    WireFormat {
        refinement: true,
        allocation_role: None,
    }
}

fn allocated_to(role: &str) -> WireFormat {
    WireFormat {
        refinement: true,
        allocation_role: Some(role.to_owned()),
    }
}

/// A task record as a `Task`.
pub(super) fn task(framework_id: &str, task_id: &str, task: &Task) -> pb::Task {
    let extras = task.extras();
    let mut statuses: Vec<pb::TaskStatus> = task
        .statuses
        .iter()
        .map(|s| pb::TaskStatus {
            task_id: pb::TaskId {
                value: task_id.to_string(),
            },
            state: s.state,
            timestamp: Some(s.timestamp),
            healthy: s.healthy,
            container_status: s.container_status(),
            agent_id: Some(pb::AgentId {
                value: task.agent_id.to_string(),
            }),
            ..Default::default()
        })
        .collect();
    // The latest update from the agent is kept whole: it stands for the last entry.
    if let (Some(last), Some(latest)) = (statuses.last_mut(), task.latest())
        && last.state == latest.state
    {
        *last = latest;
    }
    pb::Task {
        name: task.name.to_string(),
        task_id: pb::TaskId {
            value: task_id.to_string(),
        },
        framework_id: pb::FrameworkId {
            value: framework_id.to_string(),
        },
        executor_id: extras.executor_id.as_deref().map(|e| pb::ExecutorId {
            value: e.to_string(),
        }),
        agent_id: pb::AgentId {
            value: task.agent_id.to_string(),
        },
        state: task.state(),
        resources: task.resources.to_pb(&allocated_to(&task.role)),
        statuses,
        status_update_state: task.status_update_state,
        status_update_uuid: task.status_update_uuid.as_deref().map(<[u8]>::to_vec),
        labels: extras.labels.clone(),
        kill_policy: extras.kill_grace.map(|grace| pb::KillPolicy {
            grace_period: Some(grace),
        }),
        ..Default::default()
    }
}

/// A task kept in a removed framework's `/master/state` document, as a `Task` (the document
/// has its ids, name, state and statuses, which is what is rebuilt).
pub(super) fn task_from_json(doc: &Value) -> Option<pb::Task> {
    let text = |key: &str| doc[key].as_str().map(str::to_owned);
    let state = |name: &str| pb::TaskState::from_str_name(name).map(|s| s as i32);
    let task_id = text("id")?;
    let statuses = doc["statuses"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| {
                    Some(pb::TaskStatus {
                        task_id: pb::TaskId {
                            value: task_id.clone(),
                        },
                        state: state(s["state"].as_str()?)?,
                        timestamp: s["timestamp"].as_f64(),
                        ..Default::default()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(pb::Task {
        name: text("name").unwrap_or_default(),
        task_id: pb::TaskId { value: task_id },
        framework_id: pb::FrameworkId {
            value: text("framework_id")?,
        },
        agent_id: pb::AgentId {
            value: text("slave_id")?,
        },
        state: state(doc["state"].as_str()?)?,
        statuses,
        ..Default::default()
    })
}

/// An agent as `GetAgents.Agent`.
pub(super) fn agent(agent: &Agent) -> response::get_agents::Agent {
    let allocated: Resources = agent.used.clone();
    response::get_agents::Agent {
        agent_info: agent_info(agent),
        active: agent.is_registered(),
        deactivated: Some(false),
        version: MESOS_VERSION.to_owned(),
        pid: Some(format!(
            "slave({})@127.0.0.1:{}",
            agent.pid, agent.http_port
        )),
        registered_time: Some(time_info(agent.registered_time)),
        reregistered_time: None,
        total_resources: agent.total.to_pb(&unallocated()),
        allocated_resources: allocated.to_pb(&unallocated()),
        offered_resources: agent.offered.to_pb(&unallocated()),
        capabilities: AGENT_CAPABILITIES
            .iter()
            .map(|c| pb::agent_info::Capability {
                r#type: Some(*c as i32),
            })
            .collect(),
    }
}

pub(super) fn agent_info(agent: &Agent) -> pb::AgentInfo {
    pb::AgentInfo {
        hostname: agent.hostname.clone(),
        port: Some(i32::from(agent.http_port)),
        resources: agent.total.to_pb(&unallocated()),
        attributes: agent.spec.attributes.clone(),
        id: Some(pb::AgentId {
            value: agent.id.clone(),
        }),
        domain: None,
    }
}

/// A registered framework as `GetFrameworks.Framework`.
pub(super) fn framework(
    master: &Master,
    framework: &Framework,
) -> response::get_frameworks::Framework {
    let connected = framework.stream().is_some();
    let mut allocated = Vec::new();
    for (_, task) in master.tasks.of_framework(&framework.id) {
        if !super::super::state::is_terminal(task.state()) {
            allocated.extend(task.resources.to_pb(&allocated_to(&task.role)));
        }
    }
    let mut offers = Vec::new();
    let mut offered = Vec::new();
    for (id, offer) in framework
        .offers
        .iter()
        .filter_map(|id| master.offers.get(id).map(|o| (id, o)))
    {
        let resources = offer.resources.to_pb(&allocated_to(&offer.role));
        offered.extend(resources.iter().cloned());
        let hostname = master
            .agents
            .get(&offer.agent_id)
            .map(|a| a.hostname.clone())
            .unwrap_or_default();
        offers.push(pb::Offer {
            id: pb::OfferId { value: id.clone() },
            framework_id: pb::FrameworkId {
                value: offer.framework_id.clone(),
            },
            agent_id: pb::AgentId {
                value: offer.agent_id.clone(),
            },
            hostname,
            resources,
            ..Default::default()
        });
    }
    response::get_frameworks::Framework {
        framework_info: framework.info.clone(),
        active: connected,
        connected,
        recovered: matches!(framework.conn, Conn::Recovered),
        registered_time: Some(time_info(framework.registered_time)),
        reregistered_time: None,
        unregistered_time: framework.unregistered_time.map(time_info),
        offers,
        inverse_offers: Vec::new(),
        allocated_resources: allocated,
        offered_resources: offered,
    }
}

/// A removed framework, rebuilt from its `/master/state` document.
pub(super) fn completed_framework(doc: &Value) -> Option<response::get_frameworks::Framework> {
    let text = |key: &str| doc[key].as_str().map(str::to_owned);
    #[expect(
        deprecated,
        reason = "a non-MULTI_ROLE framework's role is FrameworkInfo.role"
    )]
    let info = pb::FrameworkInfo {
        user: text("user").unwrap_or_default(),
        name: text("name").unwrap_or_default(),
        id: Some(pb::FrameworkId { value: text("id")? }),
        failover_timeout: doc["failover_timeout"].as_f64(),
        checkpoint: doc["checkpoint"].as_bool(),
        role: text("role"),
        roles: doc["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        hostname: text("hostname").filter(|h| !h.is_empty()),
        principal: text("principal"),
        webui_url: text("webui_url").filter(|u| !u.is_empty()),
        capabilities: doc["capabilities"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| c.as_str())
                    .filter_map(pb::framework_info::capability::Type::from_str_name)
                    .map(|t| pb::framework_info::Capability {
                        r#type: Some(t as i32),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    };
    Some(response::get_frameworks::Framework {
        framework_info: info,
        active: false,
        connected: false,
        recovered: false,
        registered_time: doc["registered_time"].as_f64().map(time_info),
        unregistered_time: doc["unregistered_time"].as_f64().map(time_info),
        ..Default::default()
    })
}

impl Master {
    pub(super) fn get_agents(&self) -> response::GetAgents {
        response::GetAgents {
            agents: self
                .agents
                .values()
                .filter(|a| a.is_registered())
                .map(agent)
                .collect(),
            recovered_agents: self
                .agents
                .values()
                .filter(|a| a.state == AgentState::Recovered)
                .map(agent_info)
                .collect(),
        }
    }

    pub(super) fn get_frameworks(&self) -> response::GetFrameworks {
        let mut live: Vec<&Framework> = self.frameworks.values().collect();
        live.sort_by(|a, b| a.id.cmp(&b.id));
        #[expect(
            deprecated,
            reason = "recovered_frameworks is always empty, as upstream's"
        )]
        response::GetFrameworks {
            frameworks: live.into_iter().map(|f| framework(self, f)).collect(),
            completed_frameworks: self
                .completed_frameworks
                .iter()
                .filter_map(|(_, snapshot)| serde_json::from_slice(snapshot).ok())
                .filter_map(|doc: Value| completed_framework(&doc))
                .collect(),
            recovered_frameworks: Vec::new(),
        }
    }

    /// The executors the master tracks: custom and default executors (command executors are
    /// the agent's business, as upstream's master does not list them either).
    pub(super) fn get_executors(&self) -> response::GetExecutors {
        let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        let mut executors = Vec::new();
        for framework in frameworks {
            for ((agent_id, executor_id), executor) in &framework.executors {
                executors.push(response::get_executors::Executor {
                    executor_info: pb::ExecutorInfo {
                        executor_id: pb::ExecutorId {
                            value: executor_id.clone(),
                        },
                        framework_id: Some(pb::FrameworkId {
                            value: framework.id.clone(),
                        }),
                        resources: executor.resources.to_pb(&unallocated()),
                        ..Default::default()
                    },
                    agent_id: pb::AgentId {
                        value: agent_id.clone(),
                    },
                });
            }
        }
        #[expect(deprecated, reason = "orphan_executors is always empty, as upstream's")]
        response::GetExecutors {
            executors,
            orphan_executors: Vec::new(),
        }
    }

    pub(super) fn get_tasks(&self) -> response::GetTasks {
        let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        let (mut tasks, mut unreachable, mut completed) = (Vec::new(), Vec::new(), Vec::new());
        for f in frameworks {
            for (task_id, t) in self.tasks.of_framework(&f.id) {
                tasks.push(task(&f.id, task_id, t));
            }
            for (task_id, t) in f.unreachable_tasks.iter() {
                unreachable.push(task(&f.id, task_id, t));
            }
            for (task_id, t) in &f.completed_tasks {
                completed.push(task(&f.id, task_id, t));
            }
        }
        for (_, snapshot) in &self.completed_frameworks {
            let Ok(doc) = serde_json::from_slice::<Value>(snapshot) else {
                continue;
            };
            for list in ["tasks", "unreachable_tasks", "completed_tasks"] {
                if let Some(kept) = doc[list].as_array() {
                    completed.extend(kept.iter().filter_map(task_from_json));
                }
            }
        }
        #[expect(
            deprecated,
            reason = "pending and orphan tasks are always empty, as upstream's"
        )]
        response::GetTasks {
            pending_tasks: Vec::new(),
            tasks,
            unreachable_tasks: unreachable,
            completed_tasks: completed,
            orphan_tasks: Vec::new(),
        }
    }

    pub(super) fn get_state(&self) -> response::GetState {
        response::GetState {
            get_tasks: Some(self.get_tasks()),
            get_executors: Some(self.get_executors()),
            get_frameworks: Some(self.get_frameworks()),
            get_agents: Some(self.get_agents()),
        }
    }
}
