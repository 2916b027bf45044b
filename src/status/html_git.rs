//! The git parts of the status page: the commit of the desired directory and the state of the sync
//! in the overview, a banner when the sync fails or refused a commit, and the commit of each spec
//! and task. Kept apart from `html.rs` so the page's layout and these pieces change independently.

use std::fmt::Write as _;

use super::html::escape;
use super::snapshot::{CommitView, GitStatus, Snapshot};
use crate::timefmt::{relative, utc};

/// How many problems of a refused commit the banner lists.
const REFUSED_PROBLEMS_SHOWN: usize = 10;

/// Overview rows: `Git` (the commit of the desired directory) and `Sync`.
pub fn overview_rows(page: &mut String, s: &Snapshot, now_ms: u64) {
    let Some(git) = &s.git else {
        return;
    };
    let source = git.source.as_deref().unwrap_or("git");
    let commit = match (&git.commit, &git.error) {
        (Some(commit), _) => format!("{} at {}", escape(source), commit_html(commit)),
        (None, Some(error)) => format!(
            "{}: <span class=\"error\">commit unknown: {}</span>",
            escape(source),
            escape(error)
        ),
        (None, None) => format!("{}: no commit", escape(source)),
    };
    row(page, "Git", &commit);
    if let Some(sync) = &git.sync {
        let last = sync.last_success_ms.map_or_else(
            || "never".to_owned(),
            |at| format!("{} ({})", utc(at), relative(at, now_ms)),
        );
        let class = if sync.state == "ok" { "ok" } else { "error" };
        let mut text = format!(
            "<span class=\"{class}\">{}</span>: <code>{}</code> branch <code>{}</code>{}, last fetched {}",
            escape(&sync.state),
            escape(&sync.repo),
            escape(&sync.branch),
            if sync.subdir.is_empty() {
                String::new()
            } else {
                format!(" directory <code>{}</code>", escape(&sync.subdir))
            },
            escape(&last),
        );
        if let Some(error) = &sync.error {
            let _ = write!(
                text,
                "<br><span class=\"error\">{} failed attempt(s): {}</span>",
                sync.failures,
                escape(error)
            );
        }
        row(page, "Sync", &text);
    }
}

/// A banner when the sync cannot fetch, refused the branch head, or stopped writing its status.
pub fn banner(page: &mut String, s: &Snapshot, now_ms: u64) {
    let Some(GitStatus {
        sync: Some(sync), ..
    }) = &s.git
    else {
        return;
    };
    let since = sync
        .last_success_ms
        .map(|at| format!("; last successful fetch {}", relative(at, now_ms)))
        .unwrap_or_default();
    match sync.state.as_str() {
        "failing" | "unreadable" => {
            let _ = writeln!(
                page,
                "<div class=\"banner error\"><strong>The git sync fails</strong> ({} attempt(s){since}): {}. \
                 The desired directory stays at its commit and it is retried.</div>",
                sync.failures,
                escape(sync.error.as_deref().unwrap_or("no message")),
            );
        }
        "silent" => {
            let _ = writeln!(
                page,
                "<div class=\"banner error\"><strong>The git sync is not running:</strong> its status \
                 file <code>{}</code> was last written {}. New commits are not published.</div>",
                escape(&sync.file),
                escape(&relative(sync.updated_ms, now_ms)),
            );
        }
        _ => {}
    }
    if let Some(refused) = &sync.refused {
        let mut problems: Vec<String> = refused
            .problems
            .iter()
            .take(REFUSED_PROBLEMS_SHOWN)
            .map(|p| format!("<code>{}</code>", escape(p)))
            .collect();
        if refused.problems.len() > REFUSED_PROBLEMS_SHOWN {
            problems.push(format!(
                "and {} more",
                refused.problems.len() - REFUSED_PROBLEMS_SHOWN
            ));
        }
        let _ = writeln!(
            page,
            "<div class=\"banner error\"><strong>Commit {} was not published</strong> (the sync \
             validates commits): fix these and push again.<br>{}</div>",
            commit_html(&refused.commit),
            problems.join("<br>"),
        );
    }
}

/// A commit in a table cell: `abc1234` with its subject, author and date in the tooltip.
pub fn commit_cell(commit: Option<&CommitView>) -> String {
    match commit {
        Some(commit) => format!("<br><small>{}</small>", commit_html(commit)),
        None => String::new(),
    }
}

fn commit_html(commit: &CommitView) -> String {
    let title = if commit.author.is_empty() {
        commit.sha.clone()
    } else {
        format!("{} {} {}", commit.sha, commit.author, commit.date)
    };
    format!(
        "<code title=\"{}\">{}</code> {}{}",
        escape(&title),
        escape(&commit.short),
        escape(&commit.subject),
        if commit.local_changes {
            " <span class=\"error\">(local changes)</span>"
        } else {
            ""
        }
    )
}

fn row(page: &mut String, name: &str, value_html: &str) {
    let _ = writeln!(
        page,
        "<tr><th>{}</th><td>{value_html}</td></tr>",
        escape(name)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{RefusedView, SyncView};

    fn commit() -> CommitView {
        CommitView {
            sha: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            short: "0123456".to_owned(),
            author: "A <a@example.org>".to_owned(),
            date: "2024-05-01T12:00:03+02:00".to_owned(),
            subject: "web: <b>2</b> instances".to_owned(),
            local_changes: false,
        }
    }

    #[test]
    fn commits_and_sync_problems_are_shown_escaped() {
        let snapshot = Snapshot {
            git: Some(GitStatus {
                source: Some("sync revision".to_owned()),
                commit: Some(commit()),
                error: None,
                sync: Some(SyncView {
                    state: "failing".to_owned(),
                    repo: "https://git.example.org/ops.git".to_owned(),
                    branch: "main".to_owned(),
                    failures: 3,
                    error: Some("`git fetch` failed: <refused>".to_owned()),
                    refused: Some(RefusedView {
                        commit: commit(),
                        problems: vec!["specs/web.toml:3:7: mem: must be positive".to_owned()],
                    }),
                    ..SyncView::default()
                }),
            }),
            ..Snapshot::default()
        };
        let mut page = String::new();
        overview_rows(&mut page, &snapshot, 0);
        banner(&mut page, &snapshot, 0);
        assert!(
            page.contains(
                "<code title=\"0123456789abcdef0123456789abcdef01234567 A &lt;a@example.org&gt;"
            ),
            "{page}"
        );
        assert!(
            page.contains("web: &lt;b&gt;2&lt;/b&gt; instances"),
            "{page}"
        );
        assert!(
            page.contains("The git sync fails</strong> (3 attempt(s))"),
            "{page}"
        );
        assert!(page.contains("&lt;refused&gt;"), "{page}");
        assert!(
            page.contains("specs/web.toml:3:7: mem: must be positive"),
            "{page}"
        );
        assert!(!page.contains("<b>2</b>"), "{page}");
        assert_eq!(commit_cell(None), "");
        let local = CommitView {
            local_changes: true,
            ..commit()
        };
        assert!(commit_cell(Some(&local)).contains("(local changes)"));
    }
}
