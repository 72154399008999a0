//! Live connections (#16), recorded from Web PubSub `connected` / `disconnected` events so any instance can
//! tell whether a user is online (the offline webhook goes only to users with none). Keyed by connection id,
//! so duplicate or out-of-order events from several instances converge.

use super::{Store, StoreResult, now_ms};

impl Store {
    /// Records a live connection (idempotent: a repeated event keeps one row).
    pub async fn connection_opened(&self, connection_id: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO connections (connection_id, user_id, connected_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connection_id) DO UPDATE SET user_id = excluded.user_id",
        )
        .bind(connection_id)
        .bind(user_id)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Forgets a connection; true when it was recorded.
    pub async fn connection_closed(&self, connection_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM connections WHERE connection_id = $1")
            .bind(connection_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many live connections `user_id` has.
    pub async fn live_connections(&self, user_id: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

impl Store {
    /// The ids of `user_id`'s live connections (at most 1000; a removed member's connections to revoke).
    pub async fn user_connection_ids(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT connection_id FROM connections WHERE user_id = $1 ORDER BY connection_id LIMIT 1000",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }
}
