//! Sync (#16): everything a user missed since a [`SyncPosition`] — new messages of each conversation they
//! belong to, membership changes affecting them, new notifications — in pages of at most `limit` messages
//! plus notifications (`limited` when more remains), with per-conversation unread counts. Without a position:
//! the current state (each conversation's last message and unread, the latest notifications) and a position.
//! Every stream has its own gap-free counter (conversation `seq`, per-user feed seq, per-user membership
//! seq), each allocated under a row lock, so a position never skips a row committed later.

use std::collections::HashMap;

use sqlx::Row;

use super::cursor::SyncPosition;
use super::messages::{Message, message_of};
use super::notifications::UserNotification;
use super::read_state::{ConversationSummary, MemberConversation};
use super::{Backend, Store, StoreResult};

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

impl Store {
    /// What `user_id` missed since `since` (None: the current state); `limit` clamped to 1..=1000.
    /// A fixed number of queries whatever the number of conversations: the membership log, the member's
    /// conversations with their counters and unread counts, the page of messages, the notification feed.
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
        let current = self.member_conversations(user_id, since.is_none()).await?;
        let mut budget = limit;
        let mut limited = false;
        let mut missed = if since.is_none() {
            HashMap::new()
        } else {
            let plan = plan_page(&current, &from, budget);
            (budget, limited) = (plan.budget_left, plan.limited);
            self.messages_in(&plan.ranges).await?
        };
        let mut conversations = Vec::new();
        for conv in current {
            let membership = changes.remove(&conv.summary.id);
            let ConversationSummary {
                id,
                title,
                last_message,
                unread,
                ..
            } = conv.summary;
            let messages = if since.is_none() {
                next.conversations.insert(id.clone(), conv.last_seq);
                last_message.into_iter().collect()
            } else {
                let messages = missed.remove(&id).unwrap_or_default();
                let after = from.conversations.get(&id).copied().unwrap_or(0);
                let reached = messages.last().map_or(after, |m| m.seq);
                if reached > 0 {
                    next.conversations.insert(id.clone(), reached);
                }
                messages
            };
            if since.is_none() || !messages.is_empty() || membership.is_some() {
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

    /// Every message in the planned ranges, in one query, grouped by conversation (ascending `seq`).
    async fn messages_in(&self, ranges: &[SeqRange<'_>]) -> StoreResult<HashMap<String, Vec<Message>>> {
        let mut out: HashMap<String, Vec<Message>> = HashMap::new();
        if ranges.is_empty() {
            return Ok(out);
        }
        let values = (0..ranges.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH r (cid, lo, hi) AS (VALUES {values}) SELECT x.conversation_id, x.seq, x.id, x.sender, x.system, \
             x.body, x.created_at FROM r {} ORDER BY x.conversation_id, x.seq LIMIT $1",
            match self.backend() {
                // Each range is a search of the (conversation_id, seq) primary key, one after another.
                Backend::Sqlite => "JOIN messages x ON x.conversation_id = r.cid AND x.seq > r.lo AND x.seq <= r.hi",
                // LATERAL with a LIMIT keeps PostgreSQL on one index range scan per range: as a plain join it
                // may merge-join the whole primary key instead.
                Backend::Postgres => {
                    "CROSS JOIN LATERAL (SELECT * FROM messages m WHERE m.conversation_id = r.cid \
                     AND m.seq > r.lo AND m.seq <= r.hi ORDER BY m.seq LIMIT r.hi - r.lo) x"
                }
            }
        );
        let total: i64 = ranges.iter().map(|r| r.hi - r.after).sum();
        let mut query = sqlx::query(&sql).bind(total);
        for range in ranges {
            query = query.bind(range.conversation_id).bind(range.after).bind(range.hi);
        }
        for row in query.fetch_all(self.pool()).await?.iter() {
            let message = message_of(row)?;
            match out.get_mut(&message.conversation_id) {
                Some(messages) => messages.push(message),
                None => {
                    out.insert(message.conversation_id.clone(), vec![message]);
                }
            }
        }
        Ok(out)
    }
}

/// The messages one conversation contributes to a page: `seq` in `(after, hi]`.
struct SeqRange<'a> {
    conversation_id: &'a str,
    after: i64,
    hi: i64,
}

/// Which messages a delta page takes, decided from the counters alone (`seq` is gap-free and messages are
/// never deleted, so `(after, last_seq]` holds exactly `last_seq - after` messages): conversations in id
/// order, each taking what it missed until the budget runs out; `limited` when anything is left over.
struct PagePlan<'a> {
    ranges: Vec<SeqRange<'a>>,
    budget_left: i64,
    limited: bool,
}

fn plan_page<'a>(current: &'a [MemberConversation], from: &SyncPosition, budget: i64) -> PagePlan<'a> {
    let mut plan = PagePlan {
        ranges: Vec::new(),
        budget_left: budget,
        limited: false,
    };
    for conv in current {
        let after = from.conversations.get(&conv.summary.id).copied().unwrap_or(0);
        if conv.last_seq <= after {
            continue;
        }
        let take = (conv.last_seq - after).min(plan.budget_left);
        if take < conv.last_seq - after {
            plan.limited = true;
        }
        if take > 0 {
            plan.budget_left -= take;
            plan.ranges.push(SeqRange {
                conversation_id: &conv.summary.id,
                after,
                hi: after + take,
            });
        }
    }
    plan
}
