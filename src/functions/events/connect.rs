//! The `connect` event (protocol reference §4): its request body, the configured policy that drafts an
//! answer (subprotocol, user id, default groups and roles), the final checks after the application's hook,
//! and the reply: 204, 200 JSON, or a rejection (plain JSON error, or MQTT reason codes for MQTT clients).
//!
//! The body is borrowed from the request bytes where JSON allows it, and parsed leniently where the service's
//! shapes are loose (a claim may be a string or a list; odd values are skipped, never a 500).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::connection_state::ConnectionState;
use super::settings::{ConnectPolicy, UserIdSource};
use super::verify::VerifiedEvent;
use crate::error::ApiError;

/// Claim names that carry roles: the JWT short name and the .NET claim-type URI.
const ROLE_CLAIMS: [&str; 2] = ["role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"];
/// The claim that lists the groups a client token joins on connect.
const GROUP_CLAIM: &str = "webpubsub.group";
/// Longest user id accepted from a claim or the query (the service's own limit is not documented).
pub const MAX_USER_ID_CHARS: usize = 1024;

/// A verified `connect` request: the event metadata and its parsed body. Handed to
/// [`super::EventHandler::on_connect`].
#[derive(Debug)]
pub struct ConnectRequest<'a> {
    pub event: &'a VerifiedEvent,
    pub body: ConnectBody<'a>,
}

/// The `connect` request body: `{"claims","query","headers","subprotocols","clientCertificates","mqtt"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectBody<'a> {
    /// The client token's claims (name → values).
    #[serde(borrow, default)]
    pub claims: Multimap<'a>,
    /// The query of the client's connect URL (client-supplied: trust it only by configuration).
    #[serde(borrow, default)]
    pub query: Multimap<'a>,
    /// The client's handshake headers (client-supplied); names compare case-insensitively.
    #[serde(borrow, default)]
    pub headers: Multimap<'a>,
    /// The subprotocols the client offered, in its order.
    #[serde(borrow, default)]
    pub subprotocols: Values<'a>,
    /// Client certificates, when the service asks for them.
    #[serde(borrow, default)]
    pub client_certificates: Option<Vec<ClientCertificate<'a>>>,
    /// Present for MQTT clients only.
    #[serde(borrow, default)]
    pub mqtt: Option<MqttConnect<'a>>,
}

impl<'a> ConnectBody<'a> {
    /// Parses the body; any JSON that is not an object of the documented shape is a 400.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
        // serde would also accept a JSON array for a struct; the protocol sends an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "InvalidJson",
                "the connect event needs a JSON object body",
            ));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request("InvalidJson", format!("the connect body is not valid: {e}")))
    }

    /// Whether this is an MQTT client's connect.
    pub fn is_mqtt(&self) -> bool {
        self.mqtt.is_some()
    }

    fn token_roles(&self) -> impl Iterator<Item = &str> + Clone {
        ROLE_CLAIMS.into_iter().flat_map(|claim| self.claims.values(claim))
    }

    fn token_groups(&self) -> impl Iterator<Item = &str> + Clone {
        self.claims.values(GROUP_CLAIM)
    }
}

/// A client certificate presented on connect.
#[derive(Debug, Deserialize)]
pub struct ClientCertificate<'a> {
    #[serde(borrow, default)]
    pub thumbprint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
}

/// The MQTT part of a connect body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MqttConnect<'a> {
    /// 4 (MQTT 3.1.1) or 5 (MQTT 5.0).
    #[serde(default)]
    pub protocol_version: u8,
    #[serde(borrow, default)]
    pub username: Option<Cow<'a, str>>,
    /// Base64 of the CONNECT password. Secret: `Debug` hides it.
    #[serde(borrow, default)]
    pub password: Option<Cow<'a, str>>,
    #[serde(default)]
    pub user_properties: Option<Vec<MqttUserProperty>>,
}

impl fmt::Debug for MqttConnect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConnect")
            .field("protocol_version", &self.protocol_version)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// An MQTT 5 user property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttUserProperty {
    pub name: String,
    pub value: String,
}

/// Names to string values (`claims`, `query`, `headers`), in body order. Values may arrive as one string or
/// a list; numbers and booleans are kept as text; nested objects and nulls are skipped.
#[derive(Default, Clone)]
pub struct Multimap<'a>(Vec<(Cow<'a, str>, Values<'a>)>);

