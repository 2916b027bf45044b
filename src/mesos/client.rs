//! The v1 scheduler HTTP client (API notes §1-§4, §7, §13, §14): SUBSCRIBE and its event stream,
//! every other call on separate connections, 307 redirects followed by hand (scheme-less
//! `Location`), 503 and refused connections retried with jittered backoff while rotating through
//! the configured masters, HTTP Basic credentials on every request, and TLS with a custom CA.
//!
//! The client knows nothing of the controller's state machine: it does not resubscribe by itself.
//! When the event stream ends with an error, the caller decides when to call
//! [`SchedulerClient::subscribe`] again. Submodules: `config` (what to connect to and how),
//! `stream` (the event stream and its heartbeat watchdog) and `get` (GETs of the master's
//! read-only operator endpoints).

mod config;
mod get;
mod report;
mod stream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;

pub use config::{
    ClientConfig, Credentials, CredentialsError, Gate, MasterListError, MasterSource, Resolver,
    RetryPolicy, Secret, parse_master, parse_master_source, parse_masters,
};
pub use report::{FailureLog, LogLine, MasterProblem, REPEAT_EVERY, cause};
pub use stream::{DEFAULT_HEARTBEAT_INTERVAL, EventStream};

use crate::mesos::encoding::{DecodeError, Encoding};
use crate::mesos::proto::v1::scheduler::{Call, call};
use crate::mesos::recordio::RecordIoError;
use crate::zk::detector::{Detected, LeaderWatch};

/// Path of the scheduler endpoint below a master's base URL.
pub const SCHEDULER_PATH: &str = "api/v1/scheduler";
/// Header carrying the subscription's stream id (names are case-insensitive on the wire).
pub const STREAM_ID_HEADER: &str = "mesos-stream-id";

/// The longest error body kept from a master's answer; real ones are a line or two.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Something went wrong between us and a master. Every variant names the master URL involved.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no mesos master url configured")]
    NoMasters,
    /// `--master zk://...`: ZooKeeper names no leading master right now (or cannot be reached).
    /// Retried like a refused connection.
    #[error("{why}")]
    NoLeader { zk: String, why: String },
    /// The client's gate refused the request: this process must not talk to the master now.
    #[error("not sent: {0}")]
    Fenced(String),
    #[error("invalid master url {url:?}: {reason}")]
    InvalidMasterUrl { url: String, reason: String },
    #[error("cannot read the ca bundle {}", path.display())]
    CaBundleRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ca bundle {} is not a valid pem certificate bundle", path.display())]
    CaBundleInvalid {
        path: PathBuf,
        #[source]
        source: Option<reqwest::Error>,
    },
    #[error("the credentials cannot be sent in an http authorization header")]
    CredentialsNotAHeader,
    #[error("cannot set up the http client")]
    HttpClient(#[source] reqwest::Error),
    #[error("not subscribed: calls need the stream id of a live subscription")]
    NotSubscribed,
    #[error("SUBSCRIBE cannot be sent as an ordinary call; use subscribe()")]
    SubscribeViaCall,
    #[error("could not connect to master {url}: {}", report::transport_cause(.source))]
    Connect {
        url: Box<Url>,
        #[source]
        source: reqwest::Error,
    },
    #[error("request to master {url} failed: {}", report::transport_cause(.source))]
    Request {
        url: Box<Url>,
        #[source]
        source: reqwest::Error,
    },
    #[error("master {url} did not answer within {after:?}")]
    Timeout { url: Box<Url>, after: Duration },
    /// A non-success answer, with the master's text. For 401 the `WWW-Authenticate` challenge is
    /// kept too, as it says which realm rejected the credentials.
    #[error("master {url} answered {status}: {body:?}{}", challenge_note(.challenge))]
    Status {
        status: u16,
        body: String,
        url: Box<Url>,
        challenge: Option<String>,
    },
    #[error("master {url} redirected ({status}) to an unusable location {location:?}")]
    BadRedirect {
        url: Box<Url>,
        status: u16,
        location: Option<String>,
    },
    #[error(
        "more than {max} redirects starting at master {first}; the last one pointed to {last} \
         (addresses tried: {}); the masters disagree about who leads",
        list(.tried)
    )]
    TooManyRedirects {
        max: usize,
        first: Box<Url>,
        last: Box<Url>,
        /// Every URL posted to, in order.
        tried: Vec<Url>,
    },
    /// A master redirected to a leader that cannot be reached.
    #[error(
        "master {first} redirected to the leader {leader}, which cannot be reached: {} \
         (addresses tried: {}); the leader's advertised address (its --hostname or --ip) \
         must be reachable from here",
        report::cause(.source),
        list(.tried)
    )]
    UnreachableLeader {
        first: Box<Url>,
        leader: Box<Url>,
        tried: Vec<Url>,
        #[source]
        source: Box<ClientError>,
    },
    /// The server answered, but not as a Mesos master would.
    #[error("{url} is not a Mesos master: {detail}")]
    NotAMaster { url: Box<Url>, detail: String },
    /// 401 or 403 on SUBSCRIBE.
    #[error(
        "master {url} answered {status} ({body:?}{}): {}",
        challenge_note(.challenge),
        auth_advice(*.with_credentials)
    )]
    AuthRequired {
        url: Box<Url>,
        status: u16,
        body: String,
        challenge: Option<String>,
        with_credentials: bool,
    },
    /// The server is a Mesos master without the v1 scheduler API (before Mesos 1.0).
    #[error(
        "master {url} runs Mesos {version}, which has no v1 scheduler HTTP API \
         (it exists since Mesos 1.0); upgrade the master"
    )]
    MasterTooOld { url: Box<Url>, version: String },
    /// Every attempt met a 503 or a refused connection; `last` is the final one's error.
    #[error("gave up after {attempts} attempts: {}", report::cause(.last))]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<ClientError>,
    },
    #[error("master {url} accepted the subscription without a usable Mesos-Stream-Id header")]
    MissingStreamId { url: Box<Url> },
    #[error("master {url} answered the subscription with content type {found:?}, not {expected}")]
    UnexpectedContentType {
        url: Box<Url>,
        expected: &'static str,
        found: String,
    },
    /// The heartbeat watchdog fired: no event for `misses` heartbeat intervals.
    #[error(
        "no event from master {master} for {silent_for:?} ({misses} heartbeat intervals); connection presumed dead"
    )]
    ConnectionDead {
        master: Box<Url>,
        silent_for: Duration,
        misses: u32,
    },
    /// EOF on the event stream without a preceding ERROR event.
    #[error("master {master} closed the event stream")]
    StreamClosed { master: Box<Url> },
    #[error(
        "master {master} closed the event stream in the middle of a record ({buffered} bytes pending)"
    )]
    StreamTruncated { master: Box<Url>, buffered: usize },
    #[error("reading the event stream from master {master} failed")]
    StreamRead {
        master: Box<Url>,
        #[source]
        source: reqwest::Error,
    },
    #[error("the event stream from master {master} is not valid recordio")]
    RecordIo {
        master: Box<Url>,
        #[source]
        source: RecordIoError,
    },
    #[error("cannot decode an event from master {master}")]
    Decode {
        master: Box<Url>,
        #[source]
        source: DecodeError,
    },
}

