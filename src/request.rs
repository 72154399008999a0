//! Request plumbing shared by the functions: bounded bodies and the host's invocation id.
//!
//! Bodies are bounded while they are read, not only by `Content-Length`: the Functions host forwards a body
//! only with a length, but the handler also serves direct callers (tests, `handler dev`) and must never buffer
//! an unbounded stream. A POST with no body at all is fine (the host drops empty bodies and their length).

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::Filter;
use warp::http::HeaderMap;

use crate::error::ApiError;

/// Header the Functions host adds to every forwarded request.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// Refuses a request whose path or query holds a control character (NUL included), raw or percent-encoded,
/// with a 400 `InvalidPath` / `InvalidQuery`: no route takes one, and none may reach a name, a log line or
/// the service. (The HTTP server already refuses them in header values.)
pub fn no_control_characters() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(|path: warp::path::FullPath, query: String| async move {
            if has_control_character(path.as_str()) {
                Err(warp::reject::custom(ApiError::bad_request(
                    "InvalidPath",
                    "the path holds a control character",
                )))
            } else if has_control_character(&query) {
                Err(warp::reject::custom(ApiError::bad_request(
                    "InvalidQuery",
                    "the query string holds a control character",
                )))
            } else {
                Ok(())
            }
        })
        .untuple_one()
}

/// Whether `text`, percent-decoded, holds a C0 control character or DEL.
fn has_control_character(text: &str) -> bool {
    percent_encoding::percent_decode_str(text).any(|byte| byte < 0x20 || byte == 0x7f)
}

/// Extracts the whole body, rejecting with a 413 `ApiError` past `limit` bytes (declared or actual).
pub fn bounded_body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| async move {
            if declared.is_some_and(|length| length > limit) {
                return Err(warp::reject::custom(ApiError::payload_too_large(limit)));
            }
            collect_bounded(stream, limit).await.map_err(warp::reject::custom)
        })
}

async fn collect_bounded<S, B>(stream: S, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request("InvalidBody", format!("could not read the request body: {e}")))?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// The host's invocation id, when the request came through the Functions host.
pub fn invocation_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(INVOCATION_ID_HEADER).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::StatusCode;

    fn echo_len(limit: u64) -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
        warp::post()
            .and(bounded_body(limit))
            .map(|body: Bytes| body.len().to_string())
            .recover(|r| async move { crate::error::recover(r).await.map(|resp| format!("{}", resp.status())) })
            .unify()
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
        let route = no_control_characters()
            .map(|| "ok".to_owned())
            .recover(|r| async move { crate::error::recover(r).await.map(|resp| format!("{}", resp.status())) })
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
