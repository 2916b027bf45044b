//! Every field of the task spec reaches Mesos in the TaskInfo; health checks gate rollouts (a new
//! generation that never turns healthy never replaces the old one, one that misses
//! `update.deadline` stops the rollout); an instance on a partitioned agent is replaced after
//! `unreachable_after` and the surplus copy is killed when the agent comes back.

use mesos_reconciler::devcluster::AgentSpecKind;
use mesos_reconciler::mesos::proto::v1 as pb;

use crate::e2e::*;

const FULL: &str = r#"
command = "exec sleep 300"
cpus = 0.25
mem = 48
disk = 10
ports = 2
restart = "always"
user = "nobody"
role = "web"
kill_grace = "7s"
unreachable_after = "2m"

[env]
GREETING = "hello"
PATH_EXTRA = "/opt/bin"

[labels]
team = "a"
tier = "front"

[[uris]]
url = "https://example.org/app.tar.gz"

[[uris]]
url = "https://example.org/tool"
extract = false
executable = true

[container]
image = "python:3.12-slim"
kind = "docker"

[health]
http = { port_index = 1, path = "/ready" }
interval = "3s"
timeout = "2s"
grace = "20s"
max_failures = 4
"#;

const ARGV: &str = r#"
args = ["/bin/sleep", "300"]
mem = 20
ports = 1

[container]
image = "busybox"

[health]
tcp = { port_index = 0 }
"#;

fn scalar(info: &pb::TaskInfo, name: &str) -> Option<f64> {
    info.resources
        .iter()
        .find(|r| r.name == name)
        .and_then(|r| r.scalar.map(|s| s.value))
}

fn ports(info: &pb::TaskInfo) -> Vec<u64> {
    info.resources
        .iter()
        .filter(|r| r.name == "ports")
        .flat_map(|r| r.ranges.iter().flat_map(|rs| rs.range.iter()))
        .flat_map(|r| r.begin..=r.end)
        .collect()
}