/// A live subscription: the stream id the master assigned, the master serving it (the leader,
/// after redirects; as `scheme://host:port/`) and its events.
#[derive(Debug)]
pub struct Subscription {
    pub stream_id: String,
    pub master: Url,
    pub events: EventStream,
}

/// A master's successful answer to a call: 202 with an empty body for most calls, 200 with a
/// body for the synchronous ones (UPDATE_FRAMEWORK, RECONCILE_OPERATIONS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResponse {
    pub status: u16,
    pub body: Bytes,
}

/// The scheduler client. Cheap to clone; clones share the current subscription.
#[derive(Clone)]
pub struct SchedulerClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The scheduler endpoint of each configured master, in order (empty with `leader`).
    endpoints: Vec<Url>,
    /// The leading master as detected in ZooKeeper, instead of `endpoints`.
    leader: Option<LeaderWatch>,
    gate: Option<Gate>,
    encoding: Encoding,
    principal: Option<String>,
    /// Precomputed and marked sensitive, so no debug output of reqwest or hyper shows it.
    authorization: Option<HeaderValue>,
    /// Used only for SUBSCRIBE; never pools connections, so each stream has its own and no call
    /// ever travels on a stream's connection.
    stream_http: reqwest::Client,
    call_http: reqwest::Client,
    max_redirects: usize,
    call_timeout: Duration,
    heartbeat_misses: u32,
    max_record_len: usize,
    retry: RetryPolicy,
    state: Arc<Mutex<SharedState>>,
    /// The latest failure to reach a master (`None` once one answers), for the controller.
    problems: tokio::sync::watch::Sender<Option<MasterProblem>>,
}

/// What clones of the client and the live event stream share.
#[derive(Debug, Default)]
struct SharedState {
    /// Index in `endpoints` where the next SUBSCRIBE starts: the one that last worked.
    next_master: usize,
    generation: u64,
    current: Option<CurrentSubscription>,
    /// Failed SUBSCRIBE attempts since the last success, for the log and the status page.
    failures: FailureLog,
}

#[derive(Debug)]
struct CurrentSubscription {
    generation: u64,
    stream_id: HeaderValue,
    /// The exact URL that accepted the SUBSCRIBE; calls go there.
    endpoint: Url,
}

impl std::fmt::Debug for SchedulerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints: Vec<&str> = self.inner.endpoints.iter().map(Url::as_str).collect();
        f.debug_struct("SchedulerClient")
            .field("endpoints", &endpoints)
            .field("encoding", &self.inner.encoding)
            .field("principal", &self.inner.principal)
            .field("leader", &self.leader().map(String::from))
            .finish_non_exhaustive()
    }
}