impl<'a> Multimap<'a> {
    /// The values under exactly `name`.
    pub fn values(&self, name: &str) -> impl Iterator<Item = &str> + Clone {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .flat_map(|(_, values)| values.iter())
    }

    /// The values under `name`, ignoring ASCII case (for header names).
    pub fn values_ignore_case(&self, name: &str) -> impl Iterator<Item = &str> + Clone {
        self.0
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, values)| values.iter())
    }

    /// The first value under exactly `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).next()
    }

    /// The names present, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(key, _)| &**key)
    }
}

impl fmt::Debug for Multimap<'_> {
    // Values may hold tokens or cookies: show names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Multimap")
            .field(&self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Multimap<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MultimapVisitor;
        impl<'de> Visitor<'de> for MultimapVisitor {
            type Value = Multimap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of names to values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Multimap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(Text(key)) = map.next_key()? {
                    let values: Values<'de> = map.next_value()?;
                    entries.push((key, values));
                }
                Ok(Multimap(entries))
            }
        }
        deserializer.deserialize_any(MultimapVisitor)
    }
}

/// A lenient list of strings: one string, a list of scalars, or null. The first value is stored inline:
/// nearly every claim, query parameter and header has exactly one, so most lists never allocate.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Values<'a> {
    first: Option<Cow<'a, str>>,
    rest: Vec<Cow<'a, str>>,
}

impl<'a> Values<'a> {
    fn one(value: Cow<'a, str>) -> Self {
        Self {
            first: Some(value),
            rest: Vec::new(),
        }
    }

    fn push(&mut self, value: Cow<'a, str>) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.rest.push(value);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.first.iter().chain(&self.rest).map(|value| &**value)
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Values<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;
        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = Values<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Values::default();
                while let Some(Scalar(value)) = seq.next_element()? {
                    if let Some(value) = value {
                        values.push(value);
                    }
                }
                Ok(values)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Values::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Values::default())
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_any(ValuesVisitor)
    }
}

/// A string borrowed from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// One list element: a scalar as text, or `None` for null and nested values.
struct Scalar<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq)?;
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Scalar(None))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// The answer to a `connect`, drafted from settings and refined by the application's hook.
///
/// Fields describe the connection as it should be, not a difference: the reply sends a field only when it
/// changes what the client token already said (the service *replaces* roles and groups it is sent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectResponse {
    /// The connection's user id.
    pub user_id: Option<String>,
    /// Groups the connection joins: the token's plus the configured defaults.
    pub groups: Vec<String>,
    /// The connection's roles: the token's plus the configured defaults.
    pub roles: Vec<String>,
    /// The chosen subprotocol; must be one the client offered.
    pub subprotocol: Option<String>,
    /// Initial connection state (`ce-connectionState`); sent when not empty.
    pub state: ConnectionState,
    /// MQTT 5 user properties for the CONNACK.
    pub mqtt_user_properties: Vec<MqttUserProperty>,
}

impl ConnectResponse {
    /// Adds `group` unless already present.
    pub fn add_group(&mut self, group: impl Into<String>) {
        push_unique(&mut self.groups, group.into());
    }

