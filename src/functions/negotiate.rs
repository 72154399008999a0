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
//! Every issue is logged as `Issued Web PubSub access token user_id=… hub=… roles=… groups=…`; the token never is.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::{Reply, Response};

use crate::auth::template::{Template, TemplateError};
use crate::auth::{Authenticator, IdentityConfig, RateDecision, RateLimiter, SharedAuth};
use crate::config::{ConfigError, Env};
use crate::error::{self, ApiError};
use crate::functions::refused_hub;
use crate::request::{UnreadBody, read_body, unread_body};
use crate::webpubsub::validate;
use crate::webpubsub::{ClientAccessIssuer, ClientAccessRequest, ClientType, Hubs, ServiceSettings};

pub const IDENTITY_SETTING: &str = "NegotiateIdentity";
pub const DEFAULT_ROLES_SETTING: &str = "NegotiateDefaultRoles";
pub const ALLOWED_GROUPS_SETTING: &str = "NegotiateAllowedGroups";
pub const ALLOWED_ROLES_SETTING: &str = "NegotiateAllowedRoles";
pub const TOKEN_TTL_SETTING: &str = "NegotiateTokenTtlMinutes";
pub const MAX_TOKEN_TTL_SETTING: &str = "NegotiateMaxTokenTtlMinutes";
pub const RATE_LIMIT_SETTING: &str = "NegotiateRateLimitPerMinute";

/// Token lifetime when the caller asks for none.
pub const DEFAULT_TOKEN_TTL_MINUTES: u32 = 60;
/// Upper bound for `NegotiateMaxTokenTtlMinutes`: one day.
pub const TOKEN_TTL_CEILING_MINUTES: u32 = 24 * 60;
/// Largest request body read.
pub const MAX_BODY_BYTES: u64 = 16 * 1024;
/// Most groups, and most roles, one request may ask for.
pub const MAX_REQUESTED_ITEMS: usize = 100;

/// Role names of the service: the group-wide roles and the prefixes of per-group and wildcard roles.
const GROUP_WIDE_ROLES: [&str; 2] = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
const SCOPED_ROLE_PREFIXES: [&str; 4] = [
    "webpubsub.joinLeaveGroup.",
    "webpubsub.sendToGroup.",
    "webpubsub.joinLeaveGroups.",
    "webpubsub.sendToGroups.",
];

/// Settings of `negotiate`.
#[derive(Debug)]
pub struct Settings {
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
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
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
    pub fn jwt_user(&self) -> Option<String> {
        (self.identity == IdentityConfig::Jwt).then(|| format!("{IDENTITY_SETTING}=jwt"))
    }
}

/// Parses a list of role templates, refusing names that are not Web PubSub roles (typos would otherwise
/// silently grant nothing, or match nothing).
fn role_templates(
    env: &Env,
    setting: &str,
    parse: fn(&str) -> Result<Template, TemplateError>,
) -> Result<Vec<Template>, ConfigError> {
    env.list(setting)
        .iter()
        .map(|text| {
            if !is_service_role(text) {
                let problem = format!(
                    "{text:?} is not a Web PubSub role: use webpubsub.joinLeaveGroup[.<group>], webpubsub.sendToGroup[.<group>], \
                     webpubsub.joinLeaveGroups.<pattern> or webpubsub.sendToGroups.<pattern>"
                );
                return Err(ConfigError::new(setting, problem));
            }
            parse(text).map_err(|e| ConfigError::new(setting, e.to_string()))
        })
        .collect()
}

/// Whether `name` is a group-wide role or starts with a per-group / wildcard role prefix and names a group.
fn is_service_role(name: &str) -> bool {
    GROUP_WIDE_ROLES.contains(&name)
        || SCOPED_ROLE_PREFIXES
            .iter()
            .any(|prefix| name.len() > prefix.len() && name.starts_with(prefix))
}

/// State of `negotiate`, built once at start-up.
#[derive(Debug)]
pub struct State {
    authenticator: Authenticator,
    issuer: ClientAccessIssuer,
    hubs: Hubs,
    default_roles: Vec<Template>,
    allowed_groups: Vec<Template>,
    allowed_roles: Vec<Template>,
    token_ttl_minutes: u32,
    max_token_ttl_minutes: u32,
    rate_limiter: Option<RateLimiter>,
}

impl State {
    /// The state for `own` settings in front of `service` (tokens signed with its primary key; the hub is
    /// `WebPubSubHub` unless the caller picks one of `WebPubSubAllowedHubs`), identifying callers through
    /// the app's `auth`.
    pub fn new(own: &Settings, service: &ServiceSettings, auth: &SharedAuth) -> anyhow::Result<Self> {
        let primary = &service.primary;
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
            issuer: ClientAccessIssuer::new(primary.endpoint().clone(), primary.access_key()),
            hubs: service.hubs.clone(),
            default_roles: own.default_roles.clone(),
            allowed_groups: own.allowed_groups.clone(),
            allowed_roles: own.allowed_roles.clone(),
            token_ttl_minutes: own.token_ttl_minutes,
            max_token_ttl_minutes: own.max_token_ttl_minutes,
            rate_limiter: own
                .rate_limit_per_minute
                .map(|limit| RateLimiter::per_minute(limit.get())),
        })
    }
}

