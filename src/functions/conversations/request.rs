//! What `conversations` reads: the query (`userId`, `after`, `before`, `limit`), the `Idempotency-Key`
//! header and a send's body `{"id"?, "body"}`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use warp::http::HeaderMap;

use crate::error::ApiError;
use crate::functions::durable::reply::{not_null, parse_json};
use crate::functions::durable::request::{read_query, seq_param};
use crate::store::is_valid_item_id;
use crate::store::messages::{DEFAULT_PAGE, MAX_PAGE, Page};

pub(super) const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The query parameters the routes read (others are ignored, as the host adds its own).
#[derive(Debug)]
pub(super) struct Query {
    pub(super) user_id: Option<String>,
    pub(super) after: Option<String>,
    pub(super) before: Option<String>,
    pub(super) limit: Option<String>,
}

impl Query {
    /// Reads the parameters from the `raw` query; one given twice is a 400 `InvalidQuery`.
    pub(super) fn parse(raw: &str) -> Result<Self, ApiError> {
        let [user_id, after, before, limit] = read_query(raw, ["userId", "after", "before", "limit"])?;
        Ok(Self {
            user_id,
            after,
            before,
            limit,
        })
    }

    /// Which history page and its size: `after` or `before` (a seq ≥ 0, not both), `limit` 1..=200.
    pub(super) fn page(&self) -> Result<(Page, i64), ApiError> {
        let page = match (&self.after, &self.before) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("InvalidCursor", "give after or before, not both")
                    .with_detail("field", "before"));
            }
            (Some(after), None) => Page::After(seq_param("after", after, "message")?),
            (None, Some(before)) => Page::Before(seq_param("before", before, "message")?),
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
