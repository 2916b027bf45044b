//! Integration tests of the scheduler HTTP client (`mesos::client`) against scripted HTTP stubs on
//! 127.0.0.1: RecordIO across chunk boundaries, redirects, 503 retries with rotation, error
//! bodies, the heartbeat watchdog, credentials, and the exact headers of SUBSCRIBE and calls.
//!
//! Tests that use `Encoding::Json` depend on the JSON mapping (`mesos::json`).

#[path = "support/http_stub.rs"]
mod http_stub;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_stub::{HttpStub, RecordedRequest, StubResponse, WAIT};
use mesos_reconciler::mesos::client::{
    ClientConfig, ClientError, Credentials, CredentialsError, RetryPolicy, SchedulerClient, Secret,
};
use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1::scheduler::{Call, Event, call, event};
use mesos_reconciler::mesos::proto::v1::{FrameworkId, FrameworkInfo};
use mesos_reconciler::mesos::recordio;
use prost::Message;
use reqwest::Url;

const STREAM_ID: &str = "6d5f2a4e-7b1c-4f0e-9a3d-2c8b1e0f4a77";
const SCHEDULER_PATH: &str = "/api/v1/scheduler";

// ---------------------------------------------------------------------------------------------
// Helpers: wire messages, a fake master, configs.

fn framework_info(id: Option<&str>) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: "mesos-reconciler-test".into(),
        id: id.map(|value| FrameworkId {
            value: value.into(),
        }),
        failover_timeout: Some(604_800.0),
        ..Default::default()
    }
}

fn subscribe_body(id: Option<&str>) -> call::Subscribe {
    call::Subscribe {
        framework_info: framework_info(id),
        ..Default::default()
    }
}

fn subscribed(interval: f64) -> Event {
    Event {
        r#type: Some(event::Type::Subscribed as i32),
        subscribed: Some(event::Subscribed {
            framework_id: FrameworkId {
                value: "4f1c0a2e-90b3-4c55-8e0d-6a7b1f2c3d4e-0000".into(),
            },
            heartbeat_interval_seconds: Some(interval),
            master_info: None,
        }),
        ..Default::default()
    }
}

fn heartbeat() -> Event {
    Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    }
}

fn framed(encoding: Encoding, event: &Event) -> Vec<u8> {
    recordio::encode(&encoding.encode(event)).to_vec()
}

fn revive(framework_id: &str) -> Call {
    Call {
        framework_id: Some(FrameworkId {
            value: framework_id.into(),
        }),
        r#type: Some(call::Type::Revive as i32),
        ..Default::default()
    }
}

fn event_type(event: &Event) -> Option<event::Type> {
    event.r#type.and_then(|t| event::Type::try_from(t).ok())
}

/// The headers a master puts on a successful SUBSCRIBE answer.
fn stream_headers(response: StubResponse, encoding: Encoding) -> StubResponse {
    response
        .header("Content-Type", encoding.content_type())
        .header("Mesos-Stream-Id", STREAM_ID)
}

/// A master that answers the first SUBSCRIBE with `stream`, later ones with 500, and every other
/// call with 202.
fn fake_master(
    stream: StubResponse,
) -> impl Fn(&RecordedRequest) -> StubResponse + Send + Sync + 'static {
    let stream = Mutex::new(Some(stream));
    move |request| {
        let call = Call::decode(request.body.as_slice());
        let is_subscribe = match &call {
            Ok(call) => call.r#type == Some(call::Type::Subscribe as i32),
            // A JSON body: good enough to tell SUBSCRIBE apart without the JSON mapping.
            Err(_) => String::from_utf8_lossy(&request.body).contains("\"SUBSCRIBE\""),
        };
        if !is_subscribe {
            return StubResponse::empty(202);
        }
        stream
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| StubResponse::new(500, "fake master: second SUBSCRIBE"))
    }
}

/// A master whose stream sends `events` (protobuf) in one chunk each and then stays open; the
/// returned sender keeps it open and can push more bytes.
async fn open_master(events: &[Event]) -> (HttpStub, tokio::sync::mpsc::UnboundedSender<Vec<u8>>) {
    let (response, tx) = StubResponse::stream(200);
    for event in events {
        tx.send(framed(Encoding::Protobuf, event)).unwrap();
    }
    let stub = HttpStub::start(fake_master(stream_headers(response, Encoding::Protobuf))).await;
    (stub, tx)
}

/// Defaults, with fast retries so the tests do not wait on backoff.
fn config(masters: Vec<Url>) -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_attempts: 5,
            deadline: None,
        },
        ..ClientConfig::new(masters)
    }
}

fn client(masters: Vec<Url>) -> SchedulerClient {
    SchedulerClient::new(config(masters)).unwrap()
}

/// A URL of a port that nothing listens on (bound, then released).
async fn refused_url() -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    Url::parse(&format!("http://{addr}/")).unwrap()
}

