//! Offers: contents and formats per capability, decline filters (zero, default), SUPPRESS and
//! REVIVE, GPU agents. Absence of offers is measured in heartbeats of a fast heartbeat clock
//! (many allocation cycles each), not in wall-clock sleeps.

use std::time::Duration;

use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::{call, event};

use crate::support::*;

async fn offer_contents(encoding: Encoding) {
    let mut cfg = config();
    cfg.agents = vec![agent(
        "cpus:2;mem:1024;disk:4096;ports:[31000-31009]",
        "rack:r1;level:3",
    )];
    let cluster = start(cfg).await;
    let mut sub = subscribe(&cluster.url(), encoding, framework_info("offers", &[])).await;
    let offers = sub.events.next_offers().await;
    assert_eq!(offers.len(), 1, "one offer per agent");
    let offer = &offers[0];
    let master_id = cluster.state().await["id"].as_str().unwrap().to_owned();
    assert!(
        offer.id.value.starts_with(&format!("{master_id}-O")),
        "{offer:?}"
    );
    assert_eq!(offer.agent_id.value, format!("{master_id}-S0"));
    assert_eq!(offer.framework_id.value, sub.framework_id);
    assert_eq!(offer.hostname, "127.0.0.1");
    let url = offer.url.as_ref().expect("offer url");
    assert_eq!(url.scheme, "http");
    // The agent's own server, as its pid in the master's state names it.
    let state = cluster.state().await;
    let pid = state["slaves"][0]["pid"].as_str().unwrap();
    assert_eq!(
        pid,
        format!(
            "{}@127.0.0.1:{}",
            url.path.as_deref().unwrap().trim_start_matches('/'),
            url.address.port
        )
    );
    assert_ne!(url.address.port, i32::from(cluster.addr().port()));
    assert!(url.path.as_deref().unwrap().starts_with("/slave("));
    assert!(
        offer.allocation_info.is_none(),
        "stripped without MULTI_ROLE"
    );
    let find = |name: &str| offer.resources.iter().find(|r| r.name == name).unwrap();
    assert_eq!(find("cpus").scalar.unwrap().value, 2.0);
    assert_eq!(find("mem").scalar.unwrap().value, 1024.0);
    assert_eq!(find("disk").scalar.unwrap().value, 4096.0);
    assert_eq!(
        find("ports").ranges.as_ref().unwrap().range,
        [pb::value::Range {
            begin: 31000,
            end: 31009
        }]
    );
    for r in &offer.resources {
        #[expect(deprecated, reason = "the old format's role is what is checked")]
        let role = r.role.as_deref();
        assert_eq!(role, Some("*"), "unreserved in the old format: {r:?}");
        assert!(r.allocation_info.is_none());
    }
    let rack = offer.attributes.iter().find(|a| a.name == "rack").unwrap();
    assert_eq!(rack.text.as_ref().unwrap().value, "r1");
    let level = offer.attributes.iter().find(|a| a.name == "level").unwrap();
    assert_eq!(level.scalar.unwrap().value, 3.0);
    cluster.shutdown().await;
}

#[tokio::test]
async fn offer_contents_protobuf() {
    offer_contents(Encoding::Protobuf).await;
}

#[tokio::test]
async fn offer_contents_json() {
    offer_contents(Encoding::Json).await;
}

