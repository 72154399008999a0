//! Store tests for start-up (concurrent migrations) and conversations / members, on both backends.

use super::{TestDb, both_backends, conversation, users};
use crate::store::StoreError;

both_backends!(
    migrations_from_two_pools_at_once,
    reopen_keeps_data,
    create_with_chosen_id_is_idempotent_on_members,
    create_without_id_generates_uuid_v7,
    bad_ids_are_invalid,
    members_add_remove_report_changes,
    user_lists_and_membership_check,
);

async fn migrations_from_two_pools_at_once(db: TestDb) {
    let (a, b) = tokio::join!(db.open(), db.open());
    conversation(&a, "c1", &["alice"]).await;
    assert!(b.is_member("c1", "alice").await.unwrap());
}

async fn reopen_keeps_data(db: TestDb) {
    let store = db.open().await;
    store
        .create_conversation(Some("keep"), Some("T"), &users(&["alice"]))
        .await
        .unwrap();
    store.close().await;
    let again = db.open().await;
    assert_eq!(again.conversation("keep").await.unwrap().title.as_deref(), Some("T"));
}

async fn create_with_chosen_id_is_idempotent_on_members(db: TestDb) {
    let store = db.open().await;
    let first = store
        .create_conversation(Some("room-1"), Some("Room"), &users(&["bob", "alice"]))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.item.members, users(&["alice", "bob"]));
    let again = store
        .create_conversation(Some("room-1"), None, &users(&["alice", "bob", "alice"]))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.item, first.item);
    let other = store
        .create_conversation(Some("room-1"), None, &users(&["alice", "carol"]))
        .await;
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
}

async fn create_without_id_generates_uuid_v7(db: TestDb) {
    let store = db.open().await;
    let made = store.create_conversation(None, None, &users(&["alice"])).await.unwrap();
    let id = uuid::Uuid::parse_str(&made.item.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
}

async fn bad_ids_are_invalid(db: TestDb) {
    let store = db.open().await;
    for id in ["", "has space", "a/b", "conversation:x", &"x".repeat(129)] {
        let got = store.create_conversation(Some(id), None, &users(&["alice"])).await;
        assert!(matches!(got, Err(StoreError::Invalid(_))), "{id:?}: {got:?}");
    }
    assert!(matches!(
        store.create_conversation(None, None, &[]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create_conversation(None, None, &users(&[" "])).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn members_add_remove_report_changes(db: TestDb) {
    let store = db.with_conversation("c", &["alice"]).await;
    assert!(store.add_member("c", "bob").await.unwrap());
    assert!(!store.add_member("c", "bob").await.unwrap());
    let removed = store.remove_member("c", "bob").await.unwrap();
    assert!(removed.removed);
    let lease = removed.outbox.expect("removal queues an outbox row");
    assert!(store.mark_sent(&lease).await.unwrap());
    let again = store.remove_member("c", "bob").await.unwrap();
    assert_eq!((again.removed, again.outbox), (false, None));
    assert!(matches!(
        store.add_member("nope", "bob").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.remove_member("nope", "bob").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.conversation("c").await.unwrap().members, users(&["alice"]));
}

async fn user_lists_and_membership_check(db: TestDb) {
    let store = db.with_conversation("b", &["alice", "bob"]).await;
    conversation(&store, "a", &["alice"]).await;
    conversation(&store, "z", &["carol"]).await;
    assert_eq!(store.user_conversation_ids("alice").await.unwrap(), users(&["a", "b"]));
    let listed = store.list_user_conversations("bob").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].members, users(&["alice", "bob"]));
    assert!(store.is_member("b", "bob").await.unwrap());
    assert!(!store.is_member("a", "bob").await.unwrap());
    assert!(matches!(
        store.is_member("missing", "bob").await,
        Err(StoreError::NotFound(_))
    ));
}
