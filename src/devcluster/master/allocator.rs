//! The allocator (§8): each registered agent's unreserved free resources go to one framework
//! role as one offer, skipping suppressed roles, live filters, GPU agents for frameworks without
//! GPU_RESOURCES and frameworks' `offer_filters`. Frameworks are served in rotating order so that
//! several frameworks share the agents.
//!
//! When it runs is upstream's (`HierarchicalAllocatorProcess` in
//! `src/master/allocator/mesos/hierarchical.cpp`, Mesos 1.11): a batch over every agent each
//! allocation interval, plus a run right away (its `generateOffers()`, coalesced with any run
//! already requested) after these events only:
//!
//! - a framework is added or activated (`addFramework` with `active`, `activateFramework`): a new
//!   SUBSCRIBE, the re-SUBSCRIBE of a disconnected or recovered framework; not the failover of a
//!   framework whose stream is still open (`Master::_failoverFramework` re-activates nothing);
//! - REVIVE (`reviveOffers`, which ends with `generateOffers()`); a REVIVE dropped for an
//!   unsubscribed role triggers nothing;
//! - an agent is added or re-registers (`addSlave` -> `generateOffers(slaveId)`, that agent only).
//!
//! Everything else waits for the next interval, as upstream: resources recovered by DECLINE, by
//! the unused part of an ACCEPT, by a rescind or by a task's end (`recoverResources` never
//! allocates; see MESOS-3078), SUPPRESS, UPDATE_FRAMEWORK even when it un-suppresses roles
//! (`updateFramework` calls `reviveRoles` but not `generateOffers`), expiring filters, and
//! framework removal or deactivation.
//!
//! Cost per run is O(agents x frameworks) plus the filters of the agent being offered: task
//! counts never enter it, because each agent keeps running totals of what is used and offered.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::resources::{Resources, WireFormat};
use super::state::{Filter, Master, OfferRec};
use super::streams;
use crate::mesos::proto::v1 as pb;
use pb::framework_info::capability::Type as Capability;

/// Upstream's `--min_allocatable_resources` default, `cpus:0.01|mem:32`: smaller leftovers are
/// not offered.
const MIN_CPUS: f64 = 0.01;
const MIN_MEM: f64 = 32.0;

/// The agents the next immediate allocation run covers (upstream `allocationCandidates`).
#[derive(Debug, Default)]
pub(super) enum Candidates {
    #[default]
    Nothing,
    Agents(BTreeSet<String>),
    All,
}

impl Master {
    /// Asks for an allocation over every agent as soon as the current trigger is handled.
    pub(super) fn request_allocation(&mut self) {
        self.allocation_candidates = Candidates::All;
    }

    /// Asks for an allocation of one agent's resources as soon as the current trigger is handled.
    pub(super) fn request_allocation_on(&mut self, agent_id: &str) {
        match &mut self.allocation_candidates {
            Candidates::All => {}
            Candidates::Agents(agents) => {
                agents.insert(agent_id.to_owned());
            }
            none @ Candidates::Nothing => {
                *none = Candidates::Agents(BTreeSet::from([agent_id.to_owned()]));
            }
        }
    }

    /// Runs the allocation requested while handling the last trigger, if any: one run for all
    /// the requests, as upstream's pending `_generateOffers` dispatch absorbs later ones.
    pub(super) fn run_requested_allocation(&mut self) {
        match std::mem::take(&mut self.allocation_candidates) {
            Candidates::Nothing => {}
            Candidates::All => self.allocate(None),
            Candidates::Agents(agents) => self.allocate(Some(&agents)),
        }
    }

    /// The batch of every allocation interval: all agents (which covers any pending request).
    pub(super) fn allocate_periodically(&mut self) {
        self.allocation_candidates = Candidates::Nothing;
        self.allocate(None);
    }

    /// One allocation run over `only` these agents, or all of them.
    fn allocate(&mut self, only: Option<&BTreeSet<String>>) {
        let now = Instant::now();
        let mut candidates: Vec<String> = self
            .frameworks
            .values()
            .filter(|f| f.stream().is_some())
            .filter(|f| f.roles().iter().any(|r| !f.suppressed.contains(r)))
            .map(|f| f.id.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        candidates.sort();
        for framework in self.frameworks.values_mut() {
            for filters in framework.filters.values_mut() {
                filters.retain(|f| f.until > now);
            }
            framework.filters.retain(|_, f| !f.is_empty());
        }
        let mut batches: HashMap<String, Vec<pb::Offer>> = HashMap::new();
        let agent_ids: Vec<String> = self
            .agents
            .values()
            .filter(|a| a.is_registered())
            .filter(|a| only.is_none_or(|set| set.contains(&a.id)))
            .map(|a| a.id.clone())
            .collect();
        for agent_id in agent_ids {
            let Some(agent) = self.agents.get(&agent_id) else {
                continue;
            };
            let free = agent.total.minus(&agent.used).minus(&agent.offered);
            if free.scalar("cpus") < MIN_CPUS && free.scalar("mem") < MIN_MEM {
                continue;
            }
            let has_gpus = free.scalar("gpus") > 0.0 || agent.total.scalar("gpus") > 0.0;
            let n = candidates.len();
            let mut chosen = None;
            'frameworks: for k in 0..n {
                let framework_id = &candidates[(self.allocation_cursor + k) % n];
                let Some(framework) = self.frameworks.get(framework_id) else {
                    continue;
                };
                if has_gpus && !framework.has(Capability::GpuResources) {
                    continue;
                }
                for role in framework.roles() {
                    if framework.suppressed.contains(&role) {
                        continue;
                    }
                    let filtered = framework.filters.get(&agent_id).is_some_and(|fs| {
                        fs.iter()
                            .any(|f| f.role == role && f.resources.contains(&free))
                    });
                    if filtered || !passes_offer_filters(&framework.info, &role, &free) {
                        continue;
                    }
                    chosen = Some((framework_id.clone(), role));
                    self.allocation_cursor = (self.allocation_cursor + k + 1) % n;
                    break 'frameworks;
                }
            }
            if let Some((framework_id, role)) = chosen {
                let offer = self.make_offer(&framework_id, &agent_id, &role, free);
                batches.entry(framework_id).or_default().push(offer);
            }
        }
        for (framework_id, offers) in batches {
            tracing::debug!(framework_id, count = offers.len(), "sending offers");
            self.send_event(&framework_id, &streams::offers(offers));
        }
    }

