//! API errors: what a caller is told when a request fails, and the one place framework rejections become
//! replies. Domain errors are never rejections: handlers return `Result<_, ApiError>` and
//! [`into_response`] answers; [`recover`] only turns warp's own rejections (no route, wrong method, bad
//! query or header) into the same JSON shape.
//!
//! Client errors carry a status, a stable machine-readable `code` and a human `message`. Internal errors are
//! logged in full with a reference id and answered with an opaque 500 that quotes only that id, so nothing
//! internal (and no secret) leaks into a response body.

use std::convert::Infallible;
use std::fmt::Display;

use serde::Serialize;
use serde_json::{Map, Value};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

/// A failed request, as the caller sees it: `{"code": "...", "message": "...", ...details}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    /// The `Allow` header of a 405: the methods the route does take.
    allow: Option<&'static str>,
    details: Map<String, Value>,
}

impl ApiError {
    /// An error answered with `status`, the machine-readable `code` and a human `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            allow: None,
            details: Map::new(),
        }
    }

    /// 400 with a specific code, e.g. `InvalidJson`, `InvalidField`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 405: the route exists but takes only `allow` (comma-separated, e.g. `"PUT, DELETE"`), which the
    /// answer's `Allow` header lists as RFC 9110 requires.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("this route takes {allow}"),
        );
        error.allow = Some(allow);
        error
    }

    /// 401: the caller is not authenticated (missing or invalid credentials).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 403: authenticated but not allowed, with a specific code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 413: the body exceeds `limit` bytes.
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("request body exceeds {limit} bytes"),
        )
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("rate limit exceeded; retry after {retry_after_secs} s"),
        );
        error.retry_after_secs = Some(retry_after_secs.max(1));
        error
    }

    /// An internal failure: logged in full here, answered as an opaque 500 carrying only a reference id.
    pub fn internal(context: &str, error: impl Display) -> Self {
        let reference = reference_id();
        tracing::error!(%reference, context, error = %error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("internal error (reference {reference})"),
        )
    }

    /// Adds a field to the JSON body next to `code` and `message` (e.g. per-action results).
    pub fn with_detail(mut self, name: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.details.insert(name.to_owned(), value);
        self
    }

    /// Sets `Retry-After` on any error (e.g. a 503 passed on from the service).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body's `code`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The body's `message`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::with_capacity(2 + self.details.len());
        body.insert("code".into(), Value::from(self.code));
        body.insert("message".into(), Value::from(self.message));
        body.extend(self.details);
        let mut response = warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Turns a handler result into a response: `Ok` replies as is, `Err` as its JSON error.
pub(crate) fn into_response<T: Reply>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(reply) => reply.into_response(),
        Err(error) => error.into_response(),
    }
}

/// The one place framework rejections (no route, wrong method, bad query or header) become JSON errors.
pub(crate) async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(rejection_to_error(&rejection).into_response())
}

fn rejection_to_error(rejection: &Rejection) -> ApiError {
    use warp::reject;
    if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no function is served at this path")
    } else if let Some(invalid) = rejection.find::<reject::InvalidHeader>() {
        // Before MethodNotAllowed: header filters run only after a route's path and method matched, so
        // an invalid header is the real answer even when other routes refused the method.
        ApiError::bad_request("InvalidHeader", format!("header {} is invalid", invalid.name()))
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "this function does not accept that method",
        )
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "request body is too large",
        )
    } else if rejection.find::<reject::InvalidQuery>().is_some() {
        ApiError::bad_request("InvalidQuery", "the query string could not be parsed")
    } else if let Some(missing) = rejection.find::<reject::MissingHeader>() {
        ApiError::bad_request("MissingHeader", format!("header {} is required", missing.name()))
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "unsupported content type",
        )
    } else {
        ApiError::internal("unhandled rejection", format!("{rejection:?}"))
    }
}

/// A short random id that ties an opaque 500 to its log line.
fn reference_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::Filter;

    async fn reply_of(error: ApiError) -> (StatusCode, warp::http::HeaderMap, Value) {
        let filter = warp::any().map(move || error.clone());
        let response = warp::test::request().reply(&filter).await;
        (
            response.status(),
            response.headers().clone(),
            serde_json::from_slice(response.body()).unwrap(),
        )
    }

    #[tokio::test]
    async fn client_error_is_json_with_code_and_message() {
        let (status, _, body) = reply_of(ApiError::bad_request("InvalidJson", "bad")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, serde_json::json!({"code": "InvalidJson", "message": "bad"}));
    }

    #[tokio::test]
    async fn details_sit_beside_code_and_message() {
        let error = ApiError::bad_request("InvalidField", "x").with_detail("field", "group");
        let (_, _, body) = reply_of(error).await;
        assert_eq!(body["field"], "group");
    }

    #[tokio::test]
    async fn too_many_requests_sets_retry_after() {
        let (status, headers, body) = reply_of(ApiError::too_many_requests(7)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "7");
        assert_eq!(body["code"], "TooManyRequests");
    }

    #[tokio::test]
    async fn internal_error_hides_the_cause() {
        let (status, _, body) = reply_of(ApiError::internal("test", "AccessKey=secret leaked?")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "InternalError");
        assert!(!body.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn rejections_become_json_errors() {
        let route = warp::path("only").and(warp::get()).map(|| "ok").recover(recover);
        let missing = warp::test::request().path("/nope").reply(&route).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let body: Value = serde_json::from_slice(missing.body()).unwrap();
        assert_eq!(body["code"], "NotFound");
        let wrong_method = warp::test::request().method("DELETE").path("/only").reply(&route).await;
        assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
