//! The first minute of `mesos-reconciler run` against a wrong master (issue 14), with the real
//! binary as a child process (helpers in `support/proc.rs`): the `host:port` form is accepted,
//! the first failure is logged at once at WARN with the URL and the cause, and `/readyz` and
//! `/api/v1/status` show it. The "masters" are a port nothing listens on and a web server that is
//! not Mesos (`support/http_stub.rs`), both on 127.0.0.1.

#[path = "support/http_stub.rs"]
mod http_stub;
#[path = "support/proc.rs"]
mod proc;

use http_stub::{HttpStub, StubResponse};
use proc::{DEADLINE, Fixture, wait_for};

/// A `host:port` that nothing listens on (bound, then released).
async fn refused_host_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

/// Waits until the log has a line containing every one of `parts`; returns it.
async fn log_line(fixture: &Fixture, parts: &[&str]) -> String {
    wait_for("a log line", DEADLINE, || {
        let text = fixture.log_text();
        let found = text
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned);
        std::future::ready(found.ok_or_else(|| format!("no line with {parts:?} in:\n{text}")))
    })
    .await
}

#[tokio::test]
async fn wrong_port_as_host_port_is_logged_at_once_and_shown_on_readyz_and_the_api() {
    let master = refused_host_port().await;
    let mut fixture = Fixture::new("first-minute-port", &master);
    let mut ctl = fixture.spawn(None);
    ctl.status_url().await;
    let line = log_line(&fixture, &["WARN", "cannot talk to the Mesos master"]).await;
    assert!(line.contains(&format!("http://{master}/")), "{line}");
    assert!(line.contains("connection refused"), "{line}");
    let readyz = ctl.wait_readyz(503, "connection refused").await;
    assert!(readyz.contains(&format!("http://{master}/")), "{readyz}");
    let snapshot = ctl.status().await.unwrap();
    let error = snapshot.master_error.expect("the api shows the failure");
    assert_eq!(error.url, format!("http://{master}/"));
    assert!(error.message.contains("connection refused"), "{error:?}");
    assert!(error.at_ms > 0);
    let warnings = fixture
        .log_text()
        .lines()
        .filter(|l| l.contains("WARN"))
        .count();
    assert_eq!(
        warnings,
        1,
        "one WARN line until 30 s have passed:\n{}",
        fixture.log_text()
    );
    ctl.kill9().await;
}

#[tokio::test]
async fn a_web_server_that_is_not_mesos_is_named_as_such() {
    let stub = HttpStub::start(|_| {
        StubResponse::new(404, "<!DOCTYPE html>\n<html><body>Not Found</body></html>")
            .header("Content-Type", "text/html")
    })
    .await;
    let mut fixture = Fixture::new("first-minute-web", stub.url().as_str());
    let mut ctl = fixture.spawn(None);
    ctl.status_url().await;
    let line = log_line(&fixture, &["WARN", "is not a Mesos master"]).await;
    assert!(line.contains(stub.url().as_str()), "{line}");
    assert!(line.contains("/version answers HTTP 404"), "{line}");
    ctl.kill9().await;
}
