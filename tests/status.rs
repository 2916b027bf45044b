//! The status server over real HTTP on 127.0.0.1: the JSON API round-trips the snapshot, the page
//! shows spec errors with their position and escapes user text, `/metrics` is well-formed
//! Prometheus text, readiness latches, and approve-deletions reaches the controller's channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mesos_reconciler::status::{
    self, AttemptRow, ControlCommand, Counters, GuardStatus, PassInfo, PendingRow, Snapshot,
    SpecErrorView, SpecStatus, StatusClientError, TaskStatusRow,
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

    assert!(page.contains(r#"<meta http-equiv="refresh" content="5">"#));
    assert!(page.contains("desired/team-a/bad.toml:7:10"), "{page}");
    assert!(page.contains("backoff.factor"), "{page}");
    assert!(page.contains("hint: did you mean `instances`?"), "{page}");
    // The message carries markup; it must arrive as text.
    assert!(
        page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "unescaped markup in the page");
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
        let http = reqwest::Client::builder()
            .no_proxy()
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
        connected: true,
        framework_id: Some("4f2c-0001".to_owned()),
        master: Some("http://127.0.0.1:5050".to_owned()),
        desired_dir: "desired".to_owned(),
        desired_error: None,
        specs: vec![
            SpecStatus {
                id: "team-a/bad".to_owned(),
                file: "desired/team-a/bad.toml".to_owned(),
                generation: None,
                instances: 0,
                running: 0,
                error: Some(SpecErrorView {
                    file: "desired/team-a/bad.toml".to_owned(),
                    line: 7,
                    column: 10,
                    field: "backoff.factor".to_owned(),
                    message: r#"must be at least 1.0 <script>alert("x")</script>"#.to_owned(),
                    hint: Some("did you mean `instances`?".to_owned()),
                }),
                ..SpecStatus::default()
            },
            SpecStatus {
                id: "team-b/api".to_owned(),
                file: "desired/team-b/api.toml".to_owned(),
                generation: Some("0123456789abcdef0123".to_owned()),
                instances: 3,
                running: 2,
                error: None,
                rollout: Some("rolling out 0123456789ab: 1 of 3 replaced".to_owned()),
                pending: vec![PendingRow {
                    instance: 2,
                    reason: "no offer with 4 cpus (largest seen: 2)".to_owned(),
                    until_ms: None,
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
                error: Some(SpecErrorView {
                    file: "desired/weird.toml".to_owned(),
                    message: "invalid spec id".to_owned(),
                    ..SpecErrorView::default()
                }),
                ..SpecStatus::default()
            },
        ],
        tasks: vec![TaskStatusRow {
            task_id: "web.1.abc".to_owned(),
            spec: "team-b/api".to_owned(),
            instance: 1,
            generation: "0123456789abcdef0123".to_owned(),
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
        },
        last_pass: Some(PassInfo {
            at_ms: 1_700_000_100_000,
            reason: "offer".to_owned(),
            duration_ms: 3,
        }),
    }
}
