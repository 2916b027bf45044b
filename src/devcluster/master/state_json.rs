//! `GET /master/state`: the parts of upstream's state document this master has, with the same
//! field names (`frameworks[].tasks[]`, `completed_tasks`, `slaves[]`, `leader`, ...), so tools
//! that read a real master's state read this one too.
//!
//! The document is written straight into bytes, in one pass over the tasks (already in task id
//! order in the task table), without an intermediate `serde_json::Value` tree: at 100,000 tasks
//! such a tree is hundreds of megabytes and most of the time of a request. The protobuf parts a
//! task shows (labels, container status) are written by hand for the shapes the dev cluster
//! produces, checked against the generic JSON mapping (`mesos::json`) by the tests below, which
//! is also what anything else falls back to.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::resources::Resources;
use super::state::{Agent, AgentState, Conn, Framework, MESOS_VERSION, Master, Task, state_name};
use crate::mesos::proto::v1 as pb;
use pb::value::Type as ValueType;

impl Master {
    /// The whole document.
    pub(super) fn state_json(&self) -> Vec<u8> {
        // Roughly what a task takes, so that the buffer rarely grows.
        let mut out = Vec::with_capacity(4096 + self.tasks.len() * 600);
        let pid = format!("master@127.0.0.1:{}", self.settings.port);
        let count =
            |pred: fn(&AgentState) -> bool| self.agents.values().filter(|a| pred(&a.state)).count();
        let mut doc = Obj::new(&mut out);
        value(doc.field("version"), MESOS_VERSION);
        value(doc.field("build_date"), super::http::BUILD_DATE);
        value(doc.field("build_time"), super::http::BUILD_TIME);
        value(doc.field("build_user"), super::http::BUILD_USER);
        value(doc.field("git_sha"), super::http::GIT_SHA);
        value(doc.field("git_tag"), MESOS_VERSION);
        value(doc.field("start_time"), self.start_time);
        value(doc.field("elected_time"), self.start_time);
        value(doc.field("id"), &self.master_id);
        value(doc.field("pid"), &pid);
        value(doc.field("hostname"), &self.settings.hostname);
        value(doc.field("leader"), &pid);
        value(
            doc.field("leader_info"),
            crate::mesos::json::to_value(&self.info),
        );
        value(
            doc.field("activated_slaves"),
            count(|s| *s == AgentState::Registered),
        );
        value(doc.field("deactivated_slaves"), 0);
        value(
            doc.field("unreachable_slaves"),
            count(|s| matches!(s, AgentState::Unreachable { .. })),
        );
        value(
            doc.field("recovered_slaves"),
            count(|s| *s == AgentState::Recovered),
        );
        self.write_flags(doc.field("flags"));
        {
            let mut slaves = Arr::new(doc.field("slaves"));
            for agent in self.agents.values().filter(|a| a.is_registered()) {
                self.write_agent(slaves.item(), agent);
            }
            slaves.end();
        }
        {
            let mut recovered = Arr::new(doc.field("recovered_slaves_list"));
            for agent in self
                .agents
                .values()
                .filter(|a| a.state == AgentState::Recovered)
            {
                let mut o = Obj::new(recovered.item());
                value(o.field("id"), &agent.id);
                value(o.field("hostname"), &agent.hostname);
                o.end();
            }
            recovered.end();
        }
        {
            let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
            frameworks.sort_by(|a, b| a.id.cmp(&b.id));
            let mut list = Arr::new(doc.field("frameworks"));
            for framework in frameworks {
                self.write_framework(list.item(), framework, true);
            }
            list.end();
        }
        {
            let mut list = Arr::new(doc.field("completed_frameworks"));
            for (_, snapshot) in &self.completed_frameworks {
                list.item().extend_from_slice(snapshot);
            }
            list.end();
        }
        doc.field("orphan_tasks").extend_from_slice(b"[]");
        doc.field("unregistered_frameworks")
            .extend_from_slice(b"[]");
        doc.end();
        out
    }

