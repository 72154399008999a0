//! The client WebSocket endpoint: `GET /client/hubs/{hub}` and `GET /client?hub={hub}`.
//!
//! Before upgrading it authenticates the client (HS256 token in `access_token` or
//! `Authorization: Bearer`, audience path `/client/hubs/{hub}` compared ignoring case; any
//! host is accepted because clients reach the emulator as localhost, 127.0.0.1 or a
//! container name), runs the blocking `connect` event and picks the subprotocol. After the
//! upgrade one task reads frames and handles them in order; a writer task drains the
//! connection's bounded queue. Reliable clients resume with `awps_connection_id` and
//! `awps_reconnection_token`; a failed resume is accepted and closed with 1008.
//!
//! Tokens without `sub` are accepted (the connection has no user id), as Azure does for
//! `getClientAccessToken()` without a user; there is no anonymous access without a token.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use warp::Filter as _;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply as _, Response};

use crate::connection::{Connection, Identity, SocketQueue, new_connection_id};
use crate::protocol::{self, AckError, ClientMessage, ContentKind, DataMessage, Frame, Payload, Protocol};
use crate::service::{Service, normalize_url_tail};
use crate::upstream::{ConnectDecision, ConnectOutcome, ConnectRequest, UserEventOutcome};
use webpubsub_protocol::jwt::{self as token, TokenError};
use webpubsub_protocol::names;
use webpubsub_protocol::roles::Permission;

/// Largest message a client may send (the service's 1 MB limit); larger ones close the
/// connection with 1009.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 1024 * 1024;
/// Hard limit of the WebSocket reader. Messages between the two limits are read whole and
/// refused with a clean close handshake; beyond this one the reader stops mid-frame, so the
/// socket lingers briefly for the client to read our close frame before it is dropped.
const READER_LIMIT_BYTES: usize = 2 * MAX_CLIENT_MESSAGE_BYTES;
/// How long a socket stays open, unread, after a message over the hard limit.
const OVERSIZE_LINGER: Duration = Duration::from_millis(500);
/// How long a socket may take to answer our close frame before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Frames written per flush.
const WRITE_BATCH: usize = 64;
/// Per-socket read buffer. tungstenite's default (128 KiB, zero-filled on first read) would
/// cost more than a gigabyte at 10 000 connections; frames larger than this still work.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes collected before a write reaches the socket (frames are also flushed per batch).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// A client socket after the upgrade.
type WebSocket = WebSocketStream<TokioIo<Upgraded>>;

/// The parts of an upgrade request needed to finish it.
struct UpgradeRequest {
    key: String,
    on_upgrade: OnUpgrade,
}

impl UpgradeRequest {
    /// `Some` for a valid RFC 6455 upgrade request (GET is checked by the route).
    fn from(headers: &HeaderMap, on_upgrade: Option<OnUpgrade>) -> Option<UpgradeRequest> {
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
        Some(UpgradeRequest {
            key,
            on_upgrade: on_upgrade?,
        })
    }

    /// Answers 101 (with `subprotocol`, if any) and runs `on_socket` once upgraded.
    fn accept<F, Fut>(self, subprotocol: Option<&str>, on_socket: F) -> Response
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

/// The WebSocket routes.
pub fn routes(service: Arc<Service>) -> warp::filters::BoxedFilter<(Response,)> {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("client")
        .and(warp::path::tail())
        .and(warp::get())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and_then(
            move |tail: warp::path::Tail, on_upgrade: Option<OnUpgrade>, query: String, headers: HeaderMap| {
                let service = service.clone();
                async move {
                    let query = parse_query(&query);
                    let Some(hub) = hub_of(tail.as_str(), &query) else {
                        return Err(warp::reject::not_found());
                    };
                    Ok::<Response, warp::Rejection>(upgrade(service, hub, on_upgrade, query, headers).await)
                }
            },
        )
        .boxed()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The hub from `/client/hubs/{hub}` or from `/client?hub=`; `None` for other paths.
fn hub_of(tail: &str, query: &[(String, String)]) -> Option<String> {
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

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "code": code, "message": message });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn offered_subprotocols(headers: &HeaderMap) -> Vec<String> {
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
async fn upgrade(
    service: Arc<Service>,
    raw_hub: String,
    on_upgrade: Option<OnUpgrade>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(ws) = UpgradeRequest::from(&headers, on_upgrade) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "WebSocketRequired",
            "This endpoint only accepts WebSocket upgrade requests.",
        );
    };
    if !names::hub(&raw_hub).is_ok() {
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
    if groups.iter().any(|g| !names::group(g).is_ok()) {
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
fn authenticate(
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
fn resume(
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
struct Admission {
    user_id: Option<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    subprotocol: Option<String>,
    connection_state: Option<String>,
}

/// Runs the blocking `connect` event and applies its answer (userId overrides, roles
/// replace, a non-empty groups list replaces, subprotocol must be one offered). `Err` is the
/// response refusing the upgrade.
async fn connect_event(service: &Service, request: &ConnectRequest, admission: &mut Admission) -> Result<(), Response> {
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

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: truncate_reason(reason).into(),
    }))
}

/// Reads until the peer's close or `CLOSE_GRACE`, so the close handshake completes.
async fn drain_until_closed(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = socket.next().await {} }).await;
}

