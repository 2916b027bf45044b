//! `mesos-reconciler plan`: what applying a directory of specs would do against a running
//! controller, in the manner of `terraform plan`. Meant for a pull request's CI, beside
//! `validate`.
//!
//! The directory is read here with the controller's reader (`spec::load_dir`: the same ignore
//! rules, ids and messages); the texts of its valid files go to the controller
//! (`POST /api/v1/plan`), which parses them with its own parser and decides with its own planner
//! against its own state (see `status::plan_api` and `plan::preview`). Exit 0 when the plan is
//! clean, 2 when a file is invalid, 3 when the deletion guard would hold the kills, 1 when the
//! controller cannot be reached.

use crate::cli::{PlanArgs, exit};
use crate::plan::preview::{Change, Preview, SpecChange};
use crate::spec::load_dir;
use crate::status::SpecErrorView;
use crate::status::plan_api::{PlanFile, PlanFileError, PlanRequest, post_plan};

/// `mesos-reconciler plan`.
pub async fn plan(args: PlanArgs) -> i32 {
    let server = match super::resolve(&args.server) {
        Ok(server) => server,
        Err(code) => return code,
    };
    let request = match read_request(&args) {
        Ok(request) => request,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::INVALID_SPECS;
        }
    };
    let token = match super::read_token(&args.server) {
        Ok(token) => token,
        Err(code) => return code,
    };
    let files = request.files.len() + request.errors.len();
    let preview = match post_plan(&server, &request, token.as_ref()).await {
        Ok(preview) => preview,
        Err(e) => return super::report(&e),
    };
    if args.json {
        match serde_json::to_string_pretty(&preview) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot encode the plan: {e}");
                return exit::FAILURE;
            }
        }
    } else {
        println!(
            "plan of {} ({files} spec files) against the controller at {server}:",
            args.desired.display()
        );
        print!("{}", render(&preview));
    }
    exit_code(&preview)
}

/// 2 when a file is invalid, 3 when the guard would hold kills, 0 otherwise.
pub fn exit_code(preview: &Preview) -> i32 {
    if preview.specs.iter().any(|c| c.change == Change::Invalid) {
        exit::INVALID_SPECS
    } else if preview.guard.is_some() {
        exit::NOT_CONVERGED
    } else {
        exit::OK
    }
}

/// Reads the directory into a request: the text of each valid file, and each invalid file's
/// problem as the local reader found it.
fn read_request(args: &PlanArgs) -> Result<PlanRequest, String> {
    let snapshot = load_dir(&args.desired).map_err(|e| e.to_string())?;
    let mut request = PlanRequest {
        root: args.desired.display().to_string(),
        ..PlanRequest::default()
    };
    for id in snapshot.specs.keys() {
        let path = snapshot.root.join(format!("{}.toml", id.as_str()));
        match std::fs::read_to_string(&path) {
            Ok(text) => request.files.push(PlanFile {
                id: id.as_str().to_owned(),
                text,
            }),
            // Changed between the two reads: report it as the reader would.
            Err(e) => request.errors.push(PlanFileError {
                key: id.as_str().to_owned(),
                error: SpecErrorView {
                    file: format!("{}/{}.toml", request.root, id.as_str()),
                    message: format!("cannot read: {e}"),
                    ..SpecErrorView::default()
                },
            }),
        }
    }
    for (key, error) in &snapshot.errors {
        request.errors.push(PlanFileError {
            key: key.clone(),
            error: SpecErrorView::from(error),
        });
    }
    Ok(request)
}

