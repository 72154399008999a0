//! What `notifications` reads: the query (`userId`, `after`, `limit`) and a read marker `{"seq": n}`.

use crate::error::ApiError;
pub(super) use crate::functions::conversations::{MAX_READ_BYTES, read_marker};
use crate::store::messages::{DEFAULT_PAGE, MAX_PAGE};

/// The query parameters the routes read (others are ignored, as the host adds its own).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Query {
    pub user_id: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

impl Query {
    pub(super) fn parse(raw: &str) -> Result<Self, ApiError> {
        let mut query = Self::default();
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let slot = match name.as_ref() {
                "userId" => &mut query.user_id,
                "after" => &mut query.after,
                "limit" => &mut query.limit,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(
                    ApiError::bad_request("InvalidQuery", format!("{name} is given more than once"))
                        .with_detail("field", name.as_ref()),
                );
            }
        }
        Ok(query)
    }

    /// `after` (a feed seq ≥ 0, default 0) and `limit` (a whole number, clamped to 1..=200, default 50).
    pub(super) fn page(&self) -> Result<(i64, i64), ApiError> {
        let after = match &self.after {
            None => 0,
            Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_request("InvalidCursor", "after must be a notification seq (a whole number ≥ 0)")
                    .with_detail("field", "after")
            })?,
        };
        Ok((after, clamped_limit(self.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?))
    }
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
