//! Group commit for "delivered" marks (#15): every immediate broadcast that succeeded hands its lease to one
//! background task, which marks whatever has queued up meanwhile sent in one statement
//! ([`Store::mark_sent_many`]). Under load that turns one write transaction per send into one per batch; at
//! rest a mark is written at once (the task waits for nothing but the first lease).
//!
//! A mark never written (the process died, the store failed) only means the row stays leased until its
//! immediate lease ends and the timer drain delivers it again: at least once, and clients drop the duplicate
//! by message id.

use tokio::sync::mpsc;

use crate::store::Store;
use crate::store::outbox::{MARK_SENT_CHUNK, OutboxLease};

/// Leases waiting for the task; beyond this the sender marks its own row (memory stays bounded when the
/// store is slow).
const QUEUE: usize = 4096;

/// The queue into the marking task (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct SentMarks {
    queue: mpsc::Sender<OutboxLease>,
}

impl SentMarks {
    /// Starts the marking task on `store` (inside the runtime).
    pub(crate) fn start(store: Store) -> Self {
        let (queue, mut leases) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MARK_SENT_CHUNK);
            while leases.recv_many(&mut batch, MARK_SENT_CHUNK).await > 0 {
                if let Err(error) = store.mark_sent_many(&batch).await {
                    tracing::warn!(rows = batch.len(), error = %error, "sent marks not recorded; the drain will redeliver");
                }
                batch.clear();
            }
        });
        Self { queue }
    }

    /// Records `lease` as delivered: queued for the next batch, or written now when the queue is full.
    pub(crate) async fn mark(&self, store: &Store, lease: OutboxLease) {
        if let Err(mpsc::error::TrySendError::Full(lease) | mpsc::error::TrySendError::Closed(lease)) =
            self.queue.try_send(lease)
            && let Err(error) = store.mark_sent(&lease).await
        {
            tracing::warn!(outbox_id = lease.id, error = %error, "sent mark not recorded; the drain will redeliver");
        }
    }
}
