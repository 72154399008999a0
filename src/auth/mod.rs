//! Caller identity: who is calling a function, established in exactly one configured way, plus the rights
//! templates and the per-identity rate limit the functions build on.
//!
//! Modes ([`IdentityConfig`], chosen by an explicit setting such as `NegotiateIdentity`; never guessed):
//! - `appservice`: App Service Authentication headers ([`AppServicePrincipal`]); only behind the platform.
//! - `jwt`: an `Authorization: Bearer` token checked by [`JwtValidator`] (settings `Auth*`, see [`jwt`]).
//! - `anonymous`: no authentication; the caller names its own user id (or gets a generated one). Only where
//!   the function allows it, and only when configured (development).
//!
//! Failures are [`AuthError`]s: no or bad credentials → 401, identity provider unreachable → 503, a user id
//! the caller may not use → 400/403. Replies never quote a credential.
//!
//! Layout: [`appservice`], [`jwt`] and [`jwks`] (credentials), [`user_id`] (id rules), [`template`] (rights
//! templates with `{userId}`), [`rate_limit`] (per-identity token buckets).

pub(crate) mod appservice;
pub(crate) mod jwks;
pub(crate) mod jwt;
pub(crate) mod rate_limit;
pub(crate) mod template;
pub(crate) mod user_id;

use std::sync::Arc;

use warp::http::{HeaderMap, StatusCode};

pub(crate) use appservice::AppServicePrincipal;
pub(crate) use jwt::VerifiedToken;
pub use jwt::{JwtSettings, JwtValidator};
pub(crate) use rate_limit::{RateDecision, RateLimiter};
pub(crate) use user_id::{UserIdError, validate_user_id};

use crate::config::{ConfigError, Env};
use crate::error::ApiError;

/// Why a caller could not be identified (or may not use the identity it asked for).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials of the configured kind; names what to send.
    #[error("authentication required: send {0}")]
    MissingCredentials(&'static str),
    /// Credentials were sent but are not acceptable; the reason never quotes them.
    #[error("{0}")]
    InvalidCredentials(String),
    /// The identity provider's keys cannot be fetched right now.
    #[error("the identity provider cannot be reached to verify the bearer token; retry later")]
    IdentityProviderUnavailable { retry_after_secs: u64 },
    /// A caller-chosen user id (anonymous mode) breaks the user id rules.
    #[error("userId is not usable: {0}")]
    InvalidUserId(UserIdError),
    /// An authenticated caller asked for a user id other than its own.
    #[error("userId must be the authenticated caller's own id (or omitted)")]
    UserIdMismatch,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::MissingCredentials(_) => ApiError::new(StatusCode::UNAUTHORIZED, "MissingCredentials", message),
            AuthError::InvalidCredentials(_) => ApiError::new(StatusCode::UNAUTHORIZED, "InvalidCredentials", message),
            AuthError::IdentityProviderUnavailable { retry_after_secs } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "IdentityProviderUnavailable", message)
                    .with_retry_after(retry_after_secs)
            }
            AuthError::InvalidUserId(_) => ApiError::bad_request("InvalidUserId", message),
            AuthError::UserIdMismatch => ApiError::forbidden("UserIdMismatch", message),
        }
    }
}

/// How callers are identified, as configured. The `Auth*` settings of `jwt` are read once for every
/// function that chose it ([`SharedAuth::jwt_settings_from_env`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityConfig {
    AppService,
    Jwt,
    Anonymous,
}

impl IdentityConfig {
    /// Reads the mode from `setting` (`appservice` | `jwt` | `anonymous`, any case), which must be set.
    /// `allow_anonymous` is false for functions that must never be anonymous.
    pub(crate) fn from_env(env: &Env, setting: &str, allow_anonymous: bool) -> Result<Self, ConfigError> {
        let choices = if allow_anonymous {
            "appservice, jwt or anonymous"
        } else {
            "appservice or jwt"
        };
        let raw = env.get(setting).ok_or_else(|| {
            ConfigError::new(
                setting,
                format!("is required: set it to {choices} to choose how callers are identified"),
            )
        })?;
        match raw.to_ascii_lowercase().as_str() {
            "appservice" => Ok(Self::AppService),
            "jwt" => Ok(Self::Jwt),
            "anonymous" if allow_anonymous => Ok(Self::Anonymous),
            _ => Err(ConfigError::new(setting, format!("expected {choices}"))),
        }
    }

