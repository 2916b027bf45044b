//! Integration tests of the dev cluster's master against its HTTP surface, as a third-party
//! scheduler sees it: raw reqwest calls and a RecordIO reader of the tests' own, in both
//! encodings where the encoding matters. Each test starts its own cluster on 127.0.0.1:0.
//!
//! The files under `tests/devcluster/` group the stories: `wire` (status codes, streams,
//! heartbeats, failover of a subscription), `offers` (contents, filters, suppress/revive),
//! `tasks` (launch, updates, kill, validation, reconciliation), `faults` (agents, master
//! restart, update delivery faults), `endpoints` (state, version, redirect, health), `operator`
//! (`/master/frameworks`), `operator_v0` (the other v0 operator endpoints), `operator_v1` (the
//! v1 operator API, `POST /api/v1`, and its event stream) and `agent_endpoints` (an agent's own
//! `/state`, `/files` and `/api/v1`) and `overview` (the page at `/`).

#[path = "devcluster/agent_endpoints.rs"]
mod agent_endpoints;
#[path = "devcluster/endpoints.rs"]
mod endpoints;
#[path = "devcluster/faults.rs"]
mod faults;
#[path = "devcluster/offers.rs"]
mod offers;
#[path = "devcluster/operator.rs"]
mod operator;
#[path = "devcluster/operator_v0.rs"]
mod operator_v0;
#[path = "devcluster/operator_v1.rs"]
mod operator_v1;
#[path = "devcluster/overview.rs"]
mod overview;
#[path = "devcluster/support.rs"]
mod support;
#[path = "devcluster/tasks.rs"]
mod tasks;
#[path = "devcluster/wire.rs"]
mod wire;
