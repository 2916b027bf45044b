//! Secrets never show: the framework's secret (`--secret-file`), the status server's token
//! (`--token-file`) and the values of spec `env` variables whose names look secret. The real
//! binary runs every command that could print them with `MESOS_RECONCILER_LOG=trace`, and all
//! their output, the controller's log and every endpoint of its status server are searched.
//! The env values must still reach the task: the master receives them in the TaskInfo.

use std::process::Output;

use mesos_reconciler::spec::{SpecId, parse};

use super::doors::scratch;
use super::proc::{self, DEADLINE, Fixture, Spawn};

const FRAMEWORK_SECRET: &str = "fw-secret-0d8c2a71e5";
const TOKEN: &str = "tok-6b2e9f41c7d08a35";
const DB_PASSWORD: &str = "envval-93b1f0e4aa";
const API_KEY: &str = "envval-7c21d9e03b";

fn spec_text() -> String {
    format!(
        "{}[env]\nDB_PASSWORD = \"{DB_PASSWORD}\"\napi_key = '{API_KEY}'\nLEVEL = \"debug\"\n",
        proc::service_spec(1)
    )
}

fn leaks(what: &str, text: &str) -> Vec<String> {
    [FRAMEWORK_SECRET, TOKEN, DB_PASSWORD, API_KEY]
        .iter()
        .filter(|secret| text.contains(*secret))
        .map(|secret| format!("{what} shows {secret}"))
        .collect()
}

async fn command(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"))
        .args(args)
        .env("MESOS_RECONCILER_LOG", "trace")
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("the binary runs")
}

#[test]
fn debug_output_of_a_spec_redacts_secret_env_values() {
    let id = SpecId::new("web").unwrap();
    let spec = parse(&id, "desired/web.toml", &spec_text()).unwrap();
    assert_eq!(
        spec.env["DB_PASSWORD"], DB_PASSWORD,
        "the value itself is kept"
    );
    let shown = format!("{spec:?} {spec:#?}");
    assert!(leaks("Debug", &shown).is_empty(), "{shown}");
    assert!(shown.contains("\"DB_PASSWORD\": \"<redacted>\""), "{shown}");
    assert!(shown.contains("\"LEVEL\": \"debug\""), "{shown}");
}

