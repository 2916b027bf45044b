//! The status server's token and the allowed users, as an operator meets them: flags, exit codes,
//! HTTP answers and messages.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use mesos_reconciler::status::auth::Token;
use mesos_reconciler::status::{self, ControlCommand, Snapshot, StatusClientError};
use tokio::sync::{mpsc, oneshot, watch};

const BIN: &str = env!("CARGO_BIN_EXE_mesos-reconciler");
const TOKEN: &str = "a7f3c9e1d2b84f6a9c0e5d7b3a1f8e2c";
const DEADLINE: Duration = Duration::from_secs(30);

pub fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mr-security-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn token_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

async fn bin(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("MESOS_RECONCILER_MASTER")
        .env_remove("MESOS_RECONCILER_TOKEN_FILE")
        .env_remove("MESOS_RECONCILER_ALLOWED_USERS")
        .env("MESOS_RECONCILER_LOG", "warn")
        .output()
        .await
        .expect("the binary runs")
}

/// `mesos-reconciler run` against a master nothing listens on, with `dir` as its directories and
/// `extra` arguments: for what it refuses before it starts.
async fn run_refused(dir: &Path, extra: &[&str]) -> Output {
    let (desired, state) = (dir.to_str().unwrap(), dir.join("state"));
    let mut args = vec![
        "run",
        "--master",
        "http://127.0.0.1:9",
        "--desired",
        desired,
    ];
    args.extend(["--state", state.to_str().unwrap()]);
    args.extend(extra);
    bin(&args).await
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A status server with `token`, whose controller answers every approve-deletions.
async fn guarded_server(token: Option<Token>) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (_snapshots, receiver) = watch::channel(Arc::new(Snapshot::default()));
    let (control_tx, mut control) = mpsc::channel(4);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _keep = _snapshots;
        while let Some(command) = control.recv().await {
            match command {
                ControlCommand::ApproveDeletions { reply } => {
                    let _ = reply.send("released 0 kills".to_owned());
                }
                ControlCommand::Reread { reply } => {
                    let _ = reply.send(1);
                }
                _ => {}
            }
        }
    });
    tokio::spawn(status::serve_with_events(
        listener,
        receiver,
        control_tx,
        status::events::channel(),
        status::auth::Access {
            token,
            ..Default::default()
        },
        async move {
            let _ = stopped.await;
        },
    ));
    (url, stop)
}

#[tokio::test]
async fn a_status_server_on_another_address_than_loopback_needs_a_token_file() {
    let dir = scratch("bind");
    let out = run_refused(&dir, &["--listen", "0.0.0.0:0"]).await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("refusing to serve the status server on 0.0.0.0:0 without --token-file"),
        "{said}"
    );

    // A token file that is too short is refused without being echoed.
    let short = token_file(&dir, "hunter2");
    let out = run_refused(
        &dir,
        &[
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            short.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("--token-file"), "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn mutating_endpoints_need_the_bearer_token_and_reading_ones_do_not() {
    let (url, stop) = guarded_server(Some(token_from(TOKEN))).await;
    let http = mesos_reconciler::http::client_builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    for path in [
        status::APPROVE_DELETIONS_PATH,
        status::REREAD_PATH,
        status::plan_api::PLAN_PATH,
    ] {
        let bare = http.post(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(bare.status(), 401, "{path} without a token");
        assert_eq!(bare.headers()["www-authenticate"], "Bearer");
        let wrong = http
            .post(format!("{url}{path}"))
            .bearer_auth("a7f3c9e1d2b84f6a9c0e5d7b3a1f8e2d")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        assert!(
            !wrong.text().await.unwrap().contains(TOKEN),
            "{path}: the answer shows the token"
        );
    }
    for path in ["/", status::STATUS_PATH, "/metrics", "/healthz"] {
        let open = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(
            open.status(),
            200,
            "{path} is for monitoring, without a token"
        );
    }

    // The library's client, with and without the token.
    let err = status::approve_deletions(&url).await.unwrap_err();
    assert!(
        matches!(err, StatusClientError::Refused { status: 401, .. }),
        "{err:?}"
    );
    let answer = status::approve_deletions_with(&url, Some(&token_from(TOKEN)))
        .await
        .unwrap();
    assert_eq!(answer.trim(), "released 0 kills");
    let read = status::reread_now_with(&url, Some(&token_from(TOKEN)))
        .await
        .unwrap();
    assert_eq!(read, 1);
    let _ = stop.send(());
}

#[tokio::test]
async fn the_cli_reads_the_token_file_the_controller_reads() {
    let (url, stop) = guarded_server(Some(token_from(TOKEN))).await;
    let dir = scratch("cli-token");
    let file = token_file(&dir, TOKEN);

    let out = bin(&["approve-deletions", "--server", &url]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));
    assert!(text(&out).contains("--token-file"), "{}", text(&out));

    let out = bin(&[
        "approve-deletions",
        "--server",
        &url,
        "--token-file",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("released 0 kills"), "{}", text(&out));

    // The environment variable is the same file, for every command.
    let out = tokio::process::Command::new(BIN)
        .args(["approve-deletions", "--server", &url])
        .env("MESOS_RECONCILER_TOKEN_FILE", &file)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_spec_whose_user_is_not_allowed_is_invalid_at_its_user_field() {
    let dir = scratch("users");
    let desired = dir.join("desired");
    std::fs::create_dir_all(desired.join("team-a")).unwrap();
    std::fs::write(
        desired.join("team-a/web.toml"),
        "command = \"sleep 1000\"\nuser = \"root\"\n",
    )
    .unwrap();
    std::fs::write(
        desired.join("ok.toml"),
        "command = \"sleep 1000\"\nuser = \"nobody\"\n",
    )
    .unwrap();
    let out = bin(&[
        "validate",
        "--desired",
        desired.to_str().unwrap(),
        "--allowed-users",
        "nobody,www-data",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    let line = said
        .lines()
        .find(|l| l.contains("team-a/web.toml"))
        .unwrap_or_else(|| panic!("no error for team-a/web.toml in:\n{said}"));
    assert!(
        line.contains("team-a/web.toml:2:8: user: user `root` is not allowed on this controller (allowed: nobody, www-data)"),
        "{line}"
    );
    assert!(said.contains("1 valid, 1 invalid"), "{said}");

    // Without the flag both are valid.
    let out = bin(&["validate", "--desired", desired.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_framework_user_must_be_allowed_too() {
    let dir = scratch("default-user");
    let out = run_refused(
        &dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--user",
            "root",
            "--allowed-users",
            "nobody",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains(
            "the framework's user `root` (--user, else $USER) is not in --allowed-users (nobody)"
        ),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn token_from(text: &str) -> Token {
    let dir = scratch("token");
    let token = Token::from_file(&token_file(&dir, text)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    token
}
