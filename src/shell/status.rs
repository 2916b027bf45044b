//! `mesos-reconciler status`: one row per spec of a running controller, problems first, with what
//! a person needs to act (the pending reason or the last failure, the backoff left, the rollout's
//! progress, the file's error), then the deletion guard. Exit 0 when everything selected has
//! converged, 3 when not, 1 when the controller cannot be reached.
//!
//! Rows are derived with the status server's own index (`status::index`), from the snapshot the
//! JSON API pages out, so a spec's state here is the state the page and `?state=` give it.
//!
//! `--wait` is this project's `kubectl rollout status`: it polls the not-converged specs (a
//! `?state=` filter, so a large controller sends only those) once a second, prints a line for
//! each spec whose row changed, and exits 0 once nothing is left, or 3 at `--timeout`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::now_ms;
use crate::cli::{StatusArgs, exit};
use crate::status::index::{Indexed, Row, SpecState};
use crate::status::outcome::{self, describe_end};
use crate::status::query::{self, Order, Query};
use crate::status::{GuardStatus, Snapshot, SpecErrorView, StatusClientError};
use crate::timefmt::relative;

/// The states that count as converged: everything wanted runs, or ended cleanly.
const CONVERGED: [SpecState; 2] = [SpecState::Healthy, SpecState::Done];

/// The `?state=` filter of everything not converged.
const NOT_CONVERGED_FILTER: &str = "problem,starting,rolling_out";

/// How often `--wait` asks again.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// `mesos-reconciler status`.
pub async fn status(args: StatusArgs) -> i32 {
    let server = match super::resolve(&args.server) {
        Ok(server) => server,
        Err(code) => return code,
    };
    if args.wait {
        return wait(&server, &args).await;
    }
    let snapshot = match fetch(&server, &args.specs, false).await {
        Ok(snapshot) => snapshot,
        Err(e) => return super::report(&e),
    };
    let report = Report::new(snapshot);
    if report.specs.is_empty() && !args.specs.is_empty() {
        eprintln!("note: no spec id matches {}", args.specs.join(", "));
    }
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot encode the status: {e}");
                return exit::FAILURE;
            }
        }
    } else {
        print!("{}", report.render(&server));
    }
    if report.converged {
        exit::OK
    } else {
        exit::NOT_CONVERGED
    }
}

/// What `status` shows, and what `--json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Everything selected runs (or ended cleanly), nothing waits, the guard holds nothing, and
    /// the controller is connected and ready.
    pub converged: bool,
    pub ready: bool,
    pub connected: bool,
    pub master: Option<String>,
    /// A standby controller (`run --ha`): why it does not act, naming the leader.
    pub standby: Option<String>,
    /// Why the desired directory cannot be read, if it cannot.
    pub desired_error: Option<String>,
    /// When the controller's latest pass ended (ms since the Unix epoch).
    pub last_pass_ms: Option<u64>,
    /// Kills held by the mass-deletion guard, and what releases them.
    pub guard: Option<GuardStatus>,
    /// Problems first (worst state first), then by id.
    pub specs: Vec<SpecRow>,
}

