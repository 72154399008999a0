//! Emulator settings: the access keys, per-hub event handlers and upstream timing.
//!
//! Everything is plain data with a `Default`, so tests and the handler's dev mode can build
//! a configuration in code; the CLI (`main.rs`) fills the same structs from flags.

use std::time::Duration;

/// The access key used when none is given. Public on purpose: the emulator is for local
/// development only and this key protects nothing.
pub const DEV_ACCESS_KEY: &str = "webpubsub-emulator-dev-key-0123456789-not-a-secret";

/// Shortest access key accepted, in bytes (as Microsoft's emulator requires).
pub const MIN_ACCESS_KEY_BYTES: usize = 32;

/// The whole emulator configuration. Its `Debug` output hides the access keys.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Primary access key: signs and verifies tokens and `ce-signature`.
    pub access_key: String,
    /// Optional secondary key, accepted for tokens and added to `ce-signature`.
    pub secondary_key: Option<String>,
    /// Hubs with event handlers (hubs without handlers work without being listed).
    pub hubs: Vec<HubConfig>,
    /// Timeout of one upstream request (the service uses 100 s).
    pub upstream_timeout: Duration,
    /// Delays before each retry of an upstream request that got 408, 5xx or a network
    /// error; its length is the number of retries (the service: 1 s, 3 s, 5 s).
    pub upstream_retry_delays: Vec<Duration>,
    /// How long an idle keep-alive socket to a handler is kept for reuse. Short, so a
    /// burst of events does not leave thousands of sockets open long after the clients left.
    pub upstream_pool_idle_timeout: Duration,
    /// Most idle keep-alive sockets kept per handler host; beyond it a socket is closed as
    /// soon as its request ends.
    pub upstream_pool_max_idle: usize,
    /// After a failed abuse-protection check, how long before the handler is probed again.
    pub validation_retry_interval: Duration,
    /// After a successful abuse-protection check, how long it stays valid.
    pub validation_refresh_interval: Duration,
    /// How long a dropped reliable connection waits for its client to resume it.
    pub reconnect_window: Duration,
    /// The host sent in `WebHook-Request-Origin` (what handlers compare with the endpoint
    /// host of their connection string).
    pub webhook_origin: String,
    /// Identity (keyless) mode: `None` = off (access keys only).
    pub identity: Option<IdentityModeConfig>,
}

/// Identity mode of the emulator (see `crate::identity`).
#[derive(Clone)]
pub struct IdentityModeConfig {
    /// What callers of the local identity endpoint must send as `X-IDENTITY-HEADER`.
    pub identity_header: String,
    /// Refuse access-key REST tokens (the resource's `disableLocalAuth`).
    pub disable_local_auth: bool,
    /// Send `Authorization: Bearer` with this `aud` on upstream calls (the event handler's authentication
    /// setting); `None`: no bearer.
    pub upstream_audience: Option<String>,
    /// Lifetime of minted identity tokens.
    pub token_ttl: Duration,
}

impl IdentityModeConfig {
    /// Identity mode with `identity_header`, local auth still allowed, no upstream bearer, 1-hour tokens.
    pub fn new(identity_header: impl Into<String>) -> Self {
        Self {
            identity_header: identity_header.into(),
            disable_local_auth: false,
            upstream_audience: None,
            token_ttl: Duration::from_secs(60 * 60),
        }
    }
}

impl std::fmt::Debug for IdentityModeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityModeConfig")
            .field("identity_header", &"<redacted>")
            .field("disable_local_auth", &self.disable_local_auth)
            .field("upstream_audience", &self.upstream_audience)
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("access_key", &"<redacted>")
            .field("secondary_key", &self.secondary_key.as_ref().map(|_| "<redacted>"))
            .field("hubs", &self.hubs)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("upstream_retry_delays", &self.upstream_retry_delays)
            .field("upstream_pool_idle_timeout", &self.upstream_pool_idle_timeout)
            .field("upstream_pool_max_idle", &self.upstream_pool_max_idle)
            .field("validation_retry_interval", &self.validation_retry_interval)
            .field("validation_refresh_interval", &self.validation_refresh_interval)
            .field("reconnect_window", &self.reconnect_window)
            .field("webhook_origin", &self.webhook_origin)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            access_key: DEV_ACCESS_KEY.to_owned(),
            secondary_key: None,
            hubs: Vec::new(),
            upstream_timeout: Duration::from_secs(100),
            upstream_retry_delays: vec![Duration::from_secs(1), Duration::from_secs(3), Duration::from_secs(5)],
            upstream_pool_idle_timeout: Duration::from_secs(5),
            upstream_pool_max_idle: 32,
            validation_retry_interval: Duration::from_secs(5),
            validation_refresh_interval: Duration::from_secs(60),
            reconnect_window: Duration::from_secs(30),
            webhook_origin: "127.0.0.1".to_owned(),
            identity: None,
        }
    }
}

/// Event handlers of one hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Hub name (compared ignoring case).
    pub hub: String,
    /// Handlers in priority order: an event goes to the first one that takes it.
    pub event_handlers: Vec<EventHandlerConfig>,
}

