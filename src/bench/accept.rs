//! `master`: the dev master on its own, driven by a plain scheduler written here on the wire types
//! (as a third-party framework would be), so the figures are the master's and not the
//! controller's: how many ACCEPT calls a second it answers while launching N virtual tasks over
//! its agents, how long until all N run, and its memory before and after.
//!
//! For every offer the scheduler sends one ACCEPT launching one task, with a refuse filter of 0 so
//! that the rest of the agent is offered again on the next allocation cycle (every 5 ms here);
//! at most [`IN_FLIGHT`] ACCEPTs are outstanding. Updates are acknowledged as they come.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::report::Figures;
use super::{BenchError, Env};
use crate::mesos::client::{ClientConfig, SchedulerClient};
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, call, event};

/// The dev cluster's allocation interval in this scenario: short, so the offer cycle is not
/// what limits the rate.
pub const ALLOCATION_INTERVAL: &str = "5ms";
/// ACCEPT calls outstanding at once.
const IN_FLIGHT: usize = 16;
/// How often the answered ACCEPTs are counted at the end.
const POLL_ACCEPTS: Duration = Duration::from_millis(1);

pub async fn master(env: &mut Env) -> Result<Figures, BenchError> {
    let tasks = env.specs() as u64;
    let mut figures = Figures::default();
    if let Some(stats) = env.cluster.proc.stats() {
        figures.set("master_rss_idle_mib", stats.rss_mib);
    }
    let url = env
        .cluster
        .url
        .parse()
        .map_err(|e| BenchError::failed(format!("master url {}: {e}", env.cluster.url)))?;
    let client = SchedulerClient::new(ClientConfig::new(vec![url]))
        .map_err(|e| BenchError::failed(format!("scheduler client: {e}")))?;
    let deadline = tokio::time::Instant::from_std(env.deadline);
    let subscribe = client.subscribe(call::Subscribe {
        framework_info: pb::FrameworkInfo {
            user: "bench".into(),
            name: "mesos-reconciler bench".into(),
            capabilities: vec![pb::framework_info::Capability {
                r#type: Some(pb::framework_info::capability::Type::PartitionAware as i32),
            }],
            ..Default::default()
        },
        ..Default::default()
    });
    let mut subscription = tokio::time::timeout_at(deadline, subscribe)
        .await
        .map_err(|_| BenchError::TimedOut("the SUBSCRIBE to the master".into()))?
        .map_err(|e| BenchError::failed(format!("SUBSCRIBE: {e}")))?;

    let mark = env.mark();
    let answered = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    // Dropped with the run: no call of this scheduler outlives it.
    let mut calls = JoinSet::new();
    let mut framework_id = None;
    let mut launched = 0u64;
    let mut running = HashSet::new();
    let mut started: Option<Instant> = None;
    while (running.len() as u64) < tasks {
        let next = tokio::time::timeout_at(deadline, subscription.events.next()).await;
        let event = match next {
            Err(_) => {
                return Err(BenchError::TimedOut(format!(
                    "{tasks} tasks TASK_RUNNING (last seen: {} running, {launched} launched)",
                    running.len()
                )));
            }
            Ok(None) => return Err(BenchError::failed("the master ended the subscription")),
            Ok(Some(Err(e))) => return Err(BenchError::failed(format!("event stream: {e}"))),
            Ok(Some(Ok(event))) => event,
        };
        match event::Type::try_from(event.r#type.unwrap_or_default()) {
            Ok(event::Type::Subscribed) => {
                framework_id = event.subscribed.map(|s| s.framework_id);
            }
            Ok(event::Type::Offers) => {
                let Some(fid) = framework_id.clone() else {
                    continue;
                };
                for offer in event.offers.map(|o| o.offers).unwrap_or_default() {
                    let (call, counter) = if launched < tasks {
                        started.get_or_insert_with(Instant::now);
                        let call = accept_one(&fid, offer, launched);
                        launched += 1;
                        (call, Some(Arc::clone(&answered)))
                    } else {
                        (decline(&fid, offer), None)
                    };
                    let permit = Arc::clone(&limit)
                        .acquire_owned()
                        .await
                        .map_err(|e| BenchError::failed(e.to_string()))?;
                    let client = client.clone();
                    calls.spawn(async move {
                        if let Err(e) = client.call(call).await {
                            eprintln!("bench master: a call failed: {e}");
                        }
                        if let Some(counter) = counter {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(permit);
                    });
                }
            }
            Ok(event::Type::Update) => {
                let Some(status) = event.update.map(|u| u.status) else {
                    continue;
                };
                if status.state == pb::TaskState::TaskRunning as i32 {
                    running.insert(status.task_id.value.clone());
                }
                if let (Some(uuid), Some(agent_id), Some(fid)) =
                    (status.uuid, status.agent_id, framework_id.clone())
                {
                    let client = client.clone();
                    calls.spawn(async move {
                        let _ = client
                            .call(Call {
                                framework_id: Some(fid),
                                r#type: Some(call::Type::Acknowledge as i32),
                                acknowledge: Some(call::Acknowledge {
                                    agent_id,
                                    task_id: status.task_id,
                                    uuid,
                                }),
                                ..Default::default()
                            })
                            .await;
                    });
                }
            }
            _ => {}
        }
        // Finished calls need not be kept.
        while calls.try_join_next().is_some() {}
    }
    let started = started.unwrap_or_else(Instant::now);
    let all_running = started.elapsed();
    // The rate counts answered ACCEPTs only.
    loop {
        let done = answered.load(Ordering::Relaxed);
        if done >= launched {
            break;
        }
        env.tick(POLL_ACCEPTS, || {
            format!("the answers to {launched} ACCEPT calls (last seen: {done})")
        })
        .await?;
    }
    let accept_window = started.elapsed().as_secs_f64();
    figures.set("wall_s", all_running.as_secs_f64());
    figures.set("accepts", launched as f64);
    figures.set("accepts_per_s", launched as f64 / accept_window);
    figures.set("tasks_per_s", tasks as f64 / all_running.as_secs_f64());
    env.finish(mark, &mut figures);
    // What the master itself says, as a check of what the events said.
    let counts = env.master.counts().await?;
    figures.set("master_running", counts.running as f64);
    Ok(figures)
}

/// ACCEPT one offer with a LAUNCH of one virtual task (`bench-<n>`), refuse filter 0.
fn accept_one(framework_id: &pb::FrameworkId, offer: pb::Offer, n: u64) -> Call {
    let task = pb::TaskInfo {
        name: "bench".into(),
        task_id: pb::TaskId {
            value: format!("bench-{n}"),
        },
        agent_id: offer.agent_id,
        resources: vec![
            pb::Resource::scalar("cpus", super::SPEC_CPUS),
            pb::Resource::scalar("mem", super::SPEC_MEM_MIB as f64),
        ],
        command: Some(pb::CommandInfo {
            value: Some("sleep 3600".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Call {
        framework_id: Some(framework_id.clone()),
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
    }
}

/// DECLINE an offer for an hour: every task is launched.
fn decline(framework_id: &pb::FrameworkId, offer: pb::Offer) -> Call {
    Call {
        framework_id: Some(framework_id.clone()),
        r#type: Some(call::Type::Decline as i32),
        decline: Some(call::Decline {
            offer_ids: vec![offer.id],
            filters: Some(pb::Filters {
                refuse_seconds: Some(3600.0),
            }),
        }),
        ..Default::default()
    }
}