impl SchedulerClient {
    /// Validates the configuration, reads the CA bundle and sets up the two HTTP clients. Does not
    /// connect to anything.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        if config.masters.is_empty() && config.leader.is_none() {
            return Err(ClientError::NoMasters);
        }
        let endpoints = config
            .masters
            .iter()
            .map(scheduler_endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        let certs = match &config.ca_bundle {
            Some(path) => read_ca_bundle(path)?,
            None => Vec::new(),
        };
        let authorization = config
            .credentials
            .as_ref()
            .map(basic_authorization)
            .transpose()?;
        Ok(SchedulerClient {
            inner: Arc::new(Inner {
                endpoints,
                leader: config.leader.clone(),
                gate: config.gate.clone(),
                encoding: config.encoding,
                principal: config
                    .credentials
                    .as_ref()
                    .map(|c| c.principal().to_owned()),
                authorization,
                stream_http: http_client(&config, &certs, Connection::Stream)?,
                call_http: http_client(&config, &certs, Connection::Calls)?,
                max_redirects: config.max_redirects,
                call_timeout: config.call_timeout,
                heartbeat_misses: config.heartbeat_misses,
                max_record_len: config.max_record_len,
                retry: config.retry,
                state: Arc::new(Mutex::new(SharedState::default())),
                problems: tokio::sync::watch::Sender::new(None),
            }),
        })
    }

    /// Sends SUBSCRIBE (with `Call.framework_id` copied from `framework_info.id`, so a
    /// re-subscription carries the id in both places as the master demands) on a new connection,
    /// starting at the master that last worked, and returns the event stream. The answering
    /// master and stream id become the target of later [`call`](Self::call)s. A previous
    /// subscription of this client is forgotten (its stream should be dropped).
    ///
    /// Failures are logged here, once at WARN with the URL and the cause, then at most once per
    /// [`REPEAT_EVERY`] while they last, and the first success after them at INFO; see
    /// [`problem`](Self::problem).
    pub async fn subscribe(&self, subscribe: call::Subscribe) -> Result<Subscription, ClientError> {
        let call = Call {
            framework_id: subscribe.framework_info.id.clone(),
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(subscribe),
            ..Default::default()
        };
        let request = Outgoing {
            kind: "SUBSCRIBE",
            body: Bytes::from(self.inner.encoding.encode(&call)),
            stream_id: None,
            subscribe: true,
        };
        // `send` notes its failures itself, per attempt, as they happen.
        let (response, endpoint) = self.send(Start::Rotate, &request).await?;
        let result = self.open_stream(response, endpoint).await;
        match &result {
            Ok(subscription) => self.note_success(&subscription.master),
            Err(error) => self.note_failure(error),
        }
        result
    }

    /// The latest failure to reach a master since one last answered a SUBSCRIBE.
    pub fn problem(&self) -> Option<MasterProblem> {
        self.state().failures.problem().cloned()
    }

    /// Changes of [`problem`](Self::problem), as they happen.
    pub fn watch_problems(&self) -> tokio::sync::watch::Receiver<Option<MasterProblem>> {
        self.inner.problems.subscribe()
    }

    /// Checks a SUBSCRIBE's 2xx answer and makes it the current subscription.
    async fn open_stream(
        &self,
        response: reqwest::Response,
        endpoint: Url,
    ) -> Result<Subscription, ClientError> {
        if response.status() != StatusCode::OK {
            return Err(status_error(response, endpoint).await);
        }
        if is_html(&response) {
            return Err(ClientError::NotAMaster {
                detail: "it answered the scheduler endpoint with an HTML page".to_owned(),
                url: Box::new(endpoint),
            });
        }
        let stream_id = response
            .headers()
            .get(STREAM_ID_HEADER)
            .filter(|v| !v.is_empty())
            .and_then(|v| Some((v.clone(), v.to_str().ok()?.to_owned())));
        let Some((stream_id_header, stream_id)) = stream_id else {
            return Err(ClientError::MissingStreamId {
                url: Box::new(endpoint),
            });
        };
        check_content_type(&response, &endpoint, self.inner.encoding)?;

        let master = origin(&endpoint);
        let generation = {
            let mut state = self.state();
            state.generation += 1;
            state.current = Some(CurrentSubscription {
                generation: state.generation,
                stream_id: stream_id_header,
                endpoint,
            });
            state.generation
        };
        tracing::debug!(%master, %stream_id, "subscribed");
        let guard = stream::SubscriptionGuard {
            state: Arc::clone(&self.inner.state),
            generation,
        };
        let events = EventStream::new(
            Box::pin(response.bytes_stream()),
            self.inner.encoding,
            master.clone(),
            self.inner.heartbeat_misses,
            self.inner.max_record_len,
            Some(guard),
        );
        Ok(Subscription {
            stream_id,
            master,
            events,
        })
    }

    /// Sends any call but SUBSCRIBE to the master holding the current subscription, with its
    /// `Mesos-Stream-Id`. Any 2xx is success. 503 and refused connections are retried against
    /// the same master (the stream id is only valid there, so rotating would not help); a 307 is
    /// followed. Fails with [`ClientError::NotSubscribed`] when there is no live subscription.
    /// The subscription counts as live from the SUBSCRIBE response headers on; callers should
    /// still wait for the SUBSCRIBED event, as the master only accepts calls after it.
    pub async fn call(&self, call: Call) -> Result<CallResponse, ClientError> {
        let kind = call_type_name(&call);
        if call.r#type == Some(call::Type::Subscribe as i32) {
            return Err(ClientError::SubscribeViaCall);
        }
        let (endpoint, stream_id) = {
            let state = self.state();
            let current = state.current.as_ref().ok_or(ClientError::NotSubscribed)?;
            (current.endpoint.clone(), current.stream_id.clone())
        };
        let request = Outgoing {
            kind,
            body: Bytes::from(self.inner.encoding.encode(&call)),
            stream_id: Some(stream_id),
            subscribe: false,
        };
        let (response, url) = self.send(Start::Fixed(endpoint), &request).await?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|source| ClientError::Request {
                url: Box::new(url),
                source,
            })?;
        Ok(CallResponse { status, body })
    }

    /// The stream id of the current subscription, if one is live.
    pub fn stream_id(&self) -> Option<String> {
        let state = self.state();
        let current = state.current.as_ref()?;
        current.stream_id.to_str().ok().map(str::to_owned)
    }

    /// The master (`scheme://host:port/`) holding the current subscription, if one is live.
    pub fn leader(&self) -> Option<Url> {
        self.state().current.as_ref().map(|c| origin(&c.endpoint))
    }

    /// The encoding of calls and events.
    pub fn encoding(&self) -> Encoding {
        self.inner.encoding
    }

    /// With `--master zk://...`, the detection the client follows; a session watches it to drop
    /// a stream whose master no longer leads.
    pub fn leader_watch(&self) -> Option<LeaderWatch> {
        self.inner.leader.clone()
    }

    /// The scheduler endpoints a request without a subscription walks: the configured masters,
    /// or the one ZooKeeper says leads. Fails (to be retried) while ZooKeeper names none.
    fn targets(&self) -> Result<Vec<Url>, ClientError> {
        let Some(watch) = &self.inner.leader else {
            return Ok(self.inner.endpoints.clone());
        };
        let detected = watch.rx.borrow().clone();
        match detected {
            Detected::Leader { url, .. } => Ok(vec![scheduler_endpoint(&url)?]),
            other => Err(ClientError::NoLeader {
                zk: watch.zk.to_string(),
                why: other.problem(&watch.zk).unwrap_or_default(),
            }),
        }
    }

    /// The endpoint where a rotating request starts, and its index among [`targets`](Self::targets).
    fn rotation_start(&self) -> Result<(usize, Url), ClientError> {
        let targets = self.targets()?;
        let index = self.state().next_master % targets.len();
        Ok((index, targets[index].clone()))
    }

    /// No leader in ZooKeeper (`error`): noted and waited for like a refused connection, as one
    /// more failed attempt of the request; `Err` once its attempts are spent.
    async fn wait_for_leader(
        &self,
        error: ClientError,
        failures: &mut u32,
        started: Instant,
    ) -> Result<(), ClientError> {
        self.note_failure(&error);
        *failures += 1;
        let (pause, _) = self.after_failure(None, *failures, started, error)?;
        self.pause(pause).await;
        Ok(())
    }

    /// Waits `pause` before the next attempt; with `--master zk://`, no longer than until
    /// ZooKeeper names another leader, which is worth trying at once.
    async fn pause(&self, pause: Duration) {
        let Some(watch) = &self.inner.leader else {
            return tokio::time::sleep(pause).await;
        };
        let mut rx = watch.rx.clone();
        rx.mark_unchanged();
        let leader_changed = async {
            loop {
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
                if matches!(*rx.borrow_and_update(), Detected::Leader { .. }) {
                    return;
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = leader_changed => tracing::debug!("ZooKeeper names a leader: retrying at once"),
        }
    }

    /// `Err(Fenced)` when the gate refuses requests now.
    fn check_gate(&self) -> Result<(), ClientError> {
        match self.inner.gate.as_ref().and_then(|gate| (gate.0)()) {
            Some(why) => Err(ClientError::Fenced(why)),
            None => Ok(()),
        }
    }

    /// After a failed attempt of a request (POST or GET): the next one starts at the following
    /// master when the request rotates (`index`), after the policy's backoff; or the request
    /// gives up when its attempts or its deadline are spent.
    fn after_failure(
        &self,
        index: Option<usize>,
        failures: u32,
        started: Instant,
        error: ClientError,
    ) -> Result<(Duration, ClientError), ClientError> {
        if let Some(index) = index {
            // Taken modulo the targets' number where it is read: with ZooKeeper it changes.
            self.state().next_master = index.wrapping_add(1);
        }
        let pause = self.inner.retry.backoff(failures, &mut rand::rng());
        let out_of_time = self
            .inner
            .retry
            .deadline
            .is_some_and(|deadline| started.elapsed() + pause > deadline);
        if failures >= self.inner.retry.max_attempts || out_of_time {
            return Err(ClientError::GaveUp {
                attempts: failures,
                last: Box::new(error),
            });
        }
        Ok((pause, error))
    }

    fn state(&self) -> MutexGuard<'_, SharedState> {
        // The state is a few plain fields updated in one go; a panic elsewhere cannot leave it
        // half-written, so a poisoned lock is safe to use.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one request until it gets a non-redirect answer other than 503, retrying 503 and
    /// refused connections with backoff. Returns a 2xx response and the URL that answered it;
    /// any other answer becomes [`ClientError::Status`].
    async fn send(
        &self,
        start: Start,
        request: &Outgoing,
    ) -> Result<(reqwest::Response, Url), ClientError> {
        let started = Instant::now();
        let mut failures = 0u32;
        loop {
            self.check_gate()?;
            let (index, first) = match &start {
                Start::Rotate => match self.rotation_start() {
                    Ok((index, url)) => (Some(index), url),
                    Err(error) => {
                        self.wait_for_leader(error, &mut failures, started).await?;
                        continue;
                    }
                },
                Start::Fixed(url) => (None, url.clone()),
            };
            let error = match self.follow_redirects(&first, request).await {
                Ok((response, url)) if response.status().is_success() => {
                    if let Some(index) = index {
                        self.state().next_master = index;
                    }
                    return Ok((response, url));
                }
                Ok((response, url)) => {
                    let retry = response.status() == StatusCode::SERVICE_UNAVAILABLE;
                    let error = status_error(response, url).await;
                    if !retry {
                        return Err(self.final_error(&start, request, &first, error).await);
                    }
                    error
                }
                // Only a failed connect is safe to repeat: the request never left, so a call
                // such as ACCEPT cannot be applied twice.
                Err(
                    error @ (ClientError::Connect { .. } | ClientError::UnreachableLeader { .. }),
                ) => error,
                Err(error) => return Err(self.final_error(&start, request, &first, error).await),
            };
            if matches!(start, Start::Rotate) {
                self.note_failure(&error);
            }
            failures += 1;
            let (pause, error) = self.after_failure(index, failures, started, error)?;
            tracing::debug!(call = request.kind, %error, ?pause, attempt = failures, "retrying");
            self.pause(pause).await;
        }
    }

    /// A SUBSCRIBE's error that ends its attempts, explained (not a master, too old, needs
    /// credentials) and noted; a call's error as it is.
    async fn final_error(
        &self,
        start: &Start,
        request: &Outgoing,
        first: &Url,
        error: ClientError,
    ) -> ClientError {
        if !matches!(start, Start::Rotate) || !request.subscribe {
            return error;
        }
        self.explain_and_note(error, &get::base_of(first)).await
    }

    /// [`diagnose`](Self::diagnose)s an error that ends a request made without a subscription,
    /// and notes it as the latest failure to reach a master.
    async fn explain_and_note(&self, error: ClientError, base: &Url) -> ClientError {
        let error = self.diagnose(error, base).await;
        self.note_failure(&error);
        error
    }

    /// Turns a refusal of the first contact into what it means: 401/403 into the need for
    /// credentials; any other 4xx (and 501) into "not a Mesos master" or "a Mesos master older
    /// than 1.0" when the server's `GET /version` says so (a 1.x master's own 400 stays as it
    /// is); an HTML page into "not a Mesos master".
    async fn diagnose(&self, error: ClientError, base: &Url) -> ClientError {
        let ClientError::Status {
            status,
            body,
            url,
            challenge,
        } = error
        else {
            return error;
        };
        let html = looks_like_html(&body);
        match status {
            401 | 403 => ClientError::AuthRequired {
                url,
                status,
                body,
                challenge,
                with_credentials: self.inner.authorization.is_some(),
            },
            // Any other refusal (404 or 405 from a web server, 400 or 415 from a pre-1.0 master
            // whose experimental scheduler API took other calls, 501 from a server that takes no
            // POST) is checked against `/version`.
            400..=499 | 501 => match self.version(base).await {
                Version::Mesos(version) if is_before_v1(&version) => {
                    ClientError::MasterTooOld { url, version }
                }
                Version::Mesos(_) | Version::Unknown => ClientError::Status {
                    status,
                    body,
                    url,
                    challenge,
                },
                Version::NotMesos(why) => ClientError::NotAMaster {
                    detail: format!(
                        "{} answered HTTP {status}{}, and {why}",
                        url.path(),
                        if html { " with an HTML page" } else { "" }
                    ),
                    url: Box::new(base.clone()),
                },
            },
            _ if html => ClientError::NotAMaster {
                detail: format!("it answered HTTP {status} with an HTML page"),
                url,
            },
            _ => ClientError::Status {
                status,
                body,
                url,
                challenge,
            },
        }
    }

    /// What `GET /version` of a master's base URL says.
    async fn version(&self, base: &Url) -> Version {
        let mut url = base.clone();
        url.set_path(&format!("{}/version", base.path().trim_end_matches('/')));
        let mut request = self.inner.call_http.get(url.clone());
        if let Some(authorization) = &self.inner.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let Ok(response) = request.send().await else {
            return Version::Unknown;
        };
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Version::Unknown;
        }
        if !status.is_success() {
            return Version::NotMesos(format!(
                "{url} answers HTTP {} (a Mesos master serves it)",
                status.as_u16()
            ));
        }
        let body = response.bytes().await.unwrap_or_default();
        let version = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("version")?.as_str().map(str::to_owned));
        match version {
            Some(version) => Version::Mesos(version),
            None => Version::NotMesos(format!(
                "{url} is not the JSON a Mesos master answers (with a \"version\" field)"
            )),
        }
    }

    fn note_failure(&self, error: &ClientError) {
        let url = match error {
            ClientError::NoLeader { zk, .. } => zk.clone(),
            ClientError::GaveUp { last, .. } if matches!(**last, ClientError::NoLeader { .. }) => {
                return self.note_failure(last);
            }
            _ => failed_url(error).map_or_else(|| "?".to_owned(), |u| origin(u).to_string()),
        };
        let message = explain(error);
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let (line, problem) = {
            let mut state = self.state();
            let line = state
                .failures
                .failure(Instant::now(), url.clone(), message.clone(), at_ms);
            (line, state.failures.problem().cloned())
        };
        let attempts = problem.as_ref().map_or(1, |p| p.attempts);
        match line {
            Some(LogLine::First) => {
                tracing::warn!(master = %url, cause = %message, "cannot talk to the Mesos master; retrying");
            }
            Some(LogLine::Still) => {
                tracing::warn!(master = %url, attempts, last_cause = %message, "still cannot talk to the Mesos master");
            }
            _ => {}
        }
        self.inner.problems.send_replace(problem);
    }

    fn note_success(&self, master: &Url) {
        let line = self.state().failures.success();
        if let Some(LogLine::Recovered { after_attempts }) = line {
            tracing::info!(%master, failed_attempts = after_attempts, "reached the Mesos master");
            self.inner.problems.send_replace(None);
        }
    }

    /// Posts to `first`, re-posting the same body and headers to each 307/308 `Location` (which
    /// may be scheme-less, `//host:port/path`) for at most `max_redirects` hops.
    async fn follow_redirects(
        &self,
        first: &Url,
        request: &Outgoing,
    ) -> Result<(reqwest::Response, Url), ClientError> {
        let mut url = first.clone();
        let mut hops = 0;
        let mut tried = Vec::new();
        loop {
            tried.push(url.clone());
            let response = match self.post(&url, request).await {
                Ok(response) => response,
                Err(source @ (ClientError::Connect { .. } | ClientError::Timeout { .. }))
                    if hops > 0 =>
                {
                    return Err(ClientError::UnreachableLeader {
                        first: Box::new(first.clone()),
                        leader: Box::new(origin(&url)),
                        tried,
                        source: Box::new(source),
                    });
                }
                Err(error) => return Err(error),
            };
            tracing::debug!(call = request.kind, %url, status = response.status().as_u16(), "master answered");
            match self.next_hop(first, &url, &response, &mut hops, &tried)? {
                Some(next) => url = next,
                None => return Ok((response, url)),
            }
        }
    }

    /// After `response` from `url`: `None` when it is the answer, or the `Location` of its
    /// 307/308 to ask next, or an error once more than `max_redirects` hops were taken.
    fn next_hop(
        &self,
        first: &Url,
        url: &Url,
        response: &reqwest::Response,
        hops: &mut usize,
        tried: &[Url],
    ) -> Result<Option<Url>, ClientError> {
        let status = response.status();
        if status != StatusCode::TEMPORARY_REDIRECT && status != StatusCode::PERMANENT_REDIRECT {
            return Ok(None);
        }
        let next = redirect_target(url, response)?;
        *hops += 1;
        if *hops > self.inner.max_redirects {
            return Err(ClientError::TooManyRedirects {
                max: self.inner.max_redirects,
                first: Box::new(first.clone()),
                last: Box::new(next),
                tried: tried.to_vec(),
            });
        }
        Ok(Some(next))
    }

    /// One POST, no retries, no redirects.
    async fn post(&self, url: &Url, request: &Outgoing) -> Result<reqwest::Response, ClientError> {
        let content_type = HeaderValue::from_static(self.inner.encoding.content_type());
        let http = if request.subscribe {
            &self.inner.stream_http
        } else {
            &self.inner.call_http
        };
        let mut builder = http
            .post(url.clone())
            .header(CONTENT_TYPE, content_type.clone())
            .body(request.body.clone());
        if request.subscribe {
            // Exactly the one type we decode: a missing Accept or `*/*` would get JSON.
            builder = builder.header(ACCEPT, content_type);
        }
        if let Some(stream_id) = &request.stream_id {
            builder = builder.header(STREAM_ID_HEADER, stream_id.clone());
        }
        if let Some(authorization) = &self.inner.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        let timeout = self.inner.call_timeout;
        // The call client has this timeout built in; the stream client cannot (it would cut the
        // endless body), so only the wait for the SUBSCRIBE response headers is bounded here.
        let sent = match tokio::time::timeout(timeout, builder.send()).await {
            Ok(sent) => sent,
            Err(_) => {
                return Err(ClientError::Timeout {
                    url: Box::new(url.clone()),
                    after: timeout,
                });
            }
        };
        sent.map_err(|source| {
            let url = Box::new(url.clone());
            if source.is_connect() {
                ClientError::Connect { url, source }
            } else if source.is_timeout() {
                ClientError::Timeout {
                    url,
                    after: timeout,
                }
            } else {
                ClientError::Request { url, source }
            }
        })
    }
}

