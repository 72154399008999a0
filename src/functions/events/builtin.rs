//! The built-in behaviours, chosen by `EventsUserEventBehavior`: one [`EventHandler`] implementation.
//!
//! - `none`: user events get 204; nothing is sent.
//! - `echo`: the payload goes back to the sender with its data type (the 200 body of the event answer).
//! - `broadcast`: rooms, as in the serverless chat sample. A connection's rooms are the groups it was given at
//!   connect (token groups plus `EventsDefaultGroups`) and the rooms it joined since; they are recorded in its
//!   connection state under [`ROOMS_STATE_KEY`], which the service returns on every event, so no lookup is
//!   needed to know where a sender may speak. Events:
//!   - `join` with JSON `{"room": "<name>"}`: allowed when the name matches `EventsJoinableRooms`; the
//!     connection is added to the group through the REST API and the room recorded; answer
//!     `{"event":"joined","room":…}` to the sender.
//!   - `leave` with `{"room": …}`: one of the connection's rooms; removed likewise; answer `{"event":"left",…}`.
//!   - any other event (e.g. `message` with `{"room": "r1", "text": "hi"}`): sent with `sendToGroup` to the
//!     named room, which must be one of the connection's (403 `NotInRoom` otherwise), or to all of them when
//!     the payload names none. Group members receive the [`Broadcast`] envelope, which carries the sender's
//!     user id as the handler saw it (clients cannot forge `from`).
//!
//! Joinable rooms are an allow-list on purpose: without one a client could `join` another user's private
//! group (e.g. `user-{userId}`). Refusals are 4xx answers, on which the service fails the client's message
//! (the emulator acks it with an error; the service docs say the connection is dropped). The sender is in
//! the room, so it receives its own broadcast too, as chat pages expect.

use std::collections::BTreeSet;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warp::http::StatusCode;

use super::connect::{ConnectRequest, ConnectResponse};
use super::connection_state::ConnectionState;
use super::handler::{EventHandler, HookFuture, UserEventReply, UserMessage};
use super::names;
use super::policy::VerifiedEvent;
use super::request::DataType;
use super::settings::{Settings, UserEventBehavior};
use crate::auth::template::Template;
use crate::error::ApiError;
use crate::webpubsub::{Message, RestClient, RestError, RestOptions, SendOptions, ServiceSettings};

/// Connection-state key holding the connection's rooms (a JSON array of group names).
pub(super) const ROOMS_STATE_KEY: &str = "rooms";
/// The user event that joins a room under `broadcast`.
pub(super) const JOIN_EVENT: &str = "join";
/// The user event that leaves a room under `broadcast`.
pub(super) const LEAVE_EVENT: &str = "leave";
/// At most this many rooms per connection: the state travels in a header on every event.
pub(super) const MAX_ROOMS: usize = 32;

/// What a room's members receive for a broadcast user event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Broadcast {
    /// The sender's user id (from the verified event, never from the payload).
    pub from: Option<String>,
    /// The room (group) it was sent to.
    pub room: String,
    /// The user event name, e.g. `message`.
    pub event: String,
    /// `json`, `text` or `binary`.
    #[serde(rename = "dataType")]
    pub data_type: String,
    /// The payload: JSON as is, text as a string, binary as base64.
    pub data: Value,
}

/// The settings-driven [`EventHandler`].
#[derive(Debug, Clone)]
pub(crate) struct Builtin {
    behavior: UserEventBehavior,
    joinable_rooms: Vec<Template>,
    rest: Option<RestClient>,
}

impl Builtin {
    /// Built from the `events` settings. `broadcast` needs the REST client; other behaviours ignore it.
    pub(crate) fn new(settings: &Settings, rest: Option<RestClient>) -> anyhow::Result<Self> {
        if settings.user_event_behavior == UserEventBehavior::Broadcast && rest.is_none() {
            anyhow::bail!("EventsUserEventBehavior=broadcast needs the Web PubSub REST client");
        }
        Ok(Self {
            behavior: settings.user_event_behavior,
            joinable_rooms: settings.joinable_rooms.clone(),
            rest,
        })
    }

