//! Upstream's operator endpoints: the read-only v0 JSON ones an operator's tools ask a master
//! (`mesos agent list` asks `/slaves`, `mesos task list` asks `/tasks?order=asc&limit=-1`, the web
//! UI asks `/master/state-summary`), one file each, and the v1 operator API (`POST /api/v1`,
//! `v1.rs`, with its event stream in `subscribe.rs`), and the overview page at `/` (`page.rs`).
//!
//! Upstream serves each master endpoint under the master's process id (`/master/<name>`) and,
//! since the master is libprocess's delegate, without it (`/<name>`); libprocess ignores a
//! trailing slash. The query parameters are upstream's: unknown ones are ignored,
//! `jsonp=<callback>` wraps the document in a call of that function.
//!
//! Every document is written on the master actor: a handler sends an [`OnMaster`] closure
//! (`Msg::Operator`) and awaits its answer, so reading never races a change of state.

mod flags;
mod frameworks;
mod model;
mod page;
mod roles;
mod slaves;
mod subscribe;
mod summary;
mod tasks;
mod v1;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get};
use tokio::sync::{mpsc, oneshot};

use super::state::{Master, Msg, Settings};
use crate::mesos::proto::v1 as pb;

pub(super) use subscribe::Subscribers;

/// What a dev cluster agent reports it can do (upstream's `SlaveInfo::Capability`): roles
/// (multi-role and hierarchical) and the post-refinement resource format.
pub(super) const AGENT_CAPABILITIES: [pb::agent_info::capability::Type; 3] = [
    pb::agent_info::capability::Type::MultiRole,
    pb::agent_info::capability::Type::HierarchicalRole,
    pb::agent_info::capability::Type::ReservationRefinement,
];

/// What the operator handlers share: the way to the actor and the fixed settings.
#[derive(Clone, Debug)]
pub(super) struct Ops {
    tx: mpsc::UnboundedSender<Msg>,
    settings: Arc<Settings>,
}

/// Work for the master actor: a closure over its state (a read, or a new subscriber).
pub(in super::super) struct OnMaster(Box<dyn FnOnce(&mut Master) + Send>);

impl OnMaster {
    pub(in super::super) fn run(self, master: &mut Master) {
        (self.0)(master);
    }
}

impl fmt::Debug for OnMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnMaster(..)")
    }
}

/// Runs `work` on the master actor and returns its answer; None once the master has stopped.
async fn ask<T: Send + 'static>(
    tx: &mpsc::UnboundedSender<Msg>,
    work: impl FnOnce(&mut Master) -> T + Send + 'static,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    let job = OnMaster(Box::new(move |master: &mut Master| {
        let _ = reply.send(work(master));
    }));
    tx.send(Msg::Operator(job)).ok()?;
    answer.await.ok()
}

/// The routes of the operator endpoints: each master endpoint with and without `/master`, each
/// with and without a trailing slash.
pub(super) fn router(tx: mpsc::UnboundedSender<Msg>, settings: Arc<Settings>) -> Router {
    let master_endpoints: [(&str, MethodRouter<Ops>); 8] = [
        ("frameworks", get(frameworks::get)),
        ("slaves", get(slaves::get)),
        ("tasks", get(tasks::get)),
        ("state", get(state)),
        ("state-summary", get(summary::get)),
        ("roles", get(roles::get)),
        ("flags", get(flags::get)),
        ("api/v1", any(v1::post)),
    ];
    let mut router = Router::new();
    for (name, handler) in master_endpoints {
        for path in [
            format!("/master/{name}"),
            format!("/master/{name}/"),
            format!("/{name}"),
            format!("/{name}/"),
        ] {
            router = router.route(&path, handler.clone());
        }
    }
    // Before Mesos 1.0 the state was also `state.json`; tools of that time still ask for it.
    for path in ["/master/state.json", "/state.json"] {
        router = router.route(path, get(state));
    }
    for path in ["/metrics/snapshot", "/metrics/snapshot/"] {
        router = router.route(path, get(metrics));
    }
    router = router.route("/", get(page::get));
    router.with_state(Ops { tx, settings })
}

/// `GET /master/state`: the document of `state_json.rs`.
async fn state(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, |m| m.state_json()).await {
        Some(body) => json_response(body, jsonp),
        None => stopped(),
    }
}

/// `GET /metrics/snapshot` (upstream's `timeout` is accepted and ignored: the snapshot never
/// waits on anything slow).
async fn metrics(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, |m| m.metrics_snapshot()).await {
        Some(value) => json_response(serde_json::to_vec(&value).unwrap_or_default(), jsonp),
        None => stopped(),
    }
}

fn stopped() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down").into_response()
}

/// The query parameters of a request, percent-decoded, in order. A parameter given twice keeps
/// its last value, as upstream's query map does.
fn query_value(raw: Option<&str>, name: &str) -> Option<String> {
    raw.unwrap_or("")
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
        .next_back()
}

/// `%XX` and `+` decoded; a malformed escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// A JSON document as upstream answers it: `application/json`, or with `jsonp` the call
/// `<callback>(<document>);` as `text/javascript`.
fn json_response(body: Vec<u8>, jsonp: Option<String>) -> Response {
    match jsonp {
        Some(callback) => {
            let mut wrapped = Vec::with_capacity(body.len() + callback.len() + 3);
            wrapped.extend_from_slice(callback.as_bytes());
            wrapped.push(b'(');
            wrapped.extend_from_slice(&body);
            wrapped.extend_from_slice(b");");
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript"),
                )],
                wrapped,
            )
                .into_response()
        }
        None => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_the_last_wins() {
        let q = Some("framework_id=a%2Db-0000&x=1&framework_id=c+d&flag");
        assert_eq!(query_value(q, "framework_id").as_deref(), Some("c d"));
        assert_eq!(query_value(q, "x").as_deref(), Some("1"));
        assert_eq!(query_value(q, "flag").as_deref(), Some(""));
        assert_eq!(query_value(q, "jsonp"), None);
        assert_eq!(query_value(None, "x"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
