//! Fitting tasks onto offers: a spec no offer can satisfy stays pending with a reason and its
//! offers are declined; offers are suppressed when nothing is pending; ports reach the task's
//! environment and are never shared; `hostname unique` spreads instances; several tasks that fit
//! one offer are launched with one ACCEPT.

use std::collections::{BTreeMap, BTreeSet};

use mesos_reconciler::devcluster::AgentSpecKind;

use crate::e2e::*;

/// The master's debug log of scheduler calls of type `call` (`ACCEPT`, `SUPPRESS`, ...). The dev
/// cluster has no counter of calls, but its master logs each call it handles.
fn calls_logged(w: &World, call: &str) -> usize {
    w.logs
        .matching("scheduler call")
        .iter()
        .filter(|e| e.field("call") == Some(call))
        .count()
}

#[tokio::test]
async fn a_spec_no_offer_fits_stays_pending_with_a_reason_and_offers_are_declined_then_suppressed()
{
    let w = world("toobig", vec![virtual_agent(), virtual_agent()]).await;
    let ctl = w.start_controller().await;
    // Nothing wanted at start: the controller suppresses offers.
    ctl.wait_status("a first pass", |s| {
        if s.counters.passes > 0 {
            Ok(())
        } else {
            Err(String::new())
        }
    })
    .await;
    w.wait(&ctl, "a SUPPRESS with nothing to launch", async || {
        let n = calls_logged(&w, "SUPPRESS");
        if n >= 1 {
            Ok(())
        } else {
            Err(format!("{n} SUPPRESS calls"))
        }
    })
    .await;

    w.write_spec("huge", "command = \"sleep 300\"\ncpus = 8\nmem = 16\n");
    let reason = ctl
        .wait_status("the pending reason to name the missing cpus", |s| {
            let pending = spec_of(s, "huge")
                .map(|x| x.pending.clone())
                .unwrap_or_default();
            match pending.first() {
                Some(p) if p.reason.contains("cpus") && s.counters.offers_declined > 0 => {
                    Ok(p.reason.clone())
                }
                _ => Err(format!(
                    "{pending:?} declined={}",
                    s.counters.offers_declined
                )),
            }
        })
        .await;
    assert_eq!(
        reason,
        "needs 8 cpus; the largest offer in the last minute had 4"
    );
    let snap = w.settle(&ctl, 2).await;
    assert_eq!(snap.counters.launches, 0);
    assert!(w.live_tasks("huge").await.is_empty());
    assert_eq!(calls_logged(&w, "ACCEPT"), 0);

    // Once the spec fits, it launches and nothing is pending: offers are suppressed again and
    // no more are declined.
    let suppressed = calls_logged(&w, "SUPPRESS");
    w.write_spec("huge", "command = \"sleep 300\"\ncpus = 2\nmem = 16\n");
    w.wait_running(&ctl, "huge", 1).await;
    w.wait(&ctl, "another SUPPRESS", async || {
        let n = calls_logged(&w, "SUPPRESS");
        if n > suppressed {
            Ok(())
        } else {
            Err(format!("{n} SUPPRESS calls"))
        }
    })
    .await;
    let declined = ctl.status().await.counters.offers_declined;
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(
        snap.counters.offers_declined, declined,
        "suppressed: no offers came to decline"
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn tasks_see_their_ports_and_never_share_one() {
    let w = world("ports", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    let out = w.out.display().to_string();
    w.write_spec(
        "ported",
        &format!(
            "command = \"env > {out}/env.$MESOS_TASK_ID.tmp && mv {out}/env.$MESOS_TASK_ID.tmp {out}/env.$MESOS_TASK_ID; exec sleep 300\"\ncpus = 0.1\nmem = 16\nports = 2\ninstances = 2\n"
        ),
    );
    let tasks = w.wait_running(&ctl, "ported", 2).await;
    assert_eq!(tasks[0].agent, tasks[1].agent, "one agent only");

    let mut all_ports = BTreeSet::new();
    for t in &tasks {
        let file = w.out.join(format!("env.{}", t.id));
        let env = w
            .wait(
                &ctl,
                &format!("{} to write its environment", t.id),
                async || std::fs::read_to_string(&file).map_err(|e| e.to_string()),
            )
            .await;
        let vars: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
        let port0: u64 = vars["PORT0"].parse().unwrap();
        let port1: u64 = vars["PORT1"].parse().unwrap();
        assert_eq!(vars["PORT"], vars["PORT0"], "PORT is PORT0");
        assert!((31000..=32000).contains(&port0) && (31000..=32000).contains(&port1));
        assert_ne!(port0, port1);
        assert!(all_ports.insert(port0), "port {port0} is used twice");
        assert!(all_ports.insert(port1), "port {port1} is used twice");
        // The status page shows the same ports.
        let snap = ctl.status().await;
        let row = snap.tasks.iter().find(|r| r.task_id == t.id).unwrap();
        assert_eq!(row.ports, vec![port0, port1]);
    }
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn hostname_unique_spreads_instances_and_a_fourth_stays_pending_with_the_constraint() {
    let w = world(
        "unique",
        vec![
            agent_named(AgentSpecKind::Virtual, "host-1"),
            agent_named(AgentSpecKind::Virtual, "host-2"),
            agent_named(AgentSpecKind::Virtual, "host-3"),
        ],
    )
    .await;
    let ctl = w.start_controller().await;
    let spec = |n: u32| {
        format!(
            "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\ninstances = {n}\n\n[[constraints]]\nfield = \"hostname\"\nop = \"unique\"\n"
        )
    };
    w.write_spec("spread", &spec(3));
    let tasks = w.wait_running(&ctl, "spread", 3).await;
    let agents: BTreeSet<&str> = tasks.iter().map(|t| t.agent.as_str()).collect();
    assert_eq!(agents.len(), 3, "one per agent: {}", describe_tasks(&tasks));

    w.write_spec("spread", &spec(4));
    let reason = ctl
        .wait_status("instance 3 pending on the constraint", |s| {
            let pending = spec_of(s, "spread")
                .map(|x| x.pending.clone())
                .unwrap_or_default();
            match pending.as_slice() {
                [p] if p.instance == 3 && p.reason.contains("hostname") => Ok(p.reason.clone()),
                _ => Err(format!("{pending:?}")),
            }
        })
        .await;
    assert!(reason.contains("unique"), "{reason}");
    let snap = w.settle(&ctl, 2).await;
    assert_eq!(snap.counters.launches, 3);
    assert_eq!(
        w.live_tasks("spread").await,
        tasks,
        "the three keep running"
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn tasks_that_fit_one_offer_are_launched_with_one_accept() {
    let w = world("pack", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    assert_eq!(calls_logged(&w, "ACCEPT"), 0);
    for id in ["p1", "p2", "p3"] {
        w.write_spec(id, "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    }
    for id in ["p1", "p2", "p3"] {
        w.wait_running(&ctl, id, 1).await;
    }
    let infos = w.cluster.received_task_infos().await;
    assert_eq!(infos.len(), 3);
    let agents: BTreeSet<&str> = infos.iter().map(|i| i.agent_id.value.as_str()).collect();
    assert_eq!(agents.len(), 1);
    assert_eq!(
        calls_logged(&w, "ACCEPT"),
        1,
        "one ACCEPT for the one offer"
    );
    ctl.stop().await;
    w.shutdown().await;
}
