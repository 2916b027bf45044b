//! `GET /master/roles`: upstream's `Master::ReadOnlyHandler::roles`. `{"roles": [...]}`, one
//! entry per known role (one a registered framework is subscribed to, or that live tasks are
//! allocated to), in name order: `name`, `weight` (always the default 1: the dev cluster has no
//! `/weights`), `quota` (`role`, and empty `guarantee`/`limit`: no quotas; `consumed`: what is
//! allocated), `resources` (allocated plus offered, the deprecated sum), `allocated`, `offered`,
//! `reserved` (always empty: no reservations) and the ids of its `frameworks`.
//!
//! The same facts answer the v1 `GET_ROLES` (`v1.rs`).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::super::resources::Resources;
use super::super::state::{Master, is_terminal};
use super::super::state_json::{Arr, Obj, value};
use super::{Ops, ask, json_response, query_value, stopped};

/// Upstream's `DEFAULT_WEIGHT`.
pub(super) const DEFAULT_WEIGHT: f64 = 1.0;

pub(super) async fn get(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, |m| m.roles_json()).await {
        Some(body) => json_response(body, jsonp),
        None => stopped(),
    }
}

/// One role: who is subscribed, what its tasks hold and what it is offered.
#[derive(Debug, Default)]
pub(super) struct RoleFacts {
    pub frameworks: BTreeSet<String>,
    pub allocated: Resources,
    pub offered: Resources,
}

/// `{"cpus": 1.5, "mem": 128}`: upstream's `ResourceQuantities` (scalars only).
fn write_quantities(out: &mut Vec<u8>, resources: &Resources) {
    let mut o = Obj::new(out);
    for (name, amount) in resources.quantities() {
        value(o.field(name), amount);
    }
    o.end();
}

impl Master {
    /// Every known role, by name.
    pub(super) fn role_facts(&self) -> BTreeMap<String, RoleFacts> {
        let mut roles: BTreeMap<String, RoleFacts> = BTreeMap::new();
        for framework in self.frameworks.values() {
            for role in framework.roles() {
                roles
                    .entry(role)
                    .or_default()
                    .frameworks
                    .insert(framework.id.clone());
            }
        }
        for (_, task) in self.tasks.iter() {
            if !is_terminal(task.state()) {
                let facts = roles.entry(task.role.to_string()).or_default();
                facts.allocated.add(&task.resources);
            }
        }
        for offer in self.offers.values() {
            let facts = roles.entry(offer.role.clone()).or_default();
            facts.offered.add(&offer.resources);
        }
        roles
    }

    pub(in super::super) fn roles_json(&self) -> Vec<u8> {
        let roles = self.role_facts();
        let mut out = Vec::with_capacity(256 + roles.len() * 512);
        let mut doc = Obj::new(&mut out);
        let mut list = Arr::new(doc.field("roles"));
        for (name, facts) in &roles {
            let mut o = Obj::new(list.item());
            value(o.field("name"), name);
            value(o.field("weight"), DEFAULT_WEIGHT);
            {
                let mut quota = Obj::new(o.field("quota"));
                value(quota.field("role"), name);
                quota.field("guarantee").extend_from_slice(b"{}");
                quota.field("limit").extend_from_slice(b"{}");
                write_quantities(quota.field("consumed"), &facts.allocated);
                quota.end();
            }
            let mut both = facts.allocated.clone();
            both.add(&facts.offered);
            write_quantities(o.field("resources"), &both);
            write_quantities(o.field("allocated"), &facts.allocated);
            write_quantities(o.field("offered"), &facts.offered);
            o.field("reserved").extend_from_slice(b"{}");
            value(o.field("frameworks"), &facts.frameworks);
            o.end();
        }
        list.end();
        doc.end();
        out
    }
}
