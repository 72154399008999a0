//! One REST call on its way through the checks: route, bearer token, `api-version`, hub name,
//! then dispatch to its handler; and the parameter and body parsing the handlers share (bounded
//! body, content type, `excluded`, `filter`, `reason`, `messageTtlSeconds`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use warp::http::{HeaderMap, Method, StatusCode, header};
use warp::reply::Response;

use super::checks::{check_group, check_hub, parse_filter};
use super::error::ApiError;
use super::handlers::health;
use super::query::Query;
use super::route::{Route, path_segments};
use super::{API_VERSIONS, BodyStream, MAX_BODY_BYTES, MAX_MESSAGE_TTL_SECONDS, MAX_REASON_CHARS};
use crate::filter::Filter;
use crate::protocol::{DataType, Payload};
use crate::service::{Service, Target};
use webpubsub_protocol::Operation;

/// One REST call on its way through the checks.
pub(super) struct Call {
    pub(super) service: Arc<Service>,
    method: Method,
    path: String,
    raw_query: String,
    pub(super) query: Query,
    headers: HeaderMap,
    body: Option<BodyStream>,
}

impl Call {
    pub(super) fn new(
        service: Arc<Service>,
        method: Method,
        path: &str,
        raw_query: String,
        headers: HeaderMap,
        body: BodyStream,
    ) -> Call {
        let query = Query::parse(&raw_query);
        Call {
            service,
            method,
            path: path.to_owned(),
            raw_query,
            query,
            headers,
            body: Some(body),
        }
    }

