//! RS256 verification keys from an identity provider's JWKS URL, cached by key id.
//!
//! Keys are fetched lazily on first use and kept until they are older than [`JwksOptions::max_age`]. A token
//! naming a key id not in the cache triggers a refresh (the provider may have rotated keys), at most once per
//! [`JwksOptions::min_refresh_interval`] so a flood of made-up key ids cannot turn into a flood of fetches.
//! Refreshes are serialised: concurrent requests wait for the one fetch in flight and then read its result.
//!
//! Bounds: one shared HTTP client with connect and total timeouts, a size limit on the document, and at most
//! [`JwksOptions::max_keys`] keys kept. Only RSA keys meant for signatures with RS256 (or no stated use and
//! algorithm) are kept; symmetric keys are ignored so a JWKS can never smuggle in an HMAC secret.
//!
//! Failures: a key id the provider does not publish is the caller's problem ([`AuthError::InvalidCredentials`],
//! 401); a provider that cannot be reached or answers garbage while a needed key is missing is ours
//! ([`AuthError::IdentityProviderUnavailable`], 503 with `Retry-After`). A stale key is used while a refresh
//! fails, so a provider outage does not log out everyone at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use serde::Deserialize;
use url::Url;

use super::AuthError;
use crate::http_client::{ClientBuildError, LazyClient};

/// Tuning of the JWKS cache. The defaults suit production identity providers.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// Shortest time between two fetches triggered by unknown key ids.
    pub min_refresh_interval: Duration,
    /// Keys older than this are re-fetched before use (a failed re-fetch keeps the old keys).
    pub max_age: Duration,
    /// Time allowed to connect to the provider.
    pub connect_timeout: Duration,
    /// Time allowed for the whole fetch.
    pub timeout: Duration,
    /// Largest JWKS document read, in bytes.
    pub max_document_bytes: usize,
    /// Most keys kept from one document.
    pub max_keys: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            min_refresh_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(60 * 60),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            max_document_bytes: 256 * 1024,
            max_keys: 32,
        }
    }
}

/// Seconds a caller is told to wait when the provider is unreachable.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 30;

