//! `GET /`: the status page a person reads. Plain HTML; every piece of text from the snapshot goes
//! through [`escape`], since spec files and task messages are written by users and may contain
//! markup.
//!
//! It keeps itself current without a reload: a small inline script (no framework, nothing loaded
//! from anywhere else) listens to `GET /api/v1/events` and, when a new snapshot is published,
//! fetches the same URL again and swaps the page's content in place. Without JavaScript a
//! `<noscript>` meta refresh reloads it every 10 s instead, so the page is useful either way.
//!
//! Problems come first (the desired directory, the deletion guard and what releases it, invalid
//! files with their line, failing and pending instances with their reason), then the summary of
//! the whole snapshot, then one page of spec ids (problems first by default) with their tasks,
//! chosen by the same parameters as the JSON API (a form and links write them), so it costs
//! about the same at 10 specs and at 100,000. Each task links to its `stdout` and `stderr`
//! (`/tasks/<id>/stdout`, read from the agent as `logs` reads them) and each spec to its file
//! (`/specs/<id>`).

use std::fmt::Write as _;

use super::index::{Indexed, Row, SpecState, TASK_STATES};
use super::query::{self, Order, Query, QueryError};
use super::snapshot::{PendingKind, Snapshot, SpecStatus};
use crate::timefmt::{relative, utc};

/// How many pending instances a spec's row lists before "and N more".
const PENDING_SHOWN: usize = 5;

/// How many task rows the page shows at most (the tasks of the page's specs).
const TASK_ROWS: usize = 1000;

/// How many of the guard's held specs the banner names.
const GUARD_SPECS_SHOWN: usize = 20;

/// Renders the page of `selection` (which `indexed.select(query)` made). `ready` is the server's
/// latched readiness; `now_ms` (ms since the Unix epoch) turns absolute deadlines into "in 12s".
pub fn render(
    indexed: &Indexed,
    query: &Query,
    selection: &super::index::Selection,
    ready: bool,
    now_ms: u64,
) -> String {
    let snapshot = indexed.snapshot();
    let mut page = String::with_capacity(64 * 1024);
    page.push_str(HEAD);
    page.push_str("<div id=\"content\">\n");
    overview(&mut page, snapshot, ready, now_ms);
    banners(&mut page, snapshot, now_ms);
    problems_section(&mut page, indexed, now_ms);
    summary(&mut page, indexed);
    filters(&mut page, query);
    let rows: Vec<Row<'_>> = indexed.rows(selection).collect();
    let nav = navigation(query, selection);
    specs(&mut page, &rows, query, selection, &nav, now_ms);
    tasks(&mut page, &rows, now_ms);
    history(&mut page, indexed, now_ms);
    page.push_str("</div>\n");
    page.push_str(SCRIPT);
    page.push_str("</body>\n</html>\n");
    page
}

/// The page for a request with bad parameters (sent with 400).
pub fn render_error(error: &QueryError) -> String {
    error_page("Bad request", &error.0)
}

/// The page sent with 503 when the controller did not publish its rows in time.
pub fn render_unavailable(why: &str) -> String {
    error_page("Not available yet", why)
}

fn error_page(title: &str, text: &str) -> String {
    format!(
        "{HEAD}<div class=\"banner error\"><strong>{title}:</strong> {}</div>\n\
         <p><a href=\"/\">Back to the status page</a></p>\n</body>\n</html>\n",
        escape(text)
    )
}

