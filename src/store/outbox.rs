//! The transactional outbox: rows written in the same transaction as what they announce, delivered at least
//! once. A writer may lease its new row for an immediate try; the timer drain claims due rows by a committed
//! lease (PostgreSQL picks them with `FOR UPDATE SKIP LOCKED`, so concurrent drains never share a row; SQLite
//! has one writer). A failure reschedules with exponential backoff that honours Retry-After; after the
//! attempt cap a row is parked and handed back for an error log. Sent rows are pruned after a retention.

use std::time::Duration;

use serde_json::Value;
use sqlx::{Any, Row, Transaction};

use super::{Backend, Store, StoreError, StoreResult, new_id, now_ms};

/// How long the writer's immediate try owns its row before the drain may take it.
pub const IMMEDIATE_LEASE: Duration = Duration::from_secs(10);

/// Most leases one [`Store::mark_sent_many`] statement carries (two parameters each, well under either
/// backend's parameter limit).
pub const MARK_SENT_CHUNK: usize = 500;

/// What an outbox row asks the drain to do; stored as text, so #16's kinds reuse the same table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Send a stored message's frame to `conversation:{id}`.
    MessageBroadcast,
    /// Remove a user's connections from a conversation group and revoke the permission.
    MembershipRemoved,
    /// Send a notification frame to `notifications:user:{userId}`.
    Notification,
    /// POST a notification to the offline webhook.
    OfflineWebhook,
}

impl OutboxKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageBroadcast => "message",
            Self::MembershipRemoved => "membership_removed",
            Self::Notification => "notification",
            Self::OfflineWebhook => "offline_webhook",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::MessageBroadcast,
            Self::MembershipRemoved,
            Self::Notification,
            Self::OfflineWebhook,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Ownership of one row for one attempt: only the holder of the token can mark it sent or reschedule it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxLease {
    /// The outbox row id.
    pub id: i64,
    /// The holder's lease token.
    pub token: String,
}

/// A row to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// The lease held on the row.
    pub lease: OutboxLease,
    /// What the row does.
    pub kind: OutboxKind,
    /// The arguments of `kind` (a frame, a user id, …), as JSON.
    pub payload: Value,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// A row given up on (the caller logs it at error).
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedItem {
    /// The outbox row id.
    pub id: i64,
    /// What the row did.
    pub kind: OutboxKind,
    /// The arguments of `kind`, as JSON.
    pub payload: Value,
    /// Attempts made.
    pub attempts: i64,
    /// The last delivery error, if one was recorded.
    pub last_error: Option<String>,
}

/// Retry rules for the drain.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after which a row is parked.
    pub max_attempts: i64,
    /// First backoff; doubles per attempt.
    pub base_backoff: Duration,
    /// Longest backoff (a Retry-After may ask for more, up to `max_retry_after`).
    pub max_backoff: Duration,
    /// Longest Retry-After honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

/// What a reschedule did.
#[derive(Debug, Clone, PartialEq)]
pub enum Rescheduled {
    /// Due again at this time (Unix ms).
    Retry {
        /// Unix milliseconds.
        at_ms: i64,
    },
    /// Out of attempts: parked, never claimed again.
    Parked(ParkedItem),
    /// The lease was lost (expired and claimed by someone else); nothing changed.
    LeaseLost,
}

/// A claim's outcome: rows now leased to the caller, and rows parked because a crashed holder had used
/// their last attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claim {
    /// Rows now leased to the caller.
    pub items: Vec<OutboxItem>,
    /// Rows parked because a crashed holder had used their last attempt.
    pub parked: Vec<ParkedItem>,
}

/// Row counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Rows waiting for delivery.
    pub pending: i64,
    /// Rows delivered.
    pub sent: i64,
    /// Rows given up on.
    pub parked: i64,
}

/// Writes an outbox row inside the caller's transaction; `leased` → leased to the caller (one attempt used).
pub(crate) async fn enqueue(
    tx: &mut Transaction<'static, Any>,
    kind: OutboxKind,
    payload: &Value,
    now: i64,
    leased: bool,
) -> StoreResult<Option<OutboxLease>> {
    let token = leased.then(new_id);
    let lease_until = leased.then(|| now + IMMEDIATE_LEASE.as_millis() as i64);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (kind, payload, state, attempts, available_at, lease_until, lease_token, created_at) \
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, $4) RETURNING id",
    )
    .bind(kind.as_str())
    .bind(payload.to_string())
    .bind(i64::from(leased))
    .bind(now)
    .bind(lease_until)
    .bind(token.as_deref())
    .fetch_one(&mut **tx)
    .await?;
    Ok(token.map(|token| OutboxLease { id, token }))
}