/// One spec id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecRow {
    pub id: String,
    /// The state word of `?state=` (`healthy`, `backoff`, `invalid`, ...).
    pub state: &'static str,
    /// The spec file (empty for a deleted spec whose tasks are still live).
    pub file: String,
    pub wanted: u32,
    pub running: u32,
    /// Instances that ended cleanly and are not restarted (a finished one-shot job).
    pub finished: u32,
    /// Instances that ended in failure and are not restarted.
    pub failed: u32,
    /// The generation in force (short hash).
    pub generation: Option<String>,
    /// The commit the spec was applied from, when the controller knows it.
    pub commit: Option<String>,
    pub error: Option<SpecErrorView>,
    /// Why each waiting instance waits.
    pub pending: Vec<PendingLine>,
    /// How each failed instance ended.
    pub failures: Vec<FailureLine>,
    /// The rollout in progress or stopped, as the controller says it.
    pub rollout: Option<String>,
    /// Instances running the generation in force, during a rollout.
    pub rollout_progress: Option<u32>,
    /// Live tasks (of a deleted spec: the ones being killed or held).
    pub live_tasks: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingLine {
    pub instance: u32,
    pub kind: &'static str,
    pub reason: String,
    /// When the wait ends (ms since the epoch), e.g. the end of a backoff.
    pub until_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureLine {
    pub instance: u32,
    pub task_id: String,
    pub state: String,
    pub reason: Option<String>,
}

impl Report {
    pub fn new(snapshot: Snapshot) -> Report {
        let indexed = Indexed::new(Arc::new(snapshot));
        let selection = indexed.select(&Query::new(indexed.len(), Order::Problems));
        let specs: Vec<SpecRow> = indexed.rows(&selection).map(|row| spec_row(&row)).collect();
        let s = indexed.snapshot();
        let converged = s.ready
            && s.standby.is_none()
            && s.connected
            && s.guard.is_none()
            && s.desired_error.is_none()
            && specs
                .iter()
                .all(|row| CONVERGED.iter().any(|c| c.name() == row.state));
        Report {
            converged,
            ready: s.ready,
            connected: s.connected,
            master: s.master.clone(),
            standby: s.standby.clone(),
            desired_error: s.desired_error.clone(),
            last_pass_ms: s.last_pass.as_ref().map(|p| p.at_ms),
            guard: s.guard.clone(),
            specs,
        }
    }

    /// The rows as a table, with the controller's condition above and the guard below.
    pub fn render(&self, server: &str) -> String {
        let mut out = String::new();
        let connection = match (&self.master, self.connected) {
            (Some(master), true) => format!("connected to {master}"),
            _ => "NOT connected to a Mesos master".to_owned(),
        };
        let ready = if self.ready {
            "ready"
        } else {
            "not ready (first reconciliation pending)"
        };
        match &self.standby {
            Some(standby) => out.push_str(&format!("controller {server}: {standby}\n")),
            None => out.push_str(&format!("controller {server}: {connection}, {ready}\n")),
        }
        if let Some(error) = &self.desired_error {
            out.push_str(&format!("DESIRED DIRECTORY UNREADABLE: {error}\n"));
        }
        if let Some(guard) = &self.guard {
            out.push_str(&guard_line(guard));
        }
        if self.specs.is_empty() {
            out.push_str("no specs\n");
        } else {
            out.push_str(&table(&self.specs));
        }
        let not = self
            .specs
            .iter()
            .filter(|r| !CONVERGED.iter().any(|c| c.name() == r.state))
            .count();
        out.push_str(&format!(
            "{} specs, {} converged, {} not{}\n",
            self.specs.len(),
            self.specs.len() - not,
            not,
            if self.converged {
                ""
            } else {
                ": not converged"
            }
        ));
        out
    }
}

fn guard_line(guard: &GuardStatus) -> String {
    let shown: Vec<&str> = guard.specs.iter().take(10).map(String::as_str).collect();
    let more = guard.specs.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "DELETION GUARD: holding the kills of {} tasks of {} of {} specs ({}{more}); to release: {}\n",
        guard.instances,
        guard.specs.len(),
        guard.total_specs,
        shown.join(", "),
        if guard.release.is_empty() {
            "mesos-reconciler approve-deletions, or restore the files"
        } else {
            &guard.release
        }
    )
}

fn spec_row(row: &Row<'_>) -> SpecRow {
    let live_tasks = row.tasks().len() as u32;
    let Some(spec) = row.spec else {
        return SpecRow {
            id: row.id.to_owned(),
            state: row.state.name(),
            file: String::new(),
            wanted: 0,
            running: row.tasks().filter(|t| t.state == "TASK_RUNNING").count() as u32,
            finished: 0,
            failed: 0,
            generation: None,
            commit: None,
            error: None,
            pending: Vec::new(),
            failures: Vec::new(),
            rollout: None,
            rollout_progress: None,
            live_tasks,
        };
    };
    let ended = outcome::outcomes(spec, row.tasks());
    let rollout_progress = spec.rollout.as_ref().and_then(|_| {
        let generation = spec.generation.as_deref()?;
        Some(
            row.tasks()
                .filter(|t| t.state == "TASK_RUNNING" && t.generation.starts_with(generation))
                .count() as u32,
        )
    });
    SpecRow {
        id: spec.id.clone(),
        state: row.state.name(),
        file: spec.file.clone(),
        wanted: spec.instances,
        running: spec.running,
        finished: ended.finished,
        failed: ended.failed.len() as u32,
        generation: spec.generation.clone(),
        commit: crate::status::html::commit_of(spec),
        error: spec.error.as_deref().cloned(),
        pending: spec
            .pending
            .iter()
            .map(|p| PendingLine {
                instance: p.instance,
                kind: p.kind.name(),
                reason: p.reason.clone(),
                until_ms: p.until_ms,
            })
            .collect(),
        failures: ended
            .failed
            .iter()
            .map(|a| FailureLine {
                instance: a.instance,
                task_id: a.task_id.clone(),
                state: a.state.clone(),
                reason: a.reason.clone(),
            })
            .collect(),
        rollout: spec.rollout.clone(),
        rollout_progress,
        live_tasks,
    }
}

