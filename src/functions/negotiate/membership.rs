//! Membership-checked groups (#15 item 7, #16 item 2). With a store configured (`StoreConnectionString`), two
//! group families belong to the durable layer and the store, not the `NegotiateAllowed*` templates, decides
//! them — membership is the permission:
//!
//! - `conversation:{id}`: every token gets the caller's conversation groups without asking (at most
//!   [`MAX_GRANTED_CONVERSATIONS`], the most recently joined first), each with the one per-group role
//!   `webpubsub.joinLeaveGroup.conversation:{id}` (least privilege: it may leave and rejoin its own
//!   conversation; messages go through the durable send, so no `sendToGroup` unless asked for). A caller may
//!   also ask for `conversation:{id}` groups (always granted beyond the bound) and for the roles
//!   `webpubsub.joinLeaveGroup.conversation:{id}` / `webpubsub.sendToGroup.conversation:{id}`; asking for a
//!   conversation it is not a member of (or that does not exist) is a 403 `GroupNotAllowed` /
//!   `RoleNotAllowed` naming the group or role.
//! - `notifications:user:{userId}`: every token gets the caller's own notification group; asking for another
//!   user's is a 403 `GroupNotAllowed`.
//!
//! Wildcard roles (`webpubsub.joinLeaveGroups.<pattern>`) stay with the templates: an operator who allows
//! `conversation:*` patterns there grants them to everyone. Without a store, negotiate works as before.

use std::sync::Arc;

use webpubsub_protocol::roles::{Grant, JOIN_LEAVE_GROUP_ROLE, parse_role};

use super::MAX_REQUESTED_ITEMS;
use super::request::{NegotiateRequest, too_many};
use crate::error::ApiError;
use crate::functions::durable::{Durable, bounded};
use crate::store::is_valid_conversation_id;
use crate::webpubsub::{ClientAccessRequest, validate};

/// The prefix of a conversation's group.
pub(crate) const CONVERSATION_PREFIX: &str = "conversation:";
/// The prefix of a user's notification group.
pub(crate) const NOTIFICATIONS_PREFIX: &str = "notifications:user:";
/// Most conversation groups a token gets without the caller asking (each adds a group and a role to the
/// token, which travels in the client URL).
pub(crate) const MAX_GRANTED_CONVERSATIONS: usize = 50;

/// What the store decides, taken out of a request before the template policy sees it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DurableAsk {
    /// Requested `conversation:{id}` groups, as group names.
    groups: Vec<String>,
    /// Requested roles naming one `conversation:{id}` group: (role, group).
    roles: Vec<(String, String)>,
}

/// Moves the durable groups and roles out of `request`; another user's notification group is a 403 here.
pub(super) fn split(request: &mut NegotiateRequest, user_id: &str) -> Result<DurableAsk, ApiError> {
    // The same bound as the template policy, before any store look-up.
    if request.groups.as_ref().is_some_and(|g| g.len() > MAX_REQUESTED_ITEMS)
        || request.roles.as_ref().is_some_and(|r| r.len() > MAX_REQUESTED_ITEMS)
    {
        return Err(too_many());
    }
    let mut ask = DurableAsk::default();
    if let Some(groups) = request.groups.as_mut() {
        let mut kept = Vec::with_capacity(groups.len());
        for group in groups.drain(..) {
            if group.starts_with(CONVERSATION_PREFIX) {
                check_name(&group)?;
                ask.groups.push(group);
            } else if let Some(owner) = group.strip_prefix(NOTIFICATIONS_PREFIX) {
                check_name(&group)?;
                if owner != user_id {
                    return Err(not_allowed_group(&group, "another user's notification group"));
                }
                // The caller's own group is granted anyway (see `extend`).
            } else {
                kept.push(group);
            }
        }
        *groups = kept;
    }
    if let Some(roles) = request.roles.as_mut() {
        let mut kept = Vec::with_capacity(roles.len());
        for role in roles.drain(..) {
            match parse_role(&role) {
                Some((_, Grant::Group(group))) if group.starts_with(CONVERSATION_PREFIX) => {
                    ask.roles.push((role, group));
                }
                _ => kept.push(role),
            }
        }
        *roles = kept;
    }
    Ok(ask)
}

/// Checks every asked-for conversation against the store and adds to `access` the caller's conversation
/// groups (bounded), their roles, what was asked for, and the caller's notification group.
pub(super) async fn extend(
    durable: &Arc<Durable>,
    ask: DurableAsk,
    user_id: &str,
    access: &mut ClientAccessRequest,
) -> Result<(), ApiError> {
    let store = durable.store().await?;
    for group in &ask.groups {
        if !is_member_of(durable, group, user_id).await? {
            return Err(not_allowed_group(group, "a conversation the caller is not a member of"));
        }
    }
    for (role, group) in &ask.roles {
        if !is_member_of(durable, group, user_id).await? {
            return Err(ApiError::forbidden(
                "RoleNotAllowed",
                format!("role {role:?} is for a conversation the caller is not a member of"),
            )
            .with_detail("role", role));
        }
    }
    let memberships = bounded(store.recent_conversation_ids(user_id, MAX_GRANTED_CONVERSATIONS as i64)).await?;
    let mut groups: Vec<String> = memberships
        .iter()
        .map(|id| format!("{CONVERSATION_PREFIX}{id}"))
        .filter(|group| validate::group(group).is_ok())
        .collect();
    groups.extend(ask.groups);
    for group in groups {
        let role = format!("{JOIN_LEAVE_GROUP_ROLE}.{group}");
        push_new(&mut access.roles, role);
        push_new(&mut access.groups, group);
    }
    for (role, _) in ask.roles {
        push_new(&mut access.roles, role);
    }
    let own = format!("{NOTIFICATIONS_PREFIX}{user_id}");
    if validate::group(&own).is_ok() {
        push_new(&mut access.groups, own);
    }
    Ok(())
}

/// Whether `user_id` is a member of the conversation named by `group`; a malformed or unknown one is not.
async fn is_member_of(durable: &Durable, group: &str, user_id: &str) -> Result<bool, ApiError> {
    let id = group.strip_prefix(CONVERSATION_PREFIX).unwrap_or_default();
    if !is_valid_conversation_id(id) {
        return Ok(false);
    }
    let store = durable.store().await?;
    match bounded(store.is_member(id, user_id)).await {
        Ok(member) => Ok(member),
        Err(error) if error.code() == "NotFound" => Ok(false),
        Err(error) => Err(error),
    }
}

fn check_name(group: &str) -> Result<(), ApiError> {
    validate::group(group).map_err(|e| ApiError::bad_request(e.code(), e.to_string()).with_detail("field", "groups"))
}

fn not_allowed_group(group: &str, why: &str) -> ApiError {
    ApiError::forbidden("GroupNotAllowed", format!("group {group:?} is not allowed: {why}")).with_detail("group", group)
}

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}