    /// Adds `role` unless already present.
    pub fn add_role(&mut self, role: impl Into<String>) {
        push_unique(&mut self.roles, role.into());
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Step 1: the answer the settings give, before the application's hook.
pub fn draft(policy: &ConnectPolicy, request: &ConnectRequest<'_>) -> Result<ConnectResponse, ApiError> {
    let body = &request.body;
    let subprotocol = choose_subprotocol(policy, body)?;
    let user_id = resolve_user_id(&policy.user_id_source, request.event.user_id(), body)?;

    let mut groups = Vec::new();
    let mut roles = Vec::new();
    body.token_groups()
        .for_each(|group| push_unique(&mut groups, group.to_owned()));
    body.token_roles()
        .for_each(|role| push_unique(&mut roles, role.to_owned()));
    // A template naming {userId} needs a user; the others apply to every connection.
    let render = |template: &crate::auth::template::Template| match user_id.as_deref() {
        Some(user_id) => Some(template.render(user_id)),
        None if template.uses_user_id() => None,
        None => Some(template.render("")),
    };
    for group in policy.default_groups.iter().filter_map(render) {
        if crate::webpubsub::validate::group(&group).is_err() {
            return Err(ApiError::bad_request(
                "InvalidUserId",
                "the user id does not fit in a group name (1 to 1024 characters)",
            ));
        }
        push_unique(&mut groups, group);
    }
    for role in policy.default_roles.iter().filter_map(render) {
        push_unique(&mut roles, role);
    }
    let response = ConnectResponse {
        user_id,
        groups,
        roles,
        subprotocol,
        ..ConnectResponse::default()
    };
    Ok(response)
}

/// The first subprotocol of the preference list that the client offered. None offered → none chosen; MQTT
/// clients keep theirs (the service handles MQTT framing); offers none of which is acceptable → 400, a clear
/// refusal instead of a handshake the client would fail anyway.
fn choose_subprotocol(policy: &ConnectPolicy, body: &ConnectBody<'_>) -> Result<Option<String>, ApiError> {
    if body.subprotocols.is_empty() || body.is_mqtt() {
        return Ok(None);
    }
    policy
        .subprotocols
        .iter()
        .find(|preferred| {
            body.subprotocols
                .iter()
                .any(|offered| offered.eq_ignore_ascii_case(preferred))
        })
        .map(|chosen| Some(chosen.clone()))
        .ok_or_else(|| {
            ApiError::bad_request("UnsupportedSubprotocol", "none of the offered subprotocols is accepted")
                .with_detail("accepted", &policy.subprotocols)
        })
}

/// The connection's user id per [`UserIdSource`]. A claim overrides the token's subject (both come from the
/// signed token); the query, being client-supplied, is used only when the token names no user.
fn resolve_user_id(
    source: &UserIdSource,
    token_user: Option<&str>,
    body: &ConnectBody<'_>,
) -> Result<Option<String>, ApiError> {
    let chosen = match source {
        UserIdSource::Token => token_user,
        UserIdSource::Claim(claim) => body.claims.first(claim).or(token_user),
        UserIdSource::Query(param) => token_user.or_else(|| body.query.first(param)),
    };
    match chosen {
        None => Ok(None),
        Some(user_id) if Some(user_id) == token_user => Ok(Some(user_id.to_owned())),
        Some(user_id) => {
            check_user_id(user_id)?;
            Ok(Some(user_id.to_owned()))
        }
    }
}

/// A user id taken from a claim or the query: 1 to 1024 characters, not blank, no control characters.
fn check_user_id(user_id: &str) -> Result<(), ApiError> {
    let too_long = user_id.len() > MAX_USER_ID_CHARS && user_id.chars().count() > MAX_USER_ID_CHARS;
    if user_id.trim().is_empty() || too_long || user_id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "InvalidUserId",
            format!("the user id must be 1 to {MAX_USER_ID_CHARS} characters, not blank, without control characters"),
        ));
    }
    Ok(())
}

/// Step 3: the checks no hook can skip, then the reply. Policy refusals are 401 (`UserIdRequired`);
/// an answer the hook got wrong is the application's fault (500), never the client's.
pub fn finish(
    policy: &ConnectPolicy,
    request: &ConnectRequest<'_>,
    response: ConnectResponse,
) -> Result<Response, ApiError> {
    if policy.require_user_id && response.user_id.is_none() {
        return Err(ApiError::unauthorized("a user id is required to connect").with_detail("reason", "UserIdRequired"));
    }
    if let Some(subprotocol) = &response.subprotocol
        && !request
            .body
            .subprotocols
            .iter()
            .any(|offered| offered.eq_ignore_ascii_case(subprotocol))
    {
        return Err(ApiError::internal(
            "connect hook",
            "chose a subprotocol the client did not offer",
        ));
    }
    if response.user_id.as_deref() == Some("") {
        return Err(ApiError::internal("connect hook", "set an empty user id"));
    }
    if let Err(error) = response
        .groups
        .iter()
        .try_for_each(|group| crate::webpubsub::validate::group(group))
    {
        return Err(ApiError::internal("connect hook", error));
    }
    if response.roles.iter().any(String::is_empty) {
        return Err(ApiError::internal("connect hook", "set an empty role"));
    }
    Ok(reply(request, &response))
}

