//! Store tests for the outbox: leases, concurrent drains, backoff with Retry-After, parking and pruning.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::{TestDb, both_backends, conversation, send};
use crate::store::Store;
use crate::store::outbox::{MARK_SENT_CHUNK, OutboxKind, OutboxLease, Rescheduled, RetryPolicy};

both_backends!(
    leased_rows_wait_for_their_lease,
    two_drains_claim_each_row_once,
    reschedule_backs_off_and_honours_retry_after,
    attempt_cap_parks,
    crashed_last_attempt_is_parked_on_claim,
    lost_lease_cannot_finish,
    prune_removes_old_sent_rows,
    batched_marks_skip_lost_leases_across_chunks,
);

/// Sends `n` messages and releases their immediate leases by expiring them (as if each try crashed).
async fn queue(store: &Store, n: usize) {
    conversation(store, "c", &["alice"]).await;
    for i in 0..n {
        send(store, "c", "alice", json!(i)).await;
    }
    expire_leases(store).await;
}

async fn expire_leases(store: &Store) {
    sqlx::query("UPDATE outbox SET lease_until = 0 WHERE lease_until IS NOT NULL")
        .execute(store.pool())
        .await
        .unwrap();
}

async fn leased_rows_wait_for_their_lease(db: TestDb) {
    let store = db.with_conversation("c", &["alice"]).await;
    let sent = send(&store, "c", "alice", json!(1)).await;
    let policy = RetryPolicy::default();
    let claim = store.claim_outbox(10, Duration::from_secs(30), &policy).await.unwrap();
    assert!(claim.items.is_empty(), "the immediate try still owns the row");
    expire_leases(&store).await;
    let claim = store.claim_outbox(10, Duration::from_secs(30), &policy).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    let item = &claim.items[0];
    assert_eq!(
        (item.kind, item.attempts, item.lease.id),
        (OutboxKind::MessageBroadcast, 2, sent.outbox.unwrap().id)
    );
    assert_eq!(item.payload["group"], "conversation:c");
    assert_eq!(item.payload["frame"]["seq"], 1);
}

async fn two_drains_claim_each_row_once(db: TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    queue(&a, 60).await;
    let policy = RetryPolicy::default();
    let drain = |store: Store| async move {
        let mut ids = Vec::new();
        loop {
            let claim = store.claim_outbox(7, Duration::from_secs(60), &policy).await.unwrap();
            if claim.items.is_empty() {
                return ids;
            }
            for item in claim.items {
                assert!(store.mark_sent(&item.lease).await.unwrap());
                ids.push(item.lease.id);
            }
        }
    };
    let (x, y) = tokio::join!(tokio::spawn(drain(a.clone())), tokio::spawn(drain(b.clone())));
    let (x, y) = (x.unwrap(), y.unwrap());
    let all: HashSet<i64> = x.iter().chain(&y).copied().collect();
    assert_eq!(x.len() + y.len(), 60, "no row claimed twice");
    assert_eq!(all.len(), 60);
    assert_eq!(a.outbox_counts().await.unwrap().sent, 60);
}