/// A cache of one provider's signing keys.
pub(crate) struct JwksCache {
    url: Url,
    /// `url` without credentials, for logs and Debug.
    shown_url: String,
    /// Built in the background (it loads the TLS trust store), off the start-up path.
    client: LazyClient,
    options: JwksOptions,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching; remembers the last attempt for rate limiting refreshes.
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Default)]
struct KeySet {
    by_id: HashMap<String, Arc<DecodingKey>>,
    /// Keys published without a `kid`: usable only by tokens without one, and only when unambiguous.
    without_id: Vec<Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// Why a fetch failed; logged, never shown to the caller.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("provider answered HTTP {0}")]
    Status(u16),
    #[error("document exceeds {0} bytes")]
    TooLarge(usize),
    #[error("document is not a JWKS: {0}")]
    Json(#[from] serde_json::Error),
    #[error("document has no usable RS256 signing key")]
    NoUsableKeys,
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

impl JwksCache {
    /// A cache for `url`; its HTTP client is built in the background (nothing is fetched yet).
    pub(crate) fn new(url: Url, options: JwksOptions) -> anyhow::Result<Self> {
        let (connect_timeout, timeout) = (options.connect_timeout, options.timeout);
        let client = LazyClient::new("JWKS", move || {
            reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .timeout(timeout)
                // A redirect could hand key selection to any host (the https/loopback rule checked only
                // the configured URL): the configured URL must serve the document itself.
                .redirect(reqwest::redirect::Policy::none())
        });
        Ok(Self {
            shown_url: redacted(&url),
            url,
            client,
            options,
            keys: RwLock::new(Arc::new(KeySet::default())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        })
    }

    /// The key that verifies tokens with header `kid` (`None`: the token names no key).
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        let cached = self.snapshot();
        if let Some(key) = cached.find(kid)
            && !self.is_stale(&cached)
        {
            return Ok(key);
        }
        let mut refresh = self.refresh.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        let cached = self.snapshot();
        let found = cached.find(kid);
        if let Some(key) = &found
            && !self.is_stale(&cached)
        {
            return Ok(key.clone());
        }
        let recently_tried = refresh
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.options.min_refresh_interval);
        if recently_tried {
            return match found {
                Some(key) => Ok(key),
                None if refresh.last_failed => Err(unavailable()),
                None => Err(unknown_key(kid)),
            };
        }
        refresh.last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(fresh) => {
                refresh.last_failed = false;
                let count = fresh.by_id.len() + fresh.without_id.len();
                tracing::info!(jwks_url = %self.shown_url, keys = count, "fetched identity provider signing keys");
                let fresh = Arc::new(fresh);
                *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
                fresh.find(kid).ok_or_else(|| unknown_key(kid))
            }
            Err(error) => {
                refresh.last_failed = true;
                tracing::warn!(jwks_url = %self.shown_url, error = %error, "could not fetch identity provider signing keys");
                found.ok_or_else(unavailable)
            }
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn is_stale(&self, keys: &KeySet) -> bool {
        keys.fetched_at.is_none_or(|at| at.elapsed() >= self.options.max_age)
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let mut response = self
            .client
            .get()?
            .get(self.url.clone())
            .header("accept", "application/json")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let limit = self.options.max_document_bytes;
        if response.content_length().is_some_and(|length| length > limit as u64) {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        let document: JwksDocument = serde_json::from_slice(&body)?;
        let keys = parse_keys(document.keys, self.options.max_keys, &self.shown_url);
        if keys.by_id.is_empty() && keys.without_id.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        Ok(keys)
    }
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        match kid {
            Some(kid) => self.by_id.get(kid).cloned(),
            // Without a kid the choice must be unambiguous: exactly one key in the set.
            None => match (self.by_id.len(), self.without_id.len()) {
                (1, 0) => self.by_id.values().next().cloned(),
                (0, 1) => self.without_id.first().cloned(),
                _ => None,
            },
        }
    }
}

/// Keeps RSA signature keys usable with RS256, up to `max_keys`; skips (and logs) the rest.
fn parse_keys(raw: Vec<serde_json::Value>, max_keys: usize, url: &str) -> KeySet {
    let mut keys = KeySet {
        fetched_at: Some(Instant::now()),
        ..KeySet::default()
    };
    let mut skipped = 0usize;
    for value in raw {
        if keys.by_id.len() + keys.without_id.len() >= max_keys {
            skipped += 1;
            continue;
        }
        let Some(key) = serde_json::from_value::<Jwk>(value).ok().filter(is_rs256_signing_key) else {
            skipped += 1;
            continue;
        };
        let Ok(decoding) = DecodingKey::from_jwk(&key) else {
            skipped += 1;
            continue;
        };
        match key.common.key_id {
            Some(kid) => {
                keys.by_id.insert(kid, Arc::new(decoding));
            }
            None => keys.without_id.push(Arc::new(decoding)),
        }
    }
    if skipped > 0 {
        tracing::debug!(jwks_url = %url, skipped, "ignored JWKS entries that are not RS256 signing keys (or over the limit)");
    }
    keys
}

/// `url` as it may appear in logs: user info, query and fragment (where credentials hide) removed.
pub(crate) fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if shown.query().is_some() {
        shown.set_query(Some("redacted"));
    }
    shown.set_fragment(None);
    shown.to_string()
}

fn is_rs256_signing_key(key: &Jwk) -> bool {
    matches!(key.algorithm, AlgorithmParameters::RSA(_))
        && matches!(key.common.public_key_use, None | Some(PublicKeyUse::Signature))
        && matches!(key.common.key_algorithm, None | Some(KeyAlgorithm::RS256))
}

fn unknown_key(kid: Option<&str>) -> AuthError {
    match kid {
        Some(_) => AuthError::InvalidCredentials(
            "the bearer token is signed with a key the identity provider does not publish".into(),
        ),
        None => AuthError::InvalidCredentials(
            "the bearer token names no key id (kid) and the identity provider publishes several keys".into(),
        ),
    }
}

fn unavailable() -> AuthError {
    AuthError::IdentityProviderUnavailable {
        retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
    }
}
