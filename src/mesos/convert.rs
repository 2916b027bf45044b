//! Conversions between wire types and the crate's own model, so that no prost type leaves `mesos/`:
//! offers and status updates coming in, and the `FrameworkInfo` and `TaskInfo`s going out.
//!
//! The TaskInfo built here is the whole contract between a spec and Mesos: every field of the task
//! spec maps to exactly one place in it (see `task_info`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesos::proto::v1 as pb;
use crate::model::{Offer, Resources, TaskId, TaskState, TaskUpdate, UpdateSource};
use crate::spec::model::{Command, ContainerKind, HealthKind, HttpScheme, Spec};

/// Labels the controller adds to every task it launches, so an operator (or a controller whose
/// ledger was lost) can tell which spec, generation and instance a task belongs to.
pub mod labels {
    pub const SPEC: &str = "mesos-reconciler.spec";
    pub const GENERATION: &str = "mesos-reconciler.generation";
    pub const INSTANCE: &str = "mesos-reconciler.instance";
}

/// A wire message the crate cannot represent.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("task status for {task_id} has unknown state number {state}")]
    UnknownState { task_id: String, state: i32 },
}

/// What the controller says about itself when it subscribes.
#[derive(Debug, Clone)]
pub struct FrameworkSettings {
    pub name: String,
    pub user: String,
    /// Every role the framework's specs use, the default role first.
    pub roles: Vec<String>,
    pub principal: Option<String>,
    pub failover_timeout: Duration,
    pub hostname: Option<String>,
    pub webui_url: Option<String>,
}

/// The FrameworkInfo for SUBSCRIBE: MULTI_ROLE (one offer per role, so each spec's role is honoured),
/// PARTITION_AWARE (UNREACHABLE instead of LOST, so a partitioned instance is not taken for dead),
/// TASK_KILLING_STATE and GPU_RESOURCES; checkpointing on so tasks survive agent restarts.
pub fn framework_info(settings: &FrameworkSettings, id: Option<&str>) -> pb::FrameworkInfo {
    use pb::framework_info::{Capability, capability::Type};
    let capabilities = [
        Type::MultiRole,
        Type::PartitionAware,
        Type::TaskKillingState,
        Type::GpuResources,
    ]
    .into_iter()
    .map(|t| Capability {
        r#type: Some(t as i32),
    })
    .collect();
    pb::FrameworkInfo {
        user: settings.user.clone(),
        name: settings.name.clone(),
        id: id.map(|value| pb::FrameworkId {
            value: value.to_owned(),
        }),
        failover_timeout: Some(settings.failover_timeout.as_secs_f64()),
        checkpoint: Some(true),
        roles: settings.roles.clone(),
        hostname: settings.hostname.clone(),
        principal: settings.principal.clone(),
        webui_url: settings.webui_url.clone(),
        capabilities,
        ..Default::default()
    }
}

/// Reduces an offer to what placement needs. Only resources usable by the offer's role count:
/// unreserved ones and those reserved for that role; disk with persistence or a source (volumes,
/// mount disks) and revocable resources are left out, since specs never ask for them.
pub fn offer_from_wire(offer: &pb::Offer) -> Offer {
    let role = offer
        .allocation_info
        .as_ref()
        .and_then(|a| a.role.clone())
        .unwrap_or_else(|| "*".to_owned());
    let mut resources = Resources::default();
    for r in &offer.resources {
        if r.revocable.is_some()
            || r.disk
                .as_ref()
                .is_some_and(|d| d.persistence.is_some() || d.source.is_some())
        {
            continue;
        }
        let scalar = r.scalar.as_ref().map_or(0.0, |s| s.value);
        match r.name.as_str() {
            "cpus" => resources.cpus += scalar,
            "mem" => resources.mem += scalar,
            "disk" => resources.disk += scalar,
            "gpus" => resources.gpus += scalar,
            "ports" => {
                if let Some(ranges) = &r.ranges {
                    resources
                        .ports
                        .extend(ranges.range.iter().map(|rg| (rg.begin, rg.end)));
                }
            }
            _ => {}
        }
    }
    resources.ports.sort_unstable();
    let attributes = offer
        .attributes
        .iter()
        .map(|a| (a.name.clone(), attribute_text(a)))
        .collect::<BTreeMap<_, _>>();
    Offer {
        id: offer.id.value.clone(),
        agent_id: offer.agent_id.value.clone(),
        hostname: offer.hostname.clone(),
        role,
        resources,
        attributes,
    }
}

