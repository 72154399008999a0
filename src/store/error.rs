//! [`StoreError`]: what a store operation can answer besides success, split the way routes need it —
//! the store is unavailable (503 with Retry-After), a domain outcome (404 / 403 / 409 / 400), or internal (500).

/// Failure of a store operation. `Display` never contains the connection string or its password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or is overloaded / locked; retrying later may succeed (→ 503).
    #[error("store unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The conversation (or other named thing) does not exist (→ 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller is not a member of the conversation (→ 403).
    #[error("not a member of the conversation")]
    NotMember,
    /// The request contradicts what is stored: same id, other content (→ 409).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The request is well-formed JSON but not acceptable (bad id, marker beyond the last seq, …) (→ 400).
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// Anything else: a bug or a schema problem (→ logged in full, opaque 500).
    #[error("store internal error: {0}")]
    Internal(#[source] sqlx::Error),
    /// Stored data that does not decode (for example a corrupt JSON body).
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the caller should answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_transient(&err) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            other => Self::Corrupt(format!("migration: {other}")),
        }
    }
}

/// Connection loss, pool exhaustion, lock contention and serialization failures are worth a retry.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: 08 connection exception, 53 insufficient resources, 57P0x shutdown,
            // 40001 serialization failure, 40P01 deadlock. SQLite (numeric codes, never five
            // characters): 5 BUSY, 6 LOCKED and their extended codes.
            if code.len() == 5 {
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P0")
                    || code == "40001"
                    || code == "40P01"
            } else {
                code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_unavailable() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
    }

    #[test]
    fn row_not_found_is_internal() {
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Internal(_)
        ));
    }
}
