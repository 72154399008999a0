//! Before the upgrade: the hub from the path or query, the token (query or `Authorization`), a
//! reliable client's resume, the blocking `connect` event and the chosen subprotocol; then the
//! HTTP upgrade itself with small socket buffers.

use std::sync::Arc;

use futures_util::SinkExt as _;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply as _, Response};

use super::session::{close_message, drain_until_closed, run_socket};
use super::*;
use crate::connection::{Connection, Identity, new_connection_id};
use crate::protocol::Protocol;
use crate::service::{Service, normalize_url_tail};
use crate::upstream::{ConnectDecision, ConnectOutcome, ConnectRequest};
use webpubsub_protocol::jwt::{self as token, TokenError};
use webpubsub_protocol::names;

/// The parts of an upgrade request needed to finish it.
pub(super) struct UpgradeRequest {
    pub(super) key: String,
    pub(super) on_upgrade: OnUpgrade,
}

impl UpgradeRequest {
    /// `Some` for a valid RFC 6455 upgrade request (GET is checked by the route).
    pub(super) fn from(headers: &HeaderMap, on_upgrade: Option<OnUpgrade>) -> Option<UpgradeRequest> {
        let has_token = |name: warp::http::header::HeaderName, token: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if !has_token(warp::http::header::CONNECTION, "upgrade") || !has_token(warp::http::header::UPGRADE, "websocket")
        {
            return None;
        }
        if headers
            .get(warp::http::header::SEC_WEBSOCKET_VERSION)
            .and_then(|v| v.to_str().ok())
            != Some("13")
        {
            return None;
        }
        let key = headers
            .get(warp::http::header::SEC_WEBSOCKET_KEY)?
            .to_str()
            .ok()?
            .trim()
            .to_owned();
        if !is_valid_websocket_key(&key) {
            return None;
        }
        Some(UpgradeRequest {
            key,
            on_upgrade: on_upgrade?,
        })
    }

