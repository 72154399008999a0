//! Notifications (#16): created once per id (a retry answers the stored one and sends nothing), fanned out to
//! a per-user feed with a gap-free per-user `seq`, delivered through outbox rows (one frame per user, plus an
//! offline-webhook row for users with no live connection when a webhook is configured). Fan-out writes in
//! multi-row batches inside one transaction. The feed: pages `after`/`limit`, unread, monotonic read marker.

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

use sqlx::{Any, Row, Transaction};

use super::conversations::Upserted;
use super::outbox::OutboxKind;
use super::{
    Store, StoreError, StoreResult, is_valid_item_id, is_valid_user_id, lost_race, new_id, now_ms, rfc3339_ms,
};

/// Rows per multi-row INSERT (8 parameters a row stays far below both backends' parameter limits).
const BATCH: usize = 500;

/// Who a notification goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// These users (ids, deduplicated).
    Users(Vec<String>),
    /// Every current member of the conversation.
    Conversation(String),
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The notification id (caller-chosen or a UUIDv7).
    pub id: String,
    /// Sorted, without duplicates.
    pub user_ids: Vec<String>,
    /// The JSON payload, as sent.
    pub data: Value,
    /// Storage time, Unix milliseconds.
    pub created_at_ms: i64,
}

/// One entry of a user's feed.
#[derive(Debug, Clone, PartialEq)]
pub struct UserNotification {
    /// The notification id.
    pub id: String,
    /// Its position in this user's feed.
    pub seq: i64,
    /// The JSON payload.
    pub data: Value,
    /// Storage time, Unix milliseconds.
    pub created_at_ms: i64,
}

impl UserNotification {
    /// The live frame `{"type":"notification","id","seq","createdAt","data"}`.
    pub fn frame(&self) -> Value {
        json!({"type": "notification", "id": self.id, "seq": self.seq,
               "createdAt": rfc3339_ms(self.created_at_ms), "data": self.data})
    }
}

/// A page of a user's feed: `next` goes into `after`, None at the end; `unread` after the marker.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationPage {
    /// The entries, ascending `seq`.
    pub items: Vec<UserNotification>,
    /// The `after` value for the next page, `None` at the end.
    pub next: Option<i64>,
    /// Entries after the user's read marker.
    pub unread: i64,
}

/// A notification goes to 1 or more users, each a valid user id.
fn check_recipients(users: &[String]) -> StoreResult<()> {
    if users.is_empty() || !users.iter().all(|u| is_valid_user_id(u)) {
        return Err(StoreError::Invalid("a notification needs 1 or more valid user ids"));
    }
    Ok(())
}

/// The group a user's notification frames go to.
pub fn notification_group(user_id: &str) -> String {
    format!("notifications:user:{user_id}")
}