    /// The built-in behaviours as configured, with a REST client on the primary connection when
    /// `broadcast` needs one.
    pub(crate) fn from_parts(service: &ServiceSettings, events: &Settings) -> anyhow::Result<Self> {
        let rest = match events.user_event_behavior {
            UserEventBehavior::Broadcast => Some(RestClient::for_service(service, RestOptions::default())?),
            _ => None,
        };
        Self::new(events, rest)
    }

    async fn broadcast_event(&self, event: &VerifiedEvent, message: UserMessage) -> Result<UserEventReply, ApiError> {
        let mut state = ConnectionState::decode_lenient(event.connection_state_header());
        let mut rooms = rooms_of(&state);
        let name = event.kind().name();
        if name.eq_ignore_ascii_case(JOIN_EVENT) {
            let room = requested_room(&message)?.ok_or_else(missing_room)?;
            let user_id = event.user_id().unwrap_or("");
            if !self
                .joinable_rooms
                .iter()
                .any(|template| template.matches(&room, user_id))
            {
                return Err(ApiError::forbidden("RoomNotJoinable", "this room cannot be joined"));
            }
            if !rooms.contains(&room) {
                if rooms.len() >= MAX_ROOMS {
                    return Err(ApiError::forbidden(
                        "TooManyRooms",
                        format!("a connection may be in at most {MAX_ROOMS} rooms"),
                    ));
                }
                self.rest()?
                    .add_connection_to_group(event.hub(), &room, event.connection_id())
                    .await
                    .map_err(rest_error)?;
                rooms.insert(room.clone());
            }
            state.insert(ROOMS_STATE_KEY, &rooms);
            Ok(UserEventReply::json(&serde_json::json!({"event": "joined", "room": room}))?.with_state(state))
        } else if name.eq_ignore_ascii_case(LEAVE_EVENT) {
            let room = requested_room(&message)?.ok_or_else(missing_room)?;
            if !rooms.remove(&room) {
                return Err(not_in_room());
            }
            self.rest()?
                .remove_connection_from_group(event.hub(), &room, event.connection_id())
                .await
                .map_err(rest_error)?;
            state.insert(ROOMS_STATE_KEY, &rooms);
            Ok(UserEventReply::json(&serde_json::json!({"event": "left", "room": room}))?.with_state(state))
        } else {
            let targets = match requested_room(&message)? {
                Some(room) if rooms.contains(&room) => vec![room],
                Some(_) => return Err(not_in_room()),
                None if rooms.is_empty() => return Err(not_in_room()),
                None => rooms.into_iter().collect(),
            };
            let rest = self.rest()?;
            let data = payload_value(&message)?;
            for room in targets {
                let envelope = Broadcast {
                    from: event.user_id().map(str::to_owned),
                    room,
                    event: name.to_owned(),
                    data_type: message.data_type.as_str().to_owned(),
                    data: data.clone(),
                };
                let outgoing = Message::json(&envelope).map_err(|e| ApiError::internal("broadcast", e))?;
                rest.send_to_group(event.hub(), &envelope.room, &outgoing, &SendOptions::default())
                    .await
                    .map_err(rest_error)?;
            }
            Ok(UserEventReply::none())
        }
    }

    fn rest(&self) -> Result<&RestClient, ApiError> {
        self.rest
            .as_ref()
            .ok_or_else(|| ApiError::internal("broadcast", "no REST client configured"))
    }
}

