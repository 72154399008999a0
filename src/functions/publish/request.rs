//! Request bodies of `publish`: parsed and validated into a plan of REST calls before any call is made, so
//! a bad field anywhere in a batch is a 400 naming that field and nothing reaches the service.
//!
//! Field names and `actionName`/`dataType` values match ignoring ASCII case, as the Functions extension
//! does. A field that is null is absent. A field that no action uses is `UnknownField`; a known field
//! that the given action does not use is `FieldNotApplicable` (a silently ignored `excluded` could send a
//! message to someone it was meant to skip) unless it is null, `""` or `[]`, which generic builders emit.

use serde_json::{Map, Value};

pub(crate) use super::actions::ActionKind;
use super::fields::{At, Fields};
use crate::error::ApiError;
use crate::functions::refused_hub;
use crate::webpubsub::Hubs;
use crate::webpubsub::validate;
use crate::webpubsub::{ApiRequest, ContentType, ListConnectionsOptions, Permission, ValidationError};

/// Most actions one request may carry.
pub(crate) const MAX_ACTIONS: usize = 100;
/// The hub an action names (or the default), as configured.
fn resolve_hub(hubs: &Hubs, requested: Option<&str>) -> Result<String, ApiError> {
    hubs.resolve(requested)
        .map(str::to_owned)
        .map_err(|refusal| refused_hub(refusal, requested.unwrap_or_default(), "publish"))
}

/// One validated action, ready to send.
#[derive(Debug, Clone)]
pub(super) struct PlannedAction {
    pub kind: ActionKind,
    /// The hub, as configured.
    pub hub: String,
    pub request: ApiRequest,
    /// Where it goes, for the log line.
    pub target: Target,
    /// For sends: the payload type and size, for the log line.
    pub message: Option<(ContentType, usize)>,
    /// For `listConnectionsInGroup`: the page asked for.
    pub page: Option<ListConnectionsOptions>,
}

/// A validated request: its actions, in order.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub actions: Vec<PlannedAction>,
    /// The simple form's `user_id`: who the caller says published (the recipe's body), logged as
    /// `user_id=` and trusted for nothing else. `None` for action objects.
    pub attribution: Option<String>,
    /// Whether the body was the simple form (its answer carries `"status": "published"`).
    pub simple: bool,
}

/// The group, user and connection an action addresses (each when it has one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Target {
    pub group: Option<String>,
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
}

/// Parses a request body: a simple-form object, one action object, or an array of 1 to [`MAX_ACTIONS`]
/// action objects.
pub(super) fn parse(body: &[u8], hubs: &Hubs) -> Result<Plan, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "EmptyBody",
            "the request body is empty: send a JSON object or an array of actions",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("InvalidJson", format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("NoActions", "the array of actions is empty"));
            }
            if items.len() > MAX_ACTIONS {
                return Err(ApiError::bad_request(
                    "TooManyActions",
                    format!("a request may carry at most {MAX_ACTIONS} actions, got {}", items.len()),
                ));
            }
            let actions = items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Object(map) => parse_action(map, Some(index), hubs),
                    _ => Err(At {
                        index: Some(index),
                        action: None,
                    }
                    .error("InvalidAction", "actionName", "each action must be a JSON object")),
                })
                .collect::<Result<_, _>>()?;
            Ok(Plan {
                actions,
                attribution: None,
                simple: false,
            })
        }
        Value::Object(map) => {
            if map.keys().any(|key| key.eq_ignore_ascii_case("actionName")) {
                Ok(Plan {
                    actions: vec![parse_action(&map, None, hubs)?],
                    attribution: None,
                    simple: false,
                })
            } else {
                let (action, attribution) = parse_simple(&map, hubs)?;
                Ok(Plan {
                    actions: vec![action],
                    attribution,
                    simple: true,
                })
            }
        }
        _ => Err(ApiError::bad_request(
            "InvalidBody",
            "the request body must be a JSON object or an array of action objects",
        )),
    }
}

/// `{"group"|"room": "...", "message": ..., "user_id"?, "dataType"?, "hub"?, "excluded"?, "filter"?,
/// "messageTtlSeconds"?}`: a `sendToGroup`, with the publisher's `user_id` (the recipe's attribution).
fn parse_simple(map: &Map<String, Value>, hubs: &Hubs) -> Result<(PlannedAction, Option<String>), ApiError> {
    let mut fields = Fields::new(
        map,
        At {
            index: None,
            action: None,
        },
    )?;
    let group = fields.string("group")?;
    let room = fields.string("room")?;
    let group = match (group, room) {
        (Some(group), Some(room)) if group != room => {
            return Err(fields.at.error(
                "ConflictingFields",
                "room",
                "group and room name the same thing; give one of them",
            ));
        }
        (Some(group), _) | (None, Some(group)) => group,
        (None, None) => return Err(fields.at.error("MissingField", "group", "group (or room) is required")),
    };
    let attribution = fields.string("user_id")?;
    if let Some(user_id) = attribution {
        validate::user_id(user_id).map_err(|e| fields.at.invalid(&e, "user_id"))?;
    }
    let hub = resolve_hub(hubs, fields.string("hub")?)?;
    let message = fields.message("message")?;
    let options = fields.send_options(true, true)?;
    fields.finish()?;
    let request = ApiRequest::send_to_group(&hub, group, &message, &options)
        .map_err(|e| fields.at.invalid(&e, field_of(&e, ActionKind::SendToGroup, "message")))?;
    let action = PlannedAction {
        kind: ActionKind::SendToGroup,
        hub,
        request,
        target: Target {
            group: Some(group.to_owned()),
            ..Target::default()
        },
        message: Some((message.content_type(), message.len())),
        page: None,
    };
    Ok((action, attribution.map(str::to_owned)))
}