/// Runs one socket of `connection` until it ends, then tells the service.
async fn run_socket(
    service: Arc<Service>,
    connection: Arc<Connection>,
    generation: u64,
    queue: SocketQueue,
    socket: WebSocket,
) {
    let (sink, mut stream) = socket.split();
    let (closing_tx, mut closing_rx) = oneshot::channel::<Duration>();
    let writer = tokio::spawn(write_loop(sink, queue, closing_tx));

    let mut clean = false;
    let mut reason = String::from("The connection was closed abnormally.");
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, stream.next()).await.ok().flatten(),
                None => stream.next().await,
            }
        };
        let item = tokio::select! {
            item = next => item,
            grace = &mut closing_rx, if deadline.is_none() => {
                // Our side closed (or abandoned) the socket: give the peer a moment to answer.
                deadline = Some(tokio::time::Instant::now() + grace.unwrap_or(Duration::ZERO));
                continue;
            }
        };
        let Some(item) = item else { break };
        let message = match item {
            Ok(message) => message,
            Err(error) => {
                if is_too_large(&error) {
                    clean = true;
                    reason = refuse_oversized(&service, &connection);
                    // The rest of the frame is unread: dropping now would reset the TCP
                    // connection before the client sees our close frame.
                    tokio::time::sleep(OVERSIZE_LINGER).await;
                }
                break;
            }
        };
        let data = match message {
            Message::Text(text) => Payload::new(ContentKind::Text, bytes::Bytes::from(text)),
            Message::Binary(bytes) => Payload::new(ContentKind::Binary, bytes),
            Message::Close(frame) => {
                clean = frame.as_ref().is_none_or(|f| f.code == CloseCode::Normal);
                reason = match frame {
                    Some(f) if !f.reason.is_empty() => f.reason.to_string(),
                    _ => "The client closed the connection.".to_owned(),
                };
                // Keep polling so the close reply is flushed; the stream ends right after.
                continue;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if data.data.len() > MAX_CLIENT_MESSAGE_BYTES {
            clean = true;
            reason = refuse_oversized(&service, &connection);
            continue;
        }
        if deadline.is_some() || connection.is_closed() {
            continue;
        }
        handle_frame(&service, &connection, data).await;
    }
    writer.abort();
    if connection.socket_ended(generation, clean) {
        service.forget(&connection, &reason);
    } else if connection.is_waiting_for_resume(generation) {
        schedule_expiry(service, connection, generation);
    }
}

/// Closes with 1009 (message too big); returns the reason.
fn refuse_oversized(service: &Service, connection: &Arc<Connection>) -> String {
    tracing::info!(hub = %connection.hub, connection_id = %connection.id, event_type = "message_too_large", "client message over 1 MB; closing with 1009");
    let reason = "The client message is too large.";
    if connection.close(1009, reason, false) {
        service.forget(connection, reason);
    }
    reason.to_owned()
}

/// Drops a reliable connection nobody resumed within the window.
fn schedule_expiry(service: Arc<Service>, connection: Arc<Connection>, generation: u64) {
    let window = service.config.reconnect_window;
    tracing::info!(hub = %connection.hub, connection_id = %connection.id, event_type = "awaiting_reconnect", "reliable client dropped; waiting for it to resume");
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        if connection.is_waiting_for_resume(generation) && connection.close(1008, "reconnect window expired", false) {
            service.forget(&connection, "The client did not reconnect in time.");
        }
    });
}

