//! One constructor of [`ApiRequest`] per data-plane operation (protocol reference §3), each named after
//! the operation and documented with its method, path and query parameters; each validates its inputs
//! and encodes them through the private builder.

use bytes::Bytes;
use serde::Serialize;

use super::{
    ApiRequest, Builder, CloseOptions, ContentType, GenerateTokenOptions, ListConnectionsOptions, Message, Operation,
    SendOptions, decimal,
};
use crate::webpubsub::token::ClientType;
use crate::webpubsub::validate::{self, Permission, ValidationError};

fn unsupported(option: &'static str, target: &'static str) -> ValidationError {
    ValidationError::UnsupportedOption { option, target }
}

#[derive(Serialize)]
struct GroupsBody<'a> {
    groups: &'a [String],
    filter: &'a str,
}

impl ApiRequest {
    /// `HEAD /api/health`
    pub fn health() -> Self {
        Self {
            operation: Operation::Health,
            path: "/api/health".to_owned(),
            query: String::new(),
            body: None,
        }
    }

    /// `POST /api/hubs/{hub}/:send` with `excluded`, `filter`, `messageTtlSeconds`.
    pub fn send_to_all(hub: &str, message: &Message, options: &SendOptions) -> Result<Self, ValidationError> {
        Builder::hub(Operation::SendToAll, hub)?
            .literal("/:send")
            .send(message, options)
    }

    /// `POST /api/hubs/{hub}/:closeConnections` with `excluded`, `reason`.
    pub fn close_all_connections(hub: &str, options: &CloseOptions) -> Result<Self, ValidationError> {
        let mut builder = Builder::hub(Operation::CloseAllConnections, hub)?.literal("/:closeConnections");
        builder.excluded(&options.excluded)?;
        builder.reason(options.reason.as_deref());
        Ok(builder.build())
    }

    /// `POST /api/hubs/{hub}/:generateToken` with `userId`, `role`, `minutesToExpire`, `group`, `clientType`.
    pub fn generate_token(hub: &str, options: &GenerateTokenOptions) -> Result<Self, ValidationError> {
        let mut builder = Builder::hub(Operation::GenerateToken, hub)?.literal("/:generateToken");
        if let Some(user_id) = &options.user_id {
            validate::user_id(user_id)?;
            builder.param("userId", user_id);
        }
        for role in &options.roles {
            validate::role(role)?;
            builder.param("role", role);
        }
        if let Some(minutes) = options.minutes_to_expire {
            if minutes == 0 {
                return Err(ValidationError::MinutesToExpireOutOfRange);
            }
            builder.param("minutesToExpire", &decimal(minutes));
        }
        for group in &options.groups {
            validate::group(group)?;
            builder.param("group", group);
        }
        if options.client_type != ClientType::Default {
            builder.param("clientType", options.client_type.as_str());
        }
        Ok(builder.build())
    }

    /// `POST /api/hubs/{hub}/:addToGroups` with JSON `{"groups":[…],"filter":"…"}`.
    pub fn add_connections_to_groups(hub: &str, groups: &[String], filter: &str) -> Result<Self, ValidationError> {
        Self::groups_by_filter(Operation::AddConnectionsToGroups, "/:addToGroups", hub, groups, filter)
    }

    /// `POST /api/hubs/{hub}/:removeFromGroups` with JSON `{"groups":[…],"filter":"…"}`.
    pub fn remove_connections_from_groups(hub: &str, groups: &[String], filter: &str) -> Result<Self, ValidationError> {
        Self::groups_by_filter(
            Operation::RemoveConnectionsFromGroups,
            "/:removeFromGroups",
            hub,
            groups,
            filter,
        )
    }

    fn groups_by_filter(
        operation: Operation,
        action: &str,
        hub: &str,
        groups: &[String],
        filter: &str,
    ) -> Result<Self, ValidationError> {
        let builder = Builder::hub(operation, hub)?.literal(action);
        validate::groups(groups)?;
        validate::filter(filter)?;
        let body = serde_json::to_vec(&GroupsBody { groups, filter }).map_err(|_| ValidationError::InvalidJson)?;
        Ok(builder.build_with_body(ContentType::Json, Bytes::from(body)))
    }

    /// `DELETE /api/hubs/{hub}/connections/{connectionId}` with `reason`.
    pub fn close_connection(hub: &str, connection_id: &str, reason: Option<&str>) -> Result<Self, ValidationError> {
        let mut builder = Self::connection(Operation::CloseConnection, hub, connection_id)?;
        builder.reason(reason);
        Ok(builder.build())
    }