/// `GET|POST /api/negotiate`.
pub fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let get = warp::get().map(|| None);
    let post = warp::post().and(unread_body()).map(Some);
    warp::path!("api" / "negotiate")
        .and(get.or(post).unify())
        .and(query)
        .and(warp::header::headers_cloned())
        .then(move |body: Option<UnreadBody>, query: String, headers: HeaderMap| {
            let state = state.clone();
            async move { error::into_response(negotiate(&state, body, &query, &headers).await) }
        })
        .boxed()
}

/// The request from the JSON body of a `POST`, or from the query (a `GET`, or a `POST` without body).
async fn read_request(
    body: Option<UnreadBody>,
    query: &str,
    headers: &HeaderMap,
) -> Result<NegotiateRequest, ApiError> {
    let body = match body {
        Some(body) => read_body(headers, body, MAX_BODY_BYTES).await?,
        None => Bytes::new(),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        parse_query(query)
    } else {
        parse_json(&body)
    }
}

/// What a caller may ask for. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NegotiateRequest {
    user_id: Option<String>,
    hub: Option<String>,
    groups: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    minutes_to_expire: Option<u32>,
    client_type: Option<String>,
}

/// The reply: the SDK shape (`url`, `baseUrl`, `token`) and the Functions binding shape (`accessToken`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NegotiateResponse<'a> {
    url: &'a str,
    base_url: &'a str,
    token: &'a str,
    access_token: &'a str,
    expires_on: String,
    user_id: &'a str,
}

fn parse_json(body: &[u8]) -> Result<NegotiateRequest, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::bad_request(
            "InvalidField",
            format!("the request body has a field of the wrong type: {e}"),
        ),
        _ => ApiError::bad_request("InvalidJson", format!("the request body is not valid JSON: {e}")),
    })
}

fn parse_query(query: &str) -> Result<NegotiateRequest, ApiError> {
    let mut request = NegotiateRequest::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let list = |current: &mut Option<Vec<String>>| {
            current
                .get_or_insert_with(Vec::new)
                .extend(value.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
        };
        match name.as_ref() {
            n if n.eq_ignore_ascii_case("userId") => request.user_id = Some(value.into_owned()),
            n if n.eq_ignore_ascii_case("hub") => request.hub = Some(value.into_owned()),
            n if n.eq_ignore_ascii_case("groups") => list(&mut request.groups),
            n if n.eq_ignore_ascii_case("roles") => list(&mut request.roles),
            n if n.eq_ignore_ascii_case("clientType") => request.client_type = Some(value.into_owned()),
            n if n.eq_ignore_ascii_case("minutesToExpire") => {
                let minutes = value.trim().parse().map_err(|_| {
                    ApiError::bad_request(
                        "InvalidField",
                        "query parameter minutesToExpire must be a whole number of minutes",
                    )
                    .with_detail("field", "minutesToExpire")
                })?;
                request.minutes_to_expire = Some(minutes);
            }
            _ => {}
        }
        if request.groups.as_ref().is_some_and(|g| g.len() > MAX_REQUESTED_ITEMS)
            || request.roles.as_ref().is_some_and(|r| r.len() > MAX_REQUESTED_ITEMS)
        {
            return Err(too_many());
        }
    }
    Ok(request)
}

fn too_many() -> ApiError {
    ApiError::bad_request(
        "TooManyItems",
        format!("ask for at most {MAX_REQUESTED_ITEMS} groups and {MAX_REQUESTED_ITEMS} roles"),
    )
}

/// Read the request, identify, rate-limit, check the policy, sign, log, reply.
async fn negotiate(
    state: &State,
    body: Option<UnreadBody>,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let request = read_request(body, query, headers).await?;
    let caller = state
        .authenticator
        .authenticate(headers, request.user_id.as_deref())
        .await?;
    let user_id = caller.user_id.as_str();
    if let Some(limiter) = &state.rate_limiter
        && let RateDecision::Limited { retry_after_secs } = limiter.check(user_id)
    {
        tracing::info!(user_id, retry_after_secs, "negotiate rate limit exceeded");
        return Err(ApiError::too_many_requests(retry_after_secs));
    }
    let hub = state.hub(request.hub.as_deref())?;
    let ttl_minutes = state.ttl_minutes(request.minutes_to_expire)?;
    let client_type = match request.client_type.as_deref() {
        None => ClientType::Default,
        Some(name) => ClientType::from_str(name).map_err(|_| {
            ApiError::bad_request("InvalidClientType", "clientType must be default, mqtt or socketio")
                .with_detail("field", "clientType")
        })?,
    };
    let groups = state.groups(request.groups.unwrap_or_default(), user_id)?;
    let roles = state.roles(request.roles.unwrap_or_default(), user_id)?;

    let access_request = ClientAccessRequest {
        user_id: Some(caller.user_id.clone()),
        roles,
        groups,
        ttl: Duration::from_secs(u64::from(ttl_minutes) * 60),
        client_type,
    };
    let access = state
        .issuer
        .issue(hub, &access_request)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()).with_detail("field", e.field()))?;
    let expires_on = rfc3339(access.expires_at);
    tracing::info!(
        user_id,
        hub,
        roles = %Joined(&access_request.roles),
        groups = %Joined(&access_request.groups),
        client_type = %client_type,
        expires_on = %expires_on,
        "Issued Web PubSub access token"
    );
    let body = NegotiateResponse {
        url: &access.url,
        base_url: &access.base_url,
        token: &access.token,
        access_token: &access.token,
        expires_on,
        user_id,
    };
    let mut response = warp::reply::json(&body).into_response();
    // The body is a credential: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

