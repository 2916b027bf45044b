//! Benchmark: how many ACCEPT calls per second the dev cluster's master sustains while launching
//! 10,000 virtual tasks over 100 agents, and the master's memory with them running.
//!
//! The master runs as its own process (`mesos-reconciler devcluster --virtual-agents`), so its
//! RSS is its own. This program is a plain scheduler on our client: it subscribes, and for every
//! offer sends one ACCEPT launching one task (refuse filter 0, so the rest of the agent is offered
//! again on the next allocation cycle). Up to `--in-flight` ACCEPTs are outstanding at once.
//!
//! Run: `cargo run --release --example bench_devcluster -- [--tasks 10000] [--agents 100]`
//! (build the binary first: `cargo build --release`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mesos_reconciler::mesos::client::{ClientConfig, SchedulerClient};
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::{Call, call, event};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let tasks = arg("--tasks", 10_000);
    let agents = arg("--agents", 100);
    let in_flight = arg("--in-flight", 16) as usize;

    let bin = std::env::var("MESOS_RECONCILER_BIN")
        .unwrap_or_else(|_| "target/release/mesos-reconciler".to_owned());
    let mut child = tokio::process::Command::new(&bin)
        .args([
            "devcluster",
            "--listen",
            "127.0.0.1:0",
            "--virtual-agents",
            "--agents",
            &agents.to_string(),
            "--agent-resources",
            "cpus:1000;mem:1000000;disk:1000000;ports:[31000-32000]",
            "--allocation-interval",
            "5ms",
        ])
        .env("MESOS_RECONCILER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {bin} (run `cargo build --release` first): {e}"))?;
    let pid = child.id().ok_or("no pid")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = lines
        .next_line()
        .await?
        .ok_or("the dev cluster printed no url")?;
    println!(
        "dev cluster {url} (pid {pid}): {agents} virtual agents; launching {tasks} tasks, one per ACCEPT, {in_flight} ACCEPTs in flight"
    );
    let rss_idle = rss_kib(pid);

    let client = SchedulerClient::new(ClientConfig::new(vec![url.parse()?]))?;
    let mut sub = client
        .subscribe(call::Subscribe {
            framework_info: pb::FrameworkInfo {
                user: "bench".into(),
                name: "bench".into(),
                capabilities: vec![pb::framework_info::Capability {
                    r#type: Some(pb::framework_info::capability::Type::PartitionAware as i32),
                }],
                ..Default::default()
            },
            ..Default::default()
        })
        .await?;
    let mut framework_id = None;
    let accepts = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(Semaphore::new(in_flight));
    let mut launched = 0u64;
    let mut running = BTreeSet::new();
    let mut started: Option<Instant> = None;
    while let Some(ev) = sub.events.next().await {
        let ev = ev?;
        match event::Type::try_from(ev.r#type.unwrap_or_default()) {
            Ok(event::Type::Subscribed) => {
                framework_id = ev.subscribed.map(|s| s.framework_id);
            }
            Ok(event::Type::Offers) => {
                let Some(fid) = framework_id.clone() else {
                    continue;
                };
                for offer in ev.offers.map(|o| o.offers).unwrap_or_default() {
                    if launched >= tasks {
                        decline(&client, &fid, offer.id).await;
                        continue;
                    }
                    started.get_or_insert_with(Instant::now);
                    let task = pb::TaskInfo {
                        name: "bench".into(),
                        task_id: pb::TaskId {
                            value: format!("bench-{launched}"),
                        },
                        agent_id: offer.agent_id.clone(),
                        resources: vec![scalar("cpus", 0.01), scalar("mem", 1.0)],
                        command: Some(pb::CommandInfo {
                            value: Some("sleep 3600".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    launched += 1;
                    let permit = limit.clone().acquire_owned().await?;
                    let (client, fid, accepts) = (client.clone(), fid.clone(), accepts.clone());
                    tokio::spawn(async move {
                        let call = Call {
                            framework_id: Some(fid),
                            r#type: Some(call::Type::Accept as i32),
                            accept: Some(call::Accept {
                                offer_ids: vec![offer.id],
                                operations: vec![pb::offer::Operation {
                                    r#type: Some(pb::offer::operation::Type::Launch as i32),
                                    launch: Some(pb::offer::operation::Launch {
                                        task_infos: vec![task],
                                    }),
                                    ..Default::default()
                                }],
                                filters: Some(pb::Filters {
                                    refuse_seconds: Some(0.0),
                                }),
                            }),
                            ..Default::default()
                        };
                        if let Err(e) = client.call(call).await {
                            eprintln!("accept failed: {e}");
                        }
                        accepts.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
            }
            Ok(event::Type::Update) => {
                let Some(status) = ev.update.map(|u| u.status) else {
                    continue;
                };
                if let (Some(uuid), Some(agent), Some(fid)) = (
                    status.uuid.clone(),
                    status.agent_id.clone(),
                    framework_id.clone(),
                ) {
                    let client = client.clone();
                    let task_id = status.task_id.clone();
                    tokio::spawn(async move {
                        let _ = client
                            .call(Call {
                                framework_id: Some(fid),
                                r#type: Some(call::Type::Acknowledge as i32),
                                acknowledge: Some(call::Acknowledge {
                                    agent_id: agent,
                                    task_id,
                                    uuid,
                                }),
                                ..Default::default()
                            })
                            .await;
                    });
                }
                if status.state == pb::TaskState::TaskRunning as i32 {
                    running.insert(status.task_id.value);
                    if running.len() as u64 == tasks {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    let started = started.ok_or("no offer arrived")?;
    let all_running = started.elapsed();
    // Wait for the last ACCEPT responses, so the rate counts answered calls only.
    while accepts.load(Ordering::Relaxed) < launched {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let accept_window = started.elapsed();
    let n_accepts = accepts.load(Ordering::Relaxed);
    // Let the master settle (acknowledgements in flight) before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_busy = rss_kib(pid);
    println!(
        "ACCEPT calls: {n_accepts} answered in {:.2} s -> {:.0} ACCEPT/s (first offer to last 202)",
        accept_window.as_secs_f64(),
        n_accepts as f64 / accept_window.as_secs_f64()
    );
    println!(
        "all {tasks} tasks TASK_RUNNING after {:.2} s -> {:.0} tasks/s end to end",
        all_running.as_secs_f64(),
        tasks as f64 / all_running.as_secs_f64()
    );
    println!(
        "master RSS: {} MiB idle with {agents} agents, {} MiB with {tasks} tasks running",
        rss_idle / 1024,
        rss_busy / 1024
    );
    child.kill().await?;
    Ok(())
}

async fn decline(client: &SchedulerClient, fid: &pb::FrameworkId, offer: pb::OfferId) {
    let _ = client
        .call(Call {
            framework_id: Some(fid.clone()),
            r#type: Some(call::Type::Decline as i32),
            decline: Some(call::Decline {
                offer_ids: vec![offer],
                filters: Some(pb::Filters {
                    refuse_seconds: Some(3600.0),
                }),
            }),
            ..Default::default()
        })
        .await;
}

fn scalar(name: &str, value: f64) -> pb::Resource {
    pb::Resource {
        name: name.into(),
        r#type: pb::value::Type::Scalar as i32,
        scalar: Some(pb::value::Scalar { value }),
        ..Default::default()
    }
}

/// Resident set size of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
