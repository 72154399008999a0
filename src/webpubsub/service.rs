//! The Web PubSub service this app fronts, as configured: its connection string(s) and the hubs it serves,
//! read once from the environment snapshot. [`Hubs`] is the one hub resolver every function uses: the
//! default hub when a request names none, otherwise the configured spelling of a served hub (names compare
//! ignoring ASCII case, as the service does).

use crate::config::{ConfigError, Env};

use super::validate::{self, ValidationError};
use super::{ConnectionString, Endpoint, ServiceKeys};

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
    pub hubs: Hubs,
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
        // Errors name the setting (and the list position), never the value: a connection string
        // pasted into the wrong setting would otherwise print its key.
        for (index, hub) in hubs.iter().enumerate() {
            validate::hub(hub).map_err(|e| match index {
                0 => ConfigError::new("WebPubSubHub", e.to_string()),
                _ => ConfigError::new("WebPubSubAllowedHubs", format!("a listed hub is not valid: {e}")),
            })?;
        }
        Ok(Self {
            primary,
            secondary,
            hubs: Hubs::new(hubs),
        })
    }

    /// The default hub.
    pub fn hub(&self) -> &str {
        self.hubs.default_hub()
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

/// The hubs this app serves: the default one (`WebPubSubHub`) first, then `WebPubSubAllowedHubs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hubs(Vec<String>);

/// Why a hub named in a request is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubRefusal {
    /// The name breaks the service's hub name rules.
    Invalid(ValidationError),
    /// A valid name this app does not serve.
    NotServed,
}

impl Hubs {
    /// `hubs` must hold the default hub first.
    pub fn new(hubs: Vec<String>) -> Self {
        assert!(!hubs.is_empty(), "the default hub is always configured");
        Self(hubs)
    }

    /// The default hub.
    pub fn default_hub(&self) -> &str {
        &self.0[0]
    }

    /// Every served hub, default first.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The configured spelling of `hub` when this app serves it.
    pub fn served(&self, hub: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|known| known.eq_ignore_ascii_case(hub))
            .map(String::as_str)
    }

    /// The default hub when none is `requested`, else the configured spelling of the served hub requested.
    pub fn resolve(&self, requested: Option<&str>) -> Result<&str, HubRefusal> {
        let Some(requested) = requested else {
            return Ok(self.default_hub());
        };
        self.served(requested).ok_or_else(|| match validate::hub(requested) {
            Err(e) => HubRefusal::Invalid(e),
            Ok(()) => HubRefusal::NotServed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(service.hubs.names(), ["chat", "news"]);
        assert_eq!(service.hub(), "chat");
        assert_eq!(service.hubs.served("NEWS"), Some("news"));
        assert_eq!(service.hubs.served("other"), None);
        assert!(service.keys().secondary().is_some());
        let hosts: Vec<_> = service.endpoints().map(|e| e.host().to_owned()).collect();
        assert_eq!(hosts, ["contoso.webpubsub.azure.com", "127.0.0.1"]);
    }

    #[test]
    fn hubs_resolve_to_the_default_or_a_served_spelling() {
        let hubs = Hubs::new(vec!["chat".into(), "News".into()]);
        assert_eq!(hubs.resolve(None), Ok("chat"));
        assert_eq!(hubs.resolve(Some("NEWS")), Ok("News"));
        assert_eq!(hubs.resolve(Some("other")), Err(HubRefusal::NotServed));
        assert!(matches!(hubs.resolve(Some("1bad")), Err(HubRefusal::Invalid(_))));
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
        // A connection string pasted into a hub setting: named, never printed.
        let pasted = "Endpoint=https://x;AccessKey=pastedsecret;";
        let bad_hub = env.clone().with("WebPubSubHub", pasted);
        let error = ServiceSettings::from_env(&bad_hub).unwrap_err();
        assert_eq!(error.setting, "WebPubSubHub");
        assert!(!error.to_string().contains("pastedsecret"), "{error}");
        let bad_allowed = env.with("WebPubSubAllowedHubs", format!("ok, {pasted}"));
        let error = ServiceSettings::from_env(&bad_allowed).unwrap_err();
        assert_eq!(error.setting, "WebPubSubAllowedHubs");
        assert!(!error.to_string().contains("pastedsecret"), "{error}");
        let missing = Env::from_pairs([("WebPubSubHub", "chat")]);
        assert_eq!(
            ServiceSettings::from_env(&missing).unwrap_err().setting,
            "WebPubSubConnectionString"
        );
    }
}
