//! [`TokenSource`]: identity tokens for one audience, cached and refreshed safely.
//!
//! - Cache: a token is served until [`TokenOptions::refresh_before`] (5 minutes) before it expires; one with
//!   less time left is refreshed before use. If that refresh fails while the old token is still valid, the
//!   old token is served (and the failure logged), so a short identity outage costs nothing.
//! - One refresh in flight: callers that find the cache stale queue on one lock; the first fetches, the rest
//!   read its result — including its failure, so a down endpoint is asked once, not once per waiting caller.
//! - Backoff: 429, 5xx and connection errors (and IMDS's 404/410) are retried with exponential backoff, or
//!   after `Retry-After` when the endpoint sends one, all within [`TokenOptions::deadline`] (10 s), so callers
//!   can answer 503 with `Retry-After` in bounded time. Other 4xx are final ([`IdentityError::Refused`]).
//! - After a failure, callers for [`TokenOptions::failure_cooldown`] get that failure at once.
//! - Bounds: connect and per-request timeouts, a response size limit; nothing of a body is logged.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::provider::{Provider, SecretSource};
use super::settings::IdentityCredential;
use super::token::{AccessToken, ExpiringToken, IdentityError, correlation_id, parse_token_response};
use crate::config::Env;
use webpubsub_protocol::WEBPUBSUB_RESOURCE;

/// Tuning; the defaults suit production.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// Refresh a token this long before it expires.
    pub refresh_before: Duration,
    /// Longest time one `token()` call may spend fetching (all retries included).
    pub deadline: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for one answer.
    pub request_timeout: Duration,
    /// First backoff step (doubled per retry, capped at `max_backoff`).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Largest token response read, in bytes.
    pub max_response_bytes: usize,
    /// After a failed refresh, callers within this time get that failure without a new attempt, so a down
    /// endpoint is not asked again by every request.
    pub failure_cooldown: Duration,
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self {
            refresh_before: Duration::from_secs(5 * 60),
            deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            max_response_bytes: 64 * 1024,
            failure_cooldown: Duration::from_secs(2),
        }
    }
}

/// Tokens for one resource from one [`Provider`]. Build once, share (`Arc`).
#[derive(Debug)]
pub struct TokenSource {
    provider: Provider,
    resource: String,
    client: reqwest::Client,
    options: TokenOptions,
    cached: RwLock<Option<ExpiringToken>>,
    refresh: tokio::sync::Mutex<Option<Failure>>,
}

/// The last failed refresh, handed to the callers that waited for it.
#[derive(Debug)]
struct Failure {
    at: Instant,
    error: IdentityError,
}

/// One attempt's outcome.
enum Attempt {
    Done(ExpiringToken),
    Final(IdentityError),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl TokenSource {
    pub fn new(provider: Provider, resource: impl Into<String>, options: TokenOptions) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            // Identity endpoints answer directly; a redirect could carry the identity header elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            provider,
            resource: resource.into(),
            client,
            options,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    /// The Web PubSub token source for an identity-mode credential: the provider chosen from the environment
    /// snapshot (see [`Provider::from_env`]), audience [`WEBPUBSUB_RESOURCE`].
    pub fn for_webpubsub(
        env: &Env,
        credential: &IdentityCredential,
        identity_header: SecretSource,
        options: TokenOptions,
    ) -> anyhow::Result<Self> {
        let provider = Provider::from_env(env, credential, identity_header)?;
        Self::new(provider, WEBPUBSUB_RESOURCE, options)
    }

    /// A token with at least `refresh_before` left, fetching one if needed.
    pub async fn token(&self) -> Result<AccessToken, IdentityError> {
        let asked_at = Instant::now();
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let mut last_failure = self.refresh.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let cooldown = self.options.failure_cooldown;
        if let Some(failure) = last_failure
            .as_ref()
            .filter(|f| f.at >= asked_at || f.at.elapsed() < cooldown)
        {
            return self.usable_or(failure.error.clone());
        }
        match self.fetch().await {
            Ok(token) => {
                tracing::info!(expires_on = token.expires_on, "fetched an identity token");
                let value = token.token.clone();
                *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(token);
                *last_failure = None;
                Ok(value)
            }
            Err(error) => {
                tracing::warn!(error = %error, "could not fetch an identity token");
                *last_failure = Some(Failure {
                    at: Instant::now(),
                    error: error.clone(),
                });
                self.usable_or(error)
            }
        }
    }

    /// The cached token when it has more than `refresh_before` left.
    fn fresh(&self) -> Option<AccessToken> {
        self.cached_with_margin(self.options.refresh_before.as_secs())
    }

    /// The cached token while it is still valid at all, else `error`.
    fn usable_or(&self, error: IdentityError) -> Result<AccessToken, IdentityError> {
        self.cached_with_margin(1).ok_or(error)
    }

    fn cached_with_margin(&self, margin_secs: u64) -> Option<AccessToken> {
        let cached = self.cached.read().unwrap_or_else(|p| p.into_inner());
        let token = cached.as_ref()?;
        (token.expires_on > now().saturating_add(margin_secs)).then(|| token.token.clone())
    }

    async fn fetch(&self) -> Result<ExpiringToken, IdentityError> {
        let deadline = Instant::now() + self.options.deadline;
        let mut backoff = self.options.initial_backoff;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(remaining, self.attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Retry {
                    reason: "no answer in time".into(),
                    retry_after: None,
                },
            };
            let (reason, retry_after) = match outcome {
                Attempt::Done(token) => return Ok(token),
                Attempt::Final(error) => return Err(error),
                Attempt::Retry { reason, retry_after } => (reason, retry_after),
            };
            let wait = retry_after.unwrap_or(backoff);
            let remaining = deadline.saturating_duration_since(Instant::now());
            if wait >= remaining {
                let hint = retry_after.unwrap_or(Duration::ZERO).as_secs().max(1);
                return Err(IdentityError::Unavailable {
                    reason,
                    retry_after_secs: hint,
                });
            }
            tracing::debug!(%reason, wait_ms = wait.as_millis() as u64, "identity endpoint: retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    async fn attempt(&self) -> Attempt {
        let request = match self.provider.request(&self.client, &self.resource) {
            Ok(request) => request,
            Err(error) => return Attempt::Final(error),
        };
        let mut response = match request.header("accept", "application/json").send().await {
            Ok(response) => response,
            Err(error) => {
                let reason = if error.is_timeout() {
                    "timed out"
                } else if error.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                return Attempt::Retry {
                    reason: reason.into(),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= self.options.max_response_bytes => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return Attempt::Final(IdentityError::BadResponse("token response too large")),
                Ok(None) => break,
                Err(_) => {
                    return Attempt::Retry {
                        reason: "answer cut off".into(),
                        retry_after: None,
                    };
                }
            }
        }
        let retryable = status == 429 || status >= 500 || (self.provider.is_imds() && matches!(status, 404 | 410));
        match status {
            200 => match parse_token_response(&body, now()) {
                Ok(token) => Attempt::Done(token),
                Err(error) => Attempt::Final(error),
            },
            _ if retryable => Attempt::Retry {
                reason: format!("HTTP {status}"),
                retry_after,
            },
            _ => Attempt::Final(IdentityError::Refused {
                status,
                correlation_id: correlation_id(&body),
            }),
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
