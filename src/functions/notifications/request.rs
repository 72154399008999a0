//! What `notifications` reads: the query (`userId`, `after`, `limit`).

use crate::error::ApiError;
pub(super) use crate::functions::durable::request::clamped_limit;
use crate::functions::durable::request::{read_query, seq_param};
use crate::store::messages::{DEFAULT_PAGE, MAX_PAGE};

/// The query parameters the routes read (others are ignored, as the host adds its own).
#[derive(Debug)]
pub(super) struct Query {
    pub(super) user_id: Option<String>,
    pub(super) after: Option<String>,
    pub(super) limit: Option<String>,
}

impl Query {
    /// Reads the parameters from the `raw` query; one given twice is a 400 `InvalidQuery`.
    pub(super) fn parse(raw: &str) -> Result<Self, ApiError> {
        let [user_id, after, limit] = read_query(raw, ["userId", "after", "limit"])?;
        Ok(Self { user_id, after, limit })
    }

    /// `after` (a feed seq ≥ 0, default 0) and `limit` (a whole number, clamped to 1..=200, default 50).
    pub(super) fn page(&self) -> Result<(i64, i64), ApiError> {
        let after = match &self.after {
            None => 0,
            Some(text) => seq_param("after", text, "notification")?,
        };
        Ok((after, clamped_limit(self.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?))
    }
}