    pub(super) fn write_agent(&self, out: &mut Vec<u8>, agent: &Agent) {
        let attributes: BTreeMap<&str, Value> = agent
            .spec
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), attribute_value(a)))
            .collect();
        let mut o = Obj::new(out);
        value(o.field("id"), &agent.id);
        value(
            o.field("pid"),
            format!("slave({})@127.0.0.1:{}", agent.pid, agent.http_port),
        );
        value(o.field("hostname"), &agent.hostname);
        value(o.field("port"), agent.http_port);
        value(o.field("registered_time"), agent.registered_time);
        agent.total.write_state_json(o.field("resources"));
        agent.used.write_state_json(o.field("used_resources"));
        agent.offered.write_state_json(o.field("offered_resources"));
        o.field("reserved_resources").extend_from_slice(b"{}");
        agent
            .total
            .write_state_json(o.field("unreserved_resources"));
        value(o.field("attributes"), &attributes);
        value(o.field("active"), true);
        value(o.field("deactivated"), false);
        value(o.field("version"), MESOS_VERSION);
        value(
            o.field("capabilities"),
            super::operator::AGENT_CAPABILITIES.map(|c| c.as_str_name()),
        );
        o.end();
    }

    /// A framework as upstream's state and `/master/frameworks` show it (`FullFrameworkWriter`);
    /// `live` for one still registered (a removed one is written once, when it is removed, and
    /// kept as JSON).
    pub(super) fn write_framework(&self, out: &mut Vec<u8>, framework: &Framework, live: bool) {
        let info = &framework.info;
        let capabilities: Vec<&str> = info
            .capabilities
            .iter()
            .filter_map(|c| c.r#type)
            .filter_map(|t| pb::framework_info::capability::Type::try_from(t).ok())
            .map(|t| t.as_str_name())
            .collect();
        #[expect(deprecated, reason = "upstream's state still shows FrameworkInfo.role")]
        let role = info.role.as_deref().unwrap_or("*");
        let connected = live && framework.stream().is_some();
        let mut o = Obj::new(out);
        value(o.field("id"), &framework.id);
        value(o.field("name"), &info.name);
        value(o.field("user"), &info.user);
        if let Some(principal) = &info.principal {
            value(o.field("principal"), principal);
        }
        value(o.field("hostname"), info.hostname.as_deref().unwrap_or(""));
        value(
            o.field("webui_url"),
            info.webui_url.as_deref().unwrap_or(""),
        );
        value(
            o.field("failover_timeout"),
            info.failover_timeout.unwrap_or(0.0),
        );
        value(o.field("checkpoint"), info.checkpoint.unwrap_or(false));
        // Upstream mirrors the FrameworkInfo: `roles` for MULTI_ROLE frameworks, else `role`.
        if framework.has(pb::framework_info::capability::Type::MultiRole) {
            value(o.field("roles"), framework.roles());
        } else {
            value(o.field("role"), role);
        }
        value(o.field("capabilities"), &capabilities);
        value(o.field("active"), connected);
        value(o.field("connected"), connected);
        value(
            o.field("recovered"),
            matches!(framework.conn, Conn::Recovered),
        );
        value(o.field("registered_time"), framework.registered_time);
        value(
            o.field("unregistered_time"),
            framework.unregistered_time.unwrap_or(0.0),
        );
        // The live tasks, in task id order, adding up what they use on the way.
        let mut used = Resources::default();
        {
            let mut tasks = Arr::new(o.field("tasks"));
            if live {
                for (task_id, task) in self.tasks.of_framework(&framework.id) {
                    if !super::state::is_terminal(task.state()) {
                        used.add(&task.resources);
                    }
                    write_task(tasks.item(), &framework.id, task_id, task);
                }
            }
            tasks.end();
        }
        used.write_state_json(o.field("resources"));
        used.write_state_json(o.field("used_resources"));
        {
            let mut tasks = Arr::new(o.field("unreachable_tasks"));
            for (task_id, task) in framework.unreachable_tasks.iter() {
                write_task(tasks.item(), &framework.id, task_id, task);
            }
            tasks.end();
        }
        {
            let mut tasks = Arr::new(o.field("completed_tasks"));
            for (task_id, task) in &framework.completed_tasks {
                write_task(tasks.item(), &framework.id, task_id, task);
            }
            tasks.end();
        }
        let mut offered = Resources::default();
        {
            let mut offers = Arr::new(o.field("offers"));
            for (id, offer) in framework
                .offers
                .iter()
                .filter_map(|id| self.offers.get(id).map(|o| (id, o)))
            {
                offered.add(&offer.resources);
                let mut entry = Obj::new(offers.item());
                value(entry.field("id"), id);
                value(entry.field("framework_id"), &offer.framework_id);
                value(entry.field("slave_id"), &offer.agent_id);
                offer.resources.write_state_json(entry.field("resources"));
                entry.end();
            }
            offers.end();
        }
        offered.write_state_json(o.field("offered_resources"));
        o.field("executors").extend_from_slice(b"[]");
        if let Some(labels) = &info.labels {
            write_labels(o.field("labels"), labels);
        }
        o.field("offer_constraints").extend_from_slice(b"{}");
        o.end();
    }
}

