//! `GET /master/state`: the parts of upstream's state document this master has, with the same
//! field names (`frameworks[].tasks[]`, `completed_tasks`, `slaves[]`, `leader`, ...), so tools
//! that read a real master's state read this one too.

use serde_json::{Value, json};

use super::state::{AgentState, Conn, Framework, MESOS_VERSION, Master, Task, state_name};
use crate::mesos::proto::v1 as pb;
use pb::value::Type as ValueType;

impl Master {
    pub(super) fn state_json(&self) -> Value {
        let pid = format!("master@127.0.0.1:{}", self.settings.port);
        let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        let count =
            |pred: fn(&AgentState) -> bool| self.agents.values().filter(|a| pred(&a.state)).count();
        json!({
            "version": MESOS_VERSION,
            "build_date": super::http::BUILD_DATE,
            "build_time": super::http::BUILD_TIME,
            "build_user": super::http::BUILD_USER,
            "git_sha": super::http::GIT_SHA,
            "git_tag": MESOS_VERSION,
            "start_time": self.start_time,
            "elected_time": self.start_time,
            "id": self.master_id,
            "pid": pid,
            "hostname": self.settings.hostname,
            "leader": pid,
            "leader_info": crate::mesos::json::to_value(&self.info),
            "activated_slaves": count(|s| *s == AgentState::Registered),
            "deactivated_slaves": 0,
            "unreachable_slaves": count(|s| matches!(s, AgentState::Unreachable { .. })),
            "recovered_slaves": count(|s| *s == AgentState::Recovered),
            "flags": {
                "allocation_interval": format!("{}ms", self.settings.allocation_interval.as_millis()),
                "hostname": self.settings.hostname,
                "port": self.settings.port.to_string(),
            },
            "slaves": self
                .agents
                .values()
                .filter(|a| a.state == AgentState::Registered)
                .map(|a| self.agent_json(a))
                .collect::<Vec<_>>(),
            "recovered_slaves_list": self
                .agents
                .values()
                .filter(|a| a.state == AgentState::Recovered)
                .map(|a| json!({"id": a.id, "hostname": a.hostname}))
                .collect::<Vec<_>>(),
            "frameworks": frameworks
                .iter()
                .map(|f| self.framework_json(f, true))
                .collect::<Vec<_>>(),
            "completed_frameworks": self
                .completed_frameworks
                .iter()
                .map(|(_, snapshot)| snapshot.clone())
                .collect::<Vec<_>>(),
            "orphan_tasks": [],
            "unregistered_frameworks": [],
        })
    }

    fn agent_json(&self, agent: &super::state::Agent) -> Value {
        let attributes: serde_json::Map<String, Value> = agent
            .spec
            .attributes
            .iter()
            .map(|a| (a.name.clone(), attribute_value(a)))
            .collect();
        json!({
            "id": agent.id,
            "pid": format!("slave({})@127.0.0.1:{}", agent.pid, self.settings.port),
            "hostname": agent.hostname,
            "port": self.settings.port,
            "registered_time": agent.registered_time,
            "resources": agent.total.to_state_json(),
            "used_resources": agent.used.to_state_json(),
            "offered_resources": agent.offered.to_state_json(),
            "reserved_resources": {},
            "unreserved_resources": agent.total.to_state_json(),
            "attributes": attributes,
            "active": true,
            "version": MESOS_VERSION,
        })
    }

