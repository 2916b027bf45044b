//! Recovery from the master alone (issue 8): the state directory is a write-ahead log and a cache,
//! and losing it (or restoring an older copy of it) costs a reconciliation, never a duplicate.
//! The real binary runs as a child process against a dev cluster in the test process (helpers in
//! `support/proc.rs`), and every verdict comes from the master's `/master/state`: one framework,
//! exactly the wanted instances of the generation in force, and no instance launched twice (the
//! TaskInfos the master received say what was launched).
//!
//! Also here: a second controller finding its framework connected is refused, and `--takeover`
//! fails the first one over (which stops); several frameworks of the same name need
//! `--framework-id`; two controllers cannot share a state directory; a state directory that
//! cannot be written stops launches and kills until it can.

#[path = "support/proc.rs"]
mod proc;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;

use mesos_reconciler::devcluster::DevCluster;
use mesos_reconciler::mesos::client::{ClientConfig, SchedulerClient};
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::call;
use proc::{
    DEADLINE, Fixture, SIGKILL, Spawn, check_converged, describe_exit, frameworks, running_ids,
    service_spec, start_cluster, wait_converged, wait_for, wait_ready_and_passes,
};

/// One virtual agent's resources: room for dozens of the tests' 0.1-cpu tasks.
const AGENT: &str = "cpus:16;mem:8192;disk:20000;ports:[31000-32000]";
/// Passes the controller runs after it is ready before "it launched nothing more" is judged.
const SETTLE_PASSES: u64 = 3;
/// How the controller's own labels name a task's spec, instance and generation.
const SPEC_LABEL: &str = "mesos-reconciler.spec";
const INSTANCE_LABEL: &str = "mesos-reconciler.instance";
const GENERATION_LABEL: &str = "mesos-reconciler.generation";

/// The state directory is deleted between a kill -9 and a restart, and meanwhile one spec is
/// scaled down, one edited (a new generation, rolled), one deleted and one added. The restarted
/// controller finds its framework on the master, adopts its tasks and ends with exactly the
/// wanted instances, launching only the new generation and the new spec: nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_directory_is_recovered_from_the_master_without_duplicates() {
    let cluster = start_cluster(2, AGENT).await;
    let mut fx = Fixture::new("lost-state", &cluster.url());
    let before = specs(&[("web", 3), ("team-a/api", 2), ("old", 2), ("worker", 1)]);
    fx.write_specs(&before);
    let mut first = fx.spawn(None);
    first.status_url().await;
    let (fws, _) = wait_converged(&cluster, &first, &before, DEADLINE).await;
    let framework_id = fws[0].id.clone();
    let kept_before = ids_of(&fws[0].tasks, &[("web", 0), ("web", 1), ("worker", 0)]);
    let exit = first.kill9().await;
    assert_eq!(exit.signal(), Some(SIGKILL), "{}", describe_exit(exit));
    wait_disconnected(&cluster).await;

    fx.lose_state();
    fx.write_spec("web", &service_spec(2));
    fx.write_spec("team-a/api", &edited_spec(2));
    std::fs::remove_file(fx.desired.join("old.toml")).unwrap();
    fx.write_spec("fresh", &service_spec(1));
    let after = specs(&[("web", 2), ("team-a/api", 2), ("worker", 1), ("fresh", 1)]);
    let infos_before = cluster.received_task_infos().await.len();

    let mut second = fx.spawn(None);
    second.status_url().await;
    let (fws, snapshot) = wait_converged(&cluster, &second, &after, DEADLINE).await;
    assert_eq!(fws[0].id, framework_id, "the same framework, failed over");
    assert_eq!(
        snapshot.framework_id.as_deref(),
        Some(framework_id.as_str())
    );
    assert_eq!(
        ids_of(&fws[0].tasks, &[("web", 0), ("web", 1), ("worker", 0)]),
        kept_before,
        "the tasks nothing changed for kept running"
    );
    let settled = wait_ready_and_passes(&second, SETTLE_PASSES).await;
    let fws = frameworks(&cluster).await;
    check_converged(&fws, &settled, &after).unwrap();
    let launched = launched_since(&cluster, infos_before).await;
    assert_eq!(
        launched.keys().cloned().collect::<Vec<_>>(),
        [
            ("fresh".to_owned(), 0),
            ("team-a/api".to_owned(), 0),
            ("team-a/api".to_owned(), 1)
        ],
        "only the new spec and the new generation were launched: {launched:?}"
    );
    assert!(
        launched.values().all(|n| *n == 1),
        "nothing launched twice: {launched:?}"
    );
    let api = settled.specs.iter().find(|s| s.id == "team-a/api").unwrap();
    let generation = api.generation.clone().unwrap();
    for t in cluster
        .received_task_infos()
        .await
        .iter()
        .skip(infos_before)
    {
        if label(t, SPEC_LABEL) == "team-a/api" {
            assert!(label(t, GENERATION_LABEL).starts_with(&generation));
        }
    }
    let log = fx.log_text();
    assert!(
        log.contains("FRAMEWORK RECOVERED FROM THE MASTER") && log.contains(" WARN "),
        "the recovery is logged loudly"
    );
    assert!(log.contains("ADOPTED TASKS THE LEDGER DID NOT KNOW"));

    drop(second);
    cluster.shutdown().await;
}