/// Escapes text for HTML element content and double-quoted attribute values. Five replacements,
/// all the page needs (it writes no script or URL contexts); an escaping crate would not earn its
/// place for them.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<title>mesos-reconciler status</title>
<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.error { color: #b00020; }
.banner { border: 2px solid #b00020; background: #fff0f0; padding: 0.6em; margin-bottom: 1em; }
.ok { color: #1b5e20; }
.busy { color: #8a5a00; }
.filters label { margin-right: 1em; }
.nav a { margin-right: 1.5em; }
.problems li { margin-bottom: 0.3em; }
#live { font-size: 0.5em; font-weight: normal; color: #666; margin-left: 1em; }
code { font-size: 0.95em; }
</style>
</head>
<body>
<h1>mesos-reconciler <span id="live">static page (reloads every 10 s without JavaScript)</span></h1>
"#;

/// Keeps the page current: on each `snapshot` event of `/api/v1/events`, fetch this URL again
/// (one request at a time, at most one a second) and swap `#content` in place. Scroll position
/// and the address (with its filters) stay; `window.mrSwaps` counts swaps (tests read it).
const SCRIPT: &str = r#"<script>
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!window.EventSource || !window.fetch || !window.DOMParser) { return; }
  var busy = false, again = false, last = 0;
  window.mrSwaps = 0;
  function say(text) { if (live) { live.textContent = text; } }
  function refresh() {
    var wait = 1000 - (Date.now() - last);
    if (busy || wait > 0) {
      if (!again) { again = true; setTimeout(function () { again = false; refresh(); }, Math.max(wait, 250)); }
      return;
    }
    busy = true;
    last = Date.now();
    fetch(window.location.href, { headers: { 'Accept': 'text/html' }, cache: 'no-store' })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, 'text/html').getElementById('content');
        var here = document.getElementById('content');
        if (next && here) { here.replaceWith(next); window.mrSwaps += 1; }
        say('live, updated ' + new Date().toLocaleTimeString());
      })
      .catch(function () { say('cannot reach the controller; retrying'); })
      .then(function () { busy = false; });
  }
  var events = new EventSource('/api/v1/events?events=snapshot');
  events.addEventListener('snapshot', refresh);
  events.onopen = function () { say('live'); };
  events.onerror = function () { say('disconnected from the controller; reconnecting'); };
})();
</script>
"#;

// Writing to a String cannot fail, so the `fmt::Result`s below are ignored on purpose.

fn overview(page: &mut String, s: &Snapshot, ready: bool, now_ms: u64) {
    page.push_str("<table>\n");
    let connection = if s.connected {
        format!(
            "<span class=\"ok\">connected</span> to {}",
            escape(s.master.as_deref().unwrap_or("?"))
        )
    } else {
        "<span class=\"error\">not connected</span>".to_owned()
    };
    row(page, "Mesos", &connection);
    row(
        page,
        "Framework id",
        &escape(s.framework_id.as_deref().unwrap_or("(not registered yet)")),
    );
    row(
        page,
        "Desired directory",
        &format!("<code>{}</code>", escape(&s.desired_dir)),
    );
    let readiness = if ready {
        "<span class=\"ok\">ready</span>"
    } else {
        "not ready: the first reconciliation pass has not succeeded yet"
    };
    row(page, "Readiness", readiness);
    super::html_git::overview_rows(page, s, now_ms);
    if let Some(pass) = &s.last_pass {
        row(
            page,
            "Last pass",
            &format!(
                "{} ({}), woken by {}, took {} ms",
                escape(&utc(pass.at_ms)),
                escape(&relative(pass.at_ms, now_ms)),
                escape(&pass.reason),
                pass.duration_ms
            ),
        );
    }
    let c = &s.counters;
    row(
        page,
        "Counters",
        &format!(
            "{} launches, {} kills, {} status updates, {} failures, {} offers declined, {} passes",
            c.launches, c.kills, c.status_updates, c.failures, c.offers_declined, c.passes
        ),
    );
    page.push_str("</table>\n");
}

fn row(page: &mut String, name: &str, value_html: &str) {
    let _ = writeln!(
        page,
        "<tr><th>{}</th><td>{value_html}</td></tr>",
        escape(name)
    );
}

