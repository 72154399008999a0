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
use crate::protocol::{ContentKind, Payload};
use webpubsub_protocol::cloudevents as ce;
use webpubsub_protocol::keys::ServiceKeys;
use webpubsub_protocol::names;
use webpubsub_protocol::signature;
use webpubsub_protocol::time::rfc3339_utc;

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
    /// 2xx, with the reply for the sender (if any) and a new connection state (if any).
    Replied {
        reply: Option<Payload>,
        connection_state: Option<String>,
    },
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
        }
    }

    /// True when some handler of `hub` takes `connect`.
    pub(crate) fn has_connect_handler(&self, hub: &str) -> bool {
        self.hubs
            .get(hub)
            .is_some_and(|hs| hs.iter().any(|h| h.system_events.iter().any(|e| e == "connect")))
    }

    /// The blocking `connect` event.
    pub(crate) async fn connect(&self, request: &ConnectRequest) -> ConnectOutcome {
        let to_arrays = |pairs: &[(String, String)]| {
            let mut map: Map<String, Value> = Map::new();
            for (k, v) in pairs {
                if let Value::Array(values) = map.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                    values.push(Value::String(v.clone()));
                }
            }
            Value::Object(map)
        };
        let claims: Map<String, Value> = request
            .claims
            .iter()
            .map(|(k, v)| {
                let values: Vec<Value> = match v {
                    Value::Array(items) => items.iter().map(|i| Value::String(claim_text(i))).collect(),
                    other => vec![Value::String(claim_text(other))],
                };
                (k.clone(), Value::Array(values))
            })
            .collect();
        let body = json!({
            "claims": claims,
            "query": to_arrays(&request.query),
            "headers": to_arrays(&request.headers),
            "subprotocols": request.subprotocols,
            "clientCertificates": [],
        });
        let event = Event {
            kind: EventKind::System,
            name: "connect",
            hub: &request.hub,
            connection_id: &request.connection_id,
            user_id: request.user_id.as_deref(),
            subprotocol: None,
            connection_state: None,
            content_type: "application/json; charset=utf-8",
            body: Bytes::from(body.to_string()),
        };
        let Some(handler) = self.handler_for(&event) else {
            return ConnectOutcome::NoHandler;
        };
        let reply = match self.deliver(handler, &event).await {
            Some(reply) => reply,
            None => return ConnectOutcome::Failed,
        };
        if reply.status.is_client_error() {
            return ConnectOutcome::Rejected(reply.status.as_u16());
        }
        if !reply.status.is_success() {
            return ConnectOutcome::Failed;
        }
        let mut decision = ConnectDecision {
            connection_state: connection_state_of(&reply.headers),
            ..Default::default()
        };
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return ConnectOutcome::Accepted(decision);
        }
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&reply.body) else {
            log_event(
                &event,
                "the connect handler answered with a body that is not a JSON object",
            );
            return ConnectOutcome::Failed;
        };
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array()
                .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        };
        decision.user_id = answer
            .get("userId")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        decision.groups = answer.get("groups").and_then(strings);
        decision.roles = answer.get("roles").and_then(strings);
        decision.subprotocol = answer
            .get("subprotocol")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        ConnectOutcome::Accepted(decision)
    }

    /// Spawns the `connected` event; the task is kept on the connection.
    pub(crate) fn connected(self: &Arc<Self>, connection: &Arc<Connection>) {
        let upstream = self.clone();
        let conn = connection.clone();
        let task = tokio::spawn(async move {
            let event = system_event(&conn, "connected", Bytes::from_static(b"{}"));
            if let Some(handler) = upstream.handler_for(&event) {
                upstream.deliver(handler, &event).await;
            }
        });
        connection.set_connected_event(task);
    }

    /// Spawns the `disconnected` event (after `connected` has been delivered).
    pub(crate) fn disconnected(self: &Arc<Self>, connection: Arc<Connection>, reason: String) {
        let upstream = self.clone();
        tokio::spawn(async move {
            if let Some(connected) = connection.take_connected_event() {
                let _ = connected.await;
            }
            let body = Bytes::from(json!({ "reason": reason }).to_string());
            let event = system_event(&connection, "disconnected", body);
            if let Some(handler) = upstream.handler_for(&event) {
                upstream.deliver(handler, &event).await;
            }
        });
    }

    /// A blocking user event (`event` message, or `message` for raw frames).
    pub(crate) async fn user_event(&self, connection: &Connection, name: &str, payload: &Payload) -> UserEventOutcome {
        let event = Event {
            kind: EventKind::User,
            name,
            hub: &connection.hub,
            connection_id: &connection.id,
            user_id: connection.user_id.as_deref(),
            subprotocol: connection.subprotocol.as_deref(),
            connection_state: connection.connection_state(),
            content_type: payload.kind.content_type(),
            body: payload.data.clone(),
        };
        let Some(handler) = self.handler_for(&event) else {
            return UserEventOutcome::NoHandler;
        };
        let Some(reply) = self.deliver(handler, &event).await else {
            return UserEventOutcome::Failed;
        };
        if !reply.status.is_success() {
            return UserEventOutcome::Failed;
        }
        let connection_state = connection_state_of(&reply.headers);
        let reply_payload = (!reply.body.is_empty() && reply.status != StatusCode::NO_CONTENT).then(|| {
            let kind = match reply
                .headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                Some(ct) => match ContentKind::from_content_type(ct) {
                    Some(kind) => kind,
                    None if ct.trim().to_ascii_lowercase().starts_with("text/") => ContentKind::Text,
                    None => ContentKind::Binary,
                },
                None => ContentKind::Binary,
            };
            Payload::new(kind, reply.body.clone())
        });
        UserEventOutcome::Replied {
            reply: reply_payload,
            connection_state,
        }
    }

    fn handler_for(&self, event: &Event<'_>) -> Option<&Handler> {
        self.hubs.get(event.hub)?.iter().find(|h| h.takes(event))
    }

    /// Validates (if needed) and POSTs; logs one line with the outcome. `None` when the
    /// handler could not be called or did not answer.
    async fn deliver(&self, handler: &Handler, event: &Event<'_>) -> Option<Reply> {
        if !self.ensure_validated(handler, event.hub).await {
            log_event(
                event,
                "event handler skipped: it has not passed the abuse-protection check",
            );
            return None;
        }
        let url = handler.url(event.hub, event.name);
        let headers = self.event_headers(event);
        match self.post(&url, headers, event.body.clone()).await {
            Ok(reply) => {
                tracing::info!(
                    hub = event.hub,
                    connection_id = event.connection_id,
                    user_id = event.user_id.unwrap_or(""),
                    event_type = %event_type(event),
                    status = reply.status.as_u16(),
                    "upstream event delivered"
                );
                Some(reply)
            }
            Err(PostError::Timeout) => {
                log_event(event, "upstream event failed: the handler timed out");
                None
            }
            Err(PostError::TooLarge) => {
                log_event(event, "upstream event failed: the handler response exceeds 16 MiB");
                None
            }
            Err(PostError::Transport(error)) => {
                log_event(event, &format!("upstream event failed: {error}"));
                None
            }
        }
    }

    fn event_headers(&self, event: &Event<'_>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| match HeaderValue::from_bytes(value.as_bytes()) {
            Ok(value) => {
                headers.insert(HeaderName::from_static(name), value);
            }
            Err(_) => tracing::warn!(
                header = name,
                "value not representable as an HTTP header; header omitted"
            ),
        };
        put("content-type", event.content_type);
        put(ce::WEBHOOK_REQUEST_ORIGIN, &self.origin);
        put(ce::SPEC_VERSION, ce::SPEC_VERSION_VALUE);
        put(ce::AWPS_VERSION, ce::AWPS_VERSION_VALUE);
        put(ce::TYPE, &event_type(event));
        put(ce::SOURCE, &ce::source(event.hub, event.connection_id));
        put(ce::ID, &self.next_event_id.fetch_add(1, Ordering::Relaxed).to_string());
        put(ce::TIME, &rfc3339_utc(SystemTime::now()));
        put(ce::SIGNATURE, &self.signature(event.connection_id));
        if let Some(user) = event.user_id {
            put(ce::USER_ID, user);
        }
        put(ce::CONNECTION_ID, event.connection_id);
        put(ce::HUB, event.hub);
        put(ce::EVENT_NAME, event.name);
        if let Some(subprotocol) = event.subprotocol {
            put(ce::SUBPROTOCOL, subprotocol);
        }
        if let Some(state) = &event.connection_state {
            put(ce::CONNECTION_STATE, state);
        }
        headers
    }

    /// `sha256=<hex>` for the primary key, then `,sha256=<hex>` for the secondary.
    pub(crate) fn signature(&self, connection_id: &str) -> String {
        signature::signature_header(&self.keys, connection_id)
    }

    /// POST with retries on 408, 5xx and transport errors (not on timeouts).
    async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> Result<Reply, PostError> {
        let mut attempt = 0;
        loop {
            let delay = self.retry_delays.get(attempt).copied();
            let result = self
                .client
                .post(url)
                .headers(headers.clone())
                .body(body.clone())
                .timeout(self.timeout)
                .send()
                .await;
            match result {
                Ok(response) => {
                    let status = response.status();
                    let retryable = status == StatusCode::REQUEST_TIMEOUT || status.is_server_error();
                    if let (true, Some(delay)) = (retryable, delay) {
                        tracing::debug!(
                            url = %without_query(url),
                            status = status.as_u16(),
                            "upstream answered with a retryable status; retrying"
                        );
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return read_reply(response).await;
                }
                Err(error) if error.is_timeout() => return Err(PostError::Timeout),
                Err(error) => {
                    let Some(delay) = delay else {
                        return Err(PostError::Transport(describe(&error)));
                    };
                    tracing::debug!(url = %without_query(url), error = %describe(&error), "upstream request failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// True when the handler's validation for `hub` is fresh or succeeds now.
    async fn ensure_validated(&self, handler: &Handler, hub: &str) -> bool {
        let url = handler.url(hub, "validate");
        let slot = lock(&self.validations).entry(url.clone()).or_default().clone();
        let mut state = slot.lock().await;
        match *state {
            Some(Validation::Valid(at)) if at.elapsed() < self.validation_refresh_interval => {
                return true;
            }
            Some(Validation::Failed(at)) if at.elapsed() < self.validation_retry_interval => {
                return false;
            }
            _ => {}
        }
        let result = self.validate(&url).await;
        match &result {
            Ok(()) => {
                tracing::info!(hub, url = %without_query(&url), event_type = "validate", "event handler passed the abuse-protection check");
            }
            Err(why) => {
                tracing::warn!(
                    hub,
                    url = %without_query(&url),
                    event_type = "validate",
                    reason = %why,
                    "event handler failed the abuse-protection check; it will not be called until it passes"
                );
            }
        }
        *state = Some(if result.is_ok() {
            Validation::Valid(Instant::now())
        } else {
            Validation::Failed(Instant::now())
        });
        result.is_ok()
    }

    async fn validate(&self, url: &str) -> Result<(), String> {
        let response = self
            .client
            .request(reqwest::Method::OPTIONS, url)
            .header("WebHook-Request-Origin", &self.origin)
            .header(ce::AWPS_VERSION, ce::AWPS_VERSION_VALUE)
            .timeout(VALIDATION_TIMEOUT.min(self.timeout))
            .send()
            .await
            .map_err(|e| format!("OPTIONS request failed: {}", describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("OPTIONS answered {status}, expected 2xx"));
        }
        let allowed: Vec<String> = response
            .headers()
            .get_all("webhook-allowed-origin")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect();
        if allowed.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(&self.origin)) {
            Ok(())
        } else if allowed.is_empty() {
            Err("the response has no WebHook-Allowed-Origin header".to_owned())
        } else {
            Err(format!(
                "WebHook-Allowed-Origin {allowed:?} allows neither '*' nor '{}'",
                self.origin
            ))
        }
    }
}

fn system_event<'a>(connection: &'a Connection, name: &'a str, body: Bytes) -> Event<'a> {
    Event {
        kind: EventKind::System,
        name,
        hub: &connection.hub,
        connection_id: &connection.id,
        user_id: connection.user_id.as_deref(),
        subprotocol: connection.subprotocol.as_deref(),
        connection_state: connection.connection_state(),
        content_type: "application/json; charset=utf-8",
        body,
    }
}

fn event_type(event: &Event<'_>) -> String {
    match event.kind {
        EventKind::System => [ce::SYSTEM_EVENT_PREFIX, event.name].concat(),
        EventKind::User => [ce::USER_EVENT_PREFIX, event.name].concat(),
    }
}

fn log_event(event: &Event<'_>, message: &str) {
    tracing::warn!(
        hub = event.hub,
        connection_id = event.connection_id,
        user_id = event.user_id.unwrap_or(""),
        event_type = %event_type(event),
        "{message}"
    );
}

/// A URL for logs: the query may hold a function key, so it is cut off.
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn connection_state_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(ce::CONNECTION_STATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The error and its causes, without the URL's query (which could hold a code).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "could not read the response".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read_reply(mut response: reqwest::Response) -> Result<Reply, PostError> {
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(PostError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) if error.is_timeout() => return Err(PostError::Timeout),
            Err(error) => return Err(PostError::Transport(describe(&error))),
        }
    }
    Ok(Reply {
        status,
        headers,
        body: Bytes::from(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use webpubsub_protocol::keys::AccessKey;

    #[test]
    fn user_event_patterns() {
        assert!(!UserEvents::parse(None).takes("message"));
        assert!(!UserEvents::parse(Some(" ")).takes("message"));
        assert!(UserEvents::parse(Some("*")).takes("anything"));
        let list = UserEvents::parse(Some("chat, Notify"));
        assert!(list.takes("chat"));
        assert!(list.takes("notify"));
        assert!(!list.takes("message"));
        assert!(UserEvents::parse(Some("message")).takes("MESSAGE"));
    }

    #[test]
    fn signatures_for_both_keys() {
        let config = EmulatorConfig::default();
        let primary = ServiceKeys::new(AccessKey::new("Jefe").unwrap());
        let upstream = Upstream::new(
            &config,
            primary.clone().with_secondary(AccessKey::new("other").unwrap()),
        );
        let signature = upstream.signature("what do ya want for nothing?");
        let (first, second) = signature.split_once(',').unwrap();
        assert_eq!(
            first,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(second.starts_with("sha256=") && second.len() == 7 + 64);
        let single = Upstream::new(&config, primary).signature("x");
        assert!(!single.contains(','));
    }

    #[test]
    fn handler_urls_and_events() {
        let handler = Handler::new(&EventHandlerConfig {
            url_template: "http://h/api/{hub}/{event}".into(),
            system_events: vec!["Connect".into()],
            user_event_pattern: Some("*".into()),
        });
        assert_eq!(handler.url("chat", "validate"), "http://h/api/chat/validate");
        assert!(handler.system_events.contains(&"connect".to_owned()));
    }
}
