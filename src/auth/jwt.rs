//! Bearer-token callers: `Authorization: Bearer <JWT>` validated with `jsonwebtoken` against a configured
//! issuer and audience, signed either with a shared HS256 secret or with the identity provider's RS256 keys
//! (JWKS URL, see [`super::jwks`]).
//!
//! Settings (shared by every function that accepts bearer tokens):
//! - `AuthJwtIssuer` (required): accepted `iss` values, comma-separated.
//! - `AuthJwtAudience` (required): accepted `aud` values, comma-separated.
//! - `AuthJwtSecret`: the HS256 secret (its UTF-8 bytes, at least 32 bytes). Exactly one of this and
//!   `AuthJwksUrl` must be set.
//! - `AuthJwksUrl`: the provider's JWKS document (https; http only for loopback), for RS256.
//! - `AuthUserIdClaim` (default `sub`): the claim holding the user id; it must be a string.
//! - `AuthJwtLeewaySeconds` (default 60, at most 300): clock skew allowed on `exp` and `nbf`.
//!
//! Tokens must carry `exp`, `iss` and `aud`; `nbf` is checked when present; only the configured algorithm is
//! accepted (no `none`, no HS/RS confusion).

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use url::Url;
use warp::http::HeaderMap;
use warp::http::header::AUTHORIZATION;

use super::AuthError;
use super::jwks::{JwksCache, JwksOptions};
use super::user_id::validate_user_id;
use crate::config::{ConfigError, Env};

pub(crate) const ISSUER_SETTING: &str = "AuthJwtIssuer";
pub(crate) const AUDIENCE_SETTING: &str = "AuthJwtAudience";
pub(crate) const SECRET_SETTING: &str = "AuthJwtSecret";
pub(crate) const JWKS_URL_SETTING: &str = "AuthJwksUrl";
pub(crate) const USER_ID_CLAIM_SETTING: &str = "AuthUserIdClaim";
pub(crate) const LEEWAY_SETTING: &str = "AuthJwtLeewaySeconds";

/// Every `Auth*` setting name, to tell whether bearer-token auth is configured at all.
pub(crate) const SETTINGS: [&str; 6] = [
    ISSUER_SETTING,
    AUDIENCE_SETTING,
    SECRET_SETTING,
    JWKS_URL_SETTING,
    USER_ID_CLAIM_SETTING,
    LEEWAY_SETTING,
];

/// Shortest HS256 secret accepted: the hash size, as RFC 7518 §3.2 requires.
pub(crate) const MIN_SECRET_BYTES: usize = 32;
const DEFAULT_LEEWAY_SECS: u64 = 60;
const MAX_LEEWAY_SECS: u64 = 300;

/// The HS256 secret. `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct JwtSecret(String);

impl JwtSecret {
    /// The secret itself, for building the verification key. Never log it.
    pub(crate) fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// Where verification keys come from.
#[derive(Clone)]
pub(crate) enum JwtKeySource {
    /// HS256 with a shared secret.
    Secret(JwtSecret),
    /// RS256 with keys published at a JWKS URL.
    Jwks(Url),
}

impl fmt::Debug for JwtKeySource {
    // The URL may carry credentials (user info or a query key): show it redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(secret) => f.debug_tuple("Secret").field(secret).finish(),
            Self::Jwks(url) => f.debug_tuple("Jwks").field(&super::jwks::redacted(url)).finish(),
        }
    }
}

/// Validated bearer-token settings.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Accepted `iss` values.
    pub(crate) issuers: Vec<String>,
    /// Accepted `aud` values.
    pub(crate) audiences: Vec<String>,
    /// Where the verification keys come from.
    pub(crate) key: JwtKeySource,
    /// The claim that carries the caller's user id.
    pub(crate) user_id_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub(crate) leeway_secs: u64,
}