fn banners(page: &mut String, s: &Snapshot, now_ms: u64) {
    if let Some(why) = &s.standby {
        let _ = writeln!(
            page,
            "<div class=\"banner warn\"><strong>Not acting:</strong> {}. This controller \
             subscribes to no master and launches or kills nothing; it takes over if the \
             leader's ZooKeeper session ends.</div>",
            escape(why)
        );
    }
    if let Some(why) = &s.halted {
        let _ = writeln!(
            page,
            "<div class=\"banner error\"><strong>Launching and killing nothing:</strong> {}. \
             The tasks keep running; the controller goes on by itself once it can write again.</div>",
            escape(why)
        );
    }
    if let (false, Some(e)) = (s.connected, &s.master_error) {
        let _ = writeln!(
            page,
            "<div class=\"banner error\"><strong>Cannot reach the Mesos master {}:</strong> {} \
             ({}, {} failed attempts; retrying).</div>",
            escape(&e.url),
            escape(&e.message),
            escape(&crate::timefmt::relative(e.at_ms, now_ms)),
            e.attempts
        );
    }
    if let Some(recovery) = &s.recovery {
        let _ = writeln!(
            page,
            "<div class=\"banner\"><strong>Recovering:</strong> {}.</div>",
            escape(recovery)
        );
    }
    super::html_git::banner(page, s, now_ms);
    if let Some(error) = &s.desired_error {
        let _ = writeln!(
            page,
            "<div class=\"banner error\"><strong>The desired directory cannot be read:</strong> {}. \
             Nothing is killed because of it; the last specs read stay in force.</div>",
            escape(error)
        );
    }
    if let Some(guard) = &s.guard {
        let mut specs: Vec<String> = guard
            .specs
            .iter()
            .take(GUARD_SPECS_SHOWN)
            .map(|id| format!("<code>{}</code>", escape(id)))
            .collect();
        if guard.specs.len() > GUARD_SPECS_SHOWN {
            specs.push(format!(
                "and {} more",
                thousands(guard.specs.len() - GUARD_SPECS_SHOWN)
            ));
        }
        let release = if guard.release.is_empty() {
            "confirm with <code>POST /api/v1/approve-deletions</code>, or restore the files"
                .to_owned()
        } else {
            escape(&guard.release)
        };
        let _ = writeln!(
            page,
            "<div class=\"banner\"><strong>Mass-deletion guard:</strong> kills of {} instances of {} \
             of {} specs are held since {} ({}): {}.<br>To release them: {release}.</div>",
            guard.instances,
            guard.specs.len(),
            guard.total_specs,
            escape(&utc(guard.since_ms)),
            escape(&relative(guard.since_ms, now_ms)),
            specs.join(", "),
        );
    }
}

/// How many problem lines the problems section lists before linking to the rest.
const PROBLEM_LINES: usize = 50;

/// Invalid files with their position, and the instances that fail or wait with their reason,
/// worst first; nothing when all is well. The guard and the directory have their banners above.
fn problems_section(page: &mut String, indexed: &Indexed, now_ms: u64) {
    let mut query = Query::new(PROBLEM_LINES, Order::Problems);
    query.state = query::StateFilter::parse("problem").ok().flatten();
    let selection = indexed.select(&query);
    if selection.is_empty() {
        return;
    }
    let mut lines: Vec<String> = Vec::new();
    for row in indexed.rows(&selection) {
        let id = escape(row.id);
        let Some(spec) = row.spec else {
            lines.push(format!(
                "<code>{id}</code>: its file is gone; {} live task(s) being killed or held",
                row.tasks().len()
            ));
            continue;
        };
        let link = spec_link(spec);
        if spec.error.is_some() {
            let kept = if spec.generation.is_some() {
                " The previous valid version stays in force."
            } else {
                " Nothing runs for it."
            };
            lines.push(format!(
                "{link}: <span class=\"error\">invalid file</span> {}{kept}",
                problems(spec)
            ));
        }
        let ended = super::outcome::outcomes(spec, row.tasks());
        for attempt in &ended.failed {
            lines.push(format!(
                "{link} #{}: <span class=\"error\">failed</span>, not restarted: {} {}",
                attempt.instance,
                escape(&super::outcome::describe_end(attempt)),
                log_links(&attempt.task_id)
            ));
        }
        if let Some(rollout) = spec
            .rollout
            .as_deref()
            .filter(|r| super::index::rollout_stopped(r))
        {
            lines.push(format!("{link}: {}", escape(rollout)));
        }
        // An invalid new file's instance waits for the file: said once, above.
        let pending = spec
            .pending
            .iter()
            .filter(|p| !(spec.error.is_some() && p.kind == PendingKind::InvalidSpec));
        for p in pending.take(PENDING_SHOWN) {
            let until = p
                .until_ms
                .map(|until| format!(" (retry {})", escape(&relative(until, now_ms))))
                .unwrap_or_default();
            let class = if matches!(
                p.kind,
                PendingKind::Backoff | PendingKind::GivenUp | PendingKind::RolloutStopped
            ) {
                "error"
            } else {
                "busy"
            };
            lines.push(format!(
                "{link} #{}: <span class=\"{class}\">{}</span>{until}",
                p.instance,
                escape(&p.reason)
            ));
        }
        if spec.pending.len() > PENDING_SHOWN {
            lines.push(format!(
                "{link}: and {} more pending instances",
                thousands(spec.pending.len() - PENDING_SHOWN)
            ));
        }
    }
    page.push_str("<h2 id=\"problems\">Problems</h2>\n<ul class=\"problems\">\n");
    for line in &lines {
        let _ = writeln!(page, "<li>{line}</li>");
    }
    page.push_str("</ul>\n");
    if selection.next.is_some() {
        let _ = writeln!(
            page,
            "<p>{} specs need attention in all; <a href=\"/?state=problem\">see them all</a>.</p>",
            thousands(selection.matched)
        );
    }
}

