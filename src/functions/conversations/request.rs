//! What `conversations` reads: the query (`userId`, `after`, `before`, `limit`), the `X-User-Id` and
//! `Idempotency-Key` headers, and a send's body `{"id"?, "body"}`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use warp::http::HeaderMap;

use crate::auth::validate_user_id;
use crate::error::ApiError;
use crate::functions::durable::reply::{not_null, parse_json};
use crate::functions::durable::request::query_params;
use crate::store::is_valid_item_id;
use crate::store::messages::{DEFAULT_PAGE, MAX_PAGE, Page};

pub(super) const USER_ID_HEADER: &str = "x-user-id";
pub(super) const IDEMPOTENCY_HEADER: &str = "idempotency-key";

query_params! {
    /// The query parameters the routes read (others are ignored, as the host adds its own).
    Query(parse) { user_id = "userId", after = "after", before = "before", limit = "limit" }
}

impl Query {
    /// Which history page and its size: `after` or `before` (a seq ≥ 0, not both), `limit` 1..=200.
    pub(super) fn page(&self) -> Result<(Page, i64), ApiError> {
        let cursor = |name: &str, value: &str| {
            value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_request(
                    "InvalidCursor",
                    format!("{name} must be a message seq (a whole number ≥ 0)"),
                )
                .with_detail("field", name)
            })
        };
        let page = match (&self.after, &self.before) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("InvalidCursor", "give after or before, not both")
                    .with_detail("field", "before"));
            }
            (Some(after), None) => Page::After(cursor("after", after)?),
            (None, Some(before)) => Page::Before(cursor("before", before)?),
            (None, None) => Page::Latest,
        };
        let limit = match &self.limit {
            None => DEFAULT_PAGE,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request("InvalidField", format!("limit must be from 1 to {MAX_PAGE}"))
                        .with_detail("field", "limit")
                })?,
        };
        Ok((page, limit))
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

/// `{"id"?, "body"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Send {
    #[serde(default, deserialize_with = "not_null")]
    pub id: Option<String>,
    pub body: Value,
}

/// The send: its body, and its idempotency key from `Idempotency-Key` or `id` (both → they must agree).
pub(super) fn send(body: &Bytes, headers: &HeaderMap) -> Result<Send, ApiError> {
    let mut send: Send = parse_json(body)?;
    if send.body.is_null() {
        return Err(ApiError::bad_request("InvalidField", "body is required").with_detail("field", "body"));
    }
    if let Some(key) = headers.get(IDEMPOTENCY_HEADER) {
        let key = key.to_str().ok().filter(|k| is_valid_item_id(k)).ok_or_else(|| {
            ApiError::bad_request("InvalidHeader", "Idempotency-Key must be 1-128 of A-Z a-z 0-9 - _ . ~")
                .with_detail("header", "Idempotency-Key")
        })?;
        if send.id.as_deref().is_some_and(|id| id != key) {
            return Err(
                ApiError::bad_request("InvalidField", "id and Idempotency-Key differ").with_detail("field", "id")
            );
        }
        send.id = Some(key.to_owned());
    }
    Ok(send)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_limits() {
        let page = |q: &str| Query::parse(q).unwrap().page();
        assert_eq!(page("").unwrap(), (Page::Latest, DEFAULT_PAGE));
        assert_eq!(page("after=5&limit=3").unwrap(), (Page::After(5), 3));
        assert_eq!(page("before=9").unwrap(), (Page::Before(9), DEFAULT_PAGE));
        for bad in ["after=x", "after=-1", "before=1.5", "after=1&before=2"] {
            assert_eq!(page(bad).unwrap_err().code(), "InvalidCursor", "{bad}");
        }
        for bad in ["limit=0", "limit=201", "limit=a"] {
            assert_eq!(page(bad).unwrap_err().code(), "InvalidField", "{bad}");
        }
        assert_eq!(Query::parse("after=1&after=2").unwrap_err().code(), "InvalidQuery");
        assert_eq!(
            Query::parse("userId=ada%20l").unwrap().user_id.as_deref(),
            Some("ada l")
        );
    }

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

    #[test]
    fn the_idempotency_key_comes_from_the_header_or_the_id() {
        let mut headers = HeaderMap::new();
        let body = Bytes::from_static(br#"{"body":{"text":"hi"}}"#);
        assert_eq!(send(&body, &headers).unwrap().id, None);
        headers.insert(IDEMPOTENCY_HEADER, "k-1".parse().unwrap());
        assert_eq!(send(&body, &headers).unwrap().id.as_deref(), Some("k-1"));
        let other = Bytes::from_static(br#"{"id":"k-2","body":"hi"}"#);
        assert_eq!(send(&other, &headers).unwrap_err().code(), "InvalidField");
        headers.insert(IDEMPOTENCY_HEADER, "bad key".parse().unwrap());
        assert_eq!(send(&body, &headers).unwrap_err().code(), "InvalidHeader");
        assert_eq!(
            send(&Bytes::from_static(br#"{"id":"a"}"#), &HeaderMap::new())
                .unwrap_err()
                .code(),
            "InvalidJson"
        );
    }
}
