//! One typed method of [`RestClient`] per data-plane operation: each builds its [`ApiRequest`], runs it
//! through [`RestClient::execute`] and reads the answer (unit, existence, token, or a page of a group's
//! connections with its continuation token).

use serde::{Deserialize, Serialize};
use url::Url;

use super::response::invalid_response;
use super::{
    ApiRequest, ApiResponse, CloseOptions, GenerateTokenOptions, ListConnectionsOptions, Message, Operation,
    RestClient, RestError, SendOptions,
};
use crate::webpubsub::connection_string::Endpoint;
use crate::webpubsub::validate::{Permission, ValidationError};

/// A connection in a group, from [`RestClient::list_group_connections`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    /// The connection's id.
    pub connection_id: String,
    /// The user the connection authenticated as, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// One page of a group's connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupConnectionsPage {
    /// The connections on this page.
    pub members: Vec<GroupMember>,
    /// Pass in [`ListConnectionsOptions::continuation_token`] for the next page; `None` on the last.
    pub continuation_token: Option<String>,
}

/// The operations answered by status alone, one method each: it builds the operation's [`ApiRequest`]
/// from the same arguments and reads the answer with `$read` (`run_unit`: done or an error; `run_exists`:
/// whether the service answered 2xx).
macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $out:ty = $read:ident;)*) => {
        $(
            $(#[$doc])*
            pub async fn $name(&self, $($arg: $ty),*) -> Result<$out, RestError> {
                self.$read(ApiRequest::$name($($arg),*)).await
            }
        )*
    };
}

impl RestClient {
    async fn run(&self, request: Result<ApiRequest, ValidationError>) -> Result<ApiResponse, RestError> {
        self.execute(&request?).await
    }

    async fn run_unit(&self, request: Result<ApiRequest, ValidationError>) -> Result<(), RestError> {
        self.run(request).await.map(drop)
    }

    async fn run_exists(&self, request: Result<ApiRequest, ValidationError>) -> Result<bool, RestError> {
        Ok(self.run(request).await?.status.is_success())
    }

    /// `HEAD /api/health`: Ok when the service answers 2xx.
    pub async fn health(&self) -> Result<(), RestError> {
        self.run_unit(Ok(ApiRequest::health())).await
    }