/// One upstream event handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHandlerConfig {
    /// URL with optional `{hub}` and `{event}` placeholders (not in the host).
    pub url_template: String,
    /// Subset of `connect`, `connected`, `disconnected`.
    pub system_events: Vec<String>,
    /// `*`, `a,b`, a single name, or `None` for no user events.
    pub user_event_pattern: Option<String>,
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The access key is shorter than [`MIN_ACCESS_KEY_BYTES`] or contains `;`.
    #[error("the {which} access key must be at least {MIN_ACCESS_KEY_BYTES} bytes and contain no ';'")]
    BadAccessKey {
        /// `primary` or `secondary`.
        which: &'static str,
    },
    /// A hub name does not match the service's rule.
    #[error("invalid hub name '{0}'")]
    BadHub(String),
    /// A system event other than connect, connected, disconnected.
    #[error("unknown system event '{0}' (use connect, connected, disconnected)")]
    BadSystemEvent(String),
    /// The URL template is not an absolute http(s) URL.
    #[error("event handler URL '{0}' must be an absolute http:// or https:// URL without placeholders in the host")]
    BadUrlTemplate(String),
}

impl EmulatorConfig {
    /// Checks keys, hub names, system events and URL templates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key_ok = |key: &str| key.len() >= MIN_ACCESS_KEY_BYTES && !key.contains(';');
        if !key_ok(&self.access_key) {
            return Err(ConfigError::BadAccessKey { which: "primary" });
        }
        if self.secondary_key.as_deref().is_some_and(|k| !key_ok(k)) {
            return Err(ConfigError::BadAccessKey { which: "secondary" });
        }
        for hub in &self.hubs {
            if webpubsub_protocol::names::hub(&hub.hub).is_err() {
                return Err(ConfigError::BadHub(hub.hub.clone()));
            }
            for handler in &hub.event_handlers {
                for event in &handler.system_events {
                    if !["connect", "connected", "disconnected"]
                        .iter()
                        .any(|e| e.eq_ignore_ascii_case(event))
                    {
                        return Err(ConfigError::BadSystemEvent(event.clone()));
                    }
                }
                let probe = handler.url_template.replace("{hub}", "hub").replace("{event}", "event");
                let parsed =
                    url::Url::parse(&probe).map_err(|_| ConfigError::BadUrlTemplate(handler.url_template.clone()))?;
                let host_has_placeholder = handler
                    .url_template
                    .split("://")
                    .nth(1)
                    .and_then(|rest| rest.split('/').next())
                    .is_some_and(|authority| authority.contains('{'));
                if !matches!(parsed.scheme(), "http" | "https") || host_has_placeholder {
                    return Err(ConfigError::BadUrlTemplate(handler.url_template.clone()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(url: &str) -> EventHandlerConfig {
        EventHandlerConfig {
            url_template: url.into(),
            system_events: vec!["connect".into()],
            user_event_pattern: None,
        }
    }

    #[test]
    fn default_is_valid_and_dev_key_is_long_enough() {
        assert!(EmulatorConfig::default().validate().is_ok());
        assert!(DEV_ACCESS_KEY.len() >= MIN_ACCESS_KEY_BYTES);
    }

    #[test]
    fn debug_hides_keys() {
        let config = EmulatorConfig {
            secondary_key: Some("second-secret".into()),
            ..Default::default()
        };
        let text = format!("{config:?}");
        assert!(
            !text.contains(DEV_ACCESS_KEY) && !text.contains("second-secret"),
            "{text}"
        );
    }

    #[test]
    fn rejects_bad_keys() {
        let short = EmulatorConfig {
            access_key: "short".into(),
            ..Default::default()
        };
        assert_eq!(short.validate(), Err(ConfigError::BadAccessKey { which: "primary" }));
        let semicolon = EmulatorConfig {
            secondary_key: Some(format!("{};", "k".repeat(40))),
            ..Default::default()
        };
        assert_eq!(
            semicolon.validate(),
            Err(ConfigError::BadAccessKey { which: "secondary" })
        );
    }

    #[test]
    fn rejects_bad_handlers() {
        let with = |h: EventHandlerConfig| EmulatorConfig {
            hubs: vec![HubConfig {
                hub: "chat".into(),
                event_handlers: vec![h],
            }],
            ..Default::default()
        };
        assert!(
            with(handler("http://127.0.0.1:7071/api/{hub}/{event}"))
                .validate()
                .is_ok()
        );
        assert!(with(handler("ftp://x/y")).validate().is_err());
        assert!(with(handler("not a url")).validate().is_err());
        assert!(with(handler("http://{hub}.example/x")).validate().is_err());
        let mut bad_event = handler("http://127.0.0.1/x");
        bad_event.system_events = vec!["joined".into()];
        assert_eq!(
            with(bad_event).validate(),
            Err(ConfigError::BadSystemEvent("joined".into()))
        );
        let bad_hub = EmulatorConfig {
            hubs: vec![HubConfig {
                hub: "1hub".into(),
                event_handlers: vec![],
            }],
            ..Default::default()
        };
        assert!(bad_hub.validate().is_err());
    }
}
