//! The operator's shell against a running controller: `status` (rows, exit codes, `--json`,
//! `--wait`, `--state`), `plan` (each kind of change, invalid files, the deletion guard, nothing
//! changed by asking), `logs` (stdout, stderr, `--tail`, `--follow`, an earlier attempt), the
//! event stream, the page's links, and the dev agents' `/files` endpoints in upstream's shape.
//!
//! The dev cluster and the controller run in the test's runtime (`support/e2e.rs`); the commands
//! are the real binary, run as a child process without blocking that runtime.

#[path = "support/e2e.rs"]
mod e2e;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{DEADLINE, process_agent, spec_of, world, write_spec_in};
use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind};
use serde_json::Value;

/// Runs the binary with `args` and returns (exit code, stdout, stderr).
async fn cli(args: &[&str]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"));
    command.args(args).kill_on_drop(true);
    for var in [
        "MESOS_RECONCILER_SERVER",
        "MESOS_RECONCILER_STATE",
        "MESOS_RECONCILER_DESIRED",
        "MESOS_RECONCILER_LOG_FORMAT",
        "MESOS_RECONCILER_LOG",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    let out = tokio::time::timeout(DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`mesos-reconciler {}` did not end within {DEADLINE:?}",
                args.join(" ")
            )
        })
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `args` until `check` accepts its output, or panics at the deadline with the last output.
async fn cli_until(args: &[&str], what: &str, check: impl Fn(i32, &str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let (code, out, err) = cli(args).await;
        if check(code, &out) {
            return out;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for {what}: `{}` exited {code}\n--- stdout:\n{out}\n--- stderr:\n{err}",
            args.join(" ")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A URL where nothing listens.
async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn row<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {report:#}"))
}

#[tokio::test]
async fn status_shows_rows_with_their_reasons_and_says_whether_all_converged() {
    let w = world("shell-status", vec![process_agent()]).await;
    w.write_spec("web", "command = \"sleep 1000\"\ninstances = 2\n");
    w.write_spec("batch", "command = \"echo done\"\nrestart = \"never\"\n");
    let ctl = w.start_controller().await;
    let url = ctl.status_url.clone();
    let converged = cli_until(
        &["status", "--json", "--server", &url],
        "web running and batch finished",
        |code, out| code == 0 && out.contains("\"converged\": true"),
    )
    .await;
    let report: Value = serde_json::from_str(&converged).unwrap();
    let batch = row(&report, "batch");
    assert_eq!(
        (
            batch["state"].as_str(),
            batch["finished"].as_u64(),
            batch["running"].as_u64()
        ),
        (Some("done"), Some(1), Some(0)),
        "{report:#}"
    );
    let web = row(&report, "web");
    assert_eq!(
        (
            web["state"].as_str(),
            web["running"].as_u64(),
            web["wanted"].as_u64()
        ),
        (Some("healthy"), Some(2), Some(2))
    );

    let (code, out, err) = cli(&["status", "--server", &url]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("SPEC   STATE    WANTED  RUNNING  FINISHED  FAILED"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("batch  done     1       0        1         0")),
        "{out}"
    );
    assert!(out.ends_with("2 specs, 2 converged, 0 not\n"), "{out}");

    // The page says "finished" rather than 0 / 1, and links the task's output and the file.
    let page = http_get(format!("{url}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<span class=\"ok\">finished</span>"),
        "{page}"
    );
    assert!(page.contains("href=\"/specs/web\""), "{page}");
    assert!(page.contains("/stdout\">stdout</a>"), "{page}");
    let file = http_get(format!("{url}/specs/web")).await.unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.text().await.unwrap(),
        "command = \"sleep 1000\"\ninstances = 2\n"
    );

    // An invalid file and a one-shot that failed: exit 3, with the position and the reason.
    w.write_spec("bad", "command = \"true\"\ninstnaces = 2\n");
    w.write_spec(
        "oops",
        "command = \"echo trying; exit 3\"\nrestart = \"never\"\n",
    );
    let out = cli_until(
        &["status", "--server", &url],
        "the invalid file and the failed job",
        |code, out| {
            code == 3
                && out.contains("bad.toml:2:1")
                && out
                    .lines()
                    .any(|l| l.starts_with("oops") && l.contains("failed"))
        },
    )
    .await;
    assert!(out.contains("instnaces"), "{out}");
    assert!(out.contains("#0 failed: TASK_FAILED"), "{out}");
    assert!(
        out.lines().nth(2).unwrap().starts_with("bad "),
        "problems first: {out}"
    );

    // The SPEC arguments select rows, and --state finds the server through status-addr.
    let state = w.state.to_str().unwrap();
    let (code, out, err) = cli(&["status", "--state", state, "web", "batch"]).await;
    assert_eq!(code, 0, "only converged rows selected: {out}{err}");
    assert!(!out.contains("bad"), "{out}");
    let (code, out, _) = cli(&["status", "--state", state, "*a*"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("batch") && out.contains("bad") && !out.contains("web "),
        "{out}"
    );

    // Nobody listening: exit 1 and a message that says where it looked.
    let closed = closed_url().await;
    let (code, _, err) = cli(&["status", "--server", &closed]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot reach the status server at {closed}")),
        "{err}"
    );
    let (code, _, err) = cli(&["status", "--server", "localhost:9797"]).await;
    assert_eq!(code, 64, "{err}");
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn status_wait_prints_changes_until_converged_or_times_out() {
    let w = world("shell-wait", vec![process_agent()]).await;
    w.write_spec("svc", "command = \"sleep 1000\"\ninstnaces = 1\n");
    let ctl = w.start_controller().await;
    let url = ctl.status_url.clone();
    ctl.wait_status("the invalid file to show", |s| {
        spec_of(s, "svc")
            .and_then(|s| s.error.as_ref())
            .map(|_| ())
            .ok_or_else(|| "no error yet".to_owned())
    })
    .await;

    let (code, out, err) = cli(&["status", "--wait", "--timeout", "1s", "--server", &url]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("svc: invalid"), "{out}");
    assert!(
        err.contains("timed out after 1s: not converged: svc"),
        "{err}"
    );

    let waiting = tokio::spawn({
        let url = url.clone();
        async move { cli(&["status", "--wait", "--timeout", "60s", "--server", &url]).await }
    });
    // The fix arrives while it waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.write_spec("svc", "command = \"sleep 1000\"\ninstances = 1\n");
    let (code, out, err) = waiting.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("svc: invalid"), "{out}");
    assert!(out.contains("svc: converged"), "{out}");
    assert!(
        out.trim_end().ends_with("s)") && out.contains("] converged ("),
        "{out}"
    );

    // An edit just before the wait is part of it: the wait has the controller read the
    // directory first, so it cannot report the state from before the edit.
    w.write_spec("svc", "command = \"sleep 1000\"\ninstances = 2\n");
    let (code, out, err) = cli(&["status", "--wait", "--timeout", "60s", "--server", &url]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("svc: pending 1/2 running") || out.contains("svc: starting 1/2 running"),
        "{out}"
    );
    assert_eq!(spec_of(&ctl.status().await, "svc").unwrap().running, 2);

    // approve-deletions takes --server like the others.
    let (code, out, err) = cli(&["approve-deletions", "--server", &url]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "nothing is held by the deletion guard\n"),
        "{err}"
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn plan_previews_each_change_with_the_controllers_own_planner() {
    let w = world("shell-plan", vec![process_agent()]).await;
    let service = |extra: &str| format!("command = \"sleep 1000\"\n{extra}");
    w.write_spec("a", &service("instances = 2\n"));
    for id in ["b", "c", "d", "e"] {
        w.write_spec(id, &service(""));
    }
    let ctl = w.start_controller().await;
    let url = ctl.status_url.clone();
    for (id, n) in [("a", 2), ("b", 1), ("c", 1), ("d", 1), ("e", 1)] {
        w.wait_running(&ctl, id, n).await;
    }

    let proposal = w.root.path().join("proposal");
    write_spec_in(&proposal, "a", &service("instances = 3\n"));
    write_spec_in(&proposal, "b", "command = \"sleep 2000\"\n");
    write_spec_in(
        &proposal,
        "c",
        "# only a comment and the default written out\ncpus = 0.1\ncommand = \"sleep 1000\"\n",
    );
    write_spec_in(&proposal, "e", &service(""));
    write_spec_in(&proposal, "f", &service(""));
    let dir = proposal.to_str().unwrap();
    let (code, out, err) = cli(&["plan", "--desired", dir, "--server", &url]).await;
    assert_eq!(code, 0, "{out}{err}");
    for expected in [
        "  ± a  scale 2 -> 3 instances\n",
        "         launch #2\n",
        "  ~ b  replace (rolling): generation ",
        "  = c  unchanged (generation ",
        "  - d  kill 1 task (file deleted)\n",
        "  = e  unchanged",
        "  + f  launch 1 instance (generation ",
        "Plan: 1 to launch, 1 to replace, 1 to scale, 1 to kill, 0 invalid, 2 unchanged.\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let (code, json, _) = cli(&["plan", "--json", "--desired", dir, "--server", &url]).await;
    assert_eq!(code, 0);
    let preview: Value = serde_json::from_str(&json).unwrap();
    let b = preview["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "b")
        .unwrap();
    assert_eq!(b["change"], "replace");
    assert_eq!(b["strategy"], "rolling");
    assert_eq!(b["launches"], serde_json::json!([0]));

    // An invalid file: exit 2, as `validate`.
    write_spec_in(&proposal, "g", "command = \"true\"\ninstnaces = 2\n");
    let (code, out, _) = cli(&["plan", "--desired", dir, "--server", &url]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("  ! g  invalid, nothing is launched: "),
        "{out}"
    );
    assert!(out.contains("g.toml:2:1"), "{out}");

    // Most files gone: the guard would hold the kills; exit 3.
    let few = w.root.path().join("few");
    write_spec_in(&few, "a", &service("instances = 2\n"));
    let (code, out, _) = cli(&["plan", "--desired", few.to_str().unwrap(), "--server", &url]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "HELD: the deletion guard would hold the kills of 4 tasks of 4 of 5 specs (b, c, d, e)"
        ),
        "{out}"
    );

    // Asking changed nothing.
    let snapshot = ctl.status().await;
    assert_eq!(spec_of(&snapshot, "a").unwrap().instances, 2);
    assert_eq!(w.live_tasks("d").await.len(), 1);

    let closed = closed_url().await;
    let (code, _, err) = cli(&["plan", "--desired", dir, "--server", &closed]).await;
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = cli(&["plan", "--desired", "/nonexistent/dir", "--server", &url]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn logs_read_stdout_stderr_and_earlier_attempts_from_the_agent() {
    let w = world("shell-logs", vec![process_agent()]).await;
    w.write_spec(
        "talk",
        "command = \"echo line1; echo line2; echo oops >&2; sleep 1000\"\n",
    );
    let ctl = w.start_controller().await;
    let url = ctl.status_url.clone();
    let out = cli_until(
        &["logs", "talk", "--server", &url],
        "talk's output",
        |code, out| code == 0 && out == "line1\nline2\n",
    )
    .await;
    assert_eq!(out, "line1\nline2\n");
    let (code, out, err) = cli(&["logs", "talk#0", "--stderr", "--server", &url]).await;
    assert_eq!((code, out.as_str()), (0, "oops\n"), "{err}");
    assert!(err.starts_with("==> talk#0: task talk.0."), "{err}");
    assert!(err.contains("/stderr"), "{err}");
    let (code, out, _) = cli(&["logs", "talk", "--tail", "1", "--server", &url]).await;
    assert_eq!((code, out.as_str()), (0, "line2\n"));

    // The page's link reads the same file.
    let task = w.live_tasks("talk").await.remove(0);
    let text = http_get(format!("{url}/tasks/{}/stdout", task.id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "line1\nline2\n");

    // A new generation: the latest attempt prints the new output, --attempt -1 the old one.
    w.write_spec("talk", "command = \"echo v2; sleep 1000\"\n");
    cli_until(
        &["logs", "talk", "--server", &url],
        "the new generation's output",
        |code, out| code == 0 && out == "v2\n",
    )
    .await;
    let (code, out, err) = cli(&["logs", "talk", "--attempt", "-1", "--server", &url]).await;
    assert_eq!((code, out.as_str()), (0, "line1\nline2\n"), "{err}");
    let (code, _, err) = cli(&["logs", "talk", "--attempt", "-5", "--server", &url]).await;
    assert_eq!(code, 1);
    assert!(err.contains("attempt(s) on record"), "{err}");

    // --follow prints what comes until the task ends.
    w.write_spec(
        "ticker",
        "command = \"for i in 1 2 3; do echo tick$i; sleep 0.3; done\"\nrestart = \"never\"\n",
    );
    cli_until(
        &["logs", "ticker", "--server", &url],
        "the ticker to start",
        |code, _| code == 0,
    )
    .await;
    let (code, out, err) = cli(&["logs", "ticker", "--follow", "--server", &url]).await;
    assert_eq!((code, out.as_str()), (0, "tick1\ntick2\ntick3\n"), "{err}");

    let (code, _, err) = cli(&["logs", "nosuch", "--server", &url]).await;
    assert_eq!(code, 1);
    assert!(err.contains("knows no spec `nosuch`"), "{err}");
    let (code, _, err) = cli(&["logs", "talk#x", "--server", &url]).await;
    assert_eq!(code, 64, "{err}");
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn dev_agents_serve_state_and_files_in_the_shape_mesos_does() {
    let other_rack =
        AgentSpec::parse(AgentSpecKind::Virtual, e2e::AGENT_RESOURCES, "rack:r2").unwrap();
    let w = world("shell-files", vec![process_agent(), other_rack]).await;
    w.write_spec(
        "hello",
        "command = \"printf 'hello world'; sleep 1000\"\ninstances = 2\n[[constraints]]\nfield = \"rack\"\nop = \"unique\"\n",
    );
    let ctl = w.start_controller().await;
    let master = w.cluster.url();
    let client = mesos_reconciler::http::client_builder().build().unwrap();
    let get = |path: String| {
        let client = client.clone();
        let master = master.clone();
        async move {
            let r = client.get(format!("{master}{path}")).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    let _ = &ctl;
    let (status, body) = get("/master/slaves".to_owned()).await;
    assert_eq!(status, 200);
    let slaves: Value = serde_json::from_str(&body).unwrap();
    let pid = slaves["slaves"][0]["pid"].as_str().unwrap().to_owned();
    assert!(
        pid.starts_with("slave(") && pid.contains("@127.0.0.1:"),
        "{pid}"
    );
    let process = pid.split('@').next().unwrap().to_owned();

    // The agent's state lists the task's executor with its sandbox.
    let directory = {
        let started = Instant::now();
        loop {
            let (status, body) = get(format!("/{process}/state")).await;
            assert_eq!(status, 200, "{body}");
            let state: Value = serde_json::from_str(&body).unwrap();
            let dir = state["frameworks"][0]["executors"][0]["directory"]
                .as_str()
                .map(str::to_owned);
            if let Some(dir) = dir.filter(|d| Path::new(d).join("stdout").exists()) {
                assert_eq!(state["pid"].as_str(), Some(pid.as_str()));
                break dir;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no executor with a sandbox: {state:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let stdout = format!("{directory}/stdout");
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let size = {
        let started = Instant::now();
        loop {
            let (status, body) = get(format!("/files/read?path={}&offset=-1", enc(&stdout))).await;
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["data"], "");
            if v["offset"] == 11 {
                break 11;
            }
            assert!(started.elapsed() < DEADLINE, "{body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(size, 11);
    let (_, body) = get(format!(
        "/files/read?path={}&offset=6&length=100",
        enc(&stdout)
    ))
    .await;
    assert_eq!(body, r#"{"data":"world","offset":6}"#);
    let (_, body) = get(format!("/files/read?path={}&offset=20", enc(&stdout))).await;
    assert_eq!(body, r#"{"data":"","offset":20}"#);
    for (query, status, message) in [
        ("".to_owned(), 400, "Expecting 'path=value' in query.\n"),
        (
            format!("path={}&offset=-5", enc(&stdout)),
            400,
            "Negative offset provided: -5.\n",
        ),
        (
            format!("path={}&length=-2", enc(&stdout)),
            400,
            "Negative length provided: -2.\n",
        ),
        (
            format!("path={}", enc(&directory)),
            400,
            "Cannot read a directory.\n",
        ),
        ("path=%2Fetc%2Fpasswd".to_owned(), 404, ""),
    ] {
        let (got_status, body) = get(format!("/files/read?{query}")).await;
        assert_eq!((got_status, body.as_str()), (status, message), "{query}");
    }
    let (status, body) = get(format!("/files/browse?path={}", enc(&directory))).await;
    assert_eq!(status, 200);
    let listing: Value = serde_json::from_str(&body).unwrap();
    let entry = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == stdout.as_str())
        .expect("stdout listed");
    assert_eq!(entry["size"], 11);
    assert!(
        entry["mode"].as_str().unwrap().starts_with("-rw"),
        "{entry}"
    );

    // The virtual agent's task has no sandbox: `logs` says so.
    let url = ctl.status_url.clone();
    let snapshot = ctl.status().await;
    let virtual_instance = snapshot
        .tasks
        .iter()
        .find(|t| {
            t.spec == "hello"
                && t.hostname.is_some()
                && t.agent_id.as_deref().is_some_and(|a| a.ends_with("S1"))
        })
        .map(|t| t.instance);
    if let Some(instance) = virtual_instance {
        let (code, _, err) = cli(&["logs", &format!("hello#{instance}"), "--server", &url]).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("virtual agents run no process"), "{err}");
    } else {
        panic!(
            "one instance runs on the virtual agent (unique rack): {:?}",
            snapshot.tasks
        );
    }
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn the_event_stream_sends_task_transitions_in_order() {
    use futures_util::StreamExt as _;
    let w = world("shell-events", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    let url = ctl.status_url.clone();
    let bad = http_get(format!("{url}/api/v1/events?events=tasks"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("task and snapshot"));

    let response = http_get(format!("{url}/api/v1/events?events=task"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.bytes_stream();
    w.write_spec("svc", "command = \"sleep 1000\"\n");
    let mut text = String::new();
    let mut states: Vec<(String, String, Option<String>)> = Vec::new();
    let started = Instant::now();
    while !states.iter().any(|(_, s, _)| s == "TASK_RUNNING") {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let chunk = tokio::time::timeout(left, body.next())
            .await
            .unwrap_or_else(|_| panic!("no TASK_RUNNING event within {DEADLINE:?}: {text}"))
            .expect("the stream stays open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                assert!(event.starts_with("event: task\n"), "{event}");
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(v["spec"], "svc");
                states.push((
                    v["task_id"].as_str().unwrap().to_owned(),
                    v["state"].as_str().unwrap().to_owned(),
                    v["previous"].as_str().map(str::to_owned),
                ));
            }
        }
    }
    assert_eq!(
        states[0].1, "TASK_STAGING",
        "a launch comes first: {states:?}"
    );
    assert_eq!(states[0].2, None);
    let running = states.iter().find(|(_, s, _)| s == "TASK_RUNNING").unwrap();
    assert_eq!(running.0, states[0].0, "the same task");
    assert!(running.2.is_some(), "a transition says where it came from");
    ctl.stop().await;
    w.shutdown().await;
}

/// A GET with the crate's client (rustls on ring, no proxy from the environment).
async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    mesos_reconciler::http::client_builder()
        .build()?
        .get(url)
        .send()
        .await
}
