//! Delivering outbox rows (a message frame; a removed member's revocation, see `revoke`), at least once:
//! [`try_now`] right after a send (the writer's own lease, bounded to [`BROADCAST_TIMEOUT`], marked sent in
//! batches by `sent_marks`) and [`drain`] from the timer (claim due rows by lease, deliver, mark the batch
//! sent, reschedule failures with backoff honouring the service's Retry-After, log parked rows at error,
//! prune sent rows).

use std::time::Duration;

use serde_json::Value;

use super::Durable;
use crate::store::outbox::{OutboxKind, OutboxLease, Rescheduled, RetryPolicy};
use crate::store::{Store, StoreError};
use crate::webpubsub::{Message, RestError, SendOptions};

/// Longest the immediate broadcast after a send may take.
pub(crate) const BROADCAST_TIMEOUT: Duration = Duration::from_secs(2);
/// Rows one drain claims.
const DRAIN_BATCH: i64 = 100;
/// How long a drain owns its claimed rows.
const DRAIN_LEASE: Duration = Duration::from_secs(60);
/// Sent rows are kept this long (for inspection), then pruned.
const SENT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Longest one delivery may take inside a drain.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What one drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DrainReport {
    pub sent: u64,
    pub retried: u64,
    pub parked: u64,
    pub pruned: u64,
}

/// Why a delivery failed, with the Retry-After the service asked for.
struct Failed {
    error: String,
    retry_after: Option<Duration>,
}

impl From<RestError> for Failed {
    fn from(error: RestError) -> Self {
        let retry_after = match &error {
            RestError::Service { error, .. } => error.retry_after,
            _ => None,
        };
        Self {
            error: error.to_string(),
            retry_after,
        }
    }
}

/// Performs one row: a message or notification frame to its group, a removed member out of the group (its
/// live connections' permissions revoked first), or a notification to the offline webhook.
async fn perform(durable: &Durable, store: &Store, kind: OutboxKind, payload: &Value) -> Result<(), Failed> {
    let text = |name: &str| payload[name].as_str().unwrap_or_default().to_owned();
    let corrupt = |what: &str| Failed {
        error: format!("outbox row without {what}"),
        retry_after: None,
    };
    let client = durable.client();
    let hub = durable.hub();
    match kind {
        // A message to its conversation's group, a notification to its user's: the same frame send.
        OutboxKind::MessageBroadcast | OutboxKind::Notification => {
            let group = text("group");
            if group.is_empty() {
                return Err(corrupt("group"));
            }
            let message = Message::json(&payload["frame"]).map_err(RestError::from)?;
            client
                .send_to_group(hub, &group, &message, &SendOptions::default())
                .await?;
        }
        OutboxKind::MembershipRemoved => {
            let (group, user) = (text("group"), text("userId"));
            if group.is_empty() || user.is_empty() {
                return Err(corrupt("group or userId"));
            }
            // Permissions revoked per live connection, then out of the group: no more frames; negotiate's
            // member check refuses the next token.
            super::revoke::remove_from_live_connections(durable, store, &group, &user)
                .await
                .map_err(|error| Failed {
                    error: error.to_string(),
                    retry_after: match &error {
                        super::revoke::RevokeError::Rest(RestError::Service { error, .. }) => error.retry_after,
                        _ => None,
                    },
                })?;
        }
        OutboxKind::OfflineWebhook => {
            let Some((hook, http)) = durable.offline_webhook() else {
                // The setting was removed since the row was written: nothing to hand off to.
                tracing::warn!("offline webhook row dropped: NotificationsOfflineWebhookUrl is no longer set");
                return Ok(());
            };
            if payload["userId"].as_str().is_none_or(str::is_empty) {
                return Err(corrupt("userId"));
            }
            let body = serde_json::json!({ "userId": payload["userId"], "notification": payload["notification"] });
            let body = serde_json::to_vec(&body).map_err(|e| Failed {
                error: e.to_string(),
                retry_after: None,
            })?;
            hook.post(http, body).await.map_err(|f| Failed {
                error: f.error,
                retry_after: f.retry_after,
            })?;
        }
    }
    Ok(())
}

