//! Upstream event delivery: CloudEvents HTTP POSTs to the configured event handlers, with
//! the abuse-protection (`OPTIONS`) handshake, signatures, timeouts and retries.
//!
//! `connect` and user events are blocking: the caller awaits the handler's answer.
//! `connected` and `disconnected` are fire-and-forget tasks whose failures are only logged;
//! `disconnected` waits for the connection's `connected` task so handlers see them in order.
//! A handler is only called once it has passed validation: an `OPTIONS` request with
//! `WebHook-Request-Origin` answered by 2xx and a `WebHook-Allowed-Origin` of `*` or our
//! origin. A failed validation is logged and retried after `validation_retry_interval`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::config::{EmulatorConfig, EventHandlerConfig};
use crate::connection::{Connection, lock};
use crate::protocol::{DataType, Payload};
use webpubsub_protocol::cloudevents as ce;
use webpubsub_protocol::keys::ServiceKeys;
use webpubsub_protocol::names;
use webpubsub_protocol::signature;
use webpubsub_protocol::time::rfc3339_utc;

mod delivery;
mod events;
#[cfg(test)]
mod tests;

/// Largest handler response body read (larger ones fail the event).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Timeout of the validation request.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Which user events a handler takes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UserEvents {
    None,
    All,
    Names(Vec<String>),
}

impl UserEvents {
    fn parse(pattern: Option<&str>) -> UserEvents {
        match pattern.map(str::trim) {
            None | Some("") => UserEvents::None,
            Some("*") => UserEvents::All,
            Some(list) => UserEvents::Names(
                list.split(',')
                    .map(|n| n.trim().to_ascii_lowercase())
                    .filter(|n| !n.is_empty())
                    .collect(),
            ),
        }
    }

    fn takes(&self, event: &str) -> bool {
        match self {
            UserEvents::None => false,
            UserEvents::All => true,
            UserEvents::Names(names) => names.iter().any(|n| n.eq_ignore_ascii_case(event)),
        }
    }
}

#[derive(Debug)]
struct Handler {
    url_template: String,
    system_events: Vec<String>,
    user_events: UserEvents,
}

impl Handler {
    fn new(config: &EventHandlerConfig) -> Handler {
        Handler {
            url_template: config.url_template.clone(),
            system_events: config.system_events.iter().map(|e| e.to_ascii_lowercase()).collect(),
            user_events: UserEvents::parse(config.user_event_pattern.as_deref()),
        }
    }

    fn url(&self, hub: &str, event: &str) -> String {
        self.url_template.replace("{hub}", hub).replace("{event}", event)
    }

    fn takes(&self, event: &Event<'_>) -> bool {
        match event.kind {
            EventKind::System => self.system_events.iter().any(|e| e == event.name),
            EventKind::User => self.user_events.takes(event.name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    System,
    User,
}

/// One event about to be delivered.
struct Event<'a> {
    kind: EventKind,
    name: &'a str,
    hub: &'a str,
    connection_id: &'a str,
    user_id: Option<&'a str>,
    subprotocol: Option<&'a str>,
    connection_state: Option<String>,
    content_type: &'static str,
    body: Bytes,
}

#[derive(Debug, Clone, Copy)]
enum Validation {
    Valid(Instant),
    Failed(Instant),
}

/// The `connect` event as the WebSocket endpoint saw the upgrade request.
#[derive(Debug, Clone)]
pub(crate) struct ConnectRequest {
    pub hub: String,
    pub connection_id: String,
    pub user_id: Option<String>,
    pub claims: Map<String, Value>,
    /// Query parameters without `access_token`.
    pub query: Vec<(String, String)>,
    /// Request headers without `Authorization`.
    pub headers: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
}

/// What the connect handler decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnectDecision {
    pub user_id: Option<String>,
    pub groups: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub subprotocol: Option<String>,
    pub connection_state: Option<String>,
}

/// Result of the blocking `connect` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectOutcome {
    /// No handler takes `connect` in this hub.
    NoHandler,
    /// 2xx: the connection goes ahead with these changes.
    Accepted(ConnectDecision),
    /// 4xx: the upgrade is refused with this status.
    Rejected(u16),
    /// 5xx, transport failure, bad response or failed validation: refuse with 500.
    Failed,
}

/// Result of a blocking user event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserEventOutcome {
    /// No handler takes this event: it is dropped.
    NoHandler,
    /// 2xx, with the reply for the sender (if any). A new connection state the handler set is
    /// already on the connection.
    Replied(Option<Payload>),
    /// Anything else.
    Failed,
}

/// Delivers events to the configured handlers.
pub(crate) struct Upstream {
    client: reqwest::Client,
    hubs: HashMap<String, Vec<Handler>>,
    keys: ServiceKeys,
    timeout: Duration,
    retry_delays: Vec<Duration>,
    validation_retry_interval: Duration,
    validation_refresh_interval: Duration,
    origin: String,
    next_event_id: AtomicU64,
    validations: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Validation>>>>>,
    /// Identity mode with event handler authentication: who signs the bearer, and its `aud`.
    bearer: Option<(Arc<crate::identity::IdentityAuthority>, String)>,
}

enum PostError {
    Timeout,
    Transport(String),
    TooLarge,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    pub(crate) fn new(config: &EmulatorConfig, keys: ServiceKeys) -> Upstream {
        let mut hubs: HashMap<String, Vec<Handler>> = HashMap::new();
        for hub in &config.hubs {
            hubs.entry(names::normalize_hub(&hub.hub))
                .or_default()
                .extend(hub.event_handlers.iter().map(Handler::new));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(config.upstream_pool_idle_timeout)
            .pool_max_idle_per_host(config.upstream_pool_max_idle)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Upstream {
            client,
            hubs,
            keys,
            timeout: config.upstream_timeout,
            retry_delays: config.upstream_retry_delays.clone(),
            validation_retry_interval: config.validation_retry_interval,
            validation_refresh_interval: config.validation_refresh_interval,
            origin: config.webhook_origin.clone(),
            next_event_id: AtomicU64::new(1),
            validations: Mutex::new(HashMap::new()),
            bearer: None,
        }
    }

    /// Sends `Authorization: Bearer` (signed by the authority, `aud` as given) on every event.
    pub(crate) fn with_bearer(mut self, bearer: Option<(Arc<crate::identity::IdentityAuthority>, String)>) -> Self {
        self.bearer = bearer;
        self
    }

    /// True when some handler of `hub` takes `connect`.
    pub(crate) fn has_connect_handler(&self, hub: &str) -> bool {
        self.hubs
            .get(hub)
            .is_some_and(|hs| hs.iter().any(|h| h.system_events.iter().any(|e| e == "connect")))
    }
}