/// An attribute's value as Mesos prints it: text as is, scalars as numbers, ranges as `[a-b,c-d]`,
/// sets as `{a,b}`.
fn attribute_text(a: &pb::Attribute) -> String {
    if let Some(t) = &a.text {
        return t.value.clone();
    }
    if let Some(s) = &a.scalar {
        return format_scalar(s.value);
    }
    if let Some(r) = &a.ranges {
        let parts: Vec<String> = r
            .range
            .iter()
            .map(|rg| format!("{}-{}", rg.begin, rg.end))
            .collect();
        return format!("[{}]", parts.join(","));
    }
    if let Some(s) = &a.set {
        return format!("{{{}}}", s.item.join(","));
    }
    String::new()
}

fn format_scalar(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Converts a status update. The reason loses its `REASON_` prefix (`AGENT_REMOVED`).
pub fn update_from_wire(status: &pb::TaskStatus) -> Result<TaskUpdate, ConvertError> {
    use pb::TaskState as W;
    let state = match W::try_from(status.state) {
        Ok(W::TaskStaging) => TaskState::Staging,
        Ok(W::TaskStarting) => TaskState::Starting,
        Ok(W::TaskRunning) => TaskState::Running,
        Ok(W::TaskKilling) => TaskState::Killing,
        Ok(W::TaskFinished) => TaskState::Finished,
        Ok(W::TaskFailed) => TaskState::Failed,
        Ok(W::TaskKilled) => TaskState::Killed,
        Ok(W::TaskError) => TaskState::Error,
        Ok(W::TaskLost) => TaskState::Lost,
        Ok(W::TaskDropped) => TaskState::Dropped,
        Ok(W::TaskUnreachable) => TaskState::Unreachable,
        Ok(W::TaskGone) => TaskState::Gone,
        Ok(W::TaskGoneByOperator) => TaskState::GoneByOperator,
        Ok(W::TaskUnknown) => TaskState::Unknown,
        Err(_) => {
            return Err(ConvertError::UnknownState {
                task_id: status.task_id.value.clone(),
                state: status.state,
            });
        }
    };
    let source = status
        .source
        .and_then(|s| pb::task_status::Source::try_from(s).ok())
        .map(|s| match s {
            pb::task_status::Source::Master => UpdateSource::Master,
            pb::task_status::Source::Agent => UpdateSource::Agent,
            pb::task_status::Source::Executor => UpdateSource::Executor,
        });
    let reason = status.reason.map(|r| {
        pb::task_status::Reason::try_from(r)
            .map(|r| r.as_str_name().trim_start_matches("REASON_").to_owned())
            .unwrap_or_else(|_| format!("UNKNOWN_REASON_{r}"))
    });
    Ok(TaskUpdate {
        task_id: TaskId(status.task_id.value.clone()),
        state,
        agent_id: status.agent_id.as_ref().map(|a| a.value.clone()),
        source,
        reason,
        message: status.message.clone(),
        healthy: status.healthy,
        uuid: status.uuid.clone().filter(|u| !u.is_empty()),
        timestamp: status.timestamp,
    })
}

/// Everything about one launch that is not in the spec.
#[derive(Debug, Clone)]
pub struct LaunchTarget<'a> {
    pub task_id: &'a TaskId,
    pub agent_id: &'a str,
    /// The role of the offer the task is launched from.
    pub role: &'a str,
    pub generation: &'a str,
    pub instance: u32,
    /// Exactly what the task takes from the offer, ports included.
    pub resources: &'a Resources,
    /// The host ports chosen, in `PORT0..` order.
    pub ports: &'a [u64],
}

