//! Runs a validated plan through the REST client, one action after another, and reports each action's
//! outcome honestly: `done` only after the service accepted it, `failed` when the service certainly did not
//! act, `unknown` when it may have (a timeout or 5xx after sending), `notAttempted` after the first failure.
//!
//! Read-only actions answer in their result: `exists` (`connectionExists`, `groupExists`, `userExists`),
//! `granted` (`checkPermission`), `connections` and, when there are more, `continuationToken`
//! (`listConnectionsInGroup`, one bounded page).
//!
//! The whole request runs under the publish deadline (`PublishDeadlineSeconds`, below the host's
//! `functionTimeout`): when it passes, the action in flight is `unknown`, the rest `notAttempted`, and the
//! answer is 504 `PublishDeadlineExceeded` with `results`.
//!
//! All done → 200 `{"results": [...]}` (the simple form adds `"status": "published"`). A failure → 502 / 503 / 504 with `code`, `message` and the same
//! `results`; 400 / 404 with `results` when the service refuses an action's input or knows no such target.
//! So a 4xx without `results` from `publish` means nothing was attempted, and one with `results` or a 5xx
//! says what was.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use tokio::time::Instant;

use super::request::{ActionKind, Plan, PlannedAction};
use crate::error::ApiError;
use crate::webpubsub::{Delivery, GroupMember, RestClient, RestError};

/// What became of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Status {
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
#[serde(rename_all = "camelCase")]
pub(super) struct ActionResult {
    pub index: usize,
    pub action: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
    /// The answer of a read-only action.
    #[serde(flatten)]
    pub answer: Answer,
}

/// What a read-only action found (empty for the others).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<GroupMember>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
}

impl ActionResult {
    fn new(index: usize, action: &PlannedAction, status: Status) -> Self {
        Self {
            index,
            action: action.kind.name(),
            status,
            error: None,
            answer: Answer::default(),
        }
    }
}

/// Why an action failed (or may have).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ActionError {
    pub code: &'static str,
    pub message: String,
    /// The service's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// HTTP attempts made (retries included); absent when the deadline cut the action short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

#[derive(Serialize)]
struct Outcome<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    results: &'a [ActionResult],
}

/// Why execution stopped early.
enum Stop {
    Failed(RestError),
    /// The publish deadline passed (during the action at this index, or before it began).
    Deadline,
}

/// Code of the 504 answered when the publish deadline passes.
/// (A `static`, not a `const`: the settings-documented check reads `const …: &str = "Publish…"` as a setting.)
pub(super) static DEADLINE_CODE: &str = "PublishDeadlineExceeded";

/// Runs one action; a read-only one returns what it found.
async fn run(client: &RestClient, action: &PlannedAction) -> Result<Answer, RestError> {
    let mut answer = Answer::default();
    match action.kind {
        ActionKind::ListConnectionsInGroup => {
            let group = action.target.group.as_deref().unwrap_or_default();
            let options = action.page.clone().unwrap_or_default();
            let page = client.list_group_connections(&action.hub, group, &options).await?;
            answer.connections = Some(page.members);
            answer.continuation_token = page.continuation_token;
        }
        kind => {
            let response = client.execute(&action.request).await?;
            match kind {
                ActionKind::ConnectionExists | ActionKind::GroupExists | ActionKind::UserExists => {
                    answer.exists = Some(response.status.is_success());
                }
                ActionKind::CheckPermission => answer.granted = Some(response.status.is_success()),
                _ => {}
            }
        }
    }
    Ok(answer)
}

