//! Routing: a request's method and decoded path segments to a [`Route`], through the protocol
//! crate's REST operation table (the same table the handler's REST client builds requests from).

use percent_encoding::percent_decode_str;
use warp::http::{Method, StatusCode};
use webpubsub_protocol::{Operation, RouteError};

use super::error::ApiError;

/// The route a request resolved to, with its raw (percent-decoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    Health,
    SendToAll {
        hub: String,
    },
    CloseAll {
        hub: String,
    },
    GenerateToken {
        hub: String,
    },
    AddToGroups {
        hub: String,
    },
    RemoveFromGroups {
        hub: String,
    },
    CloseConnection {
        hub: String,
        connection_id: String,
    },
    ConnectionExists {
        hub: String,
        connection_id: String,
    },
    SendToConnection {
        hub: String,
        connection_id: String,
    },
    RemoveConnectionFromAllGroups {
        hub: String,
        connection_id: String,
    },
    GroupExists {
        hub: String,
        group: String,
    },
    CloseGroup {
        hub: String,
        group: String,
    },
    SendToGroup {
        hub: String,
        group: String,
    },
    ListGroupConnections {
        hub: String,
        group: String,
    },
    AddConnectionToGroup {
        hub: String,
        group: String,
        connection_id: String,
    },
    RemoveConnectionFromGroup {
        hub: String,
        group: String,
        connection_id: String,
    },
    GrantPermission {
        hub: String,
        permission: String,
        connection_id: String,
    },
    RevokePermission {
        hub: String,
        permission: String,
        connection_id: String,
    },
    CheckPermission {
        hub: String,
        permission: String,
        connection_id: String,
    },
    UserExists {
        hub: String,
        user_id: String,
    },
    CloseUser {
        hub: String,
        user_id: String,
    },
    SendToUser {
        hub: String,
        user_id: String,
    },
    RemoveUserFromAllGroups {
        hub: String,
        user_id: String,
    },
    AddUserToGroup {
        hub: String,
        user_id: String,
        group: String,
    },
    RemoveUserFromGroup {
        hub: String,
        user_id: String,
        group: String,
    },
}

impl Route {
    /// Maps method and path segments (after `/api`) to a route by the protocol crate's operation
    /// table: 404 for an unknown path, 405 for a known path with another method.
    pub(super) fn resolve(method: &Method, segments: &[String]) -> Result<Route, ApiError> {
        let mut path: Vec<&str> = Vec::with_capacity(segments.len() + 1);
        path.push("api");
        path.extend(segments.iter().map(String::as_str));
        let (operation, params) = Operation::resolve(method, &path).map_err(|error| match error {
            RouteError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no REST operation has this path; see the Web PubSub data-plane API",
            ),
            RouteError::MethodNotAllowed => method_not_allowed(method),
        })?;
        // Parameters come in template order: hub first, then the rest as the path names them.
        let p = |i: usize| params.get(i).map_or_else(String::new, |s| (*s).to_owned());
        let hub = p(0);
        Ok(match operation {
            Operation::Health => Route::Health,
            Operation::SendToAll => Route::SendToAll { hub },
            Operation::CloseAllConnections => Route::CloseAll { hub },
            Operation::GenerateToken => Route::GenerateToken { hub },
            Operation::AddConnectionsToGroups => Route::AddToGroups { hub },
            Operation::RemoveConnectionsFromGroups => Route::RemoveFromGroups { hub },
            Operation::CloseConnection => Route::CloseConnection {
                hub,
                connection_id: p(1),
            },
            Operation::ConnectionExists => Route::ConnectionExists {
                hub,
                connection_id: p(1),
            },
            Operation::SendToConnection => Route::SendToConnection {
                hub,
                connection_id: p(1),
            },
            Operation::RemoveConnectionFromAllGroups => Route::RemoveConnectionFromAllGroups {
                hub,
                connection_id: p(1),
            },
            Operation::GroupExists => Route::GroupExists { hub, group: p(1) },
            Operation::CloseGroupConnections => Route::CloseGroup { hub, group: p(1) },
            Operation::SendToGroup => Route::SendToGroup { hub, group: p(1) },
            Operation::ListGroupConnections => Route::ListGroupConnections { hub, group: p(1) },
            Operation::AddConnectionToGroup => Route::AddConnectionToGroup {
                hub,
                group: p(1),
                connection_id: p(2),
            },
            Operation::RemoveConnectionFromGroup => Route::RemoveConnectionFromGroup {
                hub,
                group: p(1),
                connection_id: p(2),
            },
            Operation::GrantPermission => Route::GrantPermission {
                hub,
                permission: p(1),
                connection_id: p(2),
            },
            Operation::RevokePermission => Route::RevokePermission {
                hub,
                permission: p(1),
                connection_id: p(2),
            },
            Operation::CheckPermission => Route::CheckPermission {
                hub,
                permission: p(1),
                connection_id: p(2),
            },
            Operation::UserExists => Route::UserExists { hub, user_id: p(1) },
            Operation::CloseUserConnections => Route::CloseUser { hub, user_id: p(1) },
            Operation::SendToUser => Route::SendToUser { hub, user_id: p(1) },
            Operation::RemoveUserFromAllGroups => Route::RemoveUserFromAllGroups { hub, user_id: p(1) },
            Operation::AddUserToGroup => Route::AddUserToGroup {
                hub,
                user_id: p(1),
                group: p(2),
            },
            Operation::RemoveUserFromGroup => Route::RemoveUserFromGroup {
                hub,
                user_id: p(1),
                group: p(2),
            },
        })
    }

    /// The hub every route but health names.
    pub(super) fn hub(&self) -> Option<&str> {
        match self {
            Route::Health => None,
            Route::SendToAll { hub }
            | Route::CloseAll { hub }
            | Route::GenerateToken { hub }
            | Route::AddToGroups { hub }
            | Route::RemoveFromGroups { hub }
            | Route::CloseConnection { hub, .. }
            | Route::ConnectionExists { hub, .. }
            | Route::SendToConnection { hub, .. }
            | Route::RemoveConnectionFromAllGroups { hub, .. }
            | Route::GroupExists { hub, .. }
            | Route::CloseGroup { hub, .. }
            | Route::SendToGroup { hub, .. }
            | Route::ListGroupConnections { hub, .. }
            | Route::AddConnectionToGroup { hub, .. }
            | Route::RemoveConnectionFromGroup { hub, .. }
            | Route::GrantPermission { hub, .. }
            | Route::RevokePermission { hub, .. }
            | Route::CheckPermission { hub, .. }
            | Route::UserExists { hub, .. }
            | Route::CloseUser { hub, .. }
            | Route::SendToUser { hub, .. }
            | Route::RemoveUserFromAllGroups { hub, .. }
            | Route::AddUserToGroup { hub, .. }
            | Route::RemoveUserFromGroup { hub, .. } => Some(hub),
        }
    }
}

pub(super) fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not supported on this path"),
    )
}

/// Splits `/api/a/b%2Fc` into decoded segments `["a", "b/c"]`; a trailing `/` is ignored.
pub(super) fn path_segments(path: &str) -> Result<Vec<String>, ApiError> {
    let rest = path.strip_prefix("/api").unwrap_or(path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/')
        .map(|segment| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::bad_request("InvalidPath", "path segments must be percent-encoded UTF-8"))
        })
        .collect()
}
