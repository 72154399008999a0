//! What the durable functions (`manage`, `conversations`, `outbox`, and negotiate's membership look-up)
//! share (#15): the `StoreConnectionString` and `MessageMaxBytes` settings, the store (opened once, on first
//! use or by [`Durable::open`] at start-up, migrations under a lock in [`Store::open`]), the REST client that
//! carries live frames, the mapping of [`StoreError`] to replies, and the delivery of outbox rows (the
//! immediate try after a send, [`try_now`], and the timer [`drain`]).
//!
//! | Setting | Default | Meaning |
//! |---|---|---|
//! | `StoreConnectionString` | unset | `sqlite:<path>` or `postgres://…`; unset → the durable routes answer 503 `StoreNotConfigured`. |
//! | `MessageMaxBytes` | `65536` | Largest request body of a send (→ 413). |

mod delivery;
pub(crate) mod presence;
pub(crate) mod reply;
pub(crate) mod request;
mod revoke;
mod sent_marks;
pub(crate) mod webhook;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use warp::http::{HeaderMap, StatusCode};

pub(crate) use delivery::{DrainReport, drain, drain_soon, try_now};

use crate::auth::{Authenticator, CallerSource};
use crate::config::{ConfigError, Env};
use crate::error::ApiError;
use crate::store::conversations::group_name;
use crate::store::messages::Sent;
use crate::store::outbox::OutboxKind;
use crate::store::{PoolOptions, Store, StoreConnectionString, StoreError};
use crate::webpubsub::{RestClient, RestOptions, ServiceSettings};

pub(crate) const STORE_SETTING: &str = "StoreConnectionString";
pub(crate) const MESSAGE_MAX_BYTES_SETTING: &str = "MessageMaxBytes";
/// 64 KiB: a chat message, not a file.
pub(crate) const DEFAULT_MESSAGE_MAX_BYTES: u64 = 64 * 1024;
const MESSAGE_MAX_BYTES_RANGE: RangeInclusive<u64> = 256..=16 * 1024 * 1024;
/// Retry-After of a 503 while the store is unreachable (the issue bounds it to 10 s).
pub(crate) const STORE_RETRY_AFTER_SECS: u64 = 5;

/// The state of a function members call directly (`conversations`, `notifications`, `sync`): negotiate's
/// way of identifying callers and the shared durable state.
#[derive(Debug)]
pub(crate) struct MemberState {
    pub(crate) authenticator: Authenticator,
    pub(crate) durable: Arc<Durable>,
}

impl MemberState {
    /// The state for callers identified by `authenticator`, on the shared `durable` state.
    pub(crate) fn new(authenticator: Authenticator, durable: Arc<Durable>) -> Self {
        Self { authenticator, durable }
    }

    /// The caller's user id, exactly as negotiate identifies it; in `anonymous` mode `user_param` (the
    /// `userId` query parameter) or the `X-User-Id` header must name it.
    pub(crate) async fn identify(&self, headers: &HeaderMap, user_param: Option<&str>) -> Result<String, ApiError> {
        request::check_user_id_header(headers)?;
        let requested = user_param.or_else(|| request::header_user_id(headers));
        let caller = self.authenticator.authenticate(headers, requested).await?;
        if matches!(caller.source, CallerSource::Anonymous { generated: true }) {
            return Err(ApiError::unauthorized(
                "name the caller with the userId query parameter or the X-User-Id header",
            ));
        }
        Ok(caller.user_id)
    }
}

/// Settings of the durable layer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None`: the durable routes answer 503 `StoreNotConfigured`.
    pub store: Option<StoreConnectionString>,
    pub message_max_bytes: u64,
    /// `NotificationsOfflineWebhookUrl` / `NotificationsOfflineWebhookSecret` (#16); `None`: no hand-off.
    pub offline_webhook: Option<webhook::OfflineWebhook>,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let store = env
            .get(STORE_SETTING)
            .filter(|raw| !raw.trim().is_empty())
            .map(|raw| {
                StoreConnectionString::parse(raw.trim()).map_err(|e| ConfigError::new(STORE_SETTING, e.to_string()))
            })
            .transpose()?;
        let message_max_bytes = env.parse_in(
            MESSAGE_MAX_BYTES_SETTING,
            DEFAULT_MESSAGE_MAX_BYTES,
            MESSAGE_MAX_BYTES_RANGE,
            "bytes",
        )?;
        Ok(Self {
            store,
            message_max_bytes,
            offline_webhook: webhook::OfflineWebhook::from_env(env)?,
        })
    }
}