/// What a person reads about a row besides its counts: the file's error, the rollout, each
/// pending instance (with the backoff left), each failed one. The first goes on the row's line.
fn details(row: &SpecRow, now_ms: u64) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(error) = &row.error {
        let field = if error.field.is_empty() {
            String::new()
        } else {
            format!("{}: ", error.field)
        };
        let hint = error
            .hint
            .as_ref()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        lines.push(format!(
            "{}: {field}{}{hint}",
            error.location(),
            error.message
        ));
        if row.generation.is_some() {
            lines.push("the previous valid version stays in force".to_owned());
        }
    }
    if row.file.is_empty() {
        lines.push(format!(
            "file deleted; {} live task(s) still name it",
            row.live_tasks
        ));
    }
    if let Some(rollout) = &row.rollout {
        match row.rollout_progress {
            Some(n) => lines.push(format!("{rollout} ({n} of {} on it)", row.wanted)),
            None => lines.push(rollout.clone()),
        }
    }
    for p in &row.pending {
        let until = p
            .until_ms
            .map(|until| format!(" (retry {})", relative(until, now_ms)))
            .unwrap_or_default();
        lines.push(format!("#{}: {}{until}", p.instance, p.reason));
    }
    for f in &row.failures {
        let attempt = crate::status::AttemptRow {
            state: f.state.clone(),
            reason: f.reason.clone(),
            ..Default::default()
        };
        lines.push(format!(
            "#{} failed: {}",
            f.instance,
            describe_end(&attempt)
        ));
    }
    lines
}

/// The rows as aligned columns; a row's further details on lines of their own below it.
fn table(rows: &[SpecRow]) -> String {
    let now = now_ms();
    let header = [
        "SPEC", "STATE", "WANTED", "RUNNING", "FINISHED", "FAILED", "GEN", "DETAIL",
    ];
    let cells: Vec<([String; 7], Vec<String>)> = rows
        .iter()
        .map(|r| {
            let generation = match (&r.generation, &r.commit) {
                (Some(g), Some(c)) => format!("{g}@{}", short_commit(c)),
                (Some(g), None) => g.clone(),
                (None, _) => "-".to_owned(),
            };
            (
                [
                    r.id.clone(),
                    r.state.to_owned(),
                    r.wanted.to_string(),
                    r.running.to_string(),
                    r.finished.to_string(),
                    r.failed.to_string(),
                    generation,
                ],
                details(r, now),
            )
        })
        .collect();
    let mut widths: [usize; 7] = std::array::from_fn(|i| header[i].len());
    for (row, _) in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cols: &[&str], detail: &str| {
        let mut text = String::new();
        for (i, col) in cols.iter().enumerate() {
            text.push_str(&format!("{col:<w$}  ", w = widths[i]));
        }
        text.push_str(detail);
        text.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header[..7], header[7]));
    let indent: usize = widths.iter().map(|w| w + 2).sum();
    for (row, details) in &cells {
        let cols: Vec<&str> = row.iter().map(String::as_str).collect();
        let first = details.first().map(String::as_str).unwrap_or("");
        out.push_str(&line(&cols, first));
        for more in details.iter().skip(1) {
            out.push_str(&format!("{:indent$}{more}\n", ""));
        }
    }
    out
}