/// The plan for a person: one line per spec id with a sign (`+` launch, `~` replace, `±` scale,
/// `-` kill, `!` invalid, `=` unchanged), what the first pass would do below it, then a count and
/// the guard.
pub fn render(preview: &Preview) -> String {
    let width = preview
        .specs
        .iter()
        .map(|c| c.id.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let mut counts = std::collections::BTreeMap::<Change, usize>::new();
    for change in &preview.specs {
        *counts.entry(change.change).or_default() += 1;
        out.push_str(&format!(
            "  {} {:<width$}  {}\n",
            sign(change.change),
            change.id,
            headline(change)
        ));
        for detail in details(change) {
            out.push_str(&format!("    {:<width$}    {detail}\n", ""));
        }
    }
    if preview.specs.is_empty() {
        out.push_str("  no specs on either side\n");
    }
    let summary: Vec<String> = [
        (Change::Launch, "to launch"),
        (Change::Replace, "to replace"),
        (Change::Scale, "to scale"),
        (Change::Kill, "to kill"),
        (Change::Invalid, "invalid"),
        (Change::Unchanged, "unchanged"),
    ]
    .iter()
    .map(|(change, words)| format!("{} {words}", counts.get(change).copied().unwrap_or(0)))
    .collect();
    out.push_str(&format!("Plan: {}.\n", summary.join(", ")));
    if let Some(guard) = &preview.guard {
        out.push_str(&format!(
            "HELD: the deletion guard would hold the kills of {} tasks of {} of {} specs ({}); \
             after applying, release them with `mesos-reconciler approve-deletions`, or restore the files.\n",
            guard.tasks,
            guard.specs.len(),
            guard.total_specs,
            guard.specs.join(", ")
        ));
    }
    out
}

fn sign(change: Change) -> char {
    match change {
        Change::Launch => '+',
        Change::Replace => '~',
        Change::Scale => '±',
        Change::Kill => '-',
        Change::Invalid => '!',
        Change::Unchanged => '=',
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn headline(c: &SpecChange) -> String {
    let generation = |g: &Option<String>| g.clone().unwrap_or_else(|| "-".to_owned());
    match c.change {
        Change::Launch => format!(
            "launch {} (generation {})",
            plural(
                c.instances_to.unwrap_or(0) as usize,
                "instance",
                "instances"
            ),
            generation(&c.generation_to)
        ),
        Change::Replace => {
            let mut line = format!(
                "replace ({}): generation {} -> {}",
                c.strategy.as_deref().unwrap_or("rolling"),
                generation(&c.generation_from),
                generation(&c.generation_to)
            );
            if c.instances_from != c.instances_to {
                line.push_str(&format!(
                    ", instances {} -> {}",
                    c.instances_from.unwrap_or(0),
                    c.instances_to.unwrap_or(0)
                ));
            }
            line
        }
        Change::Scale => format!(
            "scale {} -> {} instances",
            c.instances_from.unwrap_or(0),
            c.instances_to.unwrap_or(0)
        ),
        Change::Kill => {
            let what = if c.generation_from.is_some() {
                "file deleted"
            } else {
                "file already gone"
            };
            let held = if c.held {
                "; HELD by the deletion guard"
            } else {
                ""
            };
            if c.kills.is_empty() {
                format!("delete ({what}; no live task to kill)")
            } else {
                format!(
                    "kill {} ({what}){held}",
                    plural(c.kills.len(), "task", "tasks")
                )
            }
        }
        Change::Invalid => {
            let error = c.error.as_deref().unwrap_or("invalid");
            if c.generation_from.is_some() {
                format!(
                    "invalid, generation {} stays in force: {error}",
                    generation(&c.generation_from)
                )
            } else {
                format!("invalid, nothing is launched: {error}")
            }
        }
        Change::Unchanged => format!("unchanged (generation {})", generation(&c.generation_from)),
    }
}

/// What the first pass would do for a spec.
fn details(c: &SpecChange) -> Vec<String> {
    let mut lines = Vec::new();
    if !c.launches.is_empty() {
        let instances: Vec<String> = c.launches.iter().map(|i| format!("#{i}")).collect();
        lines.push(format!("launch {}", instances.join(" ")));
    }
    if c.change != Change::Kill {
        for k in &c.kills {
            lines.push(format!("kill #{} {} ({})", k.instance, k.task_id, k.reason));
        }
    }
    lines.extend(c.waits.iter().cloned());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::preview::{GuardPreview, KillPreview};

    #[test]
    fn the_rendering_signs_each_change_and_counts_them() {
        let preview = Preview {
            specs: vec![
                SpecChange {
                    id: "api".to_owned(),
                    change: Change::Replace,
                    strategy: Some("rolling".to_owned()),
                    generation_from: Some("aaaa1111".to_owned()),
                    generation_to: Some("bbbb2222".to_owned()),
                    instances_from: Some(2),
                    instances_to: Some(2),
                    launches: vec![0],
                    ..SpecChange::default()
                },
                SpecChange {
                    id: "old".to_owned(),
                    change: Change::Kill,
                    generation_from: Some("cccc3333".to_owned()),
                    kills: vec![KillPreview {
                        task_id: "old.0.x".to_owned(),
                        instance: 0,
                        reason: "spec deleted".to_owned(),
                    }],
                    held: true,
                    ..SpecChange::default()
                },
                SpecChange {
                    id: "web".to_owned(),
                    change: Change::Unchanged,
                    generation_from: Some("dddd4444".to_owned()),
                    ..SpecChange::default()
                },
            ],
            guard: Some(GuardPreview {
                specs: vec!["old".to_owned()],
                tasks: 1,
                total_specs: 3,
                message: String::new(),
            }),
        };
        let text = render(&preview);
        assert!(
            text.contains("  ~ api  replace (rolling): generation aaaa1111 -> bbbb2222\n"),
            "{text}"
        );
        assert!(text.contains("           launch #0\n"), "{text}");
        assert!(
            text.contains("  - old  kill 1 task (file deleted); HELD by the deletion guard\n"),
            "{text}"
        );
        assert!(
            text.contains("  = web  unchanged (generation dddd4444)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Plan: 0 to launch, 1 to replace, 0 to scale, 1 to kill, 0 invalid, 1 unchanged.\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "HELD: the deletion guard would hold the kills of 1 tasks of 1 of 3 specs (old)"
            ),
            "{text}"
        );
        assert_eq!(exit_code(&preview), exit::NOT_CONVERGED);
    }
}
