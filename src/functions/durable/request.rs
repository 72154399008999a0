//! What the durable routes (`conversations`, `notifications`, `sync`) read the same way: every request
//! under `api/<function>/…` handed to the function's handler ([`serve`]), the caller's `X-User-Id` header
//! ([`check_user_id_header`], [`header_user_id`]; `MemberState::identify` decides who calls), the query
//! parameters each route names, each given at most once ([`read_query`]), a
//! cursor ([`seq_param`]), a `limit` clamped to its range ([`clamped_limit`]) and a read marker
//! `{"seq": n}` ([`read_marker`]).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::path::Tail;
use warp::reply::Response;

use super::reply::parse_json;
use crate::auth::validate_user_id;
use crate::error::{self, ApiError};
use crate::request::{UnreadBody, raw_query, unread_body};

/// The header an anonymous caller may name itself with (instead of the `userId` query parameter).
const USER_ID_HEADER: &str = "x-user-id";

/// One request under `api/{function}/…`, as [`serve`] hands it over: the path after the function's name,
/// the method, the raw query (empty when there is none), the headers and the body, not yet read.
pub(crate) struct Call {
    pub(crate) tail: Tail,
    pub(crate) method: Method,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: UnreadBody,
}

/// Serves every request under `api/{function}/…` with `handle`, given the state and the [`Call`]; its
/// errors are replies.
pub(crate) fn serve<S, F, Fut>(function: &'static str, state: Arc<S>, handle: F) -> BoxedFilter<(Response,)>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Call) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    warp::path("api")
        .and(warp::path(function))
        .and(warp::path::tail())
        .and(warp::method())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(unread_body())
        .then(
            move |tail: Tail, method: Method, query: String, headers: HeaderMap, body: UnreadBody| {
                let call = Call {
                    tail,
                    method,
                    query,
                    headers,
                    body,
                };
                let reply = handle(state.clone(), call);
                async move { error::into_response(reply.await) }
            },
        )
        .boxed()
}

/// The values of the parameters `names` in the `raw` query, in that order; others are ignored (the host
/// adds its own). A parameter given twice is a 400 `InvalidQuery` naming it.
pub(crate) fn read_query<const N: usize>(raw: &str, names: [&str; N]) -> Result<[Option<String>; N], ApiError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let Some(slot) = names.iter().position(|wanted| *wanted == name) else {
            continue;
        };
        if values[slot].replace(value.into_owned()).is_some() {
            return Err(
                ApiError::bad_request("InvalidQuery", format!("{name} is given more than once"))
                    .with_detail("field", name.as_ref()),
            );
        }
    }
    Ok(values)
}

/// A cursor parameter `name` (`after`, `before`): a `what` seq, a whole number ≥ 0; anything else a 400
/// `InvalidCursor` naming it.
pub(crate) fn seq_param(name: &str, value: &str, what: &str) -> Result<i64, ApiError> {
    value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        ApiError::bad_request(
            "InvalidCursor",
            format!("{name} must be a {what} seq (a whole number ≥ 0)"),
        )
        .with_detail("field", name)
    })
}

/// A `limit` parameter: absent → `default`; a whole number → clamped to `1..=max`; anything else 400.
pub(crate) fn clamped_limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(text) => text
            .parse::<i128>()
            .map(|n| n.clamp(1, i128::from(max)) as i64)
            .map_err(|_| {
                ApiError::bad_request("InvalidField", "limit must be a whole number").with_detail("field", "limit")
            }),
    }
}

/// A present `X-User-Id` header must be a usable user id ([`validate_user_id`]): empty, blank or not text
/// is a 400 even when the `userId` query parameter names the caller (the contract's `minLength: 1`; fuzz
/// finding ST201, #17).
pub(super) fn check_user_id_header(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(USER_ID_HEADER) else {
        return Ok(());
    };
    match value.to_str().ok().map(validate_user_id) {
        Some(Ok(())) => Ok(()),
        _ => Err(ApiError::bad_request(
            "InvalidHeader",
            "header X-User-Id must name the caller (1-256 characters)",
        )
        .with_detail("field", "X-User-Id")),
    }
}

/// The `X-User-Id` header, when present and text.
pub(super) fn header_user_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(USER_ID_HEADER).and_then(|v| v.to_str().ok())
}

/// Largest body of a read marker (`{"seq": n}`).
pub(crate) const MAX_READ_BYTES: u64 = 1024;

/// `{"seq": n}`: a read marker (conversations and the notification feed, #16).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadMarker {
    seq: i64,
}

/// The `seq` of a read marker body, ≥ 0.
pub(crate) fn read_marker(body: &Bytes) -> Result<i64, ApiError> {
    let marker: ReadMarker = parse_json(body)?;
    if marker.seq < 0 {
        return Err(ApiError::bad_request("InvalidField", "seq must be ≥ 0").with_detail("field", "seq"));
    }
    Ok(marker.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_markers_are_whole_numbers() {
        assert_eq!(read_marker(&Bytes::from_static(br#"{"seq":3}"#)).unwrap(), 3);
        for bad in [
            &br#"{"seq":-1}"#[..],
            br#"{"seq":1.5}"#,
            br#"{}"#,
            br#"{"seq":1,"x":2}"#,
            b"[]",
        ] {
            assert!(read_marker(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }
}