    /// `HEAD /api/hubs/{hub}/connections/{connectionId}`
    pub fn connection_exists(hub: &str, connection_id: &str) -> Result<Self, ValidationError> {
        Ok(Self::connection(Operation::ConnectionExists, hub, connection_id)?.build())
    }

    /// `POST /api/hubs/{hub}/connections/{connectionId}/:send` with `messageTtlSeconds`.
    pub fn send_to_connection(
        hub: &str,
        connection_id: &str,
        message: &Message,
        options: &SendOptions,
    ) -> Result<Self, ValidationError> {
        if !options.excluded.is_empty() {
            return Err(unsupported("excluded", "connection"));
        }
        if options.filter.is_some() {
            return Err(unsupported("filter", "connection"));
        }
        Self::connection(Operation::SendToConnection, hub, connection_id)?
            .literal("/:send")
            .send(message, options)
    }

    /// `DELETE /api/hubs/{hub}/connections/{connectionId}/groups`
    pub fn remove_connection_from_all_groups(hub: &str, connection_id: &str) -> Result<Self, ValidationError> {
        Ok(
            Self::connection(Operation::RemoveConnectionFromAllGroups, hub, connection_id)?
                .literal("/groups")
                .build(),
        )
    }

    fn connection(operation: Operation, hub: &str, connection_id: &str) -> Result<Builder, ValidationError> {
        validate::connection_id(connection_id)?;
        Builder::hub(operation, hub)?
            .literal("/connections")
            .with_segment(connection_id, "connectionId")
    }

