//! `GET /master/frameworks`: upstream's `Master::ReadOnlyHandler::frameworks` (Mesos 1.11). The
//! document has three arrays: `frameworks` (registered: connected, disconnected within their
//! failover timeout, or recovered from re-registering agents after a master failover),
//! `completed_frameworks` (removed: torn down or failed over for good) and
//! `unregistered_frameworks` (always empty since Mesos 1.0, kept for compatibility). Each framework
//! is written as in `/master/state` (upstream's `FullFrameworkWriter`): `id`, `name`, `hostname`,
//! `active`, `connected`, `recovered`, `principal` when set, its `tasks` with their `labels`, its
//! `unreachable_tasks` and `completed_tasks`, offers and resources.
//!
//! `framework_id=<id>` keeps only that framework (in whichever array it is).

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::super::state::{Framework, Master};
use super::super::state_json::{Arr, Obj};
use super::{Ops, ask, json_response, query_value, stopped};

/// The handler: the document comes from the master actor.
pub(super) async fn get(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let framework_id = query_value(query.as_deref(), "framework_id");
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, move |m| m.frameworks_json(framework_id.as_deref())).await {
        Some(body) => json_response(body, jsonp),
        None => stopped(),
    }
}

impl Master {
    /// The document, with only the framework `framework_id` when given.
    pub(in super::super) fn frameworks_json(&self, framework_id: Option<&str>) -> Vec<u8> {
        let selected = |id: &str| framework_id.is_none_or(|wanted| wanted == id);
        let mut live: Vec<&Framework> = self
            .frameworks
            .values()
            .filter(|f| selected(&f.id))
            .collect();
        live.sort_by(|a, b| a.id.cmp(&b.id));
        let tasks: usize = live
            .iter()
            .map(|f| self.tasks.of_framework(&f.id).count())
            .sum();
        let mut out = Vec::with_capacity(1024 + tasks * 600);
        let mut doc = Obj::new(&mut out);
        {
            let mut list = Arr::new(doc.field("frameworks"));
            for framework in live {
                self.write_framework(list.item(), framework, true);
            }
            list.end();
        }
        {
            let mut list = Arr::new(doc.field("completed_frameworks"));
            for (_, snapshot) in self
                .completed_frameworks
                .iter()
                .filter(|(id, _)| selected(id))
            {
                list.item().extend_from_slice(snapshot);
            }
            list.end();
        }
        doc.field("unregistered_frameworks")
            .extend_from_slice(b"[]");
        doc.end();
        out
    }
}
