//! The extension point: [`EventHandler`], through which an application handles Web PubSub events without
//! touching the plumbing (signature checks, parsing, policy, replies and logs stay in [`super`]).
//!
//! Every method has a default, so an application overrides only what it needs. The trait is object-safe and
//! used as `Arc<dyn EventHandler>`: methods return [`HookFuture`], a boxed future, because `async fn` in a
//! trait cannot be called through `dyn` and a boxed future needs no extra dependency. The built-in
//! behaviours ([`super::Builtin`], private to the crate) are one implementation; an application's handler
//! replaces them (`EventsUserEventBehavior` then has no effect).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::connect::{ConnectRequest, ConnectResponse};
use super::connection_state::ConnectionState;
use super::policy::VerifiedEvent;
use super::request::DataType;
use crate::error::ApiError;

/// What every hook returns: a boxed, sendable future borrowing the handler and the event.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Application hooks for the four kinds of events. Every event reaching a hook has passed signature and hub
/// checks ([`VerifiedEvent`]).
pub trait EventHandler: Send + Sync + 'static {
    /// `connect` (blocking). `response` is the answer the settings drafted (subprotocol, user id, default
    /// groups and roles); return it, changed or not, to accept, or an [`ApiError`] to refuse (a 4xx reaches
    /// the client; use 401 or 403 with a reason). Policy checks still run on what this returns.
    fn on_connect<'a>(
        &'a self,
        request: &'a ConnectRequest<'a>,
        response: ConnectResponse,
    ) -> HookFuture<'a, Result<ConnectResponse, ApiError>> {
        let _ = request;
        Box::pin(std::future::ready(Ok(response)))
    }

    /// `connected` (notification; the service ignores the answer beyond logging it).
    fn on_connected<'a>(&'a self, event: &'a VerifiedEvent) -> HookFuture<'a, ()> {
        let _ = event;
        Box::pin(std::future::ready(()))
    }

    /// A user event (blocking). The reply's body, if any, goes to the sending connection only. An error
    /// makes the service fail the client's message (the docs say it drops the connection), so refuse only
    /// what deserves it.
    fn on_user_event<'a>(
        &'a self,
        event: &'a VerifiedEvent,
        message: UserMessage,
    ) -> HookFuture<'a, Result<UserEventReply, ApiError>> {
        let _ = (event, message);
        Box::pin(std::future::ready(Ok(UserEventReply::none())))
    }

    /// `gp.joined` / `gp.left` (notifications; the event's `ce-eventName` says which), with the group named in
    /// the body.
    fn on_group_event<'a>(&'a self, event: &'a VerifiedEvent, group: &'a str) -> HookFuture<'a, ()> {
        let _ = (event, group);
        Box::pin(std::future::ready(()))
    }

    /// `disconnected` (notification), with the reason the service gave, if any.
    fn on_disconnected<'a>(&'a self, event: &'a VerifiedEvent, reason: Option<&'a str>) -> HookFuture<'a, ()> {
        let _ = (event, reason);
        Box::pin(std::future::ready(()))
    }
}

/// The payload of a user event: its data type (from `Content-Type`) and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMessage {
    /// Text, JSON or binary, from the event's `Content-Type`.
    pub data_type: DataType,
    /// An MQTT 5 client's `Content-Type` when it is none of the three data types' (`data_type` is then
    /// `Binary`); `None` otherwise.
    pub content_type: Option<String>,
    /// The message bytes, as sent.
    pub data: Bytes,
}

impl UserMessage {
    /// The payload as text, for `text` and `json` data (`None` when it is not UTF-8).
    pub fn text(&self) -> Option<&str> {
        match self.data_type {
            DataType::Binary => None,
            DataType::Text | DataType::Json => std::str::from_utf8(&self.data).ok(),
        }
    }

    /// The payload parsed as JSON into `T`; a 400 `InvalidJson` when it is not JSON data or not that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.data_type != DataType::Json {
            return Err(ApiError::bad_request(
                "InvalidJson",
                "the event data must be JSON (dataType json)",
            ));
        }
        serde_json::from_slice(&self.data)
            .map_err(|e| ApiError::bad_request("InvalidJson", format!("the event data has the wrong shape: {e}")))
    }
}