impl State {
    /// The default hub, or an allowed one the caller picked (names compare ignoring ASCII case).
    fn hub<'a>(&'a self, requested: Option<&str>) -> Result<&'a str, ApiError> {
        self.hubs
            .resolve(requested)
            .map_err(|refusal| refused_hub(refusal, requested.unwrap_or_default(), "negotiate"))
    }

    /// The lifetime in minutes: the default, or what the caller asked for up to the maximum.
    fn ttl_minutes(&self, requested: Option<u32>) -> Result<u32, ApiError> {
        match requested {
            None => Ok(self.token_ttl_minutes),
            Some(minutes) if (1..=self.max_token_ttl_minutes).contains(&minutes) => Ok(minutes),
            Some(_) => Err(ApiError::bad_request(
                "InvalidTokenLifetime",
                format!("minutesToExpire must be from 1 to {}", self.max_token_ttl_minutes),
            )
            .with_detail("field", "minutesToExpire")),
        }
    }

    /// The requested groups, each valid and allowed by a group template; duplicates dropped.
    fn groups(&self, requested: Vec<String>, user_id: &str) -> Result<Vec<String>, ApiError> {
        if requested.len() > MAX_REQUESTED_ITEMS {
            return Err(too_many());
        }
        // At most MAX_REQUESTED_ITEMS entries: a linear duplicate check beats hashing and cloning.
        let mut groups: Vec<String> = Vec::with_capacity(requested.len());
        for group in requested {
            if let Err(e) = validate::group(&group) {
                return Err(ApiError::bad_request(e.code(), e.to_string()).with_detail("field", "groups"));
            }
            if !self
                .allowed_groups
                .iter()
                .any(|template| template.matches(&group, user_id))
            {
                return Err(ApiError::forbidden(
                    "GroupNotAllowed",
                    format!("group {group:?} is not allowed for this caller"),
                )
                .with_detail("group", &group));
            }
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    /// The default roles (rendered for the caller) plus the requested ones, each allowed by a role template.
    fn roles(&self, requested: Vec<String>, user_id: &str) -> Result<Vec<String>, ApiError> {
        if requested.len() > MAX_REQUESTED_ITEMS {
            return Err(too_many());
        }
        let mut roles: Vec<String> = Vec::with_capacity(self.default_roles.len() + requested.len());
        for template in &self.default_roles {
            let role = template.render(user_id);
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        for role in requested {
            if !is_service_role(&role) {
                return Err(
                    ApiError::bad_request("InvalidRole", format!("{role:?} is not a Web PubSub role"))
                        .with_detail("field", "roles"),
                );
            }
            // A wildcard role only matches a template written exactly so (see `auth::template`).
            let allowed = self
                .allowed_roles
                .iter()
                .any(|template| template.matches(&role, user_id));
            if !allowed {
                return Err(ApiError::forbidden(
                    "RoleNotAllowed",
                    format!("role {role:?} is not allowed for this caller"),
                )
                .with_detail("role", &role));
            }
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Ok(roles)
    }
}

/// Shows a list as `a,b,c` in log fields without building a string.
struct Joined<'a>(&'a [String]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, item) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (UTC, proleptic Gregorian calendar).
fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

#[cfg(test)]
mod tests {

    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{Value, json};
    use warp::http::StatusCode;

    use super::*;
    use crate::auth::test_support::{JwksServer, TEST_KEY_1_JWK, TEST_KEY_1_PEM, jwks, now, rs_token};

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
    const CONNECTION_STRING: &str =
        "Endpoint=http://localhost;Port=8080;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;";
    const JWT_SECRET: &str = "negotiate-test-secret-at-least-32-bytes!";

    fn env(mode: &str) -> Env {
        Env::from_pairs([
            ("WebPubSubConnectionString", CONNECTION_STRING),
            ("WebPubSubHub", "chat"),
            (IDENTITY_SETTING, mode),
        ])
    }

    fn route_for(env: &Env) -> BoxedFilter<(Response,)> {
        let settings = Settings::from_env(env).unwrap();
        let service = ServiceSettings::from_env(env).unwrap();
        let jwt = SharedAuth::jwt_settings_from_env(env, settings.jwt_user().as_slice()).unwrap();
        let auth = SharedAuth::new(jwt.as_ref()).unwrap();
        routes(Arc::new(State::new(&settings, &service, &auth).unwrap()))
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Value,
    }

    async fn post(route: &BoxedFilter<(Response,)>, body: Value) -> Reply {
        send(
            route,
            warp::test::request()
                .method("POST")
                .path("/api/negotiate")
                .body(body.to_string()),
        )
        .await
    }

    async fn get(route: &BoxedFilter<(Response,)>, query: &str) -> Reply {
        send(
            route,
            warp::test::request()
                .method("GET")
                .path(&format!("/api/negotiate{query}")),
        )
        .await
    }

    async fn send(route: &BoxedFilter<(Response,)>, request: warp::test::RequestBuilder) -> Reply {
        let recovered = route.clone().recover(error::recover);
        let response = request.reply(&recovered).await;
        let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body,
        }
    }

    /// The token's claims, verified with the access key against the audience of `path_and_hub`.
    fn claims(reply: &Reply, path_and_hub: &str) -> Value {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[format!("http://localhost:8080{path_and_hub}")]);
        let token = reply.body["token"].as_str().expect("a token");
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(KEY.as_bytes()), &validation)
            .unwrap()
            .claims
    }

    fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.body["code"], code, "{}", reply.body);
        assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // ----- settings -----

    #[test]
    fn the_identity_mode_is_required() {
        let env = Env::from_pairs([("WebPubSubConnectionString", CONNECTION_STRING)]);
        let error = Settings::from_env(&env).unwrap_err();
        assert_eq!(error.setting, IDENTITY_SETTING);
        assert!(error.problem.contains("anonymous"), "{error}");
    }

    #[test]
    fn defaults() {
        let settings = Settings::from_env(&env("anonymous")).unwrap();
        assert_eq!((settings.token_ttl_minutes, settings.max_token_ttl_minutes), (60, 60));
        assert!(
            settings.default_roles.is_empty()
                && settings.allowed_groups.is_empty()
                && settings.allowed_roles.is_empty()
        );
        assert_eq!(settings.rate_limit_per_minute, None);
    }

    #[test]
    fn lifetimes_must_be_consistent() {
        let error = Settings::from_env(
            &env("anonymous")
                .with(TOKEN_TTL_SETTING, "90")
                .with(MAX_TOKEN_TTL_SETTING, "60"),
        )
        .unwrap_err();
        assert_eq!(
            error.setting, MAX_TOKEN_TTL_SETTING,
            "a TTL above the maximum is a contradiction"
        );
        assert!(error.problem.contains(TOKEN_TTL_SETTING));
        let raised = Settings::from_env(&env("anonymous").with(TOKEN_TTL_SETTING, "90")).unwrap();
        assert_eq!(raised.max_token_ttl_minutes, 90, "the maximum defaults to the TTL");
        let ok = Settings::from_env(
            &env("anonymous")
                .with(TOKEN_TTL_SETTING, "90")
                .with(MAX_TOKEN_TTL_SETTING, "120"),
        )
        .unwrap();
        assert_eq!((ok.token_ttl_minutes, ok.max_token_ttl_minutes), (90, 120));
        let error = Settings::from_env(&env("anonymous").with(MAX_TOKEN_TTL_SETTING, "1441")).unwrap_err();
        assert_eq!(error.setting, MAX_TOKEN_TTL_SETTING);
        assert_eq!(
            Settings::from_env(&env("anonymous").with(TOKEN_TTL_SETTING, "0"))
                .unwrap_err()
                .setting,
            TOKEN_TTL_SETTING
        );
        assert_eq!(
            Settings::from_env(&env("anonymous").with(TOKEN_TTL_SETTING, "soon"))
                .unwrap_err()
                .setting,
            TOKEN_TTL_SETTING
        );
    }

    #[test]
    fn role_settings_must_name_service_roles() {
        for setting in [DEFAULT_ROLES_SETTING, ALLOWED_ROLES_SETTING] {
            for bad in [
                "admin",
                "webpubsub.joinLeaveGroup*",
                "webpubsub.sendToGroup.",
                "webpubsub.joinLeaveGroups.",
            ] {
                let error = Settings::from_env(&env("anonymous").with(setting, bad)).unwrap_err();
                assert_eq!(error.setting, setting, "{bad}");
            }
        }
        let env = env("anonymous")
            .with(
                DEFAULT_ROLES_SETTING,
                "webpubsub.sendToGroup.user:{userId}, webpubsub.joinLeaveGroup",
            )
            .with(
                ALLOWED_ROLES_SETTING,
                "webpubsub.joinLeaveGroup.room:*,webpubsub.sendToGroups.team.*",
            );
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.default_roles.len(), 2);
        assert_eq!(settings.allowed_roles.len(), 2);
    }

    #[test]
    fn bad_templates_hubs_and_limits_name_their_setting() {
        let cases = [(ALLOWED_GROUPS_SETTING, "room:**"), (RATE_LIMIT_SETTING, "-1")];
        for (setting, value) in cases {
            assert_eq!(
                Settings::from_env(&env("anonymous").with(setting, value))
                    .unwrap_err()
                    .setting,
                setting,
                "{value}"
            );
        }
    }

    // ----- the reply -----

    #[tokio::test]
    async fn anonymous_post_issues_a_token_in_both_shapes() {
        let route = route_for(&env("anonymous"));
        let reply = post(&route, json!({"userId": "ada"})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
        let token = reply.body["token"].as_str().unwrap();
        assert_eq!(reply.body["accessToken"], token);
        assert_eq!(reply.body["baseUrl"], "ws://localhost:8080/client/hubs/chat");
        assert_eq!(
            reply.body["url"],
            format!("ws://localhost:8080/client/hubs/chat?access_token={token}")
        );
        assert_eq!(reply.body["userId"], "ada");
        let claims = claims(&reply, "/client/hubs/chat");
        assert_eq!(claims["sub"], "ada");
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
        assert!(
            claims.get("role").is_none() && claims.get("webpubsub.group").is_none(),
            "{claims}"
        );
        assert_eq!(reply.body["expiresOn"], rfc3339(claims["exp"].as_u64().unwrap()));
    }

    #[tokio::test]
    async fn anonymous_callers_without_an_id_get_a_generated_one() {
        let route = route_for(&env("anonymous"));
        let first = post(&route, json!({})).await;
        let second = get(&route, "").await;
        let (a, b) = (
            first.body["userId"].as_str().unwrap(),
            second.body["userId"].as_str().unwrap(),
        );
        assert!(a.starts_with("anonymous-") && b.starts_with("anonymous-"));
        assert_ne!(a, b);
        assert_eq!(claims(&first, "/client/hubs/chat")["sub"], a);
    }

    #[tokio::test]
    async fn anonymous_user_ids_are_validated() {
        let route = route_for(&env("anonymous"));
        assert_error(
            &post(&route, json!({"userId": ""})).await,
            StatusCode::BAD_REQUEST,
            "InvalidUserId",
        );
        assert_error(
            &post(&route, json!({"userId": "a\u{0}b"})).await,
            StatusCode::BAD_REQUEST,
            "InvalidUserId",
        );
        assert_error(
            &post(&route, json!({"userId": "x".repeat(300)})).await,
            StatusCode::BAD_REQUEST,
            "InvalidUserId",
        );
    }

    #[tokio::test]
    async fn get_reads_the_query_with_comma_separated_and_repeated_lists() {
        let env = env("anonymous")
            .with(ALLOWED_GROUPS_SETTING, "room:*")
            .with(ALLOWED_ROLES_SETTING, "webpubsub.sendToGroup.room:*")
            .with(MAX_TOKEN_TTL_SETTING, "120");
        let route = route_for(&env);
        let reply = get(
            &route,
            "?userId=ada&groups=room:1%2Croom:2&groups=room:3&roles=webpubsub.sendToGroup.room:1&minutesToExpire=5&code=functionkey",
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let claims = claims(&reply, "/client/hubs/chat");
        assert_eq!(claims["webpubsub.group"], json!(["room:1", "room:2", "room:3"]));
        assert_eq!(claims["role"], json!(["webpubsub.sendToGroup.room:1"]));
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 300);
    }

    #[tokio::test]
    async fn a_post_without_body_reads_the_query() {
        let route = route_for(&env("anonymous"));
        let reply = send(
            &route,
            warp::test::request().method("POST").path("/api/negotiate?userId=bob"),
        )
        .await;
        assert_eq!(reply.body["userId"], "bob");
    }

    // ----- rights -----

    fn policy_env() -> Env {
        env("anonymous")
            .with(
                DEFAULT_ROLES_SETTING,
                "webpubsub.sendToGroup.notifications:user:{userId}",
            )
            .with(ALLOWED_GROUPS_SETTING, "notifications:user:{userId},conversation:*")
            .with(
                ALLOWED_ROLES_SETTING,
                "webpubsub.joinLeaveGroup.conversation:*,webpubsub.joinLeaveGroups.user.{userId}.*",
            )
    }

    #[tokio::test]
    async fn allowed_groups_and_roles_are_granted_on_top_of_the_defaults() {
        let route = route_for(&policy_env());
        let reply = post(
            &route,
            json!({
                "userId": "ada",
                "groups": ["notifications:user:ada", "conversation:42", "conversation:42"],
                "roles": ["webpubsub.joinLeaveGroup.conversation:42", "webpubsub.joinLeaveGroups.user.ada.*"]
            }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let claims = claims(&reply, "/client/hubs/chat");
        assert_eq!(
            claims["webpubsub.group"],
            json!(["notifications:user:ada", "conversation:42"])
        );
        assert_eq!(
            claims["role"],
            json!([
                "webpubsub.sendToGroup.notifications:user:ada",
                "webpubsub.joinLeaveGroup.conversation:42",
                "webpubsub.joinLeaveGroups.user.ada.*"
            ])
        );
    }

    #[tokio::test]
    async fn other_groups_are_forbidden_and_named() {
        let route = route_for(&policy_env());
        for group in ["notifications:user:bob", "lobby", "conversation:"] {
            let reply = post(&route, json!({"userId": "ada", "groups": [group]})).await;
            assert_error(&reply, StatusCode::FORBIDDEN, "GroupNotAllowed");
            assert_eq!(reply.body["group"], group);
            assert!(reply.body["message"].as_str().unwrap().contains(group));
        }
    }

    #[tokio::test]
    async fn other_roles_are_forbidden_and_named() {
        let route = route_for(&policy_env());
        for role in [
            "webpubsub.sendToGroup.conversation:42",
            "webpubsub.joinLeaveGroup",
            "webpubsub.joinLeaveGroups.user.bob.*",
            "webpubsub.joinLeaveGroups.user.ada.**",
            "webpubsub.joinLeaveGroups.**",
        ] {
            let reply = post(&route, json!({"userId": "ada", "roles": [role]})).await;
            assert_error(&reply, StatusCode::FORBIDDEN, "RoleNotAllowed");
            assert_eq!(reply.body["role"], role);
        }
    }

    #[tokio::test]
    async fn a_user_id_with_wildcards_cannot_widen_a_wildcard_role() {
        let route = route_for(&policy_env());
        let reply = post(
            &route,
            json!({"userId": "*", "roles": ["webpubsub.joinLeaveGroups.user.*.*"]}),
        )
        .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "RoleNotAllowed");
        let reply = post(
            &route,
            json!({"userId": "*", "roles": [r"webpubsub.joinLeaveGroups.user.\*.*"]}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    #[tokio::test]
    async fn malformed_groups_and_roles_are_bad_requests() {
        let route = route_for(&policy_env());
        assert_error(
            &post(&route, json!({"groups": ["  "]})).await,
            StatusCode::BAD_REQUEST,
            "InvalidGroup",
        );
        assert_error(
            &post(&route, json!({"roles": ["admin"]})).await,
            StatusCode::BAD_REQUEST,
            "InvalidRole",
        );
        let many: Vec<String> = (0..101).map(|i| format!("conversation:{i}")).collect();
        assert_error(
            &post(&route, json!({"groups": many})).await,
            StatusCode::BAD_REQUEST,
            "TooManyItems",
        );
        let query: String = (0..101).map(|i| format!("&groups=conversation:{i}")).collect();
        assert_error(
            &get(&route, &format!("?userId=ada{query}")).await,
            StatusCode::BAD_REQUEST,
            "TooManyItems",
        );
    }

    // ----- lifetime, hub, client type -----

    #[tokio::test]
    async fn callers_may_shorten_but_never_lengthen_the_lifetime() {
        let route = route_for(
            &env("anonymous")
                .with(TOKEN_TTL_SETTING, "30")
                .with(MAX_TOKEN_TTL_SETTING, "45"),
        );
        let default = post(&route, json!({})).await;
        let claims_default = claims(&default, "/client/hubs/chat");
        assert_eq!(
            claims_default["exp"].as_u64().unwrap() - claims_default["iat"].as_u64().unwrap(),
            30 * 60
        );
        let longer = post(&route, json!({"minutesToExpire": 45})).await;
        let claims_longer = claims(&longer, "/client/hubs/chat");
        assert_eq!(
            claims_longer["exp"].as_u64().unwrap() - claims_longer["iat"].as_u64().unwrap(),
            45 * 60
        );
        for minutes in [0, 46, 100_000] {
            let reply = post(&route, json!({"minutesToExpire": minutes})).await;
            assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidTokenLifetime");
            assert!(reply.body["message"].as_str().unwrap().contains("45"));
        }
    }

    #[tokio::test]
    async fn hubs_come_from_the_allow_list() {
        let route = route_for(&env("anonymous").with("WebPubSubAllowedHubs", "Lobby,game"));
        let reply = post(&route, json!({"hub": "lobby"})).await;
        assert_eq!(reply.body["baseUrl"], "ws://localhost:8080/client/hubs/Lobby");
        claims(&reply, "/client/hubs/Lobby");
        assert_eq!(post(&route, json!({"hub": "chat"})).await.status, StatusCode::OK);
        let reply = post(&route, json!({"hub": "admin"})).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "HubNotAllowed");
        assert_eq!(reply.body["hub"], "admin");
        assert_error(
            &post(&route, json!({"hub": "no spaces"})).await,
            StatusCode::BAD_REQUEST,
            "InvalidHub",
        );
    }

    #[tokio::test]
    async fn client_types_choose_the_endpoint_path() {
        let route = route_for(&env("anonymous"));
        for (name, path) in [
            ("default", "/client/hubs/chat"),
            ("MQTT", "/clients/mqtt/hubs/chat"),
            ("socketio", "/clients/socketio/hubs/chat"),
        ] {
            let reply = post(&route, json!({"clientType": name})).await;
            assert_eq!(reply.body["baseUrl"], format!("ws://localhost:8080{path}"), "{name}");
            claims(&reply, path);
        }
        assert_error(
            &post(&route, json!({"clientType": "carrier-pigeon"})).await,
            StatusCode::BAD_REQUEST,
            "InvalidClientType",
        );
        assert_error(
            &get(&route, "?clientType=x").await,
            StatusCode::BAD_REQUEST,
            "InvalidClientType",
        );
    }

    // ----- bad input -----

    #[tokio::test]
    async fn bad_bodies_are_400s_with_stable_codes() {
        let route = route_for(&env("anonymous"));
        let raw = |body: &'static str| warp::test::request().method("POST").path("/api/negotiate").body(body);
        assert_error(
            &send(&route, raw("{not json")).await,
            StatusCode::BAD_REQUEST,
            "InvalidJson",
        );
        assert_error(
            &send(&route, raw("[1,2]")).await,
            StatusCode::BAD_REQUEST,
            "InvalidField",
        );
        assert_error(
            &post(&route, json!({"groups": "room"})).await,
            StatusCode::BAD_REQUEST,
            "InvalidField",
        );
        assert_error(
            &post(&route, json!({"minutesToExpire": "5"})).await,
            StatusCode::BAD_REQUEST,
            "InvalidField",
        );
        assert_error(
            &post(&route, json!({"minutesToExpire": 1.5})).await,
            StatusCode::BAD_REQUEST,
            "InvalidField",
        );
        assert_error(
            &post(&route, json!({"userId": 7})).await,
            StatusCode::BAD_REQUEST,
            "InvalidField",
        );
        assert_error(
            &get(&route, "?minutesToExpire=soon").await,
            StatusCode::BAD_REQUEST,
            "InvalidField",
        );
    }

    #[tokio::test]
    async fn unknown_fields_and_nulls_are_ignored() {
        let route = route_for(&env("anonymous"));
        let reply = post(
            &route,
            json!({"userId": "ada", "color": "blue", "hub": null, "groups": null}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused() {
        let route = route_for(&env("anonymous"));
        let body = format!(r#"{{"userId":"{}"}}"#, "a".repeat(MAX_BODY_BYTES as usize));
        let reply = send(
            &route,
            warp::test::request().method("POST").path("/api/negotiate").body(body),
        )
        .await;
        assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge");
    }

    #[tokio::test]
    async fn other_methods_are_not_served() {
        let route = route_for(&env("anonymous"));
        let reply = send(&route, warp::test::request().method("DELETE").path("/api/negotiate")).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    // ----- identity modes -----

    #[tokio::test]
    async fn appservice_mode_uses_the_principal_and_refuses_without_it() {
        let route = route_for(&env("appservice"));
        let request = || warp::test::request().method("POST").path("/api/negotiate");
        assert_error(
            &send(&route, request()).await,
            StatusCode::UNAUTHORIZED,
            "MissingCredentials",
        );
        let reply = send(&route, request().header("x-ms-client-principal-id", "ada-object-id")).await;
        assert_eq!(reply.body["userId"], "ada-object-id");
        let mismatch = send(
            &route,
            request()
                .header("x-ms-client-principal-id", "ada-object-id")
                .body(r#"{"userId":"bob"}"#),
        )
        .await;
        assert_error(&mismatch, StatusCode::FORBIDDEN, "UserIdMismatch");
        let bad = send(
            &route,
            request()
                .header("x-ms-client-principal-id", "a")
                .header("x-ms-client-principal", "%%%"),
        )
        .await;
        assert_error(&bad, StatusCode::UNAUTHORIZED, "InvalidCredentials");
    }

    fn jwt_env() -> Env {
        env("jwt")
            .with("AuthJwtIssuer", "https://issuer.example")
            .with("AuthJwtAudience", "api://negotiate")
            .with("AuthJwtSecret", JWT_SECRET)
    }

    fn hs_token(claims: Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn idp_claims(sub: &str) -> Value {
        json!({"iss": "https://issuer.example", "aud": "api://negotiate", "sub": sub, "oid": "object-1", "exp": now() + 300})
    }

    fn with_bearer(token: &str) -> warp::test::RequestBuilder {
        warp::test::request()
            .method("POST")
            .path("/api/negotiate")
            .header("authorization", format!("Bearer {token}"))
    }

    #[tokio::test]
    async fn jwt_mode_takes_the_user_id_from_the_token() {
        let route = route_for(&jwt_env());
        let reply = send(&route, with_bearer(&hs_token(idp_claims("ada")))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["userId"], "ada");
        assert_eq!(claims(&reply, "/client/hubs/chat")["sub"], "ada");
        let oid_route = route_for(&jwt_env().with("AuthUserIdClaim", "oid"));
        assert_eq!(
            send(&oid_route, with_bearer(&hs_token(idp_claims("ada")))).await.body["userId"],
            "object-1"
        );
    }

    #[tokio::test]
    async fn jwt_mode_rejects_missing_and_invalid_tokens() {
        let route = route_for(&jwt_env());
        assert_error(
            &send(&route, warp::test::request().method("POST").path("/api/negotiate")).await,
            StatusCode::UNAUTHORIZED,
            "MissingCredentials",
        );
        let mut expired = idp_claims("ada");
        expired["exp"] = json!(now() - 3600);
        let reply = send(&route, with_bearer(&hs_token(expired))).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "InvalidCredentials");
        assert!(reply.body["message"].as_str().unwrap().contains("expired"));
        let mut foreign = idp_claims("ada");
        foreign["aud"] = json!("api://someone-else");
        assert_error(
            &send(&route, with_bearer(&hs_token(foreign))).await,
            StatusCode::UNAUTHORIZED,
            "InvalidCredentials",
        );
        assert_error(
            &send(&route, with_bearer("garbage")).await,
            StatusCode::UNAUTHORIZED,
            "InvalidCredentials",
        );
        // A caller-chosen userId other than the token's is refused.
        let mismatch = send(
            &route,
            with_bearer(&hs_token(idp_claims("ada"))).body(r#"{"userId":"bob"}"#),
        )
        .await;
        assert_error(&mismatch, StatusCode::FORBIDDEN, "UserIdMismatch");
    }

    #[tokio::test]
    async fn jwt_mode_with_a_jwks_url_verifies_rs256_tokens() {
        let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
        let env = jwt_env().with("AuthJwtSecret", "").with("AuthJwksUrl", server.url());
        let route = route_for(&env);
        let reply = send(
            &route,
            with_bearer(&rs_token("test-key-1", TEST_KEY_1_PEM, idp_claims("ada"))),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["userId"], "ada");
    }

    #[tokio::test]
    async fn an_unreachable_identity_provider_is_a_503_with_retry_after() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        drop(listener);
        let route = route_for(&jwt_env().with("AuthJwtSecret", "").with("AuthJwksUrl", url));
        let reply = send(
            &route,
            with_bearer(&rs_token("test-key-1", TEST_KEY_1_PEM, idp_claims("ada"))),
        )
        .await;
        assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "IdentityProviderUnavailable");
        assert!(reply.headers.contains_key(header::RETRY_AFTER));
    }

    // ----- abuse guard -----

    #[tokio::test]
    async fn the_rate_limit_is_per_identity_with_retry_after() {
        let route = route_for(&env("anonymous").with(RATE_LIMIT_SETTING, "2"));
        for _ in 0..2 {
            assert_eq!(post(&route, json!({"userId": "ada"})).await.status, StatusCode::OK);
        }
        let limited = post(&route, json!({"userId": "ada"})).await;
        assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
        let retry_after: u64 = limited.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        assert_eq!(post(&route, json!({"userId": "bob"})).await.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn without_a_rate_limit_many_requests_pass() {
        let route = route_for(&env("anonymous"));
        for _ in 0..50 {
            assert_eq!(post(&route, json!({"userId": "ada"})).await.status, StatusCode::OK);
        }
    }

    // ----- logging -----

    #[tokio::test]
    async fn each_issue_is_logged_without_the_token() {
        let (captured, _guard) = crate::testing::capture_logs();
        let route = route_for(&policy_env());
        let reply = post(&route, json!({"userId": "ada", "groups": ["conversation:7"]})).await;
        assert_eq!(reply.status, StatusCode::OK);
        let token = reply.body["token"].as_str().unwrap();
        let logs = captured.text();
        let line = logs
            .lines()
            .find(|l| l.contains("Issued Web PubSub access token"))
            .expect(&logs);
        for field in [
            "user_id=ada",
            "hub=chat",
            "roles=webpubsub.sendToGroup.notifications:user:ada",
            "groups=conversation:7",
        ] {
            assert!(line.contains(field), "{field} missing in {line}");
        }
        assert!(!logs.contains(token), "the token must never be logged");
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature));
    }

    // ----- helpers -----

    #[test]
    fn rfc3339_known_answers() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn joined_lists() {
        assert_eq!(Joined(&[]).to_string(), "");
        assert_eq!(Joined(&["a".into(), "b".into()]).to_string(), "a,b");
    }

    proptest::proptest! {
        #[test]
        fn request_parsers_never_panic(input in "\\PC{0,200}") {
            let _ = parse_query(&input);
            let _ = parse_json(input.as_bytes());
        }
    }
}