/// 204 when the answer changes nothing the token said; otherwise 200 with only the fields that change.
fn reply(request: &ConnectRequest<'_>, response: &ConnectResponse) -> Response {
    let body = &request.body;
    let user_id = response
        .user_id
        .as_deref()
        .filter(|user_id| Some(*user_id) != request.event.user_id());
    let groups = (!same_set(&response.groups, body.token_groups())).then_some(response.groups.as_slice());
    let roles = (!same_set(&response.roles, body.token_roles())).then_some(response.roles.as_slice());
    let mqtt = (!response.mqtt_user_properties.is_empty()).then_some(MqttReply {
        user_properties: &response.mqtt_user_properties,
    });
    let wire = ConnectReply {
        user_id,
        groups,
        roles,
        subprotocol: response.subprotocol.as_deref(),
        mqtt,
    };

    let mut reply = if wire.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        // Serialising borrowed strings cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        let mut reply = Response::new(Bytes::from(json).into());
        reply
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        reply
    };
    if !response.state.is_empty()
        && let Ok(value) = HeaderValue::from_str(&response.state.encode())
    {
        reply
            .headers_mut()
            .insert(super::cloud_event::headers::CONNECTION_STATE, value);
    }
    reply
}

fn same_set<'s>(list: &[String], other: impl Iterator<Item = &'s str> + Clone) -> bool {
    list.iter().all(|item| other.clone().any(|o| o == item)) && other.clone().all(|o| list.iter().any(|item| item == o))
}

#[derive(Serialize)]
struct ConnectReply<'r> {
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    user_id: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'r [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'r [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subprotocol: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt: Option<MqttReply<'r>>,
}

impl ConnectReply<'_> {
    fn is_empty(&self) -> bool {
        self.user_id.is_none()
            && self.groups.is_none()
            && self.roles.is_none()
            && self.subprotocol.is_none()
            && self.mqtt.is_none()
    }
}

#[derive(Serialize)]
struct MqttReply<'r> {
    #[serde(rename = "userProperties")]
    user_properties: &'r [MqttUserProperty],
}

/// A refused connect as the client will see it. WebSocket clients get the JSON error with its status (the
/// service passes 4xx to the client's upgrade); MQTT clients get the CONNACK reason of their version in
/// `{"mqtt":{"code","reason"}}`.
pub fn rejection(body: Option<&ConnectBody<'_>>, error: ApiError) -> Response {
    let Some(mqtt) = body.and_then(|body| body.mqtt.as_ref()) else {
        return error.into_response();
    };
    let code = mqtt_code(mqtt.protocol_version, error.status());
    let json = serde_json::json!({ "mqtt": { "code": code, "reason": error.message() } });
    warp::reply::with_status(warp::reply::json(&json), error.status()).into_response()
}

