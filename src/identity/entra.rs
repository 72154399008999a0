//! The Entra bearer check of upstream event requests: the Web PubSub service's managed identity sends
//! `Authorization: Bearer` when the event handler has authentication turned on, and this proves the request
//! comes from *that* identity, not merely from some principal of the tenant.
//!
//! Settings (all or none; [`EntraSettings::from_env`]):
//! - `EventsEntraAudience`: accepted `aud` value(s), comma-separated (app ID URI and/or client id).
//! - `EventsEntraTenantId`: the tenant; issuers `https://sts.windows.net/{tid}/` (v1 tokens) and
//!   `https://login.microsoftonline.com/{tid}/v2.0` (v2), chosen by the token's `ver`.
//! - `EventsEntraAllowedClientIds`: the client id(s) of the Web PubSub identity, comma-separated, matched
//!   against `appid` (v1) or `azp` (v2).
//! - `EventsEntraJwksUrl`: default `https://login.microsoftonline.com/{tid}/discovery/v2.0/keys`.
//!
//! Order: header → algorithm (RS256 only: `none` and HS256 confusion fail before any key is looked up) → key
//! by `kid` (the shared [`JwksCache`]: refreshed daily, and on an unknown `kid` at most every 5 minutes) →
//! signature, `exp`/`nbf`, `aud` → `iss` for the token's `ver` → client id. Claims are trusted only after
//! the signature. Every refusal is an [`EntraError`] answered 401; an unreachable key set is 503.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use url::Url;
use warp::http::{HeaderMap, StatusCode};

use crate::auth::AuthError;
use crate::auth::jwks::{JwksCache, JwksOptions};
use crate::auth::jwt::{bearer_token, parse_jwks_url};
use crate::config::{ConfigError, Env};
use crate::error::ApiError;

pub(crate) const AUDIENCE_SETTING: &str = "EventsEntraAudience";
pub(crate) const TENANT_SETTING: &str = "EventsEntraTenantId";
pub(crate) const CLIENT_IDS_SETTING: &str = "EventsEntraAllowedClientIds";
pub(crate) const JWKS_URL_SETTING: &str = "EventsEntraJwksUrl";
const SETTINGS: [&str; 4] = [AUDIENCE_SETTING, TENANT_SETTING, CLIENT_IDS_SETTING, JWKS_URL_SETTING];

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;

/// Validated Entra check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntraSettings {
    pub audiences: Vec<String>,
    pub tenant_id: String,
    pub allowed_client_ids: Vec<String>,
    pub jwks_url: Url,
}

impl EntraSettings {
    /// `Ok(None)` when no `EventsEntra*` setting is present; otherwise all required ones must be.
    pub(crate) fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        if SETTINGS.iter().all(|name| env.get(name).is_none()) {
            return Ok(None);
        }
        let required_list = |name: &str| {
            let values = env.list(name);
            if values.is_empty() {
                Err(ConfigError::new(
                    name,
                    "is required for the Entra check of upstream events",
                ))
            } else {
                Ok(values)
            }
        };
        let audiences = required_list(AUDIENCE_SETTING)?;
        let tenant_id = env
            .get(TENANT_SETTING)
            .ok_or_else(|| ConfigError::new(TENANT_SETTING, "is required for the Entra check of upstream events"))?;
        if tenant_id.len() > 64
            || !tenant_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(ConfigError::new(
                TENANT_SETTING,
                "must be a tenant id (letters, digits, '-', '.')",
            ));
        }
        let allowed_client_ids = required_list(CLIENT_IDS_SETTING)?;
        let jwks_url = match env.get(JWKS_URL_SETTING) {
            Some(raw) => parse_jwks_url(JWKS_URL_SETTING, raw)?,
            None => Url::parse(&format!(
                "https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys"
            ))
            .map_err(|_| ConfigError::new(TENANT_SETTING, "does not make a valid key set URL"))?,
        };
        Ok(Some(Self {
            audiences,
            tenant_id: tenant_id.to_owned(),
            allowed_client_ids,
            jwks_url,
        }))
    }

    /// The issuer a token of version `ver` must carry.
    fn issuer_for(&self, ver: &str) -> Option<String> {
        match ver {
            "1.0" => Some(format!("https://sts.windows.net/{}/", self.tenant_id)),
            "2.0" => Some(format!("https://login.microsoftonline.com/{}/v2.0", self.tenant_id)),
            _ => None,
        }
    }
}

/// Why an upstream request's bearer token was refused (401), or could not be checked (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntraError {
    #[error("the upstream request carries no Authorization: Bearer token")]
    Missing,
    #[error("the upstream bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the upstream bearer token is not signed with RS256")]
    WrongAlgorithm,
    #[error("the upstream bearer token is signed with a key the tenant does not publish")]
    UnknownKey,
    #[error("the upstream bearer token's signature is invalid")]
    BadSignature,
    #[error("the upstream bearer token has expired")]
    Expired,
    #[error("the upstream bearer token is not valid yet")]
    NotYetValid,
    #[error("the upstream bearer token's audience is not accepted")]
    WrongAudience,
    #[error("the upstream bearer token was not issued by the configured tenant")]
    WrongIssuer,
    #[error("the upstream bearer token was not issued to an allowed client")]
    WrongClient,
    #[error("the tenant's signing keys cannot be fetched; retry later")]
    KeysUnavailable { retry_after_secs: u64 },
}

