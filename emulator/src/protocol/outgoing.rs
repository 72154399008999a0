//! Frames the service writes to JSON clients: `message` frames prepared once per broadcast
//! ([`DataMessage`], with [`with_sequence_id`] for reliable connections), acks, invoke responses,
//! pong and the `connected` / `disconnected` system frames. Field order follows the service's.

use bytes::Bytes;
use serde_json::Value;

use super::Payload;

/// One WebSocket data frame to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

impl Frame {
    /// Payload length in bytes (for queue accounting).
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(s) => s.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `message` frame prepared once for every recipient kind.
#[derive(Debug, Clone)]
pub struct DataMessage {
    /// What raw clients get.
    pub raw: Frame,
    /// What JSON clients get (a JSON object, without `sequenceId`).
    pub json: String,
}

impl DataMessage {
    /// `{"type":"message","from":"server","dataType":..,"data":..}`: REST sends and upstream
    /// replies.
    pub fn from_server(payload: &Payload) -> DataMessage {
        let (data_type, data) = payload.json_data();
        let json = object(&[
            ("type", r#""message""#),
            ("from", r#""server""#),
            ("dataType", &json_string(data_type)),
            ("data", &data),
        ]);
        DataMessage {
            raw: payload.raw_frame(),
            json,
        }
    }

    /// `{"type":"message","from":"group","group":..,"dataType":..,"data":..,"fromUserId":..}`:
    /// a client's `sendToGroup`.
    pub fn from_group(group: &str, from_user_id: Option<&str>, payload: &Payload) -> DataMessage {
        let (data_type, data) = payload.json_data();
        let group = json_string(group);
        let data_type = json_string(data_type);
        let from_user_id = from_user_id.map(json_string);
        let mut fields = vec![
            ("type", r#""message""#),
            ("from", r#""group""#),
            ("group", group.as_str()),
            ("dataType", data_type.as_str()),
            ("data", data.as_str()),
        ];
        if let Some(user) = &from_user_id {
            fields.push(("fromUserId", user));
        }
        DataMessage {
            raw: payload.raw_frame(),
            json: object(&fields),
        }
    }
}

/// A JSON string literal.
pub(super) fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

/// A JSON object from `(name, JSON text)` pairs, in the given order: the service's field order,
/// which official tests compare byte for byte (a `serde_json::Map` would sort the names).
fn object(fields: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2);
    out.push('{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(name));
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// Adds `"sequenceId":N` to a JSON object text written by this module.
pub fn with_sequence_id(json_object: &str, sequence_id: u64) -> String {
    let body = json_object.strip_suffix('}').unwrap_or(json_object);
    if body.ends_with('{') {
        format!("{body}\"sequenceId\":{sequence_id}}}")
    } else {
        format!("{body},\"sequenceId\":{sequence_id}}}")
    }
}

/// Error names used in failed acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// The connection lacks the permission.
    Forbidden,
    /// The upstream failed.
    InternalServerError,
    /// The `ackId` was already used on this connection.
    Duplicate,
    /// The request is malformed.
    BadRequest,
    /// Nothing can answer it (an `invoke` no event handler takes).
    NotFound,
}

impl AckError {
    fn name(self) -> &'static str {
        match self {
            AckError::Forbidden => "Forbidden",
            AckError::InternalServerError => "InternalServerError",
            AckError::Duplicate => "Duplicate",
            AckError::BadRequest => "BadRequest",
            AckError::NotFound => "NotFound",
        }
    }
}

/// `{"type":"ack","ackId":N,"success":true}`.
pub fn ack_ok(ack_id: u64) -> String {
    object(&[
        ("type", r#""ack""#),
        ("ackId", &ack_id.to_string()),
        ("success", "true"),
    ])
}

/// `{"type":"ack","ackId":N,"success":false,"error":{"name":..,"message":..}}`.
pub fn ack_error(ack_id: u64, error: AckError, message: &str) -> String {
    object(&[
        ("type", r#""ack""#),
        ("ackId", &ack_id.to_string()),
        ("success", "false"),
        ("error", &error_object(error, message)),
    ])
}

/// `{"name":..,"message":..}`.
fn error_object(error: AckError, message: &str) -> String {
    object(&[("name", &json_string(error.name())), ("message", &json_string(message))])
}

/// `{"type":"invokeResponse","invocationId":..,"success":true[,"dataType":..,"data":..]}`:
/// the handler's reply to an `invoke`, when it had one.
pub fn invoke_ok(invocation_id: &str, reply: Option<&Payload>) -> String {
    let invocation_id = json_string(invocation_id);
    let data = reply.map(|payload| {
        let (data_type, data) = payload.json_data();
        (json_string(data_type), data)
    });
    let mut fields = vec![
        ("type", r#""invokeResponse""#),
        ("invocationId", invocation_id.as_str()),
        ("success", "true"),
    ];
    if let Some((data_type, data)) = &data {
        fields.push(("dataType", data_type));
        fields.push(("data", data));
    }
    object(&fields)
}

/// `{"type":"invokeResponse","invocationId":..,"success":false,"error":{"name":..,"message":..}}`.
pub fn invoke_error(invocation_id: &str, error: AckError, message: &str) -> String {
    object(&[
        ("type", r#""invokeResponse""#),
        ("invocationId", &json_string(invocation_id)),
        ("success", "false"),
        ("error", &error_object(error, message)),
    ])
}

/// `{"type":"pong"}`.
pub fn pong() -> String {
    r#"{"type":"pong"}"#.to_owned()
}

/// `{"type":"system","event":"connected","userId":..,"connectionId":..}` (with
/// `reconnectionToken` when reliable).
pub fn connected(user_id: Option<&str>, connection_id: &str, reconnection_token: Option<&str>) -> String {
    let user_id = user_id.map(json_string);
    let connection_id = json_string(connection_id);
    let reconnection_token = reconnection_token.map(json_string);
    let mut fields = vec![("type", r#""system""#), ("event", r#""connected""#)];
    if let Some(user) = &user_id {
        fields.push(("userId", user));
    }
    fields.push(("connectionId", &connection_id));
    if let Some(token) = &reconnection_token {
        fields.push(("reconnectionToken", token));
    }
    object(&fields)
}

/// `{"type":"system","event":"disconnected","message":reason}`.
pub fn disconnected(reason: &str) -> String {
    object(&[
        ("type", r#""system""#),
        ("event", r#""disconnected""#),
        ("message", &json_string(reason)),
    ])
}