/// Builds the TaskInfo for one instance of a spec: name = spec id; command (shell or argv), env,
/// uris and user; container; kill policy (SIGTERM, SIGKILL after `kill_grace`); health check;
/// labels (the spec's plus the controller's own); resources allocated to the offer's role.
pub fn task_info(spec: &Spec, target: &LaunchTarget<'_>) -> pb::TaskInfo {
    let mut command = match &spec.command {
        Command::Shell(value) => pb::CommandInfo {
            shell: Some(true),
            value: Some(value.clone()),
            ..Default::default()
        },
        Command::Argv(args) => pb::CommandInfo {
            shell: Some(false),
            value: args.first().cloned(),
            arguments: args.clone(),
            ..Default::default()
        },
    };
    if !spec.env.is_empty() {
        command.environment = Some(pb::Environment {
            variables: spec
                .env
                .iter()
                .map(|(name, value)| pb::environment::Variable {
                    name: name.clone(),
                    r#type: Some(pb::environment::variable::Type::Value as i32),
                    value: Some(value.clone()),
                    secret: None,
                })
                .collect(),
        });
    }
    command.uris = spec
        .uris
        .iter()
        .map(|u| pb::command_info::Uri {
            value: u.url.clone(),
            executable: Some(u.executable),
            extract: Some(u.extract),
            cache: None,
            output_file: None,
        })
        .collect();
    command.user = spec.user.clone();

    let container = spec.container.as_ref().map(|c| match c.kind {
        ContainerKind::Docker => pb::ContainerInfo {
            r#type: pb::container_info::Type::Docker as i32,
            docker: Some(pb::container_info::DockerInfo {
                image: c.image.clone(),
                network: Some(pb::container_info::docker_info::Network::Host as i32),
                ..Default::default()
            }),
            ..Default::default()
        },
        ContainerKind::Mesos => pb::ContainerInfo {
            r#type: pb::container_info::Type::Mesos as i32,
            mesos: Some(pb::container_info::MesosInfo {
                image: Some(pb::Image {
                    r#type: pb::image::Type::Docker as i32,
                    docker: Some(pb::image::Docker {
                        name: c.image.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        },
    });

    let health_check = spec.health.as_ref().map(|h| {
        let mut hc = pb::HealthCheck {
            // The spec's `grace` covers start-up, so checks may begin at once.
            delay_seconds: Some(0.0),
            interval_seconds: Some(h.interval.as_secs_f64()),
            timeout_seconds: Some(h.timeout.as_secs_f64()),
            consecutive_failures: Some(h.max_failures),
            grace_period_seconds: Some(h.grace.as_secs_f64()),
            ..Default::default()
        };
        let port = |index: u32| {
            target
                .ports
                .get(index as usize)
                .copied()
                .unwrap_or_default() as u32
        };
        match &h.kind {
            HealthKind::Command(value) => {
                hc.r#type = Some(pb::health_check::Type::Command as i32);
                hc.command = Some(pb::CommandInfo {
                    shell: Some(true),
                    value: Some(value.clone()),
                    ..Default::default()
                });
            }
            HealthKind::Http {
                port_index,
                path,
                scheme,
            } => {
                hc.r#type = Some(pb::health_check::Type::Http as i32);
                hc.http = Some(pb::health_check::HttpCheckInfo {
                    scheme: Some(
                        match scheme {
                            HttpScheme::Http => "http",
                            HttpScheme::Https => "https",
                        }
                        .to_owned(),
                    ),
                    port: port(*port_index),
                    path: Some(path.clone()),
                    ..Default::default()
                });
            }
            HealthKind::Tcp { port_index } => {
                hc.r#type = Some(pb::health_check::Type::Tcp as i32);
                hc.tcp = Some(pb::health_check::TcpCheckInfo {
                    port: port(*port_index),
                    ..Default::default()
                });
            }
        }
        hc
    });

    let task_labels = pb::Labels::from_pairs(
        spec.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([
                (labels::SPEC.to_owned(), spec.id.as_str().to_owned()),
                (labels::GENERATION.to_owned(), target.generation.to_owned()),
                (labels::INSTANCE.to_owned(), target.instance.to_string()),
            ]),
    );

    pb::TaskInfo {
        name: spec.id.as_str().to_owned(),
        task_id: pb::TaskId {
            value: target.task_id.0.clone(),
        },
        agent_id: pb::AgentId {
            value: target.agent_id.to_owned(),
        },
        resources: wire_resources(target.resources, target.role),
        command: Some(command),
        container,
        health_check,
        kill_policy: Some(pb::KillPolicy {
            grace_period: Some(pb::DurationInfo {
                nanoseconds: i64::try_from(spec.kill_grace.as_nanos()).unwrap_or(i64::MAX),
            }),
        }),
        labels: Some(task_labels),
        ..Default::default()
    }
}

/// Resources in wire form, allocated to `role` (MULTI_ROLE frameworks must say which allocation
/// they draw from). Zero scalars are left out, as Mesos rejects empty resources.
pub fn wire_resources(r: &Resources, role: &str) -> Vec<pb::Resource> {
    let allocation = || {
        Some(pb::resource::AllocationInfo {
            role: Some(role.to_owned()),
        })
    };
    let scalar = |name: &str, value: f64| pb::Resource {
        allocation_info: allocation(),
        ..pb::Resource::scalar(name, value)
    };
    let mut out = Vec::new();
    for (name, value) in [
        ("cpus", r.cpus),
        ("mem", r.mem),
        ("disk", r.disk),
        ("gpus", r.gpus),
    ] {
        if value > 0.0 {
            out.push(scalar(name, value));
        }
    }
    if !r.ports.is_empty() {
        out.push(pb::Resource {
            name: "ports".to_owned(),
            r#type: pb::value::Type::Ranges as i32,
            ranges: Some(pb::value::Ranges {
                range: r
                    .ports
                    .iter()
                    .map(|&(begin, end)| pb::value::Range { begin, end })
                    .collect(),
            }),
            allocation_info: allocation(),
            ..Default::default()
        });
    }
    out
}
