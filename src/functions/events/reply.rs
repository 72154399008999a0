//! What `events` answers: the `OPTIONS` abuse-protection handshake, and for a verified `POST` one branch
//! per event kind (`connect`, `connected`, `disconnected`, `gp.joined` / `gp.left`, user events) that hands
//! the event to the application's [`EventHandler`](super::EventHandler) and turns its answer into the reply, then the event's one
//! log line (`event_type`, `hub`, `connection_id`, `user_id`, `reason`, `status`; never signatures or tokens).

use bytes::Bytes;
use serde::Deserialize;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::connect::{self, ConnectBody, ConnectRequest};
use super::handler::UserMessage;
use super::policy::VerifiedEvent;
use super::request::{DataType, EventKind, headers};
use super::{State, requested_origins};
use crate::error::ApiError;
use crate::webpubsub::validate;

/// `OPTIONS /api/events`: refuses a `WebHook-Request-Origin` that is not visible ASCII, then runs the
/// handshake on the requested origins.
pub(super) fn options(state: &State, headers: &HeaderMap) -> Response {
    if headers
        .get_all(headers::WEBHOOK_REQUEST_ORIGIN)
        .iter()
        .any(|value| value.to_str().is_err())
    {
        return ApiError::bad_request("InvalidHeader", "header WebHook-Request-Origin is not visible ASCII")
            .with_detail("header", headers::WEBHOOK_REQUEST_ORIGIN)
            .into_response();
    }
    abuse_protection(state, requested_origins(headers).as_deref())
}

/// `OPTIONS /api/events`: the abuse-protection handshake. Echoes the first allowed requested origin;
/// anything else is a 400 and the service will not register this handler.
pub(super) fn abuse_protection(state: &State, requested: Option<&str>) -> Response {
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
        Self::refused(error, Reply::into_response)
    }

    /// A refusal: `error` answered through `respond`, its code and message in the log line.
    fn refused(error: ApiError, respond: impl FnOnce(ApiError) -> Response) -> Self {
        let reason = Some(format!("{}: {}", error.code(), error.message()));
        Self {
            response: respond(error),
            user_id: None,
            reason,
        }
    }
}

/// `POST /api/events` after verification: one branch per event kind, then the event's log line.
pub(super) async fn dispatch(state: &State, event: VerifiedEvent, body: Bytes) -> Response {
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
        Err(error) => Handled::refused(error, |error| connect::rejection(Some(&request.body), error)),
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
                .unwrap_or_else(|_| HeaderValue::from_static(super::request::reply_content_type(data_type)));
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
