//! Unit tests of `sync`'s query and answer shape; the route runs end to end in tests/e2e/notify.rs.

use super::request::{DEFAULT_SYNC_LIMIT, Query};
use crate::store::cursor::{CursorKey, SyncPosition};
use crate::store::sync::{SyncConversation, SyncResult};

#[test]
fn limit_is_clamped_and_since_is_bounded() {
    let limit = |q: &str| Query::parse(q).unwrap().limit();
    assert_eq!(limit("").unwrap(), DEFAULT_SYNC_LIMIT);
    assert_eq!(limit("limit=0").unwrap(), 1);
    assert_eq!(limit("limit=5000").unwrap(), 1000);
    assert_eq!(limit("limit=x").unwrap_err().code(), "InvalidField");
    assert_eq!(Query::parse("since=").unwrap_err().code(), "InvalidCursor");
    let long = format!("since={}", "a".repeat(70_000));
    assert_eq!(Query::parse(&long).unwrap_err().code(), "InvalidCursor");
    assert_eq!(Query::parse("since=a&since=b").unwrap_err().code(), "InvalidQuery");
}

#[test]
fn the_answer_has_the_issue_shape() {
    let key = CursorKey::new(b"k".to_vec());
    let result = SyncResult {
        conversations: vec![
            SyncConversation {
                id: "c".into(),
                title: None,
                messages: vec![],
                unread: 2,
                membership: None,
            },
            SyncConversation {
                id: "d".into(),
                title: None,
                messages: vec![],
                unread: 0,
                membership: Some("removed".into()),
            },
        ],
        notifications: vec![],
        next: SyncPosition {
            user_id: "alice".into(),
            ..SyncPosition::default()
        },
        limited: false,
    };
    let body = super::reply::sync(&result, &key);
    assert_eq!(
        body["conversations"][0],
        serde_json::json!({"id": "c", "messages": [], "unread": 2})
    );
    assert_eq!(body["conversations"][1]["membership"], "removed");
    assert_eq!(body["limited"], false);
    let next = body["next"].as_str().unwrap();
    assert_eq!(key.decode(next, "alice").unwrap(), result.next);
}