async fn reschedule_backs_off_and_honours_retry_after(db: TestDb) {
    let store = db.open().await;
    queue(&store, 1).await;
    let policy = RetryPolicy::default();
    let item = store
        .claim_outbox(1, Duration::from_secs(60), &policy)
        .await
        .unwrap()
        .items
        .remove(0);
    let before = crate::store::now_ms();
    let got = store
        .reschedule(&item.lease, "503 busy", Some(Duration::from_secs(120)), &policy)
        .await
        .unwrap();
    let Rescheduled::Retry { at_ms } = got else {
        panic!("{got:?}")
    };
    assert!(at_ms >= before + 120_000, "Retry-After honoured");
    assert!(
        store
            .claim_outbox(1, Duration::from_secs(60), &policy)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    sqlx::query("UPDATE outbox SET available_at = 0")
        .execute(store.pool())
        .await
        .unwrap();
    let again = store.claim_outbox(1, Duration::from_secs(60), &policy).await.unwrap();
    assert_eq!(again.items[0].attempts, 3);
}

async fn attempt_cap_parks(db: TestDb) {
    let store = db.open().await;
    queue(&store, 1).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::ZERO,
        ..RetryPolicy::default()
    };
    let mut parked = None;
    for _ in 0..5 {
        let claim = store.claim_outbox(1, Duration::from_secs(60), &policy).await.unwrap();
        let Some(item) = claim.items.into_iter().next() else {
            break;
        };
        if let Rescheduled::Parked(p) = store.reschedule(&item.lease, "down", None, &policy).await.unwrap() {
            parked = Some(p);
        }
    }
    let parked = parked.expect("parked at the cap");
    assert_eq!((parked.attempts, parked.last_error.as_deref()), (3, Some("down")));
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.parked, counts.pending), (1, 0));
}

async fn crashed_last_attempt_is_parked_on_claim(db: TestDb) {
    let store = db.open().await;
    queue(&store, 1).await;
    let policy = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let claim = store.claim_outbox(1, Duration::from_secs(60), &policy).await.unwrap();
    assert_eq!(claim.items[0].attempts, 2);
    expire_leases(&store).await; // the holder died mid-send
    let claim = store.claim_outbox(1, Duration::from_secs(60), &policy).await.unwrap();
    assert!(claim.items.is_empty());
    assert_eq!(claim.parked.len(), 1);
}

async fn lost_lease_cannot_finish(db: TestDb) {
    let store = db.open().await;
    queue(&store, 1).await;
    let policy = RetryPolicy::default();
    let old = store
        .claim_outbox(1, Duration::from_secs(60), &policy)
        .await
        .unwrap()
        .items
        .remove(0);
    expire_leases(&store).await;
    let new = store
        .claim_outbox(1, Duration::from_secs(60), &policy)
        .await
        .unwrap()
        .items
        .remove(0);
    assert!(!store.mark_sent(&old.lease).await.unwrap());
    assert_eq!(
        store.reschedule(&old.lease, "x", None, &policy).await.unwrap(),
        Rescheduled::LeaseLost
    );
    assert!(store.mark_sent(&new.lease).await.unwrap());
}

async fn prune_removes_old_sent_rows(db: TestDb) {
    let store = db.open().await;
    queue(&store, 3).await;
    let claim = store
        .claim_outbox(3, Duration::from_secs(60), &RetryPolicy::default())
        .await
        .unwrap();
    for item in &claim.items[..2] {
        store.mark_sent(&item.lease).await.unwrap();
    }
    assert_eq!(store.prune_sent(Duration::from_secs(3600)).await.unwrap(), 0);
    sqlx::query("UPDATE outbox SET sent_at = 1 WHERE state = 'sent'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(store.prune_sent(Duration::from_secs(3600)).await.unwrap(), 2);
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.sent, counts.pending), (0, 1));
}

/// One `mark_sent_many` over more leases than one statement carries: every held lease is marked, a lease
/// whose token is not the row's (lost) is skipped, and nothing else changes.
async fn batched_marks_skip_lost_leases_across_chunks(db: TestDb) {
    let store = db.open().await;
    let n = MARK_SENT_CHUNK + 3;
    queue(&store, n).await;
    let mut leases: Vec<OutboxLease> = store
        .claim_outbox(n as i64, Duration::from_secs(60), &RetryPolicy::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|item| item.lease)
        .collect();
    assert_eq!(leases.len(), n);
    leases[MARK_SENT_CHUNK + 1].token = "not-the-holder".to_owned();
    leases.pop();
    assert_eq!(store.mark_sent_many(&leases).await.unwrap(), (n - 2) as u64);
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.sent, counts.pending), ((n - 2) as i64, 2));
    assert_eq!(store.mark_sent_many(&[]).await.unwrap(), 0);
}