    /// Answers 101 (with `subprotocol`, if any) and runs `on_socket` once upgraded.
    pub(super) fn accept<F, Fut>(self, subprotocol: Option<&str>, on_socket: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let config = WebSocketConfig::default()
                        .read_buffer_size(READ_BUFFER_BYTES)
                        .write_buffer_size(WRITE_BUFFER_BYTES)
                        .max_message_size(Some(READER_LIMIT_BYTES))
                        .max_frame_size(Some(READER_LIMIT_BYTES));
                    let socket =
                        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                    on_socket(socket).await;
                }
                Err(error) => tracing::debug!(%error, "WebSocket upgrade did not complete"),
            }
        });
        let mut response = warp::reply().into_response();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(warp::http::header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(warp::http::header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(warp::http::header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(value) = subprotocol.and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(warp::http::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        response
    }
}

/// RFC 6455 §4.1: the key is the base64 of 16 bytes (24 characters with padding).
pub(super) fn is_valid_websocket_key(key: &str) -> bool {
    use base64::Engine as _;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|bytes| bytes.len() == 16)
}

pub(super) fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

pub(super) fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The hub from `/client/hubs/{hub}` or from `/client?hub=`; `None` for other paths.
pub(super) fn hub_of(tail: &str, query: &[(String, String)]) -> Option<String> {
    let tail = tail.trim_end_matches('/');
    if tail.is_empty() {
        return Some(query_value(query, "hub").unwrap_or_default().to_owned());
    }
    let segment = tail.strip_prefix("hubs/")?;
    if segment.contains('/') {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(segment)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

pub(super) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "code": code, "message": message });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

pub(super) fn offered_subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Handles one upgrade request (before the 101).
pub(super) async fn upgrade(
    service: Arc<Service>,
    raw_hub: String,
    on_upgrade: Option<OnUpgrade>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(ws) = UpgradeRequest::from(&headers, on_upgrade) else {
        if headers.contains_key(warp::http::header::SEC_WEBSOCKET_KEY) {
            return error_response(
                StatusCode::BAD_REQUEST,
                "InvalidWebSocketKey",
                "Sec-WebSocket-Key must be the base64 of 16 bytes, with Sec-WebSocket-Version: 13.",
            );
        }
        return error_response(
            StatusCode::BAD_REQUEST,
            "WebSocketRequired",
            "This endpoint only accepts WebSocket upgrade requests.",
        );
    };
    if names::hub(&raw_hub).is_err() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "InvalidHub",
            "The hub name is missing or invalid.",
        );
    }
    let hub = names::normalize_hub(&raw_hub);
    let offered = offered_subprotocols(&headers);

    if let Some(connection_id) = query_value(&query, "awps_connection_id") {
        let token = query_value(&query, "awps_reconnection_token").unwrap_or_default();
        return resume(service, &hub, connection_id, token, &offered, ws);
    }

    let claims = match authenticate(&service, &hub, &query, &headers) {
        Ok(claims) => claims,
        Err(error) => {
            tracing::info!(hub = %hub, event_type = "connect_rejected", reason = %error, "client token refused");
            return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", &error.to_string());
        }
    };
    let groups = token::string_values(&claims, "webpubsub.group");
    if groups.iter().any(|g| names::group(g).is_err()) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "InvalidGroup",
            "The token contains an invalid group name.",
        );
    }
    let connection_id = new_connection_id();
    let mut admission = Admission {
        user_id: claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        roles: token::string_values(&claims, "role"),
        groups,
        // Without a handler's say: the first supported subprotocol offered, else the first
        // one offered (echoed so the handshake succeeds; the connection is then raw).
        subprotocol: offered
            .iter()
            .find(|p| Protocol::is_supported(p))
            .or(offered.first())
            .cloned(),
        connection_state: None,
    };
    if service.upstream.has_connect_handler(&hub) {
        let request = ConnectRequest {
            hub: hub.clone(),
            connection_id: connection_id.clone(),
            user_id: admission.user_id.clone(),
            claims,
            query: query.iter().filter(|(k, _)| k != "access_token").cloned().collect(),
            headers: headers
                .iter()
                .filter(|(name, _)| *name != warp::http::header::AUTHORIZATION)
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            subprotocols: offered,
        };
        if let Err(refusal) = connect_event(&service, &request, &mut admission).await {
            return refusal;
        }
    }

    let Admission {
        user_id,
        roles,
        groups,
        subprotocol,
        connection_state,
    } = admission;
    let identity = Identity {
        connection_id,
        hub,
        user_id,
        subprotocol: subprotocol.clone(),
        roles,
    };
    ws.accept(subprotocol.as_deref(), move |socket| async move {
        let (connection, queue) = Connection::new(identity, connection_state);
        service.register(&connection, &groups);
        tracing::info!(
            hub = %connection.hub,
            connection_id = %connection.id,
            user_id = connection.user_id.as_deref().unwrap_or(""),
            event_type = "connected",
            subprotocol = connection.subprotocol.as_deref().unwrap_or(""),
            "client connected"
        );
        if let Err(overflow) = connection.send_connected() {
            service.drop_slow(&connection, overflow);
        }
        service.upstream.connected(&connection);
        run_socket(service, connection, 1, queue, socket).await;
    })
}

