//! The `json.webpubsub.azure.v1` and `json.reliable.webpubsub.azure.v1` frames: parsing what
//! clients send and writing what the service sends.
//!
//! Outgoing `message` frames are written once per broadcast ([`DataMessage`]); reliable
//! connections then splice their own `sequenceId` in with [`with_sequence_id`], so a group
//! send to many members serialises the payload once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

/// The plain JSON subprotocol.
pub const JSON_SUBPROTOCOL: &str = "json.webpubsub.azure.v1";
/// The reliable JSON subprotocol.
pub const RELIABLE_JSON_SUBPROTOCOL: &str = "json.reliable.webpubsub.azure.v1";

/// How a connection talks: raw frames, JSON frames, or JSON frames with sequence ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// No subprotocol, or one the emulator does not implement (for example chosen by a
    /// connect handler): every frame is a `message` user event.
    Raw,
    /// `json.webpubsub.azure.v1`.
    Json,
    /// `json.reliable.webpubsub.azure.v1`.
    ReliableJson,
}

impl Protocol {
    /// The protocol a negotiated subprotocol stands for.
    pub fn of(subprotocol: Option<&str>) -> Protocol {
        match subprotocol {
            Some(s) if s.eq_ignore_ascii_case(JSON_SUBPROTOCOL) => Protocol::Json,
            Some(s) if s.eq_ignore_ascii_case(RELIABLE_JSON_SUBPROTOCOL) => Protocol::ReliableJson,
            _ => Protocol::Raw,
        }
    }

    /// True for the subprotocols the emulator implements.
    pub fn is_supported(subprotocol: &str) -> bool {
        Protocol::of(Some(subprotocol)) != Protocol::Raw
    }
}

/// The kind of a payload: REST content type, client `dataType` or upstream response type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// `text/plain`, `dataType: "text"`.
    Text,
    /// `application/json`, `dataType: "json"`.
    Json,
    /// `application/octet-stream`, `dataType: "binary"`.
    Binary,
}

impl ContentKind {
    /// The `dataType` spelling.
    pub fn data_type(self) -> &'static str {
        match self {
            ContentKind::Text => "text",
            ContentKind::Json => "json",
            ContentKind::Binary => "binary",
        }
    }

    /// The Content-Type used for upstream user events.
    pub fn content_type(self) -> &'static str {
        match self {
            ContentKind::Text => "text/plain",
            ContentKind::Json => "application/json",
            ContentKind::Binary => "application/octet-stream",
        }
    }

    /// Maps a Content-Type header (parameters ignored) to a kind: `text/plain`,
    /// `application/json` and `application/octet-stream`; anything else is `None`.
    pub fn from_content_type(content_type: &str) -> Option<ContentKind> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("text/plain") {
            Some(ContentKind::Text)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(ContentKind::Json)
        } else if essence.eq_ignore_ascii_case("application/octet-stream") {
            Some(ContentKind::Binary)
        } else {
            None
        }
    }
}

/// A payload bound for clients: bytes plus what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// What the bytes are.
    pub kind: ContentKind,
    /// The bytes (UTF-8 text for `Text` and `Json`).
    pub data: Bytes,
}

/// Why a payload cannot be delivered as its kind says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Text or JSON that is not UTF-8.
    #[error("the payload is not valid UTF-8 text")]
    NotUtf8,
    /// `application/json` that does not parse.
    #[error("the payload is not valid JSON")]
    NotJson,
}

impl Payload {
    /// A payload of `kind` holding `data`.
    pub fn new(kind: ContentKind, data: impl Into<Bytes>) -> Payload {
        Payload {
            kind,
            data: data.into(),
        }
    }

