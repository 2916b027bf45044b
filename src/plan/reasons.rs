//! Why an instance that wanted an offer got none, in words a person can act on. Checked from the
//! most fundamental cause to the most passing one:
//! 1. a resource no offer of the last minute had enough of: "needs 8 cpus; the largest offer in
//!    the last minute had 4" (the scarcest resource: the largest need-to-largest ratio);
//! 2. a constraint no known agent meets: "no offer meets constraint hostname unique (3 instances
//!    already on the 3 agents seen)";
//! 3. offers are held but none fits now (other role, constraints, too little left free);
//! 4. no offer is held.
//!
//! Also the small formatting helpers the other messages share.

use super::decide::Want;
use super::placement::{Need, Placer, agent_value, offer_value};
use super::{Pending, PendingReason, PlanInput, ResourceKind};
use crate::spec::{Constraint, ConstraintOp};

/// The pending reason of a want no offer took.
pub(super) fn explain(input: &PlanInput<'_>, placer: &Placer<'_>, want: &Want<'_>) -> Pending {
    let need = Need::of(want.spec);
    let stats = input.offer_stats;
    let pending = |reason, message| Pending {
        reason,
        message,
        until_ms: None,
    };

    // 1. Fundamentally too big for what the cluster offers (offers held now count as seen).
    if stats.offers > 0 || !placer.slots.is_empty() {
        let mut largest = Largest {
            cpus: stats.cpus,
            mem: stats.mem,
            disk: stats.disk,
            gpus: stats.gpus,
            ports: stats.ports as f64,
        };
        for slot in &placer.slots {
            largest.include(&slot.offer.resources);
        }
        if let Some((resource, needed, had)) = scarcest(&need, &largest) {
            return pending(
                PendingReason::InsufficientResources {
                    resource,
                    needed,
                    largest: had,
                },
                format!(
                    "needs {}; the largest offer in the last minute had {}",
                    amount(resource, needed, true),
                    amount(resource, had, false)
                ),
            );
        }
    }

    // 2. A constraint that rules out every agent known.
    if !placer.agents.is_empty() {
        for c in &want.spec.constraints {
            let any = placer
                .agents
                .values()
                .any(|a| placer.meets(want, c, agent_value(a, &c.field)));
            if !any {
                return pending(
                    PendingReason::Constraint,
                    constraint_message(placer, want, c),
                );
            }
        }
        let all = placer.agents.values().any(|a| {
            want.spec
                .constraints
                .iter()
                .all(|c| placer.meets(want, c, agent_value(a, &c.field)))
        });
        if !all {
            let list: Vec<String> = want.spec.constraints.iter().map(describe).collect();
            return pending(
                PendingReason::Constraint,
                format!(
                    "no agent seen meets all constraints together ({})",
                    list.join(", ")
                ),
            );
        }
    }

    // 3. Offers held, none fits now.
    if placer.slots.is_empty() {
        let message = if stats.offers == 0 {
            "waiting for an offer (none seen in the last minute)"
        } else {
            "waiting for an offer"
        };
        return pending(PendingReason::WaitingForOffer, message.to_owned());
    }
    let role = placer.role_of(want.spec);
    let of_role: Vec<_> = placer
        .slots
        .iter()
        .filter(|s| s.offer.role == role)
        .collect();
    if of_role.is_empty() {
        return pending(
            PendingReason::NoOfferFits,
            format!(
                "waiting for an offer for role {role}; the offers held now are for other roles"
            ),
        );
    }
    let meeting: Vec<_> = of_role
        .iter()
        .filter(|s| placer.meets_all(want, s.offer))
        .collect();
    let Some(first) = meeting.first() else {
        let failing = want
            .spec
            .constraints
            .iter()
            .find(|c| {
                of_role
                    .iter()
                    .all(|s| !placer.meets(want, c, offer_value(s.offer, &c.field)))
            })
            .map_or_else(|| "their constraints together".to_owned(), describe);
        return pending(
            PendingReason::NoOfferFits,
            format!("the offers held now do not meet {failing}; waiting for other offers"),
        );
    };
    let mut free = Largest::default();
    for slot in &meeting {
        free.include(&slot.free);
    }
    let message = match scarcest(&need, &free) {
        Some((resource, needed, had)) => format!(
            "needs {}; the offers held now have at most {} free",
            amount(resource, needed, true),
            amount(resource, had, false)
        ),
        None => format!(
            "needs {}; no single offer held now has all of it free (e.g. {} on {})",
            describe_need(&need),
            describe_free(&first.free),
            first.offer.hostname
        ),
    };
    pending(PendingReason::NoOfferFits, message)
}

/// The largest amount of each resource over several offers.
#[derive(Debug, Default)]
struct Largest {
    cpus: f64,
    mem: f64,
    disk: f64,
    gpus: f64,
    ports: f64,
}

