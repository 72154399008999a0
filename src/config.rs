//! Settings: read once from the process environment at start-up, validated into typed values, then shared
//! immutably. Handlers never read the environment; they receive what was validated here.
//!
//! The flow is `Env` (a snapshot of raw strings) → `Settings::from_env` (typed, checked) → `Arc` in the app.
//! Every failure is a [`ConfigError`] that names the setting and the problem and never echoes a secret value.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use crate::functions::{events, negotiate, publish};
use crate::telemetry::LogSettings;
use crate::webpubsub::{ConnectionString, Endpoint, ServiceKeys, validate};

/// Port the handler listens on when `FUNCTIONS_CUSTOMHANDLER_PORT` is unset (the Functions host always sets it).
pub const DEFAULT_PORT: u16 = 3000;

/// A snapshot of the raw environment: names to values. Taken once, in `main` (or built by tests).
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Snapshot of the current process environment. Call once, at start-up.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// An environment made of explicit pairs (tests, `handler dev`).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// Adds or replaces one value, builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The trimmed value of `name`, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The value of a setting that must be present.
    pub fn require(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// Parses `name` with `FromStr`, or returns `default` when unset. Parse errors name the setting; the
    /// offending value is shown only for non-secret settings (callers parse secrets themselves).
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError::new(name, format!("invalid value {raw:?}: {e}"))),
        }
    }

    /// A boolean setting: `true/false`, `1/0`, `yes/no`, `on/off` (any case).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::new(name, format!("expected true or false, got {other:?}"))),
        }
    }

    /// A list setting: items separated by commas, trimmed, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Env {
    // The environment holds secrets: show names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

/// A setting that is missing or malformed. `Display` is the one line printed before a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// Everything the handler needs, validated. Built once; shared read-only.
#[derive(Debug)]
pub struct Settings {
    /// Loopback port to listen on (`FUNCTIONS_CUSTOMHANDLER_PORT`).
    pub port: u16,
    pub log: LogSettings,
    /// The Web PubSub service: connection string(s), keys and hubs.
    pub service: ServiceSettings,
    pub negotiate: negotiate::Settings,
    pub publish: publish::Settings,
    pub events: events::Settings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: env.parse_or("FUNCTIONS_CUSTOMHANDLER_PORT", DEFAULT_PORT)?,
            log: LogSettings::from_env(env)?,
            service: ServiceSettings::from_env(env)?,
            negotiate: negotiate::Settings::from_env(env)?,
            publish: publish::Settings::from_env(env)?,
            events: events::Settings::from_env(env)?,
        })
    }
}

/// The Web PubSub service the handler fronts: its connection string(s) and the hubs this app serves.
///
/// `WebPubSubSecondaryConnectionString` carries the other access key during key rotation: upstream
/// signatures made with either key are accepted and either endpoint's host may validate the webhook;
/// tokens and REST calls always use the primary.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub primary: ConnectionString,
    pub secondary: Option<ConnectionString>,
    /// The default hub (`WebPubSubHub`) first, then `WebPubSubAllowedHubs`, without duplicates.
    pub hubs: Vec<String>,
}