/// Performs one row within `timeout`.
async fn attempt(
    durable: &Durable,
    store: &Store,
    kind: OutboxKind,
    payload: &Value,
    timeout: Duration,
) -> Result<(), Failed> {
    match tokio::time::timeout(timeout, perform(durable, store, kind, payload)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failed {
            error: format!("no answer within {} ms", timeout.as_millis()),
            retry_after: None,
        }),
    }
}

/// Records a failed attempt: due again after backoff, or parked (logged at error) at the attempt cap.
async fn record_failure(
    store: &Store,
    lease: &OutboxLease,
    kind: OutboxKind,
    failed: Failed,
    report: &mut DrainReport,
) -> Result<(), StoreError> {
    match store
        .reschedule(lease, &failed.error, failed.retry_after, &RetryPolicy::default())
        .await?
    {
        Rescheduled::Retry { at_ms } => {
            report.retried += 1;
            tracing::warn!(outbox_id = lease.id, kind = kind.as_str(), at_ms, error = %failed.error, "outbox delivery failed; retrying later");
        }
        Rescheduled::Parked(item) => {
            report.parked += 1;
            tracing::error!(outbox_id = item.id, kind = item.kind.as_str(), attempts = item.attempts, error = %failed.error, "outbox row parked after its last attempt");
        }
        Rescheduled::LeaseLost => {}
    }
    Ok(())
}

/// The immediate try after a commit, in the background: bounded to [`BROADCAST_TIMEOUT`]; a success is marked
/// through the batching [`SentMarks`](super::sent_marks::SentMarks) task, a failure leaves the row to the drain.
pub(crate) fn try_now(
    durable: std::sync::Arc<Durable>,
    store: Store,
    lease: OutboxLease,
    kind: OutboxKind,
    payload: Value,
) {
    tokio::spawn(async move {
        match attempt(&durable, &store, kind, &payload, BROADCAST_TIMEOUT).await {
            Ok(()) => durable.sent_marks(&store).mark(lease).await,
            Err(failed) => {
                if let Err(error) = record_failure(&store, &lease, kind, failed, &mut DrainReport::default()).await {
                    tracing::warn!(outbox_id = lease.id, error = %error, "immediate delivery not recorded; the drain will retry");
                }
            }
        }
    });
}

/// A drain in the background, bounded in time, for rows written due at once (a notification's fan-out); what
/// it misses the timer's drain takes.
pub(crate) fn drain_soon(durable: std::sync::Arc<Durable>, store: Store) {
    tokio::spawn(async move {
        match tokio::time::timeout(Duration::from_secs(30), drain(&durable, &store)).await {
            Ok(Ok(report)) => tracing::debug!(sent = report.sent, retried = report.retried, "immediate drain"),
            Ok(Err(error)) => tracing::warn!(error = %error, "immediate drain failed; the timer retries"),
            Err(_) => tracing::warn!("immediate drain still running after 30 s; the timer continues"),
        }
    });
}

/// One drain: claims due rows (in batches until none are due), delivers each, then prunes old sent rows.
pub(crate) async fn drain(durable: &Durable, store: &Store) -> Result<DrainReport, StoreError> {
    let mut report = DrainReport::default();
    let policy = RetryPolicy::default();
    // Bounded: at most ten batches per run; the next tick continues.
    for _ in 0..10 {
        let claim = store.claim_outbox(DRAIN_BATCH, DRAIN_LEASE, &policy).await?;
        for item in &claim.parked {
            report.parked += 1;
            tracing::error!(
                outbox_id = item.id,
                kind = item.kind.as_str(),
                attempts = item.attempts,
                error = item.last_error.as_deref().unwrap_or(""),
                "outbox row parked after its last attempt"
            );
        }
        if claim.items.is_empty() {
            break;
        }
        let full = claim.items.len() as i64 == DRAIN_BATCH;
        // Delivered rows are marked together at the end of the batch: one write instead of one per row.
        let mut delivered = Vec::new();
        for item in &claim.items {
            match attempt(durable, store, item.kind, &item.payload, DELIVERY_TIMEOUT).await {
                Ok(()) => delivered.push(item.lease.clone()),
                Err(failed) => record_failure(store, &item.lease, item.kind, failed, &mut report).await?,
            }
        }
        report.sent += store.mark_sent_many(&delivered).await?;
        if !full {
            break;
        }
    }
    report.pruned = store.prune_sent(SENT_RETENTION).await?;
    Ok(report)
}