    operations! {
        /// Broadcasts to every connection of `hub`.
        send_to_all(hub: &str, message: &Message, options: &SendOptions) -> () = run_unit;
        /// Sends to every connection in `group`.
        send_to_group(hub: &str, group: &str, message: &Message, options: &SendOptions) -> () = run_unit;
        /// Sends to every connection of `user_id` (`excluded` is not supported).
        send_to_user(hub: &str, user_id: &str, message: &Message, options: &SendOptions) -> () = run_unit;
        /// Sends to one connection (only `ttl_seconds` is supported).
        send_to_connection(hub: &str, connection_id: &str, message: &Message, options: &SendOptions) -> () = run_unit;
        /// Closes every connection of `hub` except `options.excluded`.
        close_all_connections(hub: &str, options: &CloseOptions) -> () = run_unit;
        /// Closes every connection in `group`.
        close_group_connections(hub: &str, group: &str, options: &CloseOptions) -> () = run_unit;
        /// Closes every connection of `user_id`.
        close_user_connections(hub: &str, user_id: &str, options: &CloseOptions) -> () = run_unit;
        /// Closes one connection.
        close_connection(hub: &str, connection_id: &str, reason: Option<&str>) -> () = run_unit;
        /// Whether the connection is connected.
        connection_exists(hub: &str, connection_id: &str) -> bool = run_exists;
        /// Whether the group has any connection.
        group_exists(hub: &str, group: &str) -> bool = run_exists;
        /// Whether the user has any connection.
        user_exists(hub: &str, user_id: &str) -> bool = run_exists;
        /// Adds the connections matching `filter` to each of `groups`.
        add_connections_to_groups(hub: &str, groups: &[String], filter: &str) -> () = run_unit;
        /// Removes the connections matching `filter` from each of `groups`.
        remove_connections_from_groups(hub: &str, groups: &[String], filter: &str) -> () = run_unit;
        /// Adds one connection to a group (the service answers 404 if the connection does not exist).
        add_connection_to_group(hub: &str, group: &str, connection_id: &str) -> () = run_unit;
        /// Removes one connection from a group.
        remove_connection_from_group(hub: &str, group: &str, connection_id: &str) -> () = run_unit;
        /// Removes one connection from every group.
        remove_connection_from_all_groups(hub: &str, connection_id: &str) -> () = run_unit;
        /// Adds a user (all its current and future connections) to a group.
        add_user_to_group(hub: &str, group: &str, user_id: &str) -> () = run_unit;
        /// Removes a user from a group.
        remove_user_from_group(hub: &str, group: &str, user_id: &str) -> () = run_unit;
        /// Removes a user from every group.
        remove_user_from_all_groups(hub: &str, user_id: &str) -> () = run_unit;
        /// Grants `permission` on `target_group` (or on every group when `None`) to a connection.
        grant_permission(hub: &str, permission: Permission, connection_id: &str, target_group: Option<&str>) -> ()
            = run_unit;
        /// Revokes `permission` on `target_group` (or on every group when `None`) from a connection.
        revoke_permission(hub: &str, permission: Permission, connection_id: &str, target_group: Option<&str>) -> ()
            = run_unit;
        /// Whether a connection has `permission` on `target_group` (or on every group when `None`).
        check_permission(hub: &str, permission: Permission, connection_id: &str, target_group: Option<&str>) -> bool
            = run_exists;
    }

    /// Asks the service to sign a client token (`:generateToken`); returns the token.
    pub async fn generate_token(&self, hub: &str, options: &GenerateTokenOptions) -> Result<String, RestError> {
        #[derive(Deserialize)]
        struct TokenBody {
            token: String,
        }
        let response = self.run(ApiRequest::generate_token(hub, options)).await?;
        match serde_json::from_slice::<TokenBody>(&response.body) {
            Ok(TokenBody { token }) if !token.is_empty() => Ok(token),
            _ => Err(invalid_response(
                Operation::GenerateToken,
                response.status,
                "body is not {\"token\": \"…\"}",
            )),
        }
    }

    /// One page of the connections in `group`.
    pub async fn list_group_connections(
        &self,
        hub: &str,
        group: &str,
        options: &ListConnectionsOptions,
    ) -> Result<GroupConnectionsPage, RestError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PageBody {
            value: Vec<GroupMember>,
            #[serde(default)]
            next_link: Option<String>,
        }
        let operation = Operation::ListGroupConnections;
        let response = self
            .run(ApiRequest::list_group_connections(hub, group, options))
            .await?;
        let page: PageBody = serde_json::from_slice(&response.body).map_err(|_| {
            invalid_response(
                operation,
                response.status,
                "body is not {\"value\": [{\"connectionId\": …}]}",
            )
        })?;
        let continuation_token = match page.next_link.as_deref().filter(|link| !link.is_empty()) {
            None => None,
            Some(link) => Some(
                continuation_token(self.endpoint(), link)
                    .ok_or_else(|| invalid_response(operation, response.status, "nextLink has no continuationToken"))?,
            ),
        };
        Ok(GroupConnectionsPage {
            members: page.value,
            continuation_token,
        })
    }
}

/// The `continuationToken` in a `nextLink` (absolute, or relative to the endpoint).
pub(super) fn continuation_token(endpoint: &Endpoint, next_link: &str) -> Option<String> {
    let base = Url::parse(endpoint.as_str()).ok()?;
    let link = base.join(next_link).ok()?;
    link.query_pairs()
        .find(|(name, _)| name == "continuationToken")
        .map(|(_, value)| value.into_owned())
}
