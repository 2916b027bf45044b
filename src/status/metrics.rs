//! `GET /metrics`: the snapshot in the Prometheus text exposition format 0.0.4, written by hand
//! (a handful of families does not earn a metrics crate).

use std::fmt::Write as _;

use super::snapshot::Snapshot;

/// The Content-Type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric name starts with this.
pub const PREFIX: &str = "mesos_reconciler_";

/// Renders the metrics. `ready` is the server's latched readiness, which may be true while the
/// snapshot's own flag is not (see `super::serve`).
pub fn render(snapshot: &Snapshot, ready: bool) -> String {
    let c = &snapshot.counters;
    let mut out = Metrics::default();
    out.counter(
        "launches_total",
        "Tasks launched (ACCEPT with a LAUNCH sent).",
        c.launches,
    );
    out.counter("kills_total", "KILL calls sent.", c.kills);
    out.counter(
        "status_updates_total",
        "Task status updates received.",
        c.status_updates,
    );
    out.counter(
        "task_failures_total",
        "Terminal task updates counted as failures by the restart policy.",
        c.failures,
    );
    out.counter(
        "offers_declined_total",
        "Offers declined.",
        c.offers_declined,
    );
    out.counter("passes_total", "Reconciliation passes run.", c.passes);
    out.gauge(
        "invalid_specs",
        "Spec files that do not parse or validate.",
        c.invalid_specs,
    );
    out.gauge(
        "pending_instances",
        "Instances wanted but not running.",
        c.pending_instances,
    );
    out.gauge("running_tasks", "Tasks in TASK_RUNNING.", c.running_tasks);
    out.gauge(
        "connected",
        "1 while subscribed to a Mesos master.",
        u64::from(snapshot.connected),
    );
    out.gauge(
        "ready",
        "1 once the first reconciliation pass has succeeded (latched).",
        u64::from(ready),
    );
    out.gauge(
        "deletion_guard_held",
        "1 while the mass-deletion guard holds kills until an operator confirms.",
        u64::from(snapshot.guard.is_some()),
    );
    out.gauge(
        "deletion_guard_specs",
        "Specs whose kills the mass-deletion guard holds.",
        snapshot
            .guard
            .as_ref()
            .map_or(0, |guard| guard.specs.len() as u64),
    );
    out.gauge(
        "desired_dir_error",
        "1 while the desired directory as a whole cannot be read.",
        u64::from(snapshot.desired_error.is_some()),
    );
    if let Some(pass) = &snapshot.last_pass {
        out.gauge(
            "last_pass_timestamp_ms",
            "When the latest pass ended, in milliseconds since the Unix epoch.",
            pass.at_ms,
        );
        out.gauge(
            "last_pass_duration_ms",
            "How long the latest pass took, in milliseconds.",
            pass.duration_ms,
        );
    }
    out.header(
        "spec_invalid",
        "gauge",
        "1 for each spec whose file does not parse or validate.",
    );
    for spec in snapshot.specs.iter().filter(|spec| spec.error.is_some()) {
        out.sample("spec_invalid", &[("spec", &spec.id)], 1);
    }
    out.text
}

/// Escapes a label value: backslash, double quote and line feed, as the format requires.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out
}

/// Escapes HELP text: backslash and line feed (quotes are allowed there).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[derive(Default)]
struct Metrics {
    text: String,
}

impl Metrics {
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {PREFIX}{name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let _ = write!(self.text, "{PREFIX}{name}");
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape_label_value(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("a\nb"), "a\\nb");
    }

    #[test]
    fn help_escapes_backslash_and_newline_only() {
        assert_eq!(escape_help("a \"q\" \\ \n"), "a \"q\" \\\\ \\n");
    }
}
