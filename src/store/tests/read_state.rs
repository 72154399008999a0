//! Store tests for read markers and the conversation list with unread counts (#16), on both backends.

use serde_json::json;

use super::{TestDb, both_backends, conversation, send, send_as, users};
use crate::store::StoreError;
use crate::store::messages::Sender;

both_backends!(markers_are_monotonic_and_bounded, list_counts_unread_except_own);

async fn markers_are_monotonic_and_bounded(db: TestDb) {
    let store = db.with_conversation("c", &["alice", "bob"]).await;
    for i in 0..3 {
        send(&store, "c", "bob", json!(i)).await;
    }
    assert_eq!(store.mark_read("c", "alice", 2).await.unwrap(), 2);
    assert_eq!(store.mark_read("c", "alice", 1).await.unwrap(), 2, "never moves back");
    assert!(matches!(
        store.mark_read("c", "alice", 4).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.mark_read("c", "alice", -1).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.mark_read("c", "mallory", 1).await,
        Err(StoreError::NotMember)
    ));
    assert!(matches!(
        store.mark_read("x", "alice", 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.mark_read("c", "alice", 3).await.unwrap(), 3);
}

async fn list_counts_unread_except_own(db: TestDb) {
    let store = db.open().await;
    store
        .create_conversation(Some("a"), Some("A"), &users(&["alice", "bob"]))
        .await
        .unwrap();
    conversation(&store, "b", &["alice"]).await;
    send(&store, "a", "alice", json!("mine")).await;
    send(&store, "a", "bob", json!("his")).await;
    send_as(&store, "a", Sender::System("alice"), json!("system")).await;
    let list = store.conversation_list("alice").await.unwrap();
    assert_eq!(list.items.len(), 2);
    let a = &list.items[0];
    assert_eq!((a.id.as_str(), a.title.as_deref(), a.unread), ("a", Some("A"), 2));
    assert_eq!(a.last_message.as_ref().unwrap().body, json!("system"));
    assert_eq!((list.items[1].last_message.is_none(), list.items[1].unread), (true, 0));
    assert_eq!(list.unread, 2);
    store.mark_read("a", "alice", 2).await.unwrap();
    assert_eq!(store.conversation_list("alice").await.unwrap().unread, 1);
    assert_eq!(store.conversation_list("bob").await.unwrap().unread, 2);
}
