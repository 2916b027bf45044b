//! Helpers for the dev cluster master tests: plain reqwest for calls, a tiny RecordIO reader of
//! its own (so the master is checked independently of the crate's client and decoder), and
//! builders for the calls the tests send.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind, DevCluster, DevClusterConfig};
use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::{Call, Event, call, event};
use reqwest::StatusCode;

/// How long any single wait may take before the test fails: generous for a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub use pb::framework_info::capability::Type as Cap;

/// A configuration with fast allocation and update retries, one virtual agent.
pub fn config() -> DevClusterConfig {
    DevClusterConfig {
        allocation_interval: Duration::from_millis(20),
        status_retry_initial: Duration::from_millis(300),
        status_retry_max: Duration::from_secs(2),
        reregister_delay: Duration::from_secs(60),
        ..DevClusterConfig::default()
    }
}

pub fn agent(resources: &str, attributes: &str) -> AgentSpec {
    AgentSpec::parse(AgentSpecKind::Virtual, resources, attributes).unwrap()
}

pub async fn start(config: DevClusterConfig) -> DevCluster {
    DevCluster::start(config).await.expect("dev cluster starts")
}

pub fn client() -> reqwest::Client {
    mesos_reconciler::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn framework_info(name: &str, caps: &[Cap]) -> pb::FrameworkInfo {
    pb::FrameworkInfo {
        user: "tester".into(),
        name: name.into(),
        capabilities: caps
            .iter()
            .map(|c| pb::framework_info::Capability {
                r#type: Some(*c as i32),
            })
            .collect(),
        ..Default::default()
    }
}

pub fn subscribe_call(info: pb::FrameworkInfo) -> Call {
    Call {
        framework_id: info.id.clone(),
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: info,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A call of `ty` for the framework, with nothing else set.
pub fn call_of(framework_id: &str, ty: call::Type) -> Call {
    Call {
        framework_id: Some(pb::FrameworkId {
            value: framework_id.into(),
        }),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

/// GETs a JSON document.
pub async fn get_json(url: &str) -> (StatusCode, serde_json::Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// POSTs a JSON document; the answer as JSON (`Null` when it is not JSON).
pub async fn post_json(url: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    let response = client()
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// POSTs raw bytes to the scheduler endpoint.
pub async fn post_raw(
    url: &str,
    content_type: Option<&str>,
    stream_id: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    post_raw_with(&client(), url, content_type, stream_id, body).await
}

/// [`post_raw`] on a given client (keeping its connections).
pub async fn post_raw_with(
    http: &reqwest::Client,
    url: &str,
    content_type: Option<&str>,
    stream_id: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut request = http.post(format!("{url}/api/v1/scheduler")).body(body);
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    if let Some(id) = stream_id {
        request = request.header("Mesos-Stream-Id", id);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// POSTs a non-SUBSCRIBE call.
pub async fn post(
    url: &str,
    encoding: Encoding,
    stream_id: Option<&str>,
    call: &Call,
) -> (StatusCode, String) {
    post_raw(
        url,
        Some(encoding.content_type()),
        stream_id,
        encoding.encode(call),
    )
    .await
}

/// The event stream of one subscription, read with a minimal RecordIO decoder.
pub struct Events {
    encoding: Encoding,
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: BytesMut,
    /// Raw payloads of every record read so far, for byte-level checks.
    pub raw: Vec<Vec<u8>>,
    /// OFFERS events skipped while waiting for something else; `next_offers` returns them
    /// first, so an offer that arrived early (the order varies with load) is not lost.
    stashed_offers: std::collections::VecDeque<Event>,
}

impl Events {
    pub fn new(encoding: Encoding, response: reqwest::Response) -> Self {
        Events {
            encoding,
            body: Box::pin(response.bytes_stream()),
            buf: BytesMut::new(),
            raw: Vec::new(),
            stashed_offers: std::collections::VecDeque::new(),
        }
    }

    /// The next event; `None` at the end of the stream. Fails the test after [`DEADLINE`].
    pub async fn next(&mut self) -> Option<Event> {
        let payload = tokio::time::timeout(DEADLINE, self.next_record())
            .await
            .expect("an event (or the end of the stream) within the deadline")?;
        self.raw.push(payload.clone());
        Some(
            self.encoding
                .decode::<Event>(&payload)
                .expect("the master sends decodable events"),
        )
    }

    async fn next_record(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(newline) = self.buf.iter().position(|b| *b == b'\n') {
                let digits = std::str::from_utf8(&self.buf[..newline]).expect("ascii length");
                let len: usize = digits.parse().expect("a decimal record length");
                assert!(len > 0, "the master never writes empty records");
                if self.buf.len() >= newline + 1 + len {
                    self.buf.advance(newline + 1);
                    return Some(self.buf.split_to(len).to_vec());
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(_)) | None => {
                    assert!(self.buf.is_empty(), "stream ended inside a record");
                    return None;
                }
            }
        }
    }

    /// The next event of this type, skipping others (heartbeats, offers...).
    pub async fn next_of(&mut self, ty: event::Type) -> Event {
        if ty == event::Type::Offers
            && let Some(e) = self.stashed_offers.pop_front()
        {
            return e;
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {ty:?} event within the deadline"
            );
            let e = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended while waiting for {ty:?}"));
            if e.r#type == Some(ty as i32) {
                return e;
            }
            if e.r#type == Some(event::Type::Offers as i32) {
                self.stashed_offers.push_back(e);
            }
        }
    }

    pub async fn next_update(&mut self) -> pb::TaskStatus {
        self.next_of(event::Type::Update)
            .await
            .update
            .unwrap()
            .status
    }

    /// The next update of one task, skipping others.
    pub async fn update_of(&mut self, task_id: &str) -> pb::TaskStatus {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no update of {task_id} within the deadline"
            );
            let status = self.next_update().await;
            if status.task_id.value == task_id {
                return status;
            }
        }
    }

    pub async fn next_offers(&mut self) -> Vec<pb::Offer> {
        self.next_of(event::Type::Offers)
            .await
            .offers
            .unwrap()
            .offers
    }

    /// Reads `count` heartbeats and returns every other event seen meanwhile: with a short
    /// heartbeat interval this is a clock that needs no sleep.
    pub async fn during_heartbeats(&mut self, count: usize) -> Vec<Event> {
        let mut others = Vec::new();
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while seen < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} heartbeats did not arrive within the deadline"
            );
            let e = self
                .next()
                .await
                .expect("stream open while counting heartbeats");
            if e.r#type == Some(event::Type::Heartbeat as i32) {
                seen += 1;
            } else {
                others.push(e);
            }
        }
        others
    }

    /// Waits for the end of the stream, returning the events before it.
    pub async fn until_end(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }
}

