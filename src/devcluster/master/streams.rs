//! Subscription streams: an endless HTTP response body made of RecordIO-framed events.
//!
//! The master actor holds the sending half ([`EventStream`]); the receiving half becomes the axum
//! response body. Closing works in both directions without shared state: the master drops its
//! `EventStream` (the body then ends, which the client sees as EOF), and when the client goes away
//! hyper drops the body, whose `Drop` tells the master which stream is gone (API notes §7: a
//! framework is disconnected exactly when its stream connection closes).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::state::Msg;
use crate::mesos::encoding::Encoding;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Event, event};
use crate::mesos::recordio;

/// The master's end of one subscription stream.
#[derive(Debug)]
pub(super) struct EventStream {
    pub id: String,
    pub encoding: Encoding,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl EventStream {
    /// Opens a stream with a fresh `Mesos-Stream-Id`. When `notify` names a framework, the master
    /// receives [`Msg::StreamClosed`] once the body is dropped (client gone or stream closed).
    pub fn open(
        encoding: Encoding,
        notify: Option<(mpsc::UnboundedSender<Msg>, String)>,
    ) -> (EventStream, Body) {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let on_drop = notify.map(|(master, framework_id)| OnDrop {
            master,
            framework_id,
            stream_id: id.clone(),
        });
        let body = Body::from_stream(BodyStream { rx, on_drop });
        (EventStream { id, encoding, tx }, body)
    }

    /// Frames and queues one event. Returns false when the client is already gone (the body was
    /// dropped); the `StreamClosed` message then takes care of the framework.
    pub fn send(&self, event: &Event) -> bool {
        let payload = self.encoding.encode(event);
        self.tx.send(recordio::encode(&payload)).is_ok()
    }
}

/// The most a body chunk gathers of frames already queued: a burst of events (100,000 updates
/// after a big launch) goes out in a few large writes instead of one write per event. The bytes
/// on the wire are the same; only the chunking differs, which RecordIO readers ignore.
const MAX_CHUNK: usize = 256 * 1024;

/// The body half: yields frames until the master drops its sender.
struct BodyStream {
    rx: mpsc::UnboundedReceiver<Bytes>,
    on_drop: Option<OnDrop>,
}

struct OnDrop {
    master: mpsc::UnboundedSender<Msg>,
    framework_id: String,
    stream_id: String,
}

impl futures_util::Stream for BodyStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let first = match self.rx.poll_recv(cx) {
            Poll::Ready(Some(frame)) => frame,
            other => return other.map(|frame| frame.map(Ok)),
        };
        let mut chunk: Option<BytesMut> = None;
        while chunk.as_ref().map_or(first.len(), BytesMut::len) < MAX_CHUNK {
            let Ok(next) = self.rx.try_recv() else {
                break;
            };
            chunk
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&next);
        }
        Poll::Ready(Some(Ok(chunk.map_or(first, BytesMut::freeze))))
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        if let Some(n) = self.on_drop.take() {
            // The master may already be gone (shutdown); nothing to tell then.
            let _ = n.master.send(Msg::StreamClosed {
                framework_id: n.framework_id,
                stream_id: n.stream_id,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Event builders

pub(super) fn subscribed(
    framework_id: &str,
    heartbeat_seconds: f64,
    master_info: &pb::MasterInfo,
) -> Event {
    Event {
        r#type: Some(event::Type::Subscribed as i32),
        subscribed: Some(event::Subscribed {
            framework_id: framework_id_pb(framework_id),
            heartbeat_interval_seconds: Some(heartbeat_seconds),
            master_info: Some(master_info.clone()),
        }),
        ..Default::default()
    }
}

pub(super) fn heartbeat() -> Event {
    Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    }
}

pub(super) fn error(message: &str) -> Event {
    Event {
        r#type: Some(event::Type::Error as i32),
        error: Some(event::Error {
            message: message.to_owned(),
        }),
        ..Default::default()
    }
}

pub(super) fn offers(offers: Vec<pb::Offer>) -> Event {
    Event {
        r#type: Some(event::Type::Offers as i32),
        offers: Some(event::Offers { offers }),
        ..Default::default()
    }
}

pub(super) fn rescind(offer_id: &str) -> Event {
    Event {
        r#type: Some(event::Type::Rescind as i32),
        rescind: Some(event::Rescind {
            offer_id: pb::OfferId {
                value: offer_id.to_owned(),
            },
        }),
        ..Default::default()
    }
}

pub(super) fn update(status: pb::TaskStatus) -> Event {
    Event {
        r#type: Some(event::Type::Update as i32),
        update: Some(event::Update { status }),
        ..Default::default()
    }
}

pub(super) fn operation_update(status: pb::OperationStatus) -> Event {
    Event {
        r#type: Some(event::Type::UpdateOperationStatus as i32),
        update_operation_status: Some(event::UpdateOperationStatus { status }),
        ..Default::default()
    }
}

/// FAILURE with only `agent_id`: the agent was removed (or marked unreachable).
pub(super) fn agent_failure(agent_id: &str) -> Event {
    Event {
        r#type: Some(event::Type::Failure as i32),
        failure: Some(event::Failure {
            agent_id: Some(pb::AgentId {
                value: agent_id.to_owned(),
            }),
            executor_id: None,
            status: None,
        }),
        ..Default::default()
    }
}

pub(super) fn framework_id_pb(id: &str) -> pb::FrameworkId {
    pb::FrameworkId {
        value: id.to_owned(),
    }
}
