//! Conversations and their members: create (idempotent on id + members), add / remove a member (reporting
//! whether anything changed), a user's conversations, and the membership check negotiate and the routes use.
//! Every membership change is also recorded per user (for sync); a removal queues an outbox row so live
//! connections leave the group and lose the permission.

use serde_json::json;
use sqlx::{Any, Row, Transaction};

use super::outbox::{self, OutboxKind, OutboxLease};
use super::{Store, StoreError, StoreResult, is_valid_conversation_id, is_valid_user_id, new_id, now_ms};

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The conversation id (caller-chosen or a UUIDv7).
    pub id: String,
    /// Optional display title.
    pub title: Option<String>,
    /// Sorted, without duplicates.
    pub members: Vec<String>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
}

/// A value written by an idempotent operation, and whether this call created it (201) or found it (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted<T> {
    /// The stored value (new or existing).
    pub item: T,
    /// Whether this call stored it.
    pub created: bool,
}

/// What removing a member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// False when the user was not a member (nothing changed, nothing queued).
    pub removed: bool,
    /// The queued "leave group / revoke permission" row, leased to the caller for an immediate try.
    pub outbox: Option<OutboxLease>,
}

/// The group a conversation's live frames go to.
pub fn group_name(conversation_id: &str) -> String {
    format!("conversation:{conversation_id}")
}

impl Store {
    /// Creates a conversation. `id` None → a new UUIDv7. The same id with the same members again answers the
    /// stored conversation (`created: false`); the same id with other members is a conflict.
    pub async fn create_conversation(
        &self,
        id: Option<&str>,
        title: Option<&str>,
        members: &[String],
    ) -> StoreResult<Upserted<Conversation>> {
        let id = match id {
            Some(id) if is_valid_conversation_id(id) => id.to_owned(),
            Some(_) => {
                return Err(StoreError::Invalid(
                    "conversation id must be 1-128 of A-Z a-z 0-9 - _ . ~",
                ));
            }
            None => new_id(),
        };
        let mut members: Vec<String> = members.to_vec();
        members.sort();
        members.dedup();
        if members.is_empty() || !members.iter().all(|m| is_valid_user_id(m)) {
            return Err(StoreError::Invalid("members must be 1 or more valid user ids"));
        }
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(
            "INSERT INTO conversations (id, title, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING RETURNING created_at",
        )
        .bind(&id)
        .bind(title)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let existing = load(&mut tx, &id).await?.ok_or(StoreError::NotFound("conversation"))?;
            tx.rollback().await?;
            return if existing.members == members {
                Ok(Upserted {
                    item: existing,
                    created: false,
                })
            } else {
                Err(StoreError::Conflict(
                    "a conversation with this id exists with other members",
                ))
            };
        }
        for user in &members {
            insert_member(&mut tx, &id, user, now).await?;
        }
        tx.commit().await?;
        let item = Conversation {
            id,
            title: title.map(str::to_owned),
            members,
            created_at_ms: now,
        };
        Ok(Upserted { item, created: true })
    }

    /// The conversation with its members, or `NotFound`.
    pub async fn conversation(&self, id: &str) -> StoreResult<Conversation> {
        let mut conn = self.pool().acquire().await?;
        load(&mut conn, id).await?.ok_or(StoreError::NotFound("conversation"))
    }

    /// Adds a member; `Ok(true)` when added, `Ok(false)` when already a member.
    pub async fn add_member(&self, conversation_id: &str, user_id: &str) -> StoreResult<bool> {
        if !is_valid_user_id(user_id) {
            return Err(StoreError::Invalid(
                "user id must be 1-256 characters without control characters",
            ));
        }
        let mut tx = self.write_tx().await?;
        ensure_exists(&mut tx, conversation_id).await?;
        let added = insert_member(&mut tx, conversation_id, user_id, now_ms()).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Removes a member and queues the outbox row that removes their live connections from the group.
    pub async fn remove_member(&self, conversation_id: &str, user_id: &str) -> StoreResult<Removal> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        ensure_exists(&mut tx, conversation_id).await?;
        let deleted = sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
            .bind(conversation_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(Removal {
                removed: false,
                outbox: None,
            });
        }
        record_membership_change(&mut tx, user_id, conversation_id, "removed", now).await?;
        let payload = json!({
            "conversationId": conversation_id,
            "userId": user_id,
            "group": group_name(conversation_id),
        });
        let lease = outbox::enqueue(&mut tx, OutboxKind::MembershipRemoved, &payload, now, true).await?;
        tx.commit().await?;
        Ok(Removal {
            removed: true,
            outbox: lease,
        })
    }

    /// True when `user_id` is a member of `conversation_id`; `NotFound` when the conversation does not exist.
    pub async fn is_member(&self, conversation_id: &str, user_id: &str) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id AND m.user_id = $2) AS n \
             FROM conversations c WHERE c.id = $1",
        )
        .bind(conversation_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Ids of the conversations `user_id` belongs to, sorted.
    pub async fn user_conversation_ids(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT conversation_id FROM members WHERE user_id = $1 ORDER BY conversation_id")
            .bind(user_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
    }

    /// The conversations `user_id` belongs to, with members, sorted by id.
    pub async fn list_user_conversations(&self, user_id: &str) -> StoreResult<Vec<Conversation>> {
        let ids = self.user_conversation_ids(user_id).await?;
        let mut conn = self.pool().acquire().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = load(&mut conn, &id).await? {
                out.push(c);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Up to `limit` ids of the conversations `user_id` belongs to, the most recently joined first (the groups
    /// negotiate puts in a token without being asked).
    pub async fn recent_conversation_ids(&self, user_id: &str, limit: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT conversation_id FROM members WHERE user_id = $1 \
             ORDER BY joined_at DESC, conversation_id LIMIT $2",
        )
        .bind(user_id)
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
    }
}

/// `NotFound` unless the conversation exists.
pub(crate) async fn ensure_exists(tx: &mut Transaction<'static, Any>, conversation_id: &str) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM conversations WHERE id = $1")
        .bind(conversation_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|_| ())
        .ok_or(StoreError::NotFound("conversation"))
}

async fn load(conn: &mut sqlx::AnyConnection, id: &str) -> StoreResult<Option<Conversation>> {
    let Some(row) = sqlx::query("SELECT id, title, created_at FROM conversations WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let members = sqlx::query("SELECT user_id FROM members WHERE conversation_id = $1 ORDER BY user_id")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Conversation {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        members,
        created_at_ms: row.try_get("created_at")?,
    }))
}

async fn insert_member(tx: &mut Transaction<'static, Any>, cid: &str, user: &str, now: i64) -> StoreResult<bool> {
    let added = sqlx::query(
        "INSERT INTO members (conversation_id, user_id, joined_at) VALUES ($1, $2, $3) \
         ON CONFLICT (conversation_id, user_id) DO NOTHING",
    )
    .bind(cid)
    .bind(user)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    if added {
        record_membership_change(tx, user, cid, "added", now).await?;
    }
    Ok(added)
}

/// Appends to the user's membership log under the next per-user `membership_seq` (row-locked by the upsert).
async fn record_membership_change(
    tx: &mut Transaction<'static, Any>,
    user: &str,
    cid: &str,
    change: &str,
    now: i64,
) -> StoreResult<()> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO users (user_id, membership_seq) VALUES ($1, 1) \
         ON CONFLICT (user_id) DO UPDATE SET membership_seq = users.membership_seq + 1 RETURNING membership_seq",
    )
    .bind(user)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO membership_changes (user_id, seq, conversation_id, change, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user)
    .bind(seq)
    .bind(cid)
    .bind(change)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