impl Largest {
    fn include(&mut self, r: &crate::model::Resources) {
        self.cpus = self.cpus.max(r.cpus);
        self.mem = self.mem.max(r.mem);
        self.disk = self.disk.max(r.disk);
        self.gpus = self.gpus.max(r.gpus);
        self.ports = self.ports.max(r.port_count() as f64);
    }
}

/// The resource `need` exceeds `have` by the largest factor, if any.
fn scarcest(need: &Need, have: &Largest) -> Option<(ResourceKind, f64, f64)> {
    let pairs = [
        (ResourceKind::Cpus, need.cpus, have.cpus),
        (ResourceKind::Mem, need.mem, have.mem),
        (ResourceKind::Disk, need.disk, have.disk),
        (ResourceKind::Gpus, need.gpus, have.gpus),
        (ResourceKind::Ports, need.ports as f64, have.ports),
    ];
    let mut best: Option<(ResourceKind, f64, f64, f64)> = None;
    for (kind, needed, had) in pairs {
        if needed <= had + 1e-6 {
            continue;
        }
        let ratio = if had <= 0.0 {
            f64::INFINITY
        } else {
            needed / had
        };
        if best.is_none_or(|(_, _, _, r)| ratio > r) {
            best = Some((kind, needed, had, ratio));
        }
    }
    best.map(|(kind, needed, had, _)| (kind, needed, had))
}

/// `8 cpus`, `4096 MiB mem` (with the noun) or `4`, `2048 MiB` (without).
fn amount(kind: ResourceKind, value: f64, noun: bool) -> String {
    let n = number(value);
    match (kind, noun) {
        (ResourceKind::Cpus, true) => format!("{n} cpus"),
        (ResourceKind::Mem, true) => format!("{n} MiB mem"),
        (ResourceKind::Disk, true) => format!("{n} MiB disk"),
        (ResourceKind::Gpus, true) => format!("{n} gpus"),
        (ResourceKind::Ports, true) => format!("{n} ports"),
        (ResourceKind::Mem | ResourceKind::Disk, false) => format!("{n} MiB"),
        (_, false) => n,
    }
}

fn describe_need(need: &Need) -> String {
    let mut parts = vec![
        amount(ResourceKind::Cpus, need.cpus, true),
        amount(ResourceKind::Mem, need.mem, true),
    ];
    if need.disk > 0.0 {
        parts.push(amount(ResourceKind::Disk, need.disk, true));
    }
    if need.gpus > 0.0 {
        parts.push(amount(ResourceKind::Gpus, need.gpus, true));
    }
    if need.ports > 0 {
        parts.push(amount(ResourceKind::Ports, need.ports as f64, true));
    }
    parts.join(", ")
}

fn describe_free(r: &crate::model::Resources) -> String {
    format!(
        "{}, {}, {}",
        amount(ResourceKind::Cpus, r.cpus, true),
        amount(ResourceKind::Mem, r.mem, true),
        amount(ResourceKind::Ports, r.port_count() as f64, true)
    )
}

/// A number as a person writes it: `4`, `0.25`, at most three decimals.
fn number(value: f64) -> String {
    let rounded = (value * 1000.0).round() / 1000.0;
    let text = format!("{rounded:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `hostname unique`, `rack cluster r1`, `rack max_per 2`.
fn describe(c: &Constraint) -> String {
    match &c.op {
        ConstraintOp::Unique => format!("{} unique", c.field),
        ConstraintOp::Cluster(v) => format!("{} cluster {v}", c.field),
        ConstraintOp::Like(v) => format!("{} like {v}", c.field),
        ConstraintOp::Unlike(v) => format!("{} unlike {v}", c.field),
        ConstraintOp::MaxPer(n) => format!("{} max_per {n}", c.field),
    }
}

/// Why `c` rules out every known agent.
fn constraint_message(placer: &Placer<'_>, want: &Want<'_>, c: &Constraint) -> String {
    let values: std::collections::BTreeSet<&str> = placer
        .agents
        .values()
        .filter_map(|a| agent_value(a, &c.field))
        .collect();
    let seen = if c.field == "hostname" {
        format!("{} agents seen", values.len())
    } else {
        format!("{} values of {} seen", values.len(), c.field)
    };
    let detail = match &c.op {
        ConstraintOp::Unique | ConstraintOp::MaxPer(_) if values.is_empty() => {
            format!("no agent seen has attribute {}", c.field)
        }
        ConstraintOp::Unique | ConstraintOp::MaxPer(_) => format!(
            "{} instances already on the {seen}",
            placer.others_anywhere(want, &c.field)
        ),
        _ if values.is_empty() => format!("no agent seen has attribute {}", c.field),
        _ => {
            let mut listed: Vec<&str> = values.iter().copied().take(5).collect();
            if values.len() > 5 {
                listed.push("...");
            }
            format!("values seen: {}", listed.join(", "))
        }
    };
    format!("no offer meets constraint {} ({detail})", describe(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_writes_them() {
        assert_eq!(number(4.0), "4");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(4096.0), "4096");
        assert_eq!(number(0.0), "0");
    }
}
