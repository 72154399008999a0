//! A removed member's live connections lose the conversation (#15 item 7), delivered from an outbox row so it
//! happens at least once even if the service is down when the member is removed.
//!
//! For each of the user's live connections — those the service lists in `conversation:{id}` and those the
//! store's presence table knows (a connection may have left the group but still hold the role) — the
//! `joinLeaveGroup` and `sendToGroup` permissions on the group are revoked. A permission that came with the
//! token's roles may outlive a REST revoke (the emulator keeps it; the service is not documented either way),
//! so a connection that still holds one after the revoke is closed: the client reconnects with a fresh token,
//! which negotiate no longer grants that conversation. Last, the user leaves the group. Every step is
//! idempotent and a connection that is already gone (404) counts as done, so a retried row is harmless.

use webpubsub_protocol::roles::Permission;

use super::Durable;
use crate::store::Store;
use crate::webpubsub::{ListConnectionsOptions, RestError};

/// Pages of group connections read per removal (200 each): a user's connections, not a crowd's.
const MAX_PAGES: usize = 20;
/// The close reason a revoked connection's client sees.
pub(super) const CLOSE_REASON: &str = "conversation membership removed";

/// Revokes, closes where needed, then removes `user_id` from `group`.
pub(super) async fn remove_from_live_connections(
    durable: &Durable,
    store: &Store,
    group: &str,
    user_id: &str,
) -> Result<(), RevokeError> {
    let client = durable.client();
    let hub = durable.hub();
    let mut connections = store.user_connection_ids(user_id).await?;
    let mut options = ListConnectionsOptions {
        max_page_size: Some(200),
        ..ListConnectionsOptions::default()
    };
    for _ in 0..MAX_PAGES {
        let page = client.list_group_connections(hub, group, &options).await?;
        connections.extend(
            page.members
                .into_iter()
                .filter(|member| member.user_id.as_deref() == Some(user_id))
                .map(|member| member.connection_id),
        );
        match page.continuation_token {
            Some(token) => options.continuation_token = Some(token),
            None => break,
        }
    }
    connections.sort();
    connections.dedup();
    for connection in &connections {
        let mut still_allowed = false;
        for permission in [Permission::JoinLeaveGroup, Permission::SendToGroup] {
            gone_is_done(client.revoke_permission(hub, permission, connection, Some(group)).await)?;
            still_allowed |= client
                .check_permission(hub, permission, connection, Some(group))
                .await?;
        }
        if still_allowed {
            tracing::info!(connection_id = %connection, group, "a token role outlived the revoke: closing the connection");
            gone_is_done(client.close_connection(hub, connection, Some(CLOSE_REASON)).await)?;
        }
    }
    client.remove_user_from_group(hub, group, user_id).await?;
    tracing::info!(
        user_id,
        group,
        connections = connections.len(),
        "removed member's live connections revoked"
    );
    Ok(())
}

/// A 404 (the connection closed meanwhile) is as good as done.
fn gone_is_done(result: Result<(), RestError>) -> Result<(), RestError> {
    match result {
        Err(error) if error.status() == Some(404) => Ok(()),
        other => other,
    }
}

/// Why a revocation failed (the outbox retries).
#[derive(Debug, thiserror::Error)]
pub(super) enum RevokeError {
    #[error(transparent)]
    Rest(#[from] RestError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}
