//! The status page in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) against a running `mesos-reconciler dev` (the binary, as a user starts it), driven
//! over the DevTools protocol on a loopback websocket.
//!
//! It checks that the page shows a running task and an invalid file with its line, that a spec
//! file dropped while the page is open appears without a reload (the page's script follows
//! `/api/v1/events`), and that with JavaScript off the page still shows the task. The screenshot
//! is kept at `target/page-test/screenshot.png` (CI keeps it as an artifact). `dev` runs with
//! `--log-format json`, and its launch line is checked for its `spec` and `task_id` fields.
//!
//! Without Chromium the test says so loudly and passes, except under CI (`CI` set), where
//! Chromium must be there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// Every wait: generous, for a loaded 2-core machine (Chromium's first start is slow).
const DEADLINE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(200);

#[tokio::test]
async fn the_page_shows_tasks_and_errors_and_follows_changes_live_in_chromium() {
    let work = Work::new();
    let desired = work.path.join("desired");
    let state = work.path.join("state");
    std::fs::create_dir_all(&desired).unwrap();
    write(&desired, "web", "command = \"echo serving; sleep 1000\"\n");
    write(&desired, "broken", "command = \"true\"\ninstnaces = 2\n");

    let dev_log = work.path.join("dev.log");
    let dev = Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--master-listen",
            "127.0.0.1:0",
        ])
        .arg("--state")
        .arg(&state)
        .arg("--desired")
        .arg(&desired)
        .args(["--log-format", "json"])
        .env("MESOS_RECONCILER_LOG", "info")
        .env_remove("MESOS_RECONCILER_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&dev_log).unwrap())
        .spawn()
        .expect("dev starts");
    let mut dev = Dev(dev);
    let url = wait_for("dev's status server", || async {
        let addr = std::fs::read_to_string(state.join("status-addr")).ok()?;
        let url = format!("http://{}", addr.trim());
        http_get(format!("{url}/healthz")).await.ok()?;
        Some(url)
    })
    .await;
    let web_task = wait_for("web to run", || async {
        let s = mesos_reconciler::status::fetch_status(&url).await.ok()?;
        s.tasks
            .iter()
            .find(|t| t.spec == "web" && t.state == "TASK_RUNNING")
            .map(|t| t.task_id.clone())
    })
    .await;

    // The launch is logged as JSON with the spec and the task as fields.
    let log = std::fs::read_to_string(&dev_log).unwrap();
    let launch = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "launching")
        .unwrap_or_else(|| panic!("no JSON `launching` line in:\n{log}"));
    assert_eq!(launch["spec"], "web", "{launch}");
    assert_eq!(launch["task_id"], web_task.as_str(), "{launch}");
    assert_eq!(launch["level"], "INFO", "{launch}");

    let Some(chromium) = find_chromium() else {
        let message = "chromium is not installed: the browser part of the page test did NOT run (`apt-get install chromium`; .ci/run installs it)";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("\n\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n\n");
        dev.stop().await;
        return;
    };

    // Now with JavaScript, over the DevTools protocol.
    let mut browser = Browser::start(&chromium, &work.path.join("chrome")).await;
    let mut page = browser.page().await;
    page.call("Page.enable", json!({})).await;

    // With JavaScript off, the server-rendered page shows the task and the error.
    page.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": true }),
    )
    .await;
    page.call("Page.navigate", json!({ "url": format!("{url}/") }))
        .await;
    let started = Instant::now();
    loop {
        let html = page.outer_html().await;
        if html.contains(&web_task) && html.contains("broken.toml:2:1") {
            assert!(
                html.contains("static page (reloads every 10 s without JavaScript)"),
                "{html}"
            );
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "JS off: no task or error in\n{html}"
        );
        tokio::time::sleep(POLL).await;
    }
    page.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": false }),
    )
    .await;
    page.call("Page.navigate", json!({ "url": format!("{url}/") }))
        .await;
    let text = page
        .wait_text("the running task and the invalid file", |t| {
            t.contains(&web_task) && t.contains("TASK_RUNNING") && t.contains("broken.toml:2:1")
        })
        .await;
    assert!(text.contains("Problems"), "problems first: {text}");
    assert!(
        text.find("Problems").unwrap() < text.find("Summary").unwrap(),
        "{text}"
    );
    page.wait_eval(
        "the page to follow the event stream",
        "document.getElementById('live').textContent.startsWith('live')",
    )
    .await;
    page.eval("window.mrMark = 42; true").await;

    // A file dropped while the page is open appears without a reload.
    write(&desired, "late", "command = \"sleep 1000\"\n");
    page.wait_text("the new spec without a reload", |t| t.contains("late.0."))
        .await;
    assert_eq!(
        page.eval("window.mrMark").await,
        json!(42),
        "the page was reloaded"
    );
    assert!(page.eval("window.mrSwaps").await.as_u64().unwrap() > 0);

    let shot = page
        .call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        )
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("screenshot data"))
        .unwrap();
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
    assert!(png.starts_with(b"\x89PNG"));

    browser.close(page).await;
    dev.stop().await;
}

