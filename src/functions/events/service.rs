//! What `events` needs to know about the Web PubSub service: the access keys that sign upstream requests,
//! the endpoints whose hosts may validate this webhook, the hubs it serves, and the primary connection for
//! REST calls.
//!
//! Interim adapter: until `config::ServiceSettings` carries the parsed connection strings, the settings
//! are read here from the same environment names (`WebPubSubConnectionString`,
//! `WebPubSubSecondaryConnectionString`, `WebPubSubHub`, `WebPubSubAllowedHubs`), with the same parser.

use crate::config::{ConfigError, Env};
use crate::webpubsub::{ConnectionString, Endpoint, ServiceKeys, validate};

pub const CONNECTION_STRING: &str = "WebPubSubConnectionString";
pub const SECONDARY_CONNECTION_STRING: &str = "WebPubSubSecondaryConnectionString";
pub const HUB: &str = "WebPubSubHub";
pub const ALLOWED_HUBS: &str = "WebPubSubAllowedHubs";

/// The service as `events` sees it.
#[derive(Debug, Clone)]
pub struct Service {
    pub primary: ConnectionString,
    pub secondary: Option<ConnectionString>,
    /// The default hub first, then the other allowed hubs.
    pub hubs: Vec<String>,
}

impl Service {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let parse =
            |name: &str, value: &str| ConnectionString::parse(value).map_err(|e| ConfigError::new(name, e.to_string()));
        let primary = parse(CONNECTION_STRING, env.require(CONNECTION_STRING)?)?;
        let secondary = env
            .get(SECONDARY_CONNECTION_STRING)
            .map(|value| parse(SECONDARY_CONNECTION_STRING, value))
            .transpose()?;
        let mut hubs = vec![env.require(HUB)?.to_owned()];
        for hub in env.list(ALLOWED_HUBS) {
            if !hubs.iter().any(|known| known.eq_ignore_ascii_case(&hub)) {
                hubs.push(hub);
            }
        }
        for hub in &hubs {
            validate::hub(hub).map_err(|e| ConfigError::new(HUB, format!("{hub:?}: {e}")))?;
        }
        Ok(Self {
            primary,
            secondary,
            hubs,
        })
    }

    /// The primary key, plus the secondary connection string's key for rotation.
    pub fn keys(&self) -> ServiceKeys {
        let keys = ServiceKeys::new(self.primary.access_key().clone());
        match &self.secondary {
            Some(secondary) => keys.with_secondary(secondary.access_key().clone()),
            None => keys,
        }
    }

    /// Every configured endpoint.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        std::iter::once(self.primary.endpoint()).chain(self.secondary.as_ref().map(ConnectionString::endpoint))
    }
}

/// Whether an endpoint uses its scheme's default port (then the bare host is its origin).
pub fn has_default_port(endpoint: &Endpoint) -> bool {
    endpoint.port() == if endpoint.is_https() { 443 } else { 80 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "Endpoint=https://contoso.webpubsub.azure.com;AccessKey=primary-key-0123456789;Version=1.0;";
    const SECONDARY: &str = "Endpoint=http://127.0.0.1;Port=8080;AccessKey=secondary-key-0123456789;";

    #[test]
    fn reads_keys_endpoints_and_hubs() {
        let env = Env::from_pairs([
            (CONNECTION_STRING, PRIMARY),
            (SECONDARY_CONNECTION_STRING, SECONDARY),
            (HUB, "chat"),
            (ALLOWED_HUBS, "Chat, news"),
        ]);
        let service = Service::from_env(&env).unwrap();
        assert_eq!(service.hubs, ["chat", "news"]);
        assert!(service.keys().secondary().is_some());
        let endpoints: Vec<_> = service
            .endpoints()
            .map(|e| (e.host().to_owned(), has_default_port(e)))
            .collect();
        assert_eq!(
            endpoints,
            [
                ("contoso.webpubsub.azure.com".to_owned(), true),
                ("127.0.0.1".to_owned(), false)
            ]
        );
    }

    #[test]
    fn failures_name_the_setting_without_the_value() {
        let env = Env::from_pairs([
            (CONNECTION_STRING, "Endpoint=https://x;AccessKey=supersecret;"),
            (HUB, "chat"),
        ]);
        assert!(Service::from_env(&env).is_ok());
        let env = env.with(SECONDARY_CONNECTION_STRING, "AccessKey=supersecret2");
        let error = Service::from_env(&env).unwrap_err();
        assert_eq!(error.setting, SECONDARY_CONNECTION_STRING);
        assert!(!error.to_string().contains("supersecret2"));
        let env = Env::from_pairs([(CONNECTION_STRING, PRIMARY), (HUB, "1bad")]);
        assert_eq!(Service::from_env(&env).unwrap_err().setting, HUB);
    }
}
