//! The `plan` command's question, answered by the loop: what would the proposed desired set do
//! against the state the loop owns? `plan::preview` decides it with the same pieces as a pass;
//! this only hands it the loop's state. Nothing here changes that state.

use super::state::Controller;
use crate::plan::preview::{Preview, Proposal, preview};
use crate::plan::{OfferStats, PlanInput};

impl Controller {
    /// Previews `proposal`. Cost: one comparison per spec in force, plus deciding the specs the
    /// proposal adds or changes, plus a walk of the ledger's spec ids (for deleted specs).
    pub(super) fn preview(&self, proposal: Proposal) -> Preview {
        let offer_stats = OfferStats::from_offers(self.offer_log.iter().map(|(_, r)| r))
            .with_agents(self.agents.values());
        let input = PlanInput {
            now_ms: self.clock.now_ms(),
            desired: &self.plan_desired,
            invalid: &self.desired.invalid_new,
            applied: &self.retired,
            ledger: self.ledger.map(),
            instances: &self.instances,
            rollouts: &self.rollouts,
            offers: &[],
            offer_stats: &offer_stats,
            framework_role: &self.role,
            // What the change does once reconciled: a controller still reconciling would only
            // say "waiting for reconciliation" for every new instance.
            awaiting_reconciliation: false,
            deletions_approved: self.deletions_approved,
            suppressed: self.suppressed,
        };
        let ledger = &self.ledger;
        preview(
            &input,
            proposal,
            ledger.spec_ids().map(String::as_str),
            &|id| ledger.of_spec(id),
        )
    }
}