/// Verifies the client token and its audience; returns the claims.
pub(super) fn authenticate(
    service: &Service,
    hub: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Map<String, Value>, TokenError> {
    let from_header = || {
        let value = headers.get(warp::http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
    };
    let token = query_value(query, "access_token")
        .map(str::to_owned)
        .or_else(from_header)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::Missing)?;
    let claims = token::verify(&token, service.keys(), token::unix_now())?;
    let expected = format!("/client/hubs/{hub}");
    if token::string_values(&claims, "aud")
        .iter()
        .any(|aud| normalize_url_tail(aud) == expected)
    {
        Ok(claims)
    } else {
        Err(TokenError::AudienceMismatch)
    }
}

/// A reliable client resuming `connection_id`.
pub(super) fn resume(
    service: Arc<Service>,
    hub: &str,
    connection_id: &str,
    token: &str,
    offered: &[String],
    ws: UpgradeRequest,
) -> Response {
    let connection = service
        .find_connection(hub, connection_id)
        .filter(|c| c.protocol == Protocol::ReliableJson && c.reconnection_token_matches(token));
    let subprotocol = match &connection {
        Some(c) => c.subprotocol.clone().filter(|p| offered.contains(p)),
        None => offered.iter().find(|p| Protocol::is_supported(p)).cloned(),
    };
    let hub = hub.to_owned();
    ws.accept(subprotocol.as_deref(), move |mut socket| async move {
        let attached = connection.as_ref().and_then(|c| c.attach().map(|(generation, queue)| (c.clone(), generation, queue)));
        let Some((connection, generation, queue)) = attached else {
            tracing::info!(hub = %hub, event_type = "reconnect_rejected", "a reliable connection could not be recovered");
            let _ = socket.send(close_message(1008, "The connection could not be recovered.")).await;
            drain_until_closed(&mut socket).await;
            return;
        };
        tracing::info!(
            hub = %connection.hub,
            connection_id = %connection.id,
            user_id = connection.user_id.as_deref().unwrap_or(""),
            event_type = "reconnected",
            "reliable client resumed its connection"
        );
        run_socket(service, connection, generation, queue, socket).await;
    })
}

/// Who a new connection will be, from the token and then the connect handler.
pub(super) struct Admission {
    pub(super) user_id: Option<String>,
    pub(super) roles: Vec<String>,
    pub(super) groups: Vec<String>,
    pub(super) subprotocol: Option<String>,
    pub(super) connection_state: Option<String>,
}

/// Runs the blocking `connect` event and applies its answer (userId overrides, roles
/// replace, a non-empty groups list replaces, subprotocol must be one offered). `Err` is the
/// response refusing the upgrade.
pub(super) async fn connect_event(
    service: &Service,
    request: &ConnectRequest,
    admission: &mut Admission,
) -> Result<(), Response> {
    let (hub, connection_id) = (&request.hub, &request.connection_id);
    let decision: ConnectDecision = match service.upstream.connect(request).await {
        ConnectOutcome::NoHandler => ConnectDecision::default(),
        ConnectOutcome::Accepted(decision) => decision,
        ConnectOutcome::Rejected(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
            tracing::info!(hub = %hub, connection_id = %connection_id, event_type = "connect_rejected", status = status.as_u16(), "connect handler refused the client");
            return Err(error_response(
                status,
                "ConnectRejected",
                "The connect event handler rejected the connection.",
            ));
        }
        ConnectOutcome::Failed => {
            return Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ConnectFailed",
                "The connect event handler failed.",
            ));
        }
    };
    if let Some(subprotocol) = decision.subprotocol {
        if !request.subprotocols.contains(&subprotocol) {
            tracing::warn!(hub = %hub, connection_id = %connection_id, event_type = "connect_rejected", subprotocol = %subprotocol, "the connect handler chose a subprotocol the client did not offer");
            return Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ConnectFailed",
                "The connect event handler chose a subprotocol the client did not offer.",
            ));
        }
        admission.subprotocol = Some(subprotocol);
    }
    if decision.user_id.is_some() {
        admission.user_id = decision.user_id;
    }
    if let Some(roles) = decision.roles {
        admission.roles = roles;
    }
    if let Some(groups) = decision.groups.filter(|g| !g.is_empty()) {
        admission.groups = groups.into_iter().filter(|g| names::group(g).is_ok()).collect();
    }
    admission.connection_state = decision.connection_state;
    Ok(())
}
