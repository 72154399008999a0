//! What the durable routes (`conversations`, `notifications`, `sync`) read the same way: the request parts
//! a route under `api/<function>/…` hands its handler ([`route`]), the query parameters each route names,
//! each given at most once ([`read_query`]), and a `limit` clamped to its range ([`clamped_limit`]).

use warp::Filter;
use warp::http::{HeaderMap, Method};
use warp::path::Tail;

use crate::error::ApiError;
use crate::request::{UnreadBody, unread_body};

/// Requests under `api/{function}/…`: the path after it, the method, the raw query (empty when there is
/// none), the headers and the body, not yet read.
pub(crate) fn route(
    function: &'static str,
) -> impl Filter<Extract = (Tail, Method, String, HeaderMap, UnreadBody), Error = warp::Rejection> + Clone {
    warp::path("api")
        .and(warp::path(function))
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(unread_body())
}

/// Reads the parameters named in `slots` from the `raw` query into their slots; others are ignored (the
/// host adds its own). A parameter given twice is a 400 `InvalidQuery` naming it.
pub(crate) fn read_query<const N: usize>(
    raw: &str,
    mut slots: [(&str, &mut Option<String>); N],
) -> Result<(), ApiError> {
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let Some((_, slot)) = slots.iter_mut().find(|(wanted, _)| *wanted == name) else {
            continue;
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(
                ApiError::bad_request("InvalidQuery", format!("{name} is given more than once"))
                    .with_detail("field", name.as_ref()),
            );
        }
    }
    Ok(())
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
