//! The Web PubSub REST data-plane client: every operation of protocol reference §3 over one pooled
//! `reqwest` client, each request authorised with a fresh short-lived HS256 bearer token whose `aud` is
//! the full request URL including the query (as the official SDKs send it).
//!
//! Requests are plain [`ApiRequest`] values (validated and encoded, see [`request`]); the client signs,
//! sends and retries them under the rule in [`retry`], and turns failures into a [`RestError`] that says
//! whether the service may have acted. Build one [`RestClient`] at startup and clone it freely.

mod auth;
mod error;
pub mod request;
pub mod retry;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use url::Url;

pub use error::{Delivery, RestError, ServiceError};
pub use request::{
    ApiRequest, CloseOptions, ContentType, GenerateTokenOptions, ListConnectionsOptions, Message, Operation,
    SendOptions,
};
pub use retry::RetryPolicy;

use self::retry::AttemptFailure;
use super::connection_string::{ConnectionString, Endpoint};
use super::keys::AccessKey;
use super::validate::Permission;

/// The api-version every request carries unless configured otherwise (the SDKs' default).
pub const DEFAULT_API_VERSION: &str = "2024-12-01";
/// Largest success body read (token and connection-list answers are far smaller).
const MAX_SUCCESS_BODY: usize = 1024 * 1024;
/// Largest error body read; the rest is ignored.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Longest service error message kept.
const MAX_ERROR_MESSAGE_CHARS: usize = 512;

/// Settings of a [`RestClient`]. `Default` gives production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestOptions {
    /// `api-version` query value.
    pub api_version: String,
    /// Limit on opening a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit on one attempt, from sending to the end of the response body.
    pub request_timeout: Duration,
    /// Lifetime of each bearer token (`exp - iat`). Tokens are made per attempt, never cached.
    pub token_ttl: Duration,
    /// When and how often to retry.
    pub retry: RetryPolicy,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

impl Default for RestOptions {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            token_ttl: Duration::from_secs(5 * 60),
            retry: RetryPolicy::default(),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

/// The HTTP client could not be created (e.g. TLS initialisation failed).
#[derive(Debug, thiserror::Error)]
#[error("could not create the Web PubSub HTTP client")]
pub struct RestClientInitError(#[source] reqwest::Error);

/// A connection in a group, from [`RestClient::list_group_connections`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// One page of a group's connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupConnectionsPage {
    pub members: Vec<GroupMember>,
    /// Pass in [`ListConnectionsOptions::continuation_token`] for the next page; `None` on the last.
    pub continuation_token: Option<String>,
}

/// The service's answer to an operation that succeeded (a 2xx, or a 404 from an existence check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: StatusCode,
    /// Read only for `generateToken` and the connection list; empty otherwise.
    pub body: Bytes,
}

/// The REST client. Cheap to clone: all clones share one connection pool and one prepared key.
#[derive(Clone)]
pub struct RestClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Endpoint,
    credential: auth::Credential,
    options: RestOptions,
}

