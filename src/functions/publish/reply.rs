//! Runs a validated plan through the REST client, one action after another, and reports each action's
//! outcome honestly: `done` only after the service accepted it, `failed` when the service certainly did not
//! act, `unknown` when it may have (a timeout or 5xx after sending), `notAttempted` after the first failure.
//!
//! All done → 200 `{"results": [...]}`. A failure → 502 / 503 / 504 with `code`, `message` and the same
//! `results`; 400 / 404 with `results` when the service refuses an action's input or knows no such target.
//! So a 4xx without `results` from `publish` means nothing was attempted, and one with `results` or a 5xx
//! says what was.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::request::{ActionKind, PlannedAction};
use crate::error::ApiError;
use crate::webpubsub::{ContentType, Delivery, RestClient, RestError};

/// What became of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Done,
    Failed,
    /// The service may or may not have carried it out.
    Unknown,
    NotAttempted,
}

impl Status {
    /// What a failed call's [`Delivery`] means for the action.
    fn of(delivery: Delivery) -> Self {
        match delivery {
            Delivery::NotSent | Delivery::Refused => Self::Failed,
            Delivery::Unknown => Self::Unknown,
            // Accepted (2xx) with an unreadable answer: the action itself took effect.
            Delivery::Performed => Self::Done,
        }
    }
}

/// One entry of `results`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionResult {
    pub index: usize,
    pub action: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
}

/// Why an action failed (or may have).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionError {
    pub code: &'static str,
    pub message: String,
    /// The service's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// HTTP attempts made (retries included).
    pub attempts: u32,
}

#[derive(Serialize)]
struct Outcome<'a> {
    results: &'a [ActionResult],
}

/// Executes `plan` in order on behalf of `caller`, stopping at the first action that is not done.
pub async fn execute(client: &RestClient, plan: &[PlannedAction], caller: &str) -> Result<Response, ApiError> {
    let mut results = Vec::with_capacity(plan.len());
    let mut failure: Option<(usize, RestError)> = None;
    for (index, action) in plan.iter().enumerate() {
        if failure.is_some() {
            results.push(ActionResult {
                index,
                action: action.kind.name(),
                status: Status::NotAttempted,
                error: None,
            });
            continue;
        }
        let status = match client.execute(&action.request).await {
            Ok(_) => Status::Done,
            Err(error) => {
                let status = Status::of(error.delivery());
                if status != Status::Done {
                    log_failure(caller, action, &error, status);
                    let error_body = ActionError {
                        code: error.code(),
                        message: error.to_string(),
                        upstream_status: error.status(),
                        attempts: error.attempts(),
                    };
                    results.push(ActionResult {
                        index,
                        action: action.kind.name(),
                        status,
                        error: Some(error_body),
                    });
                    failure = Some((index, error));
                    continue;
                }
                status
            }
        };
        log_done(caller, action);
        results.push(ActionResult {
            index,
            action: action.kind.name(),
            status,
            error: None,
        });
    }
    match failure {
        None => Ok(warp::reply::json(&Outcome { results: &results }).into_response()),
        Some((index, error)) => Err(upstream_error(index, plan[index].kind, &error, results)),
    }
}

/// The reply for a failed action: 400 / 404 when the service refuses its input or knows no such target,
/// 504 for a timeout, 503 for throttling or an overloaded service (with
/// `Retry-After`), 502 for anything else upstream.
fn upstream_error(index: usize, kind: ActionKind, error: &RestError, results: Vec<ActionResult>) -> ApiError {
    let (status, retry_after) = match error {
        RestError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, None),
        // The service is healthy and refuses the action's input (e.g. a filter's grammar, which is the
        // service's to judge) or knows no such connection, user or group: the caller's mistake, not an
        // upstream fault. `results` still says what earlier actions did.
        RestError::Service { error, .. } if error.status == 400 => (StatusCode::BAD_REQUEST, None),
        RestError::Service { error, .. } if error.status == 404 => (StatusCode::NOT_FOUND, None),
        RestError::Service { error, .. } if matches!(error.status, 429 | 503) => {
            let wait = error
                .retry_after
                .map_or(1, |wait| wait.as_secs_f64().ceil() as u64)
                .max(1);
            (StatusCode::SERVICE_UNAVAILABLE, Some(wait))
        }
        _ => (StatusCode::BAD_GATEWAY, None),
    };
    let done = results.iter().filter(|result| result.status == Status::Done).count();
    let not_attempted = results
        .iter()
        .filter(|result| result.status == Status::NotAttempted)
        .count();
    let what = if Status::of(error.delivery()) == Status::Unknown {
        "may or may not have taken effect"
    } else {
        "failed"
    };
    let message =
        format!("action {index} ({kind}) {what}: {error}; {done} action(s) done, {not_attempted} not attempted");
    let reply = ApiError::new(status, error.code(), message).with_detail("results", results);
    match retry_after {
        Some(secs) => reply.with_retry_after(secs),
        None => reply,
    }
}

fn data_type_name(content_type: ContentType) -> &'static str {
    match content_type {
        ContentType::Text => "text",
        ContentType::Json => "json",
        ContentType::Binary => "binary",
    }
}

/// One line per action done: who called (`user_id`) and where it went (`room`, `target_user_id`,
/// `connection_id`, `hub`).
fn log_done(caller: &str, action: &PlannedAction) {
    use tracing::field::display;
    let target = &action.target;
    let room = target.group.as_deref().map(display);
    let target_user_id = target.user_id.as_deref().map(display);
    let connection_id = target.connection_id.as_deref().map(display);
    match action.message {
        Some((content_type, bytes)) => tracing::info!(
            room,
            target_user_id,
            connection_id,
            user_id = %caller,
            hub = %action.hub,
            action = action.kind.name(),
            data_type = data_type_name(content_type),
            bytes,
            "Forwarded WebSocket message through Web PubSub"
        ),
        None => tracing::info!(
            room,
            target_user_id,
            connection_id,
            user_id = %caller,
            hub = %action.hub,
            action = action.kind.name(),
            "Performed Web PubSub action"
        ),
    }
}

fn log_failure(caller: &str, action: &PlannedAction, error: &RestError, status: Status) {
    use tracing::field::display;
    let target = &action.target;
    let room = target.group.as_deref().map(display);
    let target_user_id = target.user_id.as_deref().map(display);
    let connection_id = target.connection_id.as_deref().map(display);
    tracing::warn!(
        room,
        target_user_id,
        connection_id,
        user_id = %caller,
        hub = %action.hub,
        action = action.kind.name(),
        outcome = ?status,
        attempts = error.attempts(),
        error = %error,
        "Web PubSub action not done"
    );
}
