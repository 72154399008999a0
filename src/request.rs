//! Request plumbing shared by the functions: bounded bodies, read inside the handler after the caller is
//! verified, and the host's invocation id.
//!
//! Bodies are bounded while they are read, not only by `Content-Length`: the Functions host forwards a body
//! only with a length, but the handler also serves direct callers (tests, `handler dev`) and must never buffer
//! an unbounded stream. A POST with no body at all is fine (the host drops empty bodies and their length).

use std::ops::RangeInclusive;
use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::Filter;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::error::ApiError;

/// Bounds for a function's body-size setting (`EventsMaxBodyBytes`, `PublishMaxBodyBytes`): a request needs
/// a few KiB; the Functions host forwards at most 100 MiB.
pub(crate) const MAX_BODY_BYTES_RANGE: RangeInclusive<u64> = 4096..=100 * 1024 * 1024;

/// Header the Functions host adds to every forwarded request.
pub(crate) const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// Answers a request whose path or query holds a control character (NUL included), raw or percent-encoded,
/// with a 400 `InvalidPath` / `InvalidQuery`: no route takes one, and none may reach a name, a log line or
/// the service. (The HTTP server already refuses them in header values.) Any other request passes on.
pub(crate) fn control_characters() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and(raw_query())
        .and_then(|path: warp::path::FullPath, query: String| async move {
            if has_control_character(path.as_str()) {
                Ok(ApiError::bad_request("InvalidPath", "the path holds a control character").into_response())
            } else if has_control_character(&query) {
                Ok(ApiError::bad_request("InvalidQuery", "the query string holds a control character").into_response())
            } else {
                Err(warp::reject::not_found())
            }
        })
}

/// The raw query string, empty when the request has none (`warp::query::raw` alone rejects that).
pub(crate) fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Whether `text`, percent-decoded, holds a C0 control character or DEL.
fn has_control_character(text: &str) -> bool {
    percent_encoding::percent_decode_str(text).any(|byte| byte < 0x20 || byte == 0x7f)
}

/// A request body not yet read: routes hand it to the handler, which verifies the caller first and then
/// reads it with [`read_body`], so every failure is the handler's reply.
pub(crate) type UnreadBody = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// Extracts the body without reading it.
pub(crate) fn unread_body() -> impl Filter<Extract = (UnreadBody,), Error = warp::Rejection> + Clone {
    warp::body::stream().map(unread)
}

fn unread<S, B>(stream: S) -> UnreadBody
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(stream.map(|chunk| chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining()))))
}

/// Reads the whole body, failing with a 413 past `limit` bytes (declared in `Content-Length` or actual), and
/// with a 408 when it stalls past the server's body deadline ([`crate::connections::Limits`]).
pub(crate) async fn read_body(headers: &HeaderMap, body: UnreadBody, limit: u64) -> Result<Bytes, ApiError> {
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("InvalidHeader", "header content-length is invalid"))?,
        ),
    };
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    collect_bounded(body, limit).await
}

async fn collect_bounded(body: UnreadBody, limit: u64) -> Result<Bytes, ApiError> {
    let mut stream = body;
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            if crate::connections::BodyReadError::is_timeout(&e) {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", e.to_string())
            } else {
                ApiError::bad_request("InvalidBody", format!("could not read the request body: {e}"))
            }
        })?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The host's invocation id, when the request came through the Functions host.
#[cfg(test)]
pub(crate) fn invocation_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(INVOCATION_ID_HEADER).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_len(limit: u64) -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
        warp::post()
            .and(warp::header::headers_cloned())
            .and(unread_body())
            .then(move |headers: HeaderMap, body: UnreadBody| async move {
                match read_body(&headers, body, limit).await {
                    Ok(body) => body.len().to_string(),
                    Err(error) => error.status().to_string(),
                }
            })
    }

    #[tokio::test]
    async fn accepts_bodies_up_to_the_limit() {
        let reply = warp::test::request()
            .method("POST")
            .body("12345")
            .reply(&echo_len(5))
            .await;
        assert_eq!(reply.body(), "5");
    }

    #[tokio::test]
    async fn accepts_a_post_without_body_or_length() {
        let reply = warp::test::request().method("POST").reply(&echo_len(5)).await;
        assert_eq!(reply.body(), "0");
    }

    #[tokio::test]
    async fn rejects_a_declared_length_over_the_limit() {
        let reply = warp::test::request()
            .method("POST")
            .body("123456")
            .reply(&echo_len(5))
            .await;
        assert_eq!(
            reply.body().as_ref(),
            StatusCode::PAYLOAD_TOO_LARGE.to_string().as_bytes()
        );
    }

    #[tokio::test]
    async fn control_characters_in_path_or_query_are_400s() {
        let route = control_characters()
            .map(|response: Response| response.status().to_string())
            .or(warp::any().map(|| "ok".to_owned()))
            .unify();
        for (path, expected) in [
            ("/api/negotiate?userId=ada", "ok"),
            ("/api/negotiate?userId=a%20b+c", "ok"),
            ("/api/negotiate?userId=a%00", "400 Bad Request"),
            ("/api/negotiate?userId=%1b%5B31m", "400 Bad Request"),
            ("/api/negotiate?x=%7F", "400 Bad Request"),
            ("/api/nego%0Atiate", "400 Bad Request"),
            ("/api/%00", "400 Bad Request"),
        ] {
            let reply = warp::test::request().path(path).reply(&route).await;
            assert_eq!(reply.body(), expected, "{path}");
        }
    }

    #[test]
    fn reads_the_invocation_id() {
        let mut headers = HeaderMap::new();
        assert_eq!(invocation_id(&headers), None);
        headers.insert(INVOCATION_ID_HEADER, "abc".parse().unwrap());
        assert_eq!(invocation_id(&headers), Some("abc"));
    }
}
