//! Read markers (#16): a member's monotonic `read_seq` per conversation, and the caller's conversation list
//! with each conversation's last message and unread count (the caller's own messages never count as unread;
//! system messages always do).

use sqlx::Row;

use super::messages::{Message, message_of};
use super::{Store, StoreError, StoreResult};

/// One row of the caller's conversation list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummary {
    /// The conversation id.
    pub id: String,
    /// Its title, if any.
    pub title: Option<String>,
    /// The newest message, if any.
    pub last_message: Option<Message>,
    /// Messages after the caller's read marker.
    pub unread: i64,
    /// The caller's read marker.
    pub read_seq: i64,
}

/// The caller's conversation list and the total unread over it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationList {
    /// One row per conversation the caller is a member of.
    pub items: Vec<ConversationSummary>,
    /// Unread messages over all of them.
    pub unread: i64,
}

/// Counts messages after the member's marker that are not their own (system messages always count).
pub(crate) const UNREAD_SQL: &str = "(SELECT COUNT(*) FROM messages x WHERE x.conversation_id = m.conversation_id \
     AND x.seq > m.read_seq AND (x.system = 1 OR x.sender <> m.user_id))";

impl Store {
    /// Moves the caller's read marker to `seq` if that is forward; returns the marker after the call.
    /// `seq` beyond the last message (or negative) is `Invalid`; not a member → `NotMember`.
    pub async fn mark_read(&self, conversation_id: &str, user_id: &str, seq: i64) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT c.last_seq, (SELECT COUNT(*) FROM members m WHERE m.conversation_id = c.id AND m.user_id = $2) \
             AS member FROM conversations c WHERE c.id = $1",
        )
        .bind(conversation_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
        if row.try_get::<i64, _>("member")? == 0 {
            return Err(StoreError::NotMember);
        }
        if seq < 0 || seq > row.try_get::<i64, _>("last_seq")? {
            return Err(StoreError::Invalid("seq is beyond the last message"));
        }
        // One statement: concurrent markers can only move it forward.
        let marker: Option<i64> = sqlx::query_scalar(
            "UPDATE members SET read_seq = CASE WHEN read_seq < $3 THEN $3 ELSE read_seq END \
             WHERE conversation_id = $1 AND user_id = $2 RETURNING read_seq",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(seq)
        .fetch_optional(self.writer())
        .await?;
        marker.ok_or(StoreError::NotMember)
    }

    /// The caller's conversations (sorted by id) with last message, unread count and read marker.
    pub async fn conversation_list(&self, user_id: &str) -> StoreResult<ConversationList> {
        let items: Vec<ConversationSummary> = self
            .member_conversations(user_id, true)
            .await?
            .into_iter()
            .map(|c| c.summary)
            .collect();
        let unread = items.iter().map(|i| i.unread).sum();
        Ok(ConversationList { items, unread })
    }

    /// The caller's conversations (sorted by id) with counter, unread count and read marker, in one query;
    /// `with_last`: also each conversation's last message (one primary-key join per row).
    pub(crate) async fn member_conversations(
        &self,
        user_id: &str,
        with_last: bool,
    ) -> StoreResult<Vec<MemberConversation>> {
        let (last_columns, last_join) = if with_last {
            (
                ", l.conversation_id, l.seq, l.id, l.sender, l.system, l.body, l.created_at",
                "LEFT JOIN messages l ON l.conversation_id = c.id AND l.seq = c.last_seq",
            )
        } else {
            ("", "")
        };
        let sql = format!(
            "SELECT c.id AS cid, c.title, c.last_seq, m.read_seq, {UNREAD_SQL} AS unread{last_columns} \
             FROM members m JOIN conversations c ON c.id = m.conversation_id {last_join} \
             WHERE m.user_id = $1 ORDER BY c.id"
        );
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(self.pool()).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let has_last = with_last && row.try_get::<Option<String>, _>("conversation_id")?.is_some();
            items.push(MemberConversation {
                last_seq: row.try_get("last_seq")?,
                summary: ConversationSummary {
                    id: row.try_get("cid")?,
                    title: row.try_get("title")?,
                    last_message: if has_last { Some(message_of(row)?) } else { None },
                    unread: row.try_get("unread")?,
                    read_seq: row.try_get("read_seq")?,
                },
            });
        }
        Ok(items)
    }
}

/// One of a member's conversations: its summary and its message counter (the last `seq` given out).
pub(crate) struct MemberConversation {
    pub(crate) summary: ConversationSummary,
    pub(crate) last_seq: i64,
}
