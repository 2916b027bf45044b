//! Fitting tasks onto offers: first fit in offer order, several tasks per offer while they fit, each
//! task taking its scalars and `ports` distinct ports from what the offer has left after the tasks
//! placed before it in this pass.
//!
//! An offer is only used for tasks of its role (the spec's `role`, else the framework's).
//!
//! Constraints are checked against the offer's hostname (`field = "hostname"`) or an agent
//! attribute, and count the spec's live tasks (those the pass keeps) plus the tasks placed earlier
//! in the same pass:
//! - `unique`: no other instance of the spec on the same value;
//! - `max_per n`: fewer than `n` other instances of the spec on the value;
//! - `cluster v`: the value is `v`;
//! - `like re` / `unlike re`: the whole value matches / does not match `re`.
//!
//! Counting is per instance, not per task: during a rolling update the new task of an instance may
//! share a host with that instance's old task, so `hostname unique` over exactly `instances` agents
//! can still roll. An agent that lacks the attribute fails every operator except `unlike`, as in
//! Marathon: a spec that asks about an attribute wants agents that have it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regex::Regex;

use super::decide::{Presence, Want, presence};
use super::{Action, AgentInfo, Launch, PlanInput};
use crate::model::{Offer, Resources, TaskId, TaskRecord};
use crate::spec::pattern;
use crate::spec::{Constraint, ConstraintOp, Spec, SpecId};

/// Scalars compare with this slack: Mesos keeps three decimals, and sums of `0.1` are inexact.
const EPSILON: f64 = 1e-6;

/// What one task of a spec needs from an offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Need {
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    pub gpus: f64,
    pub ports: u64,
}

impl Need {
    pub fn of(spec: &Spec) -> Self {
        Need {
            cpus: spec.cpus,
            mem: spec.mem as f64,
            disk: spec.disk as f64,
            gpus: spec.gpus as f64,
            ports: u64::from(spec.ports),
        }
    }

    pub fn fits_in(&self, free: &Resources) -> bool {
        free.cpus + EPSILON >= self.cpus
            && free.mem + EPSILON >= self.mem
            && free.disk + EPSILON >= self.disk
            && free.gpus + EPSILON >= self.gpus
            && free.port_count() >= self.ports
    }
}

/// One offer and what is left of it.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    pub offer: &'a Offer,
    pub free: Resources,
    pub tasks: Vec<Launch>,
}

/// Where a task of a spec runs, for constraint counting.
#[derive(Debug, Clone)]
struct Occupant {
    instance: u32,
    agent_id: Option<String>,
    hostname: Option<String>,
}

/// The offers of one pass and the placement state.
#[derive(Debug)]
pub(super) struct Placer<'a> {
    framework_role: &'a str,
    pub slots: Vec<Slot<'a>>,
    /// Tasks of each spec in force that count for its constraints, by spec id.
    occupants: BTreeMap<String, Vec<Occupant>>,
    /// Every agent known: from the offer stats and the offers held now.
    pub agents: BTreeMap<String, AgentInfo>,
    /// The `like` / `unlike` patterns of the wants, each compiled once per pass (`None`: it does
    /// not compile). Compiling is far dearer than matching, and one pass matches a pattern against
    /// every offer and agent.
    patterns: HashMap<String, Option<Regex>>,
}

impl<'a> Placer<'a> {
    /// Prepares the offers of `input` for `wants`. For each spec of a want that has constraints,
    /// its live tasks (from `records_of`, all ledger records of a spec id) count for its
    /// constraints, except those in `killed` (killed by this pass). Specs without constraints
    /// never read their occupants, so their tasks are not even looked at.
    pub fn new<'r>(
        input: &PlanInput<'a>,
        wants: &[Want<'a>],
        killed: &BTreeSet<&TaskId>,
        records_of: &dyn Fn(&str) -> Vec<&'r TaskRecord>,
    ) -> Self {
        let mut occupants: BTreeMap<String, Vec<Occupant>> = BTreeMap::new();
        let mut patterns = HashMap::new();
        for want in wants {
            let id = want.key.spec.as_str();
            if want.spec.constraints.is_empty() || occupants.contains_key(id) {
                continue;
            }
            for c in &want.spec.constraints {
                if let ConstraintOp::Like(p) | ConstraintOp::Unlike(p) = &c.op {
                    patterns
                        .entry(p.clone())
                        .or_insert_with(|| pattern::compile(p).ok());
                }
            }
            let Some(desired) = input.desired.get(&want.key.spec) else {
                continue;
            };
            let list = occupants.entry(id.to_owned()).or_default();
            for r in records_of(id) {
                let live = presence(
                    r,
                    &desired.spec,
                    input.now_ms,
                    input.awaiting_reconciliation,
                ) == Presence::Live;
                if live && !killed.contains(&r.task_id) {
                    list.push(Occupant {
                        instance: r.instance,
                        agent_id: r.agent_id.clone(),
                        hostname: r.hostname.clone(),
                    });
                }
            }
        }
        let mut agents = input.offer_stats.agents.clone();
        for offer in input.offers {
            agents.insert(offer.agent_id.clone(), AgentInfo::of(offer));
        }
        let slots = input
            .offers
            .iter()
            .map(|offer| {
                let mut free = offer.resources.clone();
                free.ports = normalise(&free.ports);
                Slot {
                    offer,
                    free,
                    tasks: Vec::new(),
                }
            })
            .collect();
        Placer {
            framework_role: input.framework_role,
            slots,
            occupants,
            agents,
            patterns,
        }
    }

