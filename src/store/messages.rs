//! Messages: the idempotent send (message + outbox row in one transaction, per-conversation `seq` taken from
//! the conversation's counter row, so it is gap-free and unique across processes) and history pages.

use serde_json::{Value, json};
use sqlx::Row;

use super::conversations::{Upserted, group_name};
use super::outbox::{self, OutboxKind, OutboxLease};
use super::{
    Store, StoreError, StoreResult, is_valid_item_id, is_valid_user_id, lost_race, new_id, now_ms, rfc3339_ms,
};

/// Default history page.
pub const DEFAULT_PAGE: i64 = 50;
/// Largest history page.
pub const MAX_PAGE: i64 = 200;

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The message id (caller-chosen or a UUIDv7), unique within its conversation.
    pub id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// Its position in the conversation: gap-free, from 1.
    pub seq: i64,
    /// The sender's user id.
    pub sender: String,
    /// Sent through the trusted door (bots, system); counts as unread for everyone.
    pub system: bool,
    /// The JSON body, as sent.
    pub body: Value,
    /// Storage time, Unix milliseconds.
    pub created_at_ms: i64,
}

impl Message {
    /// The live frame `{"type":"message","id","conversationId","seq","sender","createdAt","body"}`.
    pub fn frame(&self) -> Value {
        json!({
            "type": "message",
            "id": self.id,
            "conversationId": self.conversation_id,
            "seq": self.seq,
            "sender": self.sender,
            "createdAt": rfc3339_ms(self.created_at_ms),
            "body": self.body,
        })
    }
}

/// Who sends: a member (checked) or the trusted door (no membership needed, marked system).
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    /// A member, by user id; membership is checked.
    Member(&'a str),
    /// The trusted door, with the sender id it gives.
    System(&'a str),
}

/// A send's result: the stored message, whether this call stored it, and (first time only) the leased
/// outbox row for the immediate broadcast try.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The message, and whether this call stored it.
    pub message: Upserted<Message>,
    /// The leased outbox row for the immediate broadcast try, first store only.
    pub outbox: Option<OutboxLease>,
}

/// Which page of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Messages with `seq > n`, oldest first; `next` continues forward.
    After(i64),
    /// Messages with `seq < n`; `next` continues backward.
    Before(i64),
    /// The newest page; `next` goes into `before`.
    Latest,
}

/// A history page: items in ascending `seq`, `next` is the cursor for the same parameter or None at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The messages, ascending `seq`.
    pub items: Vec<Message>,
    /// The cursor for the next page, `None` at the end.
    pub next: Option<i64>,
}

impl Store {
    /// Stores a message and its broadcast outbox row in one transaction. `client_id` is the idempotency key
    /// (the message id): a retry returns the stored message with `created: false` and writes nothing; the
    /// same id from another sender is a conflict.
    pub async fn send_message(
        &self,
        conversation_id: &str,
        sender: Sender<'_>,
        client_id: Option<&str>,
        body: &Value,
    ) -> StoreResult<Sent> {
        if client_id.is_some_and(|id| !is_valid_item_id(id)) {
            return Err(StoreError::Invalid("message id must be 1-128 of A-Z a-z 0-9 - _ . ~"));
        }
        let (sender_id, system) = match sender {
            Sender::Member(u) => (u, false),
            Sender::System(u) => (u, true),
        };
        if !is_valid_user_id(sender_id) {
            return Err(StoreError::Invalid(
                "sender must be 1-256 characters without control characters",
            ));
        }
        let now = now_ms();
        let id = client_id.map_or_else(new_id, str::to_owned);
        let mut tx = self.write_tx().await?;
        // The counter row's lock serialises senders of this conversation until commit (gap-free seq); the
        // membership check rides along in the same statement (one round trip fewer on the hot path).
        let row = sqlx::query(
            "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq, \
             (SELECT COUNT(*) FROM members WHERE conversation_id = $1 AND user_id = $2) AS member",
        )
        .bind(conversation_id)
        .bind(sender_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
        let seq: i64 = row.try_get("last_seq")?;
        if !system && row.try_get::<i64, _>("member")? == 0 {
            // A retry of a message stored before its sender left still answers the stored message.
            tx.rollback().await?;
            return match client_id {
                Some(id) => match self.message_by_id(conversation_id, id).await? {
                    Some(found) if found.sender == sender_id => existing(found, sender_id),
                    _ => Err(StoreError::NotMember),
                },
                None => Err(StoreError::NotMember),
            };
        }
        let body_text = body.to_string();
        let inserted = sqlx::query(
            "INSERT INTO messages (conversation_id, seq, id, sender, system, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (conversation_id, id) DO NOTHING",
        )
        .bind(conversation_id)
        .bind(seq)
        .bind(&id)
        .bind(sender_id)
        .bind(i64::from(system))
        .bind(&body_text)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // A retry (or a concurrent one that won the race): undo our counter step, answer the stored message.
            let found = lost_race(tx, "message", self.message_by_id(conversation_id, &id)).await?;
            return existing(found, sender_id);
        }
        let message = Message {
            id,
            conversation_id: conversation_id.to_owned(),
            seq,
            sender: sender_id.to_owned(),
            system,
            body: body.clone(),
            created_at_ms: now,
        };
        let payload = json!({ "group": group_name(conversation_id), "frame": message.frame() });
        let lease = outbox::enqueue(&mut tx, OutboxKind::MessageBroadcast, &payload, now, true).await?;
        tx.commit().await?;
        Ok(Sent {
            message: Upserted {
                item: message,
                created: true,
            },
            outbox: lease,
        })
    }

