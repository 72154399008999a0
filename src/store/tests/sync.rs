//! Store tests for sync and its cursor key (#16), on both backends.

use serde_json::json;

use std::collections::BTreeMap;

use super::{TestDb, both_backends, conversation, notify, send, send_as};
use crate::store::cursor::SyncPosition;
use crate::store::messages::Sender;
use crate::store::sync::{MAX_SYNC_LIMIT, SyncResult};

both_backends!(
    offline_client_gets_exactly_what_it_missed,
    limited_paging_loses_and_repeats_nothing,
    page_limit_mid_conversation_across_several,
    initial_state_has_each_last_message,
    a_page_can_span_a_thousand_conversations,
    membership_changes_are_reported,
    cursor_key_is_shared_by_instances,
);

async fn offline_client_gets_exactly_what_it_missed(db: TestDb) {
    let store = db.with_conversation("c", &["alice", "bob"]).await;
    send(&store, "c", "bob", json!("before")).await;
    let initial = store.sync("alice", None, 50).await.unwrap();
    assert_eq!(initial.conversations.len(), 1);
    assert_eq!(initial.conversations[0].messages[0].body, json!("before"));
    assert!(!initial.limited);
    for i in 0..5 {
        send(&store, "c", "bob", json!(i)).await;
    }
    for i in 0..2 {
        notify(&store, &["alice"], json!(i)).await;
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
    let store = db.with_conversation("a", &["alice", "bob"]).await;
    conversation(&store, "b", &["alice", "bob"]).await;
    let mut position = store.sync("alice", None, 50).await.unwrap().next;
    for i in 0..500 {
        let cid = if i % 3 == 0 { "a" } else { "b" };
        send(&store, cid, "bob", json!(i)).await;
    }
    for i in 0..7 {
        notify(&store, &["alice"], json!(i)).await;
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
    let store = db.with_conversation("a", &["alice"]).await;
    let start = store.sync("alice", None, 50).await.unwrap().next;
    conversation(&store, "b", &["bob"]).await;
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

/// (conversation id, its message seqs) in answer order.
fn page_seqs(page: &SyncResult) -> Vec<(&str, Vec<i64>)> {
    page.conversations
        .iter()
        .map(|c| (c.id.as_str(), c.messages.iter().map(|m| m.seq).collect()))
        .collect()
}

/// The batched page plan: the limit lands inside a conversation, then spans several; a message arriving
/// between pages in a conversation already caught up is picked up; nothing lost or repeated, full pages.
async fn page_limit_mid_conversation_across_several(db: TestDb) {
    let store = db.open().await;
    let sizes = [("a", 7), ("b", 3), ("c", 12), ("d", 5)];
    for (id, _) in sizes {
        conversation(&store, id, &["alice", "bob"]).await;
    }
    let start = store.sync("alice", None, 50).await.unwrap().next;
    for round in 0..12 {
        for (id, n) in sizes.iter().rev() {
            if round < *n {
                send(&store, id, "bob", json!([id, round + 1])).await;
            }
        }
    }
    for i in 0..3 {
        notify(&store, &["alice"], json!(i)).await;
    }
    let first = store.sync("alice", Some(&start), 5).await.unwrap();
    assert_eq!(page_seqs(&first), vec![("a", vec![1, 2, 3, 4, 5])]);
    assert!(first.limited && first.notifications.is_empty());
    assert_eq!(
        first.conversations[0].unread, 7,
        "unread counts every missed message, not the page"
    );
    let second = store.sync("alice", Some(&first.next), 5).await.unwrap();
    assert_eq!(page_seqs(&second), vec![("a", vec![6, 7]), ("b", vec![1, 2, 3])]);
    assert!(second.limited);
    send(&store, "a", "bob", json!(["a", 8])).await;
    let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let (mut notes, mut position, mut pages) = (Vec::new(), second.next.clone(), 0);
    for page in [&first, &second] {
        for (id, seqs) in page_seqs(page) {
            got.entry(id.to_owned()).or_default().extend(seqs);
        }
    }
    loop {
        let page = store.sync("alice", Some(&position), 5).await.unwrap();
        let count = page.conversations.iter().map(|c| c.messages.len()).sum::<usize>() + page.notifications.len();
        let ids: Vec<_> = page.conversations.iter().map(|c| c.id.clone()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "conversations in id order: {ids:?}"
        );
        for c in &page.conversations {
            for m in &c.messages {
                assert_eq!(m.body, json!([c.id, m.seq]), "each message under its own conversation");
            }
        }
        for (id, seqs) in page_seqs(&page) {
            got.entry(id.to_owned()).or_default().extend(seqs);
        }
        notes.extend(page.notifications.iter().map(|n| n.seq));
        position = page.next;
        pages += 1;
        if !page.limited {
            break;
        }
        assert_eq!(count, 5, "a limited page is a full page");
        assert!(pages < 10);
    }
    let expected: BTreeMap<String, Vec<i64>> = [("a", 8), ("b", 3), ("c", 12), ("d", 5)]
        .into_iter()
        .map(|(id, n)| (id.to_owned(), (1..=n).collect()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(notes, vec![1, 2, 3]);
    assert_eq!(
        pages, 5,
        "28 messages and 3 notifications in pages of 5: two above, five here"
    );
    let rest = store.sync("alice", Some(&position), 5).await.unwrap();
    assert!(rest.conversations.is_empty() && rest.notifications.is_empty() && !rest.limited);
}

/// Without a position: every conversation with its last message (none for an empty one) and unread count,
/// and a position at each conversation's counter.
async fn initial_state_has_each_last_message(db: TestDb) {
    let store = db.open().await;
    for id in ["a", "b", "c"] {
        conversation(&store, id, &["alice", "bob"]).await;
    }
    send(&store, "a", "bob", json!("a1")).await;
    send(&store, "a", "alice", json!("a2")).await;
    send_as(&store, "c", Sender::System("bot"), json!("c1")).await;
    notify(&store, &["alice"], json!("n")).await;
    let initial = store.sync("alice", None, 10).await.unwrap();
    let shown: Vec<_> = initial
        .conversations
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.messages.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
                c.unread,
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("a", vec![json!("a2")], 1),
            ("b", vec![], 0),
            ("c", vec![json!("c1")], 1)
        ]
    );
    let positions: Vec<_> = initial
        .next
        .conversations
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(positions, vec![("a", 2), ("b", 0), ("c", 1)]);
    assert_eq!((initial.notifications.len(), initial.next.notifications), (1, 1));
    assert!(!initial.limited);
}

/// The largest page touches the most conversations: 1 000 conversations with one missed message each
/// (seeded in bulk) come back in one page, or 999 and then the last one.
async fn a_page_can_span_a_thousand_conversations(db: TestDb) {
    let store = db.open().await;
    let n = MAX_SYNC_LIMIT;
    for sql in [
        "INSERT INTO conversations (id, created_at, last_seq) SELECT 'c' || n, 0, 1 FROM s",
        "INSERT INTO members (conversation_id, user_id, joined_at) SELECT 'c' || n, 'alice', 0 FROM s",
        "INSERT INTO messages (conversation_id, seq, id, sender, system, body, created_at) \
         SELECT 'c' || n, 1, 'm', 'bob', 0, '1', 0 FROM s",
    ] {
        sqlx::query(&format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) {sql}"
        ))
        .bind(n)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let since = SyncPosition {
        user_id: "alice".into(),
        ..Default::default()
    };
    let all = store.sync("alice", Some(&since), n).await.unwrap();
    assert_eq!(all.conversations.len() as i64, n);
    assert!(all.conversations.iter().all(|c| c.messages.len() == 1) && !all.limited);
    let most = store.sync("alice", Some(&since), n - 1).await.unwrap();
    assert_eq!((most.conversations.len() as i64, most.limited), (n - 1, true));
    let rest = store.sync("alice", Some(&most.next), n).await.unwrap();
    let ids: Vec<_> = most
        .conversations
        .iter()
        .chain(&rest.conversations)
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids.len() as i64, n);
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len() as i64, n);
    assert!(!rest.limited);
}