/// `target/page-test/screenshot.png`.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("page-test")
        .join("screenshot.png")
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn chromium_flags(profile: &Path) -> Vec<String> {
    vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--window-size=1280,1600".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ]
}

fn write(dir: &Path, id: &str, text: &str) {
    let tmp = dir.join(format!(".{id}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{id}.toml"))).unwrap();
}

async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// The `dev` process. It is stopped with SIGTERM, never SIGKILL, so that it stops its cluster and
/// the cluster's tasks (which run in process groups of their own): also when the test fails.
struct Dev(Child);

impl Dev {
    async fn stop(&mut self) {
        self.terminate();
        let _ = tokio::time::timeout(DEADLINE, self.0.wait()).await;
    }

    fn terminate(&self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        self.terminate();
        let started = Instant::now();
        while matches!(self.0.try_wait(), Ok(None)) && started.elapsed() < DEADLINE {
            std::thread::sleep(POLL);
        }
    }
}

/// A temporary directory, removed on drop.
struct Work {
    path: PathBuf,
}

impl Work {
    fn new() -> Work {
        let path = std::env::temp_dir().join(format!(
            "mesos-reconciler-page-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Work { path }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Headless Chromium with its DevTools endpoint on a loopback port it picks.
struct Browser {
    child: Child,
    http: String,
}

impl Browser {
    async fn start(chromium: &Path, profile: &Path) -> Browser {
        let mut child = Command::new(chromium)
            .args(chromium_flags(profile))
            .args([
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let ws = tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_owned());
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("chromium did not say where DevTools listen:\n{seen}"));
        // Keep draining its stderr so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        Browser {
            child,
            http: format!("http://{host}"),
        }
    }

    /// The first page target.
    async fn page(&mut self) -> Page {
        let ws = wait_for("chromium's page target", || async {
            let body = http_get(format!("{}/json/list", self.http))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let list: Value = serde_json::from_str(&body).ok()?;
            list.as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .map(str::to_owned)
        })
        .await;
        let (socket, _) = tokio_tungstenite::connect_async(ws.as_str())
            .await
            .expect("the DevTools websocket opens");
        Page { socket, next_id: 0 }
    }

    async fn close(mut self, mut page: Page) {
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            page.call("Browser.close", json!({})),
        )
        .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One page's DevTools session.
struct Page {
    socket: Socket,
    next_id: u64,
}

impl Page {
    /// Sends a command and returns its `result` (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.call_raw(method, params).await;
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Sends a command and returns the whole answer (`result` or `error`).
    async fn call_raw(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::text(message))
            .await
            .expect("send to DevTools");
        tokio::time::timeout(DEADLINE, async {
            while let Some(Ok(message)) = self.socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                if v["id"] == id {
                    return Some(v);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no answer to {method}"))
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// The document as HTML, read through the DOM domain (which works with scripts off).
    async fn outer_html(&mut self) -> String {
        let doc = self.call("DOM.getDocument", json!({ "depth": 0 })).await;
        let node = doc["root"]["nodeId"].clone();
        // A navigation between the two calls replaces the document: the answer is an error,
        // read as an empty page, and the caller asks again.
        let html = self
            .call_raw("DOM.getOuterHTML", json!({ "nodeId": node }))
            .await;
        html["result"]["outerHTML"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn wait_eval(&mut self, what: &str, expression: &str) {
        let started = Instant::now();
        while self.eval(expression).await != json!(true) {
            assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the page's text satisfies `check`, and returns it.
    async fn wait_text(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self
                .eval("document.body ? document.body.innerText : ''")
                .await;
            let text = text.as_str().unwrap_or_default().to_owned();
            if check(&text) {
                return text;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "timed out waiting for {what}; the page shows:\n{text}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A GET with the crate's client (rustls on ring, no proxy from the environment).
async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    mesos_reconciler::http::client_builder()
        .build()?
        .get(url)
        .send()
        .await
}
