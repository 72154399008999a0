//! The answer of `sync`: `{"conversations":[{"id","messages","unread","membership"?}],"notifications",
//! "next","limited"}`, with `next` the signed cursor of the position reached.

use serde_json::{Map, Value, json};

use crate::functions::durable::reply::message;
use crate::store::cursor::CursorKey;
use crate::store::sync::{SyncConversation, SyncResult};

pub(super) fn sync(result: &SyncResult, key: &CursorKey) -> Value {
    let conversations: Vec<Value> = result.conversations.iter().map(conversation).collect();
    let notifications: Vec<Value> = result.notifications.iter().map(|n| n.frame()).collect();
    json!({
        "conversations": conversations,
        "notifications": notifications,
        "next": key.encode(&result.next),
        "limited": result.limited,
    })
}

fn conversation(conversation: &SyncConversation) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(conversation.id));
    out.insert(
        "messages".into(),
        conversation.messages.iter().map(message).collect::<Vec<_>>().into(),
    );
    out.insert("unread".into(), json!(conversation.unread));
    if let Some(change) = &conversation.membership {
        out.insert("membership".into(), json!(change));
    }
    Value::Object(out)
}
