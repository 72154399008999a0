//! One method per REST operation (sends, closes and existence checks one each, for whatever
//! [`Target`] the path names): read its parameters, call the service, answer with the status the
//! official SDKs expect (202 sends, 200 adds/grants/tokens, 204 removes/closes, 200/404 checks).

use std::time::Duration;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::call::Call;
use super::checks::{
    as_connection_filter, check_connection_id, check_group, check_target, check_user_id, connection_not_found,
    parse_permission,
};
use super::error::{ApiError, exists_response, json_response, status_response};
use super::paging::{GroupPage, decode_continuation, next_link};
use super::{API_VERSIONS, MAX_PAGE_SIZE};
use crate::service::Target;
use webpubsub_protocol::{ClientAccessRequest, ClientType, Permission};

impl Call {
    // ----- sends, closes and existence checks: the hub, a group, a user or a connection -----

    /// `POST …/:send` → 202 (fire-and-forget). `excluded` narrows hub and group sends, `filter`
    /// every send but one connection's, as in the service's API.
    pub(super) async fn send(&mut self, hub: &str, target: Target<'_>) -> Result<Response, ApiError> {
        check_target(target)?;
        let excluded = match target {
            Target::Hub | Target::Group(_) => self.excluded(),
            Target::User(_) | Target::Connection(_) => Vec::new(),
        };
        let filter = match target {
            Target::Connection(_) => None,
            _ => self.filter()?,
        };
        self.check_message_ttl()?;
        let payload = self.payload().await?;
        self.service
            .send(hub, target, &payload, &excluded, as_connection_filter(&filter));
        Ok(status_response(StatusCode::ACCEPTED))
    }

    /// `POST …/:closeConnections`, or `DELETE …/connections/{connectionId}` → 204 (also when
    /// nothing is there). `excluded` narrows every close but one connection's.
    pub(super) fn close(&self, hub: &str, target: Target<'_>) -> Result<Response, ApiError> {
        check_target(target)?;
        let excluded = match target {
            Target::Connection(_) => Vec::new(),
            _ => self.excluded(),
        };
        self.service.close(hub, target, &excluded, self.reason()?);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `HEAD` of a connection, group or user → 200 or 404.
    pub(super) fn exists(&self, hub: &str, target: Target<'_>) -> Result<Response, ApiError> {
        check_target(target)?;
        Ok(exists_response(self.service.exists(hub, target)))
    }

    // ----- hub operations -----

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
        let request = ClientAccessRequest {
            user_id,
            roles,
            groups,
            ttl: Duration::from_secs(u64::from(minutes_to_expire) * 60),
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

    // ----- group operations -----

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
    pub(super) fn add_connection_to_group(&self, hub: &str, group: &str, id: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        check_connection_id(id)?;
        if self.service.add_connection_to_group(hub, group, id) {
            Ok(status_response(StatusCode::OK))
        } else {
            Err(connection_not_found(id))
        }
    }

    /// `DELETE /api/hubs/{hub}/groups/{group}/connections/{connectionId}` → 204.
    pub(super) fn remove_connection_from_group(&self, hub: &str, group: &str, id: &str) -> Result<Response, ApiError> {
        check_group(group)?;
        check_connection_id(id)?;
        self.service.remove_connection_from_group(hub, group, id);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    // ----- permission operations -----

    /// The parameters every permission operation reads: the permission, the connection and
    /// `targetName` (the group a permission applies to; absent means every group).
    fn permission_params<'a>(
        &'a self,
        permission: &str,
        connection_id: &str,
    ) -> Result<(Permission, Option<&'a str>), ApiError> {
        let permission = parse_permission(permission)?;
        check_connection_id(connection_id)?;
        let target = self.query.one("targetName")?;
        if let Some(group) = target {
            check_group(group).map_err(|_| {
                ApiError::bad_request(
                    "InvalidTargetName",
                    "'targetName' must be a valid group name (1-1024 characters, not only whitespace)",
                )
            })?;
        }
        Ok((permission, target))
    }

    /// `PUT /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 200; 404
    /// when the connection does not exist.
    pub(super) fn grant_permission(&self, hub: &str, permission: &str, id: &str) -> Result<Response, ApiError> {
        let (permission, target) = self.permission_params(permission, id)?;
        if self.service.grant_permission(hub, id, permission, target) {
            Ok(status_response(StatusCode::OK))
        } else {
            Err(connection_not_found(id))
        }
    }

    /// `DELETE /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 204.
    pub(super) fn revoke_permission(&self, hub: &str, permission: &str, id: &str) -> Result<Response, ApiError> {
        let (permission, target) = self.permission_params(permission, id)?;
        self.service.revoke_permission(hub, id, permission, target);
        Ok(status_response(StatusCode::NO_CONTENT))
    }

    /// `HEAD /api/hubs/{hub}/permissions/{permission}/connections/{connectionId}` → 200 or 404.
    pub(super) fn check_permission(&self, hub: &str, permission: &str, id: &str) -> Result<Response, ApiError> {
        let (permission, target) = self.permission_params(permission, id)?;
        Ok(exists_response(
            self.service.check_permission(hub, id, permission, target),
        ))
    }

    // ----- user operations -----

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
