//! Outbound HTTP clients built off the start-up path (#14 item 24).
//!
//! Building a `reqwest::Client` loads the TLS trust store, which took most of the handler's cold start
//! (the Functions host waits for the first answer to `GET /`). A [`LazyClient`] builds its client on a
//! blocking thread as soon as it is made inside a runtime, so `handler` listens at once; a failure is
//! logged then, at start, and every call through the client fails with it, answered as any transport
//! failure (a JSON 502/503), never a panic. The first call waits for a build still under way.
//! It imports nothing from the crate.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A `reqwest::Client`, built once, in the background, from its builder.
#[derive(Clone)]
pub(crate) struct LazyClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// What the client is for, in logs.
    purpose: &'static str,
    builder: Box<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>,
    client: OnceLock<Result<reqwest::Client, ClientBuildError>>,
}

/// The client could not be built (e.g. the TLS trust store could not be loaded).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {purpose} HTTP client could not be built: {detail}")]
pub(crate) struct ClientBuildError {
    purpose: &'static str,
    detail: String,
}

impl fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyClient")
            .field("purpose", &self.inner.purpose)
            .field("built", &self.inner.client.get().map(Result::is_ok))
            .finish()
    }
}

impl LazyClient {
    /// A client `builder` makes. Inside a tokio runtime the build starts now on a blocking thread (its
    /// failure logged at error); outside one it happens on first use.
    pub(crate) fn new(
        purpose: &'static str,
        builder: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        let client = Self::unstarted(purpose, builder);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let warming = client.clone();
            drop(runtime.spawn_blocking(move || {
                if let Err(error) = warming.get() {
                    tracing::error!(error = %error, "calls through this client will fail");
                }
            }));
        }
        client
    }

    /// A client built only on first use.
    pub(crate) fn unstarted(
        purpose: &'static str,
        builder: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                purpose,
                builder: Box::new(builder),
                client: OnceLock::new(),
            }),
        }
    }

    /// The client, built now if no build has finished yet (waiting for one under way).
    pub(crate) fn get(&self) -> Result<&reqwest::Client, ClientBuildError> {
        let inner = &*self.inner;
        inner
            .client
            .get_or_init(|| {
                (inner.builder)().build().map_err(|error| ClientBuildError {
                    purpose: inner.purpose,
                    detail: error.to_string(),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn builds_once_on_first_use() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let client = LazyClient::unstarted("test", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            reqwest::Client::builder()
        });
        assert_eq!(builds.load(Ordering::SeqCst), 0, "nothing is built before use");
        assert!(client.get().is_ok());
        assert!(client.clone().get().is_ok());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_build_fails_every_use_with_a_clear_error() {
        // A TLS backend reqwest does not know makes `build` fail, as an unreadable trust store would.
        let client = LazyClient::unstarted("test", || reqwest::Client::builder().tls_backend_preconfigured(()));
        for _ in 0..2 {
            let error = client.get().unwrap_err();
            assert!(
                error.to_string().starts_with("the test HTTP client could not be built"),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn inside_a_runtime_the_build_starts_in_the_background() {
        let client = LazyClient::new("test", reqwest::Client::builder);
        for _ in 0..500 {
            if client.inner.client.get().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            client.inner.client.get().is_some_and(Result::is_ok),
            "built without any use"
        );
    }
}
