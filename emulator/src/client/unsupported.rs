//! `/clients/mqtt/hubs/{hub}` and `/clients/socketio/hubs/{hub}`: client protocols the emulator
//! does not speak. They fail at once and say why, instead of a bare 404 that MQTT and
//! Socket.IO clients retry silently: a WebSocket upgrade is accepted (echoing the first
//! offered subprotocol, which MQTT clients require) and closed with 1003 and a reason; any
//! other request gets a JSON 400.

use futures_util::SinkExt as _;
use warp::http::{HeaderMap, StatusCode};

use super::session::{close_message, drain_until_closed};
use super::upgrade::{UpgradeRequest, error_response, offered_subprotocols};
use super::*;

/// The routes, for any method (Socket.IO polling also POSTs).
pub fn routes() -> warp::filters::BoxedFilter<(Response,)> {
    warp::path("clients")
        .and(warp::path::param::<String>())
        .and(warp::path::tail())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::header::headers_cloned())
        .map(
            |kind: String, _tail: warp::path::Tail, on_upgrade: Option<OnUpgrade>, headers: HeaderMap| {
                refuse(&kind, on_upgrade, &headers)
            },
        )
        .boxed()
}

/// The close reason (at most 123 bytes) and the longer HTTP message for `kind`.
fn explanation(kind: &str) -> (&'static str, &'static str) {
    match kind.to_ascii_lowercase().as_str() {
        "mqtt" => (
            "MQTT clients are not supported by the emulator; use a Web PubSub client on /client/hubs/{hub}.",
            "The emulator does not support MQTT clients (/clients/mqtt/hubs/{hub}). Use a Web PubSub client (raw or json.webpubsub.azure.v1) on /client/hubs/{hub}, or Azure Web PubSub for MQTT.",
        ),
        "socketio" => (
            "Socket.IO clients are not supported by the emulator; use a Web PubSub client on /client/hubs/{hub}.",
            "The emulator does not support Socket.IO clients (/clients/socketio/hubs/{hub}). Use a Web PubSub client (raw or json.webpubsub.azure.v1) on /client/hubs/{hub}, or Azure Web PubSub for Socket.IO.",
        ),
        _ => (
            "This client protocol is not supported by the emulator; use /client/hubs/{hub}.",
            "The emulator only serves Web PubSub clients on /client/hubs/{hub}.",
        ),
    }
}

fn refuse(kind: &str, on_upgrade: Option<OnUpgrade>, headers: &HeaderMap) -> Response {
    let (reason, message) = explanation(kind);
    tracing::info!(client_protocol = %kind, event_type = "connect_rejected", "unsupported client protocol");
    let Some(ws) = UpgradeRequest::from(headers, on_upgrade) else {
        return error_response(StatusCode::BAD_REQUEST, "UnsupportedClientProtocol", message);
    };
    let subprotocol = offered_subprotocols(headers).into_iter().next();
    ws.accept(subprotocol.as_deref(), move |mut socket| async move {
        let _ = socket.send(close_message(1003, reason)).await;
        drain_until_closed(&mut socket).await;
    })
}
