//! The Web PubSub service this app fronts, as configured: its connection string(s) and the hubs it serves,
//! read once from the environment snapshot. [`Hubs`] is the one hub resolver every function uses: the
//! default hub when a request names none, otherwise the configured spelling of a served hub (names compare
//! ignoring ASCII case, as the service does).

use std::sync::Arc;

use crate::config::{ConfigError, Env};
use crate::identity::{SecretSource, ServiceCredential, TokenOptions, TokenSource};

use super::validate::{self, ValidationError};
use super::{AccessKey, Endpoint, ServiceKeys};

pub(crate) const PRIMARY_SETTING: &str = "WebPubSubConnectionString";
pub(crate) const SECONDARY_SETTING: &str = "WebPubSubSecondaryConnectionString";

/// The Web PubSub service the handler fronts: how the handler authenticates to it (key or identity mode,
/// see `identity::settings`) and the hubs this app serves.
///
/// `WebPubSubSecondaryConnectionString` carries the other access key during key rotation: upstream
/// signatures made with either key are accepted and either endpoint's host may validate the webhook;
/// tokens and REST calls always use the primary. In identity mode ([`ServiceSettings::identity`]) REST
/// calls carry an Entra token from the one shared `TokenSource` and client tokens come from the service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// `WebPubSubConnectionString`: signs tokens and REST calls.
    pub primary: ServiceCredential,
    /// `WebPubSubSecondaryConnectionString`: the other key during rotation; only upstream checks use it.
    pub secondary: Option<ServiceCredential>,
    /// The default hub (`WebPubSubHub`) first, then `WebPubSubAllowedHubs`, without duplicates.
    pub hubs: Hubs,
    /// Identity mode only: the token source every REST client shares (one cache, one refresh in flight).
    pub identity: Option<Arc<TokenSource>>,
}

impl ServiceSettings {
    /// Reads the service settings; `IDENTITY_HEADER` (rotated by the platform) is re-read from the process
    /// environment on every token refresh, falling back to the snapshot's value.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let snapshot = env.get("IDENTITY_HEADER").map(str::to_owned);
        let process = crate::identity::process_env_secret("IDENTITY_HEADER");
        let header: SecretSource = Arc::new(move || process().or_else(|| snapshot.clone()));
        Self::from_env_with(env, header, TokenOptions::default())
    }

    /// [`ServiceSettings::from_env`] with the identity header source and token tuning given (tests).
    pub fn from_env_with(env: &Env, identity_header: SecretSource, options: TokenOptions) -> Result<Self, ConfigError> {
        let primary = ServiceCredential::from_env(env, PRIMARY_SETTING)?.ok_or_else(|| {
            ConfigError::new(
                PRIMARY_SETTING,
                format!("is required but not set (or set {PRIMARY_SETTING}__serviceUri for identity mode)"),
            )
        })?;
        let secondary = ServiceCredential::from_env(env, SECONDARY_SETTING)?;
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
        let identity = match &primary {
            ServiceCredential::Identity { credential, .. } => {
                let source = TokenSource::for_webpubsub(env, credential, identity_header, options)
                    .map_err(|e| ConfigError::new(PRIMARY_SETTING, format!("identity mode cannot start: {e}")))?;
                Some(Arc::new(source))
            }
            ServiceCredential::AccessKey(_) => None,
        };
        Ok(Self {
            primary,
            secondary,
            hubs: Hubs::new(hubs),
            identity,
        })
    }

    /// The default hub.
    pub fn hub(&self) -> &str {
        self.hubs.default_hub()
    }

    /// Whether the handler runs keyless towards the service (REST with identity tokens).
    pub fn is_identity_mode(&self) -> bool {
        self.identity.is_some()
    }

    /// The primary access key (key mode only).
    pub fn primary_key(&self) -> Option<&AccessKey> {
        match &self.primary {
            ServiceCredential::AccessKey(connection) => Some(connection.access_key()),
            ServiceCredential::Identity { .. } => None,
        }
    }

    /// Every configured access key for upstream signatures, primary first; `None` when no key is
    /// configured at all (identity mode on both connections).
    pub fn keys(&self) -> Option<ServiceKeys> {
        let mut keys = std::iter::once(&self.primary)
            .chain(self.secondary.as_ref())
            .filter_map(|credential| match credential {
                ServiceCredential::AccessKey(connection) => Some(connection.access_key().clone()),
                ServiceCredential::Identity { .. } => None,
            });
        let first = ServiceKeys::new(keys.next()?);
        Some(match keys.next() {
            Some(second) => first.with_secondary(second),
            None => first,
        })
    }

    /// Every configured endpoint, primary first.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        std::iter::once(self.primary.endpoint()).chain(self.secondary.as_ref().map(ServiceCredential::endpoint))
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
        assert!(service.keys().unwrap().secondary().is_some());
        assert!(!service.is_identity_mode());
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

    #[test]
    fn identity_mode_from_service_uri_or_a_keyless_connection_string() {
        let base = [
            ("WebPubSubHub", "chat"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
        ];
        for primary in [
            (
                "WebPubSubConnectionString__serviceUri",
                "https://contoso.webpubsub.azure.com",
            ),
            (
                "WebPubSubConnectionString",
                "Endpoint=https://contoso.webpubsub.azure.com;Version=1.0;",
            ),
        ] {
            let env = Env::from_pairs(base.into_iter().chain([primary]));
            let service = ServiceSettings::from_env(&env).unwrap();
            assert!(service.is_identity_mode(), "{primary:?}");
            assert!(service.keys().is_none() && service.primary_key().is_none());
            assert_eq!(service.endpoints().count(), 1);
        }
        // A keyed secondary still signs events during a move to identity mode.
        let env = Env::from_pairs(base.into_iter().chain([
            (
                "WebPubSubConnectionString__serviceUri",
                "https://contoso.webpubsub.azure.com",
            ),
            ("WebPubSubSecondaryConnectionString", SECONDARY),
        ]));
        let service = ServiceSettings::from_env(&env).unwrap();
        assert!(service.is_identity_mode() && service.keys().is_some());
    }

    #[test]
    fn identity_misconfiguration_names_the_setting() {
        let env = Env::from_pairs([
            ("WebPubSubHub", "chat"),
            (
                "WebPubSubConnectionString__serviceUri",
                "https://contoso.webpubsub.azure.com",
            ),
            ("WebPubSubConnectionString__clientId", "secret-looking-client"),
        ]);
        let error = ServiceSettings::from_env(&env).unwrap_err();
        assert_eq!(error.setting, "WebPubSubConnectionString__clientId");
        assert!(!error.to_string().contains("secret-looking-client"));
        let env = Env::from_pairs([
            ("WebPubSubHub", "chat"),
            ("WebPubSubConnectionString", PRIMARY),
            ("WebPubSubSecondaryConnectionString__credential", "managedidentity"),
        ]);
        assert_eq!(
            ServiceSettings::from_env(&env).unwrap_err().setting,
            "WebPubSubSecondaryConnectionString__serviceUri"
        );
    }
}
