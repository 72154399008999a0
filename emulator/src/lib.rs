//! Local Azure Web PubSub emulator, for development and tests only (production is Azure Web
//! PubSub; nothing here is hardened for the internet).
//!
//! One warp server carries the client WebSocket endpoint (`/client/hubs/{hub}`,
//! `/client?hub=`; MQTT and Socket.IO URLs are refused with a reason), the REST data plane (`/api/...`, in `rest`) and `HEAD /api/health`
//! (answered here). Upstream events go to the configured handlers over HTTP.
//!
//! Layout:
//! - `config`: [`EmulatorConfig`] and friends.
//! - `service`: shared state and every operation on it (the REST layer's API).
//! - `connection`: one client's identity, roles, bounded queue and reliable buffer.
//! - `client`: the WebSocket endpoint (auth, connect event, frames).
//! - `protocol`: JSON subprotocol frames.
//! - Tokens, `ce-signature`, name rules, roles and wildcards, client types and CloudEvents header
//!   names come from the `webpubsub-protocol` crate, shared with the handler.
//! - `upstream`: CloudEvents delivery to event handlers.
//! - `filter`: OData filters; `rest`: the REST data plane.
//! - `identity`: keyless mode (local identity endpoint, JWKS, RS256 bearer tokens).

pub mod client;
pub mod config;
pub mod connection;
pub mod filter;
pub mod identity;
pub mod protocol;
pub mod rest;
pub mod service;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{DEV_ACCESS_KEY, EmulatorConfig, EventHandlerConfig, HubConfig, IdentityModeConfig};
pub use service::Service;

/// The line every start prints: this is not the real service.
pub const DEVELOPMENT_ONLY_WARNING: &str = "webpubsub-emulator is for local development and tests only: it is not Azure Web PubSub and must not be exposed or used in production";

/// Serves the emulator on `listener` until `shutdown` completes, then closes every client
/// connection (1001) and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: EmulatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let addr = listener.local_addr()?;
    let service = Service::new(config);
    tracing::warn!("{DEVELOPMENT_ONLY_WARNING}");
    tracing::info!(%addr, "webpubsub-emulator listening");
    serve(listener, service, shutdown).await;
    Ok(())
}

/// Like [`run`], with a service the caller built (and can inspect, as tests do).
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use warp::Filter as _;
    let routes = client::routes(service.clone())
        .or(client::unsupported_routes())
        .unify()
        .or(health())
        .unify()
        .or(rest::routes(service.clone()))
        .unify()
        .or(identity_routes(&service))
        .unify()
        .or(not_found())
        .unify()
        .boxed();
    warp::serve(routes).incoming(listener).graceful(shutdown).run().await;
    service.close_everything("The emulator is shutting down.");
}

/// `HEAD /api/health` (and `GET`): 200 while the emulator runs.
fn health() -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    use warp::Filter as _;
    warp::path!("api" / "health")
        .and(warp::head().or(warp::get()).unify())
        .map(|| warp::reply::Reply::into_response(warp::http::StatusCode::OK))
        .boxed()
}

/// Identity mode: the local identity endpoint (`/identity/token`) and key set (`/identity/keys`);
/// otherwise nothing (falls through to 404).
fn identity_routes(service: &Service) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    use warp::Filter as _;
    match service.identity() {
        Some(authority) => authority.clone().routes(),
        None => warp::any()
            .and_then(|| async { Err::<warp::reply::Response, _>(warp::reject::not_found()) })
            .boxed(),
    }
}

/// Anything else: a JSON 404.
fn not_found() -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    use warp::Filter as _;
    warp::any()
        .map(|| {
            let body = serde_json::json!({"code": "NotFound", "message": "No such endpoint on the emulator."});
            warp::reply::Reply::into_response(warp::reply::with_status(
                warp::reply::json(&body),
                warp::http::StatusCode::NOT_FOUND,
            ))
        })
        .boxed()
}

/// The connection string clients of the emulator use, e.g.
/// `Endpoint=http://127.0.0.1;Port=8080;AccessKey=...;Version=1.0;`.
pub fn connection_string(addr: SocketAddr, access_key: &str) -> String {
    format!(
        "Endpoint=http://{};Port={};AccessKey={access_key};Version=1.0;",
        addr.ip(),
        addr.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_format() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            connection_string(addr, "KEY"),
            "Endpoint=http://127.0.0.1;Port=8080;AccessKey=KEY;Version=1.0;"
        );
    }
}