impl fmt::Debug for RestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient")
            .field("endpoint", &self.inner.endpoint)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// A client for the service in `connection`, signing with its access key.
    pub fn new(connection: &ConnectionString, options: RestOptions) -> Result<Self, RestClientInitError> {
        Self::from_parts(connection.endpoint().clone(), connection.access_key(), options)
    }

    /// A client for `endpoint`, signing with `key`.
    pub fn from_parts(endpoint: Endpoint, key: &AccessKey, options: RestOptions) -> Result<Self, RestClientInitError> {
        Self::build(endpoint, auth::Credential::key(key), options)
    }

    fn build(
        endpoint: Endpoint,
        credential: auth::Credential,
        options: RestOptions,
    ) -> Result<Self, RestClientInitError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_idle_timeout(options.pool_idle_timeout)
            // A redirect would re-send a signed request somewhere else; the service never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("webpubsub-control/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(RestClientInitError)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                credential,
                options,
            }),
        })
    }

    /// The service endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The options the client was built with.
    pub fn options(&self) -> &RestOptions {
        &self.inner.options
    }

    /// Builds the signed HTTP request for `request` as if the clock read `now`, without sending it (in
    /// identity mode without `Authorization`: `execute` adds the identity token).
    pub fn prepare(&self, request: &ApiRequest, now: SystemTime) -> Result<reqwest::Request, RestError> {
        let inner = &*self.inner;
        let operation = request.operation();
        let url = Url::parse(&request.url(inner.endpoint.as_str(), &inner.options.api_version)).map_err(|_| {
            RestError::Transport {
                operation,
                delivery: Delivery::NotSent,
                attempts: 0,
                detail: "request URL is invalid".into(),
            }
        })?;
        let authorization = inner
            .credential
            .signed_header(url.as_str(), now, inner.options.token_ttl);

        let method = request.method();
        let mut http_request = reqwest::Request::new(method.clone(), url);
        if let Some(authorization) = authorization {
            http_request.headers_mut().insert(AUTHORIZATION, authorization);
        }
        match request.body() {
            Some((content_type, body)) => {
                http_request
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(content_type.mime()));
                *http_request.body_mut() = Some(body.clone().into());
            }
            // Like the SDKs, say `Content-Length: 0` on bodiless POST/PUT (hyper omits it for an empty
            // body); front ends may answer 411 Length Required without it.
            None if method == Method::POST || method == Method::PUT => {
                http_request
                    .headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                *http_request.body_mut() = Some(Bytes::new().into());
            }
            None => {}
        }
        Ok(http_request)
    }

    /// Sends any request, retrying under the [`retry`] rule. A 404 from an existence check is an
    /// answer, not an error.
    pub async fn execute(&self, request: &ApiRequest) -> Result<ApiResponse, RestError> {
        let operation = request.operation();
        let policy = &self.inner.options.retry;
        let started = Instant::now();
        // What the attempts so far may have done; Unknown from any attempt sticks.
        let mut delivery = Delivery::NotSent;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let http_request = self.prepare_authorized(request, operation).await?;
            let (failure, error) = match self.inner.http.execute(http_request).await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() || (status == StatusCode::NOT_FOUND && operation.is_existence_check()) {
                        tracing::debug!(
                            operation = operation.name(),
                            status = status.as_u16(),
                            attempts,
                            "web pubsub call done"
                        );
                        return read_success(operation, response).await;
                    }
                    let error = service_error(response).await;
                    let failure = AttemptFailure::Status {
                        status: error.status,
                        has_retry_after: error.retry_after.is_some(),
                    };
                    (failure, Failed::Service(error))
                }
                Err(transport) => {
                    let failure = if transport.is_connect() {
                        AttemptFailure::NotConnected
                    } else {
                        AttemptFailure::NoAnswer
                    };
                    (failure, Failed::Transport(transport))
                }
            };
            delivery = delivery.max(delivery_of(failure));

            let server_wait = match &error {
                Failed::Service(error) => error.retry_after,
                Failed::Transport(_) => None,
            };
            let wait = (attempts <= policy.max_retries && retry::is_retryable(operation.is_idempotent(), failure))
                .then(|| policy.wait_before(attempts, server_wait, started.elapsed(), rand::random::<f64>()))
                .flatten();
            if let Some(wait) = wait {
                tracing::warn!(
                    operation = operation.name(),
                    attempt = attempts,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    reason = %error,
                    "retrying web pubsub call"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(error.into_rest_error(operation, delivery, attempts));
        }
    }

    async fn run(&self, request: Result<ApiRequest, super::ValidationError>) -> Result<ApiResponse, RestError> {
        self.execute(&request?).await
    }

    async fn run_unit(&self, request: Result<ApiRequest, super::ValidationError>) -> Result<(), RestError> {
        self.run(request).await.map(drop)
    }

    async fn run_exists(&self, request: Result<ApiRequest, super::ValidationError>) -> Result<bool, RestError> {
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

/// A failed attempt, before it becomes a [`RestError`].
enum Failed {
    Service(ServiceError),
    Transport(reqwest::Error),
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(error) => error.fmt(f),
            Self::Transport(error) => f.write_str(&transport_detail(error)),
        }
    }
}

impl Failed {
    fn into_rest_error(self, operation: Operation, delivery: Delivery, attempts: u32) -> RestError {
        match self {
            Self::Service(error) => RestError::Service {
                operation,
                delivery,
                attempts,
                error,
            },
            Self::Transport(error) if error.is_timeout() => RestError::Timeout {
                operation,
                delivery,
                attempts,
            },
            Self::Transport(error) => RestError::Transport {
                operation,
                delivery,
                attempts,
                detail: transport_detail(&error),
            },
        }
    }
}

