//! The `json.webpubsub.azure.v1` and `json.reliable.webpubsub.azure.v1` frames: parsing what
//! clients send and writing what the service sends.
//!
//! Outgoing `message` frames are written once per broadcast ([`DataMessage`]); reliable
//! connections then splice their own `sequenceId` in with [`with_sequence_id`], so a group
//! send to many members serialises the payload once.

mod incoming;
mod outgoing;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use outgoing::json_string;

pub use incoming::{ClientMessage, ClientMessageError, parse_client_message};
pub use outgoing::{
    AckError, DataMessage, Frame, ack_error, ack_ok, connected, disconnected, invoke_error, invoke_ok, pong,
    with_sequence_id,
};

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

/// The kind of a payload: REST content type, client `dataType` or upstream response type (the
/// protocol crate's, shared with the handler).
pub use webpubsub_protocol::DataType;

/// A payload bound for clients: bytes plus what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// What the bytes are.
    pub kind: DataType,
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
    pub fn new(kind: DataType, data: impl Into<Bytes>) -> Payload {
        Payload {
            kind,
            data: data.into(),
        }
    }

    /// Checks the bytes fit the kind (REST can answer 400 instead of sending garbage).
    pub fn validate(&self) -> Result<(), PayloadError> {
        match self.kind {
            DataType::Binary => Ok(()),
            DataType::Text => std::str::from_utf8(&self.data)
                .map(|_| ())
                .map_err(|_| PayloadError::NotUtf8),
            DataType::Json => {
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
        let as_text = || {
            (
                DataType::Text.as_str(),
                json_string(&String::from_utf8_lossy(&self.data)),
            )
        };
        match self.kind {
            DataType::Binary => (self.kind.as_str(), json_string(&STANDARD.encode(&self.data))),
            DataType::Text => as_text(),
            DataType::Json => match std::str::from_utf8(&self.data) {
                Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => (
                    self.kind.as_str(),
                    text.trim_matches(|c: char| c.is_ascii_whitespace()).to_owned(),
                ),
                _ => as_text(),
            },
        }
    }

    /// The frame a raw client receives: binary for binary, text otherwise.
    fn raw_frame(&self) -> Frame {
        match self.kind {
            DataType::Binary => Frame::Binary(self.data.clone()),
            DataType::Text | DataType::Json => Frame::Text(String::from_utf8_lossy(&self.data).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests;