impl EventHandler for Builtin {
    /// Under `broadcast`, records the connection's groups as its rooms.
    fn on_connect<'a>(
        &'a self,
        _request: &'a ConnectRequest<'a>,
        mut response: ConnectResponse,
    ) -> HookFuture<'a, Result<ConnectResponse, ApiError>> {
        if self.behavior == UserEventBehavior::Broadcast && !response.groups.is_empty() {
            let rooms = &response.groups[..response.groups.len().min(MAX_ROOMS)];
            response.state.insert(ROOMS_STATE_KEY, rooms);
        }
        Box::pin(std::future::ready(Ok(response)))
    }

    fn on_user_event<'a>(
        &'a self,
        event: &'a VerifiedEvent,
        message: UserMessage,
    ) -> HookFuture<'a, Result<UserEventReply, ApiError>> {
        match self.behavior {
            UserEventBehavior::None => Box::pin(std::future::ready(Ok(UserEventReply::none()))),
            UserEventBehavior::Echo => {
                let reply = if message.data.is_empty() {
                    UserEventReply::none()
                } else {
                    let content_type = message.content_type;
                    let reply = UserEventReply::data(message.data_type, message.data);
                    match content_type {
                        Some(content_type) => reply.with_content_type(content_type),
                        None => reply,
                    }
                };
                Box::pin(std::future::ready(Ok(reply)))
            }
            UserEventBehavior::Broadcast => Box::pin(self.broadcast_event(event, message)),
        }
    }
}

/// The connection's rooms, from its state (an unreadable entry means none): at most [`MAX_ROOMS`] valid
/// names, however many the state lists, so one user event never fans out into more REST calls than that.
pub(super) fn rooms_of(state: &ConnectionState) -> BTreeSet<String> {
    let Some(listed) = state.get(ROOMS_STATE_KEY).and_then(Value::as_array) else {
        return BTreeSet::new();
    };
    let mut rooms = BTreeSet::new();
    for room in listed.iter().filter_map(Value::as_str) {
        if rooms.len() == MAX_ROOMS {
            break;
        }
        if names::is_group(room) {
            rooms.insert(room.to_owned());
        }
    }
    rooms
}

/// The `room` a JSON payload names: `None` when the payload is not a JSON object or has no `room`; a 400
/// when `room` is there but not a valid group name.
fn requested_room(message: &UserMessage) -> Result<Option<String>, ApiError> {
    if message.data_type != DataType::Json {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct RoomField {
        room: Option<Value>,
    }
    let Ok(RoomField { room: Some(room) }) = serde_json::from_slice::<RoomField>(&message.data) else {
        return Ok(None);
    };
    match room {
        Value::String(room) if names::is_group(&room) => Ok(Some(room)),
        _ => Err(ApiError::bad_request(
            "InvalidRoom",
            "room must be a string of 1 to 1024 characters, not blank, without control characters or commas",
        )),
    }
}

/// The payload as a JSON value for the envelope.
fn payload_value(message: &UserMessage) -> Result<Value, ApiError> {
    match message.data_type {
        DataType::Json => serde_json::from_slice(&message.data)
            .map_err(|e| ApiError::bad_request("InvalidJson", format!("the event data is not valid JSON: {e}"))),
        DataType::Text => std::str::from_utf8(&message.data)
            .map(|text| Value::String(text.to_owned()))
            .map_err(|_| ApiError::bad_request("InvalidText", "the event data is not UTF-8 text")),
        DataType::Binary => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(&message.data),
        )),
    }
}

fn missing_room() -> ApiError {
    ApiError::bad_request("MissingRoom", "the event data must be a JSON object with a room")
}

fn not_in_room() -> ApiError {
    ApiError::forbidden("NotInRoom", "the connection is not in that room")
}

