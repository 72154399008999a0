//! The REST data-plane operations (protocol reference §3) as a table: name, HTTP method, path
//! template and idempotence. The handler's REST client builds its requests from it; the emulator
//! routes by it.

use std::fmt;

use http::Method;

/// One data-plane operation. The name is what logs and errors show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `HEAD /api/health` (also `GET`): the service is up.
    Health,
    /// `POST /api/hubs/{hub}/:send`: a message to every connection in the hub.
    SendToAll,
    /// `POST /api/hubs/{hub}/:closeConnections`: close every connection in the hub.
    CloseAllConnections,
    /// `POST /api/hubs/{hub}/:generateToken`: a client access token from the service.
    GenerateToken,
    /// `POST /api/hubs/{hub}/:addToGroups`: add filtered connections to groups.
    AddConnectionsToGroups,
    /// `POST /api/hubs/{hub}/:removeFromGroups`: remove filtered connections from groups.
    RemoveConnectionsFromGroups,
    /// `DELETE /api/hubs/{hub}/connections/{connectionId}`: close one connection.
    CloseConnection,
    /// `HEAD /api/hubs/{hub}/connections/{connectionId}`: whether a connection is open.
    ConnectionExists,
    /// `POST /api/hubs/{hub}/connections/{connectionId}/:send`: a message to one connection.
    SendToConnection,
    /// `DELETE /api/hubs/{hub}/connections/{connectionId}/groups`: take a connection out of every group.
    RemoveConnectionFromAllGroups,
    /// `HEAD /api/hubs/{hub}/groups/{group}`: whether a group has any connection.
    GroupExists,
    /// `POST /api/hubs/{hub}/groups/{group}/:closeConnections`: close every connection in a group.
    CloseGroupConnections,
    /// `POST /api/hubs/{hub}/groups/{group}/:send`: a message to every connection in a group.
    SendToGroup,
    /// `GET /api/hubs/{hub}/groups/{group}/connections`: one page of a group's connections.
    ListGroupConnections,
    /// `PUT /api/hubs/{hub}/groups/{group}/connections/{connectionId}`: add a connection to a group.
    AddConnectionToGroup,
    /// `DELETE /api/hubs/{hub}/groups/{group}/connections/{connectionId}`: remove a connection from a group.
    RemoveConnectionFromGroup,
    /// `PUT /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}`: grant a permission.
    GrantPermission,
    /// `DELETE /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}`: revoke a permission.
    RevokePermission,
    /// `HEAD /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}`: whether a permission is held.
    CheckPermission,
    /// `HEAD /api/hubs/{hub}/users/{userId}`: whether a user has any connection.
    UserExists,
    /// `POST /api/hubs/{hub}/users/{userId}/:closeConnections`: close every connection of a user.
    CloseUserConnections,
    /// `POST /api/hubs/{hub}/users/{userId}/:send`: a message to every connection of a user.
    SendToUser,
    /// `DELETE /api/hubs/{hub}/users/{userId}/groups`: take a user out of every group.
    RemoveUserFromAllGroups,
    /// `PUT /api/hubs/{hub}/users/{userId}/groups/{group}`: add a user to a group.
    AddUserToGroup,
    /// `DELETE /api/hubs/{hub}/users/{userId}/groups/{group}`: remove a user from a group.
    RemoveUserFromGroup,
}

impl Operation {
    /// Every operation, in the order of the reference table.
    pub const ALL: [Operation; 25] = [
        Self::Health,
        Self::SendToAll,
        Self::CloseAllConnections,
        Self::GenerateToken,
        Self::AddConnectionsToGroups,
        Self::RemoveConnectionsFromGroups,
        Self::CloseConnection,
        Self::ConnectionExists,
        Self::SendToConnection,
        Self::RemoveConnectionFromAllGroups,
        Self::GroupExists,
        Self::CloseGroupConnections,
        Self::SendToGroup,
        Self::ListGroupConnections,
        Self::AddConnectionToGroup,
        Self::RemoveConnectionFromGroup,
        Self::GrantPermission,
        Self::RevokePermission,
        Self::CheckPermission,
        Self::UserExists,
        Self::CloseUserConnections,
        Self::SendToUser,
        Self::RemoveUserFromAllGroups,
        Self::AddUserToGroup,
        Self::RemoveUserFromGroup,
    ];