/// The spec id, linked to its file as the controller reads it (its commit has a column of its
/// own, see `html_git::commit_cell`).
fn spec_link(spec: &SpecStatus) -> String {
    if crate::spec::SpecId::new(spec.id.as_str()).is_ok() {
        format!(
            "<a href=\"/specs/{}\" title=\"{}\"><code>{}</code></a>",
            escape(&spec.id),
            escape(&spec.file),
            escape(&spec.id)
        )
    } else {
        format!("<code>{}</code>", escape(&spec.id))
    }
}

/// Links to a task's `stdout` and `stderr` (see `super::links`).
fn log_links(task_id: &str) -> String {
    let id = query::encode(task_id);
    format!(
        "<small><a href=\"/tasks/{id}/stdout\">stdout</a> <a href=\"/tasks/{id}/stderr\">stderr</a></small>"
    )
}

/// "2 / 2", or how the instances that do not run ended: `finished`, `failed: TASK_FAILED: ...`,
/// `1 / 3, 1 finished, 1 failed`.
fn instances_cell(spec: &SpecStatus, row: &Row<'_>) -> String {
    let ended = super::outcome::outcomes(spec, row.tasks());
    let running = format!("{} / {}", spec.running, spec.instances);
    if ended.ended() == 0 {
        return running;
    }
    if spec.running == 0 && ended.ended() == spec.instances {
        if ended.failed.is_empty() {
            return "<span class=\"ok\">finished</span>".to_owned();
        }
        if ended.finished == 0 && ended.failed.len() == 1 {
            return format!(
                "<span class=\"error\">failed</span>: {}",
                escape(&super::outcome::describe_end(ended.failed[0]))
            );
        }
    }
    let mut parts = vec![running];
    if ended.finished > 0 {
        parts.push(format!("{} finished", ended.finished));
    }
    if !ended.failed.is_empty() {
        let reasons: Vec<String> = ended
            .failed
            .iter()
            .map(|a| {
                format!(
                    "#{} {}",
                    a.instance,
                    escape(&super::outcome::describe_end(a))
                )
            })
            .collect();
        parts.push(format!(
            "<span class=\"error\">{} failed</span> ({})",
            ended.failed.len(),
            reasons.join("; ")
        ));
    }
    parts.join(", ")
}