/// The state directory is restored from a copy taken before the specs were scaled up, edited and
/// extended; the ledger then misses tasks that run. They are adopted, not killed or launched
/// again: after the restore nothing is launched at all, and the specs as they are now (one
/// scaled down a little, one deleted) are applied to the adopted tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_restored_from_an_older_copy_adopts_what_it_does_not_know() {
    let cluster = start_cluster(2, AGENT).await;
    let mut fx = Fixture::new("restored-state", &cluster.url());
    let early = specs(&[("web", 2), ("api", 1)]);
    fx.write_specs(&early);
    let mut first = fx.spawn(None);
    first.status_url().await;
    wait_converged(&cluster, &first, &early, DEADLINE).await;
    first.kill9().await;
    let backup = fx.back_up_state("backup");

    let mut second = fx.spawn(None);
    second.status_url().await;
    wait_ready_and_passes(&second, 1).await;
    fx.write_spec("web", &service_spec(4));
    fx.write_spec("api", &edited_spec(1));
    fx.write_spec("extra", &service_spec(2));
    let later = specs(&[("web", 4), ("api", 1), ("extra", 2)]);
    let (fws, _) = wait_converged(&cluster, &second, &later, DEADLINE).await;
    let framework_id = fws[0].id.clone();
    let api_task = ids_of(&fws[0].tasks, &[("api", 0)]);
    second.kill9().await;
    wait_disconnected(&cluster).await;

    fx.restore_state(&backup);
    fx.write_spec("web", &service_spec(3));
    std::fs::remove_file(fx.desired.join("extra.toml")).unwrap();
    let now = specs(&[("web", 3), ("api", 1)]);
    let infos_before = cluster.received_task_infos().await.len();

    let mut third = fx.spawn(None);
    third.status_url().await;
    let (fws, _) = wait_converged(&cluster, &third, &now, DEADLINE).await;
    assert_eq!(fws[0].id, framework_id);
    assert_eq!(
        ids_of(&fws[0].tasks, &[("api", 0)]),
        api_task,
        "the task of the edited spec's current generation was adopted, not replaced"
    );
    let settled = wait_ready_and_passes(&third, SETTLE_PASSES).await;
    check_converged(&frameworks(&cluster).await, &settled, &now).unwrap();
    let launched = launched_since(&cluster, infos_before).await;
    assert!(
        launched.is_empty(),
        "nothing was launched after the restore: {launched:?}"
    );
    assert_eq!(settled.counters.launches, 0);

    drop(third);
    cluster.shutdown().await;
}

