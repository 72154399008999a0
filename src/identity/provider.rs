//! Where identity tokens come from and how each source is asked, chosen once at start-up from the
//! environment snapshot (no probing at run time):
//!
//! - App Service / Functions: `GET {IDENTITY_ENDPOINT}?resource=…&api-version=2019-08-01` with
//!   `X-IDENTITY-HEADER`, plus `client_id` or `mi_res_id` for a user-assigned identity. The header is read
//!   through a [`SecretSource`] on every request, because the platform rotates it.
//! - IMDS (VMs), when `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` are absent: `GET …/metadata/identity/oauth2/token
//!   ?api-version=2018-02-01&resource=…` with `Metadata: true`; `client_id` or `msi_res_id`.
//! - Service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`): client credentials at
//!   `{AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token`, scope `{resource}/.default`.
//! - Workload identity (`AZURE_FEDERATED_TOKEN_FILE` + tenant + client id): the same grant with the file's
//!   content (re-read every time: the platform rotates it) as `client_assertion`.
//!
//! The default chain (`__serviceUri` without `__credential`) takes the first of service principal, workload
//! identity and managed identity (user-assigned by `AZURE_CLIENT_ID` if set) whose settings are present.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use url::Url;

use super::settings::{IdentityCredential, ManagedIdentity};
use super::token::IdentityError;
use crate::config::{ConfigError, Env};

pub(crate) const APP_SERVICE_API_VERSION: &str = "2019-08-01";
pub(crate) const IMDS_API_VERSION: &str = "2018-02-01";
pub(crate) const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
pub(crate) const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Reads a secret that may change while the process runs (e.g. `IDENTITY_HEADER`). `None`: unset.
pub(crate) type SecretSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// A secret read from the process environment at each call: the one deliberate exception to reading the
/// environment once, for values the platform rotates under a running process.
pub(crate) fn process_env_secret(name: &'static str) -> SecretSource {
    Arc::new(move || std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// A client secret. `Debug` never shows it.
#[derive(Clone)]
pub struct ClientSecretValue(String);

impl ClientSecretValue {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
}

impl fmt::Debug for ClientSecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// One way of getting a token.
#[derive(Clone)]
pub enum Provider {
    AppService {
        endpoint: Url,
        header: SecretSource,
        identity: ManagedIdentity,
    },
    Imds {
        endpoint: Url,
        identity: ManagedIdentity,
    },
    ClientSecret {
        authority: Url,
        tenant_id: String,
        client_id: String,
        secret: ClientSecretValue,
    },
    WorkloadIdentity {
        authority: Url,
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AppService { endpoint, identity, .. } => f
                .debug_struct("AppService")
                .field("endpoint", &endpoint.as_str())
                .field("identity", identity)
                .finish_non_exhaustive(),
            Self::Imds { endpoint, identity } => f
                .debug_struct("Imds")
                .field("endpoint", &endpoint.as_str())
                .field("identity", identity)
                .finish(),
            Self::ClientSecret {
                tenant_id, client_id, ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
                ..
            } => f
                .debug_struct("WorkloadIdentity")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("token_file", token_file)
                .finish_non_exhaustive(),
        }
    }
}

impl Provider {
    /// The provider for `credential`. `identity_header` reads `IDENTITY_HEADER` (production:
    /// [`process_env_secret`]); it is only consulted when the snapshot says App Service.
    pub fn from_env(
        env: &Env,
        credential: &IdentityCredential,
        identity_header: SecretSource,
    ) -> Result<Self, ConfigError> {
        match credential {
            IdentityCredential::Managed(identity) => managed(env, identity.clone(), identity_header),
            IdentityCredential::DefaultChain => {
                let tenant = env.get("AZURE_TENANT_ID");
                let client = env.get("AZURE_CLIENT_ID");
                if let Some(secret) = env.get("AZURE_CLIENT_SECRET") {
                    return Ok(Self::ClientSecret {
                        authority: authority(env)?,
                        tenant_id: required_with(tenant, "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")?,
                        client_id: required_with(client, "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")?,
                        secret: ClientSecretValue::new(secret),
                    });
                }
                if let Some(file) = env.get("AZURE_FEDERATED_TOKEN_FILE") {
                    return Ok(Self::WorkloadIdentity {
                        authority: authority(env)?,
                        tenant_id: required_with(tenant, "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")?,
                        client_id: required_with(client, "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE")?,
                        token_file: PathBuf::from(file),
                    });
                }
                let identity = client.map_or(ManagedIdentity::System, |id| ManagedIdentity::ClientId(id.to_owned()));
                managed(env, identity, identity_header)
            }
        }
    }

    /// The request that asks for a token for `resource`.
    pub fn request(&self, client: &reqwest::Client, resource: &str) -> Result<reqwest::RequestBuilder, IdentityError> {
        match self {
            Self::AppService {
                endpoint,
                header,
                identity,
            } => {
                let header =
                    header().ok_or_else(|| IdentityError::Misconfigured("IDENTITY_HEADER is not set".into()))?;
                let mut url = endpoint.clone();
                url.query_pairs_mut()
                    .append_pair("resource", resource)
                    .append_pair("api-version", APP_SERVICE_API_VERSION);
                add_identity(&mut url, identity, "mi_res_id");
                Ok(client.get(url).header("X-IDENTITY-HEADER", header))
            }
            Self::Imds { endpoint, identity } => {
                let mut url = endpoint.clone();
                url.query_pairs_mut()
                    .append_pair("api-version", IMDS_API_VERSION)
                    .append_pair("resource", resource);
                add_identity(&mut url, identity, "msi_res_id");
                Ok(client.get(url).header("Metadata", "true"))
            }
            Self::ClientSecret {
                authority,
                tenant_id,
                client_id,
                secret,
            } => {
                let form = form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", &secret.0),
                    ("scope", &scope(resource)),
                ]);
                Ok(post_form(client, token_url(authority, tenant_id)?, form))
            }
            Self::WorkloadIdentity {
                authority,
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion = std::fs::read_to_string(token_file).map_err(|e| {
                    IdentityError::Misconfigured(format!("cannot read AZURE_FEDERATED_TOKEN_FILE: {}", e.kind()))
                })?;
                let form = form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                    ("client_assertion", assertion.trim()),
                    ("scope", &scope(resource)),
                ]);
                Ok(post_form(client, token_url(authority, tenant_id)?, form))
            }
        }
    }

    /// Whether IMDS's extra retryable statuses (404, 410: identity not ready yet) apply.
    pub fn is_imds(&self) -> bool {
        matches!(self, Self::Imds { .. })
    }
}