fn summary(page: &mut String, indexed: &Indexed) {
    let summary = indexed.summary();
    let count = |word: &str| summary.states.get(word).copied().unwrap_or(0);
    let link = |word: &str, n: u64, label: &str| {
        format!(
            "<a href=\"/?state={}\">{} {}</a>",
            query::encode(word),
            thousands(n as usize),
            escape(label)
        )
    };
    page.push_str("<h2>Summary</h2>\n<table>\n");
    let mut states: Vec<String> = SpecState::ALL
        .iter()
        .filter(|state| count(state.name()) > 0)
        .map(|state| {
            let html = link(state.name(), count(state.name()), describe_state(*state));
            format!("<span class=\"{}\">{html}</span>", state_class(*state))
        })
        .collect();
    if states.is_empty() {
        states.push("none".to_owned());
    }
    let deleted = indexed.count_in_state(SpecState::Deleted);
    let ids = if deleted > 0 {
        format!(", and {} deleted with live tasks", thousands(deleted))
    } else {
        String::new()
    };
    row(
        page,
        "Specs",
        &format!(
            "{} spec files{ids}: {} (a spec with several problems counts under each)",
            thousands(summary.specs as usize),
            states.join(", ")
        ),
    );
    if count("problem") > 0 {
        row(
            page,
            "Needing attention",
            &format!(
                "<span class=\"error\">{}</span>",
                link("problem", count("problem"), "specs")
            ),
        );
    }
    let i = &summary.instances;
    row(
        page,
        "Instances",
        &format!(
            "{} wanted, {} running, {} pending",
            thousands(i.wanted as usize),
            thousands(i.running as usize),
            thousands(i.pending as usize)
        ),
    );
    let pending: Vec<String> = PendingKind::ALL
        .iter()
        .filter_map(|kind| {
            let n = summary.pending.get(kind.name()).copied().unwrap_or(0);
            (n > 0).then(|| format!("{} {}", thousands(n as usize), kind.name()))
        })
        .collect();
    if !pending.is_empty() {
        row(page, "Pending by reason", &escape(&pending.join(", ")));
    }
    let t = &summary.tasks;
    let mut by_state: Vec<String> = t
        .by_state
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(state, n)| {
            if TASK_STATES.contains(&state.as_str()) {
                link(state, *n, state)
            } else {
                format!("{} {}", thousands(*n as usize), escape(state))
            }
        })
        .collect();
    if t.unhealthy > 0 {
        by_state.push(format!(
            "<span class=\"error\">{} failing their health check</span>",
            thousands(t.unhealthy as usize)
        ));
    }
    row(
        page,
        "Tasks",
        &format!("{}: {}", thousands(t.total as usize), by_state.join(", ")),
    );
    page.push_str("</table>\n");
}

fn filters(page: &mut String, query: &Query) {
    let spec = query.spec.as_ref().map(|s| s.text()).unwrap_or("");
    let state = query.state.as_ref().map(|s| s.text()).unwrap_or_default();
    let mut options: Vec<(String, String)> = vec![
        (String::new(), "any".to_owned()),
        ("problem".to_owned(), "needing attention".to_owned()),
    ];
    options.extend(
        SpecState::ALL
            .iter()
            .map(|s| (s.name().to_owned(), describe_state(*s).to_owned())),
    );
    options.push((
        "rollout".to_owned(),
        "rollout in progress or stopped".to_owned(),
    ));
    options.extend(
        TASK_STATES
            .iter()
            .map(|s| ((*s).to_owned(), format!("a task in {s}"))),
    );
    if !options.iter().any(|(value, _)| *value == state) {
        options.push((state.clone(), state.clone()));
    }
    let options: String = options
        .iter()
        .map(|(value, label)| {
            let selected = if *value == state { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                escape(value),
                escape(label)
            )
        })
        .collect();
    let order = |o: Order, label: &str| {
        let selected = if query.order == o { " selected" } else { "" };
        format!("<option value=\"{}\"{selected}>{label}</option>", o.name())
    };
    let _ = writeln!(
        page,
        "<form method=\"get\" action=\"/\" class=\"filters\">\
         <label>Spec <input name=\"spec\" value=\"{}\" placeholder=\"team-a/web, team-a/ or *web*\"></label>\
         <label>State <select name=\"state\">{options}</select></label>\
         <label>Per page <input name=\"limit\" type=\"number\" min=\"0\" max=\"{}\" value=\"{}\"></label>\
         <label>Order <select name=\"order\">{}{}</select></label>\
         <button type=\"submit\">Show</button> <a href=\"/\">reset</a></form>",
        escape(spec),
        query::MAX_LIMIT,
        query.limit,
        order(Order::Problems, "problems first"),
        order(Order::Id, "by id"),
    );
}