fn roles(info: &pb::TaskInfo) -> Vec<String> {
    info.resources
        .iter()
        .map(|r| {
            r.allocation_info
                .as_ref()
                .and_then(|a| a.role.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn every_spec_field_reaches_mesos_in_the_task_info() {
    let w = world("fields", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    // Written after the controller subscribed: the role `web` is new to it.
    w.write_spec("team-a/full", FULL);
    w.write_spec("argv", ARGV.trim_start());
    w.wait_running(&ctl, "team-a/full", 1).await;
    w.wait_running(&ctl, "argv", 1).await;

    let infos = w.cluster.received_task_infos().await;
    let full = infos.iter().find(|i| i.name == "team-a/full").unwrap();
    assert!(
        full.task_id.value.starts_with("team-a_full.0.g"),
        "{}",
        full.task_id.value
    );

    // Resources, from the offer of the spec's role.
    assert_eq!(scalar(full, "cpus"), Some(0.25));
    assert_eq!(scalar(full, "mem"), Some(48.0));
    assert_eq!(scalar(full, "disk"), Some(10.0));
    assert_eq!(scalar(full, "gpus"), None, "zero gpus are left out");
    let full_ports = ports(full);
    assert_eq!(full_ports.len(), 2);
    assert!(roles(full).iter().all(|r| r == "web"), "{:?}", roles(full));

    // Command, environment, user, uris.
    let cmd = full.command.as_ref().unwrap();
    assert_eq!(cmd.shell, Some(true));
    assert_eq!(cmd.value.as_deref(), Some("exec sleep 300"));
    assert_eq!(cmd.user.as_deref(), Some("nobody"));
    let env: Vec<(String, Option<String>)> = cmd
        .environment
        .iter()
        .flat_map(|e| e.variables.iter())
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    assert_eq!(
        env,
        [
            ("GREETING".to_owned(), Some("hello".to_owned())),
            ("PATH_EXTRA".to_owned(), Some("/opt/bin".to_owned()))
        ]
    );
    let uris: Vec<(&str, Option<bool>, Option<bool>)> = cmd
        .uris
        .iter()
        .map(|u| (u.value.as_str(), u.extract, u.executable))
        .collect();
    assert_eq!(
        uris,
        [
            ("https://example.org/app.tar.gz", Some(true), Some(false)),
            ("https://example.org/tool", Some(false), Some(true))
        ]
    );

    // Container.
    let container = full.container.as_ref().unwrap();
    assert_eq!(container.r#type, pb::container_info::Type::Docker as i32);
    assert_eq!(
        container.docker.as_ref().map(|d| d.image.as_str()),
        Some("python:3.12-slim")
    );

    // Kill policy.
    let grace = full
        .kill_policy
        .as_ref()
        .and_then(|k| k.grace_period.as_ref())
        .map(|d| d.nanoseconds);
    assert_eq!(grace, Some(7_000_000_000));

    // Health check: HTTP on the second port.
    let hc = full.health_check.as_ref().unwrap();
    assert_eq!(hc.r#type, Some(pb::health_check::Type::Http as i32));
    let http = hc.http.as_ref().unwrap();
    assert_eq!(u64::from(http.port), full_ports[1]);
    assert_eq!(http.path.as_deref(), Some("/ready"));
    assert_eq!(http.scheme.as_deref(), Some("http"));
    assert_eq!(hc.interval_seconds, Some(3.0));
    assert_eq!(hc.timeout_seconds, Some(2.0));
    assert_eq!(hc.grace_period_seconds, Some(20.0));
    assert_eq!(hc.consecutive_failures, Some(4));

    // Labels: the spec's own and the controller's.
    let labels = labels_of(full);
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(
        labels.get("mesos-reconciler.spec").map(String::as_str),
        Some("team-a/full")
    );
    assert_eq!(
        labels.get("mesos-reconciler.instance").map(String::as_str),
        Some("0")
    );
    let snap = ctl.status().await;
    let generation = spec_of(&snap, "team-a/full")
        .unwrap()
        .generation
        .clone()
        .unwrap();
    assert!(
        labels["mesos-reconciler.generation"].starts_with(&generation),
        "{labels:?} vs {generation}"
    );

    // The argv form: exec'd directly, the default role, the unified containerizer, a TCP check.
    let argv = infos.iter().find(|i| i.name == "argv").unwrap();
    let cmd = argv.command.as_ref().unwrap();
    assert_eq!(cmd.shell, Some(false));
    assert_eq!(cmd.value.as_deref(), Some("/bin/sleep"));
    assert_eq!(cmd.arguments, ["/bin/sleep", "300"]);
    assert_eq!(cmd.user, None, "the framework's user applies");
    assert!(roles(argv).iter().all(|r| r == "*"), "{:?}", roles(argv));
    assert_eq!(scalar(argv, "cpus"), Some(0.1), "the default cpus");
    let container = argv.container.as_ref().unwrap();
    assert_eq!(container.r#type, pb::container_info::Type::Mesos as i32);
    let image = container
        .mesos
        .as_ref()
        .and_then(|m| m.image.as_ref())
        .unwrap();
    assert_eq!(
        image.docker.as_ref().map(|d| d.name.as_str()),
        Some("busybox")
    );
    let hc = argv.health_check.as_ref().unwrap();
    assert_eq!(hc.r#type, Some(pb::health_check::Type::Tcp as i32));
    assert_eq!(u64::from(hc.tcp.as_ref().unwrap().port), ports(argv)[0]);
    assert_eq!(
        argv.kill_policy
            .as_ref()
            .and_then(|k| k.grace_period.as_ref())
            .map(|d| d.nanoseconds),
        Some(5_000_000_000),
        "the default kill grace"
    );
    ctl.stop().await;
    w.shutdown().await;
}

fn health_spec(command: &str, check: &str, deadline: &str) -> String {
    format!(
        "command = \"{command}\"\ncpus = 0.1\nmem = 16\n\n[health]\ncommand = \"{check}\"\ninterval = \"200ms\"\ntimeout = \"1s\"\ngrace = \"60s\"\nmax_failures = 3\n\n[update]\nstrategy = \"rolling\"\ndeadline = \"{deadline}\"\n"
    )
}

#[tokio::test]
async fn rollouts_wait_for_healthy_and_stop_at_the_deadline_with_the_old_generation_running() {
    let w = world("health", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("svc", &health_spec("sleep 300", "true", "10m"));
    let old = w.wait_running(&ctl, "svc", 1).await.remove(0);
    ctl.wait_status("the first generation to be healthy", |s| {
        match s.tasks.iter().find(|t| t.task_id == old.id) {
            Some(t) if t.healthy == Some(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // A new generation whose check never passes (its grace keeps it from being killed): it
    // runs, but never replaces the old task.
    w.write_spec("svc", &health_spec("sleep 301", "false", "10m"));
    let new = w
        .wait(
            &ctl,
            "the new generation to run next to the old one",
            async || {
                let live = w.live_tasks("svc").await;
                let new: Vec<_> = live.iter().filter(|t| t.id != old.id).cloned().collect();
                match new.as_slice() {
                    [n] if n.state == "TASK_RUNNING" && live.len() == 2 => Ok(n.clone()),
                    _ => Err(describe_tasks(&live)),
                }
            },
        )
        .await;
    let snap = w.settle(&ctl, 5).await;
    let live = w.live_tasks("svc").await;
    assert_eq!(live.len(), 2, "{}", describe_tasks(&live));
    assert!(
        live.iter()
            .any(|t| t.id == old.id && t.state == "TASK_RUNNING")
    );
    let rollout = spec_of(&snap, "svc")
        .unwrap()
        .rollout
        .clone()
        .unwrap_or_default();
    assert!(rollout.contains("rolling out"), "{rollout}");

    // A newer edit with a short deadline replaces that rollout; its task misses the deadline,
    // the rollout stops, and the old generation still runs.
    w.write_spec("svc", &health_spec("sleep 302", "false", "2s"));
    let rollout = ctl
        .wait_status("the rollout to stop at its deadline", |s| {
            let r = spec_of(s, "svc")
                .and_then(|x| x.rollout.clone())
                .unwrap_or_default();
            if r.contains("stopped") { Ok(r) } else { Err(r) }
        })
        .await;
    assert!(rollout.contains("deadline"), "{rollout}");
    assert!(
        rollout.contains("the old generation keeps running"),
        "{rollout}"
    );
    w.wait(&ctl, "only the old task to run", async || {
        let live = w.live_tasks("svc").await;
        match live.as_slice() {
            [t] if t.id == old.id && t.state == "TASK_RUNNING" => Ok(()),
            _ => Err(describe_tasks(&live)),
        }
    })
    .await;
    let ended = w.master_tasks().await;
    let state_of = |id: &str| ended.iter().find(|t| t.id == id).map(|t| t.state.clone());
    assert_eq!(state_of(&new.id).as_deref(), Some("TASK_KILLED"));
    let infos = w.cluster.received_task_infos().await;
    assert_eq!(
        infos.iter().map(command_of).collect::<Vec<_>>(),
        ["sleep 300", "sleep 301", "sleep 302"]
    );

    // A generation that turns healthy replaces the old task, and the rollout is over.
    w.write_spec("svc", &health_spec("sleep 303", "true", "10m"));
    w.wait(
        &ctl,
        "the healthy generation to replace the old task",
        async || {
            let live = w.live_tasks("svc").await;
            let infos = w.cluster.received_task_infos().await;
            let command = |t: &MasterTask| {
                infos
                    .iter()
                    .find(|i| i.task_id.value == t.id)
                    .map(command_of)
                    .unwrap_or_default()
            };
            match live.as_slice() {
                [t] if command(t) == "sleep 303" && t.state == "TASK_RUNNING" => Ok(()),
                _ => Err(describe_tasks(&live)),
            }
        },
    )
    .await;
    ctl.wait_status("the rollout to be over", |s| {
        match spec_of(s, "svc").map(|x| (x.rollout.clone(), x.running)) {
            Some((None, 1)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let snap = ctl.status().await;
    assert_eq!(snap.tasks.len(), 1);
    assert_eq!(
        snap.tasks[0].healthy,
        Some(true),
        "replaced only once healthy"
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn an_instance_on_a_partitioned_agent_is_replaced_and_the_surplus_killed_on_return() {
    let w = world(
        "partition",
        vec![
            agent_named(AgentSpecKind::Virtual, "host-a"),
            agent_named(AgentSpecKind::Virtual, "host-b"),
        ],
    )
    .await;
    let ctl = w.start_controller().await;
    w.write_spec(
        "svc",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\nunreachable_after = \"1s\"\n",
    );
    let first = w.wait_running(&ctl, "svc", 1).await.remove(0);
    w.cluster
        .faults()
        .partition_agent(&first.agent)
        .await
        .unwrap();

    let replacement = w
        .wait(&ctl, "a replacement after unreachable_after", async || {
            let live = w.live_tasks("svc").await;
            let others: Vec<_> = live.iter().filter(|t| t.id != first.id).collect();
            match others.as_slice() {
                [t] if t.state == "TASK_RUNNING" => Ok((*t).clone()),
                _ => Err(describe_tasks(&live)),
            }
        })
        .await;
    assert_ne!(replacement.agent, first.agent);
    let snap = ctl.status().await;
    let rows = &spec_of(&snap, "svc").unwrap().history;
    let old_row = rows.iter().find(|a| a.task_id == first.id).unwrap();
    assert_eq!(old_row.state, "TASK_UNREACHABLE");
    assert_eq!(
        snap.counters.failures, 0,
        "an unreachable agent is not a failure"
    );

    let healed = w.cluster.faults().heal_agent(&first.agent).await.unwrap();
    assert_eq!(healed, first.agent);
    w.wait(&ctl, "the surplus copy to be killed", async || {
        let old = w
            .master_tasks()
            .await
            .into_iter()
            .find(|t| t.id == first.id);
        let live = w.live_tasks("svc").await;
        match old {
            Some(o) if o.state == "TASK_KILLED" && live.len() == 1 => Ok(()),
            _ => Err(describe_tasks(&live)),
        }
    })
    .await;
    let snap = w.settle(&ctl, 2).await;
    assert_eq!(w.live_tasks("svc").await, vec![replacement]);
    assert_eq!(snap.counters.launches, 2);
    ctl.stop().await;
    w.shutdown().await;
}