/// What a server's `GET /version` says.
enum Version {
    /// A Mesos master's JSON, with its `version`.
    Mesos(String),
    /// Why it is not a Mesos master's answer.
    NotMesos(String),
    /// Cannot tell: `/version` needs credentials (a master with
    /// `--authenticate_http_readonly`) or could not be read.
    Unknown,
}

/// One attempt's failure as one line that names the URL: for an HTTP status only the first line
/// of the body (an HTML page would fill the log).
fn explain(error: &ClientError) -> String {
    match error {
        ClientError::Status { url, .. } => {
            format!("master {url} answered {}", report::cause(error))
        }
        ClientError::GaveUp { last, .. } => explain(last),
        other => other.to_string(),
    }
}

/// `0.28.2` and the like: before the v1 scheduler API (Mesos 1.0).
fn is_before_v1(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.trim().parse::<u32>().ok())
        .is_some_and(|major| major < 1)
}

fn looks_like_html(body: &str) -> bool {
    let head = body
        .trim_start()
        .get(..15)
        .unwrap_or(body)
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.starts_with("<head")
}

fn is_html(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// The URL an error is about.
fn failed_url(error: &ClientError) -> Option<&Url> {
    match error {
        ClientError::Connect { url, .. }
        | ClientError::Request { url, .. }
        | ClientError::Timeout { url, .. }
        | ClientError::Status { url, .. }
        | ClientError::BadRedirect { url, .. }
        | ClientError::NotAMaster { url, .. }
        | ClientError::AuthRequired { url, .. }
        | ClientError::MasterTooOld { url, .. }
        | ClientError::MissingStreamId { url }
        | ClientError::UnexpectedContentType { url, .. } => Some(url),
        ClientError::TooManyRedirects { first, .. }
        | ClientError::UnreachableLeader { first, .. } => Some(first),
        ClientError::GaveUp { last, .. } => failed_url(last),
        _ => None,
    }
}

fn list(urls: &[Url]) -> String {
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
}

fn auth_advice(with_credentials: bool) -> &'static str {
    if with_credentials {
        "the master requires framework authentication and refused these credentials; check \
         --principal and the secret in --secret-file"
    } else {
        "the master requires framework authentication; pass --principal and --secret-file"
    }
}

