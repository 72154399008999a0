//! The reply to `connect`: 204 when the answer changes nothing the client token said, 200 JSON with only
//! the fields that change, or a rejection (the JSON error, or MQTT CONNACK reason codes for MQTT clients).

use bytes::Bytes;
use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::super::request::headers;
use super::ConnectRequest;
use super::body::ConnectBody;
use super::body::MqttUserProperty;
use super::policy::ConnectResponse;
use crate::error::ApiError;

/// 204 when the answer changes nothing the token said; otherwise 200 with only the fields that change.
pub(super) fn reply(request: &ConnectRequest<'_>, response: &ConnectResponse) -> Response {
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
        reply.headers_mut().insert(headers::CONNECTION_STATE, value);
    }
    reply
}

pub(super) fn same_set<'s>(list: &[String], other: impl Iterator<Item = &'s str> + Clone) -> bool {
    list.iter().all(|item| other.clone().any(|o| o == item)) && other.clone().all(|o| list.iter().any(|item| item == o))
}

#[derive(Serialize)]
pub(super) struct ConnectReply<'r> {
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
pub(super) struct MqttReply<'r> {
    #[serde(rename = "userProperties")]
    user_properties: &'r [MqttUserProperty],
}

/// A refused connect as the client will see it. WebSocket clients get the JSON error with its status (the
/// service passes 4xx to the client's upgrade); MQTT clients get the CONNACK reason of their version in
/// `{"mqtt":{"code","reason"}}`.
pub(crate) fn rejection(body: Option<&ConnectBody<'_>>, error: ApiError) -> Response {
    let Some(mqtt) = body.and_then(|body| body.mqtt.as_ref()) else {
        return error.into_response();
    };
    let code = mqtt_code(mqtt.protocol_version, error.status());
    let json = serde_json::json!({ "mqtt": { "code": code, "reason": error.message() } });
    warp::reply::with_status(warp::reply::json(&json), error.status()).into_response()
}

/// CONNACK codes as the official handlers map statuses: MQTT 3.1.1 return codes, MQTT 5 reason codes.
/// 400 → bad user name or password (4 / 134), 401 and 403 → not authorized (5 / 135), 5xx → server
/// unavailable (3 / 136); other refusals: v5 "implementation specific error" (131), v3.1.1 not authorized.
pub(super) fn mqtt_code(protocol_version: u8, status: StatusCode) -> u8 {
    let (v3, v5) = match status {
        StatusCode::BAD_REQUEST => (4, 0x86),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (5, 0x87),
        status if status.is_server_error() => (3, 0x88),
        _ => (5, 0x83),
    };
    if protocol_version >= 5 { v5 } else { v3 }
}