    /// snake_case name, e.g. `send_to_group`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::SendToAll => "send_to_all",
            Self::CloseAllConnections => "close_all_connections",
            Self::GenerateToken => "generate_token",
            Self::AddConnectionsToGroups => "add_connections_to_groups",
            Self::RemoveConnectionsFromGroups => "remove_connections_from_groups",
            Self::CloseConnection => "close_connection",
            Self::ConnectionExists => "connection_exists",
            Self::SendToConnection => "send_to_connection",
            Self::RemoveConnectionFromAllGroups => "remove_connection_from_all_groups",
            Self::GroupExists => "group_exists",
            Self::CloseGroupConnections => "close_group_connections",
            Self::SendToGroup => "send_to_group",
            Self::ListGroupConnections => "list_connections",
            Self::AddConnectionToGroup => "add_connection_to_group",
            Self::RemoveConnectionFromGroup => "remove_connection_from_group",
            Self::GrantPermission => "grant_permission",
            Self::RevokePermission => "revoke_permission",
            Self::CheckPermission => "has_permission",
            Self::UserExists => "user_exists",
            Self::CloseUserConnections => "close_user_connections",
            Self::SendToUser => "send_to_user",
            Self::RemoveUserFromAllGroups => "remove_user_from_all_groups",
            Self::AddUserToGroup => "add_user_to_group",
            Self::RemoveUserFromGroup => "remove_user_from_group",
        }
    }

    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Self::Health | Self::ConnectionExists | Self::GroupExists | Self::CheckPermission | Self::UserExists => {
                Method::HEAD
            }
            Self::ListGroupConnections => Method::GET,
            Self::AddConnectionToGroup | Self::GrantPermission | Self::AddUserToGroup => Method::PUT,
            Self::CloseConnection
            | Self::RemoveConnectionFromAllGroups
            | Self::RemoveConnectionFromGroup
            | Self::RevokePermission
            | Self::RemoveUserFromAllGroups
            | Self::RemoveUserFromGroup => Method::DELETE,
            Self::SendToAll
            | Self::CloseAllConnections
            | Self::GenerateToken
            | Self::AddConnectionsToGroups
            | Self::RemoveConnectionsFromGroups
            | Self::SendToConnection
            | Self::CloseGroupConnections
            | Self::SendToGroup
            | Self::CloseUserConnections
            | Self::SendToUser => Method::POST,
        }
    }

    /// The path, `{name}` marking a percent-encoded segment: `{hub}`, `{group}`, `{connectionId}`,
    /// `{userId}`, `{permission}`.
    pub fn path_template(self) -> &'static str {
        match self {
            Self::Health => "/api/health",
            Self::SendToAll => "/api/hubs/{hub}/:send",
            Self::CloseAllConnections => "/api/hubs/{hub}/:closeConnections",
            Self::GenerateToken => "/api/hubs/{hub}/:generateToken",
            Self::AddConnectionsToGroups => "/api/hubs/{hub}/:addToGroups",
            Self::RemoveConnectionsFromGroups => "/api/hubs/{hub}/:removeFromGroups",
            Self::CloseConnection | Self::ConnectionExists => "/api/hubs/{hub}/connections/{connectionId}",
            Self::SendToConnection => "/api/hubs/{hub}/connections/{connectionId}/:send",
            Self::RemoveConnectionFromAllGroups => "/api/hubs/{hub}/connections/{connectionId}/groups",
            Self::GroupExists => "/api/hubs/{hub}/groups/{group}",
            Self::CloseGroupConnections => "/api/hubs/{hub}/groups/{group}/:closeConnections",
            Self::SendToGroup => "/api/hubs/{hub}/groups/{group}/:send",
            Self::ListGroupConnections => "/api/hubs/{hub}/groups/{group}/connections",
            Self::AddConnectionToGroup | Self::RemoveConnectionFromGroup => {
                "/api/hubs/{hub}/groups/{group}/connections/{connectionId}"
            }
            Self::GrantPermission | Self::RevokePermission | Self::CheckPermission => {
                "/api/hubs/{hub}/permissions/{permission}/connections/{connectionId}"
            }
            Self::UserExists => "/api/hubs/{hub}/users/{userId}",
            Self::CloseUserConnections => "/api/hubs/{hub}/users/{userId}/:closeConnections",
            Self::SendToUser => "/api/hubs/{hub}/users/{userId}/:send",
            Self::RemoveUserFromAllGroups => "/api/hubs/{hub}/users/{userId}/groups",
            Self::AddUserToGroup | Self::RemoveUserFromGroup => "/api/hubs/{hub}/users/{userId}/groups/{group}",
        }
    }

    /// Whether a request with `method` is this operation (the health check also answers `GET`).
    pub fn accepts(self, method: &Method) -> bool {
        *method == self.method() || (self == Self::Health && *method == Method::GET)
    }

    /// The operation a request names, from its method and decoded path segments (after the leading
    /// `/`, e.g. `["api", "hubs", "chat", ":send"]`), with the `{…}` segments in template order.
    pub fn resolve<'a>(method: &Method, segments: &[&'a str]) -> Result<(Self, Vec<&'a str>), RouteError> {
        let mut path_matched = false;
        for operation in Self::ALL {
            let Some(params) = match_template(operation.path_template(), segments) else {
                continue;
            };
            if operation.accepts(method) {
                return Ok((operation, params));
            }
            path_matched = true;
        }
        Err(if path_matched {
            RouteError::MethodNotAllowed
        } else {
            RouteError::NotFound
        })
    }

    /// Whether repeating it has the same effect as doing it once. Only the sends are not: a repeated
    /// send delivers the message again. (Group adds/removes and closes are set operations; a repeated
    /// `generateToken` only yields another token.)
    pub fn is_idempotent(self) -> bool {
        !matches!(
            self,
            Self::SendToAll | Self::SendToConnection | Self::SendToGroup | Self::SendToUser
        )
    }

    /// Whether a 404 answer means "no" rather than an error (the existence checks).
    pub fn is_existence_check(self) -> bool {
        matches!(
            self,
            Self::ConnectionExists | Self::GroupExists | Self::CheckPermission | Self::UserExists
        )
    }
}