    pub(super) fn framework_json(&self, framework: &Framework, live: bool) -> Value {
        let info = &framework.info;
        let mut tasks: Vec<&Task> = framework
            .tasks
            .iter()
            .filter_map(|id| self.tasks.get(&(framework.id.clone(), id.clone())))
            .collect();
        tasks.sort_by(|a, b| a.info.task_id.value.cmp(&b.info.task_id.value));
        let mut unreachable: Vec<&Task> = framework.unreachable_tasks.values().collect();
        unreachable.sort_by(|a, b| a.info.task_id.value.cmp(&b.info.task_id.value));
        let mut used = super::resources::Resources::default();
        for task in &tasks {
            if !super::state::is_terminal(task.state()) {
                used.add(&task.resources);
            }
        }
        let mut offered = super::resources::Resources::default();
        for offer in framework.offers.iter().filter_map(|o| self.offers.get(o)) {
            offered.add(&offer.resources);
        }
        let capabilities: Vec<&str> = info
            .capabilities
            .iter()
            .filter_map(|c| c.r#type)
            .filter_map(|t| pb::framework_info::capability::Type::try_from(t).ok())
            .map(|t| t.as_str_name())
            .collect();
        #[expect(deprecated, reason = "upstream's state still shows FrameworkInfo.role")]
        let role = info.role.clone().unwrap_or_else(|| "*".to_owned());
        json!({
            "id": framework.id,
            "name": info.name,
            "user": info.user,
            "principal": info.principal,
            "hostname": info.hostname.clone().unwrap_or_default(),
            "webui_url": info.webui_url.clone().unwrap_or_default(),
            "failover_timeout": info.failover_timeout.unwrap_or(0.0),
            "checkpoint": info.checkpoint.unwrap_or(false),
            "role": role,
            "roles": framework.roles(),
            "capabilities": capabilities,
            "active": live && framework.stream().is_some(),
            "connected": live && framework.stream().is_some(),
            "recovered": matches!(framework.conn, Conn::Recovered),
            "registered_time": framework.registered_time,
            "unregistered_time": framework.unregistered_time.unwrap_or(0.0),
            "resources": used.to_state_json(),
            "used_resources": used.to_state_json(),
            "offered_resources": offered.to_state_json(),
            "tasks": tasks.iter().map(|t| task_json(t)).collect::<Vec<_>>(),
            "unreachable_tasks": unreachable.iter().map(|t| task_json(t)).collect::<Vec<_>>(),
            "completed_tasks": framework.completed_tasks.iter().map(task_json).collect::<Vec<_>>(),
            "offers": framework
                .offers
                .iter()
                .filter_map(|id| self.offers.get(id).map(|o| json!({
                    "id": id,
                    "framework_id": o.framework_id,
                    "slave_id": o.agent_id,
                    "resources": o.resources.to_state_json(),
                })))
                .collect::<Vec<_>>(),
            "executors": [],
        })
    }
}

/// A task as upstream's `model(Task)` writes it.
fn task_json(task: &Task) -> Value {
    let statuses: Vec<Value> = task
        .statuses
        .iter()
        .map(|s| {
            let mut v = json!({
                "state": state_name(s.state),
                "timestamp": s.timestamp.unwrap_or(0.0),
            });
            if let Some(healthy) = s.healthy {
                v["healthy"] = json!(healthy);
            }
            if let Some(container_status) = &s.container_status {
                v["container_status"] = crate::mesos::json::to_value(container_status);
            }
            v
        })
        .collect();
    let mut v = json!({
        "id": task.info.task_id.value,
        "name": task.info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id.clone().unwrap_or_default(),
        "slave_id": task.agent_id,
        "state": state_name(task.state()),
        "resources": task.resources.to_state_json(),
        "role": task.role,
        "statuses": statuses,
    });
    if let Some(labels) = &task.info.labels {
        v["labels"] = crate::mesos::json::to_value(labels)["labels"].clone();
    }
    if let Some(time) = task.unreachable_time {
        v["unreachable_time"] = json!({"nanoseconds": (time * 1e9) as i64});
    }
    v
}

/// Attribute values as upstream's state writes them: scalars as numbers, the rest as text.
fn attribute_value(a: &pb::Attribute) -> Value {
    match ValueType::try_from(a.r#type) {
        Ok(ValueType::Scalar) => json!(a.scalar.map_or(0.0, |s| s.value)),
        Ok(ValueType::Text) => json!(a.text.as_ref().map(|t| t.value.clone()).unwrap_or_default()),
        Ok(ValueType::Ranges) => {
            let parts: Vec<String> = a
                .ranges
                .as_ref()
                .map(|r| {
                    r.range
                        .iter()
                        .map(|r| format!("{}-{}", r.begin, r.end))
                        .collect()
                })
                .unwrap_or_default();
            json!(format!("[{}]", parts.join(", ")))
        }
        Ok(ValueType::Set) => {
            let items = a
                .set
                .as_ref()
                .map(|s| s.item.join(", "))
                .unwrap_or_default();
            json!(format!("{{{items}}}"))
        }
        Err(_) => Value::Null,
    }
}
