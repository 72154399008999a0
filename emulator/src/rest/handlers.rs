//! One method per REST operation: read its parameters, call the service, answer with the status
//! the official SDKs expect (202 sends, 200 adds/grants/tokens, 204 removes/closes, 200/404 checks).

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::call::Call;
use super::checks::{
    as_connection_filter, check_connection_id, check_group, check_user_id, connection_not_found, parse_permission,
};
use super::error::{ApiError, exists_response, json_response, status_response};
use super::paging::{GroupPage, decode_continuation, next_link};
use super::{API_VERSIONS, MAX_PAGE_SIZE};
use crate::service::ClientTokenRequest;
use webpubsub_protocol::ClientType;

impl Call {
    // ----- hub operations -----

    /// `POST /api/hubs/{hub}/:send` → 202.
    pub(super) async fn send_to_all(&mut self, hub: &str) -> Result<Response, ApiError> {
        let (excluded, filter) = (self.excluded(), self.filter()?);
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service
            .send_to_all(hub, &payload, &excluded, as_connection_filter(&filter));
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `POST /api/hubs/{hub}/:closeConnections` → 204.
    pub(super) fn close_all(&self, hub: &str) -> Result<Response, ApiError> {
        self.service.close_all(hub, &self.excluded(), self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `POST /api/hubs/{hub}/:generateToken` → 200 `{"token":"…"}`.
    pub(super) fn generate_token(&self, hub: &str) -> Result<Response, ApiError> {
        let user_id = self.query.one("userId")?.map(str::to_owned);
        let roles: Vec<String> = self
            .query
            .all("role")
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        let groups: Vec<String> = self.query.all("group").map(str::to_owned).collect();
        for group in &groups {
            check_group(group)?;
        }
        let minutes_to_expire = self.query.integer("minutesToExpire", 1..=u32::MAX)?.unwrap_or(60);
        let client_type = match self.query.one("clientType")? {
            None => ClientType::Default,
            Some(text) => text.parse::<ClientType>().map_err(|_| {
                ApiError::bad_request(
                    "InvalidQueryParameter",
                    "'clientType' must be Default, MQTT or SocketIO",
                )
            })?,
        };
        let request = ClientTokenRequest {
            user_id,
            roles,
            groups,
            minutes_to_expire,
            client_type,
        };
        let token = self.service.generate_client_token(hub, &self.endpoint(), &request);
        Ok(json_response(StatusCode::OK, &json!({ "token": token })))
    }

    /// `POST /api/hubs/{hub}/:addToGroups` → 200.
    pub(super) async fn add_to_groups(&mut self, hub: &str) -> Result<Response, ApiError> {
        let (groups, filter) = self.groups_body().await?;
        self.service.add_to_groups(hub, &groups, as_connection_filter(&filter));
        Ok(status_response(StatusCode::OK))
    }

    /// `POST /api/hubs/{hub}/:removeFromGroups` → 200.
    pub(super) async fn remove_from_groups(&mut self, hub: &str) -> Result<Response, ApiError> {
        let (groups, filter) = self.groups_body().await?;
        self.service
            .remove_from_groups(hub, &groups, as_connection_filter(&filter));
        Ok(status_response(StatusCode::OK))
    }

    // ----- connection operations -----

    /// `DELETE /api/hubs/{hub}/connections/{connectionId}` → 204 (also when already gone).
    pub(super) fn close_connection(&self, hub: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        self.service.close_connection(hub, connection_id, self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `HEAD /api/hubs/{hub}/connections/{connectionId}` → 200 or 404.
    pub(super) fn connection_exists(&self, hub: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        Ok(exists_response(self.service.connection_exists(hub, connection_id)))
    }

    /// `POST /api/hubs/{hub}/connections/{connectionId}/:send` → 202 (fire-and-forget).
    pub(super) async fn send_to_connection(&mut self, hub: &str, connection_id: &str) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service.send_to_connection(hub, connection_id, &payload);
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `DELETE /api/hubs/{hub}/connections/{connectionId}/groups` → 204.
    pub(super) fn remove_connection_from_all_groups(
        &self,
        hub: &str,
        connection_id: &str,
    ) -> Result<Response, ApiError> {
        check_connection_id(connection_id)?;
        self.service.remove_connection_from_all_groups(hub, connection_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    // ----- group operations -----

    /// `HEAD /api/hubs/{hub}/groups/{group}` → 200 or 404.
    pub(super) fn group_exists(&self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        Ok(exists_response(self.service.group_exists(hub, group)))
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:closeConnections` → 204.
    pub(super) fn close_group(&self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        self.service.close_group(hub, group, &self.excluded(), self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:send` → 202.
    pub(super) async fn send_to_group(&mut self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        let (excluded, filter) = (self.excluded(), self.filter()?);
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service
            .send_to_group(hub, group, &payload, &excluded, as_connection_filter(&filter));
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `GET /api/hubs/{hub}/groups/{group}/connections` → 200 `{"value":[…],"nextLink"?}`.
    pub(super) fn list_group_connections(&self, hub: &str, group: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        let page_size = self
            .query
            .integer("maxpagesize", 1..=MAX_PAGE_SIZE)?
            .unwrap_or(MAX_PAGE_SIZE);
        let top = self.query.integer("top", 1..=usize::MAX)?;
        let after = match self.query.one("continuationToken")? {
            Some(token) => Some(decode_continuation(token)?),
            None => None,
        };
        let members = self.service.group_connections(hub, group);
        let page = GroupPage::of(&members, after.as_deref(), page_size, top);
        let mut body = json!({ "value": page.items });
        if let Some(last) = page.next_after {
            let api_version = self.query.one("api-version")?.unwrap_or(API_VERSIONS[0]);
            body["nextLink"] = json!(next_link(hub, group, api_version, page_size, page.remaining_top, last));
        }
        Ok(json_response(StatusCode::OK, &body))
    }

    /// `PUT /api/hubs/{hub}/groups/{group}/connections/{connectionId}` → 200; 404 when the
    /// connection does not exist.
    pub(super) fn add_connection_to_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Response, ApiError> {
        check_group(group)?;
        check_connection_id(connection_id)?;
        if self.service.add_connection_to_group(hub, group, connection_id) {
            Ok(status_response(StatusCode::OK))
        } else {
            Err(connection_not_found(connection_id))
        }
    }

    /// `DELETE /api/hubs/{hub}/groups/{group}/connections/{connectionId}` → 204.
    pub(super) fn remove_connection_from_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Response, ApiError> {
        check_group(group)?;
        check_connection_id(connection_id)?;
        self.service.remove_connection_from_group(hub, group, connection_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    // ----- permission operations -----

    /// `targetName`: the group a permission applies to; absent means every group.
    pub(super) fn target_name(&self) -> Result<Option<&str>, ApiError> {
        let target = self.query.one("targetName")?;
        if let Some(group) = target {
            check_group(group).map_err(|_| {
                ApiError::bad_request(
                    "InvalidTargetName",
                    "'targetName' must be a valid group name (1-1024 characters, not only whitespace)",
                )
            })?;
        }
        Ok(target)
    }

    /// `PUT /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 200; 404
    /// when the connection does not exist.
    pub(super) fn grant_permission(
        &self,
        hub: &str,
        permission: &str,
        connection_id: &str,
    ) -> Result<Response, ApiError> {
        let permission = parse_permission(permission)?;
        check_connection_id(connection_id)?;
        let target = self.target_name()?;
        if self.service.grant_permission(hub, connection_id, permission, target) {
            Ok(status_response(StatusCode::OK))
        } else {
            Err(connection_not_found(connection_id))
        }
    }

    /// `DELETE /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 204.
    pub(super) fn revoke_permission(
        &self,
        hub: &str,
        permission: &str,
        connection_id: &str,
    ) -> Result<Response, ApiError> {
        let permission = parse_permission(permission)?;
        check_connection_id(connection_id)?;
        let target = self.target_name()?;
        self.service.revoke_permission(hub, connection_id, permission, target);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `HEAD /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 200 or 404.
    pub(super) fn check_permission(
        &self,
        hub: &str,
        permission: &str,
        connection_id: &str,
    ) -> Result<Response, ApiError> {
        let permission = parse_permission(permission)?;
        check_connection_id(connection_id)?;
        let target = self.target_name()?;
        Ok(exists_response(self.service.check_permission(
            hub,
            connection_id,
            permission,
            target,
        )))
    }

    // ----- user operations -----

    /// `HEAD /api/hubs/{hub}/users/{userId}` → 200 or 404.
    pub(super) fn user_exists(&self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        Ok(exists_response(self.service.user_exists(hub, user_id)))
    }

    /// `POST /api/hubs/{hub}/users/{userId}/:closeConnections` → 204.
    pub(super) fn close_user(&self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        self.service.close_user(hub, user_id, &self.excluded(), self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `POST /api/hubs/{hub}/users/{userId}/:send` → 202.
    pub(super) async fn send_to_user(&mut self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        let filter = self.filter()?;
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service
            .send_to_user(hub, user_id, &payload, as_connection_filter(&filter));
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `DELETE /api/hubs/{hub}/users/{userId}/groups` → 204.
    pub(super) fn remove_user_from_all_groups(&self, hub: &str, user_id: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        self.service.remove_user_from_all_groups(hub, user_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `PUT /api/hubs/{hub}/users/{userId}/groups/{group}` → 200.
    pub(super) fn add_user_to_group(&self, hub: &str, user_id: &str, group: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        check_group(group)?;
        self.service.add_user_to_group(hub, group, user_id);
        Ok(status_response(StatusCode::OK))
    }

    /// `DELETE /api/hubs/{hub}/users/{userId}/groups/{group}` → 204.
    pub(super) fn remove_user_from_group(&self, hub: &str, user_id: &str, group: &str) -> Result<Response, ApiError> {
        check_user_id(user_id)?;
        check_group(group)?;
        self.service.remove_user_from_group(hub, group, user_id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }
}

/// `HEAD /api/health` (and `GET`) → 200.
pub(super) fn health() -> Response {
    status_response(StatusCode::OK)
}
