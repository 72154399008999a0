//! What `notifications` reads: the query (`userId`, `after`, `limit`).

use crate::error::ApiError;
pub(super) use crate::functions::durable::request::clamped_limit;
use crate::functions::durable::request::{query_params, seq_param};
use crate::store::messages::{DEFAULT_PAGE, MAX_PAGE};

query_params! {
    /// The query parameters the routes read (others are ignored, as the host adds its own).
    Query(parse) { user_id = "userId", after = "after", limit = "limit" }
}

impl Query {
    /// `after` (a feed seq ≥ 0, default 0) and `limit` (a whole number, clamped to 1..=200, default 50).
    pub(super) fn page(&self) -> Result<(i64, i64), ApiError> {
        let after = match &self.after {
            None => 0,
            Some(text) => seq_param("after", text, "notification")?,
        };
        Ok((after, clamped_limit(self.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?))
    }
}