fn is_too_large(error: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    matches!(error, Error::Capacity(CapacityError::MessageTooLong { .. }))
}

/// Drains the queue into the socket; on a close request writes the close frame (after the
/// queued frames when asked) and tells the reader how long to wait for the peer.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queue: SocketQueue,
    closing: oneshot::Sender<Duration>,
) {
    loop {
        tokio::select! {
            biased;
            request = &mut queue.close => {
                let grace = match request {
                    Ok(request) => {
                        if request.flush_queued {
                            while let Ok(frame) = queue.frames.try_recv() {
                                queue.written(&frame);
                                if sink.feed(to_message(frame)).await.is_err() {
                                    break;
                                }
                            }
                        }
                        let _ = sink.send(close_message(request.code, &request.reason)).await;
                        CLOSE_GRACE
                    }
                    // The connection moved to another socket or was dropped: abandon this one.
                    Err(_) => Duration::ZERO,
                };
                let _ = closing.send(grace);
                return;
            }
            frame = queue.frames.recv() => {
                let Some(frame) = frame else {
                    let _ = closing.send(Duration::ZERO);
                    return;
                };
                queue.written(&frame);
                if sink.feed(to_message(frame)).await.is_err() {
                    let _ = closing.send(Duration::ZERO);
                    return;
                }
                for _ in 1..WRITE_BATCH {
                    let Ok(frame) = queue.frames.try_recv() else { break };
                    queue.written(&frame);
                    if sink.feed(to_message(frame)).await.is_err() {
                        let _ = closing.send(Duration::ZERO);
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    let _ = closing.send(Duration::ZERO);
                    return;
                }
            }
        }
    }
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::text(text),
        Frame::Binary(bytes) => Message::Binary(bytes),
    }
}

/// Close reasons must fit a control frame (123 bytes), cut on a char boundary.
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// One text or binary message from the client (as a text or binary payload).
async fn handle_frame(service: &Arc<Service>, connection: &Arc<Connection>, message: Payload) {
    match connection.protocol {
        Protocol::Raw => handle_raw(service, connection, message).await,
        Protocol::Json | Protocol::ReliableJson => match (message.kind, std::str::from_utf8(&message.data)) {
            (ContentKind::Text, Ok(text)) => handle_json(service, connection, text).await,
            _ => {
                tracing::warn!(hub = %connection.hub, connection_id = %connection.id, event_type = "invalid_message", "binary frame on a JSON subprotocol ignored")
            }
        },
    }
}

async fn handle_raw(service: &Arc<Service>, connection: &Arc<Connection>, payload: Payload) {
    match service.upstream.user_event(connection, "message", &payload).await {
        UserEventOutcome::NoHandler => {}
        UserEventOutcome::Replied {
            reply,
            connection_state,
        } => {
            if let Some(state) = connection_state {
                connection.set_connection_state(state);
            }
            if let Some(reply) = reply {
                service.deliver(std::slice::from_ref(connection), &DataMessage::from_server(&reply));
            }
        }
        UserEventOutcome::Failed => {
            let reason = "The upstream event handler failed.";
            if connection.close(1011, reason, false) {
                service.forget(connection, reason);
            }
        }
    }
}

fn reply(service: &Service, connection: &Arc<Connection>, frame: String) {
    if let Err(overflow) = connection.send_control(frame) {
        service.drop_slow(connection, overflow);
    }
}

fn ack(service: &Service, connection: &Arc<Connection>, ack_id: Option<u64>, result: Result<(), (AckError, &str)>) {
    let Some(ack_id) = ack_id else { return };
    let frame = match result {
        Ok(()) => protocol::ack_ok(ack_id),
        Err((error, message)) => protocol::ack_error(ack_id, error, message),
    };
    reply(service, connection, frame);
}

/// False (after a Duplicate ack) when `ack_id` was used before on this connection.
fn first_use(service: &Service, connection: &Arc<Connection>, ack_id: Option<u64>) -> bool {
    match ack_id {
        Some(id) if !connection.first_use_of_ack_id(id) => {
            ack(
                service,
                connection,
                ack_id,
                Err((
                    AckError::Duplicate,
                    "The ackId has already been used on this connection.",
                )),
            );
            false
        }
        _ => true,
    }
}

