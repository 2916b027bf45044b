//! The SUBSCRIBE response body as a stream of events: HTTP chunks go through the RecordIO decoder,
//! each record is decoded in the subscription's encoding, and a heartbeat watchdog declares the
//! connection dead when the master falls silent.
//!
//! How the stream ends (it never yields anything after its first error):
//! * `Some(Err(ClientError::ConnectionDead { .. }))` then `None`: no event for `heartbeat_misses`
//!   heartbeat intervals.
//! * `Some(Err(ClientError::StreamClosed { .. }))` then `None`: the master closed the connection
//!   (EOF) without having sent an ERROR event first. A master never ends a healthy stream, so this
//!   is a failure (master failover, proxy timeout) and calls for re-subscribing.
//! * `Some(Err(ClientError::StreamTruncated { .. }))`: EOF in the middle of a record.
//! * `Some(Err(..))` for a RecordIO, decoding or read error, after which the connection is dropped.
//! * `None` right after EOF, with no error: the clean end, which only happens after the stream has
//!   yielded an ERROR event (the master writes exactly one and closes, API notes §3.2).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::Url;
use tokio::time::{Instant, Sleep};

use super::{ClientError, SharedState};
use crate::mesos::encoding::Encoding;
use crate::mesos::proto::v1::scheduler::{Event, event};
use crate::mesos::recordio::Decoder;

/// The interval assumed until SUBSCRIBED says otherwise (and if it says nothing usable): the
/// master's fixed heartbeat period.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The events of one subscription. Implements [`Stream`]; [`EventStream::next`] is the same as
/// `StreamExt::next`. Dropping it closes the connection, which the master takes as the framework
/// disconnecting (its failover timeout starts).
pub struct EventStream {
    /// `None` once the stream has ended: dropping the body closes the connection at once.
    body: Option<ByteStream>,
    decoder: Decoder,
    encoding: Encoding,
    master: Url,
    interval: Duration,
    misses: u32,
    watchdog: Pin<Box<Sleep>>,
    saw_error_event: bool,
    /// Clears the client's "current subscription" when this stream ends, so that calls made
    /// after a dead stream fail fast with `NotSubscribed` instead of a 403 from the master.
    guard: Option<SubscriptionGuard>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("master", &self.master.as_str())
            .field("encoding", &self.encoding)
            .field("heartbeat_interval", &self.interval)
            .field("open", &self.body.is_some())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    pub(super) fn new(
        body: ByteStream,
        encoding: Encoding,
        master: Url,
        misses: u32,
        max_record_len: usize,
        guard: Option<SubscriptionGuard>,
    ) -> Self {
        let misses = misses.max(1);
        let interval = DEFAULT_HEARTBEAT_INTERVAL;
        EventStream {
            body: Some(body),
            decoder: Decoder::new(max_record_len),
            encoding,
            master,
            interval,
            misses,
            watchdog: Box::pin(tokio::time::sleep(interval * misses)),
            saw_error_event: false,
            guard,
        }
    }

    /// The next event, or the error that ended the stream, or `None` once it has ended.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        futures_util::StreamExt::next(self).await
    }

    /// The heartbeat interval in force: 15 s until SUBSCRIBED sets it.
    pub fn heartbeat_interval(&self) -> Duration {
        self.interval
    }

    /// The master this stream is connected to.
    pub fn master(&self) -> &Url {
        &self.master
    }

    /// Ends the stream: drops the connection and releases the client's current subscription.
    fn finish(&mut self) {
        self.body = None;
        self.guard = None;
    }

    fn fail(&mut self, err: ClientError) -> Poll<Option<Result<Event, ClientError>>> {
        tracing::debug!(master = %self.master, error = %err, "event stream ended");
        self.finish();
        Poll::Ready(Some(Err(err)))
    }

    /// Decodes one record and updates the watchdog from it.
    fn on_record(&mut self, record: &[u8]) -> Poll<Option<Result<Event, ClientError>>> {
        let event: Event = match self.encoding.decode(record) {
            Ok(event) => event,
            Err(source) => {
                return self.fail(ClientError::Decode {
                    master: Box::new(self.master.clone()),
                    source,
                });
            }
        };
        match event.r#type.and_then(|t| event::Type::try_from(t).ok()) {
            Some(event::Type::Subscribed) => {
                let announced = event
                    .subscribed
                    .as_ref()
                    .and_then(|s| s.heartbeat_interval_seconds);
                if let Some(interval) = usable_interval(announced) {
                    self.interval = interval;
                }
            }
            Some(event::Type::Error) => self.saw_error_event = true,
            _ => {}
        }
        let deadline = Instant::now() + self.interval * self.misses;
        self.watchdog.as_mut().reset(deadline);
        Poll::Ready(Some(Ok(event)))
    }
}