impl Store {
    /// Leases up to `limit` due rows for `lease`; also parks rows whose last attempt's holder vanished.
    pub async fn claim_outbox(&self, limit: i64, lease: Duration, policy: &RetryPolicy) -> StoreResult<Claim> {
        let now = now_ms();
        let parked_rows = sqlx::query(
            "UPDATE outbox SET state = 'parked', lease_until = NULL, lease_token = NULL \
             WHERE state = 'pending' AND attempts >= $1 AND lease_until IS NOT NULL AND lease_until <= $2 \
             RETURNING id, kind, payload, attempts, last_error",
        )
        .bind(policy.max_attempts)
        .bind(now)
        .fetch_all(self.writer())
        .await?;
        let parked = parked_rows.iter().map(parked_item).collect::<StoreResult<Vec<_>>>()?;
        let token = new_id();
        let skip_locked = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET lease_until = $1, lease_token = $2, attempts = attempts + 1 WHERE id IN (\
             SELECT id FROM outbox WHERE state = 'pending' AND available_at <= $3 \
             AND (lease_until IS NULL OR lease_until <= $3) AND attempts < $5 ORDER BY id LIMIT $4{skip_locked}) \
             RETURNING id, kind, payload, attempts"
        );
        let rows = sqlx::query(&sql)
            .bind(now + lease.as_millis() as i64)
            .bind(&token)
            .bind(now)
            .bind(limit.clamp(1, 10_000))
            .bind(policy.max_attempts)
            .fetch_all(self.writer())
            .await?;
        let mut items = rows
            .iter()
            .map(|row| {
                Ok(OutboxItem {
                    lease: OutboxLease {
                        id: row.try_get("id")?,
                        token: token.clone(),
                    },
                    kind: kind_of(row)?,
                    payload: payload_of(row)?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        items.sort_by_key(|i| i.lease.id);
        Ok(Claim { items, parked })
    }

    /// Marks a leased row sent; false when the lease was lost (someone else owns the row now).
    pub async fn mark_sent(&self, lease: &OutboxLease) -> StoreResult<bool> {
        Ok(self.mark_sent_many(std::slice::from_ref(lease)).await? == 1)
    }

    /// Marks leased rows sent in one statement per [`MARK_SENT_CHUNK`] leases; returns how many were still
    /// held (a lost lease is skipped: its new holder delivers and marks it).
    pub async fn mark_sent_many(&self, leases: &[OutboxLease]) -> StoreResult<u64> {
        let mut marked = 0;
        for chunk in leases.chunks(MARK_SENT_CHUNK) {
            let values = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 2, 2 * i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "WITH done (id, token) AS (VALUES {values}) \
                 UPDATE outbox SET state = 'sent', sent_at = $1, lease_until = NULL \
                 WHERE state = 'pending' AND id IN (SELECT id FROM done) \
                 AND lease_token = (SELECT token FROM done WHERE done.id = outbox.id)"
            );
            let mut query = sqlx::query(&sql).bind(now_ms());
            for lease in chunk {
                query = query.bind(lease.id).bind(&lease.token);
            }
            marked += query.execute(self.writer()).await?.rows_affected();
        }
        Ok(marked)
    }

    /// Records a failed attempt: due again after backoff (at least `retry_after`), or parked at the cap.
    pub async fn reschedule(
        &self,
        lease: &OutboxLease,
        error: &str,
        retry_after: Option<Duration>,
        policy: &RetryPolicy,
    ) -> StoreResult<Rescheduled> {
        let error: String = error.chars().take(2000).collect();
        let Some(row) =
            sqlx::query("SELECT attempts FROM outbox WHERE id = $1 AND lease_token = $2 AND state = 'pending'")
                .bind(lease.id)
                .bind(&lease.token)
                .fetch_optional(self.pool())
                .await?
        else {
            return Ok(Rescheduled::LeaseLost);
        };
        let attempts: i64 = row.try_get("attempts")?;
        let park = attempts >= policy.max_attempts;
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let backoff = policy
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(policy.max_backoff);
        let delay = backoff.max(retry_after.unwrap_or_default().min(policy.max_retry_after));
        let at_ms = now_ms() + delay.as_millis() as i64;
        let row = sqlx::query(
            "UPDATE outbox SET state = $1, available_at = $2, lease_until = NULL, lease_token = NULL, last_error = $3 \
             WHERE id = $4 AND lease_token = $5 AND state = 'pending' RETURNING id, kind, payload, attempts, last_error",
        )
        .bind(if park { "parked" } else { "pending" })
        .bind(at_ms)
        .bind(&error)
        .bind(lease.id)
        .bind(&lease.token)
        .fetch_optional(self.writer())
        .await?;
        Ok(match row {
            None => Rescheduled::LeaseLost,
            Some(row) if park => Rescheduled::Parked(parked_item(&row)?),
            Some(_) => Rescheduled::Retry { at_ms },
        })
    }

    /// Deletes rows sent longer than `retention` ago; returns how many.
    pub async fn prune_sent(&self, retention: Duration) -> StoreResult<u64> {
        let cutoff = now_ms() - retention.as_millis() as i64;
        let done = sqlx::query("DELETE FROM outbox WHERE state = 'sent' AND sent_at < $1")
            .bind(cutoff)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// How many rows are pending, sent and parked.
    pub async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let n: i64 = row.try_get("n")?;
            match row.try_get::<String, _>("state")?.as_str() {
                "pending" => counts.pending = n,
                "sent" => counts.sent = n,
                "parked" => counts.parked = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

fn kind_of(row: &sqlx::any::AnyRow) -> StoreResult<OutboxKind> {
    let kind: String = row.try_get("kind")?;
    OutboxKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("unknown outbox kind {kind:?}")))
}

fn payload_of(row: &sqlx::any::AnyRow) -> StoreResult<Value> {
    let text: String = row.try_get("payload")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))
}

fn parked_item(row: &sqlx::any::AnyRow) -> StoreResult<ParkedItem> {
    Ok(ParkedItem {
        id: row.try_get("id")?,
        kind: kind_of(row)?,
        payload: payload_of(row)?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
    })
}
