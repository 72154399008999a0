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

pub const ISSUER_SETTING: &str = "AuthJwtIssuer";
pub const AUDIENCE_SETTING: &str = "AuthJwtAudience";
pub const SECRET_SETTING: &str = "AuthJwtSecret";
pub const JWKS_URL_SETTING: &str = "AuthJwksUrl";
pub const USER_ID_CLAIM_SETTING: &str = "AuthUserIdClaim";
pub const LEEWAY_SETTING: &str = "AuthJwtLeewaySeconds";

/// Every `Auth*` setting name, to tell whether bearer-token auth is configured at all.
pub const SETTINGS: [&str; 6] = [
    ISSUER_SETTING,
    AUDIENCE_SETTING,
    SECRET_SETTING,
    JWKS_URL_SETTING,
    USER_ID_CLAIM_SETTING,
    LEEWAY_SETTING,
];

/// Shortest HS256 secret accepted: the hash size, as RFC 7518 §3.2 requires.
pub const MIN_SECRET_BYTES: usize = 32;
const DEFAULT_LEEWAY_SECS: u64 = 60;
const MAX_LEEWAY_SECS: u64 = 300;

/// The HS256 secret. `Debug` never shows it.
#[derive(Clone)]
pub struct JwtSecret(String);

impl JwtSecret {
    /// The secret itself, for building the verification key. Never log it.
    pub fn expose_secret(&self) -> &str {
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
pub enum JwtKeySource {
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
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub key: JwtKeySource,
    pub user_id_claim: String,
    pub leeway_secs: u64,
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
            (None, Some(url)) => JwtKeySource::Jwks(parse_jwks_url(url)?),
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

fn parse_jwks_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::new(JWKS_URL_SETTING, format!("is not a URL: {e}")))?;
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
            JWKS_URL_SETTING,
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
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
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
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::super::test_support::*;
    use super::*;

    const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

    fn hs_env() -> Env {
        Env::from_pairs([
            (ISSUER_SETTING, "https://issuer.example"),
            (AUDIENCE_SETTING, "api://negotiate, api://other"),
            (SECRET_SETTING, SECRET),
        ])
    }

    fn hs_validator() -> JwtValidator {
        JwtValidator::new(&JwtSettings::from_env(&hs_env(), "test").unwrap()).unwrap()
    }

    fn hs_token(claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn good_claims() -> Value {
        json!({"iss": "https://issuer.example", "aud": "api://negotiate", "sub": "ada", "exp": now() + 300})
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    async fn reason(validator: &JwtValidator, token: &str) -> String {
        match validator.validate(token).await {
            Err(AuthError::InvalidCredentials(reason)) => reason,
            other => panic!("expected InvalidCredentials, got {other:?}"),
        }
    }

    // ----- settings -----

    #[test]
    fn reads_hs256_settings() {
        let settings = JwtSettings::from_env(&hs_env(), "test").unwrap();
        assert_eq!(settings.issuers, ["https://issuer.example"]);
        assert_eq!(settings.audiences, ["api://negotiate", "api://other"]);
        assert_eq!(settings.user_id_claim, "sub");
        assert_eq!(settings.leeway_secs, 60);
        assert!(matches!(settings.key, JwtKeySource::Secret(_)));
        assert!(
            !format!("{settings:?}").contains(SECRET),
            "Debug must redact the secret"
        );
    }

    #[test]
    fn missing_issuer_or_audience_names_the_setting() {
        let env = hs_env().with(ISSUER_SETTING, "");
        assert_eq!(
            JwtSettings::from_env(&env, "NegotiateIdentity=jwt")
                .unwrap_err()
                .setting,
            ISSUER_SETTING
        );
        let env = hs_env().with(AUDIENCE_SETTING, " , ");
        let error = JwtSettings::from_env(&env, "NegotiateIdentity=jwt").unwrap_err();
        assert_eq!(error.setting, AUDIENCE_SETTING);
        assert!(error.problem.contains("NegotiateIdentity=jwt"), "{error}");
    }

    #[test]
    fn exactly_one_key_source_is_required() {
        let both = hs_env().with(JWKS_URL_SETTING, "https://idp.example/keys");
        assert_eq!(JwtSettings::from_env(&both, "t").unwrap_err().setting, JWKS_URL_SETTING);
        let neither = hs_env().with(SECRET_SETTING, "");
        let error = JwtSettings::from_env(&neither, "t").unwrap_err();
        assert_eq!(error.setting, SECRET_SETTING);
        assert!(error.problem.contains(JWKS_URL_SETTING), "{error}");
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let env = hs_env().with(SECRET_SETTING, "short-secret-value");
        let error = JwtSettings::from_env(&env, "t").unwrap_err();
        assert_eq!(error.setting, SECRET_SETTING);
        assert!(!error.to_string().contains("short-secret-value"));
    }

    #[test]
    fn jwks_url_must_be_https_except_on_loopback() {
        let jwks = |url: &str| hs_env().with(SECRET_SETTING, "").with(JWKS_URL_SETTING, url);
        assert!(matches!(
            JwtSettings::from_env(&jwks("https://idp.example/keys"), "t")
                .unwrap()
                .key,
            JwtKeySource::Jwks(_)
        ));
        assert!(JwtSettings::from_env(&jwks("http://127.0.0.1:8080/keys"), "t").is_ok());
        assert!(JwtSettings::from_env(&jwks("http://localhost/keys"), "t").is_ok());
        assert_eq!(
            JwtSettings::from_env(&jwks("http://idp.example/keys"), "t")
                .unwrap_err()
                .setting,
            JWKS_URL_SETTING
        );
        assert_eq!(
            JwtSettings::from_env(&jwks("not a url"), "t").unwrap_err().setting,
            JWKS_URL_SETTING
        );
    }

    #[test]
    fn user_id_claim_and_leeway_are_configurable() {
        let env = hs_env().with(USER_ID_CLAIM_SETTING, "oid").with(LEEWAY_SETTING, "5");
        let settings = JwtSettings::from_env(&env, "t").unwrap();
        assert_eq!((settings.user_id_claim.as_str(), settings.leeway_secs), ("oid", 5));
        let env = hs_env().with(LEEWAY_SETTING, "301");
        assert_eq!(JwtSettings::from_env(&env, "t").unwrap_err().setting, LEEWAY_SETTING);
    }

    #[test]
    fn is_configured_sees_any_auth_setting() {
        assert!(!JwtSettings::is_configured(&Env::default()));
        assert!(JwtSettings::is_configured(
            &Env::default().with(USER_ID_CLAIM_SETTING, "oid")
        ));
    }

    // ----- bearer header -----

    #[test]
    fn bearer_header_parsing() {
        let headers = |value: &str| {
            let mut map = HeaderMap::new();
            map.insert(AUTHORIZATION, value.parse().unwrap());
            map
        };
        assert_eq!(bearer_token(&headers("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&headers("bearer  abc ")).unwrap(), "abc");
        assert!(matches!(
            bearer_token(&HeaderMap::new()),
            Err(AuthError::MissingCredentials(_))
        ));
        assert!(matches!(
            bearer_token(&headers("Bearer ")),
            Err(AuthError::MissingCredentials(_))
        ));
        assert!(matches!(
            bearer_token(&headers("Basic YTpi")),
            Err(AuthError::InvalidCredentials(_))
        ));
    }

    // ----- HS256 validation -----

    #[tokio::test]
    async fn accepts_a_good_hs256_token() {
        let verified = hs_validator().validate(&hs_token(good_claims())).await.unwrap();
        assert_eq!(verified.user_id, "ada");
        assert_eq!(verified.claims["iss"], "https://issuer.example");
    }

    #[tokio::test]
    async fn any_configured_audience_is_accepted() {
        let token = hs_token(with(good_claims(), "aud", json!(["api://other"])));
        assert!(hs_validator().validate(&token).await.is_ok());
    }

    #[tokio::test]
    async fn each_bad_claim_is_rejected_with_its_reason() {
        let validator = hs_validator();
        let cases = [
            (with(good_claims(), "exp", json!(now() - 3600)), "expired"),
            (with(good_claims(), "nbf", json!(now() + 3600)), "not valid yet"),
            (with(good_claims(), "iss", json!("https://evil.example")), "issuer"),
            (
                with(good_claims(), "iss", json!(["https://issuer.example"])),
                "issuer (iss) must be one string",
            ),
            (with(good_claims(), "aud", json!("api://elsewhere")), "audience"),
            (without(good_claims(), "exp"), "exp"),
            (without(good_claims(), "iss"), "iss"),
            (without(good_claims(), "aud"), "aud"),
            (without(good_claims(), "sub"), "no sub claim"),
            (with(good_claims(), "sub", json!(42)), "not a string"),
            (with(good_claims(), "sub", json!("")), "not a usable user id"),
        ];
        for (claims, expected) in cases {
            let reason = reason(&validator, &hs_token(claims.clone())).await;
            assert!(reason.contains(expected), "{claims}: {reason}");
        }
    }

    #[tokio::test]
    async fn wrong_secret_is_a_bad_signature() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(b"another-secret-that-is-also-32-bytes-long"),
        )
        .unwrap();
        assert!(reason(&hs_validator(), &token).await.contains("signature"));
    }

    #[tokio::test]
    async fn malformed_and_unsigned_tokens_are_rejected() {
        let validator = hs_validator();
        assert!(reason(&validator, "not-a-jwt").await.contains("well-formed"));
        // alg "none": header {"alg":"none","typ":"JWT"}.
        let unsigned = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            b64url(&good_claims().to_string())
        );
        let reason = reason(&validator, &unsigned).await;
        assert!(
            reason.contains("algorithm") || reason.contains("well-formed"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn an_rs256_token_is_refused_in_hs256_mode() {
        let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
        assert!(reason(&hs_validator(), &token).await.contains("algorithm"));
    }

    #[tokio::test]
    async fn the_user_id_comes_from_the_configured_claim() {
        let settings = JwtSettings::from_env(&hs_env().with(USER_ID_CLAIM_SETTING, "oid"), "t").unwrap();
        let validator = JwtValidator::new(&settings).unwrap();
        let verified = validator
            .validate(&hs_token(with(good_claims(), "oid", json!("object-1"))))
            .await
            .unwrap();
        assert_eq!(verified.user_id, "object-1");
        assert!(reason(&validator, &hs_token(good_claims())).await.contains("oid"));
    }

    #[tokio::test]
    async fn roles_come_from_roles_role_and_scp() {
        let claims = with(
            with(good_claims(), "roles", json!(["Publisher", 7])),
            "scp",
            json!("publish read"),
        );
        let verified = hs_validator()
            .validate(&hs_token(with(claims, "role", json!("Solo"))))
            .await
            .unwrap();
        let roles: Vec<_> = verified.roles().collect();
        assert_eq!(roles, ["Publisher", "Solo", "publish", "read"]);
        assert!(verified.has_role("publish"));
        assert!(!verified.has_role("admin"));
    }

    // ----- RS256 via JWKS -----

    fn rs_validator(url: &str, options: JwksOptions) -> JwtValidator {
        let env = hs_env().with(SECRET_SETTING, "").with(JWKS_URL_SETTING, url);
        JwtValidator::with_jwks_options(&JwtSettings::from_env(&env, "t").unwrap(), options).unwrap()
    }

    fn eager_refresh() -> JwksOptions {
        JwksOptions {
            min_refresh_interval: Duration::ZERO,
            ..JwksOptions::default()
        }
    }

    #[test]
    fn jwks_url_credentials_never_reach_debug_output() {
        let url = "https://alice:hunter2@login.example/keys?code=querysecret#frag";
        let env = hs_env().with(SECRET_SETTING, "").with(JWKS_URL_SETTING, url);
        let settings = JwtSettings::from_env(&env, "t").unwrap();
        let validator = JwtValidator::with_jwks_options(&settings, JwksOptions::default()).unwrap();
        for shown in [format!("{settings:?}"), format!("{validator:?}")] {
            assert!(shown.contains("login.example/keys"), "{shown}");
            for secret in ["alice", "hunter2", "querysecret", "frag"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }

    #[tokio::test]
    async fn jwks_redirects_are_not_followed() {
        // An attacker's key set on another (loopback) host, reached only by a 302.
        let attacker = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let redirecting = JwksServer::redirecting_to(attacker.url()).await;
        let validator = rs_validator(&redirecting.url(), eager_refresh());
        let result = validator
            .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
            .await;
        assert!(result.is_err(), "a key served after a redirect must not verify");
        assert_eq!(redirecting.fetches(), 1);
        assert_eq!(attacker.fetches(), 0, "the redirect is not followed");
    }

    #[tokio::test]
    async fn rs256_tokens_verify_against_the_jwks_and_keys_are_cached() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let validator = rs_validator(&server.url(), JwksOptions::default());
        for _ in 0..3 {
            let verified = validator
                .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
                .await
                .unwrap();
            assert_eq!(verified.user_id, "ada");
        }
        assert_eq!(server.fetches(), 1, "keys are fetched once and cached");
    }

    #[tokio::test]
    async fn an_unknown_kid_refreshes_the_keys_once() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let validator = rs_validator(&server.url(), eager_refresh());
        validator
            .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
            .await
            .unwrap();
        // The provider rotates in key 2.
        server.set_document(jwks(&[TEST_KEY_1_JWK, TEST_KEY_2_JWK]));
        let verified = validator
            .validate(&rs_token("test-key-2", TEST_KEY_2_PEM, good_claims()))
            .await
            .unwrap();
        assert_eq!(verified.user_id, "ada");
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn refreshes_for_unknown_kids_are_rate_limited() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let validator = rs_validator(&server.url(), JwksOptions::default());
        validator
            .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
            .await
            .unwrap();
        for _ in 0..5 {
            let reason = reason(&validator, &rs_token("made-up-kid", TEST_KEY_2_PEM, good_claims())).await;
            assert!(reason.contains("does not publish"), "{reason}");
        }
        assert_eq!(
            server.fetches(),
            1,
            "unknown kids within the refresh interval cause no fetch"
        );
    }

    #[tokio::test]
    async fn a_key_signed_by_someone_else_fails_the_signature() {
        // Key 2's token claims key 1's kid.
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let validator = rs_validator(&server.url(), JwksOptions::default());
        let token = rs_token("test-key-1", TEST_KEY_2_PEM, good_claims());
        assert!(reason(&validator, &token).await.contains("signature"));
    }

    #[tokio::test]
    async fn a_token_without_kid_uses_the_only_key() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let validator = rs_validator(&server.url(), JwksOptions::default());
        let header = Header::new(Algorithm::RS256);
        let token = jsonwebtoken::encode(&header, &good_claims(), &rsa_encoding_key(TEST_KEY_1_PEM)).unwrap();
        assert!(validator.validate(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_without_kid_is_refused_when_several_keys_exist() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK, TEST_KEY_2_JWK])).await;
        let validator = rs_validator(&server.url(), JwksOptions::default());
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &good_claims(),
            &rsa_encoding_key(TEST_KEY_1_PEM),
        )
        .unwrap();
        assert!(reason(&validator, &token).await.contains("kid"));
    }

    #[tokio::test]
    async fn symmetric_keys_in_a_jwks_are_ignored() {
        // An "oct" key with the HS256 secret must not let an HS256 token through.
        let oct = format!(r#"{{"kty":"oct","kid":"test-key-1","k":"{}"}}"#, b64url(SECRET));
        let server = JwksServer::start(jwks(&[&oct, TEST_KEY_2_JWK])).await;
        let validator = rs_validator(&server.url(), JwksOptions::default());
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("test-key-1".into());
        let token =
            jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
        assert!(reason(&validator, &token).await.contains("algorithm"));
        let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
        assert!(reason(&validator, &token).await.contains("does not publish"));
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_unavailable_not_unauthorized() {
        // Bind then drop a listener: the port is very likely closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        drop(listener);
        let validator = rs_validator(&url, JwksOptions::default());
        let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
        let error = validator.validate(&token).await.unwrap_err();
        assert!(
            matches!(error, AuthError::IdentityProviderUnavailable { .. }),
            "{error:?}"
        );
        // Within the refresh interval the answer stays 503 without another attempt.
        let again = validator.validate(&token).await.unwrap_err();
        assert!(
            matches!(again, AuthError::IdentityProviderUnavailable { .. }),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn provider_errors_and_garbage_are_unavailable() {
        for (status, body) in [
            (500, jwks(&[TEST_KEY_1_JWK])),
            (200, "not json".to_owned()),
            (200, r#"{"keys":[]}"#.to_owned()),
        ] {
            let server = JwksServer::start_with_status(status, body).await;
            let validator = rs_validator(&server.url(), JwksOptions::default());
            let error = validator
                .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
                .await
                .unwrap_err();
            assert!(
                matches!(error, AuthError::IdentityProviderUnavailable { .. }),
                "{status}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_oversized_jwks_is_refused() {
        let big = format!(r#"{{"keys":[],"padding":"{}"}}"#, "x".repeat(4096));
        let server = JwksServer::start(big).await;
        let options = JwksOptions {
            max_document_bytes: 1024,
            ..JwksOptions::default()
        };
        let validator = rs_validator(&server.url(), options);
        let error = validator
            .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
            .await
            .unwrap_err();
        assert!(
            matches!(error, AuthError::IdentityProviderUnavailable { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn stale_keys_are_used_while_the_provider_is_down() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let options = JwksOptions {
            max_age: Duration::ZERO,
            min_refresh_interval: Duration::ZERO,
            ..JwksOptions::default()
        };
        let validator = rs_validator(&server.url(), options);
        let token = rs_token("test-key-1", TEST_KEY_1_PEM, good_claims());
        validator.validate(&token).await.unwrap();
        server.set_status(503);
        assert!(
            validator.validate(&token).await.is_ok(),
            "the cached key still verifies"
        );
        assert_eq!(server.fetches(), 2, "the stale set was re-fetched");
    }

    #[tokio::test]
    async fn at_most_max_keys_are_kept() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK, TEST_KEY_2_JWK])).await;
        let options = JwksOptions {
            max_keys: 1,
            ..JwksOptions::default()
        };
        let validator = rs_validator(&server.url(), options);
        assert!(
            validator
                .validate(&rs_token("test-key-1", TEST_KEY_1_PEM, good_claims()))
                .await
                .is_ok()
        );
        assert!(
            reason(&validator, &rs_token("test-key-2", TEST_KEY_2_PEM, good_claims()))
                .await
                .contains("does not publish")
        );
    }
}