impl Stream for EventStream {
    type Item = Result<Event, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            // Records already buffered come first: one chunk may carry several.
            match this.decoder.next_record() {
                Ok(Some(record)) => return this.on_record(&record),
                Ok(None) => {}
                Err(source) => {
                    let master = Box::new(this.master.clone());
                    return this.fail(ClientError::RecordIo { master, source });
                }
            }
            match body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.decoder.feed(&chunk),
                Poll::Ready(Some(Err(source))) => {
                    let master = Box::new(this.master.clone());
                    return this.fail(ClientError::StreamRead { master, source });
                }
                Poll::Ready(None) => {
                    let master = Box::new(this.master.clone());
                    if !this.decoder.is_at_record_boundary() {
                        let buffered = this.decoder.buffered_len();
                        return this.fail(ClientError::StreamTruncated { master, buffered });
                    }
                    if this.saw_error_event {
                        tracing::debug!(%master, "event stream closed after an ERROR event");
                        this.finish();
                        return Poll::Ready(None);
                    }
                    return this.fail(ClientError::StreamClosed { master });
                }
                Poll::Pending => break,
            }
        }
        // Polled only when the body is pending, so the timer's waker is registered whenever this
        // stream returns Pending.
        if this.watchdog.as_mut().poll(cx).is_ready() {
            let master = Box::new(this.master.clone());
            let silent_for = this.interval * this.misses;
            let misses = this.misses;
            return this.fail(ClientError::ConnectionDead {
                master,
                silent_for,
                misses,
            });
        }
        Poll::Pending
    }
}

