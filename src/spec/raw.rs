//! The spec file as written: every key optional, every value with its byte span, unknown keys
//! rejected by serde. Validation (`validate.rs`) turns this into the normalised [`super::Spec`] and
//! uses the spans to point each error at the offending value.
//!
//! Keys are the user contract (`shared/task-spec.md`); `deploy/task-spec.schema.json` lists the same
//! keys and a test keeps the two in step.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Scalars are read in their widest TOML type (`i64`, `f64`, `String`) so range and enum checks give
/// our own messages instead of serde's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub command: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
    pub cpus: Option<Spanned<f64>>,
    pub mem: Option<Spanned<i64>>,
    pub disk: Option<Spanned<i64>>,
    pub gpus: Option<Spanned<i64>>,
    pub ports: Option<Spanned<i64>>,
    pub instances: Option<Spanned<i64>>,
    pub restart: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub role: Option<Spanned<String>>,
    pub kill_grace: Option<Spanned<String>>,
    pub unreachable_after: Option<Spanned<String>>,
    pub backoff: Option<Spanned<RawBackoff>>,
    pub env: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub labels: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub uris: Option<Vec<Spanned<RawUri>>>,
    pub container: Option<Spanned<RawContainer>>,
    pub constraints: Option<Vec<Spanned<RawConstraint>>>,
    pub health: Option<Spanned<RawHealth>>,
    pub update: Option<Spanned<RawUpdate>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    pub initial: Option<Spanned<String>>,
    pub factor: Option<Spanned<f64>>,
    pub max: Option<Spanned<String>>,
    pub reset_after: Option<Spanned<String>>,
    pub max_failures: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUri {
    pub url: Spanned<String>,
    pub extract: Option<bool>,
    pub executable: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    pub image: Spanned<String>,
    pub kind: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConstraint {
    pub field: Spanned<String>,
    pub op: Spanned<String>,
    /// A string for cluster/like/unlike, an integer for max_per: the op decides, so any TOML value is
    /// accepted here and checked in validation.
    pub value: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub command: Option<Spanned<String>>,
    pub http: Option<Spanned<RawHttpCheck>>,
    pub tcp: Option<Spanned<RawTcpCheck>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub grace: Option<Spanned<String>>,
    pub max_failures: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpCheck {
    pub port_index: Option<Spanned<i64>>,
    pub path: Option<Spanned<String>>,
    pub scheme: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpCheck {
    pub port_index: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    pub strategy: Option<Spanned<String>>,
    pub deadline: Option<Spanned<String>>,
}