#[tokio::test]
async fn no_command_endpoint_or_log_line_shows_a_secret_even_at_trace_level() {
    let cluster = proc::start_cluster(1, "cpus:4;mem:4096;ports:[31000-31100]").await;
    let mut fixture = Fixture::new("secrets", &cluster.url());
    let files = scratch("secret-files");
    let secret_file = files.join("secret");
    let token_file = files.join("token");
    std::fs::write(&secret_file, format!("{FRAMEWORK_SECRET}\n")).unwrap();
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    fixture.write_spec("web", &spec_text());
    let (secret_path, token_path) = (
        secret_file.to_str().unwrap().to_owned(),
        token_file.to_str().unwrap().to_owned(),
    );
    let mut ctl = fixture.spawn_with(Spawn {
        args: &[
            "--principal",
            "reconciler",
            "--secret-file",
            &secret_path,
            "--token-file",
            &token_path,
        ],
        env: &[("MESOS_RECONCILER_LOG", "trace")],
        ..Spawn::default()
    });
    let url = ctl.status_url().await;
    let specs = [("web".to_owned(), 1)].into_iter().collect();
    let (frameworks, _) = proc::wait_converged(&cluster, &ctl, &specs, DEADLINE).await;
    let task_id = frameworks[0].tasks[0].id.clone();

    // The values reach the task.
    let infos = cluster.received_task_infos().await;
    let env: Vec<(String, String)> = infos[0]
        .command
        .as_ref()
        .and_then(|c| c.environment.as_ref())
        .map(|e| {
            e.variables
                .iter()
                .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        env.contains(&("DB_PASSWORD".to_owned(), DB_PASSWORD.to_owned())),
        "{env:?}"
    );
    assert!(
        env.contains(&("api_key".to_owned(), API_KEY.to_owned())),
        "{env:?}"
    );

    let mut found = Vec::new();
    let desired = fixture.desired.to_str().unwrap().to_owned();
    let server = [
        "--server",
        url.as_str(),
        "--token-file",
        token_path.as_str(),
    ];
    // With the exit code each must end with (`logs` of a virtual task has no sandbox to read).
    let runs: Vec<(Vec<&str>, Option<i32>)> = vec![
        (vec!["status"], Some(0)),
        (vec!["status", "--json", "web"], Some(0)),
        (vec!["status", "--wait", "--timeout", "60s"], Some(0)),
        (vec!["plan", "--desired", &desired], Some(0)),
        (vec!["plan", "--json", "--desired", &desired], Some(0)),
        (vec!["logs", "web"], None),
        (vec!["approve-deletions"], Some(0)),
    ];
    for (run, code) in runs {
        let args: Vec<&str> = run.iter().chain(server.iter()).copied().collect();
        let out = command(&args).await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if code.is_some() {
            assert_eq!(out.status.code(), code, "`{}`: {text}", run.join(" "));
        }
        found.extend(leaks(&format!("`{}`", run.join(" ")), &text));
    }
    let out = command(&["validate", "--verbose", "--desired", &desired]).await;
    assert_eq!(out.status.code(), Some(0));
    found.extend(leaks(
        "`validate`",
        &String::from_utf8_lossy(&[out.stdout, out.stderr].concat()),
    ));
    // A file that no longer parses is reported without its values.
    fixture.write_spec(
        "broken",
        &format!(
            "{}env = {{ DB_PASSWORD = \"{DB_PASSWORD}\"\n",
            proc::service_spec(1)
        ),
    );
    let out = command(&["validate", "--desired", &desired]).await;
    assert_eq!(out.status.code(), Some(2));
    found.extend(leaks(
        "`validate` of a broken file",
        &String::from_utf8_lossy(&[out.stdout, out.stderr].concat()),
    ));

    // Every endpoint, reading ones and the page included.
    let http = mesos_reconciler::http::client_builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    for path in [
        "/".to_owned(),
        "/?state=all".to_owned(),
        "/api/v1/status".to_owned(),
        "/metrics".to_owned(),
        "/healthz".to_owned(),
        "/readyz".to_owned(),
        "/specs/web".to_owned(),
        "/specs/broken".to_owned(),
        format!("/tasks/{task_id}/stdout"),
    ] {
        let body = http.get(format!("{url}{path}")).send().await.unwrap();
        let body = body.text().await.unwrap();
        found.extend(leaks(&format!("GET {path}"), &body));
    }
    let shown = http
        .get(format!("{url}/specs/web"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("DB_PASSWORD = \"<redacted>\""), "{shown}");
    assert!(shown.contains("LEVEL = \"debug\""), "{shown}");
    for path in ["/api/v1/approve-deletions", "/api/v1/reread"] {
        for token in [Some(TOKEN), Some("wrong-token-0123456789"), None] {
            let mut request = http.post(format!("{url}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let body = request.send().await.unwrap().text().await.unwrap();
            found.extend(leaks(&format!("POST {path}"), &body));
        }
    }
    // The task transitions' stream: what it sent within a moment.
    let mut events = http
        .get(format!("{url}/api/v1/events"))
        .send()
        .await
        .unwrap();
    let mut streamed = String::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, events.chunk()).await {
        streamed.push_str(&String::from_utf8_lossy(&chunk));
    }
    found.extend(leaks("GET /api/v1/events", &streamed));

    ctl.sigterm();
    ctl.wait_exit(DEADLINE).await;
    let log = fixture.log_text();
    assert!(
        log.contains(" TRACE ") || log.contains("TRACE"),
        "the controller logged at trace level"
    );
    found.extend(leaks("the controller's log", &log));
    assert!(found.is_empty(), "secrets shown:\n{}", found.join("\n"));
    let _ = std::fs::remove_dir_all(&files);
}
