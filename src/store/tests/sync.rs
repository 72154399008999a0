//! Store tests for sync and its cursor key (#16), on both backends.

use serde_json::json;

use super::{TestDb, both_backends, users};
use crate::store::messages::Sender;
use crate::store::notifications::Audience;

both_backends!(
    offline_client_gets_exactly_what_it_missed,
    limited_paging_loses_and_repeats_nothing,
    membership_changes_are_reported,
    cursor_key_is_shared_by_instances,
);

async fn offline_client_gets_exactly_what_it_missed(db: TestDb) {
    let store = db.open().await;
    store
        .create_conversation(Some("c"), None, &users(&["alice", "bob"]))
        .await
        .unwrap();
    store
        .send_message("c", Sender::Member("bob"), None, &json!("before"))
        .await
        .unwrap();
    let initial = store.sync("alice", None, 50).await.unwrap();
    assert_eq!(initial.conversations.len(), 1);
    assert_eq!(initial.conversations[0].messages[0].body, json!("before"));
    assert!(!initial.limited);
    for i in 0..5 {
        store
            .send_message("c", Sender::Member("bob"), None, &json!(i))
            .await
            .unwrap();
    }
    for i in 0..2 {
        store
            .create_notification(None, &Audience::Users(users(&["alice"])), &json!(i), false)
            .await
            .unwrap();
    }
    let delta = store.sync("alice", Some(&initial.next), 50).await.unwrap();
    let bodies: Vec<_> = delta.conversations[0].messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, (0..5).map(|i| json!(i)).collect::<Vec<_>>());
    assert_eq!(delta.conversations[0].unread, 6);
    assert_eq!(
        delta.notifications.iter().map(|n| n.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(!delta.limited);
    let nothing = store.sync("alice", Some(&delta.next), 50).await.unwrap();
    assert!(nothing.conversations.is_empty() && nothing.notifications.is_empty());
    assert_eq!(nothing.next, delta.next);
}

async fn limited_paging_loses_and_repeats_nothing(db: TestDb) {
    let store = db.open().await;
    store
        .create_conversation(Some("a"), None, &users(&["alice", "bob"]))
        .await
        .unwrap();
    store
        .create_conversation(Some("b"), None, &users(&["alice", "bob"]))
        .await
        .unwrap();
    let mut position = store.sync("alice", None, 50).await.unwrap().next;
    for i in 0..500 {
        let cid = if i % 3 == 0 { "a" } else { "b" };
        store
            .send_message(cid, Sender::Member("bob"), None, &json!(i))
            .await
            .unwrap();
    }
    for i in 0..7 {
        store
            .create_notification(None, &Audience::Users(users(&["alice"])), &json!(i), false)
            .await
            .unwrap();
    }
    let (mut seen, mut notes, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let page = store.sync("alice", Some(&position), 64).await.unwrap();
        let count: usize =
            page.conversations.iter().map(|c| c.messages.len()).sum::<usize>() + page.notifications.len();
        assert!(count <= 64);
        for c in &page.conversations {
            seen.extend(c.messages.iter().map(|m| m.body.as_i64().unwrap()));
        }
        notes.extend(page.notifications.iter().map(|n| n.seq));
        position = page.next;
        pages += 1;
        if !page.limited {
            break;
        }
        assert!(pages < 20);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..500).collect::<Vec<_>>());
    assert_eq!(notes, (1..=7).collect::<Vec<_>>());
}

async fn membership_changes_are_reported(db: TestDb) {
    let store = db.open().await;
    store
        .create_conversation(Some("a"), None, &users(&["alice"]))
        .await
        .unwrap();
    let start = store.sync("alice", None, 50).await.unwrap().next;
    store
        .create_conversation(Some("b"), None, &users(&["bob"]))
        .await
        .unwrap();
    store.add_member("b", "alice").await.unwrap();
    store.remove_member("a", "alice").await.unwrap();
    let delta = store.sync("alice", Some(&start), 50).await.unwrap();
    let shown: Vec<_> = delta
        .conversations
        .iter()
        .map(|c| (c.id.as_str(), c.membership.as_deref()))
        .collect();
    assert_eq!(shown, vec![("b", Some("added")), ("a", Some("removed"))]);
    assert!(!delta.next.conversations.contains_key("a"));
}

async fn cursor_key_is_shared_by_instances(db: TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    let (ka, kb) = tokio::join!(a.sync_secret(), b.sync_secret());
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    let position = a.sync("alice", None, 10).await.unwrap().next;
    let cursor = ka.encode(&position);
    assert_eq!(kb.decode(&cursor, "alice").unwrap(), position);
}
