//! `GET /master/flags`: upstream's `Master::Http::flags`, `{"flags": {name: value}}` with every
//! value a string. The dev master lists the flags of a real master whose meaning it honours
//! (its address, allocation interval, the limits on what it remembers, no authentication); the
//! same list answers the v1 `GET_FLAGS` and fills `flags` in `/master/state`.

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::super::state::{MAX_COMPLETED_FRAMEWORKS, MAX_COMPLETED_TASKS, Master};
use super::super::state_json::{Obj, value};
use super::{Ops, ask, json_response, query_value, stopped};

pub(super) async fn get(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, |m| m.flags_json()).await {
        Some(body) => json_response(body, jsonp),
        None => stopped(),
    }
}

impl Master {
    /// The flags, by name.
    pub(in super::super) fn flags(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let mut flags = vec![
            (
                "allocation_interval",
                format!("{}ms", s.allocation_interval.as_millis()),
            ),
            ("authenticate_agents", "false".to_owned()),
            ("authenticate_frameworks", "false".to_owned()),
            ("authenticate_http_frameworks", "false".to_owned()),
            ("authenticate_http_readonly", "false".to_owned()),
            ("authenticate_http_readwrite", "false".to_owned()),
            ("hostname", s.hostname.clone()),
            ("ip", "127.0.0.1".to_owned()),
            (
                "max_completed_frameworks",
                MAX_COMPLETED_FRAMEWORKS.to_string(),
            ),
            (
                "max_completed_tasks_per_framework",
                MAX_COMPLETED_TASKS.to_string(),
            ),
            ("port", s.port.to_string()),
            ("work_dir", s.work_dir.display().to_string()),
        ];
        flags.sort_by_key(|(name, _)| *name);
        flags
    }

    /// The flags as the object `/master/flags` and `/master/state` show.
    pub(in super::super) fn write_flags(&self, out: &mut Vec<u8>) {
        let mut o = Obj::new(out);
        for (name, v) in self.flags() {
            value(o.field(name), v);
        }
        o.end();
    }

    fn flags_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let mut doc = Obj::new(&mut out);
        self.write_flags(doc.field("flags"));
        doc.end();
        out
    }
}
