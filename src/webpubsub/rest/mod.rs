//! The Web PubSub REST data-plane client: every operation of protocol reference §3 over one pooled
//! `reqwest` client, each request authorised with a fresh short-lived HS256 bearer token whose `aud` is
//! the full request URL including the query (as the official SDKs send it).
//!
//! Requests are plain [`ApiRequest`] values (validated and encoded, see [`request`]); the client signs,
//! sends and retries them under the rule in [`retry`], and turns failures into a [`RestError`] that says
//! whether the service may have acted. Build one [`RestClient`] at startup and clone it freely.

mod auth;
mod error;
mod operations;
pub mod request;
mod response;
pub mod retry;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use url::Url;

use crate::http_client::LazyClient;

pub use error::{Delivery, RestError, ServiceError};
pub use operations::{GroupConnectionsPage, GroupMember};
pub use request::{
    ApiRequest, CloseOptions, ContentType, GenerateTokenOptions, ListConnectionsOptions, Message, Operation,
    SendOptions,
};
pub use retry::RetryPolicy;

use self::response::{Failed, delivery_of, read_success, service_error};
use self::retry::AttemptFailure;
use super::connection_string::{ConnectionString, Endpoint};
use super::keys::AccessKey;

/// The api-version every request carries unless configured otherwise (the SDKs' default).
pub const DEFAULT_API_VERSION: &str = "2024-12-01";

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

/// The HTTP client could not be created. No longer returned: the client is built in the background and a
/// failure fails each call instead (`LazyClient`); the constructors keep their `Result` for callers.
#[derive(Debug, thiserror::Error)]
#[error("could not create the Web PubSub HTTP client")]
pub struct RestClientInitError(#[source] reqwest::Error);

/// The service's answer to an operation that succeeded (a 2xx, or a 404 from an existence check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// The service's HTTP status.
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
    /// Built in the background (it loads the TLS trust store): a failure fails each call, not start-up.
    http: LazyClient,
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
        let (connect_timeout, request_timeout, pool_idle_timeout) = (
            options.connect_timeout,
            options.request_timeout,
            options.pool_idle_timeout,
        );
        let http = LazyClient::new("Web PubSub REST", move || {
            reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .timeout(request_timeout)
                .pool_idle_timeout(pool_idle_timeout)
                // A redirect would re-send a signed request somewhere else; the service never redirects.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("webpubsub-control/", env!("CARGO_PKG_VERSION")))
        });
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
                    .insert(CONTENT_TYPE, HeaderValue::from_static(content_type.media_type()));
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
            let http = self.inner.http.get().map_err(|error| RestError::Transport {
                operation,
                delivery: Delivery::NotSent,
                attempts,
                detail: error.to_string(),
            })?;
            let (failure, error) = match http.execute(http_request).await {
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
}

#[cfg(test)]
mod tests;