/// One subscribed framework: its id, stream id and events.
pub struct Sub {
    pub url: String,
    pub encoding: Encoding,
    pub framework_id: String,
    pub stream_id: String,
    pub subscribed: event::Subscribed,
    pub events: Events,
    /// For calls: one client, so calls reuse connections as a real scheduler's would.
    http: reqwest::Client,
}

/// Opens a subscription stream and returns the response (status and headers unchecked).
pub async fn subscribe_response(url: &str, encoding: Encoding, call: &Call) -> reqwest::Response {
    client()
        .post(format!("{url}/api/v1/scheduler"))
        .header("Content-Type", encoding.content_type())
        .header("Accept", encoding.content_type())
        .body(encoding.encode(call))
        .send()
        .await
        .unwrap()
}

/// SUBSCRIBEs and checks the start of the stream: 200, headers, SUBSCRIBED, HEARTBEAT.
pub async fn subscribe(url: &str, encoding: Encoding, info: pb::FrameworkInfo) -> Sub {
    subscribe_with(url, encoding, &subscribe_call(info)).await
}

/// [`subscribe`] with a SUBSCRIBE call of the test's own (e.g. with `suppressed_roles`).
pub async fn subscribe_with(url: &str, encoding: Encoding, call: &Call) -> Sub {
    let response = subscribe_response(url, encoding, call).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        encoding.content_type(),
        "event encoding"
    );
    assert!(response.headers().get("content-length").is_none());
    let stream_id = response.headers()["mesos-stream-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut events = Events::new(encoding, response);
    let first = events.next().await.expect("SUBSCRIBED");
    assert_eq!(
        first.r#type,
        Some(event::Type::Subscribed as i32),
        "{first:?}"
    );
    let subscribed = first.subscribed.unwrap();
    let second = events.next().await.expect("HEARTBEAT");
    assert_eq!(second.r#type, Some(event::Type::Heartbeat as i32));
    Sub {
        url: url.to_owned(),
        encoding,
        framework_id: subscribed.framework_id.value.clone(),
        stream_id,
        subscribed,
        events,
        http: client(),
    }
}

impl Sub {
    pub async fn call(&self, call: &Call) -> (StatusCode, String) {
        post_raw_with(
            &self.http,
            &self.url,
            Some(self.encoding.content_type()),
            Some(&self.stream_id),
            self.encoding.encode(call),
        )
        .await
    }

    /// Sends a call that must be accepted (202).
    pub async fn send(&self, call: Call) {
        let (status, body) = self.call(&call).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    pub fn call_of(&self, ty: call::Type) -> Call {
        call_of(&self.framework_id, ty)
    }

    pub async fn decline(&self, offer_ids: &[&pb::OfferId], refuse_seconds: Option<f64>) {
        let mut c = self.call_of(call::Type::Decline);
        c.decline = Some(call::Decline {
            offer_ids: offer_ids.iter().map(|o| (*o).clone()).collect(),
            filters: refuse_seconds.map(|r| pb::Filters {
                refuse_seconds: Some(r),
            }),
        });
        self.send(c).await;
    }

    pub async fn launch(&self, offer_ids: &[&pb::OfferId], tasks: Vec<pb::TaskInfo>) {
        self.accept(offer_ids, vec![launch_op(tasks)], Some(0.0))
            .await;
    }

    pub async fn accept(
        &self,
        offer_ids: &[&pb::OfferId],
        operations: Vec<pb::offer::Operation>,
        refuse_seconds: Option<f64>,
    ) {
        let mut c = self.call_of(call::Type::Accept);
        c.accept = Some(call::Accept {
            offer_ids: offer_ids.iter().map(|o| (*o).clone()).collect(),
            operations,
            filters: refuse_seconds.map(|r| pb::Filters {
                refuse_seconds: Some(r),
            }),
        });
        self.send(c).await;
    }

    pub async fn acknowledge(&self, status: &pb::TaskStatus) {
        let mut c = self.call_of(call::Type::Acknowledge);
        c.acknowledge = Some(call::Acknowledge {
            agent_id: status.agent_id.clone().unwrap(),
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone().unwrap(),
        });
        self.send(c).await;
    }

    pub async fn kill(&self, task_id: &str, agent_id: Option<&str>) {
        let mut c = self.call_of(call::Type::Kill);
        c.kill = Some(call::Kill {
            task_id: pb::TaskId {
                value: task_id.into(),
            },
            agent_id: agent_id.map(|a| pb::AgentId { value: a.into() }),
            kill_policy: None,
        });
        self.send(c).await;
    }

    pub async fn reconcile(&self, tasks: &[(&str, Option<&str>)]) {
        let mut c = self.call_of(call::Type::Reconcile);
        c.reconcile = Some(call::Reconcile {
            tasks: tasks
                .iter()
                .map(|(t, a)| call::reconcile::Task {
                    task_id: pb::TaskId { value: (*t).into() },
                    agent_id: a.map(|a| pb::AgentId { value: a.into() }),
                })
                .collect(),
        });
        self.send(c).await;
    }

    /// Waits for the task to be RUNNING, acknowledging every update with a uuid on the way.
    pub async fn until_running(&mut self, task_id: &str) -> pb::TaskStatus {
        loop {
            let status = self.events.update_of(task_id).await;
            if status.uuid.is_some() {
                self.acknowledge(&status).await;
            }
            if status.state == pb::TaskState::TaskRunning as i32 {
                return status;
            }
            assert!(
                status.state == pb::TaskState::TaskStarting as i32
                    || status.state == pb::TaskState::TaskStaging as i32,
                "unexpected {status:?}"
            );
        }
    }
}

pub fn launch_op(tasks: Vec<pb::TaskInfo>) -> pb::offer::Operation {
    pb::offer::Operation {
        r#type: Some(pb::offer::operation::Type::Launch as i32),
        launch: Some(pb::offer::operation::Launch { task_infos: tasks }),
        ..Default::default()
    }
}

pub fn ports(begin: u64, end: u64) -> pb::Resource {
    pb::Resource {
        name: "ports".into(),
        r#type: pb::value::Type::Ranges as i32,
        ranges: Some(pb::value::Ranges {
            range: vec![pb::value::Range { begin, end }],
        }),
        ..Default::default()
    }
}

/// A command task using cpus 0.1 and mem 32 on the agent of `offer`.
pub fn task(id: &str, offer: &pb::Offer) -> pb::TaskInfo {
    pb::TaskInfo {
        name: format!("task {id}"),
        task_id: pb::TaskId { value: id.into() },
        agent_id: offer.agent_id.clone(),
        resources: vec![
            pb::Resource::scalar("cpus", 0.1),
            pb::Resource::scalar("mem", 32.0),
        ],
        command: Some(pb::CommandInfo {
            value: Some("sleep 1000".into()),
            // Set explicitly: the JSON encoding writes this declared default anyway, so the
            // TaskInfo the master receives is the same in both encodings.
            shell: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn state_of(status: &pb::TaskStatus) -> pb::TaskState {
    pb::TaskState::try_from(status.state).unwrap()
}

pub fn reason_of(status: &pb::TaskStatus) -> Option<pb::task_status::Reason> {
    status
        .reason
        .map(|r| pb::task_status::Reason::try_from(r).unwrap())
}

pub fn is_master_generated(status: &pb::TaskStatus) -> bool {
    status.uuid.is_none() && status.source == Some(pb::task_status::Source::Master as i32)
}

/// Polls `/master/state` until `pred` holds.
pub async fn wait_state(
    cluster: &DevCluster,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let state = cluster.state().await;
        if pred(&state) {
            return state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; state: {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
