//! Reading the service's answers: a success body (bounded), an error answer turned into a
//! [`ServiceError`] (status, `x-ms-error-code`, clipped message, `Retry-After`), and a failed attempt
//! turned into a [`RestError`] that says whether the service may have acted.

use std::fmt;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde::Deserialize;

use super::retry::{self, AttemptFailure};
use super::{ApiResponse, Delivery, Operation, RestError, ServiceError};

/// Largest success body read (token and connection-list answers are far smaller).
pub(super) const MAX_SUCCESS_BODY: usize = 1024 * 1024;
/// Largest error body read; the rest is ignored.
pub(super) const MAX_ERROR_BODY: usize = 16 * 1024;
/// Longest service error message kept.
pub(super) const MAX_ERROR_MESSAGE_CHARS: usize = 512;

/// A failed attempt, before it becomes a [`RestError`].
pub(super) enum Failed {
    Service(ServiceError),
    Transport(reqwest::Error),
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(error) => error.fmt(f),
            Self::Transport(error) => f.write_str(&transport_detail(error)),
        }
    }
}

impl Failed {
    pub(super) fn into_rest_error(self, operation: Operation, delivery: Delivery, attempts: u32) -> RestError {
        match self {
            Self::Service(error) => RestError::Service {
                operation,
                delivery,
                attempts,
                error,
            },
            Self::Transport(error) if error.is_timeout() => RestError::Timeout {
                operation,
                delivery,
                attempts,
            },
            Self::Transport(error) => RestError::Transport {
                operation,
                delivery,
                attempts,
                detail: transport_detail(&error),
            },
        }
    }
}

/// What one failed attempt implies about the service having acted.
pub(super) fn delivery_of(failure: AttemptFailure) -> Delivery {
    match failure {
        AttemptFailure::NotConnected => Delivery::NotSent,
        AttemptFailure::NoAnswer => Delivery::Unknown,
        AttemptFailure::Status {
            status: 500 | 502 | 504,
            ..
        } => Delivery::Unknown,
        AttemptFailure::Status {
            status: 503,
            has_retry_after,
        } => {
            if has_retry_after {
                Delivery::Refused
            } else {
                Delivery::Unknown
            }
        }
        AttemptFailure::Status { .. } => Delivery::Refused,
    }
}

/// The error and its causes, without the URL (which `reqwest` would repeat at every level).
fn transport_detail(error: &reqwest::Error) -> String {
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        let text = current.to_string();
        if !text.is_empty() && !detail.contains(&text) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&text);
        }
        source = current.source();
    }
    detail
}

pub(super) fn invalid_response(operation: Operation, status: StatusCode, detail: &str) -> RestError {
    RestError::InvalidResponse {
        operation,
        status: status.as_u16(),
        detail: detail.to_owned(),
    }
}

pub(super) async fn read_success(operation: Operation, response: reqwest::Response) -> Result<ApiResponse, RestError> {
    let status = response.status();
    if !matches!(operation, Operation::GenerateToken | Operation::ListGroupConnections) {
        return Ok(ApiResponse {
            status,
            body: Bytes::new(),
        });
    }
    match read_body(response, MAX_SUCCESS_BODY).await {
        Ok((body, false)) => Ok(ApiResponse { status, body }),
        Ok((_, true)) => Err(invalid_response(operation, status, "body is larger than 1 MiB")),
        Err(_) => Err(invalid_response(operation, status, "body could not be read")),
    }
}

/// Reads at most `limit` bytes; the flag says whether more were left unread.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<(Bytes, bool), reqwest::Error> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), false))
}

/// Turns an error answer into a [`ServiceError`]: status, `x-ms-error-code`, message, `Retry-After`.
pub(super) async fn service_error(response: reqwest::Response) -> ServiceError {
    let status = response.status();
    let retry_after = retry::retry_after(response.headers());
    let header_code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .map(str::to_owned);
    let body = read_body(response, MAX_ERROR_BODY)
        .await
        .map(|(body, _)| body)
        .unwrap_or_default();
    let (body_code, body_message) = parse_error_body(&body);
    let message = body_message
        .or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
    ServiceError {
        status: status.as_u16(),
        error_code: header_code.or(body_code),
        message: clip(&message),
        retry_after,
    }
}

/// `{"error":{"code","message"}}` (2024-12-01) or `{"code","message"}` (earlier versions).
pub(super) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Detail {
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Wrapped {
        error: Detail,
    }
    let detail = serde_json::from_slice::<Wrapped>(body)
        .map(|wrapped| wrapped.error)
        .or_else(|_| serde_json::from_slice::<Detail>(body));
    match detail {
        Ok(Detail { code, message }) => (code.filter(|c| !c.is_empty()), message.filter(|m| !m.is_empty())),
        Err(_) => (None, None),
    }
}

/// At most [`MAX_ERROR_MESSAGE_CHARS`] characters, control characters replaced, for safe logging.
pub(super) fn clip(message: &str) -> String {
    message
        .chars()
        .take(MAX_ERROR_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