fn short_commit(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// The snapshot of the spec ids `specs` selects (all when empty), all pages; `not_converged`
/// asks only for the specs that are not converged.
async fn fetch(
    server: &str,
    specs: &[String],
    not_converged: bool,
) -> Result<Snapshot, StatusClientError> {
    let state = if not_converged {
        format!("state={NOT_CONVERGED_FILTER}")
    } else {
        String::new()
    };
    if specs.is_empty() {
        return crate::status::fetch_status_matching(server, &state).await;
    }
    let mut merged: Option<Snapshot> = None;
    for spec in specs {
        let mut filters = format!("spec={}", query::encode(spec));
        if !state.is_empty() {
            filters.push('&');
            filters.push_str(&state);
        }
        let part = crate::status::fetch_status_matching(server, &filters).await?;
        match &mut merged {
            None => merged = Some(part),
            Some(all) => {
                for s in part.specs {
                    if !all.specs.iter().any(|have| have.id == s.id) {
                        all.specs.push(s);
                    }
                }
                for t in part.tasks {
                    if !all.tasks.iter().any(|have| have.task_id == t.task_id) {
                        all.tasks.push(t);
                    }
                }
            }
        }
    }
    Ok(merged.unwrap_or_default())
}

/// `status --wait`.
async fn wait(server: &str, args: &StatusArgs) -> i32 {
    let started = Instant::now();
    let deadline = started + args.timeout;
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    let mut shown_overall = String::new();
    let mut unreachable = false;
    // The controller reads the directory first, so that an edit made just before the wait
    // began is part of what it waits for; until a pass after that read, nothing counts as
    // converged. A controller that cannot do it (older, or busy) is waited for as it is.
    let token = match super::read_token(&args.server) {
        Ok(token) => token,
        Err(code) => return code,
    };
    let read_ms = crate::status::reread_now_with(server, token.as_ref())
        .await
        .ok();
    loop {
        let now = now_ms();
        match fetch(server, &args.specs, true).await {
            Ok(snapshot) => {
                if unreachable {
                    println!("{}reached the controller again", stamp(started));
                    unreachable = false;
                }
                let report = Report::new(snapshot);
                let overall = overall_line(&report);
                if overall != shown_overall {
                    if !overall.is_empty() {
                        println!("{}{overall}", stamp(started));
                    }
                    shown_overall = overall;
                }
                let mut seen = BTreeMap::new();
                for row in &report.specs {
                    let line = wait_line(row, now);
                    if shown.get(&row.id) != Some(&line) {
                        println!("{}{}: {line}", stamp(started), row.id);
                    }
                    seen.insert(row.id.clone(), line);
                }
                for id in shown.keys() {
                    if !seen.contains_key(id) {
                        println!("{}{id}: converged", stamp(started));
                    }
                }
                shown = seen;
                let seen_read = match (read_ms, report.last_pass_ms) {
                    (Some(read), Some(pass)) => pass >= read,
                    (Some(_), None) => false,
                    (None, _) => true,
                };
                if report.converged && seen_read {
                    println!(
                        "{}converged ({} s)",
                        stamp(started),
                        started.elapsed().as_secs()
                    );
                    return exit::OK;
                }
            }
            Err(e @ StatusClientError::Refused { status: 400, .. }) => return super::report(&e),
            Err(e) => {
                if !unreachable {
                    println!("{}{e}; retrying", stamp(started));
                    unreachable = true;
                }
            }
        }
        if Instant::now() + WAIT_POLL > deadline {
            let waiting: Vec<&str> = shown.keys().map(String::as_str).collect();
            eprintln!(
                "timed out after {}: {}",
                crate::spec::format_duration(args.timeout),
                if unreachable {
                    "the controller cannot be reached".to_owned()
                } else if waiting.is_empty() {
                    format!("not converged: {shown_overall}")
                } else {
                    format!("not converged: {}", waiting.join(", "))
                }
            );
            return if unreachable {
                exit::FAILURE
            } else {
                exit::NOT_CONVERGED
            };
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// `[  3s] ` before each line of `--wait`.
fn stamp(started: Instant) -> String {
    format!("[{:>4}s] ", started.elapsed().as_secs())
}

/// What keeps the controller as a whole from being converged, or nothing.
fn overall_line(report: &Report) -> String {
    let mut why = Vec::new();
    if let Some(standby) = &report.standby {
        why.push(standby.clone());
    } else if !report.connected {
        why.push("not connected to a Mesos master".to_owned());
    } else if !report.ready {
        why.push("reconciling with Mesos".to_owned());
    }
    if let Some(error) = &report.desired_error {
        why.push(format!("desired directory: {error}"));
    }
    if let Some(guard) = &report.guard {
        why.push(guard_line(guard).trim_end().to_owned());
    }
    why.join("; ")
}

/// One spec's condition in a line, as `--wait` prints it when it changes.
fn wait_line(row: &SpecRow, now_ms: u64) -> String {
    let mut line = format!("{} {}/{} running", row.state, row.running, row.wanted);
    if row.finished > 0 {
        line.push_str(&format!(", {} finished", row.finished));
    }
    if row.failed > 0 {
        line.push_str(&format!(", {} failed", row.failed));
    }
    // Times to a backoff's end change every second; the line shows the reason only.
    if let Some(first) = details(row, now_ms).first() {
        let first = match first.find(" (retry ") {
            Some(at) => &first[..at],
            None => first,
        };
        line.push_str(&format!(": {first}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AttemptRow, PendingKind, PendingRow, SpecStatus, TaskStatusRow};

    fn snapshot() -> Snapshot {
        Snapshot {
            ready: true,
            connected: true,
            master: Some("http://127.0.0.1:5050".to_owned()),
            specs: vec![
                SpecStatus {
                    id: "batch".to_owned(),
                    file: "desired/batch.toml".to_owned(),
                    generation: Some("aaaa1111".to_owned()),
                    instances: 1,
                    history: vec![AttemptRow {
                        instance: 0,
                        task_id: "batch.0.x".to_owned(),
                        ended_ms: Some(2),
                        state: "TASK_FINISHED".to_owned(),
                        ..AttemptRow::default()
                    }],
                    ..SpecStatus::default()
                },
                SpecStatus {
                    id: "web".to_owned(),
                    file: "desired/web.toml".to_owned(),
                    generation: Some("bbbb2222".to_owned()),
                    instances: 2,
                    running: 1,
                    pending: vec![PendingRow {
                        instance: 1,
                        reason: "waiting for backoff after TASK_FAILED: exit 1".to_owned(),
                        until_ms: Some(10_000),
                        kind: PendingKind::Backoff,
                    }],
                    ..SpecStatus::default()
                },
            ],
            tasks: vec![TaskStatusRow {
                task_id: "web.0.y".to_owned(),
                spec: "web".to_owned(),
                state: "TASK_RUNNING".to_owned(),
                generation: "bbbb2222cccc".to_owned(),
                ..TaskStatusRow::default()
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_finished_one_shot_is_converged_and_a_backoff_is_not() {
        let report = Report::new(snapshot());
        assert!(!report.converged);
        let ids: Vec<&str> = report.specs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["web", "batch"], "problems first");
        let batch = &report.specs[1];
        assert_eq!((batch.state, batch.finished, batch.failed), ("done", 1, 0));
        let web = &report.specs[0];
        assert_eq!(web.state, "backoff");
        let text = details(web, 4_000).join("\n");
        assert!(
            text.contains("#1: waiting for backoff after TASK_FAILED: exit 1 (retry in 6s)"),
            "{text}"
        );
        assert_eq!(
            wait_line(web, 4_000),
            "backoff 1/2 running: #1: waiting for backoff after TASK_FAILED: exit 1"
        );

        let mut healthy = snapshot();
        healthy.specs.retain(|s| s.id == "batch");
        healthy.tasks.clear();
        assert!(Report::new(healthy).converged);
    }

    #[test]
    fn the_table_aligns_columns_and_keeps_further_details_below() {
        let report = Report::new(snapshot());
        let text = report.render("http://127.0.0.1:9797");
        assert!(
            text.starts_with(
                "controller http://127.0.0.1:9797: connected to http://127.0.0.1:5050, ready\n"
            ),
            "{text}"
        );
        let header = text.lines().nth(1).unwrap();
        assert!(
            header
                .starts_with("SPEC   STATE    WANTED  RUNNING  FINISHED  FAILED  GEN       DETAIL"),
            "{text}"
        );
        assert!(
            text.contains("batch  done     1       0        1         0       aaaa1111\n"),
            "{text}"
        );
        assert!(
            text.ends_with("2 specs, 1 converged, 1 not: not converged\n"),
            "{text}"
        );
    }
}
