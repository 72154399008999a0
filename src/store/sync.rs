//! Sync (#16): everything a user missed since a [`SyncPosition`] — new messages of each conversation they
//! belong to, membership changes affecting them, new notifications — in pages of at most `limit` messages
//! plus notifications (`limited` when more remains), with per-conversation unread counts. Without a position:
//! the current state (each conversation's last message and unread, the latest notifications) and a position.
//! Every stream has its own gap-free counter (conversation `seq`, per-user feed seq, per-user membership
//! seq), each allocated under a row lock, so a position never skips a row committed later.

use std::collections::HashMap;

use sqlx::Row;

use super::cursor::SyncPosition;
use super::messages::{Message, SELECT_MESSAGE, message_of};
use super::notifications::UserNotification;
use super::read_state::UNREAD_SQL;
use super::{Store, StoreResult};

/// Largest sync page (messages + notifications).
pub const MAX_SYNC_LIMIT: i64 = 1000;

/// One conversation in a sync answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncConversation {
    /// The conversation id.
    pub id: String,
    /// Its title, if any.
    pub title: Option<String>,
    /// New messages, ascending `seq` (initial sync: the last message only).
    pub messages: Vec<Message>,
    /// Messages after the caller's read marker.
    pub unread: i64,
    /// The latest membership change since the position: `"added"` or `"removed"`.
    pub membership: Option<String>,
}

/// A sync answer; `next` is the position to sign into the next cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    /// Conversations with news since the position.
    pub conversations: Vec<SyncConversation>,
    /// Notifications since the position, ascending `seq`.
    pub notifications: Vec<UserNotification>,
    /// The position to sign into the next cursor.
    pub next: SyncPosition,
    /// Whether a limit cut the answer short (call again with `next`).
    pub limited: bool,
}

struct Current {
    id: String,
    title: Option<String>,
    last_seq: i64,
    unread: i64,
}

impl Store {
    /// What `user_id` missed since `since` (None: the current state); `limit` clamped to 1..=1000.
    pub async fn sync(&self, user_id: &str, since: Option<&SyncPosition>, limit: i64) -> StoreResult<SyncResult> {
        let limit = limit.clamp(1, MAX_SYNC_LIMIT);
        let from = since.cloned().unwrap_or_else(|| SyncPosition {
            user_id: user_id.to_owned(),
            ..Default::default()
        });
        // Membership log first: a change after this read shows up again next time, never gets lost.
        let rows = sqlx::query(
            "SELECT seq, conversation_id, change FROM membership_changes WHERE user_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(user_id)
        .bind(from.memberships)
        .fetch_all(self.pool())
        .await?;
        let mut next = SyncPosition {
            user_id: user_id.to_owned(),
            memberships: from.memberships,
            ..Default::default()
        };
        let mut changes: HashMap<String, String> = HashMap::new();
        for row in &rows {
            next.memberships = next.memberships.max(row.try_get("seq")?);
            changes.insert(row.try_get("conversation_id")?, row.try_get("change")?);
        }
        let current = self.current_conversations(user_id).await?;
        let mut budget = limit;
        let mut limited = false;
        let mut conversations = Vec::new();
        for conv in current {
            let membership = changes.remove(&conv.id);
            let messages = if since.is_none() {
                let last = self.message_at(&conv.id, conv.last_seq).await?;
                next.conversations.insert(conv.id.clone(), conv.last_seq);
                last.into_iter().collect()
            } else {
                let after = from.conversations.get(&conv.id).copied().unwrap_or(0);
                let mut messages = Vec::new();
                if conv.last_seq > after {
                    if budget == 0 {
                        limited = true;
                    } else {
                        messages = self.messages_after(&conv.id, after, budget + 1).await?;
                        if messages.len() as i64 > budget {
                            messages.truncate(budget as usize);
                            limited = true;
                        }
                        budget -= messages.len() as i64;
                    }
                }
                let reached = messages.last().map_or(after, |m| m.seq);
                if reached > 0 {
                    next.conversations.insert(conv.id.clone(), reached);
                }
                messages
            };
            if since.is_none() || !messages.is_empty() || membership.is_some() {
                let (id, title, unread) = (conv.id, conv.title, conv.unread);
                conversations.push(SyncConversation {
                    id,
                    title,
                    messages,
                    unread,
                    membership,
                });
            }
        }
        // Conversations left since the position (no longer current): report the removal only.
        let mut removed: Vec<_> = changes.into_iter().filter(|(_, change)| change == "removed").collect();
        removed.sort();
        for (id, change) in removed {
            conversations.push(SyncConversation {
                id,
                title: None,
                messages: vec![],
                unread: 0,
                membership: Some(change),
            });
        }
        let (last_notification, _) = self.notification_marks(user_id).await?;
        let notifications = if since.is_none() {
            next.notifications = last_notification;
            self.notifications_after(user_id, (last_notification - limit).max(0), limit)
                .await?
        } else {
            let mut items = Vec::new();
            if last_notification > from.notifications {
                if budget == 0 {
                    limited = true;
                } else {
                    items = self
                        .notifications_after(user_id, from.notifications, budget + 1)
                        .await?;
                    if items.len() as i64 > budget {
                        items.truncate(budget as usize);
                        limited = true;
                    }
                }
            }
            next.notifications = items.last().map_or(from.notifications, |n| n.seq);
            items
        };
        Ok(SyncResult {
            conversations,
            notifications,
            next,
            limited,
        })
    }

    async fn current_conversations(&self, user_id: &str) -> StoreResult<Vec<Current>> {
        let sql = format!(
            "SELECT c.id, c.title, c.last_seq, {UNREAD_SQL} AS unread FROM members m \
             JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = $1 ORDER BY c.id"
        );
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(Current {
                    id: r.try_get("id")?,
                    title: r.try_get("title")?,
                    last_seq: r.try_get("last_seq")?,
                    unread: r.try_get("unread")?,
                })
            })
            .collect()
    }

    async fn message_at(&self, conversation_id: &str, seq: i64) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!("{SELECT_MESSAGE} WHERE conversation_id = $1 AND seq = $2"))
            .bind(conversation_id)
            .bind(seq)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(message_of).transpose()
    }

    async fn messages_after(&self, conversation_id: &str, after: i64, limit: i64) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "{SELECT_MESSAGE} WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(conversation_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(message_of).collect()
    }
}
