//! The `negotiate` function: identifies the caller, checks what it asks for against the configured policy
//! and answers with a Web PubSub client access URL and token that both client ecosystems understand
//! (`url`, `baseUrl`, `token` as the SDKs return; `accessToken` as the Functions binding does; plus
//! `expiresOn` and `userId`).
//!
//! Requests: `POST /api/negotiate` with a JSON object, or `GET` (or a `POST` without body) with the same
//! fields as query parameters:
//! `{"userId"?, "hub"?, "groups"?: [..], "roles"?: [..], "minutesToExpire"?, "clientType"?: "default|mqtt|socketio"}`.
//! In a query, `groups` and `roles` are comma-separated or repeated (the Functions host joins repeated keys
//! with `,`). Unknown names are ignored; known names with the wrong type are a 400.
//!
//! Settings (read once at start-up):
//! - `NegotiateIdentity` (required): `appservice` | `jwt` | `anonymous` — how callers are identified (see
//!   [`crate::auth`]; `jwt` reads the shared `Auth*` settings).
//! - `NegotiateDefaultRoles`: roles every token gets, comma-separated; `{userId}` is replaced.
//! - `NegotiateAllowedGroups`: group templates a caller may ask to join on connect (`*` = one or more
//!   characters, `{userId}` = the caller), e.g. `notifications:user:{userId},conversation:*`.
//! - `NegotiateAllowedRoles`: role templates a caller may ask for, e.g.
//!   `webpubsub.joinLeaveGroup.conversation:*,webpubsub.sendToGroup.conversation:*`.
//! - `NegotiateTokenTtlMinutes` (default 60) and `NegotiateMaxTokenTtlMinutes` (default: the TTL; at most
//!   1440): a caller may ask for a shorter lifetime, never a longer one than the maximum.
//! - The hub is `WebPubSubHub` unless the caller picks one of `WebPubSubAllowedHubs` (the service settings).
//! - `NegotiateRateLimitPerMinute` (default 0 = off): tokens per identity per minute, then 429.
//!
//! With `StoreConnectionString` set, `conversation:{id}` and `notifications:user:{userId}` groups are decided
//! by the store, not the templates: members get their conversations, everyone their own notification group
//! ([`membership`]).
//!
//! Every issue is logged as `Issued Web PubSub access token user_id=… hub=… roles=… groups=…`; the token never is.
//!
//! Layout: `request` (body or query → `NegotiateRequest`), `policy` (role names, hub, lifetime, groups and
//! roles against the templates), `membership` (the store's groups), `reply` (sign, log, answer), `tests`.

mod issuer;
pub(crate) mod membership;
mod policy;
mod reply;
mod request;

use std::num::NonZeroU32;
use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;

use crate::auth::template::Template;
use crate::auth::{Authenticator, IdentityConfig, RateLimiter, SharedAuth};
use crate::config::{ConfigError, Env};
use crate::error::{self, ApiError};
use crate::functions::durable::Durable;
use crate::request::{UnreadBody, raw_query, unread_body};
use crate::webpubsub::{Hubs, ServiceSettings};

use policy::role_templates;

pub(crate) const IDENTITY_SETTING: &str = "NegotiateIdentity";
pub(crate) const DEFAULT_ROLES_SETTING: &str = "NegotiateDefaultRoles";
pub(crate) const ALLOWED_GROUPS_SETTING: &str = "NegotiateAllowedGroups";
pub(crate) const ALLOWED_ROLES_SETTING: &str = "NegotiateAllowedRoles";
pub(crate) const TOKEN_TTL_SETTING: &str = "NegotiateTokenTtlMinutes";
pub(crate) const MAX_TOKEN_TTL_SETTING: &str = "NegotiateMaxTokenTtlMinutes";
pub(crate) const RATE_LIMIT_SETTING: &str = "NegotiateRateLimitPerMinute";

/// Token lifetime when the caller asks for none.
pub(crate) const DEFAULT_TOKEN_TTL_MINUTES: u32 = 60;
/// Upper bound for `NegotiateMaxTokenTtlMinutes`: one day.
pub(crate) const TOKEN_TTL_CEILING_MINUTES: u32 = 24 * 60;
/// Largest request body read.
pub(crate) const MAX_BODY_BYTES: u64 = 16 * 1024;
/// Most groups, and most roles, one request may ask for.
pub(crate) const MAX_REQUESTED_ITEMS: usize = 100;

/// Settings of `negotiate`.
#[derive(Debug)]
pub(crate) struct Settings {
    pub identity: IdentityConfig,
    /// Literal role templates every token gets.
    pub default_roles: Vec<Template>,
    /// Group patterns a caller may join on connect.
    pub allowed_groups: Vec<Template>,
    /// Role patterns a caller may ask for.
    pub allowed_roles: Vec<Template>,
    pub token_ttl_minutes: u32,
    pub max_token_ttl_minutes: u32,
    /// `None`: no rate limit.
    pub rate_limit_per_minute: Option<NonZeroU32>,
}