impl Store {
    /// Creates and fans out a notification. `offline_webhook`: also queue a webhook row for each recipient
    /// with no live connection. The outbox rows are due at once (not leased): the caller's drain sends them.
    pub async fn create_notification(
        &self,
        id: Option<&str>,
        audience: &Audience,
        data: &Value,
        offline_webhook: bool,
    ) -> StoreResult<Upserted<Notification>> {
        let id = match id {
            Some(id) if is_valid_item_id(id) => id.to_owned(),
            Some(_) => {
                return Err(StoreError::Invalid(
                    "notification id must be 1-128 of A-Z a-z 0-9 - _ . ~",
                ));
            }
            None => new_id(),
        };
        // Before the idempotent look-up: a retry with an existing id and bad recipients is refused too.
        if let Audience::Users(users) = audience {
            check_recipients(users)?;
        }
        if let Some(found) = self.notification(&id).await? {
            return Ok(Upserted {
                item: found,
                created: false,
            });
        }
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let mut users = match audience {
            Audience::Users(users) => users.clone(),
            Audience::Conversation(cid) => {
                super::conversations::ensure_exists(&mut tx, cid).await?;
                let members: Vec<String> = sqlx::query_scalar("SELECT user_id FROM members WHERE conversation_id = $1")
                    .bind(cid)
                    .fetch_all(&mut *tx)
                    .await?;
                check_recipients(&members)?;
                members
            }
        };
        users.sort();
        users.dedup();
        let inserted = sqlx::query(
            "INSERT INTO notifications (id, data, user_ids, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(data.to_string())
        .bind(Value::from(users.clone()).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let found = lost_race(tx, "notification", self.notification(&id)).await?;
            return Ok(Upserted {
                item: found,
                created: false,
            });
        }
        for chunk in users.chunks(BATCH) {
            fan_out(&mut tx, chunk, &id, data, now, offline_webhook).await?;
        }
        tx.commit().await?;
        Ok(Upserted {
            item: Notification {
                id,
                user_ids: users,
                data: data.clone(),
                created_at_ms: now,
            },
            created: true,
        })
    }

    /// A notification by id.
    pub async fn notification(&self, id: &str) -> StoreResult<Option<Notification>> {
        let Some(row) = sqlx::query("SELECT id, data, user_ids, created_at FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let users: String = row.try_get("user_ids")?;
        Ok(Some(Notification {
            id: row.try_get("id")?,
            user_ids: serde_json::from_str(&users).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            data: json_of(&row, "data")?,
            created_at_ms: row.try_get("created_at")?,
        }))
    }

    /// A page of `user_id`'s feed with `seq > after` (limit clamped to 1..=200) and the unread count.
    pub async fn list_notifications(&self, user_id: &str, after: i64, limit: i64) -> StoreResult<NotificationPage> {
        let limit = limit.clamp(1, super::messages::MAX_PAGE);
        let mut items = self.notifications_after(user_id, after, limit + 1).await?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next = if more { items.last().map(|n| n.seq) } else { None };
        let (last, read) = self.notification_marks(user_id).await?;
        Ok(NotificationPage {
            items,
            next,
            unread: last - read,
        })
    }

    /// Moves the feed's read marker forward to `seq`; returns the marker. Beyond the last → `Invalid`.
    pub async fn mark_notifications_read(&self, user_id: &str, seq: i64) -> StoreResult<i64> {
        let (last, _) = self.notification_marks(user_id).await?;
        if seq < 0 || seq > last {
            return Err(StoreError::Invalid("seq is beyond the last notification"));
        }
        if last == 0 {
            return Ok(0);
        }
        let marker: i64 = sqlx::query_scalar(
            "UPDATE users SET notif_read_seq = CASE WHEN notif_read_seq < $2 THEN $2 ELSE notif_read_seq END \
             WHERE user_id = $1 RETURNING notif_read_seq",
        )
        .bind(user_id)
        .bind(seq)
        .fetch_one(self.pool())
        .await?;
        Ok(marker)
    }

    /// `user_id`'s notifications with `seq > after`, ascending, at most `limit`.
    pub async fn notifications_after(
        &self,
        user_id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<UserNotification>> {
        let rows = sqlx::query(
            "SELECT u.seq, u.notification_id, u.created_at, n.data FROM user_notifications u \
             JOIN notifications n ON n.id = u.notification_id \
             WHERE u.user_id = $1 AND u.seq > $2 ORDER BY u.seq LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UserNotification {
                    id: row.try_get("notification_id")?,
                    seq: row.try_get("seq")?,
                    data: json_of(row, "data")?,
                    created_at_ms: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// (last feed seq, read marker) for a user; (0, 0) for a user never notified.
    pub(crate) async fn notification_marks(&self, user_id: &str) -> StoreResult<(i64, i64)> {
        let row = sqlx::query("SELECT notif_seq, notif_read_seq FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(row) => (row.try_get("notif_seq")?, row.try_get("notif_read_seq")?),
            None => (0, 0),
        })
    }
}

/// For one batch of users: next per-user seqs, feed rows, frame rows, webhook rows for the offline ones.
async fn fan_out(
    tx: &mut Transaction<'static, Any>,
    users: &[String],
    id: &str,
    data: &Value,
    now: i64,
    offline_webhook: bool,
) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO users (user_id, notif_seq) VALUES {} ON CONFLICT (user_id) \
         DO UPDATE SET notif_seq = users.notif_seq + 1 RETURNING user_id, notif_seq",
        placeholders(users.len(), 1, Some("1"))
    );
    let mut q = sqlx::query(&sql);
    for u in users {
        q = q.bind(u.as_str());
    }
    let rows = q.fetch_all(&mut **tx).await?;
    let seqs = rows
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("user_id")?, r.try_get::<i64, _>("notif_seq")?)))
        .collect::<StoreResult<Vec<_>>>()?;

    // Shared values go in once as $1..$2; per-row values follow.
    let sql = format!(
        "INSERT INTO user_notifications (notification_id, created_at, user_id, seq) VALUES {}",
        placeholders_from(seqs.len(), 2, 3, "$1, $2")
    );
    let mut q = sqlx::query(&sql).bind(id).bind(now);
    for (u, seq) in &seqs {
        q = q.bind(u.as_str()).bind(*seq);
    }
    q.execute(&mut **tx).await?;

    let offline: Vec<&String> = if offline_webhook {
        let sql = format!(
            "SELECT DISTINCT user_id FROM connections WHERE user_id IN ({})",
            (1..=users.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql);
        for u in users {
            q = q.bind(u.as_str());
        }
        let online: HashSet<String> = q
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        users.iter().filter(|u| !online.contains(*u)).collect()
    } else {
        Vec::new()
    };
    let frame_of = |seq: i64| {
        UserNotification {
            id: id.to_owned(),
            seq,
            data: data.clone(),
            created_at_ms: now,
        }
        .frame()
    };
    let mut rows: Vec<(&'static str, String)> = Vec::with_capacity(seqs.len() + offline.len());
    for (user, seq) in &seqs {
        let payload = json!({"group": notification_group(user), "userId": user, "frame": frame_of(*seq)});
        rows.push((OutboxKind::Notification.as_str(), payload.to_string()));
    }
    let seq_of: HashMap<&String, i64> = seqs.iter().map(|(u, s)| (u, *s)).collect();
    for user in offline {
        let seq = seq_of.get(user).copied().unwrap_or_default();
        let payload = json!({"userId": user, "notification": frame_of(seq)});
        rows.push((OutboxKind::OfflineWebhook.as_str(), payload.to_string()));
    }
    let sql = format!(
        "INSERT INTO outbox (available_at, created_at, state, attempts, kind, payload) VALUES {}",
        placeholders_from(rows.len(), 2, 2, "$1, $1, 'pending', 0")
    );
    let mut q = sqlx::query(&sql).bind(now);
    for (kind, payload) in &rows {
        q = q.bind(*kind).bind(payload.as_str());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// `($1, 1), ($2, 1), …`: `rows` tuples of `per_row` numbered parameters, then an optional constant.
/// Written by hand: sqlx's `QueryBuilder` emits `?` for the `Any` driver, which PostgreSQL rejects.
fn placeholders(rows: usize, per_row: usize, constant: Option<&str>) -> String {
    placeholders_with(rows, per_row, 1, "", constant)
}

/// `(<shared>, $first, $first+1), …`: shared leading values, then `per_row` numbered parameters per row.
fn placeholders_from(rows: usize, per_row: usize, first: usize, shared: &str) -> String {
    placeholders_with(rows, per_row, first, shared, None)
}

fn placeholders_with(rows: usize, per_row: usize, first: usize, shared: &str, constant: Option<&str>) -> String {
    let mut out = String::with_capacity(rows * (per_row * 6 + shared.len() + 6));
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        let mut parts: Vec<String> = Vec::with_capacity(per_row + 2);
        if !shared.is_empty() {
            parts.push(shared.to_owned());
        }
        parts.extend((0..per_row).map(|c| format!("${}", first + r * per_row + c)));
        parts.extend(constant.map(str::to_owned));
        out.push_str(&parts.join(", "));
        out.push(')');
    }
    out
}

fn json_of(row: &sqlx::any::AnyRow, column: &str) -> StoreResult<Value> {
    let text: &str = row.try_get(column)?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(2, 1, Some("1")), "($1, 1), ($2, 1)");
        assert_eq!(
            placeholders_from(2, 2, 3, "$1, $2"),
            "($1, $2, $3, $4), ($1, $2, $5, $6)"
        );
    }
}
