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

    /// Broadcasts to every connection of `hub`.
    pub async fn send_to_all(&self, hub: &str, message: &Message, options: &SendOptions) -> Result<(), RestError> {
        self.run_unit(ApiRequest::send_to_all(hub, message, options)).await
    }

    /// Sends to every connection in `group`.
    pub async fn send_to_group(
        &self,
        hub: &str,
        group: &str,
        message: &Message,
        options: &SendOptions,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::send_to_group(hub, group, message, options))
            .await
    }

    /// Sends to every connection of `user_id` (`excluded` is not supported).
    pub async fn send_to_user(
        &self,
        hub: &str,
        user_id: &str,
        message: &Message,
        options: &SendOptions,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::send_to_user(hub, user_id, message, options))
            .await
    }

    /// Sends to one connection (only `ttl_seconds` is supported).
    pub async fn send_to_connection(
        &self,
        hub: &str,
        connection_id: &str,
        message: &Message,
        options: &SendOptions,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::send_to_connection(hub, connection_id, message, options))
            .await
    }

    /// Closes every connection of `hub` except `options.excluded`.
    pub async fn close_all_connections(&self, hub: &str, options: &CloseOptions) -> Result<(), RestError> {
        self.run_unit(ApiRequest::close_all_connections(hub, options)).await
    }

    /// Closes every connection in `group`.
    pub async fn close_group_connections(
        &self,
        hub: &str,
        group: &str,
        options: &CloseOptions,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::close_group_connections(hub, group, options))
            .await
    }

    /// Closes every connection of `user_id`.
    pub async fn close_user_connections(
        &self,
        hub: &str,
        user_id: &str,
        options: &CloseOptions,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::close_user_connections(hub, user_id, options))
            .await
    }

    /// Closes one connection.
    pub async fn close_connection(
        &self,
        hub: &str,
        connection_id: &str,
        reason: Option<&str>,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::close_connection(hub, connection_id, reason))
            .await
    }

    /// Whether the connection is connected.
    pub async fn connection_exists(&self, hub: &str, connection_id: &str) -> Result<bool, RestError> {
        self.run_exists(ApiRequest::connection_exists(hub, connection_id)).await
    }

    /// Whether the group has any connection.
    pub async fn group_exists(&self, hub: &str, group: &str) -> Result<bool, RestError> {
        self.run_exists(ApiRequest::group_exists(hub, group)).await
    }

    /// Whether the user has any connection.
    pub async fn user_exists(&self, hub: &str, user_id: &str) -> Result<bool, RestError> {
        self.run_exists(ApiRequest::user_exists(hub, user_id)).await
    }

    /// Adds the connections matching `filter` to each of `groups`.
    pub async fn add_connections_to_groups(&self, hub: &str, groups: &[String], filter: &str) -> Result<(), RestError> {
        self.run_unit(ApiRequest::add_connections_to_groups(hub, groups, filter))
            .await
    }

    /// Removes the connections matching `filter` from each of `groups`.
    pub async fn remove_connections_from_groups(
        &self,
        hub: &str,
        groups: &[String],
        filter: &str,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::remove_connections_from_groups(hub, groups, filter))
            .await
    }

    /// Adds one connection to a group (the service answers 404 if the connection does not exist).
    pub async fn add_connection_to_group(&self, hub: &str, group: &str, connection_id: &str) -> Result<(), RestError> {
        self.run_unit(ApiRequest::add_connection_to_group(hub, group, connection_id))
            .await
    }

    /// Removes one connection from a group.
    pub async fn remove_connection_from_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::remove_connection_from_group(hub, group, connection_id))
            .await
    }

    /// Removes one connection from every group.
    pub async fn remove_connection_from_all_groups(&self, hub: &str, connection_id: &str) -> Result<(), RestError> {
        self.run_unit(ApiRequest::remove_connection_from_all_groups(hub, connection_id))
            .await
    }

    /// Adds a user (all its current and future connections) to a group.
    pub async fn add_user_to_group(&self, hub: &str, group: &str, user_id: &str) -> Result<(), RestError> {
        self.run_unit(ApiRequest::add_user_to_group(hub, group, user_id)).await
    }

    /// Removes a user from a group.
    pub async fn remove_user_from_group(&self, hub: &str, group: &str, user_id: &str) -> Result<(), RestError> {
        self.run_unit(ApiRequest::remove_user_from_group(hub, group, user_id))
            .await
    }

    /// Removes a user from every group.
    pub async fn remove_user_from_all_groups(&self, hub: &str, user_id: &str) -> Result<(), RestError> {
        self.run_unit(ApiRequest::remove_user_from_all_groups(hub, user_id))
            .await
    }

    /// Grants `permission` on `target_group` (or on every group when `None`) to a connection.
    pub async fn grant_permission(
        &self,
        hub: &str,
        permission: Permission,
        connection_id: &str,
        target_group: Option<&str>,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::grant_permission(
            hub,
            permission,
            connection_id,
            target_group,
        ))
        .await
    }

    /// Revokes `permission` on `target_group` (or on every group when `None`) from a connection.
    pub async fn revoke_permission(
        &self,
        hub: &str,
        permission: Permission,
        connection_id: &str,
        target_group: Option<&str>,
    ) -> Result<(), RestError> {
        self.run_unit(ApiRequest::revoke_permission(
            hub,
            permission,
            connection_id,
            target_group,
        ))
        .await
    }

    /// Whether a connection has `permission` on `target_group` (or on every group when `None`).
    pub async fn check_permission(
        &self,
        hub: &str,
        permission: Permission,
        connection_id: &str,
        target_group: Option<&str>,
    ) -> Result<bool, RestError> {
        self.run_exists(ApiRequest::check_permission(
            hub,
            permission,
            connection_id,
            target_group,
        ))
        .await
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