    /// Checks the bytes fit the kind (REST can answer 400 instead of sending garbage).
    pub fn validate(&self) -> Result<(), PayloadError> {
        match self.kind {
            ContentKind::Binary => Ok(()),
            ContentKind::Text => std::str::from_utf8(&self.data)
                .map(|_| ())
                .map_err(|_| PayloadError::NotUtf8),
            ContentKind::Json => {
                let text = std::str::from_utf8(&self.data).map_err(|_| PayloadError::NotUtf8)?;
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map(|_| ())
                    .map_err(|_| PayloadError::NotJson)
            }
        }
    }

    /// The `dataType` and the JSON text of `data`: JSON verbatim (so the sender's key order and
    /// number spelling survive, as the service keeps them), text as a string, binary as
    /// base64. Invalid JSON degrades to text so nothing is silently lost.
    fn json_data(&self) -> (&'static str, String) {
        match self.kind {
            ContentKind::Binary => ("binary", json_string(&STANDARD.encode(&self.data))),
            ContentKind::Text => ("text", json_string(&String::from_utf8_lossy(&self.data))),
            ContentKind::Json => match std::str::from_utf8(&self.data) {
                Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
                    ("json", text.trim_matches(|c: char| c.is_ascii_whitespace()).to_owned())
                }
                _ => ("text", json_string(&String::from_utf8_lossy(&self.data))),
            },
        }
    }

    /// The frame a raw client receives: binary for binary, text otherwise.
    fn raw_frame(&self) -> Frame {
        match self.kind {
            ContentKind::Binary => Frame::Binary(self.data.clone()),
            ContentKind::Text | ContentKind::Json => Frame::Text(String::from_utf8_lossy(&self.data).into_owned()),
        }
    }
}

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
fn json_string(text: &str) -> String {
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

/// A frame a JSON client sent, as far as the emulator understands it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `joinGroup`.
    JoinGroup { group: String, ack_id: Option<u64> },
    /// `leaveGroup`.
    LeaveGroup { group: String, ack_id: Option<u64> },
    /// `sendToGroup`.
    SendToGroup {
        group: String,
        ack_id: Option<u64>,
        no_echo: bool,
        payload: Payload,
    },
    /// `event`.
    Event {
        event: String,
        ack_id: Option<u64>,
        payload: Payload,
    },
    /// `invoke` (the JS client's `invokeEvent`): a user event whose reply comes back as the
    /// `invokeResponse` with the same `invocationId`.
    Invoke {
        invocation_id: String,
        /// What is invoked; only `event` exists.
        target: String,
        event: String,
        payload: Payload,
    },
    /// `cancelInvocation`: the client stopped waiting (nothing to undo here).
    CancelInvocation,
    /// `ping`.
    Ping,
    /// `sequenceAck`.
    SequenceAck { sequence_id: u64 },
}

impl ClientMessage {
    /// The `ackId`, for messages that carry one.
    pub fn ack_id(&self) -> Option<u64> {
        match self {
            ClientMessage::JoinGroup { ack_id, .. }
            | ClientMessage::LeaveGroup { ack_id, .. }
            | ClientMessage::SendToGroup { ack_id, .. }
            | ClientMessage::Event { ack_id, .. } => *ack_id,
            ClientMessage::Invoke { .. }
            | ClientMessage::CancelInvocation
            | ClientMessage::Ping
            | ClientMessage::SequenceAck { .. } => None,
        }
    }
}

/// Why a client frame was refused; `ack_id` lets the caller answer with a BadRequest ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ClientMessageError {
    /// The frame's `ackId`, when it had a readable one.
    pub ack_id: Option<u64>,
    /// The frame's `invocationId` (an `invoke` frame), when it had a readable one.
    pub invocation_id: Option<String>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClientMessage {
    #[serde(rename = "type")]
    kind: Option<String>,
    group: Option<String>,
    event: Option<String>,
    ack_id: Option<u64>,
    invocation_id: Option<String>,
    target: Option<String>,
    no_echo: Option<bool>,
    data_type: Option<String>,
    data: Option<Value>,
    sequence_id: Option<u64>,
}