/// A task as upstream's `model(Task)` writes it.
pub(super) fn write_task(out: &mut Vec<u8>, framework_id: &str, task_id: &str, task: &Task) {
    let mut o = Obj::new(out);
    value(o.field("id"), task_id);
    value(o.field("name"), &task.name);
    value(o.field("framework_id"), framework_id);
    value(
        o.field("executor_id"),
        task.extras().executor_id.as_deref().unwrap_or(""),
    );
    value(o.field("slave_id"), &*task.agent_id);
    value(o.field("state"), state_name(task.state()));
    task.resources.write_state_json(o.field("resources"));
    value(o.field("role"), &*task.role);
    {
        let mut statuses = Arr::new(o.field("statuses"));
        for status in &task.statuses {
            let mut s = Obj::new(statuses.item());
            value(s.field("state"), state_name(status.state));
            value(s.field("timestamp"), status.timestamp);
            if let Some(healthy) = status.healthy {
                value(s.field("healthy"), healthy);
            }
            if let Some(container_status) = status.container_status() {
                write_container_status(s.field("container_status"), &container_status);
            }
            s.end();
        }
        statuses.end();
    }
    if let Some(labels) = &task.extras().labels {
        write_labels(o.field("labels"), labels);
    }
    if let Some(time) = task.extras().unreachable_time {
        let mut t = Obj::new(o.field("unreachable_time"));
        value(t.field("nanoseconds"), (time * 1e9) as i64);
        t.end();
    }
    o.end();
}

/// `Labels` as upstream writes a task's labels: the array of `{key, value}`.
fn write_labels(out: &mut Vec<u8>, labels: &pb::Labels) {
    let mut list = Arr::new(out);
    for label in &labels.labels {
        let mut o = Obj::new(list.item());
        value(o.field("key"), &label.key);
        if let Some(v) = &label.value {
            value(o.field("value"), v);
        }
        o.end();
    }
    list.end();
}

/// A `ContainerStatus` in the generic JSON mapping. The shape agents produce (a container id
/// without parent, network infos with only IP addresses, an executor pid) is written directly;
/// anything else goes through `mesos::json`.
fn write_container_status(out: &mut Vec<u8>, status: &pb::ContainerStatus) {
    let plain_networks = status.network_infos.iter().all(|n| {
        n.name.is_none()
            && n.groups.is_empty()
            && n.labels.is_none()
            && n.port_mappings.is_empty()
            && n.ip_addresses.iter().all(|ip| {
                ip.protocol
                    .is_none_or(|p| pb::network_info::Protocol::try_from(p).is_ok())
            })
    });
    let plain = status.cgroup_info.is_none()
        && status
            .container_id
            .as_ref()
            .is_none_or(|c| c.parent.is_none())
        && plain_networks;
    if !plain {
        value(out, crate::mesos::json::to_value(status));
        return;
    }
    let mut o = Obj::new(out);
    if let Some(container_id) = &status.container_id {
        let mut c = Obj::new(o.field("container_id"));
        value(c.field("value"), &container_id.value);
        c.end();
    }
    if !status.network_infos.is_empty() {
        let mut networks = Arr::new(o.field("network_infos"));
        for network in &status.network_infos {
            let mut n = Obj::new(networks.item());
            if !network.ip_addresses.is_empty() {
                let mut ips = Arr::new(n.field("ip_addresses"));
                for ip in &network.ip_addresses {
                    let mut i = Obj::new(ips.item());
                    if let Some(protocol) = ip
                        .protocol
                        .and_then(|p| pb::network_info::Protocol::try_from(p).ok())
                    {
                        value(i.field("protocol"), protocol.as_str_name());
                    }
                    if let Some(address) = &ip.ip_address {
                        value(i.field("ip_address"), address);
                    }
                    i.end();
                }
                ips.end();
            }
            n.end();
        }
        networks.end();
    }
    if let Some(pid) = status.executor_pid {
        value(o.field("executor_pid"), pid);
    }
    o.end();
}

