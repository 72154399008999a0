//! Which credential the handler uses towards Web PubSub, read the way the Functions extension (≥ 1.10)
//! names it, for one connection setting prefix (`WebPubSubConnectionString` or
//! `WebPubSubSecondaryConnectionString`):
//!
//! - `{prefix}` = a connection string. With `AccessKey` → key mode; without → identity mode with the
//!   default credential chain (the extension's `DefaultAzureCredential`).
//! - `{prefix}__serviceUri` (or `{prefix}:serviceUri`, as local.settings.json may spell it) → identity mode;
//!   `{prefix}__credential` = `managedidentity` picks a managed identity, user-assigned when
//!   `{prefix}__clientId` or `{prefix}__managedIdentityResourceId` (never both) names it; without
//!   `__credential` the default chain is used.
//!
//! Ambiguity is refused rather than guessed (a connection string and `__serviceUri` together, `__clientId`
//! without `__credential`, …). Errors name the setting and never quote a value. Bearer tokens are only sent
//! over https (http only to a loopback endpoint such as the local emulator).

use crate::config::{ConfigError, Env};
use webpubsub_protocol::connection_string::{ConnectionString, ConnectionStringError, ConnectionStringKey, Endpoint};

/// The extension's sub-setting names (after `__` or `:`).
pub(crate) const SERVICE_URI: &str = "serviceUri";
pub(crate) const CREDENTIAL: &str = "credential";
pub(crate) const CLIENT_ID: &str = "clientId";
pub(crate) const RESOURCE_ID: &str = "managedIdentityResourceId";

/// How the handler authenticates to one Web PubSub endpoint.
#[derive(Debug, Clone)]
pub enum ServiceCredential {
    /// A connection string with an access key: tokens and REST calls are signed with the key.
    AccessKey(ConnectionString),
    /// Keyless: REST calls carry an Entra bearer token for audience `https://webpubsub.azure.com`.
    Identity {
        endpoint: Endpoint,
        credential: IdentityCredential,
    },
}

impl ServiceCredential {
    /// The service endpoint, in either mode.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Self::AccessKey(connection) => connection.endpoint(),
            Self::Identity { endpoint, .. } => endpoint,
        }
    }

    /// Whether this is identity (keyless) mode.
    pub fn is_identity(&self) -> bool {
        matches!(self, Self::Identity { .. })
    }
}

/// Where identity tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityCredential {
    /// `__credential=managedidentity`: the platform's managed identity only.
    Managed(ManagedIdentity),
    /// No `__credential`: workload identity, then a service principal from `AZURE_*`, then managed identity
    /// (system-assigned, or `AZURE_CLIENT_ID`'s user-assigned one) — see [`super::source`].
    DefaultChain,
}

/// Which managed identity of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedIdentity {
    /// The system-assigned identity.
    System,
    /// A user-assigned identity by client id (`client_id` on the identity endpoint).
    ClientId(String),
    /// A user-assigned identity by ARM resource id (`mi_res_id`).
    ResourceId(String),
}

impl ServiceCredential {
    /// Reads the credential configured under `prefix`. `Ok(None)`: nothing is configured under it (the
    /// caller decides whether that is allowed: the primary is required, the secondary optional).
    pub fn from_env(env: &Env, prefix: &str) -> Result<Option<Self>, ConfigError> {
        let service_uri = sub_setting(env, prefix, SERVICE_URI)?;
        let credential = sub_setting(env, prefix, CREDENTIAL)?;
        let client_id = sub_setting(env, prefix, CLIENT_ID)?;
        let resource_id = sub_setting(env, prefix, RESOURCE_ID)?;
        if let Some(connection_string) = env.get(prefix) {
            if let Some((name, _)) = [&service_uri, &credential, &client_id, &resource_id]
                .into_iter()
                .flatten()
                .next()
            {
                return Err(ConfigError::new(
                    name.clone(),
                    format!("is set together with the connection string {prefix}; configure one or the other"),
                ));
            }
            return from_connection_string(prefix, connection_string).map(Some);
        }
        let Some((uri_name, uri)) = service_uri else {
            return match [&credential, &client_id, &resource_id].into_iter().flatten().next() {
                Some((name, _)) => Err(ConfigError::new(
                    format!("{prefix}__{SERVICE_URI}"),
                    format!("is required for identity mode ({name} is set)"),
                )),
                None => Ok(None),
            };
        };
        let endpoint = Endpoint::parse(&uri).map_err(|e| ConfigError::new(uri_name.clone(), e.to_string()))?;
        check_bearer_transport(&uri_name, &endpoint)?;
        let credential = match credential {
            None => {
                if let Some((name, _)) = client_id.as_ref().or(resource_id.as_ref()) {
                    return Err(ConfigError::new(
                        name.clone(),
                        format!("applies only with {prefix}__{CREDENTIAL}=managedidentity"),
                    ));
                }
                IdentityCredential::DefaultChain
            }
            Some((name, value)) if !value.eq_ignore_ascii_case("managedidentity") => {
                return Err(ConfigError::new(
                    name,
                    "must be managedidentity (or unset for the default chain)",
                ));
            }
            Some(_) => IdentityCredential::Managed(match (client_id, resource_id) {
                (Some(_), Some((name, _))) => {
                    return Err(ConfigError::new(
                        name,
                        format!("is set together with {prefix}__{CLIENT_ID}; name the identity one way only"),
                    ));
                }
                (Some((_, id)), None) => ManagedIdentity::ClientId(id),
                (None, Some((_, id))) => ManagedIdentity::ResourceId(id),
                (None, None) => ManagedIdentity::System,
            }),
        };
        Ok(Some(Self::Identity { endpoint, credential }))
    }
}

