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

/// The queue into the marking task, and the store it marks in (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct SentMarks {
    queue: mpsc::Sender<OutboxLease>,
    store: Store,
}

impl SentMarks {
    /// Starts the marking task on `store` (inside the runtime).
    pub(crate) fn start(store: Store) -> Self {
        let (queue, mut leases) = mpsc::channel(QUEUE);
        let marker = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MARK_SENT_CHUNK);
            while leases.recv_many(&mut batch, MARK_SENT_CHUNK).await > 0 {
                if let Err(error) = marker.mark_sent_many(&batch).await {
                    tracing::warn!(rows = batch.len(), error = %error, "sent marks not recorded; the drain will redeliver");
                }
                batch.clear();
            }
        });
        Self { queue, store }
    }

    /// Records `lease` as delivered: queued for the next batch, or written now when the queue is full.
    pub(crate) async fn mark(&self, lease: OutboxLease) {
        if let Err(mpsc::error::TrySendError::Full(lease) | mpsc::error::TrySendError::Closed(lease)) =
            self.queue.try_send(lease)
            && let Err(error) = self.store.mark_sent(&lease).await
        {
            tracing::warn!(outbox_id = lease.id, error = %error, "sent mark not recorded; the drain will redeliver");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::sync::mpsc;

    use super::SentMarks;
    use crate::store::Store;
    use crate::store::outbox::OutboxLease;
    use crate::store::tests::{TestDb, send};

    async fn leases(store: &Store, n: usize) -> Vec<OutboxLease> {
        let mut out = Vec::new();
        for i in 0..n {
            out.push(
                send(store, "c", "alice", json!(i))
                    .await
                    .outbox
                    .expect("a first send leases its row"),
            );
        }
        out
    }

    /// Polls (at most 5 s) until `n` rows are marked sent.
    async fn sent_becomes(store: &Store, n: i64) {
        for _ in 0..100 {
            if store.outbox_counts().await.unwrap().sent == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "sent rows never reached {n}: {:?}",
            store.outbox_counts().await.unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_queued_lease_is_marked() {
        let db = TestDb::sqlite().await;
        let store = db.with_conversation("c", &["alice"]).await;
        let marks = SentMarks::start(store.clone());
        for lease in leases(&store, 40).await {
            marks.mark(lease).await;
        }
        sent_becomes(&store, 40).await;
        assert_eq!(store.outbox_counts().await.unwrap().pending, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_task_the_sender_marks_its_own_row() {
        let db = TestDb::sqlite().await;
        let store = db.with_conversation("c", &["alice"]).await;
        let (queue, task_gone) = mpsc::channel(1);
        drop(task_gone);
        let marks = SentMarks {
            queue,
            store: store.clone(),
        };
        for lease in leases(&store, 3).await {
            marks.mark(lease).await;
        }
        // Written before `mark` returned: nothing was queued.
        assert_eq!(store.outbox_counts().await.unwrap().sent, 3);
    }
}
