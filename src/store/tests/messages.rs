//! Store tests for sending (idempotency, membership, concurrent seq from two pools) and history pages.

use serde_json::json;

use super::{TestDb, both_backends, conversation, send, send_as};
use crate::store::StoreError;
use crate::store::messages::{Page, Sender};

both_backends!(
    send_assigns_seq_and_leases_outbox,
    idempotent_retry_stores_one_row,
    concurrent_retries_store_one_row,
    same_id_other_sender_conflicts,
    non_member_and_unknown_conversation,
    retry_after_leaving_answers_the_stored_message,
    two_instances_sending_keep_seq_gap_free,
    history_pages_forward_backward_latest,
);

async fn send_assigns_seq_and_leases_outbox(db: TestDb) {
    let store = db.with_conversation("c", &["alice"]).await;
    let one = send(&store, "c", "alice", json!("hi")).await;
    let two = send_as(&store, "c", Sender::System("bot"), json!({"k": 1})).await;
    assert_eq!((one.message.item.seq, two.message.item.seq), (1, 2));
    assert!(one.message.created && two.message.item.system);
    let frame = one.message.item.frame();
    assert_eq!(frame["type"], "message");
    assert_eq!(frame["conversationId"], "c");
    assert!(store.mark_sent(&one.outbox.unwrap()).await.unwrap());
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.sent, counts.pending), (1, 1));
}

async fn idempotent_retry_stores_one_row(db: TestDb) {
    let store = db.with_conversation("c", &["alice"]).await;
    let first = store
        .send_message("c", Sender::Member("alice"), Some("m-1"), &json!("a"))
        .await
        .unwrap();
    let retry = store
        .send_message("c", Sender::Member("alice"), Some("m-1"), &json!("a"))
        .await
        .unwrap();
    assert!(first.message.created && !retry.message.created);
    assert_eq!(retry.message.item, first.message.item);
    assert!(retry.outbox.is_none());
    let page = store.history("c", Page::Latest, 50).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(store.outbox_counts().await.unwrap().pending, 1);
    // The next message still gets seq 2: the retry consumed nothing.
    let next = send(&store, "c", "alice", json!("b")).await;
    assert_eq!(next.message.item.seq, 2);
}

async fn concurrent_retries_store_one_row(db: TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    conversation(&a, "c", &["alice"]).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .send_message("c", Sender::Member("alice"), Some("same"), &json!("x"))
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.unwrap().message.created);
    }
    assert_eq!(created, 1);
    assert_eq!(a.history("c", Page::Latest, 50).await.unwrap().items.len(), 1);
    assert_eq!(a.outbox_counts().await.unwrap().pending, 1);
    let next = send(&a, "c", "alice", json!("y")).await;
    assert_eq!(next.message.item.seq, 2, "a lost race must not leave a gap");
}

async fn same_id_other_sender_conflicts(db: TestDb) {
    let store = db.with_conversation("c", &["alice", "bob"]).await;
    store
        .send_message("c", Sender::Member("alice"), Some("m"), &json!(1))
        .await
        .unwrap();
    let got = store
        .send_message("c", Sender::Member("bob"), Some("m"), &json!(1))
        .await;
    assert!(matches!(got, Err(StoreError::Conflict(_))), "{got:?}");
}

async fn non_member_and_unknown_conversation(db: TestDb) {
    let store = db.with_conversation("c", &["alice"]).await;
    let got = store
        .send_message("c", Sender::Member("mallory"), None, &json!(1))
        .await;
    assert!(matches!(got, Err(StoreError::NotMember)), "{got:?}");
    let got = store
        .send_message("nope", Sender::Member("alice"), None, &json!(1))
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
    let got = store
        .send_message("c", Sender::Member("alice"), Some("bad id"), &json!(1))
        .await;
    assert!(matches!(got, Err(StoreError::Invalid(_))), "{got:?}");
    // Nothing half-written: the refused sends took no seq and queued nothing.
    let ok = send(&store, "c", "alice", json!(1)).await;
    assert_eq!(ok.message.item.seq, 1);
    assert_eq!(store.outbox_counts().await.unwrap().pending, 1);
    assert!(matches!(
        store.history("nope", Page::Latest, 10).await,
        Err(StoreError::NotFound(_))
    ));
}

/// The idempotency look-up happens inside the send: a member's retry still finds its message after they
/// left, while a non-member learns nothing about ids (403, not 409) and nothing is written.
async fn retry_after_leaving_answers_the_stored_message(db: TestDb) {
    let store = db.with_conversation("c", &["alice", "bob"]).await;
    let first = store
        .send_message("c", Sender::Member("alice"), Some("m-1"), &json!("a"))
        .await
        .unwrap();
    store.remove_member("c", "alice").await.unwrap();
    let retry = store
        .send_message("c", Sender::Member("alice"), Some("m-1"), &json!("a"))
        .await
        .unwrap();
    assert!(!retry.message.created && retry.outbox.is_none());
    assert_eq!(retry.message.item, first.message.item);
    let fresh = store
        .send_message("c", Sender::Member("alice"), Some("m-2"), &json!("b"))
        .await;
    assert!(matches!(fresh, Err(StoreError::NotMember)), "{fresh:?}");
    let probe = store
        .send_message("c", Sender::Member("mallory"), Some("m-1"), &json!("a"))
        .await;
    assert!(matches!(probe, Err(StoreError::NotMember)), "{probe:?}");
    let next = send(&store, "c", "bob", json!("c")).await;
    assert_eq!(next.message.item.seq, 2, "refused sends and the retry took no seq");
}

async fn two_instances_sending_keep_seq_gap_free(db: TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    conversation(&a, "c", &["alice", "bob"]).await;
    let per_task = 25;
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (store, who) = if t % 2 == 0 {
            (a.clone(), "alice")
        } else {
            (b.clone(), "bob")
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                send(&store, "c", who, json!([t, i])).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let page = a.history("c", Page::After(0), 200).await.unwrap();
    let seqs: Vec<i64> = page.items.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=4 * per_task).collect::<Vec<_>>());
    assert_eq!(a.outbox_counts().await.unwrap().pending, 4 * per_task);
}

async fn history_pages_forward_backward_latest(db: TestDb) {
    let store = db.with_conversation("c", &["alice"]).await;
    for i in 1..=7 {
        send(&store, "c", "alice", json!(i)).await;
    }
    let seqs = |p: &crate::store::messages::HistoryPage| p.items.iter().map(|m| m.seq).collect::<Vec<_>>();
    let latest = store.history("c", Page::Latest, 3).await.unwrap();
    assert_eq!((seqs(&latest), latest.next), (vec![5, 6, 7], Some(5)));
    let back = store.history("c", Page::Before(5), 3).await.unwrap();
    assert_eq!((seqs(&back), back.next), (vec![2, 3, 4], Some(2)));
    let end = store.history("c", Page::Before(2), 3).await.unwrap();
    assert_eq!((seqs(&end), end.next), (vec![1], None));
    let fwd = store.history("c", Page::After(0), 4).await.unwrap();
    assert_eq!((seqs(&fwd), fwd.next), (vec![1, 2, 3, 4], Some(4)));
    let rest = store.history("c", Page::After(4), 4).await.unwrap();
    assert_eq!((seqs(&rest), rest.next), (vec![5, 6, 7], None));
    let all = store.history("c", Page::Latest, 0).await.unwrap();
    assert_eq!(all.items.len(), 1, "limit clamps to at least 1");
    let empty = store.history("c", Page::After(7), 50).await.unwrap();
    assert_eq!((empty.items.len(), empty.next), (0, None));
}
