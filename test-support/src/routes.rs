//! Whole requests through a warp filter without sockets (`warp::test`), read back as a [`JsonReply`]: the
//! route tests of every function read answers the same way.

use serde_json::Value;
use warp::http::{HeaderMap, StatusCode};
use warp::{Filter, Reply};

/// An answer read whole: status, headers, and the body as JSON (`null` when it is not JSON).
#[derive(Debug)]
pub struct JsonReply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as JSON, or `null`.
    pub body: Value,
}

/// Runs `request` through `filter` (whose rejections the caller has recovered) and reads the answer.
pub async fn reply_json<F>(filter: &F, request: warp::test::RequestBuilder) -> JsonReply
where
    F: Filter + 'static,
    F::Extract: Reply + Send,
{
    let response = request.reply(filter).await;
    JsonReply {
        status: response.status(),
        headers: response.headers().clone(),
        body: serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    }
}