    /// The mode's setting value, for logs.
    #[cfg(any(test, feature = "dev"))]
    pub(crate) fn mode_name(&self) -> &'static str {
        match self {
            Self::AppService => "appservice",
            Self::Jwt => "jwt",
            Self::Anonymous => "anonymous",
        }
    }
}

/// An identified caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The user id to act as; always passed [`validate_user_id`].
    pub user_id: String,
    pub source: CallerSource,
}

/// Where a caller's identity came from, with what the source said about it.
#[derive(Debug, Clone)]
pub(crate) enum CallerSource {
    AppService(AppServicePrincipal),
    Jwt(VerifiedToken),
    /// Unauthenticated; `generated` when the server picked the id.
    Anonymous {
        generated: bool,
    },
}

impl Caller {
    /// Whether the caller's credentials carry app role (or scope) `role`. Anonymous callers have none.
    pub(crate) fn has_role(&self, role: &str) -> bool {
        match &self.source {
            CallerSource::AppService(principal) => principal.has_role(role),
            CallerSource::Jwt(token) => token.has_role(role),
            CallerSource::Anonymous { .. } => false,
        }
    }
}

/// What the functions share to identify callers: one JWT validator (so one JWKS cache) for every function
/// that accepts bearer tokens. Built once at start-up; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedAuth {
    jwt: Option<Arc<JwtValidator>>,
}

impl SharedAuth {
    /// Reads the `Auth*` settings once, when some function chose `jwt`; `users` names those choices (e.g.
    /// `NegotiateIdentity=jwt`) for the error messages. `None` when no function needs them.
    pub(crate) fn jwt_settings_from_env(env: &Env, users: &[String]) -> Result<Option<JwtSettings>, ConfigError> {
        if users.is_empty() {
            return Ok(None);
        }
        JwtSettings::from_env(env, &users.join(" and ")).map(Some)
    }

    /// The shared validator for `jwt` settings (none without them).
    pub(crate) fn new(jwt: Option<&JwtSettings>) -> anyhow::Result<Self> {
        Ok(Self {
            jwt: jwt.map(JwtValidator::new).transpose()?.map(Arc::new),
        })
    }

    /// An authenticator for `mode`, sharing this validator. `jwt` without `Auth*` settings is an error.
    pub(crate) fn authenticator(&self, mode: IdentityConfig) -> anyhow::Result<Authenticator> {
        Ok(match mode {
            IdentityConfig::AppService => Authenticator::AppService,
            IdentityConfig::Jwt => Authenticator::Jwt(
                self.jwt
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("jwt identity chosen but the Auth* settings were not read"))?,
            ),
            IdentityConfig::Anonymous => Authenticator::Anonymous,
        })
    }
}

/// Identifies callers in the configured mode. Built once at start-up (see [`SharedAuth::authenticator`]).
#[derive(Debug)]
pub(crate) enum Authenticator {
    AppService,
    Jwt(Arc<JwtValidator>),
    Anonymous,
}

/// Prefix of server-generated anonymous user ids.
pub(crate) const GENERATED_USER_ID_PREFIX: &str = "anonymous-";