fn managed(env: &Env, identity: ManagedIdentity, identity_header: SecretSource) -> Result<Provider, ConfigError> {
    match env.get("IDENTITY_ENDPOINT") {
        Some(endpoint) => Ok(Provider::AppService {
            endpoint: Url::parse(endpoint).map_err(|_| ConfigError::new("IDENTITY_ENDPOINT", "is not a URL"))?,
            header: identity_header,
            identity,
        }),
        None => Ok(Provider::Imds {
            endpoint: Url::parse(env.get("AZURE_IMDS_ENDPOINT").unwrap_or(DEFAULT_IMDS_ENDPOINT))
                .map_err(|_| ConfigError::new("AZURE_IMDS_ENDPOINT", "is not a URL"))?,
            identity,
        }),
    }
}

fn authority(env: &Env) -> Result<Url, ConfigError> {
    let raw = env.get("AZURE_AUTHORITY_HOST").unwrap_or(DEFAULT_AUTHORITY_HOST);
    Url::parse(raw).map_err(|_| ConfigError::new("AZURE_AUTHORITY_HOST", "is not a URL"))
}

fn required_with(value: Option<&str>, name: &str, because: &str) -> Result<String, ConfigError> {
    value
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::new(name, format!("is required with {because}")))
}

fn add_identity(url: &mut Url, identity: &ManagedIdentity, resource_id_param: &str) {
    match identity {
        ManagedIdentity::System => {}
        ManagedIdentity::ClientId(id) => {
            url.query_pairs_mut().append_pair("client_id", id);
        }
        ManagedIdentity::ResourceId(id) => {
            url.query_pairs_mut().append_pair(resource_id_param, id);
        }
    }
}

fn scope(resource: &str) -> String {
    format!("{}/.default", resource.trim_end_matches('/'))
}

