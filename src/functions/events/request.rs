//! The CloudEvents metadata of one upstream request (protocol reference §4): the `ce-*` headers parsed into
//! a typed [`CloudEvent`] before anything else happens, so later stages never look at raw headers.
//!
//! Header names are case-insensitive (the `http` crate normalises them); values must be UTF-8. A
//! `CloudEvent` is *unverified*: only [`super::verify`] turns it into a [`super::VerifiedEvent`], the one
//! type handlers receive.

use warp::http::header::CONTENT_TYPE;
use warp::http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ApiError;

/// CloudEvents attribute headers this function reads: the protocol crate's names, plus the abuse-protection
/// answer header only this side writes.
pub(super) mod headers {
    pub(crate) use webpubsub_protocol::cloudevents::{
        CONNECTION_ID, CONNECTION_STATE, EVENT_NAME, HUB, ID, PHYSICAL_CONNECTION_ID, SESSION_ID, SIGNATURE, SOURCE,
        SPEC_VERSION, SUBPROTOCOL, TIME, TYPE, USER_ID, WEBHOOK_REQUEST_ORIGIN,
    };
    /// The abuse-protection answer.
    pub(crate) const WEBHOOK_ALLOWED_ORIGIN: &str = "webhook-allowed-origin";
}

use webpubsub_protocol::cloudevents::{
    SYSTEM_EVENT_PREFIX as SYSTEM_TYPE_PREFIX, USER_EVENT_PREFIX as USER_TYPE_PREFIX,
};

/// What happened: the `ce-type` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `azure.webpubsub.sys.connect`: blocking; the answer accepts or rejects the client.
    Connect,
    /// `azure.webpubsub.sys.connected`: notification.
    Connected,
    /// `azure.webpubsub.sys.disconnected`: notification.
    Disconnected,
    /// `azure.webpubsub.sys.gp.joined`: notification; the connection joined a group (body `{"group"}`).
    GroupJoined,
    /// `azure.webpubsub.sys.gp.left`: notification; the connection left a group (body `{"group"}`).
    GroupLeft,
    /// `azure.webpubsub.user.<name>`: blocking; a message the client sent (`message` for raw frames).
    User(String),
}

impl EventKind {
    /// Parses a `ce-type` value; anything other than the four Web PubSub shapes is unknown.
    fn parse(event_type: &str) -> Option<Self> {
        if let Some(name) = strip_prefix_ignore_case(event_type, SYSTEM_TYPE_PREFIX) {
            return match name.to_ascii_lowercase().as_str() {
                "connect" => Some(Self::Connect),
                "connected" => Some(Self::Connected),
                "disconnected" => Some(Self::Disconnected),
                "gp.joined" => Some(Self::GroupJoined),
                "gp.left" => Some(Self::GroupLeft),
                _ => None,
            };
        }
        strip_prefix_ignore_case(event_type, USER_TYPE_PREFIX)
            .filter(|name| !name.is_empty())
            .map(|name| Self::User(name.to_owned()))
    }

    /// The unprefixed event name, as `ce-eventName` carries it.
    pub fn name(&self) -> &str {
        match self {
            Self::Connect => "connect",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::GroupJoined => "gp.joined",
            Self::GroupLeft => "gp.left",
            Self::User(name) => name,
        }
    }

    /// Whether `ce-eventName` fits this type: the unprefixed name, or for group events also the bare
    /// `joined` / `left` (the service's samples spell both).
    fn accepts_event_name(&self, event_name: &str) -> bool {
        event_name.eq_ignore_ascii_case(self.name())
            || matches!(self, Self::GroupJoined | Self::GroupLeft)
                && self
                    .name()
                    .get(3..)
                    .is_some_and(|bare| event_name.eq_ignore_ascii_case(bare))
    }
}

/// Longest `Content-Type` accepted for an MQTT user event (RFC 6838 bounds type and subtype at 127 each).
pub(super) const MAX_CONTENT_TYPE_LEN: usize = 255;

/// Whether `value` is a bounded `type/subtype[; parameters]` media type of RFC 6838 token characters.
pub(super) fn is_media_type(value: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    value.len() <= MAX_CONTENT_TYPE_LEN
        && !value.chars().any(char::is_control)
        && media_type
            .split_once('/')
            .is_some_and(|(kind, subtype)| token(kind) && token(subtype))
}

/// How a user event's payload is encoded, from its `Content-Type` (the client's `dataType`); the protocol
/// crate's type, shared with the emulator.
pub use webpubsub_protocol::DataType;

/// The `Content-Type` to answer a user event with (the service maps it back to the client's `dataType`):
/// text says its charset.
pub(crate) fn reply_content_type(data_type: DataType) -> &'static str {
    match data_type {
        DataType::Text => "text/plain; charset=utf-8",
        other => other.media_type(),
    }
}

