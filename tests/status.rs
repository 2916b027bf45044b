//! The status server over real HTTP on 127.0.0.1: the JSON API round-trips the snapshot, the page
//! shows spec errors with their position and escapes user text, `/metrics` is well-formed
//! Prometheus text, readiness latches, and approve-deletions reaches the controller's channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mesos_reconciler::status::{
    self, AttemptRow, ControlCommand, Counters, GuardStatus, MasterErrorView, PassInfo,
    PendingKind, PendingRow, Snapshot, SpecErrorView, SpecStatus, StatusClientError, TaskStatusRow,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn json_api_round_trips_the_snapshot() {
    let published = sample_snapshot();
    let server = Server::start(published.clone()).await;

    let response = server.get("/api/v1/status").await;
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "application/json");
    let got: Snapshot = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(got, published);

    let fetched = status::fetch_status(&server.url).await.unwrap();
    assert_eq!(fetched, published);
    server.stop().await;
}

#[tokio::test]
async fn page_shows_spec_errors_with_position_and_escapes_user_text() {
    let server = Server::start(sample_snapshot()).await;
    let response = server.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("text/html"));
    let page = response.text().await.unwrap();

    // Without JavaScript the page reloads itself; with it, it follows /api/v1/events.
    assert!(page.contains(r#"<noscript><meta http-equiv="refresh" content="10"></noscript>"#));
    assert!(page.contains("new EventSource('/api/v1/events?events=snapshot')"));
    assert!(page.contains("desired/team-a/bad.toml:7:10"), "{page}");
    assert!(page.contains("backoff.factor"), "{page}");
    assert!(page.contains("hint: did you mean `instances`?"), "{page}");
    // The message carries markup; it must arrive as text.
    assert!(
        page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("<script>alert("),
        "unescaped markup in the page"
    );
    // Pending reasons, rollout, the guard banner, tasks and history all show.
    assert!(page.contains("no offer with 4 cpus"), "{page}");
    assert!(page.contains("rolling out"), "{page}");
    assert!(page.contains("Mass-deletion guard"), "{page}");
    assert!(page.contains("team-b/api"), "{page}");
    assert!(page.contains("web.1.abc"), "{page}");
    assert!(page.contains("TASK_FAILED"), "{page}");
    assert!(page.contains("/var/lib/mesos/sandbox/web.0"), "{page}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_well_formed_prometheus_text() {
    let server = Server::start(sample_snapshot()).await;
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        content_type(&response),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let metrics = parse_metrics(&text);

    let value = |name: &str| -> f64 {
        metrics
            .samples
            .iter()
            .find(|s| s.name == name && s.labels.is_empty())
            .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
            .value
    };
    assert_eq!(value("mesos_reconciler_launches_total"), 11.0);
    assert_eq!(value("mesos_reconciler_kills_total"), 4.0);
    assert_eq!(value("mesos_reconciler_status_updates_total"), 40.0);
    assert_eq!(value("mesos_reconciler_task_failures_total"), 2.0);
    assert_eq!(value("mesos_reconciler_offers_declined_total"), 30.0);
    assert_eq!(value("mesos_reconciler_passes_total"), 99.0);
    assert_eq!(value("mesos_reconciler_invalid_specs"), 2.0);
    assert_eq!(value("mesos_reconciler_pending_instances"), 1.0);
    assert_eq!(value("mesos_reconciler_running_tasks"), 3.0);
    assert_eq!(value("mesos_reconciler_connected"), 1.0);
    assert_eq!(value("mesos_reconciler_ready"), 0.0);
    assert_eq!(value("mesos_reconciler_deletion_guard_held"), 1.0);

    let invalid: BTreeSet<String> = metrics
        .samples
        .iter()
        .filter(|s| s.name == "mesos_reconciler_spec_invalid")
        .map(|s| {
            assert_eq!(s.value, 1.0);
            s.labels["spec"].clone()
        })
        .collect();
    let expected: BTreeSet<String> = ["team-a/bad".to_owned(), "we\"ird\\id\nx".to_owned()]
        .into_iter()
        .collect();
    assert_eq!(invalid, expected);

    for sample in &metrics.samples {
        let kind = metrics
            .types
            .get(&sample.name)
            .unwrap_or_else(|| panic!("{} has no # TYPE", sample.name));
        assert!(
            metrics.helps.contains(&sample.name),
            "{} has no # HELP",
            sample.name
        );
        if kind == "counter" {
            assert!(sample.name.ends_with("_total"), "counter {}", sample.name);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn readiness_latches_once_ready() {
    let server = Server::start(Snapshot::default()).await;

    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap().trim(), "ok");

    let not_ready = server.get("/readyz").await;
    assert_eq!(not_ready.status(), 503);
    let reason = not_ready.text().await.unwrap();
    assert!(reason.contains("not ready"), "{reason}");
    assert!(reason.contains("not connected"), "{reason}");

    server.publish(Snapshot {
        ready: true,
        connected: true,
        ..Snapshot::default()
    });
    assert_eq!(server.get("/readyz").await.status(), 200);

    // The master goes away and a (hypothetically buggy) controller drops the flag: still ready.
    server.publish(Snapshot::default());
    assert_eq!(server.get("/readyz").await.status(), 200);
    let text = server.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l == "mesos_reconciler_ready 1"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn readiness_says_why_while_recovering_and_drops_while_the_state_is_unwritable() {
    let server = Server::start(Snapshot {
        connected: true,
        recovery: Some("learning the framework's tasks from the master".to_owned()),
        ..Snapshot::default()
    })
    .await;
    let waiting = server.get("/readyz").await;
    assert_eq!(waiting.status(), 503);
    let reason = waiting.text().await.unwrap();
    assert!(
        reason.contains("learning the framework's tasks"),
        "{reason}"
    );

    server.publish(Snapshot {
        ready: true,
        connected: true,
        ..Snapshot::default()
    });
    assert_eq!(server.get("/readyz").await.status(), 200);
    let halted = Snapshot {
        ready: true,
        connected: true,
        halted: Some("the state directory cannot be written: disk full".to_owned()),
        ..Snapshot::default()
    };
    server.publish(halted);
    let unwritable = server.get("/readyz").await;
    assert_eq!(unwritable.status(), 503, "the latch does not hide it");
    let reason = unwritable.text().await.unwrap();
    assert!(reason.contains("disk full"), "{reason}");
    let page = server.get("/").await.text().await.unwrap();
    assert!(page.contains("Launching and killing nothing"), "{page}");
    let text = server.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l == "mesos_reconciler_state_dir_unwritable 1"),
        "{text}"
    );
    let json = server.get("/api/v1/status").await.text().await.unwrap();
    assert!(json.contains("disk full"), "{json}");

    server.publish(Snapshot {
        ready: true,
        connected: true,
        ..Snapshot::default()
    });
    assert_eq!(server.get("/readyz").await.status(), 200, "writable again");

    // A standby controller (`run --ha`), even one that was ready as the leader before, says who
    // leads, on /readyz, the page and the JSON.
    let line = "standby; leader is ctl-1 (pid 7, status http://10.0.0.5:9797)";
    server.publish(Snapshot {
        ready: true,
        standby: Some(line.to_owned()),
        ..Snapshot::default()
    });
    let standby = server.get("/readyz").await;
    assert_eq!(standby.status(), 503, "the latch does not hide it");
    assert_eq!(standby.text().await.unwrap(), format!("{line}\n"));
    let page = server.get("/").await.text().await.unwrap();
    assert!(page.contains("leader is ctl-1"), "{page}");
    let json = server.get("/api/v1/status").await.text().await.unwrap();
    assert!(json.contains("leader is ctl-1"), "{json}");
    let text = server.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l == "mesos_reconciler_standby 1"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn readiness_page_and_api_show_the_last_failure_to_reach_a_master() {
    let error = MasterErrorView {
        url: "http://127.0.0.1:1/".to_owned(),
        message: "could not connect to master http://127.0.0.1:1/api/v1/scheduler: connection \
                  refused (nothing listens on that port: is the port right, is the master up?)"
            .to_owned(),
        at_ms: 1_764_960_000_000,
        attempts: 7,
    };
    let server = Server::start(Snapshot {
        master_error: Some(error.clone()),
        ..Snapshot::default()
    })
    .await;
    let readyz = server.get("/readyz").await;
    assert_eq!(readyz.status(), 503);
    let reason = readyz.text().await.unwrap();
    assert!(
        reason.contains("not connected to a Mesos master: could not connect to master http://127.0.0.1:1/api/v1/scheduler: connection refused"),
        "{reason}"
    );
    assert!(reason.contains("7 failed attempts"), "{reason}");
    assert!(
        reason.contains("2025-12-05"),
        "the time of the failure: {reason}"
    );
    let page = server.get("/").await.text().await.unwrap();
    assert!(
        page.contains("Cannot reach the Mesos master http://127.0.0.1:1/:"),
        "{page}"
    );
    assert!(page.contains("connection refused"), "{page}");
    let fetched = status::fetch_status(&server.url).await.unwrap();
    assert_eq!(fetched.master_error, Some(error));
    server.stop().await;
}

#[tokio::test]
async fn approve_deletions_reaches_the_controller_and_returns_its_answer() {
    let mut server = Server::start(sample_snapshot()).await;
    let mut control = server.control.take().unwrap();
    let controller = tokio::spawn(async move {
        let Some(ControlCommand::ApproveDeletions { reply }) = control.recv().await else {
            panic!("the control channel closed without a command");
        };
        reply
            .send("released 3 kills of 2 specs".to_owned())
            .unwrap();
        control
    });

    let answer = tokio::time::timeout(DEADLINE, status::approve_deletions(&server.url))
        .await
        .expect("approve-deletions did not finish")
        .unwrap();
    assert_eq!(answer.trim(), "released 3 kills of 2 specs");
    let control = tokio::time::timeout(DEADLINE, controller)
        .await
        .unwrap()
        .unwrap();

    // GET is not a way to approve anything.
    assert_eq!(server.get("/api/v1/approve-deletions").await.status(), 405);

    // With the controller gone the server says so instead of pretending.
    drop(control);
    let err = status::approve_deletions(&format!("{}/", server.url))
        .await
        .unwrap_err();
    match &err {
        StatusClientError::Refused { status, body, .. } => {
            assert_eq!(*status, 503);
            assert!(body.contains("nothing was approved"), "{body}");
        }
        other => panic!("expected a 503 refusal, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn client_reports_an_unreachable_server_with_its_url() {
    // Bind and drop to get a port nothing listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = status::approve_deletions(&url).await.unwrap_err();
    assert!(matches!(err, StatusClientError::Request { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn json_api_pages_filters_and_summarises_100k_specs() {
    let published = big_snapshot(100_000);
    let server = Server::start(published.clone()).await;
    let all_ids: Vec<&str> = published.specs.iter().map(|s| s.id.as_str()).collect();

    // The default request: the first 500 specs in id order, their tasks, the whole summary.
    let first = server.page("/api/v1/status").await;
    assert_eq!(first.specs.len(), status::DEFAULT_LIMIT);
    assert_eq!(first.next.as_deref(), Some(all_ids[499]));
    assert_eq!(first.page.matched, 100_000);
    let with_task = published.specs[..500]
        .iter()
        .filter(|s| s.running == 1)
        .count();
    assert_eq!(first.tasks.len(), with_task);
    assert_eq!(first.summary.specs, 100_000);
    assert_eq!(first.summary.states["invalid"], 1_000);
    assert_eq!(first.summary.states["given_up"], 1_000);
    assert_eq!(first.summary.states["rolling_out"], 1_000);
    assert_eq!(first.summary.states["healthy"], 97_000);
    assert_eq!(first.summary.instances.wanted, 100_000);
    assert_eq!(first.summary.instances.running, 98_000);
    assert_eq!(first.summary.instances.pending, 1_000);
    assert_eq!(first.summary.pending["given_up"], 1_000);
    assert_eq!(first.summary.tasks.total, 98_000);
    assert_eq!(first.summary.tasks.by_state["TASK_RUNNING"], 98_000);
    // The top-level fields keep their names and values.
    assert_eq!(first.counters, published.counters);

    // Every spec exactly once, in id order, over pages of the largest size; each page carries
    // exactly the tasks of its specs.
    let (mut ids, mut tasks) = (Vec::new(), Vec::new());
    let mut path = format!("/api/v1/status?limit={}", status::MAX_LIMIT);
    let mut pages = 0;
    loop {
        let page = server.page(&path).await;
        pages += 1;
        assert!(page.specs.len() <= status::MAX_LIMIT);
        assert_eq!(page.page.returned, page.specs.len());
        let on_page: BTreeSet<&str> = page.specs.iter().map(|s| s.id.as_str()).collect();
        assert!(
            page.tasks.iter().all(|t| on_page.contains(t.spec.as_str())),
            "a task of a spec that is not on the page"
        );
        ids.extend(page.specs.iter().map(|s| s.id.clone()));
        tasks.extend(page.tasks.iter().map(|t| t.task_id.clone()));
        match page.next {
            Some(next) => {
                path = format!("/api/v1/status?limit={}&after={next}", status::MAX_LIMIT);
            }
            None => break,
        }
    }
    assert_eq!(pages, 10);
    assert_eq!(ids, all_ids);
    let mut want_tasks: Vec<String> = published.tasks.iter().map(|t| t.task_id.clone()).collect();
    want_tasks.sort();
    tasks.sort();
    assert_eq!(tasks, want_tasks);

    // Filters select the right specs, and agree with the summary.
    let invalid = server
        .page("/api/v1/status?state=invalid&limit=10000")
        .await;
    assert_eq!(invalid.page.matched, 1_000);
    assert_eq!(invalid.specs.len(), 1_000);
    assert!(invalid.specs.iter().all(|s| s.error.is_some()));
    assert!(invalid.next.is_none());
    let stuck = server
        .page("/api/v1/status?state=given_up,rolling_out&limit=10")
        .await;
    assert_eq!(stuck.page.matched, 2_000);
    assert_eq!(stuck.specs.len(), 10);
    assert!(
        stuck
            .specs
            .iter()
            .all(|s| !s.pending.is_empty() || s.rollout.is_some())
    );
    let team = server.page("/api/v1/status?spec=team-07/&limit=0").await;
    assert_eq!(team.page.matched, 10_000);
    assert!(team.specs.is_empty() && team.tasks.is_empty() && team.next.is_none());
    let one = server.page("/api/v1/status?spec=team-07/svc-000017").await;
    assert_eq!(one.specs.len(), 1);
    assert_eq!(
        one.specs[0],
        published.specs[all_ids.binary_search(&"team-07/svc-000017").unwrap()]
    );
    assert_eq!(one.tasks.len(), 1);
    let glob = server.page("/api/v1/status?spec=*svc-09999*").await;
    assert_eq!(glob.page.matched, 10);
    let running = server
        .page("/api/v1/status?state=TASK_RUNNING&spec=team-00/&limit=10000")
        .await;
    // team-00 holds the invalid specs (i % 100 == 0), which run nothing.
    assert_eq!(running.page.matched, 9_000);

    // The CLI's fetch_status still returns the whole snapshot, page by page.
    let fetched = status::fetch_status(&server.url).await.unwrap();
    assert_eq!(fetched.specs, published.specs);
    assert_eq!(fetched.tasks.len(), published.tasks.len());
    assert_eq!(fetched.counters, published.counters);
    server.stop().await;
}

#[tokio::test]
async fn each_endpoint_answers_about_its_page_at_100k_specs() {
    // Figures are printed, not asserted (`cargo test --release --test status -- --nocapture`).
    let snapshot = big_snapshot(100_000);
    let server = Server::start(snapshot.clone()).await;
    // Right after a publish: the server's index of the new snapshot is being built, or not
    // even started, so the request may wait for (or do) the build.
    let mut times = Vec::new();
    for passes in 0..5 {
        let mut next = snapshot.clone();
        next.counters.passes = passes;
        server.publish(next);
        let started = std::time::Instant::now();
        let page = server.page("/api/v1/status?limit=0").await;
        times.push(started.elapsed());
        assert_eq!(page.counters.passes, passes, "the new snapshot");
    }
    times.sort();
    println!(
        "100,000 specs/tasks: GET /api/v1/status?limit=0 right after a publish: median {:?}, max {:?}",
        times[2], times[4]
    );
    for path in [
        "/api/v1/status",
        "/api/v1/status?limit=10000",
        "/api/v1/status?after=team-05/svc-050000",
        "/api/v1/status?state=invalid",
        "/api/v1/status?state=problem&order=problems",
        "/api/v1/status?spec=team-03/",
        "/api/v1/status?spec=*svc-0999*",
        "/api/v1/status?limit=0",
        "/",
        "/?state=problem",
        "/?order=id&after=team-05/svc-050000",
        "/metrics",
        "/healthz",
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let response = server.get(path).await;
            assert_eq!(response.status(), 200, "{path}");
            bytes = response.bytes().await.unwrap().len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "GET {path}: median {:?}, max {:?}, {bytes} bytes",
            times[2], times[4]
        );
    }
    let page = server.get("/").await.text().await.unwrap();
    // The first page: 100 spec rows and their tasks, not 100,000.
    assert!(
        page.matches("<tr><td><code>team-").count() < 300,
        "the page lists too much"
    );
    assert!(
        page.contains("1&ndash;100 of 100,000 spec ids, problems first"),
        "{}",
        &page[..4000]
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_stay_aggregate_at_100k_specs() {
    let server = Server::start(big_snapshot(100_000)).await;
    let text = server.get("/metrics").await.text().await.unwrap();
    let metrics = parse_metrics(&text);
    let invalid = metrics
        .samples
        .iter()
        .filter(|s| s.name == "mesos_reconciler_spec_invalid")
        .count();
    assert_eq!(invalid, 100, "per-spec series are capped");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        metrics
            .samples
            .iter()
            .find(|s| {
                s.name == name
                    && match label {
                        None => s.labels.is_empty(),
                        Some((k, v)) => s.labels.get(k).map(String::as_str) == Some(v),
                    }
            })
            .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
            .value
    };
    assert_eq!(value("mesos_reconciler_spec_invalid_omitted", None), 900.0);
    let by_state: f64 = metrics
        .samples
        .iter()
        .filter(|s| s.name == "mesos_reconciler_specs")
        .map(|s| s.value)
        .sum();
    assert_eq!(by_state, 100_000.0);
    assert_eq!(
        value("mesos_reconciler_specs", Some(("state", "invalid"))),
        1_000.0
    );
    assert_eq!(
        value("mesos_reconciler_specs", Some(("state", "given_up"))),
        1_000.0
    );
    assert_eq!(
        value("mesos_reconciler_tasks", Some(("state", "TASK_RUNNING"))),
        98_000.0
    );
    assert_eq!(
        value(
            "mesos_reconciler_pending_instances_by_kind",
            Some(("kind", "given_up"))
        ),
        1_000.0
    );
    assert_eq!(value("mesos_reconciler_instances_wanted", None), 100_000.0);
    assert!(text.len() < 64 * 1024, "{} bytes of metrics", text.len());
    server.stop().await;
}

#[tokio::test]
async fn page_lists_problems_first_and_pages_through_links() {
    let mut snapshot = big_snapshot(300);
    // One spec in each state the page ranks, besides the generator's.
    let failing = snapshot
        .specs
        .iter_mut()
        .find(|s| s.id == "team-01/svc-000251")
        .unwrap();
    failing.pending = vec![PendingRow {
        instance: 0,
        reason: "waiting for backoff after TASK_FAILED: exit 1".to_owned(),
        until_ms: None,
        kind: PendingKind::Backoff,
    }];
    // A deleted spec whose task is still being killed.
    snapshot.tasks.push(TaskStatusRow {
        task_id: "team-09.gone.0.x".to_owned(),
        spec: "team-09/gone".to_owned(),
        state: "TASK_KILLING".to_owned(),
        ..TaskStatusRow::default()
    });
    let server = Server::start(snapshot.clone()).await;

    let page = server.get("/?limit=4").await.text().await.unwrap();
    // Invalid files first, then given up, then failing, then rollouts, then healthy.
    let shown: Vec<&str> = spec_rows(&page);
    assert_eq!(
        shown,
        [
            "team-00/svc-000000",
            "team-00/svc-000100",
            "team-00/svc-000200",
            "team-01/svc-000001",
        ],
        "{page}"
    );
    assert!(
        page.contains("1&ndash;4 of 301 spec ids, problems first"),
        "{page}"
    );
    assert!(
        page.contains("300 spec files, and 1 deleted with live tasks"),
        "{page}"
    );
    assert!(page.contains("Needing attention"), "{page}");
    assert!(
        page.contains(r#"<a href="/?state=given_up">3 given up</a>"#),
        "{page}"
    );
    // Follow the "next page" link.
    let next = link_to(&page, "next page").expect("a next link");
    assert_eq!(next, "/?limit=4&after=given_up:team-01/svc-000001");
    let second = server.get(&next).await.text().await.unwrap();
    assert_eq!(
        spec_rows(&second),
        [
            "team-01/svc-000101",
            "team-01/svc-000201",
            "team-01/svc-000251",
            "team-09/gone",
        ],
        "{second}"
    );
    assert!(second.contains("5&ndash;8 of 301"), "{second}");
    assert!(
        second.contains("its file is gone; 1 live task still names it"),
        "{second}"
    );
    assert!(second.contains("team-09.gone.0.x"), "{second}");
    assert!(link_to(&second, "first page").is_some());

    // The form's fields as a browser sends them, empty ones included.
    let filtered = server
        .get("/?spec=team-01%2F&state=&limit=100&order=id")
        .await
        .text()
        .await
        .unwrap();
    let rows = spec_rows(&filtered);
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|id| id.starts_with("team-01/")));
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "id order");
    assert!(
        filtered.contains("of 30 matching spec ids, by id"),
        "{filtered}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_refused_with_what_is_accepted() {
    let server = Server::start(sample_snapshot()).await;
    for (path, says) in [
        ("/api/v1/status?state=sleeping", "unknown state `sleeping`"),
        ("/api/v1/status?state=sleeping", "TASK_RUNNING"),
        ("/api/v1/status?state=sleeping", "given_up"),
        ("/api/v1/status?limit=10001", "from 0 to 10000"),
        ("/api/v1/status?limit=ten", "from 0 to 10000"),
        ("/api/v1/status?order=random", "id and problems"),
        (
            "/api/v1/status?order=problems&after=team-a/web",
            "<state>:<id>",
        ),
        ("/api/v1/status?page=2", "unknown parameter `page`"),
        ("/api/v1/status?spec=a&spec=b", "given twice"),
        ("/?state=nope", "unknown state `nope`"),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&says.replace('<', "&lt;").replace('>', "&gt;")) || body.contains(says),
            "{path}: {body}"
        );
    }
    server.stop().await;
}

/// The spec ids of the page's spec table rows, in order.
fn spec_rows(page: &str) -> Vec<&str> {
    let table = page
        .split("<th>Spec</th><th>State</th>")
        .nth(1)
        .expect("no spec table");
    let table = &table[..table.find("</table>").unwrap()];
    table
        .split("<tr><td>")
        .skip(1)
        .map(|row| {
            let row = &row[row.find("<code>").unwrap() + "<code>".len()..];
            &row[..row.find("</code>").unwrap()]
        })
        .collect()
}

/// The target of the link whose text starts with `text`, unescaped.
fn link_to(page: &str, text: &str) -> Option<String> {
    let end = page
        .find(&format!("\">&laquo; {text}"))
        .or_else(|| page.find(&format!("\">{text}")))?;
    let start = page[..end].rfind("href=\"")? + "href=\"".len();
    Some(page[start..end].replace("&amp;", "&"))
}

/// `n` specs (ids `team-NN/svc-NNNNNN`, ten directories, in id order): one in 100 invalid, one in
/// 100 given up, one in 100 rolling out, the rest healthy; one TASK_RUNNING task per running
/// instance.
fn big_snapshot(n: usize) -> Snapshot {
    let mut specs = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("team-{:02}/svc-{i:06}", i % 10);
        let mut spec = SpecStatus {
            id: id.clone(),
            file: format!("desired/{id}.toml"),
            generation: Some("0123456789abcdef0123".to_owned()),
            instances: 1,
            running: 1,
            ..SpecStatus::default()
        };
        match i % 100 {
            0 => {
                spec.error = Some(Box::new(SpecErrorView {
                    file: spec.file.clone(),
                    line: 2,
                    column: 7,
                    field: "cpus".to_owned(),
                    message: "must be positive".to_owned(),
                    hint: None,
                }));
                spec.running = 0;
            }
            1 => {
                spec.running = 0;
                spec.pending = vec![PendingRow {
                    instance: 0,
                    reason: "gave up after 5 failures in a row".to_owned(),
                    until_ms: None,
                    kind: PendingKind::GivenUp,
                }];
            }
            2 => spec.rollout = Some("rolling out generation 0123456789ab".to_owned()),
            _ => {}
        }
        if spec.running == 1 {
            tasks.push(TaskStatusRow {
                task_id: format!("{}.0.{i:08x}", id.replace('/', ".")),
                spec: id.clone(),
                instance: 0,
                generation: "0123456789ab".to_owned(),
                commit: None,
                state: "TASK_RUNNING".to_owned(),
                agent_id: Some(format!("agent-{}", i % 100)),
                hostname: Some(format!("node-{}", i % 100)),
                ports: vec![31000 + (i % 1000) as u64],
                healthy: Some(true),
                launched_ms: 1_700_000_000_000,
            });
        }
        specs.push(spec);
    }
    // In the controller's orders: specs by id, tasks by task id.
    specs.sort_by(|a, b| a.id.cmp(&b.id));
    tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    Snapshot {
        ready: true,
        connected: true,
        framework_id: Some("4f2c-0001".to_owned()),
        master: Some("http://127.0.0.1:5050".to_owned()),
        desired_dir: "desired".to_owned(),
        specs,
        tasks,
        counters: Counters {
            launches: n as u64,
            passes: 7,
            invalid_specs: (n / 100) as u64,
            ..Counters::default()
        },
        ..Snapshot::default()
    }
}

/// The parts of a `GET /api/v1/status` answer the tests read.
#[derive(Debug, serde::Deserialize)]
struct Page {
    specs: Vec<SpecStatus>,
    tasks: Vec<TaskStatusRow>,
    counters: Counters,
    summary: status::Summary,
    next: Option<String>,
    page: PageInfo,
}

#[derive(Debug, serde::Deserialize)]
struct PageInfo {
    matched: usize,
    returned: usize,
}

/// A running status server with the channels a controller would hold.
struct Server {
    url: String,
    snapshots: watch::Sender<Arc<Snapshot>>,
    control: Option<mpsc::Receiver<ControlCommand>>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

impl Server {
    async fn start(snapshot: Snapshot) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (snapshots, receiver) = watch::channel(Arc::new(snapshot));
        let (control_tx, control) = mpsc::channel(4);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(status::serve(listener, receiver, control_tx, async move {
            let _ = stop.await;
        }));
        let http = mesos_reconciler::http::client_builder()
            .timeout(DEADLINE)
            .build()
            .unwrap();
        Server {
            url,
            snapshots,
            control: Some(control),
            shutdown,
            task,
            http,
        }
    }

    fn publish(&self, snapshot: Snapshot) {
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    /// `GET path`, which must answer 200 with a status page.
    async fn page(&self, path: &str) -> Page {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// Shuts the server down and checks it ends cleanly.
    async fn stop(self) {
        drop(self.http);
        let _ = self.shutdown.send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the server did not shut down")
            .unwrap()
            .unwrap();
    }
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Default)]
struct Parsed {
    helps: BTreeSet<String>,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

/// A strict line-by-line reader of the text format: every line is `# HELP name text`,
/// `# TYPE name kind`, or `name{label="value",...} number`, and a family's HELP and TYPE come
/// before its samples.
fn parse_metrics(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP without text");
            assert!(valid_name(name), "bad metric name in {line:?}");
            assert!(!help.is_empty(), "empty HELP in {line:?}");
            assert!(parsed.helps.insert(name.to_owned()), "HELP twice: {line:?}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE without kind");
            assert!(valid_name(name), "bad metric name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE in {line:?}"
            );
            assert!(
                parsed
                    .types
                    .insert(name.to_owned(), kind.to_owned())
                    .is_none(),
                "TYPE twice: {line:?}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let sample = parse_sample(line);
            assert!(
                parsed.types.contains_key(&sample.name),
                "sample before its TYPE: {line:?}"
            );
            parsed.samples.push(sample);
        }
    }
    parsed
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    assert!(valid_name(name), "bad metric name in {line:?}");
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(after) => parse_labels(after, line),
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value in {line:?}"));
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Parses `name="value",...}` (the text after `{`), undoing the format's three escapes; returns the
/// labels and the text after `}`.
fn parse_labels<'a>(text: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    let mut chars = text.char_indices();
    loop {
        let mut key = String::new();
        loop {
            match chars.next() {
                Some((i, '}')) if key.is_empty() && labels.is_empty() => {
                    return (labels, &text[i + 1..]);
                }
                Some((_, '=')) => break,
                Some((_, c)) => key.push(c),
                None => panic!("unterminated labels in {line:?}"),
            }
        }
        assert!(valid_name(&key), "bad label name in {line:?}");
        assert_eq!(
            chars.next().map(|(_, c)| c),
            Some('"'),
            "unquoted label value in {line:?}"
        );
        let mut value = String::new();
        loop {
            match chars.next().map(|(_, c)| c) {
                Some('\\') => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some('"') => break,
                Some('\n') | None => panic!("unterminated label value in {line:?}"),
                Some(c) => value.push(c),
            }
        }
        labels.insert(key, value);
        match chars.next() {
            Some((_, ',')) => {}
            Some((i, '}')) => return (labels, &text[i + 1..]),
            other => panic!("expected , or }} but got {other:?} in {line:?}"),
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample_snapshot() -> Snapshot {
    Snapshot {
        ready: false,
        halted: None,
        standby: None,
        recovery: None,
        connected: true,
        framework_id: Some("4f2c-0001".to_owned()),
        master: Some("http://127.0.0.1:5050".to_owned()),
        master_error: None,
        desired_dir: "desired".to_owned(),
        desired_error: None,
        git: None,
        specs: vec![
            SpecStatus {
                id: "team-a/bad".to_owned(),
                file: "desired/team-a/bad.toml".to_owned(),
                generation: None,
                commit: None,
                instances: 0,
                running: 0,
                error: Some(Box::new(SpecErrorView {
                    file: "desired/team-a/bad.toml".to_owned(),
                    line: 7,
                    column: 10,
                    field: "backoff.factor".to_owned(),
                    message: r#"must be at least 1.0 <script>alert("x")</script>"#.to_owned(),
                    hint: Some("did you mean `instances`?".to_owned()),
                })),
                ..SpecStatus::default()
            },
            SpecStatus {
                id: "team-b/api".to_owned(),
                file: "desired/team-b/api.toml".to_owned(),
                generation: Some("0123456789abcdef0123".to_owned()),
                commit: None,
                instances: 3,
                running: 2,
                error: None,
                rollout: Some("rolling out 0123456789ab: 1 of 3 replaced".to_owned()),
                pending: vec![PendingRow {
                    instance: 2,
                    reason: "no offer with 4 cpus (largest seen: 2)".to_owned(),
                    until_ms: None,
                    kind: PendingKind::Resources,
                }],
                history: vec![AttemptRow {
                    instance: 0,
                    task_id: "web.0.old".to_owned(),
                    started_ms: 1_700_000_000_000,
                    ended_ms: Some(1_700_000_060_000),
                    state: "TASK_FAILED".to_owned(),
                    reason: Some("REASON_COMMAND_EXECUTOR_FAILED: exit 1".to_owned()),
                    agent: Some("agent-1".to_owned()),
                    hostname: Some("node-1".to_owned()),
                    sandbox: Some("/var/lib/mesos/sandbox/web.0".to_owned()),
                }],
            },
            SpecStatus {
                id: "we\"ird\\id\nx".to_owned(),
                file: "desired/weird.toml".to_owned(),
                error: Some(Box::new(SpecErrorView {
                    file: "desired/weird.toml".to_owned(),
                    message: "invalid spec id".to_owned(),
                    ..SpecErrorView::default()
                })),
                ..SpecStatus::default()
            },
        ],
        tasks: vec![TaskStatusRow {
            task_id: "web.1.abc".to_owned(),
            spec: "team-b/api".to_owned(),
            instance: 1,
            generation: "0123456789abcdef0123".to_owned(),
            commit: None,
            state: "TASK_RUNNING".to_owned(),
            agent_id: Some("agent-1".to_owned()),
            hostname: Some("node-1".to_owned()),
            ports: vec![31000, 31001],
            healthy: Some(true),
            launched_ms: 1_700_000_000_000,
        }],
        guard: Some(GuardStatus {
            specs: vec!["team-c/a".to_owned(), "team-c/b".to_owned()],
            instances: 3,
            total_specs: 3,
            since_ms: 1_700_000_000_000,
            release: "run `mesos-reconciler approve-deletions`".to_owned(),
        }),
        counters: Counters {
            launches: 11,
            kills: 4,
            status_updates: 40,
            failures: 2,
            offers_declined: 30,
            passes: 99,
            invalid_specs: 2,
            pending_instances: 1,
            running_tasks: 3,
            ..Counters::default()
        },
        last_pass: Some(PassInfo {
            at_ms: 1_700_000_100_000,
            reason: "offer".to_owned(),
            duration_ms: 3,
        }),
        partial: None,
    }
}
