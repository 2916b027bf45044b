//! `GET /`: the status page a person reads. Plain HTML with a meta refresh, no scripts; every piece
//! of text from the snapshot goes through [`escape`], since spec files and task messages are
//! written by users and may contain markup.

use std::fmt::Write as _;

use super::snapshot::{AttemptRow, Snapshot, SpecStatus};
use crate::timefmt::utc;

/// How many history rows the page shows (newest first, across all specs).
const HISTORY_ROWS: usize = 50;

/// Renders the page. `ready` is the server's latched readiness; `now_ms` (ms since the Unix epoch)
/// turns absolute deadlines into "in 12s".
pub fn render(snapshot: &Snapshot, ready: bool, now_ms: u64) -> String {
    let mut page = String::with_capacity(8 * 1024);
    page.push_str(HEAD);
    summary(&mut page, snapshot, ready, now_ms);
    banners(&mut page, snapshot, now_ms);
    specs(&mut page, &snapshot.specs, now_ms);
    tasks(&mut page, snapshot, now_ms);
    history(&mut page, &snapshot.specs, now_ms);
    page.push_str("</body>\n</html>\n");
    page
}

/// Escapes text for HTML element content and double-quoted attribute values.
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
<meta http-equiv="refresh" content="5">
<title>mesos-reconciler status</title>
<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.error { color: #b00020; }
.banner { border: 2px solid #b00020; background: #fff0f0; padding: 0.6em; margin-bottom: 1em; }
.ok { color: #1b5e20; }
code { font-size: 0.95em; }
</style>
</head>
<body>
<h1>mesos-reconciler</h1>
"#;

// Writing to a String cannot fail, so the `fmt::Result`s below are ignored on purpose.

fn summary(page: &mut String, s: &Snapshot, ready: bool, now_ms: u64) {
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
    if let Some(error) = &s.desired_error {
        let _ = writeln!(
            page,
            "<div class=\"banner error\"><strong>The desired directory cannot be read:</strong> {}. \
             Nothing is killed because of it; the last specs read stay in force.</div>",
            escape(error)
        );
    }
    if let Some(guard) = &s.guard {
        let specs: Vec<String> = guard
            .specs
            .iter()
            .map(|id| format!("<code>{}</code>", escape(id)))
            .collect();
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

fn specs(page: &mut String, specs: &[SpecStatus], now_ms: u64) {
    let _ = writeln!(page, "<h2>Specs ({})</h2>", specs.len());
    if specs.is_empty() {
        page.push_str("<p>No specs.</p>\n");
        return;
    }
    page.push_str(
        "<table>\n<tr><th>Spec</th><th>Running / wanted</th><th>Generation</th>\
         <th>Problems</th><th>Rollout</th><th>Pending</th></tr>\n",
    );
    for spec in specs {
        let problems = match &spec.error {
            Some(error) => {
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
            None => String::new(),
        };
        let pending: Vec<String> = spec
            .pending
            .iter()
            .map(|p| {
                let until = p
                    .until_ms
                    .map(|until| format!(" (until {})", escape(&relative(until, now_ms))))
                    .unwrap_or_default();
                format!("#{}: {}{until}", p.instance, escape(&p.reason))
            })
            .collect();
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code><br><small>{}</small></td><td>{} / {}</td><td><code>{}</code></td>\
             <td>{problems}</td><td>{}</td><td>{}</td></tr>",
            escape(&spec.id),
            escape(&spec.file),
            spec.running,
            spec.instances,
            escape(&short(spec.generation.as_deref().unwrap_or("-"))),
            escape(spec.rollout.as_deref().unwrap_or("")),
            pending.join("<br>"),
        );
    }
    page.push_str("</table>\n");
}

fn tasks(page: &mut String, s: &Snapshot, now_ms: u64) {
    let _ = writeln!(page, "<h2>Tasks ({})</h2>", s.tasks.len());
    if s.tasks.is_empty() {
        page.push_str("<p>No tasks.</p>\n");
        return;
    }
    page.push_str(
        "<table>\n<tr><th>Task</th><th>Spec</th><th>Instance</th><th>Generation</th><th>State</th>\
         <th>Host</th><th>Ports</th><th>Healthy</th><th>Launched</th></tr>\n",
    );
    for task in &s.tasks {
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
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{healthy}</td><td>{}</td></tr>",
            escape(&task.task_id),
            escape(&task.spec),
            task.instance,
            escape(&short(&task.generation)),
            escape(&task.state),
            escape(host),
            escape(&ports.join(", ")),
            escape(&relative(task.launched_ms, now_ms)),
        );
    }
    page.push_str("</table>\n");
}

fn history(page: &mut String, specs: &[SpecStatus], now_ms: u64) {
    let mut attempts: Vec<(&str, &AttemptRow)> = specs
        .iter()
        .flat_map(|spec| spec.history.iter().map(move |a| (spec.id.as_str(), a)))
        .collect();
    if attempts.is_empty() {
        return;
    }
    attempts.sort_by_key(|(_, attempt)| std::cmp::Reverse(attempt.started_ms));
    attempts.truncate(HISTORY_ROWS);
    page.push_str(
        "<h2>Recent attempts</h2>\n<table>\n<tr><th>Spec</th><th>Instance</th><th>Task</th>\
         <th>Started</th><th>Ended</th><th>State</th><th>Reason</th><th>Host</th><th>Sandbox</th></tr>\n",
    );
    for (spec, a) in attempts {
        let ended = a
            .ended_ms
            .map(|ended| relative(ended, now_ms))
            .unwrap_or_else(|| "still live".to_owned());
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(spec),
            a.instance,
            escape(&a.task_id),
            escape(&relative(a.started_ms, now_ms)),
            escape(&ended),
            escape(&a.state),
            escape(a.reason.as_deref().unwrap_or("")),
            escape(a.hostname.as_deref().or(a.agent.as_deref()).unwrap_or("-")),
            escape(a.sandbox.as_deref().unwrap_or("")),
        );
    }
    page.push_str("</table>\n");
}

/// Generations are long hashes; the first 12 characters tell them apart on a page.
fn short(generation: &str) -> String {
    generation.chars().take(12).collect()
}

/// `12s ago`, `in 3m 5s`, or `now`.
fn relative(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        return "-".to_owned();
    }
    let (delta, future) = if at_ms >= now_ms {
        (at_ms - now_ms, true)
    } else {
        (now_ms - at_ms, false)
    };
    let secs = delta / 1000;
    if secs == 0 {
        return "now".to_owned();
    }
    let span = if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600)
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
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
    fn relative_reads_both_ways() {
        assert_eq!(relative(10_000, 70_000), "1m 0s ago");
        assert_eq!(relative(75_000, 70_000), "in 5s");
        assert_eq!(relative(70_400, 70_000), "now");
    }
}