/// The announced heartbeat interval, if it is a positive finite number of seconds below a day.
fn usable_interval(seconds: Option<f64>) -> Option<Duration> {
    let seconds = seconds?;
    if !(seconds > 0.0 && seconds < 86_400.0) {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

/// Releases the client's record of the subscription this stream belongs to when dropped, unless
/// a newer subscription has replaced it meanwhile.
pub(super) struct SubscriptionGuard {
    pub(super) state: Arc<Mutex<SharedState>>,
    pub(super) generation: u64,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        // A poisoned lock means another thread panicked mid-update; there is nothing to clear then.
        if let Ok(mut state) = self.state.lock() {
            if state
                .current
                .as_ref()
                .is_some_and(|c| c.generation == self.generation)
            {
                state.current = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::proto::v1::FrameworkId;
    use crate::mesos::recordio;
    use futures_util::StreamExt;
    use futures_util::stream;
    use prost::Message;

    fn master() -> Url {
        Url::parse("http://127.0.0.1:5050/").unwrap()
    }

    fn framed(event: &Event) -> Bytes {
        recordio::encode(&event.encode_to_vec())
    }

    fn subscribed(interval: Option<f64>) -> Event {
        Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                framework_id: FrameworkId {
                    value: "fw-1".into(),
                },
                heartbeat_interval_seconds: interval,
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

    /// A stream of the given chunks that then stays open and silent.
    fn open_stream(chunks: Vec<Bytes>) -> EventStream {
        let body = stream::iter(chunks.into_iter().map(Ok)).chain(stream::pending());
        EventStream::new(Box::pin(body), Encoding::Protobuf, master(), 3, 1024, None)
    }

    /// A stream of the given chunks that then ends (EOF).
    fn closed_stream(chunks: Vec<Bytes>) -> EventStream {
        let body = stream::iter(chunks.into_iter().map(Ok));
        EventStream::new(Box::pin(body), Encoding::Protobuf, master(), 3, 1024, None)
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_uses_the_interval_from_subscribed() {
        let mut events = open_stream(vec![framed(&subscribed(Some(10.0)))]);
        let first = events.next().await.unwrap().unwrap();
        assert_eq!(first.r#type, Some(event::Type::Subscribed as i32));
        assert_eq!(events.heartbeat_interval(), Duration::from_secs(10));
        let started = Instant::now();
        let err = events.next().await.unwrap().unwrap_err();
        assert!(
            matches!(err, ClientError::ConnectionDead { silent_for, misses: 3, .. } if silent_for == Duration::from_secs(30)),
            "{err}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(events.next().await.is_none(), "nothing after the error");
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_defaults_to_15s_before_subscribed_and_for_unusable_intervals() {
        let mut events = open_stream(vec![]);
        let started = Instant::now();
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::ConnectionDead { .. }), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(45));

        for bad in [
            None,
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ] {
            let mut events = open_stream(vec![framed(&subscribed(bad))]);
            events.next().await.unwrap().unwrap();
            assert_eq!(
                events.heartbeat_interval(),
                DEFAULT_HEARTBEAT_INTERVAL,
                "{bad:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_event_resets_the_watchdog() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(b), rx))
        });
        let mut events =
            EventStream::new(Box::pin(body), Encoding::Protobuf, master(), 3, 1024, None);
        tx.send(framed(&subscribed(Some(1.0)))).unwrap();
        events.next().await.unwrap().unwrap();
        // Heartbeats every 2.5 s keep a 3 x 1 s watchdog quiet for far longer than 3 s.
        for _ in 0..5 {
            let next = tokio::time::timeout(Duration::from_millis(2500), events.next()).await;
            assert!(next.is_err(), "no event expected before the heartbeat");
            tx.send(framed(&heartbeat())).unwrap();
            let event = events.next().await.unwrap().unwrap();
            assert_eq!(event.r#type, Some(event::Type::Heartbeat as i32));
        }
        let started = Instant::now();
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::ConnectionDead { .. }), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn eof_without_error_event_is_an_error_and_after_one_is_a_clean_end() {
        let mut events = closed_stream(vec![framed(&subscribed(None)), framed(&heartbeat())]);
        assert!(events.next().await.unwrap().is_ok());
        assert!(events.next().await.unwrap().is_ok());
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::StreamClosed { .. }), "{err}");
        assert!(err.to_string().contains("http://127.0.0.1:5050/"), "{err}");
        assert!(events.next().await.is_none());

        let error_event = Event {
            r#type: Some(event::Type::Error as i32),
            error: Some(event::Error {
                message: "Framework has been removed".into(),
            }),
            ..Default::default()
        };
        let mut events = closed_stream(vec![framed(&error_event)]);
        let event = events.next().await.unwrap().unwrap();
        assert_eq!(event.error.unwrap().message, "Framework has been removed");
        assert!(events.next().await.is_none(), "clean end after ERROR");
    }

    #[tokio::test]
    async fn eof_inside_a_record_and_garbage_are_errors() {
        let whole = framed(&heartbeat());
        let mut events = closed_stream(vec![whole.slice(..whole.len() - 1)]);
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::StreamTruncated { .. }), "{err}");

        let mut events = closed_stream(vec![Bytes::from_static(b"4\r\n")]);
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::RecordIo { .. }), "{err}");
        assert!(events.next().await.is_none());

        let mut events = closed_stream(vec![recordio::encode(b"\xff\xff\xff")]);
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::Decode { .. }), "{err}");
    }

    #[tokio::test]
    async fn several_records_in_one_chunk_and_one_record_over_many() {
        let mut wire = framed(&subscribed(Some(1.0))).to_vec();
        wire.extend_from_slice(&framed(&heartbeat()));
        wire.extend_from_slice(&framed(&heartbeat()));
        let bytes: Vec<Bytes> = wire.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
        for chunks in [vec![Bytes::from(wire.clone())], bytes] {
            let events: Vec<_> = closed_stream(chunks).collect().await;
            let types: Vec<_> = events
                .iter()
                .map(|e| e.as_ref().ok().and_then(|e| e.r#type))
                .collect();
            assert_eq!(
                types,
                vec![Some(1), Some(8), Some(8), None],
                "three events then StreamClosed"
            );
        }
    }
}
