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
//!
//! Layout: `upgrade` (authentication, resume, the `connect` event, the HTTP upgrade),
//! `session` (the reader and writer tasks, frame handling, acks and permissions) and
//! `unsupported` (MQTT and Socket.IO URLs, refused at once with a reason).

mod session;
#[cfg(test)]
mod tests;
mod unsupported;
mod upgrade;

pub use unsupported::routes as unsupported_routes;

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use warp::Filter as _;
use warp::http::HeaderMap;
use warp::reply::Response;

use crate::service::Service;
use upgrade::{hub_of, parse_query, upgrade};

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
