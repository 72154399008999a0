//! The policy of `negotiate`: which role names are the service's, and what one caller may get — the hub
//! (the one resolver, [`crate::webpubsub::Hubs`]), the rate limit, the token lifetime, the client type, the
//! groups and roles allowed by the configured templates.

use std::str::FromStr;
use std::time::Duration;

use super::request::{NegotiateRequest, too_many};
use super::{MAX_REQUESTED_ITEMS, State};
use crate::auth::RateDecision;
use crate::auth::template::{Template, TemplateError};
use crate::config::{ConfigError, Env};
use crate::error::ApiError;
use crate::functions::refused_hub;
use crate::webpubsub::{ClientAccessRequest, ClientType, validate};

/// Parses a list of role templates, refusing names that are not Web PubSub roles (typos would otherwise
/// silently grant nothing, or match nothing).
pub(super) fn role_templates(
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

/// Whether `name` is a Web PubSub role granting a group permission (the protocol crate's one role parser).
pub(super) fn is_service_role(name: &str) -> bool {
    webpubsub_protocol::roles::parse_role(name).is_some()
}

impl State {
    /// What `user_id` may have for `request`: the hub and the access to sign, or the refusal (429 past the
    /// rate limit, 400 for a malformed ask, 403 for one the policy does not allow).
    pub(super) fn grant(
        &self,
        request: NegotiateRequest,
        user_id: &str,
    ) -> Result<(&str, ClientAccessRequest), ApiError> {
        if let Some(limiter) = &self.rate_limiter
            && let RateDecision::Limited { retry_after_secs } = limiter.check(user_id)
        {
            tracing::info!(user_id, retry_after_secs, "negotiate rate limit exceeded");
            return Err(ApiError::too_many_requests(retry_after_secs));
        }
        let hub = self.hub(request.hub.as_deref())?;
        let ttl_minutes = self.ttl_minutes(request.minutes_to_expire)?;
        let client_type = match request.client_type.as_deref() {
            None => ClientType::Default,
            Some(name) => ClientType::from_str(name).map_err(|_| {
                ApiError::bad_request("InvalidClientType", "clientType must be default, mqtt or socketio")
                    .with_detail("field", "clientType")
            })?,
        };
        let groups = self.groups(request.groups.unwrap_or_default(), user_id)?;
        let roles = self.roles(request.roles.unwrap_or_default(), user_id)?;
        let access = ClientAccessRequest {
            user_id: Some(user_id.to_owned()),
            roles,
            groups,
            ttl: Duration::from_secs(u64::from(ttl_minutes) * 60),
            client_type,
        };
        Ok((hub, access))
    }
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
            // The id must fit the template and make a valid role (no `,` or control character).
            let role = template
                .try_render(user_id)
                .filter(|role| validate::role(role).is_ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "InvalidUserId",
                        format!("the user id does not fit the default role {template}"),
                    )
                    .with_detail("field", "userId")
                })?;
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