/// A second controller (its own, empty state directory) finds the framework connected: it exits
/// 64 naming the framework and the host. With `--takeover` it fails the first one over; the
/// first is told "Framework failed over" by Mesos and stops with a clear message; the second
/// adopts every task and launches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_framework_is_refused_and_taken_over_only_with_takeover() {
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("takeover", &cluster.url());
    let want = specs(&[("web", 2), ("worker", 1)]);
    fx.write_specs(&want);
    let mut first = fx.spawn(None);
    first.status_url().await;
    let (fws, _) = wait_converged(&cluster, &first, &want, DEADLINE).await;
    let framework_id = fws[0].id.clone();
    let tasks_before = running_ids(&fws);
    let infos_before = cluster.received_task_infos().await.len();

    let other = fx.other_state("other-state");
    let mut refused = fx.spawn_with(Spawn {
        state: Some(&other),
        ..Spawn::default()
    });
    let exit = refused.wait_exit(DEADLINE).await;
    assert_eq!(exit.code(), Some(64), "{}", describe_exit(exit));
    let log = fx.log_text();
    let host = mesos_reconciler::state_dir::local_hostname().unwrap();
    let refusal = log
        .lines()
        .find(|l| l.starts_with("error: framework"))
        .unwrap_or_else(|| panic!("no refusal on stderr:\n{log}"));
    assert!(refusal.contains(&framework_id), "{refusal}");
    assert!(refusal.contains(&format!("from host {host}")), "{refusal}");
    assert!(refusal.contains("--takeover"), "{refusal}");
    assert!(first.exited().is_none(), "the first controller runs on");

    let mut taker = fx.spawn_with(Spawn {
        state: Some(&other),
        args: &["--takeover"],
        ..Spawn::default()
    });
    let exit = first.wait_exit(DEADLINE).await;
    assert_eq!(exit.code(), Some(1), "{}", describe_exit(exit));
    let log = fx.log_text();
    assert!(
        log.contains(&format!(
            "error: another scheduler took framework {framework_id} over"
        )),
        "the first controller says why it stops:\n{log}"
    );
    taker.status_url().await;
    let settled = wait_ready_and_passes(&taker, SETTLE_PASSES).await;
    let fws = frameworks(&cluster).await;
    check_converged(&fws, &settled, &want).unwrap();
    assert_eq!(fws[0].id, framework_id);
    assert!(fws[0].active);
    assert_eq!(running_ids(&fws), tasks_before, "every task kept running");
    assert_eq!(settled.counters.launches, 0);
    assert_eq!(settled.counters.kills, 0);
    assert_eq!(cluster.received_task_infos().await.len(), infos_before);

    drop(taker);
    cluster.shutdown().await;
}

/// Two frameworks of the controller's name: a controller without a framework id refuses to
/// guess (exit 64, listing both); `MESOS_RECONCILER_FRAMEWORK_ID` names the one to adopt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_frameworks_of_the_name_need_an_explicit_framework_id() {
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("several", &cluster.url());
    let want = specs(&[("web", 2)]);
    fx.write_specs(&want);
    let mut first = fx.spawn(None);
    first.status_url().await;
    let (fws, _) = wait_converged(&cluster, &first, &want, DEADLINE).await;
    let framework_id = fws[0].id.clone();
    let tasks_before = running_ids(&fws);
    first.kill9().await;
    wait_disconnected(&cluster).await;
    // Another scheduler of the same name (a decoy), still connected.
    let decoy = Decoy::subscribe(&cluster).await;
    fx.lose_state();

    let mut refused = fx.spawn(None);
    let exit = refused.wait_exit(DEADLINE).await;
    assert_eq!(exit.code(), Some(64), "{}", describe_exit(exit));
    let log = fx.log_text();
    let refusal = log
        .lines()
        .find(|l| l.starts_with("error: the master has 2 frameworks"))
        .unwrap_or_else(|| panic!("no refusal on stderr:\n{log}"));
    assert!(refusal.contains(&framework_id), "{refusal}");
    assert!(refusal.contains(&decoy.framework_id), "{refusal}");
    assert!(refusal.contains("--framework-id"), "{refusal}");

    decoy.teardown().await;
    let infos_before = cluster.received_task_infos().await.len();
    let mut adopting = fx.spawn_with(Spawn {
        env: &[("MESOS_RECONCILER_FRAMEWORK_ID", &framework_id)],
        ..Spawn::default()
    });
    adopting.status_url().await;
    let settled = wait_ready_and_passes(&adopting, SETTLE_PASSES).await;
    let fws = frameworks(&cluster).await;
    check_converged(&fws, &settled, &want).unwrap();
    assert_eq!(fws[0].id, framework_id);
    assert_eq!(running_ids(&fws), tasks_before);
    assert_eq!(cluster.received_task_infos().await.len(), infos_before);

    drop(adopting);
    cluster.shutdown().await;
}

