//! `GET /metrics`: the snapshot in the Prometheus text exposition format 0.0.4, written by hand
//! (a handful of families does not earn a metrics crate).
//!
//! Series are aggregates (specs by state, instances, pending instances by kind, tasks by Mesos
//! state), read from the per-snapshot [`Summary`](super::index::Summary), so a scrape costs the
//! same at 10 specs and at 100,000. The one per-spec family, `spec_invalid`, is capped at
//! [`SPEC_SERIES_LIMIT`] series (the first invalid specs in id order) so that a bad commit that
//! breaks every file does not turn into 100,000 series; `spec_invalid_omitted` says how many
//! were left out, and the status page and `GET /api/v1/status?state=invalid` list them all.

use std::fmt::Write as _;

use super::index::{Indexed, SpecState, TASK_STATES};
use super::snapshot::PendingKind;

/// The Content-Type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric name starts with this.
pub const PREFIX: &str = "mesos_reconciler_";

/// At most this many `spec_invalid` series.
pub const SPEC_SERIES_LIMIT: usize = 100;

/// Renders the metrics. `ready` is the server's latched readiness, which may be true while the
/// snapshot's own flag is not (see `super::serve`).
pub fn render(indexed: &Indexed, ready: bool) -> String {
    let snapshot = indexed.snapshot();
    let summary = indexed.summary();
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
    out.counter(
        "plan_specs_decided_total",
        "Specs decided again by the incremental planner (grows with changes, not with size).",
        c.plan_specs_decided,
    );
    out.counter(
        "plan_records_visited_total",
        "Ledger records read while deciding specs.",
        c.plan_records_visited,
    );
    out.counter(
        "snapshot_builds_total",
        "Status snapshots built.",
        c.snapshot_builds,
    );
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
    out.gauge(
        "state_dir_unwritable",
        "1 while the state directory cannot be written (nothing is launched or killed).",
        u64::from(snapshot.halted.is_some()),
    );
    out.gauge(
        "standby",
        "1 while this controller does not act (run --ha: it stands by for the leader, or has \
         lost contact with ZooKeeper).",
        u64::from(snapshot.standby.is_some()),
    );
    if let Some(sync) = snapshot.git.as_ref().and_then(|git| git.sync.as_ref()) {
        out.gauge(
            "sync_failures",
            "Consecutive failed attempts of the git sync publishing the desired directory.",
            u64::from(sync.failures),
        );
        out.gauge(
            "sync_ok",
            "1 while the git sync's last attempt published the branch head (or it was current).",
            u64::from(sync.state == "ok"),
        );
        if let Some(at) = sync.last_success_ms {
            out.gauge(
                "sync_last_success_timestamp_ms",
                "The git sync's last successful fetch, in milliseconds since the Unix epoch.",
                at,
            );
        }
    }
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
        "specs",
        "gauge",
        "Spec ids by state, each in its worst state (deleted: live tasks of a removed file).",
    );
    for state in SpecState::ALL {
        let count = indexed.count_in_state(state) as u64;
        out.sample("specs", &[("state", state.name())], count);
    }
    out.gauge(
        "instances_wanted",
        "Instances the specs want.",
        summary.instances.wanted,
    );
    out.gauge(
        "instances_running",
        "Instances running.",
        summary.instances.running,
    );
    out.header(
        "pending_instances_by_kind",
        "gauge",
        "Instances wanted but not running, by the kind of their wait.",
    );
    for kind in PendingKind::ALL {
        let count = summary.pending.get(kind.name()).copied().unwrap_or(0);
        out.sample("pending_instances_by_kind", &[("kind", kind.name())], count);
    }
    out.header("tasks", "gauge", "Live tasks by Mesos state.");
    for state in TASK_STATES {
        let count = summary.tasks.by_state.get(state).copied().unwrap_or(0);
        out.sample("tasks", &[("state", state)], count);
    }
    out.gauge(
        "unhealthy_tasks",
        "Tasks whose last health check failed.",
        summary.tasks.unhealthy,
    );
    out.header(
        "spec_invalid",
        "gauge",
        "1 for each spec whose file does not parse or validate (the first 100 in id order).",
    );
    let mut listed = 0u64;
    for spec in indexed.invalid_specs().take(SPEC_SERIES_LIMIT) {
        out.sample("spec_invalid", &[("spec", &spec.id)], 1);
        listed += 1;
    }
    let invalid = summary.states.get("invalid").copied().unwrap_or(0);
    out.gauge(
        "spec_invalid_omitted",
        "Invalid specs beyond the first 100, which have no spec_invalid series.",
        invalid.saturating_sub(listed),
    );
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
