//! The payload of a send ([`Message`] with its [`ContentType`]) and the option sets the operations take
//! ([`SendOptions`], [`CloseOptions`], [`GenerateTokenOptions`], [`ListConnectionsOptions`]): plain
//! values, validated when a request is built from them.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;

use crate::webpubsub::token::ClientType;
use crate::webpubsub::validate::ValidationError;

/// The payload type of a message, which decides how clients receive it and the `Content-Type` a send
/// carries ([`ContentType::media_type`]): the protocol crate's one [`webpubsub_protocol::DataType`],
/// named here for the header it sets.
pub use webpubsub_protocol::DataType as ContentType;

/// A message payload with its content type. Cloning shares the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    content_type: ContentType,
    body: Bytes,
}

impl Message {
    /// A `text/plain` message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content_type: ContentType::Text,
            body: Bytes::from(text.into()),
        }
    }

    /// An `application/json` message holding `value` serialised.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, ValidationError> {
        let body = serde_json::to_vec(value).map_err(|_| ValidationError::InvalidJson)?;
        Ok(Self {
            content_type: ContentType::Json,
            body: Bytes::from(body),
        })
    }

    /// An `application/json` message from JSON text, which must parse.
    pub fn json_raw(json: impl Into<Bytes>) -> Result<Self, ValidationError> {
        let body = json.into();
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|_| ValidationError::InvalidJson)?;
        Ok(Self {
            content_type: ContentType::Json,
            body,
        })
    }

    /// An `application/octet-stream` message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self {
            content_type: ContentType::Binary,
            body: data.into(),
        }
    }

    /// How the body is sent (JSON, text or binary).
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// The message bytes as sent.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("content_type", &self.content_type)
            .field("len", &self.body.len())
            .finish()
    }
}

/// Options of the send operations. `excluded` applies to all and group sends; `filter` to all, group
/// and user sends; `ttl_seconds` to every send. Setting one where it does not apply is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Connection ids that must not receive the message.
    pub excluded: Vec<String>,
    /// OData filter on `userId`, `connectionId`, `groups`.
    pub filter: Option<String>,
    /// `messageTtlSeconds`, 0–300 (0 = never expire).
    pub ttl_seconds: Option<u32>,
}

/// Options of the close-connections operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseOptions {
    /// Connection ids to leave open (not used by [`super::ApiRequest::close_connection`]).
    pub excluded: Vec<String>,
    /// Reason given to the clients.
    pub reason: Option<String>,
}

/// Options of `:generateToken` (the service signs the token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateTokenOptions {
    /// The token's user id (`sub`), if any.
    pub user_id: Option<String>,
    /// Roles granted to the connection (e.g. `webpubsub.joinLeaveGroup.<group>`).
    pub roles: Vec<String>,
    /// Groups the connection joins when it connects.
    pub groups: Vec<String>,
    /// At least 1; the service defaults to 60.
    pub minutes_to_expire: Option<u32>,
    /// Sent only when not [`ClientType::Default`].
    pub client_type: ClientType,
}

/// Paging options for listing a group's connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListConnectionsOptions {
    /// `maxpagesize`, 1–200.
    pub max_page_size: Option<u32>,
    /// `top`: at most this many connections in all.
    pub top: Option<u32>,
    /// From the previous page's [`crate::webpubsub::GroupConnectionsPage::continuation_token`].
    pub continuation_token: Option<String>,
}