/// A second controller on the same state directory exits 64 at once, naming the directory and
/// the process that holds it; the first goes on undisturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_controller_on_the_same_state_directory_exits_naming_the_holder() {
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("same-state", &cluster.url());
    let want = specs(&[("web", 1)]);
    fx.write_specs(&want);
    let mut first = fx.spawn(None);
    first.status_url().await;
    wait_converged(&cluster, &first, &want, DEADLINE).await;

    let mut second = fx.spawn(None);
    let exit = second.wait_exit(DEADLINE).await;
    assert_eq!(exit.code(), Some(64), "{}", describe_exit(exit));
    let log = fx.log_text();
    let message = log
        .lines()
        .find(|l| l.starts_with("error: the state directory"))
        .unwrap_or_else(|| panic!("no message on stderr:\n{log}"));
    assert!(
        message.contains(&fx.state.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", first.pid())),
        "{message}"
    );
    assert!(message.contains("in use by another mesos-reconciler"));
    let status = first.status().await.unwrap();
    assert!(status.ready && status.connected);

    drop(first);
    cluster.shutdown().await;
}

/// While the state directory cannot be written (the failpoint switch file exists), the
/// controller launches and kills nothing, says why on `/readyz` (503), its status and its log, and
/// keeps its subscription; once writes work again it converges by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_directory_stops_launches_and_kills_until_it_can_be_written() {
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("unwritable", &cluster.url());
    let switch = fx.other_state("switches").join("unwritable");
    let switch_text = switch.display().to_string();
    let before = specs(&[("web", 2), ("old", 1)]);
    fx.write_specs(&before);
    let mut ctl = fx.spawn_with(Spawn {
        env: &[("MESOS_RECONCILER_FAILPOINT_UNWRITABLE", &switch_text)],
        ..Spawn::default()
    });
    let url = ctl.status_url().await;
    let (fws, _) = wait_converged(&cluster, &ctl, &before, DEADLINE).await;
    let running_before = running_ids(&fws);
    let infos_before = cluster.received_task_infos().await.len();

    std::fs::write(&switch, "on").unwrap();
    // A scale-up and a delete: a launch and a kill the controller must hold back.
    fx.write_spec("web", &service_spec(3));
    std::fs::remove_file(fx.desired.join("old.toml")).unwrap();
    let halted = wait_for(
        "the controller to say it cannot write",
        DEADLINE,
        || async {
            let s = ctl.status().await?;
            s.halted.clone().ok_or_else(|| "not halted yet".to_owned())
        },
    )
    .await;
    assert!(halted.contains("cannot be written"), "{halted}");
    let readyz = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 503);
    let body = readyz.text().await.unwrap();
    assert!(body.contains("cannot be written"), "{body}");
    // Several passes later, still nothing launched or killed, and still subscribed.
    let seen = ctl.status().await.unwrap();
    let later = wait_for("more passes while unwritable", DEADLINE, || async {
        ctl.nudge();
        let s = ctl.status().await?;
        if s.counters.passes >= seen.counters.passes + 3 {
            Ok(s)
        } else {
            Err(format!("{} passes", s.counters.passes))
        }
    })
    .await;
    assert!(later.connected && later.halted.is_some());
    assert_eq!(later.counters.launches, seen.counters.launches);
    assert_eq!(later.counters.kills, seen.counters.kills);
    assert_eq!(running_ids(&frameworks(&cluster).await), running_before);
    assert_eq!(cluster.received_task_infos().await.len(), infos_before);
    assert!(fx.log_text().contains("LAUNCHING AND KILLING NOTHING"));

    std::fs::remove_file(&switch).unwrap();
    let after = specs(&[("web", 3)]);
    let (_, snapshot) = wait_converged(&cluster, &ctl, &after, DEADLINE).await;
    assert_eq!(snapshot.halted, None);
    let readyz = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 200);
    let settled = wait_ready_and_passes(&ctl, SETTLE_PASSES).await;
    check_converged(&frameworks(&cluster).await, &settled, &after).unwrap();
    assert_eq!(
        launched_since(&cluster, infos_before).await,
        BTreeMap::from([(("web".to_owned(), 2), 1)]),
        "exactly the held launch, once"
    );
    assert!(fx.log_text().contains("can be written again"));
    assert!(ctl.exited().is_none());

    drop(ctl);
    cluster.shutdown().await;
}