impl JwtSettings {
    /// Reads the `Auth*` settings; all required ones must be present and consistent. `purpose` names what
    /// needs them (e.g. "NegotiateIdentity=jwt"), so the error tells the operator why.
    pub fn from_env(env: &Env, purpose: &str) -> Result<Self, ConfigError> {
        let required_list = |name: &str| {
            let values = env.list(name);
            if values.is_empty() {
                Err(ConfigError::new(
                    name,
                    format!("is required with {purpose}; set it to the accepted value(s), comma-separated"),
                ))
            } else {
                Ok(values)
            }
        };
        let issuers = required_list(ISSUER_SETTING)?;
        let audiences = required_list(AUDIENCE_SETTING)?;
        let key = match (env.get(SECRET_SETTING), env.get(JWKS_URL_SETTING)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    JWKS_URL_SETTING,
                    format!("is set together with {SECRET_SETTING}; set only one (HS256 secret or RS256 JWKS URL)"),
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    SECRET_SETTING,
                    format!("{purpose} needs a key: set {SECRET_SETTING} (HS256) or {JWKS_URL_SETTING} (RS256)"),
                ));
            }
            (Some(secret), None) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(ConfigError::new(
                        SECRET_SETTING,
                        format!("must be at least {MIN_SECRET_BYTES} bytes long"),
                    ));
                }
                JwtKeySource::Secret(JwtSecret(secret.to_owned()))
            }
            (None, Some(url)) => JwtKeySource::Jwks(parse_jwks_url(JWKS_URL_SETTING, url)?),
        };
        let user_id_claim = env.get(USER_ID_CLAIM_SETTING).unwrap_or("sub").to_owned();
        let leeway_secs = env.parse_or(LEEWAY_SETTING, DEFAULT_LEEWAY_SECS)?;
        if leeway_secs > MAX_LEEWAY_SECS {
            return Err(ConfigError::new(
                LEEWAY_SETTING,
                format!("must be at most {MAX_LEEWAY_SECS} seconds"),
            ));
        }
        Ok(Self {
            issuers,
            audiences,
            key,
            user_id_claim,
            leeway_secs,
        })
    }

    /// Whether any `Auth*` setting is present (a function where bearer auth is optional checks this first).
    pub fn is_configured(env: &Env) -> bool {
        SETTINGS.iter().any(|name| env.get(name).is_some())
    }
}

/// The JWKS address in `setting`: https, or http to a loopback host (a local issuer in tests and dev).
/// Shared with the Entra check of upstream requests.
pub(crate) fn parse_jwks_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::new(setting, format!("is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(ConfigError::new(
            setting,
            "must be an https URL (http is allowed only for localhost)",
        )),
    }
}

/// A bearer token that passed validation.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The value of the configured user-id claim, validated.
    pub user_id: String,
    /// All claims, for extra checks (roles, scopes, tenant).
    pub claims: Map<String, Value>,
}

impl VerifiedToken {
    /// App roles and scopes the token grants: the `roles` and `role` claims (string or array of strings)
    /// and the space-separated `scp` claim.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        let listed = ["roles", "role"]
            .into_iter()
            .flat_map(|name| string_values(self.claims.get(name)));
        let scopes = self
            .claims
            .get("scp")
            .and_then(Value::as_str)
            .into_iter()
            .flat_map(str::split_whitespace);
        listed.chain(scopes)
    }

    /// Whether [`VerifiedToken::roles`] includes `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }
}

fn string_values(value: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match value {
        Some(Value::String(one)) => Box::new(std::iter::once(one.as_str())),
        Some(Value::Array(many)) => Box::new(many.iter().filter_map(Value::as_str)),
        _ => Box::new(std::iter::empty()),
    }
}

/// Validates bearer tokens. Built once at start-up; cheap to share.
#[derive(Debug)]
pub struct JwtValidator {
    validation: Validation,
    keys: Keys,
    user_id_claim: String,
}

enum Keys {
    Secret(DecodingKey),
    // Boxed: the cache (client, locks) is much larger than a key.
    Jwks(Box<JwksCache>),
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keys::Secret(_) => f.write_str("Secret(<redacted>)"),
            Keys::Jwks(cache) => f.debug_tuple("Jwks").field(cache).finish(),
        }
    }
}