    /// One message by its id.
    pub async fn message_by_id(&self, conversation_id: &str, id: &str) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!("{SELECT_MESSAGE} WHERE conversation_id = $1 AND id = $2"))
            .bind(conversation_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(message_of).transpose()
    }

    /// A page of history (`limit` clamped to 1..=200). `NotFound` for an unknown conversation; membership is
    /// the caller's check ([`Store::is_member`]).
    pub async fn history(&self, conversation_id: &str, page: Page, limit: i64) -> StoreResult<HistoryPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let (cond, order, bound) = match page {
            Page::After(n) => ("AND seq > $2", "ASC", n),
            Page::Before(n) => ("AND seq < $2", "DESC", n),
            Page::Latest => ("AND seq > $2", "DESC", 0),
        };
        let sql = format!("{SELECT_MESSAGE} WHERE conversation_id = $1 {cond} ORDER BY seq {order} LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(conversation_id)
            .bind(bound)
            .bind(limit + 1)
            .fetch_all(self.pool())
            .await?;
        let mut items = rows.iter().map(message_of).collect::<StoreResult<Vec<_>>>()?;
        if items.is_empty() {
            self.conversation_exists(conversation_id).await?;
        }
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        if order == "DESC" {
            items.reverse();
        }
        let next = match page {
            _ if !more => None,
            Page::After(_) => items.last().map(|m| m.seq),
            Page::Before(_) | Page::Latest => items.first().map(|m| m.seq),
        };
        Ok(HistoryPage { items, next })
    }

    async fn conversation_exists(&self, id: &str) -> StoreResult<()> {
        sqlx::query("SELECT 1 FROM conversations WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .map(|_| ())
            .ok_or(StoreError::NotFound("conversation"))
    }
}

pub(crate) const SELECT_MESSAGE: &str =
    "SELECT conversation_id, seq, id, sender, system, body, created_at FROM messages";

pub(crate) fn message_of(row: &sqlx::any::AnyRow) -> StoreResult<Message> {
    // Borrowed from the row: no copy of the stored text before parsing it.
    let body: &str = row.try_get("body")?;
    Ok(Message {
        id: row.try_get("id")?,
        conversation_id: row.try_get("conversation_id")?,
        seq: row.try_get("seq")?,
        sender: row.try_get("sender")?,
        system: row.try_get::<i64, _>("system")? != 0,
        body: serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("message body: {e}")))?,
        created_at_ms: row.try_get("created_at")?,
    })
}

fn existing(found: Message, sender: &str) -> StoreResult<Sent> {
    if found.sender != sender {
        return Err(StoreError::Conflict("a message with this id was sent by someone else"));
    }
    Ok(Sent {
        message: Upserted {
            item: found,
            created: false,
        },
        outbox: None,
    })
}