/// An action object of the Functions output binding.
fn parse_action(map: &Map<String, Value>, index: Option<usize>, hubs: &Hubs) -> Result<PlannedAction, ApiError> {
    use ActionKind::*;
    let mut fields = Fields::new(map, At { index, action: None })?;
    let name = fields.required_string("actionName")?;
    let kind = ActionKind::parse(name).ok_or_else(|| {
        let names: Vec<&str> = ActionKind::ALL.iter().map(|kind| kind.name()).collect();
        fields.at.error(
            "UnknownAction",
            "actionName",
            format!("actionName {name:?} is not supported; use one of {}", names.join(", ")),
        )
    })?;
    fields.at.action = Some(kind);
    let hub = resolve_hub(hubs, fields.string("hub")?)?;
    let mut target = Target::default();
    let mut message = None;
    let mut page = None;
    let request = match kind {
        SendToAll | SendToGroup | SendToUser | SendToConnection => {
            let payload = fields.message("data")?;
            message = Some((payload.content_type(), payload.len()));
            match kind {
                SendToAll => {
                    let options = fields.send_options(true, true)?;
                    ApiRequest::send_to_all(&hub, &payload, &options)
                }
                SendToGroup => {
                    let group = target.group.insert(fields.required_string("group")?.to_owned());
                    let options = fields.send_options(true, true)?;
                    ApiRequest::send_to_group(&hub, group, &payload, &options)
                }
                SendToUser => {
                    let user_id = target.user_id.insert(fields.required_string("userId")?.to_owned());
                    let options = fields.send_options(false, true)?;
                    ApiRequest::send_to_user(&hub, user_id, &payload, &options)
                }
                _ => {
                    let connection_id = target
                        .connection_id
                        .insert(fields.required_string("connectionId")?.to_owned());
                    let options = fields.send_options(false, false)?;
                    ApiRequest::send_to_connection(&hub, connection_id, &payload, &options)
                }
            }
        }
        AddUserToGroup | RemoveUserFromGroup => {
            let user_id = target.user_id.insert(fields.required_string("userId")?.to_owned());
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            if kind == AddUserToGroup {
                ApiRequest::add_user_to_group(&hub, group, user_id)
            } else {
                ApiRequest::remove_user_from_group(&hub, group, user_id)
            }
        }
        RemoveUserFromAllGroups => {
            let user_id = target.user_id.insert(fields.required_string("userId")?.to_owned());
            ApiRequest::remove_user_from_all_groups(&hub, user_id)
        }
        AddConnectionToGroup | RemoveConnectionFromGroup => {
            let connection_id = target
                .connection_id
                .insert(fields.required_string("connectionId")?.to_owned());
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            if kind == AddConnectionToGroup {
                ApiRequest::add_connection_to_group(&hub, group, connection_id)
            } else {
                ApiRequest::remove_connection_from_group(&hub, group, connection_id)
            }
        }
        CloseAllConnections => {
            let options = fields.close_options()?;
            ApiRequest::close_all_connections(&hub, &options)
        }
        CloseClientConnection => {
            let connection_id = target
                .connection_id
                .insert(fields.required_string("connectionId")?.to_owned());
            let reason = fields.reason()?;
            ApiRequest::close_connection(&hub, connection_id, reason)
        }
        CloseGroupConnections => {
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            let options = fields.close_options()?;
            ApiRequest::close_group_connections(&hub, group, &options)
        }
        ConnectionExists => {
            let connection_id = target
                .connection_id
                .insert(fields.required_string("connectionId")?.to_owned());
            ApiRequest::connection_exists(&hub, connection_id)
        }
        GroupExists => {
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            ApiRequest::group_exists(&hub, group)
        }
        UserExists => {
            let user_id = target.user_id.insert(fields.required_string("userId")?.to_owned());
            ApiRequest::user_exists(&hub, user_id)
        }
        ListConnectionsInGroup => {
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            let options = page.insert(fields.page_options()?);
            ApiRequest::list_group_connections(&hub, group, options)
        }
        GrantPermission | RevokePermission | CheckPermission => {
            let connection_id = target
                .connection_id
                .insert(fields.required_string("connectionId")?.to_owned());
            let permission: Permission = fields
                .required_string("permission")?
                .parse()
                .map_err(|e: ValidationError| fields.at.invalid(&e, "permission"))?;
            // No targetName: the permission covers every group.
            let target_name = fields.string("targetName")?;
            target.group = target_name.map(str::to_owned);
            match kind {
                GrantPermission => ApiRequest::grant_permission(&hub, permission, connection_id, target_name),
                RevokePermission => ApiRequest::revoke_permission(&hub, permission, connection_id, target_name),
                _ => ApiRequest::check_permission(&hub, permission, connection_id, target_name),
            }
        }
    };
    let request = request.map_err(|e| fields.at.invalid(&e, field_of(&e, kind, "data")))?;
    fields.finish()?;
    Ok(PlannedAction {
        kind,
        hub,
        request,
        target,
        message,
        page,
    })
}

/// The request field a core validation error is about (the core names REST parameters).
fn field_of(error: &ValidationError, kind: ActionKind, data_field: &'static str) -> &'static str {
    match error.field() {
        "message" => data_field,
        "group"
            if matches!(
                kind,
                ActionKind::GrantPermission | ActionKind::RevokePermission | ActionKind::CheckPermission
            ) =>
        {
            "targetName"
        }
        other => other,
    }
}