    /// `http://host[:port]` as the caller reached the emulator (the Host header).
    pub(super) fn endpoint(&self) -> String {
        let host = self
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// The URL as the caller requested it: what a REST token's `aud` names.
    pub(super) fn request_url(&self) -> String {
        if self.raw_query.is_empty() {
            format!("{}{}", self.endpoint(), self.path)
        } else {
            format!("{}{}?{}", self.endpoint(), self.path, self.raw_query)
        }
    }

    pub(super) async fn handle(mut self) -> Result<Response, ApiError> {
        let answer = self.route_and_dispatch().await;
        self.drain_unread_body().await;
        answer
    }

    async fn route_and_dispatch(&mut self) -> Result<Response, ApiError> {
        let route = Route::resolve(&self.method, &path_segments(&self.path)?)?;
        if route.operation == Operation::Health {
            return Ok(health());
        }
        self.authorize()?;
        self.check_api_version()?;
        if let Some(hub) = route.hub() {
            check_hub(hub)?;
        }
        self.dispatch(route).await
    }

    /// 401 unless the bearer token is signed with an access key and names this URL, or (identity mode)
    /// is an identity token of the emulator's authority; access-key tokens are refused while local auth
    /// is disabled.
    pub(super) fn authorize(&self) -> Result<(), ApiError> {
        let authorization = self.headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        crate::identity::authorize_rest(
            &self.service,
            self.service.identity().map(|authority| &**authority),
            self.service.local_auth_disabled(),
            authorization,
            &self.request_url(),
        )
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", e.to_string()))
    }

    pub(super) fn check_api_version(&self) -> Result<(), ApiError> {
        match self.query.one("api-version")? {
            None => Err(ApiError::bad_request(
                "MissingApiVersion",
                format!(
                    "the 'api-version' query parameter is required; supported: {}",
                    API_VERSIONS.join(", ")
                ),
            )),
            Some(version) if API_VERSIONS.contains(&version) => Ok(()),
            Some(version) => Err(ApiError::bad_request(
                "UnsupportedApiVersion",
                format!(
                    "api-version '{version}' is not supported; supported: {}",
                    API_VERSIONS.join(", ")
                ),
            )),
        }
    }

    pub(super) async fn dispatch(&mut self, route: Route) -> Result<Response, ApiError> {
        use Operation as Op;
        // Path parameters in template order: the hub, then the first and second named segment.
        let (hub, first, second) = (route.param(0), route.param(1), route.param(2));
        match route.operation {
            Op::Health => Ok(health()),
            Op::SendToAll => self.send(hub, Target::Hub).await,
            Op::SendToGroup => self.send(hub, Target::Group(first)).await,
            Op::SendToUser => self.send(hub, Target::User(first)).await,
            Op::SendToConnection => self.send(hub, Target::Connection(first)).await,
            Op::CloseAllConnections => self.close(hub, Target::Hub),
            Op::CloseGroupConnections => self.close(hub, Target::Group(first)),
            Op::CloseUserConnections => self.close(hub, Target::User(first)),
            Op::CloseConnection => self.close(hub, Target::Connection(first)),
            Op::GroupExists => self.exists(hub, Target::Group(first)),
            Op::UserExists => self.exists(hub, Target::User(first)),
            Op::ConnectionExists => self.exists(hub, Target::Connection(first)),
            Op::GenerateToken => self.generate_token(hub),
            Op::AddConnectionsToGroups => self.add_to_groups(hub).await,
            Op::RemoveConnectionsFromGroups => self.remove_from_groups(hub).await,
            Op::RemoveConnectionFromAllGroups => self.remove_connection_from_all_groups(hub, first),
            Op::ListGroupConnections => self.list_group_connections(hub, first),
            Op::AddConnectionToGroup => self.add_connection_to_group(hub, first, second),
            Op::RemoveConnectionFromGroup => self.remove_connection_from_group(hub, first, second),
            Op::GrantPermission => self.grant_permission(hub, first, second),
            Op::RevokePermission => self.revoke_permission(hub, first, second),
            Op::CheckPermission => self.check_permission(hub, first, second),
            Op::RemoveUserFromAllGroups => self.remove_user_from_all_groups(hub, first),
            Op::AddUserToGroup => self.add_user_to_group(hub, first, second),
            Op::RemoveUserFromGroup => self.remove_user_from_group(hub, first, second),
        }
    }

    // ----- shared parameter parsing -----

    /// `excluded` connection ids (repeatable; empty values ignored).
    pub(super) fn excluded(&self) -> Vec<String> {
        self.query
            .all("excluded")
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `filter`, parsed; absent or blank means no filter.
    pub(super) fn filter(&self) -> Result<Option<Filter>, ApiError> {
        match self.query.one("filter")? {
            Some(text) if !text.trim().is_empty() => parse_filter(text).map(Some),
            _ => Ok(None),
        }
    }

    /// `reason` for closes (optional).
    pub(super) fn reason(&self) -> Result<Option<&str>, ApiError> {
        let reason = self.query.one("reason")?;
        if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
            return Err(ApiError::bad_request(
                "InvalidQueryParameter",
                format!("'reason' must be at most {MAX_REASON_CHARS} characters"),
            ));
        }
        Ok(reason)
    }

    /// `messageTtlSeconds`: validated (0–300); the emulator delivers at once, so it has no
    /// further effect.
    pub(super) fn check_message_ttl(&self) -> Result<(), ApiError> {
        self.query
            .integer("messageTtlSeconds", 0..=MAX_MESSAGE_TTL_SECONDS)
            .map(|_| ())
    }

    /// The message body of a send: bounded, of a supported content type, and well-formed.
    pub(super) async fn payload(&mut self) -> Result<Payload, ApiError> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let kind = DataType::from_content_type(content_type).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "Content-Type must be text/plain, application/json or application/octet-stream",
            )
        })?;
        let payload = Payload::new(kind, self.body_bytes().await?);
        payload
            .validate()
            .map_err(|e| ApiError::bad_request("InvalidPayload", e.to_string()))?;
        Ok(payload)
    }

    /// Whether `Content-Length` already says the body is over [`MAX_BODY_BYTES`].
    fn declared_length_too_large(&self) -> bool {
        self.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|h| h.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    }

    /// Reads what a refused call left of a small body, so the client's keep-alive connection stays usable
    /// for its next request (as the service's does); a body over [`MAX_BODY_BYTES`] or one that stalls
    /// for 5 s is abandoned and the connection closes.
    async fn drain_unread_body(&mut self) {
        if self.declared_length_too_large() {
            return;
        }
        let Some(mut stream) = self.body.take() else { return };
        let drain = async {
            let mut read = 0;
            while let Some(Ok(chunk)) = stream.next().await {
                read += chunk.len();
                if read > MAX_BODY_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
    }

    /// Reads the body, stopping with 413 as soon as it exceeds [`MAX_BODY_BYTES`].
    pub(super) async fn body_bytes(&mut self) -> Result<Bytes, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the message body exceeds {MAX_BODY_BYTES} bytes"),
            )
        };
        if self.declared_length_too_large() {
            return Err(too_large());
        }
        let Some(mut stream) = self.body.take() else {
            return Ok(Bytes::new());
        };
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::bad_request("InvalidBody", "the request body could not be read"))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// The JSON body of `:addToGroups` / `:removeFromGroups`: `{"groups":[…],"filter":"…"}`.
    pub(super) async fn groups_body(&mut self) -> Result<(Vec<String>, Option<Filter>), ApiError> {
        #[derive(serde::Deserialize)]
        struct GroupsToChange {
            groups: Vec<String>,
            #[serde(default)]
            filter: Option<String>,
        }
        let bytes = self.body_bytes().await?;
        let body: GroupsToChange = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                "InvalidBody",
                format!("the body must be JSON like {{\"groups\":[\"g1\"],\"filter\":\"userId eq 'a'\"}}: {e}"),
            )
        })?;
        for group in &body.groups {
            check_group(group)?;
        }
        let filter = match body.filter.as_deref() {
            Some(text) if !text.trim().is_empty() => Some(parse_filter(text)?),
            _ => None,
        };
        Ok((body.groups, filter))
    }
}
