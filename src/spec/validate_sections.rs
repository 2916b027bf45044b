//! Validation of the two sections with the most rules: placement constraints (op words, the value
//! each op needs, regex syntax for `like` / `unlike`) and health checks (exactly one kind, port
//! indexes within the reserved ports). Part of [`super::validate`]'s checker.

use std::ops::Range;

use toml::Spanned;

use super::model::{Constraint, ConstraintOp, HealthCheck, HealthKind, HttpScheme};
use super::raw::{RawConstraint, RawHealth};
use super::validate::{Checker, secs};

impl Checker<'_> {
    pub(super) fn constraint(&mut self, index: usize, raw: Spanned<RawConstraint>) -> Constraint {
        let RawConstraint { field, op, value } = raw.into_inner();
        let path = format!("constraints[{index}]");
        if field.get_ref().trim().is_empty() {
            let message = "must name `hostname` or an agent attribute".to_owned();
            self.error(field.span(), &format!("{path}.field"), message, None);
        }
        #[derive(Clone, Copy)]
        enum Op {
            Unique,
            Cluster,
            Like,
            Unlike,
            MaxPer,
        }
        let op_span = op.span();
        let words = [
            ("unique", Op::Unique),
            ("cluster", Op::Cluster),
            ("like", Op::Like),
            ("unlike", Op::Unlike),
            ("max_per", Op::MaxPer),
        ]
        .map(|(word, op)| (word, Some(op)));
        let Some(kind) = self.choice(Some(op), &format!("{path}.op"), &words, None) else {
            // An unknown op was reported; its value cannot be judged without knowing the op.
            return Constraint {
                field: field.into_inner(),
                op: ConstraintOp::Unique,
            };
        };
        let value_path = format!("{path}.value");
        let op = match (kind, value) {
            (Op::Unique, None) => ConstraintOp::Unique,
            (Op::Unique, Some(value)) => {
                let message = "`unique` takes no value".to_owned();
                self.error(
                    value.span(),
                    &value_path,
                    message,
                    Some("remove `value`".to_owned()),
                );
                ConstraintOp::Unique
            }
            (Op::Cluster | Op::Like | Op::Unlike | Op::MaxPer, None) => {
                let wants = match kind {
                    Op::MaxPer => "a count (an integer of at least 1)",
                    Op::Cluster => "the value agents must have",
                    _ => "a regular expression",
                };
                self.error(
                    op_span,
                    &value_path,
                    format!("this op needs `value`: {wants}"),
                    None,
                );
                ConstraintOp::Unique
            }
            (Op::Cluster, Some(value)) => match value.get_ref() {
                toml::Value::String(text) => ConstraintOp::Cluster(text.clone()),
                toml::Value::Integer(n) => ConstraintOp::Cluster(n.to_string()),
                other => {
                    let message = format!("must be a string (got {})", other.type_str());
                    self.error(value.span(), &value_path, message, None);
                    ConstraintOp::Unique
                }
            },
            (Op::Like | Op::Unlike, Some(value)) => {
                let toml::Value::String(pattern) = value.get_ref() else {
                    let message = format!(
                        "must be a regular expression string (got {})",
                        value.get_ref().type_str()
                    );
                    self.error(value.span(), &value_path, message, None);
                    return Constraint {
                        field: field.into_inner(),
                        op: ConstraintOp::Unique,
                    };
                };
                if let Err(err) = super::pattern::compile(pattern) {
                    let message = format!("invalid regular expression: {err}");
                    self.error(value.span(), &value_path, message, err.hint);
                }
                if matches!(kind, Op::Like) {
                    ConstraintOp::Like(pattern.clone())
                } else {
                    ConstraintOp::Unlike(pattern.clone())
                }
            }
            (Op::MaxPer, Some(value)) => match value.get_ref() {
                toml::Value::Integer(n) if (1..=i64::from(u32::MAX)).contains(n) => {
                    ConstraintOp::MaxPer(*n as u32)
                }
                other => {
                    let message = match other {
                        toml::Value::Integer(n) if *n < 1 => {
                            format!("must be at least 1 (got {n})")
                        }
                        toml::Value::Integer(n) => {
                            format!("must be at most {} (got {n})", u32::MAX)
                        }
                        other => format!("must be an integer count (got {})", other.type_str()),
                    };
                    let hint = matches!(other, toml::Value::String(s) if s.parse::<u32>().is_ok())
                        .then(|| "write the count without quotes".to_owned());
                    self.error(value.span(), &value_path, message, hint);
                    ConstraintOp::Unique
                }
            },
        };
        Constraint {
            field: field.into_inner(),
            op,
        }
    }

    pub(super) fn health(&mut self, raw: Spanned<RawHealth>, ports: u32) -> HealthCheck {
        let header = raw.span();
        let raw = raw.into_inner();
        let mut kinds: Vec<(Range<usize>, &str, HealthKind)> = Vec::new();
        if let Some(command) = raw.command {
            let span = command.span();
            let command = command.into_inner();
            if command.trim().is_empty() {
                self.error(
                    span.clone(),
                    "health.command",
                    "must not be empty".to_owned(),
                    None,
                );
            }
            kinds.push((span, "health.command", HealthKind::Command(command)));
        }
        if let Some(http) = raw.http {
            let span = http.span();
            let http = http.into_inner();
            let port_index =
                self.port_index(http.port_index, "health.http.port_index", &span, ports);
            let path = match http.path {
                None => "/".to_owned(),
                Some(path) => {
                    if !path.get_ref().starts_with('/') {
                        let message = format!("must start with `/` (got {:?})", path.get_ref());
                        self.error(path.span(), "health.http.path", message, None);
                    }
                    path.into_inner()
                }
            };
            let scheme = self.choice(
                http.scheme,
                "health.http.scheme",
                &[("http", HttpScheme::Http), ("https", HttpScheme::Https)],
                HttpScheme::Http,
            );
            kinds.push((
                span,
                "health.http",
                HealthKind::Http {
                    port_index,
                    path,
                    scheme,
                },
            ));
        }
        if let Some(tcp) = raw.tcp {
            let span = tcp.span();
            let port_index = self.port_index(
                tcp.into_inner().port_index,
                "health.tcp.port_index",
                &span,
                ports,
            );
            kinds.push((span, "health.tcp", HealthKind::Tcp { port_index }));
        }
        kinds.sort_by_key(|(span, _, _)| span.start);
        let kind = match kinds.len() {
            0 => {
                let message = "needs exactly one of `command`, `http` or `tcp`".to_owned();
                let hint = "e.g. `http = { port_index = 0, path = \"/\" }`".to_owned();
                self.error(header, "health", message, Some(hint));
                HealthKind::Command(String::new())
            }
            1 => kinds.remove(0).2,
            _ => {
                let (span, field, _) = kinds.remove(1);
                let message = "give exactly one of `command`, `http` or `tcp`".to_owned();
                self.error(span, field, message, None);
                kinds.remove(0).2
            }
        };
        HealthCheck {
            kind,
            interval: self.duration(raw.interval, "health.interval", secs(10), true),
            timeout: self.duration(raw.timeout, "health.timeout", secs(5), true),
            grace: self.duration(raw.grace, "health.grace", secs(30), false),
            max_failures: self.int(
                raw.max_failures,
                "health.max_failures",
                3,
                1,
                i64::from(u32::MAX),
                None,
            ) as u32,
        }
    }

    /// A port index must name one of the ports the spec reserves.
    pub(super) fn port_index(
        &mut self,
        value: Option<Spanned<i64>>,
        field: &str,
        table: &Range<usize>,
        ports: u32,
    ) -> u32 {
        let (span, index) = match value {
            Some(value) => (value.span(), *value.get_ref()),
            None => (table.clone(), 0),
        };
        if index < 0 {
            self.error(
                span,
                field,
                format!("must not be negative (got {index})"),
                None,
            );
            return 0;
        }
        if index >= i64::from(ports) {
            let message = if ports == 0 {
                format!("is {index} but the spec reserves no ports")
            } else {
                format!(
                    "is {index} but the spec reserves only {ports} port(s) (PORT0..PORT{})",
                    ports - 1
                )
            };
            let hint = format!("set `ports = {}` at the top of the file", index + 1);
            self.error(span, field, message, Some(hint));
            return 0;
        }
        index as u32
    }
}
