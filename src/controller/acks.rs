//! Acknowledgements, sent off the loop.
//!
//! The v1 API has no batch ACKNOWLEDGE: every status update with a uuid costs its own HTTP call.
//! After a burst (10,000 launches make 20,000 updates) that is seconds of calls; awaiting them in
//! the loop held back every offer, launch and re-read behind them. The loop now flushes the
//! updates and hands their ACKNOWLEDGE calls to this worker, which keeps a bounded number in
//! flight and goes on while the loop does. Durability is unchanged: nothing reaches the worker
//! before the flush that makes it safe to acknowledge. An acknowledgement lost (a failed call, a
//! crash, a new subscription) costs only a resent update, which the loop handles as a duplicate.

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::mesos::client::{ClientError, SchedulerClient};
use crate::mesos::proto::v1::scheduler::Call;

/// ACKNOWLEDGE calls in flight at once.
const IN_FLIGHT: usize = 32;

/// The sending side of the worker; it is started with the first call and ends when this is
/// dropped.
pub(super) struct Acker {
    client: SchedulerClient,
    tx: Option<mpsc::UnboundedSender<Call>>,
}

impl Acker {
    pub fn new(client: SchedulerClient) -> Self {
        Acker { client, tx: None }
    }

    /// Queues the calls; they are sent in order of queueing, [`IN_FLIGHT`] at a time.
    pub fn send(&mut self, calls: impl IntoIterator<Item = Call>) {
        let tx = self.tx.get_or_insert_with(|| spawn(self.client.clone()));
        for call in calls {
            // The worker only ends when the sender is dropped, so this cannot fail while `self`
            // lives; if it ever did, the update would be sent again by its agent.
            let _ = tx.send(call);
        }
    }
}

fn spawn(client: SchedulerClient) -> mpsc::UnboundedSender<Call> {
    let (tx, rx) = mpsc::unbounded_channel::<Call>();
    let calls = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|call| (call, rx))
    });
    tokio::spawn(calls.for_each_concurrent(IN_FLIGHT, move |call| {
        let client = client.clone();
        async move {
            match client.call(call).await {
                Ok(_) => {}
                // The subscription ended (a reconnect or a shutdown): the agents send these
                // updates again to the next one, so there is nothing to report per call.
                Err(e @ ClientError::NotSubscribed) => {
                    tracing::debug!(call = "ACKNOWLEDGE", error = %e, "mesos call dropped");
                }
                Err(e) => tracing::warn!(call = "ACKNOWLEDGE", error = %e, "mesos call failed"),
            }
        }
    }));
    tx
}