/// `{prefix}__{name}` or `{prefix}:{name}`: the name actually used and its value. Both spellings at once
/// is refused (they could disagree).
fn sub_setting(env: &Env, prefix: &str, name: &str) -> Result<Option<(String, String)>, ConfigError> {
    let underscored = format!("{prefix}__{name}");
    let coloned = format!("{prefix}:{name}");
    match (env.get(&underscored), env.get(&coloned)) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            underscored,
            format!("is set together with {coloned}; use one spelling"),
        )),
        (Some(value), None) => Ok(Some((underscored, value.to_owned()))),
        (None, Some(value)) => Ok(Some((coloned, value.to_owned()))),
        (None, None) => Ok(None),
    }
}

/// A connection string: key mode with `AccessKey`, identity mode (default chain) without.
fn from_connection_string(prefix: &str, value: &str) -> Result<ServiceCredential, ConfigError> {
    match ConnectionString::parse(value) {
        Ok(parsed) => Ok(ServiceCredential::AccessKey(parsed)),
        Err(ConnectionStringError::MissingKey(ConnectionStringKey::AccessKey)) => {
            let endpoint = keyless_endpoint(value).map_err(|e| ConfigError::new(prefix, e.to_string()))?;
            check_bearer_transport(prefix, &endpoint)?;
            Ok(keyless(endpoint))
        }
        Err(e) => Err(ConfigError::new(prefix, e.to_string())),
    }
}

/// Identity mode for a connection string that has no key: the extension uses the default chain then.
/// Takes the endpoint the connection string parser already produced.
pub(crate) fn keyless(endpoint: Endpoint) -> ServiceCredential {
    ServiceCredential::Identity {
        endpoint,
        credential: IdentityCredential::DefaultChain,
    }
}

/// The endpoint of a connection string known to lack `AccessKey`, parsed by the one connection string
/// parser (same `Endpoint`/`Port`/duplicate rules) by supplying a placeholder key that is then dropped.
fn keyless_endpoint(value: &str) -> Result<Endpoint, ConnectionStringError> {
    ConnectionString::parse(&format!("{value};AccessKey=unused-placeholder")).map(|parsed| parsed.into_parts().0)
}

