//! Presence for the offline hand-off (#16): wraps the `events` handler (the built-in behaviours or the
//! application's own) and, when a store is configured, records each `connected` event as a live connection
//! and forgets it on `disconnected`, keyed by connection id in the store so every instance sees the same
//! answer and repeated or reordered events converge. The wrapped handler runs first and answers as before;
//! a store failure is logged and never fails the event (the service ignores the answer to these two).

use std::sync::Arc;

use super::{Durable, bounded};
use crate::error::ApiError;
use crate::functions::events::{
    ConnectRequest, ConnectResponse, EventHandler, HookFuture, UserEventReply, UserMessage, VerifiedEvent,
};

/// An [`EventHandler`] that records presence around another one.
pub(crate) struct PresenceRecorder {
    inner: Arc<dyn EventHandler>,
    durable: Arc<Durable>,
}

impl PresenceRecorder {
    /// `inner` wrapped when the store is configured; `inner` itself otherwise.
    pub(crate) fn wrap(inner: Arc<dyn EventHandler>, durable: &Arc<Durable>) -> Arc<dyn EventHandler> {
        if durable.is_configured() {
            Arc::new(Self {
                inner,
                durable: durable.clone(),
            })
        } else {
            inner
        }
    }

    async fn opened(&self, event: &VerifiedEvent) {
        let Some(user) = event.user_id().filter(|u| !u.is_empty()) else {
            // An anonymous connection can never be a notification's recipient.
            return;
        };
        let recorded = match self.durable.store().await {
            Ok(store) => bounded(store.connection_opened(event.connection_id(), user)).await,
            Err(e) => Err(e),
        };
        if let Err(error) = recorded {
            tracing::warn!(
                connection_id = event.connection_id(),
                code = error.code(),
                "presence not recorded"
            );
        }
    }

    async fn closed(&self, event: &VerifiedEvent) {
        let forgotten = match self.durable.store().await {
            Ok(store) => bounded(store.connection_closed(event.connection_id()))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(error) = forgotten {
            tracing::warn!(
                connection_id = event.connection_id(),
                code = error.code(),
                "presence not cleared"
            );
        }
    }
}

impl EventHandler for PresenceRecorder {
    fn on_connect<'a>(
        &'a self,
        request: &'a ConnectRequest<'a>,
        response: ConnectResponse,
    ) -> HookFuture<'a, Result<ConnectResponse, ApiError>> {
        self.inner.on_connect(request, response)
    }

    fn on_connected<'a>(&'a self, event: &'a VerifiedEvent) -> HookFuture<'a, ()> {
        Box::pin(async move {
            self.inner.on_connected(event).await;
            self.opened(event).await;
        })
    }

    fn on_user_event<'a>(
        &'a self,
        event: &'a VerifiedEvent,
        message: UserMessage,
    ) -> HookFuture<'a, Result<UserEventReply, ApiError>> {
        self.inner.on_user_event(event, message)
    }

    fn on_group_event<'a>(&'a self, event: &'a VerifiedEvent, group: &'a str) -> HookFuture<'a, ()> {
        self.inner.on_group_event(event, group)
    }

    fn on_disconnected<'a>(&'a self, event: &'a VerifiedEvent, reason: Option<&'a str>) -> HookFuture<'a, ()> {
        Box::pin(async move {
            self.inner.on_disconnected(event, reason).await;
            self.closed(event).await;
        })
    }
}
