//! The regression guard for scale: work, not time. A pass must do work in proportion to what
//! changed, so one more spec file costs the same number of specs decided and ledger records read
//! with 2,000 specs running as with 200. A quadratic (or merely linear) path coming back multiplies
//! these counts by ten and fails here on any machine, however slow.

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;
use mesos_reconciler::status::Counters;

/// A spec that the virtual agents run until killed, small enough for thousands per agent.
const TINY: &str = "command = \"sleep 3600\"\ncpus = 0.001\nmem = 1\n";

/// What writing one spec file cost, with `n` specs already running.
async fn cost_of_one_more_spec(n: usize) -> (Counters, Counters) {
    let big = mesos_reconciler::devcluster::AgentSpec::parse(
        mesos_reconciler::devcluster::AgentSpecKind::Virtual,
        "cpus:100;mem:100000;disk:1000;ports:[31000-32000]",
        "rack:r1",
    )
    .unwrap();
    let w = world("scale", vec![big.clone(), big]).await;
    let ctl = w.start_controller().await;
    for i in 0..n {
        w.write_spec(&format!("s{i:05}"), TINY);
    }
    ctl.wait_status(&format!("{n} tasks running"), |s| {
        if s.counters.running_tasks == n as u64 && s.counters.pending_instances == 0 {
            Ok(())
        } else {
            Err(format!(
                "running {} pending {}",
                s.counters.running_tasks, s.counters.pending_instances
            ))
        }
    })
    .await;
    let before = w.settle(&ctl, 2).await.counters;

    w.write_spec("extra", TINY);
    w.wait_running(&ctl, "extra", 1).await;
    let after = ctl
        .wait_status("the controller to show the new task running", |s| {
            if s.counters.running_tasks == n as u64 + 1 && s.counters.pending_instances == 0 {
                Ok(s.counters.clone())
            } else {
                Err(format!("running {}", s.counters.running_tasks))
            }
        })
        .await;
    let after = w.settle(&ctl, 2).await.counters.max_with(after);
    ctl.stop().await;
    w.shutdown().await;
    (before, after)
}

trait MaxWith {
    fn max_with(self, other: Counters) -> Counters;
}

impl MaxWith for Counters {
    fn max_with(self, other: Counters) -> Counters {
        if self.plan_specs_decided >= other.plan_specs_decided {
            self
        } else {
            other
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_more_spec_costs_the_same_work_at_200_and_at_2000_specs() {
    let mut deltas = Vec::new();
    for n in [200, 2000] {
        let (before, after) = cost_of_one_more_spec(n).await;
        let decided = after.plan_specs_decided - before.plan_specs_decided;
        let visited = after.plan_records_visited - before.plan_records_visited;
        let passes = after.passes - before.passes;
        eprintln!(
            "{n} specs: one more file -> {passes} passes, {decided} specs decided, {visited} records read"
        );
        // The new spec is decided a few times (applied, launched, starting, running, settled);
        // nothing else changed, so nothing else is decided.
        assert!(
            decided <= 20,
            "{n} specs: one new file made the planner decide {decided} specs in {passes} passes"
        );
        assert!(
            visited <= 40,
            "{n} specs: one new file made the planner read {visited} ledger records in {passes} passes"
        );
        deltas.push((decided, visited));
    }
    let (small, large) = (deltas[0], deltas[1]);
    assert!(
        large.0 <= small.0 + 5 && large.1 <= small.1 + 10,
        "the work of one change grew with the number of specs: {small:?} at 200, {large:?} at 2000"
    );
}