/// The CloudEvents metadata of one request, not yet verified. Values share the request's header bytes
/// (no copies); each was checked to be non-blank UTF-8 when parsed.
#[derive(Debug, Clone)]
pub struct CloudEvent {
    event_type: HeaderText,
    kind: EventKind,
    id: HeaderText,
    source: HeaderText,
    time: Option<HeaderText>,
    hub: HeaderText,
    connection_id: HeaderText,
    user_id: Option<HeaderText>,
    subprotocol: Option<HeaderText>,
    connection_state: Option<HeaderText>,
    physical_connection_id: Option<HeaderText>,
    session_id: Option<HeaderText>,
    data_type: Option<DataType>,
    /// An MQTT 5 user event's `Content-Type` when it is none of the three data types' (then `Binary`).
    other_content_type: Option<HeaderText>,
    // Kept apart from the metadata above: only `verify` reads it, and `Debug` never shows it.
    signature: Signature,
}

/// A header value checked to be non-blank UTF-8 (trimmed when read).
#[derive(Clone)]
struct HeaderText(HeaderValue);

impl HeaderText {
    fn as_str(&self) -> &str {
        // Checked when parsed (`optional`), so this never falls back.
        std::str::from_utf8(self.0.as_bytes()).map_or("", str::trim)
    }
}

impl std::fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The raw `ce-signature` value. `Debug` hides it: signatures are never logged.
#[derive(Clone, Default)]
pub(super) struct Signature(Option<HeaderText>);

impl Signature {
    pub(super) fn as_deref(&self) -> Option<&str> {
        self.0.as_ref().map(HeaderText::as_str)
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Signature(<redacted>)"
        } else {
            "Signature(None)"
        })
    }
}

/// Why the headers do not describe a Web PubSub CloudEvent. Each maps to a 400 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header {0} is required")]
    Missing(&'static str),
    #[error("header {0} is not valid")]
    Invalid(&'static str),
    #[error("event type {0:?} is not a Web PubSub event this function handles")]
    UnknownEventType(String),
    #[error("header ce-eventName does not match ce-type")]
    EventNameMismatch,
    #[error(
        "user event content type must be text/plain, application/json or application/octet-stream (MQTT clients: any media type of at most 255 characters)"
    )]
    UnsupportedContentType,
}

impl HeaderError {
    /// The stable code of the JSON error reply.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => "MissingHeader",
            Self::Invalid(_) | Self::EventNameMismatch => "InvalidHeader",
            Self::UnknownEventType(_) => "UnknownEventType",
            Self::UnsupportedContentType => "UnsupportedContentType",
        }
    }
}

impl From<HeaderError> for ApiError {
    fn from(error: HeaderError) -> Self {
        let header = match &error {
            HeaderError::Missing(name) | HeaderError::Invalid(name) => Some(*name),
            _ => None,
        };
        let api = match error {
            HeaderError::UnsupportedContentType => ApiError::new(
                warp::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                error.code(),
                error.to_string(),
            ),
            _ => ApiError::bad_request(error.code(), error.to_string()),
        };
        match header {
            Some(name) => api.with_detail("header", name),
            None => api,
        }
    }
}