#[tokio::test]
async fn multi_role_offers_carry_allocation_info() {
    let cluster = start(config()).await;
    let mut info = framework_info("multi", &[Cap::MultiRole, Cap::ReservationRefinement]);
    info.roles = vec!["web".into()];
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, info).await;
    let offer = sub.events.next_offers().await.remove(0);
    assert_eq!(offer.allocation_info.unwrap().role.as_deref(), Some("web"));
    for r in &offer.resources {
        assert_eq!(
            r.allocation_info.as_ref().unwrap().role.as_deref(),
            Some("web")
        );
        #[expect(deprecated, reason = "the new format has no role field")]
        let role = r.role.as_deref();
        assert_eq!(role, None, "RESERVATION_REFINEMENT: no role field");
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn gpu_agents_are_offered_only_to_gpu_frameworks() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.agents = vec![agent("cpus:1;mem:256;gpus:1", "")];
    let cluster = start(cfg).await;
    let mut plain = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("cpu", &[]),
    )
    .await;
    let mut gpu = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("gpu", &[Cap::GpuResources]),
    )
    .await;
    let offer = gpu.events.next_offers().await.remove(0);
    let gpus = offer.resources.iter().find(|r| r.name == "gpus").unwrap();
    assert_eq!(gpus.scalar.unwrap().value, 1.0);
    gpu.decline(&[&offer.id], Some(0.0)).await;
    gpu.events.next_offers().await;
    let seen = plain.events.during_heartbeats(5).await;
    assert!(
        seen.iter()
            .all(|e| e.r#type != Some(event::Type::Offers as i32)),
        "{seen:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn decline_filters_zero_and_default() {
    let mut cfg = config();
    cfg.agents = vec![
        agent("cpus:1;mem:256", "zone:a"),
        agent("cpus:1;mem:256", "zone:b"),
    ];
    let cluster = start(cfg).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("f", &[])).await;
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(sub.events.next_offers().await);
    }
    let (filtered, unfiltered) = (&offers[0], &offers[1]);
    sub.decline(&[&filtered.id], None).await;
    sub.decline(&[&unfiltered.id], Some(0.0)).await;
    // The unfiltered agent comes back every cycle; decline it five times while the default
    // 5 s filter keeps the other one away (each round is at least one 20 ms cycle).
    for _ in 0..5 {
        let again = sub.events.next_offers().await;
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(
            again[0].agent_id, unfiltered.agent_id,
            "the declined agent is filtered for 5 s"
        );
        assert_ne!(again[0].id, unfiltered.id, "a new offer id each time");
        sub.decline(&[&again[0].id], Some(0.0)).await;
    }
    // A stale offer id in DECLINE is ignored (still 202).
    sub.decline(&[&unfiltered.id], Some(0.0)).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn suppress_stops_offers_and_revive_clears_filters() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    let cluster = start(cfg).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("s", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    sub.send(sub.call_of(call::Type::Suppress)).await;
    // A long filter AND suppression: nothing for many allocation cycles.
    sub.decline(&[&offer.id], Some(3600.0)).await;
    let seen = sub.events.during_heartbeats(5).await;
    assert!(
        seen.iter()
            .all(|e| e.r#type != Some(event::Type::Offers as i32)),
        "{seen:?}"
    );
    // REVIVE un-suppresses and clears the hour-long filter.
    sub.send(sub.call_of(call::Type::Revive)).await;
    let again = sub.events.next_offers().await;
    assert_eq!(again[0].agent_id, offer.agent_id);
    cluster.shutdown().await;
}

#[tokio::test]
async fn revive_with_an_unsubscribed_role_does_nothing() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    let cluster = start(cfg).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("r", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    sub.decline(&[&offer.id], Some(3600.0)).await;
    let mut revive = sub.call_of(call::Type::Revive);
    revive.revive = Some(call::Revive {
        roles: vec!["*".into(), "other".into()],
    });
    sub.send(revive).await;
    let seen = sub.events.during_heartbeats(5).await;
    assert!(
        seen.iter()
            .all(|e| e.r#type != Some(event::Type::Offers as i32)),
        "{seen:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn rescind_offers_fault_sends_rescind() {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("r", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    cluster.faults().rescind_offers().await.unwrap();
    let rescind = sub.events.next_of(event::Type::Rescind).await;
    assert_eq!(rescind.rescind.unwrap().offer_id, offer.id);
    // The resources come back without a filter.
    let again = sub.events.next_offers().await;
    assert_eq!(again[0].agent_id, offer.agent_id);
    cluster.shutdown().await;
}

#[tokio::test]
async fn unused_accepted_resources_are_filtered_by_the_accept_filters() {
    let mut cfg = config();
    cfg.agents = vec![
        agent("cpus:1;mem:256", "zone:a"),
        agent("cpus:1;mem:256", "zone:b"),
    ];
    let cluster = start(cfg).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("f", &[])).await;
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(sub.events.next_offers().await);
    }
    let (used, other) = (&offers[0], &offers[1]);
    // ACCEPT without filters: the unused rest of the agent is filtered for the default 5 s.
    sub.accept(&[&used.id], vec![launch_op(vec![task("t", used)])], None)
        .await;
    sub.decline(&[&other.id], Some(0.0)).await;
    for _ in 0..5 {
        let again = sub.events.next_offers().await;
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(
            again[0].agent_id, other.agent_id,
            "the remainder is filtered"
        );
        sub.decline(&[&again[0].id], Some(0.0)).await;
    }
    cluster.shutdown().await;
}

/// A cluster whose periodic allocation is a minute away: any offer that arrives within
/// [`AT_ONCE`] was made by an immediate allocation run.
fn slow_allocation_config() -> mesos_reconciler::devcluster::DevClusterConfig {
    let mut cfg = config();
    cfg.allocation_interval = Duration::from_secs(60);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg
}

/// Far shorter than the 60 s allocation interval, generous for a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(10);

async fn offers_at_once(sub: &mut Sub, what: &str) -> Vec<pb::Offer> {
    tokio::time::timeout(AT_ONCE, sub.events.next_offers())
        .await
        .unwrap_or_else(|_| panic!("{what}: no offer within {AT_ONCE:?} (interval is 60 s)"))
}

async fn assert_no_offers(sub: &mut Sub, what: &str) {
    let seen = sub.events.during_heartbeats(5).await;
    assert!(
        seen.iter()
            .all(|e| e.r#type != Some(event::Type::Offers as i32)),
        "{what}: {seen:?}"
    );
}

/// Upstream's `reviveOffers` ends with `generateOffers()`: offers come right after REVIVE, not at
/// the next allocation interval. So does a new framework's SUBSCRIBE (`addFramework`).
#[tokio::test]
async fn revive_allocates_at_once() {
    let cluster = start(slow_allocation_config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("r", &[])).await;
    let offer = offers_at_once(&mut sub, "SUBSCRIBE").await.remove(0);
    sub.send(sub.call_of(call::Type::Suppress)).await;
    sub.decline(&[&offer.id], Some(0.0)).await;
    // Neither SUPPRESS nor the declined resources allocate at once.
    assert_no_offers(&mut sub, "after SUPPRESS and DECLINE").await;
    sub.send(sub.call_of(call::Type::Revive)).await;
    let again = offers_at_once(&mut sub, "REVIVE").await;
    assert_eq!(again[0].agent_id, offer.agent_id);
    cluster.shutdown().await;
}

/// Resources recovered by DECLINE wait for the next interval (`recoverResources` never
/// allocates), and so does UPDATE_FRAMEWORK un-suppressing a role (`updateFramework` revives
/// the role without `generateOffers`); REVIVE then allocates at once.
#[tokio::test]
async fn decline_and_update_framework_wait_for_the_interval() {
    let cluster = start(slow_allocation_config()).await;
    let info = framework_info("u", &[]);
    let mut call = subscribe_call(info.clone());
    call.subscribe.as_mut().unwrap().suppressed_roles = vec!["*".into()];
    let mut sub = subscribe_with(&cluster.url(), Encoding::Protobuf, &call).await;
    assert_no_offers(&mut sub, "subscribed with its role suppressed").await;
    let mut info = info;
    info.id = Some(pb::FrameworkId {
        value: sub.framework_id.clone(),
    });
    let mut update = sub.call_of(call::Type::UpdateFramework);
    update.update_framework = Some(call::UpdateFramework {
        framework_info: info,
        ..Default::default()
    });
    let (status, body) = sub.call(&update).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_no_offers(&mut sub, "UPDATE_FRAMEWORK un-suppressing the role").await;
    sub.send(sub.call_of(call::Type::Revive)).await;
    let offer = offers_at_once(&mut sub, "REVIVE").await.remove(0);
    sub.decline(&[&offer.id], Some(0.0)).await;
    assert_no_offers(&mut sub, "DECLINE without a filter").await;
    cluster.shutdown().await;
}

/// Re-subscribing a disconnected framework activates it (`activateFramework`), and an added
/// agent is offered (`addSlave` -> `generateOffers(slaveId)`): both at once.
#[tokio::test]
async fn resubscribe_and_new_agents_allocate_at_once() {
    let cluster = start(slow_allocation_config()).await;
    let url = cluster.url();
    let mut info = framework_info("f", &[]);
    info.failover_timeout = Some(3600.0);
    let mut sub = subscribe(&url, Encoding::Protobuf, info.clone()).await;
    let first = offers_at_once(&mut sub, "SUBSCRIBE").await.remove(0);
    cluster
        .faults()
        .drop_framework_stream(&sub.framework_id)
        .await
        .unwrap();
    sub.events.until_end().await;
    info.id = Some(pb::FrameworkId {
        value: sub.framework_id.clone(),
    });
    let mut sub = subscribe(&url, Encoding::Protobuf, info).await;
    let offer = offers_at_once(&mut sub, "re-SUBSCRIBE").await.remove(0);
    assert_eq!(offer.agent_id, first.agent_id);
    let added = cluster
        .faults()
        .add_agent(agent("cpus:1;mem:256", ""))
        .await
        .unwrap();
    let offer = offers_at_once(&mut sub, "added agent").await.remove(0);
    assert_eq!(offer.agent_id.value, added);
    cluster.shutdown().await;
}