/// Parses one text frame from a JSON client.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ClientMessageError> {
    let raw: RawClientMessage = serde_json::from_str(text).map_err(|e| {
        let value = serde_json::from_str::<Value>(text).ok();
        ClientMessageError {
            ack_id: value.as_ref().and_then(|v| v.get("ackId")?.as_u64()),
            invocation_id: value
                .as_ref()
                .and_then(|v| Some(v.get("invocationId")?.as_str()?.to_owned())),
            message: format!("The message is not a valid request: {e}"),
        }
    })?;
    let ack_id = raw.ack_id;
    let fail = |message: &str| ClientMessageError {
        ack_id,
        invocation_id: raw.invocation_id.clone(),
        message: message.to_owned(),
    };
    let kind = raw.kind.as_deref().ok_or_else(|| fail("The message has no type."))?;
    let group = || raw.group.clone().ok_or_else(|| fail("The message has no group."));
    match kind {
        "joinGroup" => Ok(ClientMessage::JoinGroup {
            group: group()?,
            ack_id,
        }),
        "leaveGroup" => Ok(ClientMessage::LeaveGroup {
            group: group()?,
            ack_id,
        }),
        "sendToGroup" => {
            let payload = payload_of(raw.data_type.as_deref(), raw.data.clone()).map_err(|m| fail(&m))?;
            Ok(ClientMessage::SendToGroup {
                group: group()?,
                ack_id,
                no_echo: raw.no_echo.unwrap_or(false),
                payload,
            })
        }
        "event" => {
            let event = raw
                .event
                .clone()
                .ok_or_else(|| fail("The event message has no event name."))?;
            let payload = payload_of(raw.data_type.as_deref(), raw.data.clone()).map_err(|m| fail(&m))?;
            Ok(ClientMessage::Event { event, ack_id, payload })
        }
        "invoke" => {
            let invocation_id = raw
                .invocation_id
                .clone()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| fail("The invoke message has no invocationId."))?;
            let event = raw
                .event
                .clone()
                .ok_or_else(|| fail("The invoke message has no event name."))?;
            let payload = payload_of(raw.data_type.as_deref(), raw.data.clone()).map_err(|m| fail(&m))?;
            Ok(ClientMessage::Invoke {
                invocation_id,
                target: raw.target.clone().unwrap_or_default(),
                event,
                payload,
            })
        }
        "cancelInvocation" => Ok(ClientMessage::CancelInvocation),
        "ping" => Ok(ClientMessage::Ping),
        "sequenceAck" => {
            let sequence_id = raw
                .sequence_id
                .ok_or_else(|| fail("The sequenceAck message has no sequenceId."))?;
            Ok(ClientMessage::SequenceAck { sequence_id })
        }
        other => Err(fail(&format!("The message type '{other}' is not supported."))),
    }
}

/// Turns `dataType` + `data` into bytes: json (default) is the JSON text of `data`, text
/// must be a string, binary must be a base64 string.
fn payload_of(data_type: Option<&str>, data: Option<Value>) -> Result<Payload, String> {
    let data = data.unwrap_or(Value::Null);
    match data_type.unwrap_or("json") {
        "json" => Ok(Payload::new(ContentKind::Json, data.to_string())),
        "text" => match data {
            Value::String(s) => Ok(Payload::new(ContentKind::Text, s)),
            _ => Err("The data of a text message must be a string.".to_owned()),
        },
        "binary" => match data {
            Value::String(s) => STANDARD
                .decode(s.as_bytes())
                .map(|bytes| Payload::new(ContentKind::Binary, bytes))
                .map_err(|_| "The data of a binary message must be base64.".to_owned()),
            _ => Err("The data of a binary message must be a base64 string.".to_owned()),
        },
        other => Err(format!(
            "The dataType '{other}' is not supported (use json, text or binary)."
        )),
    }
}

#[cfg(test)]
mod tests;