/// Attribute values as upstream's state writes them: scalars as numbers, the rest as text.
pub(super) fn attribute_value(a: &pb::Attribute) -> Value {
    match ValueType::try_from(a.r#type) {
        Ok(ValueType::Scalar) => Value::from(a.scalar.map_or(0.0, |s| s.value)),
        Ok(ValueType::Text) => {
            Value::from(a.text.as_ref().map(|t| t.value.clone()).unwrap_or_default())
        }
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
            Value::from(format!("[{}]", parts.join(", ")))
        }
        Ok(ValueType::Set) => {
            let items = a
                .set
                .as_ref()
                .map(|s| s.item.join(", "))
                .unwrap_or_default();
            Value::from(format!("{{{items}}}"))
        }
        Err(_) => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal JSON writer: objects and arrays that place their own commas; values through serde
// (strings escaped and numbers formatted exactly as `serde_json` writes them).

/// Writes one JSON value.
pub(super) fn value(out: &mut Vec<u8>, v: impl Serialize) {
    // Writing into a Vec cannot fail, and these values always serialize.
    let _ = serde_json::to_writer(out, &v);
}

/// An object being written: `field` writes the separator and the key, then the value goes into
/// the returned buffer; `end` closes it.
pub(super) struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    pub fn field(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value(self.out, key);
        self.out.push(b':');
        self.out
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// An array being written: each `item` writes the separator, then the element goes into the
/// returned buffer; `end` closes it.
pub(super) struct Arr<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Arr<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'[');
        Arr { out, first: true }
    }

    pub fn item(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out
    }

    pub fn end(self) {
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::json::to_value;

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> Value {
        let mut out = Vec::new();
        f(&mut out);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    fn ip(protocol: Option<i32>, address: Option<&str>) -> pb::network_info::IpAddress {
        pb::network_info::IpAddress {
            protocol,
            ip_address: address.map(str::to_owned),
        }
    }

    fn container_status(
        networks: Vec<pb::NetworkInfo>,
        pid: Option<u32>,
        id: Option<&str>,
    ) -> pb::ContainerStatus {
        pb::ContainerStatus {
            container_id: id.map(|v| pb::ContainerId {
                value: v.to_owned(),
                parent: None,
            }),
            network_infos: networks,
            cgroup_info: None,
            executor_pid: pid,
        }
    }

    #[test]
    fn container_status_as_the_generic_mapping() {
        use pb::network_info::Protocol;
        let network = |ips| pb::NetworkInfo {
            ip_addresses: ips,
            ..Default::default()
        };
        let mut cases = vec![
            container_status(Vec::new(), None, None),
            container_status(
                vec![network(vec![ip(
                    Some(Protocol::IPv4 as i32),
                    Some("127.0.0.1"),
                )])],
                None,
                Some("c-1"),
            ),
            container_status(
                vec![
                    network(vec![
                        ip(Some(Protocol::IPv6 as i32), Some("::1")),
                        ip(None, Some("10.0.0.1")),
                        ip(Some(Protocol::IPv4 as i32), None),
                    ]),
                    network(Vec::new()),
                ],
                Some(4242),
                Some("quote\"and\\slash"),
            ),
            // Outside the direct shape: through the generic mapping.
            container_status(vec![network(vec![ip(Some(99), None)])], None, None),
            container_status(
                vec![pb::NetworkInfo {
                    name: Some("overlay".into()),
                    groups: vec!["g".into()],
                    ..Default::default()
                }],
                None,
                None,
            ),
        ];
        let mut nested = container_status(Vec::new(), None, Some("child"));
        nested.container_id.as_mut().unwrap().parent = Some(Box::new(pb::ContainerId {
            value: "parent".into(),
            parent: None,
        }));
        cases.push(nested);
        // What the dev cluster's agents report.
        let factory = crate::devcluster::agent::test_status_factory("A-S0", "127.0.0.1");
        for pid in [None, Some(7)] {
            let running = factory.running("t", "c", pid);
            cases.push(running.container_status.unwrap());
        }
        for case in cases {
            let mine = written(|out| write_container_status(out, &case));
            assert_eq!(mine, to_value(&case), "{case:?}");
        }
    }

    #[test]
    fn labels_as_the_generic_mapping() {
        let labels = pb::Labels {
            labels: vec![
                pb::Label {
                    key: "a".into(),
                    value: Some("1".into()),
                },
                pb::Label {
                    key: "no-value".into(),
                    value: None,
                },
                pb::Label {
                    key: "ünïcode\n".into(),
                    value: Some(String::new()),
                },
            ],
        };
        let mine = written(|out| write_labels(out, &labels));
        assert_eq!(mine, to_value(&labels)["labels"]);
        let empty = written(|out| write_labels(out, &pb::Labels::default()));
        assert_eq!(empty, serde_json::json!([]));
    }

    #[test]
    fn writer_places_commas() {
        let doc = written(|out| {
            let mut o = Obj::new(out);
            value(o.field("a"), 1);
            {
                let mut list = Arr::new(o.field("b"));
                value(list.item(), "x");
                let mut inner = Obj::new(list.item());
                value(inner.field("c"), 0.5);
                inner.end();
                list.end();
            }
            Arr::new(o.field("empty")).end();
            o.end();
        });
        assert_eq!(
            doc,
            serde_json::json!({"a": 1, "b": ["x", {"c": 0.5}], "empty": []})
        );
    }
}