/// `spec id -> instances`.
fn specs(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect()
}

/// A service spec with another command: a new generation of [`service_spec`].
fn edited_spec(instances: u32) -> String {
    service_spec(instances).replace("sleep 3600", "sleep 7200")
}

/// The ids of the running tasks of the given (spec, instance) pairs.
fn ids_of(tasks: &[proc::TaskView], which: &[(&str, u32)]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter(|t| t.state == "TASK_RUNNING")
        .filter(|t| {
            which
                .iter()
                .any(|(spec, i)| t.name == *spec && t.instance() == Some(*i))
        })
        .map(|t| t.id.clone())
        .collect()
}

/// Waits until the master shows every framework without a connected scheduler.
async fn wait_disconnected(cluster: &DevCluster) {
    wait_for(
        "the master to see the framework disconnected",
        DEADLINE,
        || async {
            let fws = frameworks(cluster).await;
            if fws.iter().all(|f| !f.active) {
                Ok(())
            } else {
                Err(format!("{fws:?}"))
            }
        },
    )
    .await;
}

/// The TaskInfos the master received after the first `skip`, counted by (spec, instance).
async fn launched_since(cluster: &DevCluster, skip: usize) -> BTreeMap<(String, u32), usize> {
    let mut out = BTreeMap::new();
    for t in cluster.received_task_infos().await.iter().skip(skip) {
        let key = (
            label(t, SPEC_LABEL).to_owned(),
            label(t, INSTANCE_LABEL).parse().unwrap_or(u32::MAX),
        );
        *out.entry(key).or_default() += 1;
    }
    out
}

fn label<'a>(t: &'a pb::TaskInfo, key: &str) -> &'a str {
    t.labels
        .iter()
        .flat_map(|l| &l.labels)
        .find(|l| l.key == key)
        .and_then(|l| l.value.as_deref())
        .unwrap_or("")
}

/// A plain scheduler that registers a framework of the controller's default name.
struct Decoy {
    client: SchedulerClient,
    framework_id: String,
    _stream: mesos_reconciler::mesos::client::Subscription,
}

impl Decoy {
    async fn subscribe(cluster: &DevCluster) -> Decoy {
        let client =
            SchedulerClient::new(ClientConfig::new(vec![cluster.url().parse().unwrap()])).unwrap();
        let mut sub = client
            .subscribe(call::Subscribe {
                framework_info: pb::FrameworkInfo {
                    user: "decoy".to_owned(),
                    name: "mesos-reconciler".to_owned(),
                    failover_timeout: Some(3600.0),
                    hostname: Some("decoy-host".to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .expect("the decoy subscribes");
        let first = tokio::time::timeout(DEADLINE, sub.events.next())
            .await
            .expect("SUBSCRIBED in time")
            .expect("an event")
            .expect("a readable event");
        let framework_id = first.subscribed.expect("SUBSCRIBED").framework_id.value;
        Decoy {
            client,
            framework_id,
            _stream: sub,
        }
    }

    /// TEARDOWN: the master removes the decoy's framework.
    async fn teardown(self) {
        let teardown = pb::scheduler::Call {
            framework_id: Some(pb::FrameworkId {
                value: self.framework_id.clone(),
            }),
            r#type: Some(call::Type::Teardown as i32),
            ..Default::default()
        };
        self.client.call(teardown).await.expect("TEARDOWN");
    }
}