    fn make_offer(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        resources: Resources,
    ) -> pb::Offer {
        let offer_id = format!("{}-O{}", self.master_id, self.next_offer);
        self.next_offer += 1;
        let framework = self.frameworks.get_mut(framework_id);
        let (format, executor_ids) = match framework {
            Some(f) => {
                f.offers.insert(offer_id.clone());
                let format = WireFormat {
                    refinement: f.has(Capability::ReservationRefinement),
                    allocation_role: f.has(Capability::MultiRole).then(|| role.to_owned()),
                };
                // The agent's executors only: ordered by agent, so no scan of the others.
                let executor_ids = f
                    .executors
                    .range((agent_id.to_owned(), String::new())..)
                    .take_while(|((a, _), _)| a == agent_id)
                    .map(|((_, e), _)| pb::ExecutorId { value: e.clone() })
                    .collect();
                (format, executor_ids)
            }
            None => (WireFormat::default(), Vec::new()),
        };
        let agent = self.agents.get_mut(agent_id);
        let (hostname, attributes, pid, port) = match agent {
            Some(a) => {
                a.offered.add(&resources);
                (
                    a.hostname.clone(),
                    a.spec.attributes.clone(),
                    a.pid,
                    a.http_port,
                )
            }
            None => (self.settings.hostname.clone(), Vec::new(), 0, 0),
        };
        let offer = pb::Offer {
            id: pb::OfferId {
                value: offer_id.clone(),
            },
            framework_id: streams::framework_id_pb(framework_id),
            agent_id: pb::AgentId {
                value: agent_id.to_owned(),
            },
            hostname: hostname.clone(),
            url: Some(pb::Url {
                scheme: "http".to_owned(),
                address: pb::Address {
                    hostname: Some(hostname),
                    ip: Some("127.0.0.1".to_owned()),
                    // The agent's own server, as its pid says.
                    port: i32::from(port),
                },
                path: Some(format!("/slave({pid})")),
                query: Vec::new(),
                fragment: None,
            }),
            domain: None,
            resources: resources.to_pb(&format),
            attributes,
            executor_ids,
            unavailability: None,
            allocation_info: format.allocation_role.as_ref().map(|r| {
                pb::resource::AllocationInfo {
                    role: Some(r.clone()),
                }
            }),
        };
        self.offers.insert(
            offer_id,
            OfferRec {
                framework_id: framework_id.to_owned(),
                agent_id: agent_id.to_owned(),
                role: role.to_owned(),
                resources,
            },
        );
        offer
    }

    /// Takes an offer out of circulation, its resources back to the agent; with `filter`, they
    /// are not re-offered to this framework and role for that long.
    pub(super) fn remove_offer(
        &mut self,
        offer_id: &str,
        filter: Option<Duration>,
    ) -> Option<OfferRec> {
        let offer = self.offers.remove(offer_id)?;
        if let Some(agent) = self.agents.get_mut(&offer.agent_id) {
            agent.offered.subtract(&offer.resources);
        }
        if let Some(framework) = self.frameworks.get_mut(&offer.framework_id) {
            framework.offers.remove(offer_id);
        }
        if let Some(duration) = filter {
            self.add_filter(
                &offer.framework_id,
                &offer.agent_id,
                &offer.role,
                offer.resources.clone(),
                duration,
            );
        }
        Some(offer)
    }

    /// Removes an offer and tells the framework (RESCIND); no filter.
    pub(super) fn rescind_offer(&mut self, offer_id: &str) {
        if let Some(offer) = self.remove_offer(offer_id, None) {
            tracing::debug!(offer_id, framework_id = %offer.framework_id, "offer rescinded");
            self.send_event(&offer.framework_id, &streams::rescind(offer_id));
        }
    }

    pub(super) fn rescind_agent_offers(&mut self, agent_id: &str) {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent_id == agent_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.rescind_offer(&id);
        }
    }

    pub(super) fn add_filter(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        resources: Resources,
        duration: Duration,
    ) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework
                .filters
                .entry(agent_id.to_owned())
                .or_default()
                .push(Filter {
                    role: role.to_owned(),
                    resources,
                    until: Instant::now() + duration,
                });
        }
    }
}

/// `FrameworkInfo.offer_filters[role].min_allocatable_resources`: when set, an offer is made only
/// if it holds at least one of the listed quantity sets.
fn passes_offer_filters(info: &pb::FrameworkInfo, role: &str, free: &Resources) -> bool {
    let Some(min) = info
        .offer_filters
        .get(role)
        .and_then(|f| f.min_allocatable_resources.as_ref())
    else {
        return true;
    };
    if min.quantities.is_empty() {
        return true;
    }
    min.quantities.iter().any(|q| {
        q.quantities
            .iter()
            .all(|(name, scalar)| free.scalar(name) >= scalar.value)
    })
}