/// The shared durable state: the store (opened once) and the client for live frames.
#[derive(Debug)]
pub struct Durable {
    connection: Option<StoreConnectionString>,
    store: OnceCell<Store>,
    /// The batching task that marks immediate broadcasts sent, started with the first one.
    sent_marks: std::sync::OnceLock<sent_marks::SentMarks>,
    client: RestClient,
    hub: String,
    pub message_max_bytes: u64,
    /// The offline hand-off (#16) and the client its POSTs go through.
    offline_webhook: Option<(webhook::OfflineWebhook, reqwest::Client)>,
}

impl Durable {
    pub fn new(own: &Settings, service: &ServiceSettings) -> anyhow::Result<Self> {
        Ok(Self {
            connection: own.store.clone(),
            store: OnceCell::new(),
            sent_marks: std::sync::OnceLock::new(),
            client: RestClient::for_service(service, RestOptions::default())?,
            hub: service.hubs.default_hub().to_owned(),
            message_max_bytes: own.message_max_bytes,
            offline_webhook: match &own.offline_webhook {
                Some(hook) => Some((hook.clone(), webhook::client()?)),
                None => None,
            },
        })
    }

    /// The offline webhook, when configured (#16).
    pub fn offline_webhook(&self) -> Option<&(webhook::OfflineWebhook, reqwest::Client)> {
        self.offline_webhook.as_ref()
    }

    /// Whether `StoreConnectionString` is set.
    pub fn is_configured(&self) -> bool {
        self.connection.is_some()
    }

    /// Opens the store now (start-up); a failure is returned and the next request tries again.
    pub async fn open(&self) -> Result<Option<&Store>, StoreError> {
        let Some(connection) = &self.connection else {
            return Ok(None);
        };
        self.store
            .get_or_try_init(|| Store::open(connection, PoolOptions::default()))
            .await
            .map(Some)
    }

    /// The store, or the 503 to answer (not configured, or unreachable for now).
    pub async fn store(&self) -> Result<&Store, ApiError> {
        match self.open().await {
            Ok(Some(store)) => Ok(store),
            Ok(None) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StoreNotConfigured",
                format!("durable conversations need the {STORE_SETTING} setting"),
            )),
            Err(error) => Err(store_error(error)),
        }
    }

    /// The task that marks immediate broadcasts sent (started on first use, inside the runtime).
    pub(crate) fn sent_marks(&self, store: &Store) -> &sent_marks::SentMarks {
        self.sent_marks
            .get_or_init(|| sent_marks::SentMarks::start(store.clone()))
    }

    /// The client live frames go through.
    pub fn client(&self) -> &RestClient {
        &self.client
    }

    /// The hub conversations live in (`WebPubSubHub`).
    pub fn hub(&self) -> &str {
        &self.hub
    }
}

/// The reply for a store failure: 503 with Retry-After, 404, 403, 409, 400, or an opaque 500.
pub(crate) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(e) => {
            tracing::warn!(error = %e, "store unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StoreUnavailable",
                "the message store is unavailable; retry later",
            )
            .with_retry_after(STORE_RETRY_AFTER_SECS)
        }
        StoreError::NotFound(what) => ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{what} not found")),
        StoreError::NotMember => ApiError::forbidden("NotAMember", "the caller is not a member of this conversation"),
        StoreError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "Conflict", message),
        StoreError::Invalid(message) => ApiError::bad_request("InvalidField", message),
        other => ApiError::internal("store", other),
    }
}

/// Bounds a store call in time, so a hung database answers 503 instead of holding the request.
pub(crate) async fn bounded<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, ApiError> {
    match tokio::time::timeout(Duration::from_secs(8), call).await {
        Ok(result) => result.map_err(store_error),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "StoreUnavailable",
            "the message store did not answer in time; retry later",
        )
        .with_retry_after(STORE_RETRY_AFTER_SECS)),
    }
}

/// The answer to a committed send: 201 with the stored message (200 on a retry), after handing a first
/// send's outbox row to the immediate broadcast try (in the background, bounded; the drain retries).
pub(crate) fn after_send(durable: &Arc<Durable>, store: &Store, sent: Sent) -> warp::reply::Response {
    let message = &sent.message.item;
    tracing::info!(
        user_id = %message.sender,
        conversation_id = %message.conversation_id,
        seq = message.seq,
        created = sent.message.created,
        "message stored"
    );
    if let Some(lease) = sent.outbox {
        let payload = serde_json::json!({ "group": group_name(&message.conversation_id), "frame": message.frame() });
        try_now(
            durable.clone(),
            store.clone(),
            lease,
            OutboxKind::MessageBroadcast,
            payload,
        );
    }
    reply::json_with(reply::created_or_found(sent.message.created), &reply::message(message))
}