/// Where a request starts: SUBSCRIBE walks the configured masters; calls go to the leader.
enum Start {
    Rotate,
    Fixed(Url),
}

/// One request, kept so that it can be re-sent unchanged after a redirect or a retry.
struct Outgoing {
    /// The call type, for logs.
    kind: &'static str,
    body: Bytes,
    stream_id: Option<HeaderValue>,
    subscribe: bool,
}

#[derive(Clone, Copy)]
enum Connection {
    Stream,
    Calls,
}

fn http_client(
    config: &ClientConfig,
    certs: &[reqwest::Certificate],
    connection: Connection,
) -> Result<reqwest::Client, ClientError> {
    // No proxy (`client_builder`): credentials and stream traffic go straight to the masters.
    let mut builder = crate::http::client_builder()
        // We follow 307 ourselves: reqwest's policy would not re-POST with the same headers to
        // a scheme-less Location, and we want to count hops and rotate masters ourselves.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("mesos-reconciler/", env!("CARGO_PKG_VERSION")));
    if !certs.is_empty() {
        builder = builder.tls_certs_only(certs.iter().cloned());
    }
    if let Some(resolver) = &config.resolver {
        builder = builder.dns_resolver(std::sync::Arc::clone(&resolver.0));
    }
    builder = match connection {
        // A stream connection must never be handed to another request, so none is pooled.
        Connection::Stream => builder.pool_max_idle_per_host(0),
        Connection::Calls => builder.timeout(config.call_timeout),
    };
    builder.build().map_err(|source| match &config.ca_bundle {
        Some(path) => ClientError::CaBundleInvalid {
            path: path.clone(),
            source: Some(source),
        },
        None => ClientError::HttpClient(source),
    })
}

fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = std::fs::read(path).map_err(|source| ClientError::CaBundleRead {
        path: path.to_owned(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
        ClientError::CaBundleInvalid {
            path: path.to_owned(),
            source: Some(source),
        }
    })?;
    if certs.is_empty() {
        return Err(ClientError::CaBundleInvalid {
            path: path.to_owned(),
            source: None,
        });
    }
    Ok(certs)
}

/// `Authorization: Basic base64(principal:secret)`, marked sensitive.
fn basic_authorization(credentials: &Credentials) -> Result<HeaderValue, ClientError> {
    let pair = format!(
        "{}:{}",
        credentials.principal(),
        credentials.secret().expose()
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| ClientError::CredentialsNotAHeader)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The scheduler endpoint below a master's base URL, keeping any path prefix (for masters behind
/// a reverse proxy). Only `http` and `https` are accepted.
fn scheduler_endpoint(base: &Url) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidMasterUrl {
        url: base.to_string(),
        reason: reason.to_owned(),
    };
    match base.scheme() {
        "http" | "https" => {}
        "zk" => {
            return Err(invalid(
                "a zk:// URL is not a master's address: give it as the whole --master value",
            ));
        }
        _ => return Err(invalid("the scheme must be http or https")),
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid("a master url takes no query or fragment"));
    }
    let mut endpoint = base.clone();
    endpoint.set_path(&format!(
        "{}/{SCHEDULER_PATH}",
        base.path().trim_end_matches('/')
    ));
    Ok(endpoint)
}

