//! The configured answer to `connect`: the draft the settings give before the application's hook
//! (subprotocol, user id, default groups and roles), then the checks no hook can skip.

use warp::reply::Response;

use super::super::connection_state::ConnectionState;
use super::super::names;
use super::super::settings::{ConnectPolicy, UserIdSource};
use super::ConnectRequest;
use super::body::ConnectBody;
use super::body::MqttUserProperty;
use crate::error::ApiError;

/// Longest user id accepted from a claim or the query (the service's own limit is not documented).
pub(super) const MAX_USER_ID_CHARS: usize = 1024;

/// The answer to a `connect`, drafted from settings and refined by the application's hook.
///
/// Fields describe the connection as it should be, not a difference: the reply sends a field only when it
/// changes what the client token already said (the service *replaces* roles and groups it is sent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectResponse {
    /// The connection's user id.
    pub user_id: Option<String>,
    /// Groups the connection joins: the token's plus the configured defaults.
    pub groups: Vec<String>,
    /// The connection's roles: the token's plus the configured defaults.
    pub roles: Vec<String>,
    /// The chosen subprotocol; must be one the client offered.
    pub subprotocol: Option<String>,
    /// Initial connection state (`ce-connectionState`); sent when not empty.
    pub state: ConnectionState,
    /// MQTT 5 user properties for the CONNACK.
    pub mqtt_user_properties: Vec<MqttUserProperty>,
}

impl ConnectResponse {
    /// Adds `group` unless already present.
    pub fn add_group(&mut self, group: impl Into<String>) {
        push_unique(&mut self.groups, group.into());
    }

    /// Adds `role` unless already present.
    pub fn add_role(&mut self, role: impl Into<String>) {
        push_unique(&mut self.roles, role.into());
    }
}

pub(super) fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Step 1: the answer the settings give, before the application's hook.
pub(crate) fn draft(policy: &ConnectPolicy, request: &ConnectRequest<'_>) -> Result<ConnectResponse, ApiError> {
    let body = &request.body;
    let subprotocol = choose_subprotocol(policy, body)?;
    let user_id = resolve_user_id(&policy.user_id_source, request.event.user_id(), body)?;

    let mut groups = Vec::new();
    let mut roles = Vec::new();
    // The token is signed, but its claims are still input: a bad group or role is the token's fault (400),
    // not the hook's, and is refused before it could be forwarded.
    for group in body.token_groups() {
        if !names::is_group(group) {
            return Err(invalid_claims(
                "a group in the token is blank, longer than 1024 characters, or holds a control character or comma",
                "InvalidGroup",
            ));
        }
        push_unique(&mut groups, group.to_owned());
    }
    for role in body.token_roles() {
        if !names::is_role(role) {
            return Err(invalid_claims(
                "a role in the token is empty, longer than 1024 characters, or holds a control character or comma",
                "InvalidRole",
            ));
        }
        push_unique(&mut roles, role.to_owned());
    }
    let user_id_does_not_fit = || {
        ApiError::bad_request(
            "InvalidUserId",
            "the user id does not fit in a group name or role (1 to 1024 characters, no control character or comma, \
             and not the separator that follows {userId} in a default group or role)",
        )
    };
    // A template naming {userId} needs a user; the others apply to every connection. An id holding the
    // separator after {userId} would name another user's group, so it is refused, never rendered.
    let render = |template: &crate::auth::template::Template| match user_id.as_deref() {
        Some(user_id) => template.try_render(user_id).map(Some).ok_or_else(user_id_does_not_fit),
        None if template.uses_user_id() => Ok(None),
        None => Ok(Some(template.render(""))),
    };
    for template in &policy.default_groups {
        let Some(group) = render(template)? else { continue };
        if !names::is_group(&group) {
            return Err(user_id_does_not_fit());
        }
        push_unique(&mut groups, group);
    }
    for template in &policy.default_roles {
        let Some(role) = render(template)? else { continue };
        if !names::is_role(&role) {
            return Err(user_id_does_not_fit());
        }
        push_unique(&mut roles, role);
    }
    let response = ConnectResponse {
        user_id,
        groups,
        roles,
        subprotocol,
        ..ConnectResponse::default()
    };
    Ok(response)
}