/// A failed REST call while handling an event: the service or network failed, not the client.
fn rest_error(error: RestError) -> ApiError {
    tracing::warn!(code = error.code(), error = %error, "Web PubSub REST call failed while handling a user event");
    if let Some(retry_after) = error.identity_retry_after() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error.code(),
            "no identity token for the Web PubSub service",
        )
        .with_retry_after(retry_after);
    }
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        error.code(),
        "the Web PubSub service call failed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn json(text: &'static str) -> UserMessage {
        UserMessage {
            data_type: DataType::Json,
            content_type: None,
            data: Bytes::from_static(text.as_bytes()),
        }
    }

    #[test]
    fn rooms_round_trip_through_state() {
        let mut state = ConnectionState::new();
        assert!(rooms_of(&state).is_empty());
        state.insert(ROOMS_STATE_KEY, ["b", "a"]);
        let decoded = ConnectionState::decode(&state.encode()).unwrap();
        assert_eq!(rooms_of(&decoded).into_iter().collect::<Vec<_>>(), ["a", "b"]);
        state.insert(ROOMS_STATE_KEY, 5);
        assert!(rooms_of(&state).is_empty());
    }

    #[test]
    fn rooms_read_from_state_are_bounded_and_valid() {
        let mut state = ConnectionState::new();
        let many: Vec<String> = (0..5000).map(|i| format!("room-{i}")).collect();
        state.insert(ROOMS_STATE_KEY, &many);
        assert_eq!(rooms_of(&state).len(), MAX_ROOMS);
        state.insert(ROOMS_STATE_KEY, ["ok", "bad\u{0}", "a,b", "", "line\nbreak"]);
        assert_eq!(rooms_of(&state).into_iter().collect::<Vec<_>>(), ["ok"]);
    }

    #[test]
    fn requested_rooms() {
        assert_eq!(
            requested_room(&json(r#"{"room":"r1","text":"hi"}"#))
                .unwrap()
                .as_deref(),
            Some("r1")
        );
        assert_eq!(requested_room(&json(r#"{"text":"hi"}"#)).unwrap(), None);
        assert_eq!(requested_room(&json(r#"[1,2]"#)).unwrap(), None);
        assert_eq!(requested_room(&json(r#"not json"#)).unwrap(), None);
        let text = UserMessage {
            data_type: DataType::Text,
            content_type: None,
            data: Bytes::from_static(br#"{"room":"r1"}"#),
        };
        assert_eq!(requested_room(&text).unwrap(), None);
        for bad in [
            r#"{"room":5}"#,
            r#"{"room":"  "}"#,
            r#"{"room":""}"#,
            r#"{"room":"room-1\u0000"}"#,
            r#"{"room":"a\nb"}"#,
            r#"{"room":"a,b"}"#,
        ] {
            assert_eq!(requested_room(&json(bad)).unwrap_err().code(), "InvalidRoom", "{bad}");
        }
    }

    #[test]
    fn payload_values_by_data_type() {
        assert_eq!(payload_value(&json(r#"{"a":1}"#)).unwrap(), serde_json::json!({"a": 1}));
        let text = UserMessage {
            data_type: DataType::Text,
            content_type: None,
            data: Bytes::from_static(b"hi"),
        };
        assert_eq!(payload_value(&text).unwrap(), Value::String("hi".into()));
        let binary = UserMessage {
            data_type: DataType::Binary,
            content_type: None,
            data: Bytes::from_static(b"\x00\xff"),
        };
        assert_eq!(payload_value(&binary).unwrap(), Value::String("AP8=".into()));
        assert_eq!(payload_value(&json("{")).unwrap_err().status(), StatusCode::BAD_REQUEST);
        let bad_text = UserMessage {
            data_type: DataType::Text,
            content_type: None,
            data: Bytes::from_static(b"\xff"),
        };
        assert_eq!(payload_value(&bad_text).unwrap_err().code(), "InvalidText");
    }

    #[test]
    fn broadcast_needs_a_rest_client() {
        let settings = Settings {
            user_event_behavior: UserEventBehavior::Broadcast,
            ..Settings::default()
        };
        assert!(Builtin::new(&settings, None).is_err());
        assert!(Builtin::new(&Settings::default(), None).is_ok());
    }
}