/// Why a request names no operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No operation has this path.
    #[error("no REST operation has this path")]
    NotFound,
    /// Some operation has this path, with another method.
    #[error("this REST path does not accept this method")]
    MethodNotAllowed,
}

/// The `{…}` segments of `segments` when they fit `template`.
fn match_template<'a>(template: &str, segments: &[&'a str]) -> Option<Vec<&'a str>> {
    let parts = template.trim_start_matches('/').split('/');
    let mut params = Vec::new();
    let mut count = 0;
    for (part, segment) in parts.zip(segments) {
        count += 1;
        if part.starts_with('{') {
            params.push(*segment);
        } else if part != *segment {
            return None;
        }
    }
    (count == segments.len() && count == template.matches('/').count()).then_some(params)
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(path: &str) -> Vec<&str> {
        path.trim_start_matches('/').split('/').collect()
    }

    #[test]
    fn every_operation_resolves_from_its_own_template_and_method() {
        for operation in Operation::ALL {
            let path = operation
                .path_template()
                .replace("{permission}", "sendToGroup")
                .replace(['{', '}'], "");
            let (found, params) = Operation::resolve(&operation.method(), &split(&path)).unwrap();
            assert_eq!(found, operation, "{path}");
            assert_eq!(params.len(), operation.path_template().matches('{').count());
        }
    }

    #[test]
    fn parameters_come_in_template_order() {
        let (operation, params) = Operation::resolve(&Method::PUT, &split("/api/hubs/h/users/u/groups/g")).unwrap();
        assert_eq!(operation, Operation::AddUserToGroup);
        assert_eq!(params, ["h", "u", "g"]);
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        assert_eq!(
            Operation::resolve(&Method::GET, &split("/api/hubs/h/nothing")),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            Operation::resolve(&Method::POST, &split("/api/hubs/h/connections/c")),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            Operation::resolve(&Method::GET, &split("/api/health")).unwrap().0,
            Operation::Health
        );
        assert_eq!(
            Operation::resolve(&Method::GET, &split("/api/health/x")),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            Operation::resolve(&Method::GET, &split("/api")),
            Err(RouteError::NotFound)
        );
    }

    #[test]
    fn only_sends_are_not_idempotent() {
        let not: Vec<_> = Operation::ALL.into_iter().filter(|o| !o.is_idempotent()).collect();
        assert_eq!(
            not,
            [
                Operation::SendToAll,
                Operation::SendToConnection,
                Operation::SendToGroup,
                Operation::SendToUser
            ]
        );
    }
}