/// The answer to a user event: optionally a message back to the sender, optionally a new connection state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserEventReply {
    body: Option<(DataType, Bytes)>,
    content_type: Option<String>,
    state: Option<ConnectionState>,
}

impl UserEventReply {
    /// Nothing back (204).
    pub fn none() -> Self {
        Self::default()
    }

    /// A message of `data_type` back to the sender (200).
    pub fn data(data_type: DataType, data: impl Into<Bytes>) -> Self {
        Self {
            body: Some((data_type, data.into())),
            content_type: None,
            state: None,
        }
    }

    /// Bytes of any media type back to an MQTT 5 sender (e.g. `image/png`); a value that is not a bounded
    /// `type/subtype` is ignored and the answer is `application/octet-stream`.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        let content_type = content_type.into();
        self.content_type = super::request::is_media_type(&content_type).then_some(content_type);
        self
    }

    /// The `Content-Type` the answer carries: the one set, else the data type's.
    pub fn content_type(&self) -> Option<&str> {
        let (data_type, _) = self.body.as_ref()?;
        Some(
            self.content_type
                .as_deref()
                .unwrap_or(super::request::reply_content_type(*data_type)),
        )
    }

    /// A text message back to the sender.
    pub fn text(text: impl Into<String>) -> Self {
        Self::data(DataType::Text, Bytes::from(text.into()))
    }

    /// A JSON message back to the sender.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, ApiError> {
        let json = serde_json::to_vec(value).map_err(|e| ApiError::internal("user event reply", e))?;
        Ok(Self::data(DataType::Json, json))
    }

    /// Replaces the connection's state (sent as `ce-connectionState`).
    pub fn with_state(mut self, state: ConnectionState) -> Self {
        self.state = Some(state);
        self
    }

    /// The message back, if any.
    pub fn body(&self) -> Option<(DataType, &Bytes)> {
        self.body.as_ref().map(|(data_type, data)| (*data_type, data))
    }

    /// The new state, if any.
    pub fn state(&self) -> Option<&ConnectionState> {
        self.state.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_views() {
        let message = UserMessage {
            data_type: DataType::Json,
            content_type: None,
            data: Bytes::from_static(br#"{"room":"r1"}"#),
        };
        assert_eq!(message.text(), Some(r#"{"room":"r1"}"#));
        let value: serde_json::Value = message.json().unwrap();
        assert_eq!(value["room"], "r1");
        let binary = UserMessage {
            data_type: DataType::Binary,
            content_type: None,
            data: Bytes::from_static(b"\xff"),
        };
        assert_eq!(binary.text(), None);
        assert_eq!(binary.json::<serde_json::Value>().unwrap_err().code(), "InvalidJson");
        let broken = UserMessage {
            data_type: DataType::Json,
            content_type: None,
            data: Bytes::from_static(b"{"),
        };
        assert_eq!(
            broken.json::<serde_json::Value>().unwrap_err().status(),
            warp::http::StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn replies_carry_data_and_state() {
        assert_eq!(UserEventReply::none().body(), None);
        let reply = UserEventReply::text("hi");
        assert_eq!(
            reply.body().map(|(t, d)| (t, d.clone())),
            Some((DataType::Text, Bytes::from_static(b"hi")))
        );
        let mut state = ConnectionState::new();
        state.insert("k", 1);
        let reply = UserEventReply::json(&serde_json::json!({"a": 1}))
            .unwrap()
            .with_state(state.clone());
        assert_eq!(reply.body().unwrap().0, DataType::Json);
        assert_eq!(reply.state(), Some(&state));
        let png = UserEventReply::data(DataType::Binary, Bytes::from_static(b"\x89PNG")).with_content_type("image/png");
        assert_eq!(png.content_type(), Some("image/png"));
        let odd = UserEventReply::data(DataType::Binary, Bytes::new()).with_content_type("not a type\n");
        assert_eq!(odd.content_type(), Some("application/octet-stream"));
        assert_eq!(UserEventReply::none().content_type(), None);
    }
}
