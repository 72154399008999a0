//! Who may publish. The Functions host checks the function key (`authLevel: function`) before a request
//! reaches the handler; this module adds the second, configured check for service-to-service callers:
//!
//! - `jwt`: an `Authorization: Bearer` token valid for the shared `Auth*` settings (issuer, audience, HS256
//!   secret or JWKS; the same validator as `negotiate`) that carries a required app role or scope in its
//!   `roles`, `role` or `scp` claim.
//! - `appservice`: App Service Authentication's principal headers, with a required role among the
//!   principal's role claims. Trustworthy only when App Service Authentication is on (it strips forged copies).
//! - `functionkey`: the function key alone. An explicit opt-in, warned about at start-up.
//!
//! No credentials or bad ones → 401; valid credentials without a required role → 403.

use warp::http::HeaderMap;

use crate::auth::{Authenticator, IdentityConfig, SharedAuth};
use crate::config::{ConfigError, Env};
use crate::error::ApiError;

/// `jwt` | `appservice` | `functionkey` (required).
pub(crate) const TRUST_SETTING: &str = "PublishTrust";
/// Roles or scopes, comma-separated; a caller needs one of them (required with `jwt` and `appservice`).
pub(crate) const REQUIRED_ROLE_SETTING: &str = "PublishRequiredRole";

/// The caller name logged for function-key-only callers (the key itself never is).
pub(crate) const FUNCTION_KEY_CALLER: &str = "function-key";

/// The configured second check.
#[derive(Debug, Clone)]
pub(crate) enum TrustSettings {
    Jwt { required_roles: Vec<String> },
    AppService { required_roles: Vec<String> },
    FunctionKeyOnly,
}

impl TrustSettings {
    /// Reads `PublishTrust` and `PublishRequiredRole` (`jwt`'s `Auth*` settings are read once for the app, see
    /// [`SharedAuth`]). Fails closed:
    /// a missing mode or role is an error naming the setting.
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.get(TRUST_SETTING).ok_or_else(|| {
            ConfigError::new(
                TRUST_SETTING,
                "is required: set it to jwt, appservice or functionkey to choose how publish callers are trusted beyond the function key",
            )
        })?;
        let mode = raw.to_ascii_lowercase();
        let roles = env.list(REQUIRED_ROLE_SETTING);
        let required_roles = || {
            if roles.is_empty() {
                Err(ConfigError::new(
                    REQUIRED_ROLE_SETTING,
                    format!(
                        "is required with {TRUST_SETTING}={mode}: name the app role or scope a publish caller must hold"
                    ),
                ))
            } else {
                Ok(roles.clone())
            }
        };
        match mode.as_str() {
            "jwt" => Ok(Self::Jwt {
                required_roles: required_roles()?,
            }),
            "appservice" => Ok(Self::AppService {
                required_roles: required_roles()?,
            }),
            "functionkey" if roles.is_empty() => Ok(Self::FunctionKeyOnly),
            // A role nobody checks would look like protection.
            "functionkey" => Err(ConfigError::new(
                REQUIRED_ROLE_SETTING,
                format!(
                    "is set, but {TRUST_SETTING}=functionkey checks no role: remove it or choose jwt or appservice"
                ),
            )),
            _ => Err(ConfigError::new(
                TRUST_SETTING,
                // The value is never echoed: a pasted secret must not reach stderr (#14 item 7).
                "must be jwt, appservice or functionkey",
            )),
        }
    }

    /// The identity mode this trust uses, when it identifies callers at all.
    pub(crate) fn identity(&self) -> Option<IdentityConfig> {
        match self {
            Self::Jwt { .. } => Some(IdentityConfig::Jwt),
            Self::AppService { .. } => Some(IdentityConfig::AppService),
            Self::FunctionKeyOnly => None,
        }
    }

    /// The mode's setting value, for logs.
    #[cfg(any(test, feature = "dev"))]
    pub(crate) fn mode_name(&self) -> &'static str {
        match self {
            Self::Jwt { .. } => "jwt",
            Self::AppService { .. } => "appservice",
            Self::FunctionKeyOnly => "functionkey",
        }
    }
}

/// The second check, built once at start-up.
#[derive(Debug)]
pub(crate) struct Trust {
    /// `None`: function key only.
    authenticator: Option<Authenticator>,
    required_roles: Vec<String>,
}

impl Trust {
    /// The check for `settings`, identifying callers through the app's `auth`.
    pub(crate) fn new(settings: &TrustSettings, auth: &SharedAuth) -> anyhow::Result<Self> {
        let (identity, required_roles) = match settings {
            TrustSettings::Jwt { required_roles } => (Some(IdentityConfig::Jwt), required_roles.clone()),
            TrustSettings::AppService { required_roles } => (Some(IdentityConfig::AppService), required_roles.clone()),
            TrustSettings::FunctionKeyOnly => {
                tracing::warn!(
                    "publish trusts every caller holding the function key ({TRUST_SETTING}=functionkey); \
                     prefer jwt or appservice with {REQUIRED_ROLE_SETTING} for service-to-service callers"
                );
                (None, Vec::new())
            }
        };
        Ok(Self {
            authenticator: identity.map(|mode| auth.authenticator(mode)).transpose()?,
            required_roles,
        })
    }

    /// The trusted caller's id (for logs), or the 401/403/503 to answer.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let Some(authenticator) = &self.authenticator else {
            return Ok(FUNCTION_KEY_CALLER.to_owned());
        };
        let caller = authenticator.authenticate(headers, None).await?;
        if !self.required_roles.iter().any(|role| caller.has_role(role)) {
            tracing::info!(user_id = %caller.user_id, "publish refused: the caller lacks the required role");
            return Err(ApiError::forbidden(
                "MissingRole",
                format!(
                    "publishing requires the app role or scope {}",
                    self.required_roles.join(" or ")
                ),
            ));
        }
        Ok(caller.user_id)
    }
}
