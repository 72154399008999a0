//! Frames JSON clients send: [`parse_client_message`] turns one text frame into a [`ClientMessage`]
//! (join/leave group, send to group, event, invoke, sequence ack, ping) or a [`ClientMessageError`]
//! that carries the `ackId` to answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use super::{DataType, Payload};

/// A frame a JSON client sent, as far as the emulator understands it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `joinGroup`.
    JoinGroup {
        /// The group to join.
        group: String,
        /// The `ackId`, if the client wants an ack.
        ack_id: Option<u64>,
    },
    /// `leaveGroup`.
    LeaveGroup {
        /// The group to leave.
        group: String,
        /// The `ackId`, if the client wants an ack.
        ack_id: Option<u64>,
    },
    /// `sendToGroup`.
    SendToGroup {
        /// The target group.
        group: String,
        /// The `ackId`, if the client wants an ack.
        ack_id: Option<u64>,
        /// `noEcho`: skip the sender's own connection.
        no_echo: bool,
        /// The message.
        payload: Payload,
    },
    /// `event`.
    Event {
        /// The user event's name.
        event: String,
        /// The `ackId`, if the client wants an ack.
        ack_id: Option<u64>,
        /// The event's data.
        payload: Payload,
    },
    /// `invoke` (the JS client's `invokeEvent`): a user event whose reply comes back as the
    /// `invokeResponse` with the same `invocationId`.
    Invoke {
        /// `invocationId`, echoed in the `invokeResponse`.
        invocation_id: String,
        /// What is invoked; only `event` exists.
        target: String,
        /// The user event's name.
        event: String,
        /// The event's data.
        payload: Payload,
    },
    /// `cancelInvocation`: the client stopped waiting (nothing to undo here).
    CancelInvocation,
    /// `ping`.
    Ping,
    /// `sequenceAck`.
    SequenceAck {
        /// The highest sequence id the client has received.
        sequence_id: u64,
    },
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
        "json" => Ok(Payload::new(DataType::Json, data.to_string())),
        "text" => match data {
            Value::String(s) => Ok(Payload::new(DataType::Text, s)),
            _ => Err("The data of a text message must be a string.".to_owned()),
        },
        "binary" => match data {
            Value::String(s) => STANDARD
                .decode(s.as_bytes())
                .map(|bytes| Payload::new(DataType::Binary, bytes))
                .map_err(|_| "The data of a binary message must be base64.".to_owned()),
            _ => Err("The data of a binary message must be a base64 string.".to_owned()),
        },
        other => Err(format!(
            "The dataType '{other}' is not supported (use json, text or binary)."
        )),
    }
}