/// CONNACK codes: MQTT 3.1.1 return codes, MQTT 5 reason codes.
pub fn mqtt_code(protocol_version: u8, status: StatusCode) -> u8 {
    let v5 = protocol_version >= 5;
    match status {
        // Bad user name or password.
        StatusCode::UNAUTHORIZED => {
            if v5 {
                0x86
            } else {
                4
            }
        }
        // Not authorized.
        StatusCode::FORBIDDEN => {
            if v5 {
                0x87
            } else {
                5
            }
        }
        // Server unavailable.
        status if status.is_server_error() => {
            if v5 {
                0x88
            } else {
                3
            }
        }
        // Other refusals: v5 "implementation specific error" (valid CONNECT, not accepted); v3.1.1 has
        // nothing closer than "not authorized".
        _ => {
            if v5 {
                0x83
            } else {
                5
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_full_body_borrowing_plain_strings() {
        let json = br#"{
            "claims": {"sub": ["alice"], "role": ["webpubsub.sendToGroup"], "iat": [1700000000], "nested": [{"a": 1}], "name": "Alice"},
            "query": {"access_token": ["secret"], "room": ["lobby", "other"]},
            "headers": {"User-Agent": ["test"]},
            "subprotocols": ["json.webpubsub.azure.v1", "protobuf.webpubsub.azure.v1"],
            "clientCertificates": [{"thumbprint": "ABC", "content": "PEM"}]
        }"#;
        let body = ConnectBody::parse(json).unwrap();
        assert_eq!(body.claims.first("sub"), Some("alice"));
        assert!(matches!(body.claims.0[0].1.first, Some(Cow::Borrowed(_))));
        assert_eq!(body.claims.first("iat"), Some("1700000000"));
        assert_eq!(body.claims.first("nested"), None);
        assert_eq!(body.claims.first("name"), Some("Alice"));
        assert_eq!(body.query.values("room").collect::<Vec<_>>(), ["lobby", "other"]);
        assert_eq!(
            body.headers.values_ignore_case("user-agent").collect::<Vec<_>>(),
            ["test"]
        );
        assert_eq!(body.subprotocols.len(), 2);
        assert_eq!(
            body.subprotocols.iter().collect::<Vec<_>>(),
            ["json.webpubsub.azure.v1", "protobuf.webpubsub.azure.v1"]
        );
        assert_eq!(
            body.client_certificates.as_ref().unwrap()[0].thumbprint.as_deref(),
            Some("ABC")
        );
        assert!(!body.is_mqtt());
    }

    #[test]
    fn nulls_and_missing_parts_are_empty() {
        let body = ConnectBody::parse(br#"{"claims": null, "subprotocols": null}"#).unwrap();
        assert!(body.subprotocols.is_empty());
        assert_eq!(body.claims.names().count(), 0);
        let body = ConnectBody::parse(b"{}").unwrap();
        assert!(body.query.first("x").is_none());
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let body = ConnectBody::parse(br#"{"claims": {"na\u006de": ["a\"b"]}}"#).unwrap();
        assert_eq!(body.claims.first("name"), Some("a\"b"));
    }

    #[test]
    fn malformed_bodies_are_400() {
        for json in [
            &b""[..],
            b"  ",
            b"{",
            b"[]",
            b"\"x\"",
            b"{\"claims\": 5}",
            b"{\"mqtt\": 5}",
        ] {
            let error = ConnectBody::parse(json).unwrap_err();
            assert_eq!(
                error.status(),
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(json)
            );
            assert_eq!(error.code(), "InvalidJson");
        }
    }

    #[test]
    fn debug_hides_values_and_mqtt_passwords() {
        let body = ConnectBody::parse(
            br#"{"query": {"access_token": ["tok-secret"]}, "mqtt": {"protocolVersion": 5, "username": "u", "password": "cHctc2VjcmV0"}}"#,
        )
        .unwrap();
        let shown = format!("{body:?}");
        assert!(shown.contains("access_token"), "{shown}");
        assert!(
            !shown.contains("tok-secret") && !shown.contains("cHctc2VjcmV0"),
            "{shown}"
        );
        assert!(body.is_mqtt());
    }

    #[test]
    fn mqtt_codes_follow_the_protocol_version() {
        assert_eq!(mqtt_code(4, StatusCode::UNAUTHORIZED), 4);
        assert_eq!(mqtt_code(4, StatusCode::FORBIDDEN), 5);
        assert_eq!(mqtt_code(4, StatusCode::BAD_REQUEST), 5);
        assert_eq!(mqtt_code(4, StatusCode::INTERNAL_SERVER_ERROR), 3);
        assert_eq!(mqtt_code(5, StatusCode::UNAUTHORIZED), 134);
        assert_eq!(mqtt_code(5, StatusCode::FORBIDDEN), 135);
        assert_eq!(mqtt_code(5, StatusCode::BAD_REQUEST), 131);
        assert_eq!(mqtt_code(5, StatusCode::INTERNAL_SERVER_ERROR), 136);
    }

    #[test]
    fn same_set_ignores_order_and_duplicates() {
        let list = vec!["a".to_owned(), "b".to_owned()];
        assert!(same_set(&list, ["b", "a"].into_iter()));
        assert!(same_set(&list, ["b", "a", "a"].into_iter()));
        assert!(!same_set(&list, ["a"].into_iter()));
        assert!(!same_set(&list, ["a", "b", "c"].into_iter()));
        assert!(same_set(&[], std::iter::empty()));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ConnectBody::parse(&bytes);
        }

        #[test]
        fn parsing_json_shaped_input_never_panics(json in r#"\{"(claims|query|headers|subprotocols|mqtt)": ?(null|\[\]|\{\}|"x"|\[1, ?"a", ?null\]|\{"k": ?\["v"\]\}|\{"protocolVersion": ?5\})\}"#) {
            let _ = ConnectBody::parse(json.as_bytes());
        }
    }
}