async fn next_event(events: &mut mesos_reconciler::mesos::client::EventStream) -> Event {
    match tokio::time::timeout(WAIT, events.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn next_error(events: &mut mesos_reconciler::mesos::client::EventStream) -> ClientError {
    match tokio::time::timeout(WAIT, events.next()).await {
        Ok(Some(Err(err))) => err,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn temp_file(contents: &[u8]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("mesos-reconciler-client-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, contents).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// (a) RecordIO across HTTP chunks.

#[tokio::test]
async fn recordio_split_inside_lengths_and_payloads_across_http_chunks() {
    let first = framed(Encoding::Protobuf, &subscribed(15.0));
    let second = framed(Encoding::Protobuf, &heartbeat());
    assert_eq!(
        second,
        [b'2', b'\n', 0x08, 0x08],
        "golden heartbeat framing"
    );
    let len_digits = first.iter().position(|&b| b == b'\n').unwrap();
    assert!(
        len_digits >= 2,
        "the first length has two digits to split between"
    );
    let wire: Vec<u8> = [first.clone(), second].concat();
    // Cut after the first length digit, in the middle of the first payload, between the second
    // record's length and its LF, and between the heartbeat's two payload bytes.
    let cuts = [
        1,
        len_digits + 1 + (first.len() - len_digits) / 2,
        first.len() + 1,
        first.len() + 3,
    ];
    let mut chunks = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([wire.len()]) {
        chunks.push(wire[from..cut].to_vec());
        from = cut;
    }
    let response = stream_headers(StubResponse::chunks(200, chunks), Encoding::Protobuf);
    let stub = HttpStub::start(fake_master(response)).await;

    let client = client(vec![stub.url()]);
    let mut subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    assert_eq!(subscription.stream_id, STREAM_ID);
    assert_eq!(subscription.master, stub.url());

    let event = next_event(&mut subscription.events).await;
    assert_eq!(event_type(&event), Some(event::Type::Subscribed));
    assert_eq!(
        event.subscribed.unwrap().framework_id.value,
        "4f1c0a2e-90b3-4c55-8e0d-6a7b1f2c3d4e-0000"
    );
    let event = next_event(&mut subscription.events).await;
    assert_eq!(event_type(&event), Some(event::Type::Heartbeat));
    // The stub then ends the body: EOF without an ERROR event is a failure, not a clean end.
    let err = next_error(&mut subscription.events).await;
    assert!(matches!(err, ClientError::StreamClosed { .. }), "{err}");
    assert!(subscription.events.next().await.is_none());
}

#[tokio::test]
async fn error_event_is_yielded_and_the_stream_then_ends_cleanly() {
    let error = Event {
        r#type: Some(event::Type::Error as i32),
        error: Some(event::Error {
            message: "Framework has been removed".into(),
        }),
        ..Default::default()
    };
    let response = stream_headers(
        StubResponse::chunks(200, vec![framed(Encoding::Protobuf, &error)]),
        Encoding::Protobuf,
    );
    let stub = HttpStub::start(fake_master(response)).await;
    let client = client(vec![stub.url()]);
    let mut subscription = client
        .subscribe(subscribe_body(Some("fw-gone")))
        .await
        .unwrap();
    let event = next_event(&mut subscription.events).await;
    assert_eq!(event.error.unwrap().message, "Framework has been removed");
    let end = tokio::time::timeout(WAIT, subscription.events.next())
        .await
        .unwrap();
    assert!(end.is_none(), "clean end after ERROR, got {end:?}");
    assert!(matches!(
        client.call(revive("fw-gone")).await,
        Err(ClientError::NotSubscribed)
    ));
}

// ---------------------------------------------------------------------------------------------
// (b) Redirects.

#[tokio::test]
async fn scheme_less_307_is_followed_with_the_same_post_and_calls_go_to_the_leader() {
    let (leader, _tx) = open_master(&[subscribed(15.0)]).await;
    let location = format!("//{}{SCHEDULER_PATH}", leader.addr());
    let follower =
        HttpStub::start(move |_| StubResponse::empty(307).header("Location", &location)).await;

    let client = client(vec![follower.url()]);
    let mut subscription = client
        .subscribe(subscribe_body(Some("fw-1")))
        .await
        .unwrap();
    assert_eq!(subscription.master, leader.url());
    assert_eq!(client.leader(), Some(leader.url()));
    next_event(&mut subscription.events).await;

    let to_follower = follower.wait_for_requests(1).await;
    let to_leader = leader.wait_for_requests(1).await;
    let (first, second) = (&to_follower[0], &to_leader[0]);
    assert_eq!(second.method, "POST", "a 307 must not downgrade to GET");
    assert_eq!(second.path, SCHEDULER_PATH);
    assert_eq!(second.body, first.body, "the same body is re-sent");
    for header in ["content-type", "accept", "content-length"] {
        assert_eq!(second.header(header), first.header(header), "{header}");
    }
    let sent = Call::decode(second.body.as_slice()).unwrap();
    assert_eq!(sent.r#type, Some(call::Type::Subscribe as i32));
    assert_eq!(
        sent.framework_id.unwrap().value,
        "fw-1",
        "Call.framework_id copies framework_info.id"
    );

    let response = client.call(revive("fw-1")).await.unwrap();
    assert_eq!(response.status, 202);
    let to_leader = leader.wait_for_requests(2).await;
    assert_eq!(
        Call::decode(to_leader[1].body.as_slice()).unwrap().r#type,
        Some(call::Type::Revive as i32)
    );
    assert_eq!(
        follower.requests().len(),
        1,
        "the call went straight to the leader"
    );
}

// (h)
#[tokio::test]
async fn too_many_redirects_is_a_typed_error() {
    let looping = HttpStub::start(|request| {
        let location = format!("//{}{SCHEDULER_PATH}", request.local_addr);
        StubResponse::empty(307).header("Location", &location)
    })
    .await;
    let client = SchedulerClient::new(ClientConfig {
        max_redirects: 3,
        ..config(vec![looping.url()])
    })
    .unwrap();
    let err = client.subscribe(subscribe_body(None)).await.unwrap_err();
    match &err {
        ClientError::TooManyRedirects {
            max, first, last, ..
        } => {
            assert_eq!(*max, 3);
            assert_eq!(first.as_str(), format!("{}api/v1/scheduler", looping.url()));
            assert_eq!(last.as_str(), format!("{}api/v1/scheduler", looping.url()));
        }
        other => panic!("expected TooManyRedirects, got {other}"),
    }
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    assert_eq!(
        looping.requests().len(),
        4,
        "the first request and three hops"
    );
}

#[tokio::test]
async fn redirect_without_location_is_a_typed_error() {
    let stub = HttpStub::scripted(vec![StubResponse::empty(307)]).await;
    let err = client(vec![stub.url()])
        .subscribe(subscribe_body(None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::BadRedirect {
                status: 307,
                location: None,
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// (c) 503 and refused connections: retry, rotating through the masters.

#[tokio::test]
async fn subscribe_retries_503_on_the_next_master() {
    let recovering =
        HttpStub::start(|_| StubResponse::new(503, "Master has not finished recovery")).await;
    let (leader, _tx) = open_master(&[subscribed(15.0)]).await;
    let client = client(vec![recovering.url(), leader.url()]);
    let mut subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    assert_eq!(subscription.master, leader.url());
    assert_eq!(
        event_type(&next_event(&mut subscription.events).await),
        Some(event::Type::Subscribed)
    );
    assert_eq!(recovering.requests().len(), 1);
    assert_eq!(leader.requests().len(), 1);
}

#[tokio::test]
async fn subscribe_retries_503_then_succeeds_on_the_same_single_master() {
    let (response, tx) = StubResponse::stream(200);
    tx.send(framed(Encoding::Protobuf, &subscribed(15.0)))
        .unwrap();
    let stub = HttpStub::scripted(vec![
        StubResponse::new(503, "No leader elected"),
        stream_headers(response, Encoding::Protobuf),
    ])
    .await;
    let mut subscription = client(vec![stub.url()])
        .subscribe(subscribe_body(None))
        .await
        .unwrap();
    next_event(&mut subscription.events).await;
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
}

#[tokio::test]
async fn refused_connection_rotates_to_the_next_master() {
    let (leader, _tx) = open_master(&[subscribed(15.0)]).await;
    let client = client(vec![refused_url().await, leader.url()]);
    let subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    assert_eq!(subscription.master, leader.url());
}

#[tokio::test]
async fn persistent_503_gives_up_with_the_masters_text() {
    let stub = HttpStub::start(|_| StubResponse::new(503, "No leader elected")).await;
    let client = SchedulerClient::new(ClientConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            ..config(vec![]).retry
        },
        ..config(vec![stub.url()])
    })
    .unwrap();
    let err = client.subscribe(subscribe_body(None)).await.unwrap_err();
    let ClientError::GaveUp { attempts, last } = &err else {
        panic!("expected GaveUp, got {err}");
    };
    assert_eq!(*attempts, 3);
    assert!(
        matches!(&**last, ClientError::Status { status: 503, body, .. } if body == "No leader elected"),
        "{last}"
    );
    assert_eq!(stub.requests().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// (d) Error answers carry the master's text.

#[tokio::test]
async fn bad_request_body_is_surfaced_in_the_typed_error() {
    let text = "Failed to validate scheduler::Call: Expecting 'subscribe' to be present";
    // A Mesos 1.x master: its `/version` (asked to tell a master from other servers) says so.
    let stub = HttpStub::start(move |request| {
        if request.path == "/version" {
            return StubResponse::new(200, r#"{"version":"1.11.0"}"#);
        }
        StubResponse::new(400, text).header("Content-Type", "text/plain; charset=utf-8")
    })
    .await;
    let err = client(vec![stub.url()])
        .subscribe(subscribe_body(None))
        .await
        .unwrap_err();
    match &err {
        ClientError::Status {
            status, body, url, ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(body, text);
            assert_eq!(url.as_str(), format!("{}api/v1/scheduler", stub.url()));
        }
        other => panic!("expected Status, got {other}"),
    }
    assert!(err.to_string().contains(text), "{err}");
    assert!(err.to_string().contains(&stub.addr().to_string()), "{err}");
    let posts = stub
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1, "a 400 is not retried");
}

#[tokio::test]
async fn call_rejected_by_the_master_carries_its_text() {
    let (response, _tx) = StubResponse::stream(200);
    let stream = Mutex::new(Some(stream_headers(response, Encoding::Protobuf)));
    let stub = HttpStub::start(move |_| {
        stream
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| StubResponse::new(403, "Framework is not subscribed"))
    })
    .await;
    let client = client(vec![stub.url()]);
    let _subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    let err = client.call(revive("fw-1")).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Status { status: 403, body, .. } if body == "Framework is not subscribed"),
        "{err}"
    );
}

#[tokio::test]
async fn unauthorized_keeps_the_challenge_in_the_message() {
    let stub = HttpStub::start(|_| {
        StubResponse::new(401, "401 Unauthorized.")
            .header("WWW-Authenticate", "Basic realm=\"mesos-master-scheduler\"")
    })
    .await;
    let err = client(vec![stub.url()])
        .subscribe(subscribe_body(None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::AuthRequired {
                status: 401,
                with_credentials: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("--principal and --secret-file"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("Basic realm=\"mesos-master-scheduler\""),
        "{err}"
    );
}

#[tokio::test]
async fn subscription_without_stream_id_is_refused() {
    let stub = HttpStub::scripted(vec![
        StubResponse::chunks(200, vec![]).header("Content-Type", "application/x-protobuf"),
    ])
    .await;
    let err = client(vec![stub.url()])
        .subscribe(subscribe_body(None))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::MissingStreamId { .. }), "{err}");
}

#[tokio::test]
async fn stream_in_the_wrong_encoding_is_refused() {
    let stub = HttpStub::scripted(vec![stream_headers(
        StubResponse::chunks(200, vec![]),
        Encoding::Json,
    )])
    .await;
    let err = client(vec![stub.url()])
        .subscribe(subscribe_body(None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::UnexpectedContentType { .. }),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// (e) Heartbeat watchdog, and closing the connection.

#[tokio::test]
async fn silent_master_is_declared_dead_and_the_connection_closed() {
    let (master, _tx) = open_master(&[subscribed(0.2)]).await;
    let client = client(vec![master.url()]);
    let mut subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    assert_eq!(
        event_type(&next_event(&mut subscription.events).await),
        Some(event::Type::Subscribed)
    );
    let silent_since = Instant::now();
    let err = next_error(&mut subscription.events).await;
    match &err {
        ClientError::ConnectionDead {
            master: url,
            silent_for,
            misses,
        } => {
            assert_eq!(**url, master.url());
            assert_eq!(*misses, 3);
            assert_eq!(*silent_for, Duration::from_millis(600));
        }
        other => panic!("expected ConnectionDead, got {other}"),
    }
    assert!(
        silent_since.elapsed() >= Duration::from_millis(550),
        "fired too early"
    );
    // The connection is dropped at once, not when the EventStream is dropped.
    master.wait_for_client_close(1).await;
    assert!(subscription.events.next().await.is_none());
    assert!(matches!(
        client.call(revive("fw-1")).await,
        Err(ClientError::NotSubscribed)
    ));
}

#[tokio::test]
async fn dropping_the_event_stream_closes_the_connection() {
    let (master, _tx) = open_master(&[subscribed(15.0)]).await;
    let client = client(vec![master.url()]);
    let mut subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    next_event(&mut subscription.events).await;
    assert_eq!(client.stream_id().as_deref(), Some(STREAM_ID));
    drop(subscription);
    master.wait_for_client_close(1).await;
    assert_eq!(client.stream_id(), None);
}

// ---------------------------------------------------------------------------------------------
// (f) Credentials.

#[tokio::test]
async fn basic_auth_on_subscribe_and_call_and_the_secret_never_printed() {
    let secret = "correct-horse-battery-staple";
    let (master, _tx) = open_master(&[subscribed(15.0)]).await;
    let config = ClientConfig {
        credentials: Some(
            Credentials::new("reconciler".into(), Secret::new(secret.into())).unwrap(),
        ),
        ..config(vec![master.url()])
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("reconciler"), "{shown}");
    let client = SchedulerClient::new(config).unwrap();
    assert!(!format!("{client:?}").contains(secret));

    let _subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    client.call(revive("fw-1")).await.unwrap();
    let requests = master.wait_for_requests(2).await;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("reconciler:{secret}"))
    );
    for request in &requests {
        assert_eq!(request.header("authorization"), Some(expected.as_str()));
        assert_eq!(request.header_count("authorization"), 1);
    }
}

#[test]
fn secret_file_is_read_with_one_trailing_newline_trimmed() {
    let path = temp_file(b"s3cret\n");
    let creds = Credentials::from_file("reconciler".into(), &path).unwrap();
    assert_eq!(creds.secret().expose(), "s3cret");
    assert_eq!(creds.principal(), "reconciler");
    assert_eq!(format!("{:?}", creds.secret()), "<redacted>");
    std::fs::write(&path, b"s3cret\r\n").unwrap();
    assert_eq!(
        Credentials::from_file("p".into(), &path)
            .unwrap()
            .secret()
            .expose(),
        "s3cret"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_secret_files_are_refused_with_the_path() {
    for contents in [&b""[..], b"\n"] {
        let path = temp_file(contents);
        let err = Credentials::from_file("p".into(), &path).unwrap_err();
        assert!(
            matches!(err, CredentialsError::EmptySecretFile { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
    }
    let path = temp_file(b"pass:word\n");
    let err = Credentials::from_file("p".into(), &path).unwrap_err();
    assert!(err.to_string().contains("contains ':'"), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(
        !err.to_string().contains("word"),
        "the secret is not echoed: {err}"
    );
    std::fs::remove_file(&path).unwrap();

    let missing = std::env::temp_dir().join("mesos-reconciler-no-such-secret");
    let err = Credentials::from_file("p".into(), &missing).unwrap_err();
    assert!(
        err.to_string().contains("mesos-reconciler-no-such-secret"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// (g) Exact headers.

#[tokio::test]
async fn subscribe_and_call_carry_exactly_the_right_headers() {
    let (master, _tx) = open_master(&[subscribed(15.0)]).await;
    let client = client(vec![master.url()]);
    let _subscription = client.subscribe(subscribe_body(None)).await.unwrap();
    let response = client.call(revive("fw-1")).await.unwrap();
    assert_eq!(response.status, 202);
    assert!(response.body.is_empty());

    let requests = master.wait_for_requests(2).await;
    let (subscribe, call) = (&requests[0], &requests[1]);
    assert_eq!(subscribe.method, "POST");
    assert_eq!(subscribe.path, SCHEDULER_PATH);
    assert_eq!(
        subscribe.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(subscribe.header("accept"), Some("application/x-protobuf"));
    assert_eq!(
        subscribe.header_count("accept"),
        1,
        "no default */* next to it"
    );
    assert_eq!(subscribe.header("mesos-stream-id"), None);
    let sent = Call::decode(subscribe.body.as_slice()).unwrap();
    assert_eq!(sent.r#type, Some(call::Type::Subscribe as i32));
    assert_eq!(sent.framework_id, None, "no id on a first subscription");
    assert_eq!(
        sent.subscribe.unwrap().framework_info.name,
        "mesos-reconciler-test"
    );

    assert_eq!(call.method, "POST");
    assert_eq!(call.path, SCHEDULER_PATH);
    assert_eq!(call.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(call.header("mesos-stream-id"), Some(STREAM_ID));
    assert_eq!(call.header_count("mesos-stream-id"), 1);
    assert_ne!(
        call.connection, subscribe.connection,
        "calls never ride the stream connection"
    );
    assert_eq!(Call::decode(call.body.as_slice()).unwrap(), revive("fw-1"));
}

#[tokio::test]
async fn call_before_subscribing_or_of_type_subscribe_is_refused_locally() {
    let stub = HttpStub::start(|_| StubResponse::empty(202)).await;
    let client = client(vec![stub.url()]);
    assert!(matches!(
        client.call(revive("fw-1")).await,
        Err(ClientError::NotSubscribed)
    ));
    let subscribe = Call {
        r#type: Some(call::Type::Subscribe as i32),
        ..Default::default()
    };
    assert!(matches!(
        client.call(subscribe).await,
        Err(ClientError::SubscribeViaCall)
    ));
    assert!(stub.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Configuration.

#[test]
fn master_urls_must_be_http_or_https() {
    let err = SchedulerClient::new(ClientConfig::new(vec![
        Url::parse("zk://zk1:2181/mesos").unwrap(),
    ]))
    .unwrap_err();
    assert!(matches!(err, ClientError::InvalidMasterUrl { .. }), "{err}");
    assert!(err.to_string().contains("zk://"), "{err}");
    let err = SchedulerClient::new(ClientConfig::default()).unwrap_err();
    assert!(matches!(err, ClientError::NoMasters), "{err}");
}

const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBnjCCAUOgAwIBAgIUEyToEYfmEIBQbhM5pz4mZNLuHZQwCgYIKoZIzj0EAwIw
IzEhMB8GA1UEAwwYbWVzb3MtcmVjb25jaWxlciB0ZXN0IENBMCAXDTI2MTEyNjAw
NDgxMVoYDzIxMjYxMTAyMDA0ODExWjAjMSEwHwYDVQQDDBhtZXNvcy1yZWNvbmNp
bGVyIHRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATCq9UolX9dvq6G
2OT5DjG6U2w2GNEZE1VJYvkL52vY4FKTpTsHySuEvYLE4MDURs5y2scSa05L4Cpn
oeGnKsdOo1MwUTAdBgNVHQ4EFgQUgNuESJwwL+1AWOy0agI3hkEWOsgwHwYDVR0j
BBgwFoAUgNuESJwwL+1AWOy0agI3hkEWOsgwDwYDVR0TAQH/BAUwAwEB/zAKBggq
hkjOPQQDAgNJADBGAiEA2JYPHM7OzfEVH5+3eblwd4snMQZHKj/0a+yhSJ0IxtsC
IQCVLjLJ6IEoC1vUfEuPugz4OS/NoY4Ph3v7FOsfkgm8kw==
-----END CERTIFICATE-----
";

#[test]
fn ca_bundle_is_loaded_and_bad_bundles_name_their_path() {
    let https = || vec![Url::parse("https://127.0.0.1:5050/").unwrap()];
    let good = temp_file(TEST_CA.as_bytes());
    SchedulerClient::new(ClientConfig {
        ca_bundle: Some(good.clone()),
        ..ClientConfig::new(https())
    })
    .unwrap();
    std::fs::remove_file(&good).unwrap();

    let garbage = temp_file(b"this is not a certificate\n");
    let err = SchedulerClient::new(ClientConfig {
        ca_bundle: Some(garbage.clone()),
        ..ClientConfig::new(https())
    })
    .unwrap_err();
    assert!(matches!(err, ClientError::CaBundleInvalid { .. }), "{err}");
    assert!(
        err.to_string().contains(&garbage.display().to_string()),
        "{err}"
    );
    std::fs::remove_file(&garbage).unwrap();

    let missing = std::env::temp_dir().join("mesos-reconciler-no-such-ca.pem");
    let err = SchedulerClient::new(ClientConfig {
        ca_bundle: Some(missing),
        ..ClientConfig::new(https())
    })
    .unwrap_err();
    assert!(matches!(err, ClientError::CaBundleRead { .. }), "{err}");
    assert!(
        err.to_string().contains("mesos-reconciler-no-such-ca.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn https_masters_are_spoken_to_with_tls() {
    // No TLS server library is available to the tests, so this checks the client side only: an
    // https master with the custom CA gets a TLS ClientHello (record type 0x16), not plain HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first_byte = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        byte[0]
    });
    let ca = temp_file(TEST_CA.as_bytes());
    let client = SchedulerClient::new(ClientConfig {
        ca_bundle: Some(ca.clone()),
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..config(vec![Url::parse(&format!("https://{addr}/")).unwrap()])
    })
    .unwrap();
    let attempt = tokio::spawn(async move { client.subscribe(subscribe_body(None)).await });
    let byte = tokio::time::timeout(WAIT, first_byte)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(byte, 0x16, "a TLS handshake record");
    attempt.abort();
    std::fs::remove_file(&ca).unwrap();
}

// ---------------------------------------------------------------------------------------------
// (i) JSON encoding (needs the JSON mapping in `mesos::json`).

#[tokio::test]
async fn json_subscription_round_trip() {
    let json = Encoding::Json;
    let wire = [framed(json, &subscribed(15.0)), framed(json, &heartbeat())].concat();
    // Split in the middle of the first record, as a proxy might.
    let (a, b) = wire.split_at(wire.len() / 3);
    let response = stream_headers(
        StubResponse::chunks(200, vec![a.to_vec(), b.to_vec()]),
        json,
    );
    let master = HttpStub::start(fake_master(response)).await;
    let client = SchedulerClient::new(ClientConfig {
        encoding: json,
        ..config(vec![master.url()])
    })
    .unwrap();
    let mut subscription = client
        .subscribe(subscribe_body(Some("fw-json")))
        .await
        .unwrap();
    assert_eq!(
        event_type(&next_event(&mut subscription.events).await),
        Some(event::Type::Subscribed)
    );
    assert_eq!(
        event_type(&next_event(&mut subscription.events).await),
        Some(event::Type::Heartbeat)
    );

    let request = &master.wait_for_requests(1).await[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["type"], "SUBSCRIBE");
    assert_eq!(body["framework_id"]["value"], "fw-json");
    assert_eq!(
        body["subscribe"]["framework_info"]["id"]["value"],
        "fw-json"
    );
}

// ---------------------------------------------------------------------------------------------
// (j) The first minute against a wrong master (issue 14): each failure says what is wrong, in
// words, with the URL; the latest one is kept for the status page until a master answers.

/// A client that tries `masters` once each, quickly.
fn one_try(masters: Vec<Url>) -> SchedulerClient {
    SchedulerClient::new(ClientConfig {
        retry: RetryPolicy {
            max_attempts: 1,
            ..config(vec![]).retry
        },
        connect_timeout: Duration::from_secs(5),
        ..config(masters)
    })
    .unwrap()
}

/// Subscribes once and returns the error and the problem the client kept.
async fn failure(client: &SchedulerClient) -> (ClientError, String) {
    let err = tokio::time::timeout(WAIT, client.subscribe(subscribe_body(None)))
        .await
        .expect("the attempt ends")
        .unwrap_err();
    let problem = client.problem().expect("a failure is kept");
    (err, problem.message)
}

#[tokio::test]
async fn wrong_port_says_connection_refused_with_the_url_and_counts_attempts() {
    let refused = refused_url().await;
    let client = client(vec![refused.clone()]);
    let mut problems = client.watch_problems();
    let err = client.subscribe(subscribe_body(None)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::GaveUp { attempts: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("connection refused"), "{err}");
    let problem = client.problem().unwrap();
    assert_eq!(problem.url, refused.as_str());
    assert_eq!(problem.attempts, 5);
    assert!(
        problem.message.contains("connection refused"),
        "{}",
        problem.message
    );
    assert!(
        problem
            .message
            .contains(refused.as_str().trim_end_matches('/')),
        "{}",
        problem.message
    );
    assert!(problem.at_ms > 0);
    assert!(problems.has_changed().unwrap(), "the failure is published");
    assert_eq!(problems.borrow_and_update().as_ref(), Some(&problem));
}

/// Answers every name as the system resolver answers a name that does not exist, without asking
/// anyone: tests never send a DNS query off the machine.
struct NoSuchHost;

impl reqwest::dns::Resolve for NoSuchHost {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            Err(Box::new(std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            )) as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

#[tokio::test]
async fn wrong_host_says_dns_failure() {
    let client = SchedulerClient::new(ClientConfig {
        retry: RetryPolicy {
            max_attempts: 1,
            ..config(vec![]).retry
        },
        resolver: Some(mesos_reconciler::mesos::client::Resolver(
            std::sync::Arc::new(NoSuchHost),
        )),
        ..config(vec![
            Url::parse("http://nonexistent.invalid:5050/").unwrap(),
        ])
    })
    .unwrap();
    let (_, message) = failure(&client).await;
    assert!(message.contains("DNS failure"), "{message}");
    assert!(message.contains("nonexistent.invalid"), "{message}");
}

#[tokio::test]
async fn https_to_a_plain_http_server_says_tls_error() {
    // A plain HTTP server answers at once, without reading: the TLS client gets an HTTP
    // status line where it expects a handshake record.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let url = Url::parse(&format!("https://{addr}/")).unwrap();
    let (_, message) = failure(&one_try(vec![url])).await;
    assert!(message.contains("TLS error"), "{message}");
}

#[tokio::test]
async fn silent_server_says_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let client = SchedulerClient::new(ClientConfig {
        call_timeout: Duration::from_millis(300),
        ..config(vec![Url::parse(&format!("http://{addr}/")).unwrap()])
    })
    .unwrap();
    let err = client.subscribe(subscribe_body(None)).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    let message = client.problem().unwrap().message;
    assert!(message.contains("did not answer within"), "{message}");
}

#[tokio::test]
async fn http_error_is_logged_with_the_first_line_of_the_body() {
    let stub =
        HttpStub::start(|_| StubResponse::new(500, "Internal trouble\nstack line 1\nstack line 2"))
            .await;
    let (_, message) = failure(&one_try(vec![stub.url()])).await;
    assert!(
        message.ends_with("answered HTTP 500: Internal trouble"),
        "{message}"
    );
    assert!(message.contains(stub.url().as_str()), "{message}");
}

const HTML: &str = "<!DOCTYPE html>\n<html><body><h1>It works!</h1></body></html>";

#[tokio::test]
async fn web_server_with_html_404s_is_not_a_mesos_master() {
    let stub =
        HttpStub::start(|_| StubResponse::new(404, HTML).header("Content-Type", "text/html")).await;
    let (err, message) = failure(&one_try(vec![stub.url()])).await;
    assert!(matches!(err, ClientError::NotAMaster { .. }), "{err}");
    assert!(message.contains("is not a Mesos master"), "{message}");
    assert!(
        message.starts_with(&format!(
            "{} is not a Mesos master: /api/v1/scheduler answered HTTP 404 with an HTML page",
            stub.url()
        )),
        "{message}"
    );
    assert!(message.contains("/version answers HTTP 404"), "{message}");
    assert!(
        stub.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/version"),
        "the server was asked for /version"
    );
}

#[tokio::test]
async fn html_page_on_the_scheduler_endpoint_is_not_a_mesos_master() {
    let stub = HttpStub::start(|_| {
        StubResponse::new(200, HTML).header("Content-Type", "text/html; charset=utf-8")
    })
    .await;
    let client = one_try(vec![stub.url()]);
    let (err, message) = failure(&client).await;
    assert!(matches!(err, ClientError::NotAMaster { .. }), "{err}");
    assert!(message.contains("is not a Mesos master"), "{message}");
    assert!(message.contains("HTML"), "{message}");
    failure(&client).await;
    assert_eq!(
        client.problem().unwrap().attempts,
        2,
        "the same failure again is one more attempt"
    );
}

#[tokio::test]
async fn version_that_is_not_mesos_json_is_not_a_mesos_master() {
    let stub = HttpStub::start(|request| {
        if request.path == "/version" {
            StubResponse::new(200, r#"{"status":"ok"}"#).header("Content-Type", "application/json")
        } else {
            StubResponse::new(404, "Not Found")
        }
    })
    .await;
    let (err, message) = failure(&one_try(vec![stub.url()])).await;
    assert!(matches!(err, ClientError::NotAMaster { .. }), "{err}");
    assert!(message.contains("\"version\" field"), "{message}");
}

#[tokio::test]
async fn master_older_than_the_v1_api_is_named_with_its_version() {
    // Before 0.24 the endpoint does not exist (404); 0.24-0.28 had an experimental API that
    // refuses 1.x calls (400).
    for refusal in [404, 400] {
        let stub = HttpStub::start(move |request| {
            if request.path == "/version" {
                StubResponse::new(
                    200,
                    r#"{"build_date":"2016-04-09 22:40:57","build_time":1460241657.0,"build_user":"root","git_sha":"x","git_tag":"0.28.1","version":"0.28.1"}"#,
                )
            } else {
                StubResponse::empty(refusal)
            }
        })
        .await;
        let (err, message) = failure(&one_try(vec![stub.url()])).await;
        assert!(
            matches!(&err, ClientError::MasterTooOld { version, .. } if version == "0.28.1"),
            "{refusal}: {err}"
        );
        assert!(message.contains("runs Mesos 0.28.1"), "{message}");
        assert!(message.contains("since Mesos 1.0"), "{message}");
    }
}

#[tokio::test]
async fn forbidden_subscribe_names_the_credentials_options() {
    let stub = HttpStub::start(|_| StubResponse::new(403, "Forbidden")).await;
    let (err, message) = failure(&one_try(vec![stub.url()])).await;
    assert!(
        matches!(err, ClientError::AuthRequired { status: 403, .. }),
        "{err}"
    );
    assert!(
        message.contains("requires framework authentication"),
        "{message}"
    );
    assert!(
        message.contains("--principal") && message.contains("--secret-file"),
        "{message}"
    );
}

#[tokio::test]
async fn redirect_loop_names_every_address_tried() {
    let stub = HttpStub::start(|request| {
        StubResponse::empty(307).header(
            "Location",
            &format!("//{}{SCHEDULER_PATH}", request.local_addr),
        )
    })
    .await;
    let client = SchedulerClient::new(ClientConfig {
        max_redirects: 2,
        ..config(vec![stub.url()])
    })
    .unwrap();
    let (err, message) = failure(&client).await;
    let ClientError::TooManyRedirects { tried, .. } = &err else {
        panic!("expected TooManyRedirects, got {err}");
    };
    assert_eq!(tried.len(), 3, "the first post and two hops");
    assert!(message.contains("addresses tried"), "{message}");
    assert!(
        message.contains(&format!("{}api/v1/scheduler", stub.url())),
        "{message}"
    );
}

#[tokio::test]
async fn redirect_to_an_unreachable_leader_names_both_addresses() {
    let leader = refused_url().await;
    let location = format!("//{}{SCHEDULER_PATH}", leader.authority());
    let stub =
        HttpStub::start(move |_| StubResponse::empty(307).header("Location", &location)).await;
    let client = client(vec![stub.url()]);
    let err = client.subscribe(subscribe_body(None)).await.unwrap_err();
    let ClientError::GaveUp { attempts: 5, last } = &err else {
        panic!("an unreachable leader is retried, then given up: {err}");
    };
    assert!(
        matches!(**last, ClientError::UnreachableLeader { .. }),
        "{last}"
    );
    let message = client.problem().unwrap().message;
    assert!(
        message.contains(&format!("redirected to the leader {leader}")),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");
    assert!(
        message.contains(&format!("addresses tried: {}api/v1/scheduler", stub.url())),
        "{message}"
    );
}

#[tokio::test]
async fn a_master_that_answers_clears_the_problem() {
    let (leader, _tx) = open_master(&[subscribed(15.0)]).await;
    let client = client(vec![refused_url().await, leader.url()]);
    let mut problems = client.watch_problems();
    client.subscribe(subscribe_body(None)).await.unwrap();
    assert_eq!(
        client.problem(),
        None,
        "the refused first master is forgotten once one answers"
    );
    assert!(problems.has_changed().unwrap());
    assert_eq!(*problems.borrow_and_update(), None);
}
