//! Connection state: the opaque `ce-connectionState` string the service stores per connection and sends
//! back on every later event. By SDK convention (and here) it is base64 of a UTF-8 JSON object.
//!
//! Only `connect` and user-event answers can set it, and each answer replaces it whole. The state is set by
//! this handler and echoed by the service; clients cannot see or change it, so it is as trustworthy as the
//! signed request that carries it (the signature covers the connection id, not the state or the body).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Standard alphabet; padding written, but optional when read (other handlers may strip it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A connection's state: named JSON values. `Default` is the empty state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionState(Map<String, Value>);

/// Why a `ce-connectionState` value could not be read as the conventional base64 JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("connection state is not base64")]
    NotBase64,
    #[error("connection state is not a JSON object")]
    NotJsonObject,
}

impl ConnectionState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a `ce-connectionState` header value.
    pub fn decode(header: &str) -> Result<Self, StateError> {
        let json = BASE64.decode(header.trim()).map_err(|_| StateError::NotBase64)?;
        match serde_json::from_slice::<Value>(&json) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(StateError::NotJsonObject),
        }
    }

    /// Decodes a header that may be absent or foreign. Like the JavaScript SDK, anything unreadable is the
    /// empty state: the state is advisory data of this handler, never a reason to fail an event.
    pub fn decode_lenient(header: Option<&str>) -> Self {
        match header.map(Self::decode) {
            Some(Ok(state)) => state,
            Some(Err(error)) => {
                tracing::debug!(%error, "ignoring unreadable connection state");
                Self::default()
            }
            None => Self::default(),
        }
    }

    /// The header value: base64 of the JSON object.
    pub fn encode(&self) -> String {
        // Serialising a map of JSON values cannot fail.
        let json = serde_json::to_vec(&self.0).unwrap_or_else(|_| b"{}".to_vec());
        BASE64.encode(json)
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The value under `key` as `T`; `None` when absent or of another shape.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.get(key).and_then(|value| T::deserialize(value).ok())
    }

    /// Sets `key` to `value` (serialised to JSON; a value that cannot be serialised is stored as `null`).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Serialize) {
        self.0
            .insert(key.into(), serde_json::to_value(value).unwrap_or(Value::Null));
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// All entries.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answer_encoding() {
        // Independently computed: base64 of {"groups":["lobby","user-alice"]}.
        let mut state = ConnectionState::new();
        state.insert("groups", ["lobby", "user-alice"]);
        assert_eq!(state.encode(), "eyJncm91cHMiOlsibG9iYnkiLCJ1c2VyLWFsaWNlIl19");
        assert_eq!(
            ConnectionState::decode("eyJncm91cHMiOlsibG9iYnkiLCJ1c2VyLWFsaWNlIl19").unwrap(),
            state
        );
    }

    #[test]
    fn round_trips_and_reads_typed_values() {
        let mut state = ConnectionState::new();
        state.insert("counter", 3);
        state.insert("name", "zoë");
        let decoded = ConnectionState::decode(&state.encode()).unwrap();
        assert_eq!(decoded.get_as::<u32>("counter"), Some(3));
        assert_eq!(decoded.get_as::<String>("name").as_deref(), Some("zoë"));
        assert_eq!(decoded.get_as::<u32>("name"), None);
    }

    #[test]
    fn padding_is_optional_when_reading() {
        // base64 of {"a":1} is eyJhIjoxfQ== ; the same without padding must decode too.
        assert_eq!(
            ConnectionState::decode("eyJhIjoxfQ").unwrap().get_as::<u8>("a"),
            Some(1)
        );
        assert_eq!(
            ConnectionState::decode("eyJhIjoxfQ==").unwrap().get_as::<u8>("a"),
            Some(1)
        );
    }

    #[test]
    fn failure_modes() {
        assert_eq!(ConnectionState::decode("%%%"), Err(StateError::NotBase64));
        // base64 of [1,2]: JSON, but not an object.
        assert_eq!(ConnectionState::decode("WzEsMl0="), Err(StateError::NotJsonObject));
        // base64 of "not json".
        assert_eq!(ConnectionState::decode("bm90IGpzb24="), Err(StateError::NotJsonObject));
        assert!(ConnectionState::decode_lenient(Some("%%%")).is_empty());
        assert!(ConnectionState::decode_lenient(None).is_empty());
    }

    proptest! {
        #[test]
        fn decoding_never_panics(input in "\\PC{0,64}") {
            let _ = ConnectionState::decode(&input);
        }

        #[test]
        fn any_string_values_round_trip(key in "\\PC{0,16}", value in "\\PC{0,64}") {
            let mut state = ConnectionState::new();
            state.insert(key.clone(), &value);
            let decoded = ConnectionState::decode(&state.encode()).unwrap();
            prop_assert_eq!(decoded.get_as::<String>(&key), Some(value));
        }
    }
}