    /// `HEAD /api/hubs/{hub}/groups/{group}`
    pub fn group_exists(hub: &str, group: &str) -> Result<Self, ValidationError> {
        Ok(Self::group(Operation::GroupExists, hub, group)?.build())
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:closeConnections` with `excluded`, `reason`.
    pub fn close_group_connections(hub: &str, group: &str, options: &CloseOptions) -> Result<Self, ValidationError> {
        let mut builder = Self::group(Operation::CloseGroupConnections, hub, group)?.literal("/:closeConnections");
        builder.excluded(&options.excluded)?;
        builder.reason(options.reason.as_deref());
        Ok(builder.build())
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:send` with `excluded`, `filter`, `messageTtlSeconds`.
    pub fn send_to_group(
        hub: &str,
        group: &str,
        message: &Message,
        options: &SendOptions,
    ) -> Result<Self, ValidationError> {
        Self::group(Operation::SendToGroup, hub, group)?
            .literal("/:send")
            .send(message, options)
    }

    /// `GET /api/hubs/{hub}/groups/{group}/connections` with `maxpagesize`, `top`, `continuationToken`.
    pub fn list_group_connections(
        hub: &str,
        group: &str,
        options: &ListConnectionsOptions,
    ) -> Result<Self, ValidationError> {
        let mut builder = Self::group(Operation::ListGroupConnections, hub, group)?.literal("/connections");
        if let Some(size) = options.max_page_size {
            if !(1..=validate::MAX_PAGE_SIZE).contains(&size) {
                return Err(ValidationError::PageSizeOutOfRange(size));
            }
            builder.param("maxpagesize", &decimal(size));
        }
        if let Some(top) = options.top {
            if top == 0 {
                return Err(ValidationError::TopOutOfRange);
            }
            builder.param("top", &decimal(top));
        }
        if let Some(token) = &options.continuation_token {
            builder.param("continuationToken", token);
        }
        Ok(builder.build())
    }

    /// `PUT /api/hubs/{hub}/groups/{group}/connections/{connectionId}`
    pub fn add_connection_to_group(hub: &str, group: &str, connection_id: &str) -> Result<Self, ValidationError> {
        Ok(Self::group_connection(Operation::AddConnectionToGroup, hub, group, connection_id)?.build())
    }

    /// `DELETE /api/hubs/{hub}/groups/{group}/connections/{connectionId}`
    pub fn remove_connection_from_group(hub: &str, group: &str, connection_id: &str) -> Result<Self, ValidationError> {
        Ok(Self::group_connection(Operation::RemoveConnectionFromGroup, hub, group, connection_id)?.build())
    }

    fn group(operation: Operation, hub: &str, group: &str) -> Result<Builder, ValidationError> {
        validate::group(group)?;
        Builder::hub(operation, hub)?
            .literal("/groups")
            .with_segment(group, "group")
    }

    fn group_connection(
        operation: Operation,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Builder, ValidationError> {
        validate::connection_id(connection_id)?;
        Self::group(operation, hub, group)?
            .literal("/connections")
            .with_segment(connection_id, "connectionId")
    }

    /// `PUT /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` with `targetName`.
    /// Without a target group the permission covers every group.
    pub fn grant_permission(
        hub: &str,
        permission: Permission,
        connection_id: &str,
        target_group: Option<&str>,
    ) -> Result<Self, ValidationError> {
        Self::permission(Operation::GrantPermission, hub, permission, connection_id, target_group)
    }

    /// `DELETE /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` with `targetName`.
    pub fn revoke_permission(
        hub: &str,
        permission: Permission,
        connection_id: &str,
        target_group: Option<&str>,
    ) -> Result<Self, ValidationError> {
        Self::permission(
            Operation::RevokePermission,
            hub,
            permission,
            connection_id,
            target_group,
        )
    }

    /// `HEAD /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` with `targetName`.
    pub fn check_permission(
        hub: &str,
        permission: Permission,
        connection_id: &str,
        target_group: Option<&str>,
    ) -> Result<Self, ValidationError> {
        Self::permission(Operation::CheckPermission, hub, permission, connection_id, target_group)
    }

    fn permission(
        operation: Operation,
        hub: &str,
        permission: Permission,
        connection_id: &str,
        target_group: Option<&str>,
    ) -> Result<Self, ValidationError> {
        validate::connection_id(connection_id)?;
        let mut builder = Builder::hub(operation, hub)?
            .literal("/permissions/")
            .literal(permission.as_str())
            .literal("/connections")
            .with_segment(connection_id, "connectionId")?;
        builder.target_group(target_group)?;
        Ok(builder.build())
    }

    /// `HEAD /api/hubs/{hub}/users/{userId}`
    pub fn user_exists(hub: &str, user_id: &str) -> Result<Self, ValidationError> {
        Ok(Self::user(Operation::UserExists, hub, user_id)?.build())
    }

    /// `POST /api/hubs/{hub}/users/{userId}/:closeConnections` with `excluded`, `reason`.
    pub fn close_user_connections(hub: &str, user_id: &str, options: &CloseOptions) -> Result<Self, ValidationError> {
        let mut builder = Self::user(Operation::CloseUserConnections, hub, user_id)?.literal("/:closeConnections");
        builder.excluded(&options.excluded)?;
        builder.reason(options.reason.as_deref());
        Ok(builder.build())
    }

    /// `POST /api/hubs/{hub}/users/{userId}/:send` with `filter`, `messageTtlSeconds`.
    pub fn send_to_user(
        hub: &str,
        user_id: &str,
        message: &Message,
        options: &SendOptions,
    ) -> Result<Self, ValidationError> {
        if !options.excluded.is_empty() {
            return Err(unsupported("excluded", "user"));
        }
        Self::user(Operation::SendToUser, hub, user_id)?
            .literal("/:send")
            .send(message, options)
    }

    /// `DELETE /api/hubs/{hub}/users/{userId}/groups`
    pub fn remove_user_from_all_groups(hub: &str, user_id: &str) -> Result<Self, ValidationError> {
        Ok(Self::user(Operation::RemoveUserFromAllGroups, hub, user_id)?
            .literal("/groups")
            .build())
    }

    /// `PUT /api/hubs/{hub}/users/{userId}/groups/{group}`
    pub fn add_user_to_group(hub: &str, group: &str, user_id: &str) -> Result<Self, ValidationError> {
        Ok(Self::user_group(Operation::AddUserToGroup, hub, group, user_id)?.build())
    }

    /// `DELETE /api/hubs/{hub}/users/{userId}/groups/{group}`
    pub fn remove_user_from_group(hub: &str, group: &str, user_id: &str) -> Result<Self, ValidationError> {
        Ok(Self::user_group(Operation::RemoveUserFromGroup, hub, group, user_id)?.build())
    }

    fn user(operation: Operation, hub: &str, user_id: &str) -> Result<Builder, ValidationError> {
        validate::user_id(user_id)?;
        Builder::hub(operation, hub)?
            .literal("/users")
            .with_segment(user_id, "userId")
    }

    fn user_group(operation: Operation, hub: &str, group: &str, user_id: &str) -> Result<Builder, ValidationError> {
        validate::group(group)?;
        Self::user(operation, hub, user_id)?
            .literal("/groups")
            .with_segment(group, "group")
    }
}