    /// The role whose offers a spec's tasks use.
    pub fn role_of<'s>(&'s self, spec: &'s Spec) -> &'s str {
        spec.role.as_deref().unwrap_or(self.framework_role)
    }

    /// Places `want` on the first offer that fits; false if none does.
    pub fn place(
        &mut self,
        want: &Want<'_>,
        new_task_id: &mut dyn FnMut(&SpecId, u32, &str) -> TaskId,
    ) -> bool {
        let need = Need::of(want.spec);
        let found = self.slots.iter().position(|slot| {
            slot.offer.role == self.role_of(want.spec)
                && need.fits_in(&slot.free)
                && self.meets_all(want, slot.offer)
        });
        let Some(index) = found else {
            return false;
        };
        let slot = &mut self.slots[index];
        let Some(ports) = take_ports(&mut slot.free.ports, need.ports) else {
            return false;
        };
        slot.free.cpus -= need.cpus;
        slot.free.mem -= need.mem;
        slot.free.disk -= need.disk;
        slot.free.gpus -= need.gpus;
        slot.tasks.push(Launch {
            task_id: new_task_id(&want.key.spec, want.key.instance, &want.generation),
            spec_id: want.key.spec.clone(),
            instance: want.key.instance,
            generation: want.generation.clone(),
            spec: want.spec.clone(),
            resources: Resources {
                cpus: need.cpus,
                mem: need.mem,
                disk: need.disk,
                gpus: need.gpus,
                ports: ranges_of(&ports),
            },
            ports,
        });
        let occupant = Occupant {
            instance: want.key.instance,
            agent_id: Some(slot.offer.agent_id.clone()),
            hostname: Some(slot.offer.hostname.clone()),
        };
        self.occupants
            .entry(want.key.spec.as_str().to_owned())
            .or_default()
            .push(occupant);
        true
    }

    /// One launch per offer used, in offer order, and the ids of the offers left unused.
    pub fn into_launches(self) -> (Vec<Action>, Vec<String>) {
        let mut launches = Vec::new();
        let mut unused = Vec::new();
        for slot in self.slots {
            if slot.tasks.is_empty() {
                unused.push(slot.offer.id.clone());
            } else {
                launches.push(Action::Launch {
                    offer_id: slot.offer.id.clone(),
                    agent_id: slot.offer.agent_id.clone(),
                    hostname: slot.offer.hostname.clone(),
                    tasks: slot.tasks,
                });
            }
        }
        (launches, unused)
    }

    pub fn meets_all(&self, want: &Want<'_>, offer: &Offer) -> bool {
        want.spec
            .constraints
            .iter()
            .all(|c| self.meets(want, c, offer_value(offer, &c.field)))
    }

    /// Whether a task of `want` on an agent whose `c.field` is `value` meets `c`.
    pub fn meets(&self, want: &Want<'_>, c: &Constraint, value: Option<&str>) -> bool {
        let others = |v: &str| self.others_on(want, &c.field, v);
        match &c.op {
            ConstraintOp::Unique => value.is_some_and(|v| others(v) == 0),
            ConstraintOp::MaxPer(n) => value.is_some_and(|v| others(v) < *n as usize),
            ConstraintOp::Cluster(expected) => value == Some(expected.as_str()),
            ConstraintOp::Like(p) => {
                value.is_some_and(|v| self.with_pattern(p, |re| re.is_match(v)))
            }
            ConstraintOp::Unlike(p) => {
                self.with_pattern(p, |re| value.is_none_or(|v| !re.is_match(v)))
            }
        }
    }

    /// `check` of the compiled `p`. A pattern the validator let through always compiles; if one
    /// did not, the constraint fails closed rather than place a task where it was not wanted.
    fn with_pattern(&self, p: &str, check: impl FnOnce(&Regex) -> bool) -> bool {
        match self.patterns.get(p) {
            Some(compiled) => compiled.as_ref().is_some_and(check),
            // `new` compiled the patterns of every want; one asked about otherwise is compiled now.
            None => pattern::compile(p).as_ref().is_ok_and(check),
        }
    }