impl JwtValidator {
    /// A validator for `settings` with the default JWKS cache tuning.
    pub fn new(settings: &JwtSettings) -> anyhow::Result<Self> {
        Self::with_jwks_options(settings, JwksOptions::default())
    }

    /// A validator with explicit JWKS cache tuning (tests shorten the refresh interval).
    pub fn with_jwks_options(settings: &JwtSettings, options: JwksOptions) -> anyhow::Result<Self> {
        let (algorithm, keys) = match &settings.key {
            JwtKeySource::Secret(secret) => (
                Algorithm::HS256,
                Keys::Secret(DecodingKey::from_secret(secret.expose_secret().as_bytes())),
            ),
            JwtKeySource::Jwks(url) => (
                Algorithm::RS256,
                Keys::Jwks(Box::new(JwksCache::new(url.clone(), options)?)),
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&settings.issuers);
        validation.set_audience(&settings.audiences);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_secs;
        Ok(Self {
            validation,
            keys,
            user_id_claim: settings.user_id_claim.clone(),
        })
    }

    /// Validates the `Authorization: Bearer` token of a request.
    pub async fn validate_request(&self, headers: &HeaderMap) -> Result<VerifiedToken, AuthError> {
        self.validate(bearer_token(headers)?).await
    }

    /// Validates one token: algorithm, signature, `exp`/`nbf`, issuer, audience, then the user-id claim.
    pub async fn validate(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| rejected(e.kind()))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(rejected(&ErrorKind::InvalidAlgorithm));
        }
        let data = match &self.keys {
            Keys::Secret(key) => jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation),
            Keys::Jwks(cache) => {
                let key = cache.key_for(header.kid.as_deref()).await?;
                jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            }
        }
        .map_err(|e| rejected(e.kind()))?;
        let claims = data.claims;
        // jsonwebtoken also accepts an array of issuers; RFC 7519 and every provider send one string.
        if !matches!(claims.get("iss"), Some(Value::String(_))) {
            return Err(AuthError::InvalidCredentials(
                "the bearer token's issuer (iss) must be one string".into(),
            ));
        }
        let user_id = match claims.get(&self.user_id_claim) {
            Some(Value::String(id)) => id,
            Some(_) => {
                return Err(AuthError::InvalidCredentials(format!(
                    "the bearer token's {} claim is not a string",
                    self.user_id_claim
                )));
            }
            None => {
                return Err(AuthError::InvalidCredentials(format!(
                    "the bearer token has no {} claim to take the user id from",
                    self.user_id_claim
                )));
            }
        };
        validate_user_id(user_id).map_err(|e| {
            AuthError::InvalidCredentials(format!(
                "the bearer token's {} claim is not a usable user id: {e}",
                self.user_id_claim
            ))
        })?;
        Ok(VerifiedToken {
            user_id: user_id.clone(),
            claims,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(AuthError::MissingCredentials("an Authorization: Bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidCredentials("the Authorization header is not visible ASCII".into()))?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::InvalidCredentials(
            "the Authorization header must use the Bearer scheme".into(),
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MissingCredentials("an Authorization: Bearer token"));
    }
    Ok(token)
}

/// A caller-facing reason for a rejected token; never quotes the token.
fn rejected(kind: &ErrorKind) -> AuthError {
    let reason = match kind {
        ErrorKind::ExpiredSignature => "the bearer token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the bearer token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidSignature => "the bearer token's signature is invalid".to_owned(),
        ErrorKind::InvalidIssuer => "the bearer token's issuer (iss) is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "the bearer token's audience (aud) is not accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the bearer token lacks the required claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the bearer token's {claim} claim has the wrong type"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the bearer token is not signed with the expected algorithm".to_owned()
        }
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "the bearer token is not a well-formed JWT".to_owned()
        }
        _ => "the bearer token was rejected".to_owned(),
    };
    AuthError::InvalidCredentials(reason)
}

#[cfg(test)]
mod tests;
