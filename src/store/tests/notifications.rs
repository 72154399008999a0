//! Store tests for notifications, the feed and live connections (#16), on both backends.

use std::time::Duration;

use serde_json::json;

use super::{TestDb, both_backends, notify, users};
use crate::store::StoreError;
use crate::store::notifications::Audience;
use crate::store::outbox::{OutboxKind, RetryPolicy};

both_backends!(
    notification_is_idempotent_and_fans_out,
    conversation_audience_and_errors,
    a_retry_with_bad_recipients_is_invalid,
    feed_pages_unread_and_marker,
    offline_webhook_only_for_users_without_connections,
    large_fan_out_in_batches,
);

async fn notification_is_idempotent_and_fans_out(db: TestDb) {
    let store = db.open().await;
    let audience = Audience::Users(users(&["bob", "alice", "bob"]));
    let first = store
        .create_notification(Some("n1"), &audience, &json!({"x": 1}), false)
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.item.user_ids, users(&["alice", "bob"]));
    let retry = store
        .create_notification(Some("n1"), &audience, &json!({"x": 1}), false)
        .await
        .unwrap();
    assert!(!retry.created);
    assert_eq!(retry.item, first.item);
    let claim = store
        .claim_outbox(100, Duration::from_secs(60), &RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(claim.items.len(), 2, "one frame per user, nothing resent on retry");
    let item = &claim.items[0];
    assert_eq!(item.kind, OutboxKind::Notification);
    assert_eq!(item.payload["group"], "notifications:user:alice");
    assert_eq!(item.payload["frame"]["type"], "notification");
    assert_eq!(item.payload["frame"]["seq"], 1);
}

async fn conversation_audience_and_errors(db: TestDb) {
    let store = db.with_conversation("c", &["alice", "carol"]).await;
    let made = store
        .create_notification(None, &Audience::Conversation("c".into()), &json!(1), false)
        .await
        .unwrap();
    assert_eq!(made.item.user_ids, users(&["alice", "carol"]));
    let missing = store
        .create_notification(None, &Audience::Conversation("x".into()), &json!(1), false)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    let empty = store
        .create_notification(None, &Audience::Users(vec![]), &json!(1), false)
        .await;
    assert!(matches!(empty, Err(StoreError::Invalid(_))), "{empty:?}");
}

async fn a_retry_with_bad_recipients_is_invalid(db: TestDb) {
    let store = db.open().await;
    let alice = Audience::Users(users(&["alice"]));
    let made = store
        .create_notification(Some("n1"), &alice, &json!(1), false)
        .await
        .unwrap();
    assert!(made.created);
    for bad in [vec![], users(&["alice", " "]), users(&["a\nb"]), vec!["0".repeat(257)]] {
        let retry = store
            .create_notification(Some("n1"), &Audience::Users(bad.clone()), &json!(1), false)
            .await;
        assert!(matches!(retry, Err(StoreError::Invalid(_))), "{bad:?}: {retry:?}");
    }
}

async fn feed_pages_unread_and_marker(db: TestDb) {
    let store = db.open().await;
    for i in 0..5 {
        notify(&store, &["alice"], json!(i)).await;
    }
    let page = store.list_notifications("alice", 0, 3).await.unwrap();
    assert_eq!(page.items.iter().map(|n| n.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!((page.next, page.unread), (Some(3), 5));
    let rest = store.list_notifications("alice", 3, 3).await.unwrap();
    assert_eq!((rest.items.len(), rest.next), (2, None));
    assert_eq!(rest.items[1].data, json!(4));
    assert_eq!(store.mark_notifications_read("alice", 4).await.unwrap(), 4);
    assert_eq!(store.mark_notifications_read("alice", 2).await.unwrap(), 4, "monotonic");
    assert!(matches!(
        store.mark_notifications_read("alice", 6).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.list_notifications("alice", 0, 50).await.unwrap().unread, 1);
    assert_eq!(store.list_notifications("nobody", 0, 50).await.unwrap().unread, 0);
}

async fn offline_webhook_only_for_users_without_connections(db: TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    a.connection_opened("conn-1", "alice").await.unwrap();
    b.connection_opened("conn-2", "alice").await.unwrap();
    b.connection_opened("conn-3", "bob").await.unwrap();
    a.connection_opened("conn-3", "bob").await.unwrap(); // a repeated event
    assert!(a.connection_closed("conn-3").await.unwrap());
    assert!(!b.connection_closed("conn-3").await.unwrap());
    assert!(b.connection_closed("conn-1").await.unwrap());
    assert_eq!(
        (
            a.live_connections("alice").await.unwrap(),
            a.live_connections("bob").await.unwrap()
        ),
        (1, 0)
    );
    a.create_notification(None, &Audience::Users(users(&["alice", "bob"])), &json!("hi"), true)
        .await
        .unwrap();
    let claim = a
        .claim_outbox(100, Duration::from_secs(60), &RetryPolicy::default())
        .await
        .unwrap();
    let hooks: Vec<_> = claim
        .items
        .iter()
        .filter(|i| i.kind == OutboxKind::OfflineWebhook)
        .collect();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].payload["userId"], "bob");
    assert_eq!(hooks[0].payload["notification"]["data"], "hi");
}

async fn large_fan_out_in_batches(db: TestDb) {
    let store = db.open().await;
    let many: Vec<String> = (0..1234).map(|i| format!("u{i}")).collect();
    store
        .create_notification(None, &Audience::Users(many.clone()), &json!(1), false)
        .await
        .unwrap();
    store
        .create_notification(None, &Audience::Users(many), &json!(2), false)
        .await
        .unwrap();
    assert_eq!(store.outbox_counts().await.unwrap().pending, 2468);
    let feed = store.list_notifications("u1233", 0, 50).await.unwrap();
    assert_eq!(feed.items.iter().map(|n| n.seq).collect::<Vec<_>>(), vec![1, 2]);
}