/// The links to the first and the next page, or nothing when there is one page.
fn navigation(q: &Query, selection: &super::index::Selection) -> String {
    let default_limit = query::PAGE_DEFAULT_LIMIT;
    let mut links = Vec::new();
    if q.after.is_some() {
        links.push(format!(
            "<a href=\"/{}\">&laquo; first page</a>",
            escape(&q.link(None, default_limit, Order::Problems))
        ));
    }
    if let Some(next) = &selection.next {
        links.push(format!(
            "<a href=\"/{}\">next page &raquo;</a>",
            escape(&q.link(Some(next), default_limit, Order::Problems))
        ));
    }
    if links.is_empty() {
        String::new()
    } else {
        format!("<p class=\"nav\">{}</p>\n", links.join(""))
    }
}

fn specs(
    page: &mut String,
    rows: &[Row<'_>],
    query: &Query,
    selection: &super::index::Selection,
    nav: &str,
    now_ms: u64,
) {
    page.push_str("<h2>Specs</h2>\n");
    let order = match query.order {
        Order::Problems => "problems first",
        Order::Id => "by id",
    };
    let filtered = query.spec.is_some() || query.state.is_some();
    let what = if filtered {
        "matching spec ids"
    } else {
        "spec ids"
    };
    if rows.is_empty() {
        let _ = writeln!(
            page,
            "<p>No specs on this page ({} {what} in all).</p>",
            thousands(selection.matched)
        );
        page.push_str(nav);
        return;
    }
    let _ = writeln!(
        page,
        "<p>{}&ndash;{} of {} {what}, {order}.</p>",
        thousands(selection.before + 1),
        thousands(selection.before + rows.len()),
        thousands(selection.matched),
    );
    page.push_str(nav);
    page.push_str(
        "<table>\n<tr><th>Spec</th><th>State</th><th>Running / wanted</th><th>Generation</th>\
         <th>Problems</th><th>Rollout</th><th>Pending</th></tr>\n",
    );
    for row in rows {
        let state = format!(
            "<span class=\"{}\">{}</span>",
            state_class(row.state),
            escape(describe_state(row.state))
        );
        let Some(spec) = row.spec else {
            let live = match row.tasks().len() {
                1 => "1 live task still names it".to_owned(),
                n => format!("{n} live tasks still name it"),
            };
            let _ = writeln!(
                page,
                "<tr><td><code>{}</code></td><td>{state}</td><td>-</td><td>-</td>\
                 <td>its file is gone; {live}</td><td></td><td></td></tr>",
                escape(row.id),
            );
            continue;
        };
        let _ = writeln!(
            page,
            "<tr><td>{}<br><small>{}</small></td><td>{state}</td><td>{}</td>\
             <td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            spec_link(spec),
            escape(&spec.file),
            instances_cell(spec, row),
            escape(&short(spec.generation.as_deref().unwrap_or("-"))),
            super::html_git::commit_cell(spec.commit.as_deref()),
            problems(spec),
            escape(spec.rollout.as_deref().unwrap_or("")),
            pending(spec, now_ms),
        );
    }
    page.push_str("</table>\n");
    page.push_str(nav);
}

fn problems(spec: &SpecStatus) -> String {
    let Some(error) = &spec.error else {
        return String::new();
    };
    let field = if error.field.is_empty() {
        String::new()
    } else {
        format!("{}: ", escape(&error.field))
    };
    let hint = error
        .hint
        .as_ref()
        .map(|hint| format!("<br>hint: {}", escape(hint)))
        .unwrap_or_default();
    format!(
        "<span class=\"error\"><code>{}</code>: {field}{}{hint}</span>",
        escape(&error.location()),
        escape(&error.message)
    )
}

fn pending(spec: &SpecStatus, now_ms: u64) -> String {
    let mut lines: Vec<String> = spec
        .pending
        .iter()
        .take(PENDING_SHOWN)
        .map(|p| {
            let until = p
                .until_ms
                .map(|until| format!(" (until {})", escape(&relative(until, now_ms))))
                .unwrap_or_default();
            format!("#{}: {}{until}", p.instance, escape(&p.reason))
        })
        .collect();
    if spec.pending.len() > PENDING_SHOWN {
        lines.push(format!(
            "and {} more",
            thousands(spec.pending.len() - PENDING_SHOWN)
        ));
    }
    lines.join("<br>")
}

fn tasks(page: &mut String, rows: &[Row<'_>], now_ms: u64) {
    let total: usize = rows.iter().map(|row| row.tasks().len()).sum();
    let _ = writeln!(page, "<h2>Tasks of these specs ({})</h2>", thousands(total));
    if total == 0 {
        page.push_str("<p>No tasks.</p>\n");
        return;
    }
    if total > TASK_ROWS {
        let _ = writeln!(
            page,
            "<p>The first {} are shown; fewer specs per page, a filter, or \
             <code>GET /api/v1/status</code> show the rest.</p>",
            thousands(TASK_ROWS)
        );
    }
    page.push_str(
        "<table>\n<tr><th>Task</th><th>Spec</th><th>Instance</th><th>Generation</th><th>State</th>\
         <th>Host</th><th>Ports</th><th>Healthy</th><th>Launched</th><th>Output</th></tr>\n",
    );
    for task in rows.iter().flat_map(|row| row.tasks()).take(TASK_ROWS) {
        let host = task
            .hostname
            .as_deref()
            .or(task.agent_id.as_deref())
            .unwrap_or("-");
        let ports: Vec<String> = task.ports.iter().map(u64::to_string).collect();
        let healthy = match task.healthy {
            Some(true) => "yes",
            Some(false) => "<span class=\"error\">no</span>",
            None => "-",
        };
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td><code>{}</code>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{healthy}</td><td>{}</td><td>{}</td></tr>",
            escape(&task.task_id),
            escape(&task.spec),
            task.instance,
            escape(&short(&task.generation)),
            super::html_git::commit_cell(task.commit.as_deref()),
            escape(&task.state),
            escape(host),
            escape(&ports.join(", ")),
            escape(&relative(task.launched_ms, now_ms)),
            log_links(&task.task_id),
        );
    }
    page.push_str("</table>\n");
}

fn history(page: &mut String, indexed: &Indexed, now_ms: u64) {
    let mut attempts = indexed.recent_attempts().peekable();
    if attempts.peek().is_none() {
        return;
    }
    page.push_str(
        "<h2>Recent attempts</h2>\n<table>\n<tr><th>Spec</th><th>Instance</th><th>Task</th>\
         <th>Started</th><th>Ended</th><th>State</th><th>Reason</th><th>Host</th><th>Output</th></tr>\n",
    );
    for (spec, a) in attempts {
        let ended = a
            .ended_ms
            .map(|ended| relative(ended, now_ms))
            .unwrap_or_else(|| "still live".to_owned());
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(spec),
            a.instance,
            escape(&a.task_id),
            escape(&relative(a.started_ms, now_ms)),
            escape(&ended),
            escape(&a.state),
            escape(a.reason.as_deref().unwrap_or("")),
            escape(a.hostname.as_deref().or(a.agent.as_deref()).unwrap_or("-")),
            match a.sandbox.as_deref() {
                Some(sandbox) => format!(
                    "{} <small><code>{}</code></small>",
                    log_links(&a.task_id),
                    escape(sandbox)
                ),
                None => log_links(&a.task_id),
            },
        );
    }
    page.push_str("</table>\n");
}

/// A state as a person reads it.
fn describe_state(state: SpecState) -> &'static str {
    match state {
        SpecState::Invalid => "invalid file",
        SpecState::GivenUp => "given up",
        SpecState::Backoff => "failing (backoff)",
        SpecState::Failed => "failed (not restarted)",
        SpecState::RolloutStopped => "rollout stopped",
        SpecState::Pending => "pending",
        SpecState::Deleted => "deleted, tasks left",
        SpecState::Starting => "starting",
        SpecState::RollingOut => "rolling out",
        SpecState::Done => "finished",
        SpecState::Healthy => "healthy",
    }
}

fn state_class(state: SpecState) -> &'static str {
    if state.is_problem() {
        "error"
    } else if state == SpecState::Healthy {
        "ok"
    } else {
        "busy"
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The commit a spec was applied from, when the controller knows it, as `status` shows it: the
/// short sha and the subject (`abc1234 scale web to 3`).
pub fn commit_of(spec: &SpecStatus) -> Option<String> {
    spec.commit
        .as_deref()
        .map(super::snapshot::CommitView::describe)
}

/// Generations are long hashes; the first 12 characters tell them apart on a page.
fn short(generation: &str) -> String {
    generation.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