impl Authenticator {
    /// Identifies the caller of a request. `requested_user_id` is the id the caller asked for: in anonymous
    /// mode it becomes the identity (validated; omitted → generated), otherwise it must equal the
    /// authenticated id.
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        requested_user_id: Option<&str>,
    ) -> Result<Caller, AuthError> {
        let caller = match self {
            Self::AppService => {
                let principal = AppServicePrincipal::from_headers(headers)?;
                Caller {
                    user_id: principal.user_id.clone(),
                    source: CallerSource::AppService(principal),
                }
            }
            Self::Jwt(validator) => {
                let token = validator.validate_request(headers).await?;
                Caller {
                    user_id: token.user_id.clone(),
                    source: CallerSource::Jwt(token),
                }
            }
            Self::Anonymous => {
                return match requested_user_id {
                    Some(id) => {
                        validate_user_id(id).map_err(AuthError::InvalidUserId)?;
                        Ok(Caller {
                            user_id: id.to_owned(),
                            source: CallerSource::Anonymous { generated: false },
                        })
                    }
                    None => Ok(Caller {
                        user_id: format!("{GENERATED_USER_ID_PREFIX}{:032x}", rand::random::<u128>()),
                        source: CallerSource::Anonymous { generated: true },
                    }),
                };
            }
        };
        match requested_user_id {
            Some(requested) if requested != caller.user_id => Err(AuthError::UserIdMismatch),
            _ => Ok(caller),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use ::test_support::tokens::now;

    const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

    fn jwt_env() -> Env {
        Env::from_pairs([
            ("Mode", "JWT"),
            ("AuthJwtIssuer", "https://issuer.example"),
            ("AuthJwtAudience", "api://negotiate"),
            ("AuthJwtSecret", SECRET),
        ])
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn bearer(sub: &str) -> (&'static str, String) {
        let claims = json!({"iss": "https://issuer.example", "aud": "api://negotiate", "sub": sub, "exp": now() + 60, "roles": ["Publisher"]});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        ("authorization", format!("Bearer {token}"))
    }

    #[test]
    fn the_mode_setting_is_required_and_named_in_the_error() {
        let error = IdentityConfig::from_env(&Env::default(), "NegotiateIdentity", true).unwrap_err();
        assert_eq!(error.setting, "NegotiateIdentity");
        assert!(error.problem.contains("appservice, jwt or anonymous"), "{error}");
        let env = Env::from_pairs([("NegotiateIdentity", "AccessKey=pastedsecret")]);
        let error = IdentityConfig::from_env(&env, "NegotiateIdentity", true).unwrap_err();
        assert!(error.problem.contains("appservice, jwt or anonymous"), "{error}");
        assert!(!error.to_string().contains("pastedsecret"), "{error}");
    }

    #[test]
    fn modes_parse_case_insensitively() {
        let env = Env::from_pairs([("Mode", "AppService")]);
        assert!(matches!(
            IdentityConfig::from_env(&env, "Mode", false).unwrap(),
            IdentityConfig::AppService
        ));
        assert!(matches!(
            IdentityConfig::from_env(&jwt_env(), "Mode", false).unwrap(),
            IdentityConfig::Jwt
        ));
        let env = Env::from_pairs([("Mode", "anonymous")]);
        assert_eq!(
            IdentityConfig::from_env(&env, "Mode", true).unwrap().mode_name(),
            "anonymous"
        );
    }

    #[test]
    fn anonymous_is_refused_where_not_allowed_and_unknown_modes_are_refused() {
        let env = Env::from_pairs([("Mode", "anonymous")]);
        assert!(
            IdentityConfig::from_env(&env, "Mode", false)
                .unwrap_err()
                .problem
                .contains("appservice or jwt")
        );
        let env = Env::from_pairs([("Mode", "basic")]);
        assert_eq!(
            IdentityConfig::from_env(&env, "Mode", true).unwrap_err().setting,
            "Mode"
        );
    }

    #[test]
    fn jwt_mode_without_auth_settings_names_the_missing_one() {
        let env = Env::from_pairs([("Mode", "jwt")]);
        assert_eq!(
            IdentityConfig::from_env(&env, "Mode", true).unwrap(),
            IdentityConfig::Jwt
        );
        let error = SharedAuth::jwt_settings_from_env(&env, &["Mode=jwt".into()]).unwrap_err();
        assert_eq!(error.setting, "AuthJwtIssuer");
        assert!(error.problem.contains("Mode=jwt"), "{error}");
        let error = SharedAuth::jwt_settings_from_env(&env, &["A=jwt".into(), "B=jwt".into()]).unwrap_err();
        assert!(error.problem.contains("A=jwt and B=jwt"), "{error}");
        assert!(SharedAuth::jwt_settings_from_env(&env, &[]).unwrap().is_none());
        assert!(SharedAuth::default().authenticator(IdentityConfig::Jwt).is_err());
    }

    #[tokio::test]
    async fn appservice_mode_reads_the_principal() {
        let auth = SharedAuth::default().authenticator(IdentityConfig::AppService).unwrap();
        let principal =
            base64::engine::general_purpose::STANDARD.encode(r#"{"claims":[{"typ":"roles","val":"Publisher"}]}"#);
        let caller = auth
            .authenticate(
                &headers(&[
                    ("x-ms-client-principal-id", "ada".into()),
                    ("x-ms-client-principal", principal),
                ]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(caller.user_id, "ada");
        assert!(caller.has_role("Publisher"));
        let missing = auth.authenticate(&HeaderMap::new(), None).await.unwrap_err();
        assert!(matches!(missing, AuthError::MissingCredentials(_)));
    }

    #[tokio::test]
    async fn appservice_mode_ignores_bearer_tokens() {
        let auth = SharedAuth::default().authenticator(IdentityConfig::AppService).unwrap();
        let error = auth.authenticate(&headers(&[bearer("ada")]), None).await.unwrap_err();
        assert!(matches!(error, AuthError::MissingCredentials(_)));
    }

    #[tokio::test]
    async fn jwt_mode_reads_the_token_and_ignores_principal_headers() {
        let mode = IdentityConfig::from_env(&jwt_env(), "Mode", false).unwrap();
        let settings = SharedAuth::jwt_settings_from_env(&jwt_env(), &["Mode=jwt".into()]).unwrap();
        let Some(settings) = settings else {
            panic!("jwt expected")
        };
        let auth = SharedAuth::new(Some(&settings)).unwrap().authenticator(mode).unwrap();
        let caller = auth
            .authenticate(&headers(&[bearer("ada")]), Some("ada"))
            .await
            .unwrap();
        assert_eq!(caller.user_id, "ada");
        assert!(caller.has_role("Publisher"));
        let spoofed = auth
            .authenticate(&headers(&[("x-ms-client-principal-id", "ada".into())]), None)
            .await
            .unwrap_err();
        assert!(matches!(spoofed, AuthError::MissingCredentials(_)));
    }

    #[tokio::test]
    async fn an_authenticated_caller_cannot_choose_another_user_id() {
        let auth = SharedAuth::default().authenticator(IdentityConfig::AppService).unwrap();
        let error = auth
            .authenticate(&headers(&[("x-ms-client-principal-id", "ada".into())]), Some("bob"))
            .await
            .unwrap_err();
        assert_eq!(error, AuthError::UserIdMismatch);
        assert_eq!(ApiError::from(error).status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn anonymous_mode_uses_the_chosen_id_or_generates_one() {
        let auth = SharedAuth::default().authenticator(IdentityConfig::Anonymous).unwrap();
        let chosen = auth.authenticate(&HeaderMap::new(), Some("ada")).await.unwrap();
        assert_eq!(chosen.user_id, "ada");
        assert!(!chosen.has_role("anything"));
        let first = auth.authenticate(&HeaderMap::new(), None).await.unwrap();
        let second = auth.authenticate(&HeaderMap::new(), None).await.unwrap();
        assert!(first.user_id.starts_with(GENERATED_USER_ID_PREFIX));
        assert_ne!(first.user_id, second.user_id);
        assert!(matches!(first.source, CallerSource::Anonymous { generated: true }));
    }

    #[tokio::test]
    async fn anonymous_mode_validates_the_chosen_id() {
        let auth = SharedAuth::default().authenticator(IdentityConfig::Anonymous).unwrap();
        let error = auth.authenticate(&HeaderMap::new(), Some("bad\nid")).await.unwrap_err();
        assert_eq!(error, AuthError::InvalidUserId(UserIdError::ControlCharacter));
        let reply = ApiError::from(error);
        assert_eq!(
            (reply.status(), reply.code()),
            (StatusCode::BAD_REQUEST, "InvalidUserId")
        );
    }

    #[test]
    fn errors_map_to_statuses_and_stable_codes() {
        let cases = [
            (
                AuthError::MissingCredentials("x"),
                StatusCode::UNAUTHORIZED,
                "MissingCredentials",
            ),
            (
                AuthError::InvalidCredentials("x".into()),
                StatusCode::UNAUTHORIZED,
                "InvalidCredentials",
            ),
            (
                AuthError::IdentityProviderUnavailable { retry_after_secs: 30 },
                StatusCode::SERVICE_UNAVAILABLE,
                "IdentityProviderUnavailable",
            ),
        ];
        for (error, status, code) in cases {
            let reply = ApiError::from(error);
            assert_eq!((reply.status(), reply.code()), (status, code));
        }
    }
}