/// `scheme://host:port/` of an endpoint.
fn origin(endpoint: &Url) -> Url {
    let mut origin = endpoint.clone();
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    origin
}

/// Resolves a redirect's `Location` against the URL that answered, which gives a scheme-less
/// `//host:port/path` the current scheme.
fn redirect_target(url: &Url, response: &reqwest::Response) -> Result<Url, ClientError> {
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let bad = || ClientError::BadRedirect {
        url: Box::new(url.clone()),
        status: response.status().as_u16(),
        location: location.clone(),
    };
    let target = url
        .join(location.as_deref().ok_or_else(bad)?)
        .map_err(|_| bad())?;
    match target.scheme() {
        "http" | "https" if target.host_str().is_some() => Ok(target),
        _ => Err(bad()),
    }
}

/// Turns a non-success answer into [`ClientError::Status`] carrying the master's text.
async fn status_error(mut response: reqwest::Response, url: Url) -> ClientError {
    let status = response.status().as_u16();
    let challenge = (status == 401)
        .then(|| response.headers().get(WWW_AUTHENTICATE))
        .flatten()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut body = Vec::new();
    // A read error mid-body leaves what was read so far, which is still the best explanation.
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    ClientError::Status {
        status,
        body: String::from_utf8_lossy(&body).trim().to_owned(),
        url: Box::new(url),
        challenge,
    }
}