/// A 400 for a token claim that cannot be forwarded; logged at warn by the event's log line.
fn invalid_claims(message: &str, code: &'static str) -> ApiError {
    ApiError::bad_request(code, message).with_detail("reason", "InvalidClaims")
}

/// The first subprotocol of the preference list that the client offered. None offered → none chosen; MQTT
/// clients keep theirs (the service handles MQTT framing); offers none of which is acceptable → 400, a clear
/// refusal instead of a handshake the client would fail anyway.
pub(super) fn choose_subprotocol(policy: &ConnectPolicy, body: &ConnectBody<'_>) -> Result<Option<String>, ApiError> {
    if body.subprotocols.is_empty() || body.is_mqtt() {
        return Ok(None);
    }
    policy
        .subprotocols
        .iter()
        .find(|preferred| {
            body.subprotocols
                .iter()
                .any(|offered| offered.eq_ignore_ascii_case(preferred))
        })
        .map(|chosen| Some(chosen.clone()))
        .ok_or_else(|| {
            ApiError::bad_request("UnsupportedSubprotocol", "none of the offered subprotocols is accepted")
                .with_detail("accepted", &policy.subprotocols)
        })
}

/// The connection's user id per [`UserIdSource`]. A claim overrides the token's subject (both come from the
/// signed token); the query, being client-supplied, is used only when the token names no user.
pub(super) fn resolve_user_id(
    source: &UserIdSource,
    token_user: Option<&str>,
    body: &ConnectBody<'_>,
) -> Result<Option<String>, ApiError> {
    let chosen = match source {
        UserIdSource::Token => token_user,
        UserIdSource::Claim(claim) => body.claims.first(claim).or(token_user),
        UserIdSource::Query(param) => token_user.or_else(|| body.query.first(param)),
    };
    match chosen {
        None => Ok(None),
        Some(user_id) if Some(user_id) == token_user => Ok(Some(user_id.to_owned())),
        Some(user_id) => {
            check_user_id(user_id)?;
            Ok(Some(user_id.to_owned()))
        }
    }
}

/// A user id taken from a claim or the query: 1 to 1024 characters, not blank, no control characters.
pub(super) fn check_user_id(user_id: &str) -> Result<(), ApiError> {
    let too_long = user_id.len() > MAX_USER_ID_CHARS && user_id.chars().count() > MAX_USER_ID_CHARS;
    if user_id.trim().is_empty() || too_long || user_id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "InvalidUserId",
            format!("the user id must be 1 to {MAX_USER_ID_CHARS} characters, not blank, without control characters"),
        ));
    }
    Ok(())
}

/// Step 3: the checks no hook can skip, then the reply. Policy refusals are 401 (`UserIdRequired`);
/// an answer the hook got wrong is the application's fault (500), never the client's.
pub(crate) fn finish(
    policy: &ConnectPolicy,
    request: &ConnectRequest<'_>,
    response: ConnectResponse,
) -> Result<Response, ApiError> {
    if policy.require_user_id && response.user_id.is_none() {
        return Err(ApiError::unauthorized("a user id is required to connect").with_detail("reason", "UserIdRequired"));
    }
    if let Some(subprotocol) = &response.subprotocol
        && !request
            .body
            .subprotocols
            .iter()
            .any(|offered| offered.eq_ignore_ascii_case(subprotocol))
    {
        return Err(ApiError::internal(
            "connect hook",
            "chose a subprotocol the client did not offer",
        ));
    }
    if response.user_id.as_deref() == Some("") {
        return Err(ApiError::internal("connect hook", "set an empty user id"));
    }
    // The draft's names were checked already, so a bad one here came from the hook.
    if !response.groups.iter().all(|group| names::is_group(group)) {
        return Err(ApiError::internal("connect hook", "set an invalid group name"));
    }
    if !response.roles.iter().all(|role| names::is_role(role)) {
        return Err(ApiError::internal("connect hook", "set an invalid role"));
    }
    Ok(super::reply::reply(request, &response))
}