fn check_group(connection: &Connection, permission: Permission, group: &str) -> Result<(), (AckError, &'static str)> {
    if !names::group(group).is_ok() {
        return Err((AckError::BadRequest, "The group name is invalid."));
    }
    if !connection.is_allowed(permission, group) {
        let message = match permission {
            Permission::JoinLeaveGroup => "The connection has no permission to join or leave this group.",
            Permission::SendToGroup => "The connection has no permission to send to this group.",
        };
        return Err((AckError::Forbidden, message));
    }
    Ok(())
}

async fn handle_json(service: &Arc<Service>, connection: &Arc<Connection>, text: &str) {
    let message = match protocol::parse_client_message(text) {
        Ok(message) => message,
        Err(error) => {
            tracing::info!(hub = %connection.hub, connection_id = %connection.id, event_type = "invalid_message", reason = %error.message, "client message refused");
            ack(
                service,
                connection,
                error.ack_id,
                Err((AckError::BadRequest, &error.message)),
            );
            return;
        }
    };
    if !first_use(service, connection, message.ack_id()) {
        return;
    }
    match message {
        ClientMessage::JoinGroup { group, ack_id } => {
            let result = check_group(connection, Permission::JoinLeaveGroup, &group);
            if result.is_ok() {
                service.join_group(connection, &group);
            }
            ack(service, connection, ack_id, result);
        }
        ClientMessage::LeaveGroup { group, ack_id } => {
            let result = check_group(connection, Permission::JoinLeaveGroup, &group);
            if result.is_ok() {
                service.leave_group(connection, &group);
            }
            ack(service, connection, ack_id, result);
        }
        ClientMessage::SendToGroup {
            group,
            ack_id,
            no_echo,
            payload,
        } => {
            let result = check_group(connection, Permission::SendToGroup, &group);
            if result.is_ok() {
                service.publish_to_group(connection, &group, no_echo, &payload);
            }
            ack(service, connection, ack_id, result);
        }
        ClientMessage::Event { event, ack_id, payload } => {
            if !names::is_valid_event_name(&event) {
                ack(
                    service,
                    connection,
                    ack_id,
                    Err((AckError::BadRequest, "The event name is invalid.")),
                );
                return;
            }
            match service.upstream.user_event(connection, &event, &payload).await {
                UserEventOutcome::NoHandler => ack(service, connection, ack_id, Ok(())),
                UserEventOutcome::Replied {
                    reply: answer,
                    connection_state,
                } => {
                    if let Some(state) = connection_state {
                        connection.set_connection_state(state);
                    }
                    if let Some(answer) = answer {
                        service.deliver(std::slice::from_ref(connection), &DataMessage::from_server(&answer));
                    }
                    ack(service, connection, ack_id, Ok(()));
                }
                UserEventOutcome::Failed => {
                    ack(
                        service,
                        connection,
                        ack_id,
                        Err((AckError::InternalServerError, "The upstream event handler failed.")),
                    );
                }
            }
        }
        ClientMessage::Ping => reply(service, connection, protocol::pong()),
        ClientMessage::SequenceAck { sequence_id } => {
            if connection.protocol == Protocol::ReliableJson {
                connection.ack_sequence(sequence_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_from_path_or_query() {
        let q = parse_query("hub=Chat&access_token=x");
        assert_eq!(hub_of("hubs/chat", &[]), Some("chat".into()));
        assert_eq!(hub_of("hubs/a%5Bb%5D/", &[]), Some("a[b]".into()));
        assert_eq!(hub_of("", &q), Some("Chat".into()));
        assert_eq!(hub_of("/", &q), Some("Chat".into()));
        assert_eq!(hub_of("", &[]), Some(String::new()));
        assert_eq!(hub_of("hubs/a/b", &[]), None);
        assert_eq!(hub_of("other", &[]), None);
    }

    proptest::proptest! {
        #[test]
        fn request_parsing_never_panics(tail in ".{0,60}", query in ".{0,80}") {
            let parsed = parse_query(&query);
            let _ = hub_of(&tail, &parsed);
            let _ = truncate_reason(&tail);
        }
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(truncate_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
    }
}