/// What one failed attempt implies about the service having acted.
fn delivery_of(failure: AttemptFailure) -> Delivery {
    match failure {
        AttemptFailure::NotConnected => Delivery::NotSent,
        AttemptFailure::NoAnswer => Delivery::Unknown,
        AttemptFailure::Status {
            status: 500 | 502 | 504,
            ..
        } => Delivery::Unknown,
        AttemptFailure::Status {
            status: 503,
            has_retry_after,
        } => {
            if has_retry_after {
                Delivery::Refused
            } else {
                Delivery::Unknown
            }
        }
        AttemptFailure::Status { .. } => Delivery::Refused,
    }
}

/// The error and its causes, without the URL (which `reqwest` would repeat at every level).
fn transport_detail(error: &reqwest::Error) -> String {
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        let text = current.to_string();
        if !text.is_empty() && !detail.contains(&text) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&text);
        }
        source = current.source();
    }
    detail
}

fn invalid_response(operation: Operation, status: StatusCode, detail: &str) -> RestError {
    RestError::InvalidResponse {
        operation,
        status: status.as_u16(),
        detail: detail.to_owned(),
    }
}

async fn read_success(operation: Operation, response: reqwest::Response) -> Result<ApiResponse, RestError> {
    let status = response.status();
    if !matches!(operation, Operation::GenerateToken | Operation::ListGroupConnections) {
        return Ok(ApiResponse {
            status,
            body: Bytes::new(),
        });
    }
    match read_body(response, MAX_SUCCESS_BODY).await {
        Ok((body, false)) => Ok(ApiResponse { status, body }),
        Ok((_, true)) => Err(invalid_response(operation, status, "body is larger than 1 MiB")),
        Err(_) => Err(invalid_response(operation, status, "body could not be read")),
    }
}

/// Reads at most `limit` bytes; the flag says whether more were left unread.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<(Bytes, bool), reqwest::Error> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), false))
}

/// Turns an error answer into a [`ServiceError`]: status, `x-ms-error-code`, message, `Retry-After`.
async fn service_error(response: reqwest::Response) -> ServiceError {
    let status = response.status();
    let retry_after = retry::retry_after(response.headers());
    let header_code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .map(str::to_owned);
    let body = read_body(response, MAX_ERROR_BODY)
        .await
        .map(|(body, _)| body)
        .unwrap_or_default();
    let (body_code, body_message) = parse_error_body(&body);
    let message = body_message
        .or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
    ServiceError {
        status: status.as_u16(),
        error_code: header_code.or(body_code),
        message: clip(&message),
        retry_after,
    }
}

/// `{"error":{"code","message"}}` (2024-12-01) or `{"code","message"}` (earlier versions).
fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Detail {
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Wrapped {
        error: Detail,
    }
    let detail = serde_json::from_slice::<Wrapped>(body)
        .map(|wrapped| wrapped.error)
        .or_else(|_| serde_json::from_slice::<Detail>(body));
    match detail {
        Ok(Detail { code, message }) => (code.filter(|c| !c.is_empty()), message.filter(|m| !m.is_empty())),
        Err(_) => (None, None),
    }
}

