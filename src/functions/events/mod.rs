//! The `events` function: the upstream webhook Azure Web PubSub calls (CloudEvents over HTTP, protocol
//! reference §4). It is a security boundary and on the path of every client connect.
//!
//! - `OPTIONS /api/events`: abuse protection; `WebHook-Allowed-Origin` only for the service hosts
//!   (`policy`).
//! - `POST /api/events`: headers are parsed into a [`CloudEvent`] (`request`); the signature and hub
//!   are checked before the body is read, giving the [`VerifiedEvent`] handlers receive (`policy`); the
//!   body is then read within `EventsMaxBodyBytes` and dispatched by event type: `connect` (`connect`),
//!   `connected`, `disconnected`, user events. Application code plugs in through [`EventHandler`]
//!   (`handler`); the settings-driven behaviours are [`Builtin`] (`builtin`).
//!
//! Submodules are private; the names an application uses are re-exported here once: the event types, the
//! [`EventHandler`] trait and its replies, the settings, and [`ConnectionState`] (`connection_state`, the
//! `ce-connectionState` a handler reads and writes).
//!
//! Every answer to a client mistake is a 4xx JSON error; every event leaves one log line
//! (`event_type`, `hub`, `connection_id`, `user_id`, `reason`, `status`), never with signatures or tokens.

mod builtin;
mod connect;
mod connection_state;
mod handler;
mod names;
mod policy;
mod reply;
mod request;
mod settings;
mod upstream_auth;

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::{Reply, Response};

pub(crate) use builtin::Builtin;
pub use connect::{ConnectBody, ConnectRequest, ConnectResponse};
pub use connection_state::ConnectionState;
pub use handler::{EventHandler, HookFuture, UserEventReply, UserMessage};
pub use policy::VerifiedEvent;
pub(crate) use policy::{AllowedOrigins, Verifier};
pub use request::{CloudEvent, DataType, EventKind};
pub(crate) use settings::{ConnectPolicy, Settings};
#[cfg(feature = "dev")]
pub(crate) use settings::{JOINABLE_ROOMS, USER_EVENT_BEHAVIOR};
pub(crate) use upstream_auth::UpstreamAuth;

use crate::error::ApiError;
use crate::request::{UnreadBody, read_body, unread_body};
use crate::webpubsub::{Endpoint, ServiceSettings};
use request::headers;

/// State of `events`, built once at start-up: everything a request needs, pre-computed.
pub(crate) struct State {
    verifier: Verifier,
    upstream_auth: UpstreamAuth,
    origins: AllowedOrigins,
    policy: ConnectPolicy,
    max_body_bytes: u64,
    handler: Arc<dyn EventHandler>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("verifier", &self.verifier)
            .field("origins", &self.origins)
            .field("policy", &self.policy)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl State {
    /// The state for `own` settings in front of `service`, answering events with the settings-driven
    /// [`Builtin`] handler.
    #[cfg(test)]
    pub(crate) fn new(own: &Settings, service: &ServiceSettings) -> anyhow::Result<Self> {
        let handler = Builtin::from_parts(service, own)?;
        Self::with_handler(own, service, Arc::new(handler))
    }

    /// An application's own handler; the plumbing (checks, policy, replies, logs) stays the same.
    pub(crate) fn with_handler(
        own: &Settings,
        service: &ServiceSettings,
        handler: Arc<dyn EventHandler>,
    ) -> anyhow::Result<Self> {
        own.upstream_auth.check(service)?;
        let origins = AllowedOrigins::new(
            service
                .endpoints()
                .map(|endpoint| (endpoint.host(), endpoint.port(), has_default_port(endpoint))),
            own.allowed_origins.iter().map(String::as_str),
        );
        Ok(Self {
            verifier: Verifier::new(service.keys(), service.hubs.clone()),
            upstream_auth: UpstreamAuth::new(&own.upstream_auth)?,
            origins,
            policy: own.connect.clone(),
            max_body_bytes: own.max_body_bytes,
            handler,
        })
    }

    /// This state with `handler` in place of the current one.
    pub(crate) fn replace_handler(&self, handler: Arc<dyn EventHandler>) -> Self {
        Self {
            verifier: self.verifier.clone(),
            upstream_auth: self.upstream_auth.clone(),
            origins: self.origins.clone(),
            policy: self.policy.clone(),
            max_body_bytes: self.max_body_bytes,
            handler,
        }
    }
}

/// Whether an endpoint uses its scheme's default port (then its bare host is its origin).
fn has_default_port(endpoint: &Endpoint) -> bool {
    endpoint.port() == if endpoint.is_https() { 443 } else { 80 }
}

/// `OPTIONS|POST /api/events`.
pub(crate) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    let validate = warp::path!("api" / "events")
        .and(warp::options())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .map(|headers: HeaderMap, state: Arc<State>| reply::options(&state, &headers));
    let event = warp::path!("api" / "events")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(unread_body())
        .and(with_state(state))
        .then(|headers: HeaderMap, body: UnreadBody, state: Arc<State>| async move {
            receive(&state, &headers, body).await
        });
    validate.or(event).unify().boxed()
}

/// `POST /api/events`: verify the headers, then read the body within `EventsMaxBodyBytes`, then dispatch.
async fn receive(state: &State, headers: &HeaderMap, body: UnreadBody) -> Response {
    let verified = async {
        let requested = requested_origins(headers);
        upstream_auth::check_origin(&state.origins, requested.as_deref(), state.verifier.is_keyed())?;
        state.upstream_auth.check(headers).await?;
        let event = verified_event(state, headers)?;
        Ok::<_, ApiError>((event, read_body(headers, body, state.max_body_bytes).await?))
    };
    match verified.await {
        Ok((event, body)) => reply::dispatch(state, event, body).await,
        Err(error) => error.into_response(),
    }
}

fn with_state(state: Arc<State>) -> impl Filter<Extract = (Arc<State>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Every `WebHook-Request-Origin` line, joined with commas (the .NET extension reads them together);
/// lines that are not visible ASCII are skipped.
fn requested_origins(headers: &HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(headers::WEBHOOK_REQUEST_ORIGIN)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

/// Headers → [`CloudEvent`] → [`VerifiedEvent`], before the body is read. Refusals are 400 (headers) or
/// 401 (signature), logged with the unverified metadata (never the signature).
fn verified_event(state: &State, headers: &HeaderMap) -> Result<VerifiedEvent, ApiError> {
    let event = CloudEvent::from_headers(headers).map_err(|error| {
        tracing::warn!(
            event_type = header_text(headers, headers::TYPE).map(tracing::field::display),
            hub = header_text(headers, headers::HUB).map(tracing::field::display),
            connection_id = header_text(headers, headers::CONNECTION_ID).map(tracing::field::display),
            reason = %error,
            status = ApiError::from(error.clone()).status().as_u16(),
            "Refused Web PubSub upstream callback"
        );
        ApiError::from(error)
    })?;
    state.verifier.verify(event)
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests;