/// Executes `plan` in order on behalf of `caller`, stopping at the first action that is not done or when
/// `deadline` passes.
pub(super) async fn execute(
    client: &RestClient,
    plan: &Plan,
    caller: &str,
    deadline: Instant,
) -> Result<Response, ApiError> {
    let who = Who {
        caller,
        attribution: plan.attribution.as_deref(),
    };
    let actions = &plan.actions;
    let mut results = Vec::with_capacity(actions.len());
    let mut stop: Option<(usize, Stop)> = None;
    for (index, action) in actions.iter().enumerate() {
        if stop.is_some() {
            results.push(ActionResult::new(index, action, Status::NotAttempted));
            continue;
        }
        if Instant::now() >= deadline {
            results.push(ActionResult::new(index, action, Status::NotAttempted));
            stop = Some((index, Stop::Deadline));
            continue;
        }
        match tokio::time::timeout_at(deadline, run(client, action)).await {
            Ok(Ok(answer)) => {
                log_done(&who, action);
                results.push(ActionResult {
                    answer,
                    ..ActionResult::new(index, action, Status::Done)
                });
            }
            // Accepted (2xx) with an unreadable answer: the action itself took effect.
            Ok(Err(error)) if Status::of(error.delivery()) == Status::Done && !action.kind.is_read_only() => {
                log_done(&who, action);
                results.push(ActionResult::new(index, action, Status::Done));
            }
            Ok(Err(error)) => {
                let status = match Status::of(error.delivery()) {
                    // A question whose answer could not be read was not answered.
                    Status::Done => Status::Failed,
                    status => status,
                };
                log_failure(&who, action, &error.to_string(), Some(error.attempts()), status);
                results.push(ActionResult {
                    error: Some(ActionError {
                        code: error.code(),
                        message: error.to_string(),
                        upstream_status: error.status(),
                        attempts: Some(error.attempts()),
                    }),
                    ..ActionResult::new(index, action, status)
                });
                stop = Some((index, Stop::Failed(error)));
            }
            Err(_elapsed) => {
                let message = "the publish deadline passed while the service had not answered";
                log_failure(&who, action, message, None, Status::Unknown);
                results.push(ActionResult {
                    error: Some(ActionError {
                        code: DEADLINE_CODE,
                        message: message.to_owned(),
                        upstream_status: None,
                        attempts: None,
                    }),
                    ..ActionResult::new(index, action, Status::Unknown)
                });
                stop = Some((index, Stop::Deadline));
            }
        }
    }
    match stop {
        None => Ok(warp::reply::json(&Outcome {
            status: plan.simple.then_some("published"),
            results: &results,
        })
        .into_response()),
        Some((index, Stop::Failed(error))) => Err(upstream_error(index, actions[index].kind, &error, results)),
        Some((index, Stop::Deadline)) => Err(deadline_error(index, actions[index].kind, results)),
    }
}

/// 504 when the deadline passed: what was done, what may have been, what was not attempted.
fn deadline_error(index: usize, kind: ActionKind, results: Vec<ActionResult>) -> ApiError {
    let (done, not_attempted) = tally(&results);
    let message = format!(
        "publish stopped at its deadline at action {index} ({kind}); {done} action(s) done, {not_attempted} not attempted"
    );
    ApiError::new(StatusCode::GATEWAY_TIMEOUT, DEADLINE_CODE, message).with_detail("results", results)
}

fn tally(results: &[ActionResult]) -> (usize, usize) {
    let count = |status| results.iter().filter(|result| result.status == status).count();
    (count(Status::Done), count(Status::NotAttempted))
}

/// The reply for a failed action: 400 / 404 when the service refuses its input or knows no such target,
/// 504 for a timeout, 503 for throttling or an overloaded service (with
/// `Retry-After`), 502 for anything else upstream.
fn upstream_error(index: usize, kind: ActionKind, error: &RestError, results: Vec<ActionResult>) -> ApiError {
    let (status, retry_after) = match error {
        RestError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, None),
        // Identity mode: no token for the service (its identity endpoint is down or slow); nothing was sent.
        RestError::Identity { .. } => (StatusCode::SERVICE_UNAVAILABLE, error.identity_retry_after()),
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
    let (done, not_attempted) = tally(&results);
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

/// Who an action is logged for: `user_id` is the caller, or the simple form's `user_id` attribution (the
/// caller then in `caller`).
struct Who<'a> {
    caller: &'a str,
    attribution: Option<&'a str>,
}

impl Who<'_> {
    fn user_id(&self) -> &str {
        self.attribution.unwrap_or(self.caller)
    }

    fn caller(&self) -> Option<&str> {
        self.attribution.is_some().then_some(self.caller)
    }
}

/// One log line about `$action` at `$level`: who (`user_id`, and `caller` when the body named a publisher)
/// and where it went (`room`, `target_user_id`, `connection_id`, `hub`), then the caller's own fields and
/// message.
macro_rules! log_action {
    ($level:ident, $who:expr, $action:expr, $($rest:tt)*) => {{
        let (who, action): (&Who<'_>, &PlannedAction) = ($who, $action);
        let target = &action.target;
        tracing::$level!(
            room = target.group.as_deref().map(tracing::field::display),
            target_user_id = target.user_id.as_deref().map(tracing::field::display),
            connection_id = target.connection_id.as_deref().map(tracing::field::display),
            user_id = %who.user_id(),
            caller = who.caller().map(tracing::field::display),
            hub = %action.hub,
            action = action.kind.name(),
            $($rest)*
        )
    }};
}

/// One line per action done; sends add what went (`data_type`, `bytes`).
fn log_done(who: &Who<'_>, action: &PlannedAction) {
    match action.message {
        Some((content_type, bytes)) => log_action!(
            info,
            who,
            action,
            data_type = content_type.as_str(),
            bytes,
            "Forwarded WebSocket message through Web PubSub"
        ),
        None => log_action!(info, who, action, "Performed Web PubSub action"),
    }
}

/// One line per action not done: its outcome, the attempts made and the error.
fn log_failure(who: &Who<'_>, action: &PlannedAction, error: &str, attempts: Option<u32>, status: Status) {
    log_action!(
        warn,
        who,
        action,
        outcome = ?status,
        attempts,
        error,
        "Web PubSub action not done"
    );
}