/// Refuses a stream in an encoding other than the one asked for, which would otherwise surface
/// as a confusing decode error on the first event.
fn check_content_type(
    response: &reqwest::Response,
    url: &Url,
    encoding: Encoding,
) -> Result<(), ClientError> {
    let Some(found) = response.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let found = String::from_utf8_lossy(found.as_bytes()).into_owned();
    let media_type = found.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case(encoding.content_type()) {
        Ok(())
    } else {
        Err(ClientError::UnexpectedContentType {
            url: Box::new(url.clone()),
            expected: encoding.content_type(),
            found,
        })
    }
}

fn call_type_name(call: &Call) -> &'static str {
    call.r#type
        .and_then(|t| call::Type::try_from(t).ok())
        .map_or("UNKNOWN", |t| t.as_str_name())
}

fn challenge_note(challenge: &Option<String>) -> String {
    challenge
        .as_ref()
        .map(|c| format!(" (WWW-Authenticate: {c})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_zookeeper_the_detected_leader_is_the_only_target() {
        let zk = crate::zk::ZkUrl::parse("zk://127.0.0.1:2181/mesos").unwrap();
        let (tx, rx) = tokio::sync::watch::channel(Detected::NoLeader);
        let client =
            SchedulerClient::new(ClientConfig::detected(LeaderWatch { zk: zk.clone(), rx }))
                .unwrap();
        match client.targets().unwrap_err() {
            ClientError::NoLeader { zk: named, why } => {
                assert_eq!(named, zk.to_string());
                assert!(why.contains("no leading Mesos master"), "{why}");
            }
            other => panic!("{other}"),
        }
        tx.send_replace(Detected::Leader {
            url: url("http://10.0.0.7:5051/"),
            node: "json.info_0000000003".to_owned(),
        });
        let targets = client.targets().unwrap();
        assert_eq!(
            targets.iter().map(Url::as_str).collect::<Vec<_>>(),
            ["http://10.0.0.7:5051/api/v1/scheduler"]
        );
    }

    #[tokio::test]
    async fn a_closed_gate_lets_nothing_leave() {
        let mut config = ClientConfig::new(vec![url("http://127.0.0.1:1")]);
        config.gate = Some(Gate(Arc::new(|| Some("standing by".to_owned()))));
        let client = SchedulerClient::new(config).unwrap();
        let refused = client.get("master/frameworks").await.unwrap_err();
        assert!(matches!(refused, ClientError::Fenced(ref why) if why == "standing by"));
        let subscribe = call::Subscribe {
            framework_info: Default::default(),
            ..Default::default()
        };
        assert!(matches!(
            client.subscribe(subscribe).await.unwrap_err(),
            ClientError::Fenced(_)
        ));
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn endpoint_keeps_host_port_and_prefix() {
        let cases = [
            ("http://m1:5050", "http://m1:5050/api/v1/scheduler"),
            ("http://m1:5050/", "http://m1:5050/api/v1/scheduler"),
            ("https://m1/mesos/", "https://m1/mesos/api/v1/scheduler"),
            ("https://m1/mesos", "https://m1/mesos/api/v1/scheduler"),
        ];
        for (base, want) in cases {
            assert_eq!(scheduler_endpoint(&url(base)).unwrap().as_str(), want);
        }
        assert_eq!(
            origin(&url("https://m1:8443/mesos/api/v1/scheduler")).as_str(),
            "https://m1:8443/"
        );
    }

    #[test]
    fn only_http_and_https_masters_are_accepted() {
        let err = scheduler_endpoint(&url("zk://zk1:2181/mesos")).unwrap_err();
        assert!(
            err.to_string()
                .contains("give it as the whole --master value"),
            "{err}"
        );
        let err = scheduler_endpoint(&url("ftp://m1/")).unwrap_err();
        assert!(err.to_string().contains("\"ftp://m1/\""), "{err}");
        let err = scheduler_endpoint(&url("http://m1:5050/?x=1")).unwrap_err();
        assert!(err.to_string().contains("no query"), "{err}");
    }

    #[test]
    fn basic_header_is_sensitive_and_correct() {
        let creds = Credentials::new("alice".into(), Secret::new("s3cret".into())).unwrap();
        let value = basic_authorization(&creds).unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Basic YWxpY2U6czNjcmV0");
        assert!(!format!("{value:?}").contains("YWxp"));
    }

    #[test]
    fn status_error_mentions_the_challenge_only_when_present() {
        let err = ClientError::Status {
            status: 401,
            body: "401 Unauthorized.".into(),
            url: Box::new(url("http://m1:5050/api/v1/scheduler")),
            challenge: Some("Basic realm=\"mesos-master-scheduler\"".into()),
        };
        assert_eq!(
            err.to_string(),
            "master http://m1:5050/api/v1/scheduler answered 401: \"401 Unauthorized.\" \
             (WWW-Authenticate: Basic realm=\"mesos-master-scheduler\")"
        );
    }
}