impl Settings {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let identity = IdentityConfig::from_env(env, IDENTITY_SETTING, true)?;
        let default_roles = role_templates(env, DEFAULT_ROLES_SETTING, Template::literal)?;
        let allowed_groups = env
            .list(ALLOWED_GROUPS_SETTING)
            .iter()
            .map(|text| Template::pattern(text).map_err(|e| ConfigError::new(ALLOWED_GROUPS_SETTING, e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let allowed_roles = role_templates(env, ALLOWED_ROLES_SETTING, Template::pattern)?;
        let token_ttl_minutes = env.parse_or(TOKEN_TTL_SETTING, DEFAULT_TOKEN_TTL_MINUTES)?;
        let max_token_ttl_minutes = env.parse_or(MAX_TOKEN_TTL_SETTING, token_ttl_minutes)?;
        if token_ttl_minutes == 0 {
            return Err(ConfigError::new(TOKEN_TTL_SETTING, "must be at least 1 minute"));
        }
        if max_token_ttl_minutes > TOKEN_TTL_CEILING_MINUTES {
            return Err(ConfigError::new(
                MAX_TOKEN_TTL_SETTING,
                format!("must be at most {TOKEN_TTL_CEILING_MINUTES} minutes (one day)"),
            ));
        }
        if token_ttl_minutes > max_token_ttl_minutes {
            let problem = format!(
                "is {max_token_ttl_minutes} minutes, shorter than {TOKEN_TTL_SETTING} ({token_ttl_minutes}); raise it or lower {TOKEN_TTL_SETTING}"
            );
            return Err(ConfigError::new(MAX_TOKEN_TTL_SETTING, problem));
        }
        let rate_limit_per_minute = NonZeroU32::new(env.parse_or(RATE_LIMIT_SETTING, 0u32)?);
        Ok(Self {
            identity,
            default_roles,
            allowed_groups,
            allowed_roles,
            token_ttl_minutes,
            max_token_ttl_minutes,
            rate_limit_per_minute,
        })
    }

    /// `NegotiateIdentity=jwt` when this function reads bearer tokens (the app then reads the `Auth*` settings).
    pub(crate) fn jwt_user(&self) -> Option<String> {
        (self.identity == IdentityConfig::Jwt).then(|| format!("{IDENTITY_SETTING}=jwt"))
    }
}

/// State of `negotiate`, built once at start-up.
#[derive(Debug)]
pub(crate) struct State {
    authenticator: Authenticator,
    issuer: issuer::Issuer,
    hubs: Hubs,
    default_roles: Vec<Template>,
    allowed_groups: Vec<Template>,
    allowed_roles: Vec<Template>,
    token_ttl_minutes: u32,
    max_token_ttl_minutes: u32,
    rate_limiter: Option<RateLimiter>,
    /// Set when a store is configured: conversation and notification groups are checked against it.
    durable: Option<Arc<Durable>>,
}

impl State {
    /// The state for `own` settings in front of `service` (tokens signed with its primary key, or made by the
    /// service in identity mode; the hub is
    /// `WebPubSubHub` unless the caller picks one of `WebPubSubAllowedHubs`), identifying callers through
    /// the app's `auth`.
    pub(crate) fn new(own: &Settings, service: &ServiceSettings, auth: &SharedAuth) -> anyhow::Result<Self> {
        if matches!(own.identity, IdentityConfig::Anonymous) {
            tracing::warn!(
                "negotiate issues tokens to unauthenticated callers ({IDENTITY_SETTING}=anonymous): for development only"
            );
            if own.rate_limit_per_minute.is_some() {
                tracing::warn!("{RATE_LIMIT_SETTING} is per user id, which anonymous callers choose themselves");
            }
        }
        Ok(Self {
            authenticator: auth.authenticator(own.identity)?,
            issuer: issuer::Issuer::for_service(service)?,
            hubs: service.hubs.clone(),
            default_roles: own.default_roles.clone(),
            allowed_groups: own.allowed_groups.clone(),
            allowed_roles: own.allowed_roles.clone(),
            token_ttl_minutes: own.token_ttl_minutes,
            max_token_ttl_minutes: own.max_token_ttl_minutes,
            rate_limiter: own
                .rate_limit_per_minute
                .map(|limit| RateLimiter::per_minute(limit.get())),
            durable: None,
        })
    }

    /// Membership-checked groups from `durable`'s store ([`membership`]); no change when no store is configured.
    pub(crate) fn with_durable(mut self, durable: Arc<Durable>) -> Self {
        self.durable = durable.is_configured().then_some(durable);
        self
    }
}

/// `GET|POST /api/negotiate`.
pub(crate) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    let get = warp::get().map(|| None);
    let post = warp::post().and(unread_body()).map(Some);
    warp::path!("api" / "negotiate")
        .and(get.or(post).unify())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .then(move |body: Option<UnreadBody>, query: String, headers: HeaderMap| {
            let state = state.clone();
            async move { error::into_response(negotiate(&state, body, &query, &headers).await) }
        })
        .boxed()
}

/// Read the request, identify the caller, check the policy, then sign and answer.
async fn negotiate(
    state: &State,
    body: Option<UnreadBody>,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let mut request = request::read(body, query, headers).await?;
    let caller = state
        .authenticator
        .authenticate(headers, request.user_id.as_deref())
        .await?;
    let durable_ask = match &state.durable {
        Some(_) => Some(membership::split(&mut request, &caller.user_id)?),
        None => None,
    };
    let (hub, mut access) = state.grant(request, &caller.user_id)?;
    if let (Some(durable), Some(ask)) = (&state.durable, durable_ask) {
        membership::extend(durable, ask, &caller.user_id, &mut access).await?;
    }
    reply::issue(&state.issuer, hub, &access, &caller.user_id).await
}

#[cfg(test)]
mod membership_tests;
#[cfg(test)]
mod tests;