impl CloudEvent {
    /// Parses the CloudEvents headers of a POST. `ce-signature` may be absent here (that is a 401, decided
    /// by verification); every other required attribute missing is a `HeaderError`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, HeaderError> {
        let spec_version = required(headers, &names::SPEC_VERSION)?;
        // CloudEvents 1.x; a different major version would change the attribute set.
        if spec_version.as_str() != "1" && !spec_version.as_str().starts_with("1.") {
            return Err(HeaderError::Invalid(headers::SPEC_VERSION));
        }
        let event_type = required(headers, &names::TYPE)?;
        let kind = EventKind::parse(event_type.as_str())
            .ok_or_else(|| HeaderError::UnknownEventType(event_type.as_str().to_owned()))?;
        let event_name = required(headers, &names::EVENT_NAME)?;
        if !kind.accepts_event_name(event_name.as_str()) {
            return Err(HeaderError::EventNameMismatch);
        }
        let physical_connection_id = optional(headers, &names::PHYSICAL_CONNECTION_ID)?;
        let (data_type, other_content_type) = match kind {
            EventKind::User(_) => {
                let content_type = optional(headers, &CONTENT_TYPE)?;
                match content_type.as_ref().map_or(Some(DataType::Binary), |value| {
                    DataType::from_content_type(value.as_str())
                }) {
                    Some(data_type) => (Some(data_type), None),
                    // MQTT 5 PUBLISH carries any content type; the payload is bytes to this handler.
                    None if physical_connection_id.is_some()
                        && content_type.as_ref().is_some_and(|value| is_media_type(value.as_str())) =>
                    {
                        (Some(DataType::Binary), content_type)
                    }
                    None => return Err(HeaderError::UnsupportedContentType),
                }
            }
            _ => (None, None),
        };
        Ok(Self {
            event_type,
            kind,
            id: required(headers, &names::ID)?,
            source: required(headers, &names::SOURCE)?,
            time: optional(headers, &names::TIME)?,
            hub: required(headers, &names::HUB)?,
            connection_id: required(headers, &names::CONNECTION_ID)?,
            user_id: optional(headers, &names::USER_ID)?,
            subprotocol: optional(headers, &names::SUBPROTOCOL)?,
            connection_state: optional(headers, &names::CONNECTION_STATE)?,
            physical_connection_id,
            session_id: optional(headers, &names::SESSION_ID)?,
            data_type,
            other_content_type,
            signature: Signature(optional(headers, &names::SIGNATURE)?),
        })
    }

    /// `ce-type` as received, e.g. `azure.webpubsub.sys.connected`.
    pub fn event_type(&self) -> &str {
        self.event_type.as_str()
    }

    /// The parsed event type.
    pub fn kind(&self) -> &EventKind {
        &self.kind
    }

    /// `ce-id`: the event id (retries repeat it).
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// `ce-source`, e.g. `/hubs/chat/client/<connectionId>`.
    pub fn source(&self) -> &str {
        self.source.as_str()
    }

    /// `ce-time`, RFC 3339, when sent.
    pub fn time(&self) -> Option<&str> {
        self.time.as_ref().map(HeaderText::as_str)
    }

    /// `ce-hub`, as sent (compare case-insensitively).
    pub fn hub(&self) -> &str {
        self.hub.as_str()
    }

    /// `ce-connectionId`.
    pub fn connection_id(&self) -> &str {
        self.connection_id.as_str()
    }

    /// `ce-userId`: absent when the connection has no user.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_ref().map(HeaderText::as_str)
    }

    /// `ce-subprotocol`: the connection's subprotocol, when one was chosen.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_ref().map(HeaderText::as_str)
    }

    /// `ce-connectionState` as sent (base64 JSON by convention); see [`super::ConnectionState`].
    pub fn connection_state_header(&self) -> Option<&str> {
        self.connection_state.as_ref().map(HeaderText::as_str)
    }

    /// `ce-physicalConnectionId` (MQTT).
    pub fn physical_connection_id(&self) -> Option<&str> {
        self.physical_connection_id.as_ref().map(HeaderText::as_str)
    }

    /// `ce-sessionId` (MQTT, not on connect).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_ref().map(HeaderText::as_str)
    }

    /// The payload encoding of a user event (`None` for system events).
    pub fn data_type(&self) -> Option<DataType> {
        self.data_type
    }

    /// An MQTT 5 user event's `Content-Type` as sent, when it is none of the three data types' own (its
    /// [`Self::data_type`] is then `Binary`).
    pub fn other_content_type(&self) -> Option<&str> {
        self.other_content_type.as_ref().map(HeaderText::as_str)
    }

    pub(super) fn signature(&self) -> &Signature {
        &self.signature
    }
}

fn required(headers: &HeaderMap, name: &'static HeaderName) -> Result<HeaderText, HeaderError> {
    optional(headers, name)?.ok_or(HeaderError::Missing(name.as_str()))
}

/// A header value as UTF-8 text; a blank value counts as absent. Repeated headers are refused: each
/// attribute has exactly one value, and a second one would be ambiguous.
fn optional(headers: &HeaderMap, name: &'static HeaderName) -> Result<Option<HeaderText>, HeaderError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(HeaderError::Invalid(name.as_str()));
    }
    let text = std::str::from_utf8(value.as_bytes()).map_err(|_| HeaderError::Invalid(name.as_str()))?;
    Ok((!text.trim().is_empty()).then(|| HeaderText(value.clone())))
}

/// The attribute names, parsed once: a lookup by `&str` would re-parse the name on every request.
mod names {
    use super::headers;
    use warp::http::HeaderName;

    pub(super) static SPEC_VERSION: HeaderName = HeaderName::from_static(headers::SPEC_VERSION);
    pub(super) static TYPE: HeaderName = HeaderName::from_static(headers::TYPE);
    pub(super) static EVENT_NAME: HeaderName = HeaderName::from_static(headers::EVENT_NAME);
    pub(super) static ID: HeaderName = HeaderName::from_static(headers::ID);
    pub(super) static SOURCE: HeaderName = HeaderName::from_static(headers::SOURCE);
    pub(super) static TIME: HeaderName = HeaderName::from_static(headers::TIME);
    pub(super) static HUB: HeaderName = HeaderName::from_static(headers::HUB);
    pub(super) static CONNECTION_ID: HeaderName = HeaderName::from_static(headers::CONNECTION_ID);
    pub(super) static USER_ID: HeaderName = HeaderName::from_static(headers::USER_ID);
    pub(super) static SUBPROTOCOL: HeaderName = HeaderName::from_static(headers::SUBPROTOCOL);
    pub(super) static CONNECTION_STATE: HeaderName = HeaderName::from_static(headers::CONNECTION_STATE);
    pub(super) static PHYSICAL_CONNECTION_ID: HeaderName = HeaderName::from_static(headers::PHYSICAL_CONNECTION_ID);
    pub(super) static SESSION_ID: HeaderName = HeaderName::from_static(headers::SESSION_ID);
    pub(super) static SIGNATURE: HeaderName = HeaderName::from_static(headers::SIGNATURE);
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

#[cfg(test)]
pub(super) mod tests;