/// Bearer tokens must not cross the network in clear text: https, or http to a loopback host.
fn check_bearer_transport(setting: &str, endpoint: &Endpoint) -> Result<(), ConfigError> {
    let host = endpoint.host().trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if endpoint.is_https() || loopback {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            "identity mode needs an https endpoint (http only for localhost)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "WebPubSubConnectionString";
    const URI: &str = "https://contoso.webpubsub.azure.com";

    fn read(pairs: &[(&str, &str)]) -> Result<Option<ServiceCredential>, ConfigError> {
        ServiceCredential::from_env(&Env::from_pairs(pairs.iter().copied()), P)
    }

    fn identity(pairs: &[(&str, &str)]) -> (Endpoint, IdentityCredential) {
        match read(pairs).unwrap().unwrap() {
            ServiceCredential::Identity { endpoint, credential } => (endpoint, credential),
            other => panic!("expected identity mode, got {other:?}"),
        }
    }

    fn error(pairs: &[(&str, &str)]) -> ConfigError {
        read(pairs).unwrap_err()
    }

    #[test]
    fn nothing_configured_is_none() {
        assert!(read(&[]).unwrap().is_none());
        assert!(read(&[("Other", "x")]).unwrap().is_none());
    }

    #[test]
    fn connection_string_with_key_is_key_mode() {
        let credential = read(&[(P, "Endpoint=https://a.webpubsub.azure.com;AccessKey=k3y;Version=1.0;")])
            .unwrap()
            .unwrap();
        assert!(matches!(credential, ServiceCredential::AccessKey(_)));
        assert!(!credential.is_identity());
        assert_eq!(credential.endpoint().host(), "a.webpubsub.azure.com");
    }

    #[test]
    fn connection_string_without_key_is_identity_with_default_chain() {
        let (endpoint, credential) = identity(&[(P, "Endpoint=https://a.webpubsub.azure.com;Version=1.0;")]);
        assert_eq!(endpoint.as_str(), "https://a.webpubsub.azure.com");
        assert_eq!(credential, IdentityCredential::DefaultChain);
        // The Port rule of the one parser applies.
        let (endpoint, _) = identity(&[(P, "Endpoint=http://127.0.0.1;Port=8080")]);
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:8080");
    }

    #[test]
    fn keyless_connection_string_must_be_https_unless_loopback() {
        let e = error(&[(P, "Endpoint=http://contoso.example;Version=1.0")]);
        assert_eq!(e.setting, P);
        assert!(e.problem.contains("https"), "{e}");
    }

    #[test]
    fn bad_connection_string_names_the_setting_not_the_value() {
        let e = error(&[(P, "Endpoint=ftp://x;AccessKey=supersecret")]);
        assert_eq!(e.setting, P);
        assert!(!e.to_string().contains("supersecret"));
        let e = error(&[(P, "Endpoint=https://x;AccessKey=")]);
        assert_eq!(e.setting, P);
    }

    #[test]
    fn service_uri_alone_is_the_default_chain() {
        let (endpoint, credential) = identity(&[("WebPubSubConnectionString__serviceUri", URI)]);
        assert_eq!(endpoint.as_str(), URI);
        assert_eq!(credential, IdentityCredential::DefaultChain);
    }

    #[test]
    fn colon_spelling_works_and_both_spellings_are_refused() {
        let (_, credential) = identity(&[
            ("WebPubSubConnectionString:serviceUri", URI),
            ("WebPubSubConnectionString:credential", "ManagedIdentity"),
        ]);
        assert_eq!(credential, IdentityCredential::Managed(ManagedIdentity::System));
        let e = error(&[
            ("WebPubSubConnectionString__serviceUri", URI),
            ("WebPubSubConnectionString:serviceUri", URI),
        ]);
        assert_eq!(e.setting, "WebPubSubConnectionString__serviceUri");
    }

    #[test]
    fn managed_identity_system_client_id_and_resource_id() {
        let base = [
            ("WebPubSubConnectionString__serviceUri", URI),
            ("WebPubSubConnectionString__credential", "managedidentity"),
        ];
        assert_eq!(identity(&base).1, IdentityCredential::Managed(ManagedIdentity::System));
        let with_client = [&base[..], &[("WebPubSubConnectionString__clientId", "c-1")]].concat();
        assert_eq!(
            identity(&with_client).1,
            IdentityCredential::Managed(ManagedIdentity::ClientId("c-1".into()))
        );
        let rid = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";
        let with_resource = [
            &base[..],
            &[("WebPubSubConnectionString__managedIdentityResourceId", rid)],
        ]
        .concat();
        assert_eq!(
            identity(&with_resource).1,
            IdentityCredential::Managed(ManagedIdentity::ResourceId(rid.into()))
        );
        let both = [
            &with_client[..],
            &[("WebPubSubConnectionString__managedIdentityResourceId", rid)],
        ]
        .concat();
        let e = error(&both);
        assert_eq!(e.setting, "WebPubSubConnectionString__managedIdentityResourceId");
        assert!(!e.to_string().contains("userAssignedIdentities"));
    }

    #[test]
    fn misconfigurations_name_the_setting() {
        let e = error(&[
            ("WebPubSubConnectionString__serviceUri", URI),
            ("WebPubSubConnectionString__credential", "clientsecret"),
        ]);
        assert_eq!(e.setting, "WebPubSubConnectionString__credential");
        assert!(!e.to_string().contains("clientsecret"));
        let e = error(&[
            ("WebPubSubConnectionString__serviceUri", URI),
            ("WebPubSubConnectionString__clientId", "c-1"),
        ]);
        assert_eq!(e.setting, "WebPubSubConnectionString__clientId");
        let e = error(&[("WebPubSubConnectionString__credential", "managedidentity")]);
        assert_eq!(e.setting, "WebPubSubConnectionString__serviceUri");
        let e = error(&[
            (P, "Endpoint=https://a;AccessKey=k"),
            ("WebPubSubConnectionString__serviceUri", URI),
        ]);
        assert_eq!(e.setting, "WebPubSubConnectionString__serviceUri");
        let e = error(&[("WebPubSubConnectionString__serviceUri", "http://contoso.example")]);
        assert_eq!(e.setting, "WebPubSubConnectionString__serviceUri");
        let e = error(&[("WebPubSubConnectionString__serviceUri", "ftp://contoso.example")]);
        assert_eq!(e.setting, "WebPubSubConnectionString__serviceUri");
    }

    #[test]
    fn loopback_http_is_allowed_for_the_emulator() {
        let (endpoint, _) = identity(&[("WebPubSubConnectionString__serviceUri", "http://localhost:8080")]);
        assert_eq!(endpoint.port(), 8080);
    }

    #[test]
    fn secondary_prefix_is_read_the_same_way() {
        let env = Env::from_pairs([("WebPubSubSecondaryConnectionString__serviceUri", URI)]);
        let secondary = ServiceCredential::from_env(&env, "WebPubSubSecondaryConnectionString").unwrap();
        assert!(secondary.unwrap().is_identity());
        assert!(ServiceCredential::from_env(&env, P).unwrap().is_none());
    }
}