impl ServiceSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let parse =
            |name: &str, value: &str| ConnectionString::parse(value).map_err(|e| ConfigError::new(name, e.to_string()));
        let primary = parse("WebPubSubConnectionString", env.require("WebPubSubConnectionString")?)?;
        let secondary = env
            .get("WebPubSubSecondaryConnectionString")
            .map(|value| parse("WebPubSubSecondaryConnectionString", value))
            .transpose()?;
        let mut hubs = vec![env.require("WebPubSubHub")?.to_owned()];
        for hub in env.list("WebPubSubAllowedHubs") {
            if !hubs.iter().any(|known| known.eq_ignore_ascii_case(&hub)) {
                hubs.push(hub);
            }
        }
        for (index, hub) in hubs.iter().enumerate() {
            let setting = if index == 0 {
                "WebPubSubHub"
            } else {
                "WebPubSubAllowedHubs"
            };
            validate::hub(hub).map_err(|e| ConfigError::new(setting, format!("{hub:?}: {e}")))?;
        }
        Ok(Self {
            primary,
            secondary,
            hubs,
        })
    }

    /// The default hub.
    pub fn hub(&self) -> &str {
        &self.hubs[0]
    }

    /// The configured spelling of `hub` when this app serves it (hub names compare case-insensitively).
    pub fn served_hub(&self, hub: &str) -> Option<&str> {
        self.hubs
            .iter()
            .find(|known| known.eq_ignore_ascii_case(hub))
            .map(String::as_str)
    }

    /// The primary key, plus the secondary connection string's key for rotation.
    pub fn keys(&self) -> ServiceKeys {
        let keys = ServiceKeys::new(self.primary.access_key().clone());
        match &self.secondary {
            Some(secondary) => keys.with_secondary(secondary.access_key().clone()),
            None => keys,
        }
    }

    /// Every configured endpoint, primary first.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        std::iter::once(self.primary.endpoint()).chain(self.secondary.as_ref().map(ConnectionString::endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_count_as_unset() {
        let env = Env::from_pairs([("A", "  "), ("B", " x ")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), Some("x"));
        assert_eq!(env.require("A").unwrap_err().setting, "A");
    }

    #[test]
    fn parse_or_names_the_setting_and_value() {
        let env = Env::from_pairs([("PORT", "eighty")]);
        let err = env.parse_or::<u16>("PORT", 1).unwrap_err();
        assert_eq!(err.setting, "PORT");
        assert!(err.to_string().contains("\"eighty\""), "{err}");
        assert_eq!(Env::default().parse_or::<u16>("PORT", 7).unwrap(), 7);
    }

    #[test]
    fn flags_accept_common_spellings_and_reject_others() {
        let env = Env::from_pairs([("A", "Yes"), ("B", "0"), ("C", "maybe")]);
        assert!(env.flag("A", false).unwrap());
        assert!(!env.flag("B", true).unwrap());
        assert!(env.flag("C", true).is_err());
        assert!(env.flag("D", true).unwrap());
    }

    #[test]
    fn lists_split_on_commas_and_drop_blanks() {
        let env = Env::from_pairs([("L", " a, b ,,c ")]);
        assert_eq!(env.list("L"), ["a", "b", "c"]);
        assert!(env.list("missing").is_empty());
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Env::from_pairs([("WebPubSubConnectionString", "AccessKey=topsecret")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("WebPubSubConnectionString"));
        assert!(!shown.contains("topsecret"));
    }

    const PRIMARY: &str = "Endpoint=https://contoso.webpubsub.azure.com;AccessKey=primary-key-0123456789;Version=1.0;";
    const SECONDARY: &str = "Endpoint=http://127.0.0.1;Port=8080;AccessKey=secondary-key-0123456789;";

    #[test]
    fn service_reads_keys_endpoints_and_hubs() {
        let env = Env::from_pairs([
            ("WebPubSubConnectionString", PRIMARY),
            ("WebPubSubSecondaryConnectionString", SECONDARY),
            ("WebPubSubHub", "chat"),
            ("WebPubSubAllowedHubs", "Chat, news"),
        ]);
        let service = ServiceSettings::from_env(&env).unwrap();
        assert_eq!(service.hubs, ["chat", "news"]);
        assert_eq!(service.hub(), "chat");
        assert_eq!(service.served_hub("NEWS"), Some("news"));
        assert_eq!(service.served_hub("other"), None);
        assert!(service.keys().secondary().is_some());
        let hosts: Vec<_> = service.endpoints().map(|e| e.host().to_owned()).collect();
        assert_eq!(hosts, ["contoso.webpubsub.azure.com", "127.0.0.1"]);
    }

    #[test]
    fn service_failures_name_the_setting_without_the_value() {
        let env = Env::from_pairs([
            ("WebPubSubConnectionString", "Endpoint=https://x;AccessKey=supersecret;"),
            ("WebPubSubHub", "chat"),
        ]);
        assert!(ServiceSettings::from_env(&env).is_ok());
        let bad_secondary = env
            .clone()
            .with("WebPubSubSecondaryConnectionString", "AccessKey=supersecret2");
        let error = ServiceSettings::from_env(&bad_secondary).unwrap_err();
        assert_eq!(error.setting, "WebPubSubSecondaryConnectionString");
        assert!(!error.to_string().contains("supersecret2"));
        let bad_hub = env.clone().with("WebPubSubHub", "1bad");
        assert_eq!(ServiceSettings::from_env(&bad_hub).unwrap_err().setting, "WebPubSubHub");
        let bad_allowed = env.with("WebPubSubAllowedHubs", "ok, no spaces");
        assert_eq!(
            ServiceSettings::from_env(&bad_allowed).unwrap_err().setting,
            "WebPubSubAllowedHubs"
        );
        let missing = Env::from_pairs([("WebPubSubHub", "chat")]);
        assert_eq!(
            ServiceSettings::from_env(&missing).unwrap_err().setting,
            "WebPubSubConnectionString"
        );
    }
}