impl EntraError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<EntraError> for ApiError {
    fn from(error: EntraError) -> Self {
        match error {
            EntraError::KeysUnavailable { retry_after_secs } => {
                ApiError::new(error.status(), "IdentityProviderUnavailable", error.to_string())
                    .with_retry_after(retry_after_secs)
            }
            _ => ApiError::unauthorized(error.to_string()),
        }
    }
}

/// Checks upstream bearer tokens. Build once at start-up; share.
#[derive(Debug)]
pub(crate) struct EntraValidator {
    settings: EntraSettings,
    keys: JwksCache,
    validation: Validation,
}

impl EntraValidator {
    /// Key set tuning for Entra: refreshed daily, unknown-`kid` refreshes at most every 5 minutes.
    pub(crate) fn default_jwks_options() -> JwksOptions {
        JwksOptions {
            max_age: Duration::from_secs(24 * 60 * 60),
            min_refresh_interval: Duration::from_secs(5 * 60),
            ..JwksOptions::default()
        }
    }

    pub(crate) fn new(settings: EntraSettings) -> anyhow::Result<Self> {
        Self::with_jwks_options(settings, Self::default_jwks_options())
    }

    pub(crate) fn with_jwks_options(settings: EntraSettings, options: JwksOptions) -> anyhow::Result<Self> {
        let keys = JwksCache::new(settings.jwks_url.clone(), options)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.set_audience(&settings.audiences);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            settings,
            keys,
            validation,
        })
    }

    /// Checks the `Authorization` header of an upstream request.
    pub(crate) async fn validate_request(&self, headers: &HeaderMap) -> Result<(), EntraError> {
        let token = bearer_token(headers).map_err(|e| match e {
            AuthError::MissingCredentials(_) => EntraError::Missing,
            _ => EntraError::Malformed,
        })?;
        self.validate(token).await
    }

    /// Checks one token (see the module documentation for the order). The `events` route needs only the
    /// verdict.
    pub(crate) async fn validate(&self, token: &str) -> Result<(), EntraError> {
        self.verified_claims(token).await.map(drop)
    }

    /// The claims of an accepted token, for tests to see what a check proved.
    #[cfg(test)]
    pub(crate) async fn claims(&self, token: &str) -> Result<Map<String, Value>, EntraError> {
        self.verified_claims(token).await
    }

    /// Checks one token and answers its claims; the caller's client id (`appid` in v1, `azp` in v2) is
    /// one of the allowed.
    async fn verified_claims(&self, token: &str) -> Result<Map<String, Value>, EntraError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| match stated_algorithm(token) {
            // jsonwebtoken does not parse `none` (or other unknown names) at all.
            Some(alg) if alg != "RS256" => EntraError::WrongAlgorithm,
            _ => EntraError::Malformed,
        })?;
        if header.alg != Algorithm::RS256 {
            return Err(EntraError::WrongAlgorithm);
        }
        let key = self.keys.key_for(header.kid.as_deref()).await.map_err(|e| match e {
            AuthError::IdentityProviderUnavailable { retry_after_secs } => {
                EntraError::KeysUnavailable { retry_after_secs }
            }
            _ => EntraError::UnknownKey,
        })?;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(|e| refused(e.kind()))?
            .claims;
        let version = claims.get("ver").and_then(Value::as_str).unwrap_or("1.0");
        let expected_issuer = self.settings.issuer_for(version).ok_or(EntraError::WrongIssuer)?;
        if claims.get("iss").and_then(Value::as_str) != Some(expected_issuer.as_str()) {
            return Err(EntraError::WrongIssuer);
        }
        let client_claim = if version == "1.0" { "appid" } else { "azp" };
        let client_id = claims.get(client_claim).and_then(Value::as_str);
        let allowed = client_id.is_some_and(|id| {
            self.settings
                .allowed_client_ids
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(id))
        });
        if !allowed {
            return Err(EntraError::WrongClient);
        }
        Ok(claims)
    }
}

/// The `alg` a token's header states, read without trusting anything else in it.
fn stated_algorithm(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

fn refused(kind: &ErrorKind) -> EntraError {
    match kind {
        ErrorKind::ExpiredSignature => EntraError::Expired,
        ErrorKind::ImmatureSignature => EntraError::NotYetValid,
        ErrorKind::InvalidSignature => EntraError::BadSignature,
        ErrorKind::InvalidAudience => EntraError::WrongAudience,
        ErrorKind::InvalidIssuer => EntraError::WrongIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
            EntraError::WrongAlgorithm
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => EntraError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => EntraError::WrongIssuer,
        _ => EntraError::Malformed,
    }
}

#[cfg(test)]
#[path = "entra_tests.rs"]
mod tests;