/// At most [`MAX_ERROR_MESSAGE_CHARS`] characters, control characters replaced, for safe logging.
fn clip(message: &str) -> String {
    message
        .chars()
        .take(MAX_ERROR_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The `continuationToken` in a `nextLink` (absolute, or relative to the endpoint).
fn continuation_token(endpoint: &Endpoint, next_link: &str) -> Option<String> {
    let base = Url::parse(endpoint.as_str()).ok()?;
    let link = base.join(next_link).ok()?;
    link.query_pairs()
        .find(|(name, _)| name == "continuationToken")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    use std::time::UNIX_EPOCH;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

    fn client() -> RestClient {
        let connection =
            ConnectionString::parse(&format!("Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY}")).unwrap();
        RestClient::new(&connection, RestOptions::default()).unwrap()
    }

    #[test]
    fn prepared_request_carries_a_bearer_for_the_full_url() {
        let request = ApiRequest::send_to_group(
            "chat",
            "room 1",
            &Message::text("hi"),
            &SendOptions {
                filter: Some("userId eq 'a'".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let prepared = client().prepare(&request, now).unwrap();
        let expected_url = "https://contoso.webpubsub.azure.com/api/hubs/chat/groups/room%201/:send\
                            ?api-version=2024-12-01&filter=userId%20eq%20%27a%27";
        assert_eq!(prepared.method(), Method::POST);
        assert_eq!(prepared.url().as_str(), expected_url);
        assert_eq!(prepared.headers()[CONTENT_TYPE], "text/plain");
        let bearer = prepared.headers()[AUTHORIZATION]
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap()
            .to_owned();
        assert!(prepared.headers()[AUTHORIZATION].is_sensitive());

        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_audience(&[expected_url]);
        let claims = decode::<serde_json::Value>(&bearer, &DecodingKey::from_secret(KEY.as_bytes()), &validation)
            .unwrap()
            .claims;
        assert_eq!(
            claims,
            serde_json::json!({"aud": expected_url, "iat": 1_700_000_000u64, "exp": 1_700_000_300u64})
        );
    }

    #[test]
    fn bodiless_posts_get_an_empty_body_and_heads_none() {
        let client = client();
        let now = SystemTime::now();
        let close = client
            .prepare(
                &ApiRequest::close_all_connections("chat", &CloseOptions::default()).unwrap(),
                now,
            )
            .unwrap();
        assert_eq!(close.body().and_then(|b| b.as_bytes()), Some(&b""[..]));
        assert_eq!(close.headers()[CONTENT_LENGTH], "0");
        assert!(close.headers().get(CONTENT_TYPE).is_none());
        let exists = client
            .prepare(&ApiRequest::user_exists("chat", "u").unwrap(), now)
            .unwrap();
        assert!(exists.body().is_none());
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", client());
        assert!(!shown.contains(KEY) && shown.contains("contoso"), "{shown}");
    }

    #[test]
    fn error_bodies_of_both_shapes_are_understood() {
        assert_eq!(
            parse_error_body(br#"{"error":{"code":"InvalidHub","message":"bad hub"}}"#),
            (Some("InvalidHub".into()), Some("bad hub".into()))
        );
        assert_eq!(
            parse_error_body(br#"{"code":"Forbidden","message":"no","target":"x"}"#),
            (Some("Forbidden".into()), Some("no".into()))
        );
        assert_eq!(parse_error_body(b"plain text"), (None, None));
        assert_eq!(parse_error_body(br#"{"error":"oops"}"#), (None, None));
    }

    #[test]
    fn messages_are_clipped_and_stripped_of_control_characters() {
        assert_eq!(clip("a\nb\u{7}"), "a b ");
        assert_eq!(clip(&"x".repeat(2000)).chars().count(), MAX_ERROR_MESSAGE_CHARS);
    }

    #[test]
    fn delivery_follows_the_status() {
        assert_eq!(delivery_of(AttemptFailure::NotConnected), Delivery::NotSent);
        assert_eq!(delivery_of(AttemptFailure::NoAnswer), Delivery::Unknown);
        for status in [400, 401, 403, 404, 408, 409, 429, 501] {
            assert_eq!(
                delivery_of(AttemptFailure::Status {
                    status,
                    has_retry_after: false
                }),
                Delivery::Refused,
                "{status}"
            );
        }
        for status in [500, 502, 503, 504] {
            assert_eq!(
                delivery_of(AttemptFailure::Status {
                    status,
                    has_retry_after: false
                }),
                Delivery::Unknown,
                "{status}"
            );
        }
        assert_eq!(
            delivery_of(AttemptFailure::Status {
                status: 503,
                has_retry_after: true
            }),
            Delivery::Refused
        );
    }

    #[test]
    fn continuation_tokens_come_from_relative_or_absolute_next_links() {
        let endpoint = Endpoint::parse("https://contoso.webpubsub.azure.com").unwrap();
        assert_eq!(
            continuation_token(
                &endpoint,
                "/api/hubs/h/groups/g/connections?continuationToken=abc%3D&api-version=2024-12-01"
            ),
            Some("abc=".into())
        );
        assert_eq!(
            continuation_token(&endpoint, "https://other.example/x?api-version=1&continuationToken=t"),
            Some("t".into())
        );
        assert_eq!(continuation_token(&endpoint, "/x?api-version=1"), None);
    }

    #[test]
    fn default_options_are_bounded() {
        let options = RestOptions::default();
        assert_eq!(options.api_version, "2024-12-01");
        assert_eq!(options.token_ttl, Duration::from_secs(300));
        assert!(options.retry.max_retries > 0 && options.retry.max_elapsed > options.retry.max_backoff);
    }
}
