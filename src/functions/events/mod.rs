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
mod request;
mod settings;
mod upstream_auth;

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

pub(crate) use builtin::Builtin;
pub use connect::{ConnectBody, ConnectRequest, ConnectResponse};
pub use connection_state::ConnectionState;
pub use handler::{EventHandler, HookFuture, UserEventReply, UserMessage};
pub use policy::VerifiedEvent;
pub(crate) use policy::{AllowedOrigins, Verifier};
pub use request::{CloudEvent, DataType, EventKind};
pub(crate) use settings::{ConnectPolicy, Settings, UserEventBehavior};
#[cfg(feature = "dev")]
pub(crate) use settings::{JOINABLE_ROOMS, USER_EVENT_BEHAVIOR};
pub(crate) use upstream_auth::UpstreamAuth;

use crate::error::ApiError;
use crate::request::{UnreadBody, read_body, unread_body};
use crate::webpubsub::{Endpoint, RestClient, RestOptions, ServiceSettings, validate};
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

impl Builtin {
    /// The built-in behaviours as configured, with a REST client on the primary connection when
    /// `broadcast` needs one. Public so an application's handler can wrap it and delegate.
    pub(crate) fn from_parts(service: &ServiceSettings, events: &Settings) -> anyhow::Result<Self> {
        let rest = match events.user_event_behavior {
            UserEventBehavior::Broadcast => Some(RestClient::for_service(service, RestOptions::default())?),
            _ => None,
        };
        Builtin::new(events, rest)
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
        .map(|headers: HeaderMap, state: Arc<State>| {
            if headers
                .get_all(headers::WEBHOOK_REQUEST_ORIGIN)
                .iter()
                .any(|value| value.to_str().is_err())
            {
                return ApiError::bad_request("InvalidHeader", "header WebHook-Request-Origin is not visible ASCII")
                    .with_detail("header", headers::WEBHOOK_REQUEST_ORIGIN)
                    .into_response();
            }
            abuse_protection(&state, requested_origins(&headers).as_deref())
        });
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
    let origin = upstream_auth::check_origin(
        &state.origins,
        requested_origins(headers).as_deref(),
        state.verifier.is_keyed(),
    );
    if let Err(error) = origin {
        return error.into_response();
    }
    if let Err(error) = state.upstream_auth.check(headers).await {
        return error.into_response();
    }
    let event = match verified_event(state, headers) {
        Ok(event) => event,
        Err(error) => return error.into_response(),
    };
    match read_body(headers, body, state.max_body_bytes).await {
        Ok(body) => dispatch(state, event, body).await,
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

/// `OPTIONS /api/events`: the abuse-protection handshake. Echoes the first allowed requested origin;
/// anything else is a 400 and the service will not register this handler.
fn abuse_protection(state: &State, requested: Option<&str>) -> Response {
    let Some(requested) = requested.map(str::trim).filter(|origin| !origin.is_empty()) else {
        tracing::warn!(reason = "MissingHeader", "Refused Web PubSub abuse-protection request");
        return ApiError::bad_request("MissingHeader", "header WebHook-Request-Origin is required")
            .with_detail("header", headers::WEBHOOK_REQUEST_ORIGIN)
            .into_response();
    };
    match state
        .origins
        .pick(requested)
        .and_then(|origin| HeaderValue::from_str(origin).ok())
    {
        Some(origin) => {
            tracing::info!(origin = %requested, "Accepted Web PubSub abuse-protection request");
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(headers::WEBHOOK_ALLOWED_ORIGIN, origin);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("OPTIONS, POST"));
            response
        }
        None => {
            tracing::warn!(
                origin = %requested,
                reason = "OriginNotAllowed",
                "Refused Web PubSub abuse-protection request"
            );
            ApiError::bad_request(
                "OriginNotAllowed",
                "this handler does not accept events from that origin",
            )
            .into_response()
        }
    }
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

/// What one event produced: the reply, and what its log line says beyond the metadata.
struct Handled {
    response: Response,
    user_id: Option<String>,
    reason: Option<String>,
}

impl Handled {
    fn reply(response: Response) -> Self {
        Self {
            response,
            user_id: None,
            reason: None,
        }
    }

    fn error(error: ApiError) -> Self {
        let reason = Some(format!("{}: {}", error.code(), error.message()));
        Self {
            response: error.into_response(),
            user_id: None,
            reason,
        }
    }
}

/// `POST /api/events` after verification: one branch per event kind, then the event's log line.
async fn dispatch(state: &State, event: VerifiedEvent, body: Bytes) -> Response {
    let handled = match event.kind() {
        EventKind::Connect => connect(state, &event, &body).await,
        EventKind::Connected => {
            state.handler.on_connected(&event).await;
            Handled::reply(StatusCode::NO_CONTENT.into_response())
        }
        EventKind::Disconnected => disconnected(state, &event, &body).await,
        EventKind::GroupJoined | EventKind::GroupLeft => group_event(state, &event, &body).await,
        EventKind::User(_) => user_event(state, &event, body).await,
    };
    let status = handled.response.status().as_u16();
    // Display (`%`) keeps values unquoted in text logs.
    let user_id = handled.user_id.as_deref().or(event.user_id());
    // One line per event; a refusal (4xx) is a warning, so a bad token or payload stands out.
    macro_rules! log_event {
        ($level:ident) => {
            tracing::$level!(
                event_type = %event.event_type(),
                hub = %event.hub(),
                connection_id = %event.connection_id(),
                user_id = user_id.map(tracing::field::display),
                reason = handled.reason.as_deref().map(tracing::field::display),
                status,
                "Received Web PubSub upstream callback"
            )
        };
    }
    if (400..500).contains(&status) {
        log_event!(warn);
    } else {
        log_event!(info);
    }
    handled.response
}

/// `connect`: draft from settings, the application's hook, final policy checks, reply.
async fn connect(state: &State, event: &VerifiedEvent, body: &[u8]) -> Handled {
    let body = match ConnectBody::parse(body) {
        Ok(body) => body,
        Err(error) => return Handled::error(error),
    };
    let request = ConnectRequest { event, body };
    let decided = async {
        let draft = connect::draft(&state.policy, &request)?;
        let response = state.handler.on_connect(&request, draft).await?;
        let user_id = response.user_id.clone();
        Ok::<_, ApiError>((connect::finish(&state.policy, &request, response)?, user_id))
    }
    .await;
    match decided {
        Ok((response, user_id)) => Handled {
            response,
            user_id,
            reason: None,
        },
        Err(error) => {
            let reason = Some(format!("{}: {}", error.code(), error.message()));
            Handled {
                response: connect::rejection(Some(&request.body), error),
                user_id: None,
                reason,
            }
        }
    }
}

/// `disconnected`: `{"reason": "..."}` (may be empty or absent), then 204.
async fn disconnected(state: &State, event: &VerifiedEvent, body: &[u8]) -> Handled {
    #[derive(Deserialize)]
    struct DisconnectedBody {
        #[serde(default)]
        reason: Option<String>,
    }
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<DisconnectedBody>(body) {
            Ok(body) => body.reason.filter(|reason| !reason.is_empty()),
            Err(e) => {
                return Handled::error(ApiError::bad_request(
                    "InvalidJson",
                    format!("the disconnected body is not valid: {e}"),
                ));
            }
        }
    };
    state.handler.on_disconnected(event, reason.as_deref()).await;
    Handled {
        response: StatusCode::NO_CONTENT.into_response(),
        user_id: None,
        reason,
    }
}

/// `gp.joined` / `gp.left`: `{"group": "..."}`, handed to the hook, then 200 (the group is logged as the
/// reason).
async fn group_event(state: &State, event: &VerifiedEvent, body: &[u8]) -> Handled {
    #[derive(Deserialize)]
    struct GroupBody {
        group: String,
    }
    let group = match serde_json::from_slice::<GroupBody>(body) {
        Ok(body) if validate::group(&body.group).is_ok() => body.group,
        Ok(_) => {
            return Handled::error(ApiError::bad_request(
                "InvalidGroup",
                "group must be 1 to 1024 characters and not only whitespace",
            ));
        }
        Err(e) => {
            return Handled::error(ApiError::bad_request(
                "InvalidJson",
                format!("the group event body must be {{\"group\": string}}: {e}"),
            ));
        }
    };
    state.handler.on_group_event(event, &group).await;
    Handled {
        response: StatusCode::OK.into_response(),
        user_id: None,
        reason: Some(format!("group {group}")),
    }
}

/// A user event: the hook's reply goes to the sender (200 with its data type) or nothing (204).
async fn user_event(state: &State, event: &VerifiedEvent, body: Bytes) -> Handled {
    let message = UserMessage {
        data_type: event.data_type().unwrap_or(DataType::Binary),
        content_type: event.other_content_type().map(str::to_owned),
        data: body,
    };
    let reply = match state.handler.on_user_event(event, message).await {
        Ok(reply) => reply,
        Err(error) => return Handled::error(error),
    };
    let mut response = match (reply.body(), reply.content_type()) {
        (Some((data_type, data)), Some(content_type)) => {
            let mut response = Response::new(data.clone().into());
            let content_type = HeaderValue::from_str(content_type)
                .unwrap_or_else(|_| HeaderValue::from_static(data_type.content_type()));
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
            response
        }
        _ => StatusCode::NO_CONTENT.into_response(),
    };
    if let Some(state) = reply.state()
        && let Ok(value) = HeaderValue::from_str(&state.encode())
    {
        response.headers_mut().insert(headers::CONNECTION_STATE, value);
    }
    Handled::reply(response)
}

#[cfg(test)]
mod tests;
