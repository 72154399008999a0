//! Name and parameter rules (the protocol crate's) answered as the service's 400 errors, and the
//! 404 for an unknown connection.

use warp::http::StatusCode;
use webpubsub_protocol::names;
use webpubsub_protocol::roles::Permission;

use super::error::ApiError;
use crate::filter::Filter;
use crate::service::{ConnectionFilter, Target};

pub(super) fn check_hub(hub: &str) -> Result<(), ApiError> {
    names::hub(hub).map_err(|_| {
        ApiError::bad_request(
            "InvalidHubName",
            "the hub name must start with a letter and contain at most 128 letters, digits and _`,.[] characters",
        )
    })
}

pub(super) fn check_group(group: &str) -> Result<(), ApiError> {
    let rule = || {
        format!(
            "a group name must have 1 to {} characters and not be only whitespace",
            names::MAX_GROUP_LEN
        )
    };
    names::group(group).map_err(|_| ApiError::bad_request("InvalidGroupName", rule()))
}

pub(super) fn check_connection_id(connection_id: &str) -> Result<(), ApiError> {
    if connection_id.trim().is_empty() {
        Err(ApiError::bad_request(
            "InvalidConnectionId",
            "the connection id must not be empty",
        ))
    } else {
        Ok(())
    }
}

pub(super) fn check_user_id(user_id: &str) -> Result<(), ApiError> {
    if user_id.is_empty() {
        Err(ApiError::bad_request("InvalidUserId", "the user id must not be empty"))
    } else {
        Ok(())
    }
}

/// The name rule of what a send, close or existence check addresses.
pub(super) fn check_target(target: Target<'_>) -> Result<(), ApiError> {
    match target {
        Target::Hub => Ok(()),
        Target::Group(group) => check_group(group),
        Target::User(user_id) => check_user_id(user_id),
        Target::Connection(connection_id) => check_connection_id(connection_id),
    }
}

pub(super) fn parse_permission(permission: &str) -> Result<Permission, ApiError> {
    permission.parse::<Permission>().map_err(|_| {
        ApiError::bad_request(
            "InvalidPermission",
            "the permission must be sendToGroup or joinLeaveGroup",
        )
    })
}

pub(super) fn parse_filter(text: &str) -> Result<Filter, ApiError> {
    Filter::parse(text).map_err(|e| ApiError::bad_request("InvalidFilter", e.to_string()))
}

pub(super) fn connection_not_found(connection_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ConnectionNotFound",
        format!("connection '{connection_id}' does not exist"),
    )
}

pub(super) fn as_connection_filter(filter: &Option<Filter>) -> Option<&dyn ConnectionFilter> {
    filter.as_ref().map(|f| f as &dyn ConnectionFilter)
}
