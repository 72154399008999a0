//! The JSON shapes the durable routes answer with, and the request pieces they share (path segments, JSON
//! bodies read within a limit).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::error::ApiError;
use crate::store::conversations::Conversation;
use crate::store::messages::Message;
use crate::store::read_state::ConversationSummary;
use crate::store::rfc3339_ms;

/// A stored message as answered: `{"id","conversationId","seq","sender","createdAt","body"}`.
pub(crate) fn message(message: &Message) -> Value {
    json!({
        "id": message.id,
        "conversationId": message.conversation_id,
        "seq": message.seq,
        "sender": message.sender,
        "createdAt": rfc3339_ms(message.created_at_ms),
        "body": message.body,
    })
}

/// A conversation as answered: `{"id","title","members","createdAt"}`.
pub(crate) fn conversation(conversation: &Conversation) -> Value {
    json!({
        "id": conversation.id,
        "title": conversation.title,
        "members": conversation.members,
        "createdAt": rfc3339_ms(conversation.created_at_ms),
    })
}

/// A row of the caller's list (#16): `{"id","title","lastMessage","unread"}` (`lastMessage` null when empty).
pub(crate) fn summary(summary: &ConversationSummary) -> Value {
    json!({
        "id": summary.id,
        "title": summary.title,
        "lastMessage": summary.last_message.as_ref().map(message),
        "unread": summary.unread,
    })
}

/// `value` as JSON with `status`.
pub(crate) fn json_with(status: StatusCode, value: &Value) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// 201 when this call created it, 200 when it was already there.
pub(crate) fn created_or_found(created: bool) -> StatusCode {
    if created { StatusCode::CREATED } else { StatusCode::OK }
}

/// The percent-decoded segments of a path tail (`a/b%20c` → `["a", "b c"]`); empty segments refused.
pub(crate) fn segments(tail: &str) -> Result<Vec<String>, ApiError> {
    if tail.is_empty() {
        return Ok(Vec::new());
    }
    tail.split('/')
        .map(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request("InvalidPath", "a path segment is not UTF-8"))?;
            if decoded.is_empty() {
                return Err(not_found());
            }
            Ok(decoded.into_owned())
        })
        .collect()
}

/// The 404 for a path under a durable function that names no operation.
pub(crate) fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no function is served at this path")
}

/// For an optional body field that may be absent but not `null` (the contract types it as a string, not
/// nullable; fuzz finding ST201, #17): `#[serde(default, deserialize_with = "reply::not_null")]`.
pub(crate) fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Parses a JSON body into `T`, a 400 `InvalidJson` naming the problem otherwise.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("InvalidJson", format!("invalid request body: {e}")))
}
