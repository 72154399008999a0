//! Payloads of `publish` (`message` / `data`): how a JSON value becomes the bytes and content type sent,
//! bounded by the service's message limit before anything is decoded.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde_json::Value;

use webpubsub_protocol::DataType;

use crate::webpubsub::Message;
use crate::webpubsub::validate::MAX_MESSAGE_BYTES;

/// Standard base64, padding optional (callers differ on it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Why a payload is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataProblem {
    TextNotString,
    JsonTextInvalid,
    BinaryInvalid,
    TooLarge,
}

impl DataProblem {
    pub(super) fn code(self) -> &'static str {
        match self {
            Self::TextNotString | Self::BinaryInvalid => "InvalidData",
            Self::JsonTextInvalid => "InvalidJson",
            Self::TooLarge => "MessageTooLarge",
        }
    }

    pub(super) fn describe(self, field: &str) -> String {
        match self {
            Self::TextNotString => format!("{field} must be a string when dataType is text"),
            Self::JsonTextInvalid => format!(
                "{field} is a string, which with dataType json must hold JSON text (as the Functions binding sends it); \
                 to send a JSON string, quote it, or send the value itself"
            ),
            Self::BinaryInvalid => {
                format!(
                    "{field} must be base64 text or a Node.js Buffer object ({{\"type\":\"Buffer\",\"data\":[bytes]}}) when dataType is binary"
                )
            }
            Self::TooLarge => format!("{field} is larger than the service's {MAX_MESSAGE_BYTES}-byte message limit"),
        }
    }
}

/// Builds the payload from `data`:
/// - `text`: `data` is a string, sent as `text/plain`.
/// - `json`: a string holds JSON text, sent as is (the Functions binding's behaviour); any other value is
///   serialised. Sent as `application/json`.
/// - `binary`: base64 text (padding optional) or a Node.js Buffer object; the bytes go as
///   `application/octet-stream`.
///
/// Without `dataType`: a string is text, a Buffer object binary, anything else json.
pub(super) fn message_of(data: &Value, declared: Option<DataType>) -> Result<Message, DataProblem> {
    let data_type = declared.unwrap_or(match data {
        Value::String(_) => DataType::Text,
        value if buffer_bytes(value).is_some() => DataType::Binary,
        _ => DataType::Json,
    });
    let message = match (data_type, data) {
        (DataType::Text, Value::String(text)) => {
            check_size(text.len())?;
            Message::text(text.as_str())
        }
        (DataType::Text, _) => return Err(DataProblem::TextNotString),
        (DataType::Json, Value::String(text)) => {
            check_size(text.len())?;
            Message::json_raw(Bytes::copy_from_slice(text.as_bytes())).map_err(|_| DataProblem::JsonTextInvalid)?
        }
        (DataType::Json, value) => Message::json(value).map_err(|_| DataProblem::JsonTextInvalid)?,
        (DataType::Binary, Value::String(encoded)) => {
            // Decoded size is at most 3/4 of the text: refuse oversized text before decoding it.
            check_size(encoded.len() / 4 * 3)?;
            Message::binary(BASE64.decode(encoded.trim()).map_err(|_| DataProblem::BinaryInvalid)?)
        }
        (DataType::Binary, value) => Message::binary(buffer_bytes(value).ok_or(DataProblem::BinaryInvalid)??),
    };
    check_size(message.len())?;
    Ok(message)
}

fn check_size(size: usize) -> Result<(), DataProblem> {
    if size > MAX_MESSAGE_BYTES {
        Err(DataProblem::TooLarge)
    } else {
        Ok(())
    }
}

/// The bytes of a Node.js Buffer's JSON form `{"type":"Buffer","data":[0..255, ...]}`; `None` when `value`
/// is not of that shape, `Some(Err)` when it is but its bytes are not.
fn buffer_bytes(value: &Value) -> Option<Result<Vec<u8>, DataProblem>> {
    let object = value.as_object()?;
    let mut kind = None;
    let mut data = None;
    for (name, value) in object {
        if name.eq_ignore_ascii_case("type") {
            kind = value.as_str();
        } else if name.eq_ignore_ascii_case("data") {
            data = value.as_array();
        } else {
            return None;
        }
    }
    if !kind?.eq_ignore_ascii_case("Buffer") {
        return None;
    }
    let items = data?;
    if items.len() > MAX_MESSAGE_BYTES {
        return Some(Err(DataProblem::TooLarge));
    }
    Some(
        items
            .iter()
            .map(|item| {
                item.as_u64()
                    .and_then(|byte| u8::try_from(byte).ok())
                    .ok_or(DataProblem::BinaryInvalid)
            })
            .collect(),
    )
}