    /// How many other instances of the spec run where `field` is `value`.
    pub fn others_on(&self, want: &Want<'_>, field: &str, value: &str) -> usize {
        self.other_instances(want, field, |v| v == value)
    }

    /// How many other instances of the spec run anywhere `field` has a value.
    pub fn others_anywhere(&self, want: &Want<'_>, field: &str) -> usize {
        self.other_instances(want, field, |_| true)
    }

    fn other_instances(
        &self,
        want: &Want<'_>,
        field: &str,
        matches: impl Fn(&str) -> bool,
    ) -> usize {
        self.occupants
            .get(want.key.spec.as_str())
            .into_iter()
            .flatten()
            .filter(|o| o.instance != want.key.instance)
            .filter(|o| self.occupant_value(o, field).is_some_and(&matches))
            .map(|o| o.instance)
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn occupant_value<'s>(&'s self, o: &'s Occupant, field: &str) -> Option<&'s str> {
        let agent = o.agent_id.as_ref().and_then(|a| self.agents.get(a));
        if field == "hostname" {
            o.hostname
                .as_deref()
                .or_else(|| agent.map(|a| a.hostname.as_str()))
        } else {
            agent
                .and_then(|a| a.attributes.get(field))
                .map(String::as_str)
        }
    }
}

/// The value of a constraint field on an offer's agent.
pub(super) fn offer_value<'o>(offer: &'o Offer, field: &str) -> Option<&'o str> {
    if field == "hostname" {
        Some(&offer.hostname)
    } else {
        offer.attributes.get(field).map(String::as_str)
    }
}

/// The value of a constraint field on a known agent.
pub(super) fn agent_value<'o>(agent: &'o AgentInfo, field: &str) -> Option<&'o str> {
    if field == "hostname" {
        Some(&agent.hostname)
    } else {
        agent.attributes.get(field).map(String::as_str)
    }
}

/// Sorted, merged, non-empty ranges.
fn normalise(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut sorted: Vec<(u64, u64)> = ranges.iter().copied().filter(|(b, e)| b <= e).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (b, e) in sorted {
        match merged.last_mut() {
            Some(last) if b <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((b, e)),
        }
    }
    merged
}

/// Takes the `count` lowest ports from normalised `free` ranges, or nothing if there are too few.
fn take_ports(free: &mut Vec<(u64, u64)>, count: u64) -> Option<Vec<u64>> {
    let wanted = usize::try_from(count).ok()?;
    let chosen: Vec<u64> = free.iter().flat_map(|&(b, e)| b..=e).take(wanted).collect();
    if chosen.len() < wanted {
        return None;
    }
    if let Some(&last) = chosen.last() {
        // The chosen ports are a prefix of the sorted ranges: drop whole ranges below `last` and
        // cut the one that holds it.
        free.retain(|&(_, e)| e > last);
        if let Some(first) = free.first_mut() {
            first.0 = first.0.max(last + 1);
        }
    }
    Some(chosen)
}

/// Inclusive ranges covering sorted `ports`.
fn ranges_of(ports: &[u64]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &p in ports {
        match ranges.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(p) => last.1 = p,
            _ => ranges.push((p, p)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_taken_lowest_first_across_ranges() {
        let mut free = normalise(&[(31005, 31006), (31000, 31001), (31002, 31002)]);
        assert_eq!(free, vec![(31000, 31002), (31005, 31006)]);
        assert_eq!(take_ports(&mut free, 2), Some(vec![31000, 31001]));
        assert_eq!(free, vec![(31002, 31002), (31005, 31006)]);
        assert_eq!(take_ports(&mut free, 2), Some(vec![31002, 31005]));
        assert_eq!(free, vec![(31006, 31006)]);
        assert_eq!(take_ports(&mut free, 2), None);
        assert_eq!(
            free,
            vec![(31006, 31006)],
            "a failed take leaves the ranges alone"
        );
        assert_eq!(take_ports(&mut free, 0), Some(vec![]));
        assert_eq!(take_ports(&mut free, 1), Some(vec![31006]));
        assert!(free.is_empty());
    }

    #[test]
    fn ranges_collapse_consecutive_ports() {
        assert_eq!(
            ranges_of(&[1, 2, 3, 7, 9, 10]),
            vec![(1, 3), (7, 7), (9, 10)]
        );
        assert_eq!(ranges_of(&[]), Vec::<(u64, u64)>::new());
        assert_eq!(
            normalise(&[(5, 4), (u64::MAX, u64::MAX), (1, 2)]),
            vec![(1, 2), (u64::MAX, u64::MAX)]
        );
        let mut top = vec![(u64::MAX - 1, u64::MAX)];
        assert_eq!(take_ports(&mut top, 2), Some(vec![u64::MAX - 1, u64::MAX]));
        assert!(top.is_empty());
    }
}