fn token_url(authority: &Url, tenant_id: &str) -> Result<Url, IdentityError> {
    let mut url = authority.clone();
    url.path_segments_mut()
        .map_err(|()| IdentityError::Misconfigured("AZURE_AUTHORITY_HOST cannot hold a path".into()))?
        .pop_if_empty()
        .extend([tenant_id, "oauth2", "v2.0", "token"]);
    Ok(url)
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn post_form(client: &reqwest::Client, url: Url, body: String) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webpubsub_protocol::WEBPUBSUB_RESOURCE;

    fn no_header() -> SecretSource {
        Arc::new(|| None)
    }

    fn provider(pairs: &[(&str, &str)], credential: IdentityCredential) -> Result<Provider, ConfigError> {
        Provider::from_env(&Env::from_pairs(pairs.iter().copied()), &credential, no_header())
    }

    #[test]
    fn managed_identity_prefers_app_service_then_imds() {
        let system = IdentityCredential::Managed(ManagedIdentity::System);
        let p = provider(
            &[("IDENTITY_ENDPOINT", "http://127.0.0.1:4141/MSI/token")],
            system.clone(),
        )
        .unwrap();
        assert!(matches!(p, Provider::AppService { .. }));
        let p = provider(&[], system.clone()).unwrap();
        assert!(matches!(&p, Provider::Imds { endpoint, .. } if endpoint.as_str() == DEFAULT_IMDS_ENDPOINT));
        assert!(p.is_imds());
        assert_eq!(
            provider(&[("IDENTITY_ENDPOINT", "::")], system).unwrap_err().setting,
            "IDENTITY_ENDPOINT"
        );
    }

    #[test]
    fn default_chain_order_and_requirements() {
        let chain = IdentityCredential::DefaultChain;
        let sp = [
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s3cret"),
        ];
        let p = provider(&sp, chain.clone()).unwrap();
        assert!(matches!(p, Provider::ClientSecret { .. }));
        assert!(!format!("{p:?}").contains("s3cret"));
        let wi = [
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ];
        assert!(matches!(
            provider(&wi, chain.clone()).unwrap(),
            Provider::WorkloadIdentity { .. }
        ));
        let e = provider(
            &[("AZURE_CLIENT_SECRET", "s3cret"), ("AZURE_CLIENT_ID", "c")],
            chain.clone(),
        )
        .unwrap_err();
        assert_eq!(e.setting, "AZURE_TENANT_ID");
        assert!(!e.to_string().contains("s3cret"));
        let p = provider(&[("AZURE_CLIENT_ID", "c")], chain).unwrap();
        assert!(matches!(p, Provider::Imds { identity: ManagedIdentity::ClientId(ref id), .. } if id == "c"));
    }

    #[test]
    fn app_service_request_shape() {
        let client = reqwest::Client::new();
        let header: SecretSource = Arc::new(|| Some("hdr".into()));
        let p = Provider::AppService {
            endpoint: Url::parse("http://127.0.0.1:4141/MSI/token").unwrap(),
            header,
            identity: ManagedIdentity::ResourceId("/sub/x".into()),
        };
        let request = p.request(&client, WEBPUBSUB_RESOURCE).unwrap().build().unwrap();
        assert_eq!(
            request.url().query(),
            Some("resource=https%3A%2F%2Fwebpubsub.azure.com&api-version=2019-08-01&mi_res_id=%2Fsub%2Fx")
        );
        assert_eq!(request.headers()["x-identity-header"], "hdr");
        let missing = Provider::AppService {
            endpoint: Url::parse("http://127.0.0.1:1/").unwrap(),
            header: no_header(),
            identity: ManagedIdentity::System,
        };
        assert!(matches!(
            missing.request(&client, WEBPUBSUB_RESOURCE),
            Err(IdentityError::Misconfigured(_))
        ));
    }

    #[test]
    fn client_secret_request_shape() {
        let p = Provider::ClientSecret {
            authority: Url::parse("http://127.0.0.1:9/").unwrap(),
            tenant_id: "tid".into(),
            client_id: "cid".into(),
            secret: ClientSecretValue::new("s&cret"),
        };
        let request = p
            .request(&reqwest::Client::new(), WEBPUBSUB_RESOURCE)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(request.url().as_str(), "http://127.0.0.1:9/tid/oauth2/v2.0/token");
        let body = std::str::from_utf8(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            "grant_type=client_credentials&client_id=cid&client_secret=s%26cret&scope=https%3A%2F%2Fwebpubsub.azure.com%2F.default"
        );
    }
}
