//! What `sync` reads: the query (`userId`, `since`, `limit`), and how a refused cursor is answered.

use crate::error::ApiError;
use crate::functions::durable::request::{clamped_limit, read_query};
use crate::store::cursor::{CursorError, MAX_CURSOR_LEN};
use crate::store::sync::MAX_SYNC_LIMIT;

/// Page size without `limit`.
pub(super) const DEFAULT_SYNC_LIMIT: i64 = 100;

/// The query parameters `sync` reads (others are ignored, as the host adds its own).
#[derive(Debug)]
pub(super) struct Query {
    pub(super) user_id: Option<String>,
    pub(super) since: Option<String>,
    pub(super) limit: Option<String>,
}

impl Query {
    /// Reads the parameters from the `raw` query (one given twice is a 400 `InvalidQuery`), with `since`
    /// checked for shape (never echoed).
    pub(super) fn parse(raw: &str) -> Result<Self, ApiError> {
        let [user_id, since, limit] = read_query(raw, ["userId", "since", "limit"])?;
        let query = Self { user_id, since, limit };
        if query
            .since
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > MAX_CURSOR_LEN)
        {
            return Err(cursor_error(CursorError::Malformed));
        }
        Ok(query)
    }

    /// `limit`: clamped to 1..=1000, default 100.
    pub(super) fn limit(&self) -> Result<i64, ApiError> {
        clamped_limit(self.limit.as_deref(), DEFAULT_SYNC_LIMIT, MAX_SYNC_LIMIT)
    }
}

/// 400 `InvalidCursor` naming what is wrong, never echoing the cursor.
pub(super) fn cursor_error(error: CursorError) -> ApiError {
    ApiError::bad_request("InvalidCursor", format!("since: {error}; start again without since"))
        .with_detail("field", "since")
}
