//! The REST data plane under `/api/`: every operation of the service's 2024-12-01 API (sends,
//! closes, membership, existence checks, permissions, `:generateToken`, group listing).
//!
//! One warp filter takes every `/api/...` request and routes it by hand, so every failure is
//! the service's JSON error (`{"error":{"code","message"}}` plus `x-ms-error-code`) rather than
//! a warp rejection. Order of checks: route (404/405), bearer token (401), `api-version`
//! (400), names and parameters (400), body (413/415/400), then the operation. Status codes are
//! the ones the official SDKs expect: 202 for sends, 200 for adds, grants and tokens, 204 for
//! removes and closes, 200/404 for `HEAD` existence checks. `HEAD /api/health` is answered in
//! `lib.rs`; this module also answers it so the REST surface is complete on its own.

//!
//! Layout: `route` (path → operation, by the protocol crate's operation table), `call` (one
//! request through the checks, shared parameter and body parsing), `handlers` (one method per
//! operation), `checks` (name and parameter rules as API errors), `paging` (group listings),
//! `query` (query-string access), `error` (the JSON error reply).

mod call;
mod checks;
mod error;
mod handlers;
mod paging;
mod query;
mod route;
#[cfg(test)]
mod tests;

use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use warp::Filter as _;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;

use crate::service::Service;
use call::Call;
pub use error::ApiError;

/// Largest accepted message body: 1 MB, the service's message size limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Accepted `api-version` values: the current stable one and the older stable ones.
pub const API_VERSIONS: &[&str] = &["2024-12-01", "2024-01-01", "2023-07-01", "2022-11-01", "2021-10-01"];

/// Longest `messageTtlSeconds` (0 means no expiry).
pub const MAX_MESSAGE_TTL_SECONDS: u32 = 300;

/// Largest `maxpagesize` for listing group connections (also the default page size).
pub const MAX_PAGE_SIZE: usize = 200;

/// Longest `reason` accepted for a close, in characters.
pub const MAX_REASON_CHARS: usize = 1024;

/// Characters left unescaped in the path segments and query values this module writes.
pub(crate) const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// The REST data plane: every request whose path starts with `/api/`.
pub fn routes(service: Arc<Service>) -> BoxedFilter<(Response,)> {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let body = warp::body::stream().map(boxed_body);
    warp::path("api")
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(body)
        .then(move |method, path, query, headers, body| serve_call(service.clone(), method, path, query, headers, body))
        .boxed()
}

/// Runs one call through the checks and its handler; failures become the JSON error reply.
async fn serve_call(
    service: Arc<Service>,
    method: Method,
    path: warp::path::FullPath,
    query: String,
    headers: HeaderMap,
    body: BodyStream,
) -> Response {
    let call = Call::new(service, method.clone(), path.as_str(), query, headers, body);
    let response = call.handle().await.unwrap_or_else(ApiError::into_response);
    let status = response.status().as_u16();
    tracing::debug!(%method, path = path.as_str(), status, "rest call");
    response
}

fn boxed_body<S, B>(stream: S) -> BodyStream
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(stream.map(|chunk| chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining()))))
}
