//! When the REST client may try again, and how long it waits first.
//!
//! The rule, chosen so that a retry can never deliver a message twice:
//! - **Any operation** is retried when the earlier attempt provably did nothing: the connection could
//!   not be opened (nothing was sent), or the service refused it with **429**, or with **503 carrying
//!   `Retry-After`** (explicit back-pressure).
//! - **Idempotent operations only** (everything except the four `:send` operations) are also retried
//!   after outcomes that leave it unknown whether the service acted: timeouts, broken connections,
//!   408, 500, 502, 503 without `Retry-After`, and 504.
//! - Nothing else is retried (other 4xx, unreadable success bodies).
//!
//! Waits grow exponentially from [`RetryPolicy::initial_backoff`] up to [`RetryPolicy::max_backoff`]
//! with "equal jitter" (half fixed, half random). A server `Retry-After` (or `retry-after-ms`) replaces
//! the computed wait. A retry is skipped when it would exceed [`RetryPolicy::max_retries`] or start
//! after [`RetryPolicy::max_elapsed`] from the first attempt.

use std::time::Duration;

use http::HeaderMap;

/// How many times, and for how long, the client retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// Base wait before the first retry.
    pub initial_backoff: Duration,
    /// Cap on the computed wait (a server `Retry-After` may be longer, within `max_elapsed`).
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt began.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1-based), given a jitter sample in `[0, 1]`.
    pub(crate) fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let base = self.initial_backoff.saturating_mul(1 << exponent).min(self.max_backoff);
        let half = base / 2;
        // NaN would make `mul_f64` panic: read it as no jitter.
        let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
        half.saturating_add(half.mul_f64(jitter))
    }
}

/// What one failed attempt tells us about whether the service acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptFailure {
    /// The connection was never established; nothing was sent.
    NotConnected,
    /// Sent (or possibly sent) but no usable answer: timeout or broken connection.
    NoAnswer,
    /// The service answered with this non-success status.
    Status { status: u16, has_retry_after: bool },
}

/// Whether the failed attempt may be retried under the rule in this module's documentation.
pub(crate) fn is_retryable(idempotent: bool, failure: AttemptFailure) -> bool {
    match failure {
        AttemptFailure::NotConnected => true,
        AttemptFailure::NoAnswer => idempotent,
        AttemptFailure::Status { status: 429, .. } => true,
        AttemptFailure::Status {
            status: 503,
            has_retry_after: true,
        } => true,
        AttemptFailure::Status {
            status: 408 | 500 | 502 | 503 | 504,
            ..
        } => idempotent,
        AttemptFailure::Status { .. } => false,
    }
}

/// The longest server-requested wait ever honoured; a larger `Retry-After` is read as this much
/// (and then usually exceeds [`RetryPolicy::max_elapsed`], so no retry is made).
pub(crate) const MAX_SERVER_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

impl RetryPolicy {
    /// The wait before retry number `retry` when `elapsed` has passed since the first attempt, or `None`
    /// when the retry would start after [`RetryPolicy::max_elapsed`]. A server wait replaces the
    /// computed backoff. Every sum saturates, so no input (a `Retry-After` of `u64::MAX` seconds after
    /// a slow answer) can overflow.
    pub(crate) fn wait_before(
        &self,
        retry: u32,
        server_wait: Option<Duration>,
        elapsed: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        let wait = server_wait.map_or_else(|| self.backoff(retry, jitter), |wait| wait.min(MAX_SERVER_WAIT));
        (elapsed.saturating_add(wait) <= self.max_elapsed).then_some(wait)
    }
}

/// The server's requested wait: `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds) or
/// `Retry-After` in whole seconds. HTTP-date forms are ignored (the computed backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    number("retry-after-ms")
        .or_else(|| number("x-ms-retry-after-ms"))
        .map(Duration::from_millis)
        .or_else(|| number("retry-after").map(Duration::from_secs))
        .map(|wait| wait.min(MAX_SERVER_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn connection_failures_and_throttling_retry_every_operation() {
        for idempotent in [false, true] {
            assert!(is_retryable(idempotent, AttemptFailure::NotConnected));
            assert!(is_retryable(
                idempotent,
                AttemptFailure::Status {
                    status: 429,
                    has_retry_after: false
                }
            ));
            assert!(is_retryable(
                idempotent,
                AttemptFailure::Status {
                    status: 503,
                    has_retry_after: true
                }
            ));
        }
    }

    #[test]
    fn unknown_outcomes_retry_only_idempotent_operations() {
        let unknown = [
            AttemptFailure::NoAnswer,
            AttemptFailure::Status {
                status: 408,
                has_retry_after: false,
            },
            AttemptFailure::Status {
                status: 500,
                has_retry_after: false,
            },
            AttemptFailure::Status {
                status: 502,
                has_retry_after: false,
            },
            AttemptFailure::Status {
                status: 503,
                has_retry_after: false,
            },
            AttemptFailure::Status {
                status: 504,
                has_retry_after: true,
            },
        ];
        for failure in unknown {
            assert!(is_retryable(true, failure), "{failure:?}");
            assert!(!is_retryable(false, failure), "{failure:?}");
        }
    }

    #[test]
    fn client_errors_never_retry() {
        for status in [400, 401, 403, 404, 409, 413, 501] {
            for idempotent in [false, true] {
                assert!(
                    !is_retryable(
                        idempotent,
                        AttemptFailure::Status {
                            status,
                            has_retry_after: true
                        }
                    ),
                    "{status}"
                );
            }
        }
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(policy.backoff(2, 0.0), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(300));
        assert_eq!(policy.backoff(5, 1.0), Duration::from_millis(1000));
        assert_eq!(policy.backoff(u32::MAX, 1.0), Duration::from_millis(1000));
        assert_eq!(policy.backoff(1, 7.0), Duration::from_millis(100), "jitter is clamped");
    }

    #[test]
    fn retry_after_reads_milliseconds_then_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("x-ms-retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
        headers.insert("retry-after-ms", HeaderValue::from_static("20"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(20)));
    }

    #[test]
    fn huge_retry_after_after_a_slow_answer_saturates_instead_of_panicking() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("18446744073709551615"));
        let server_wait = retry_after(&headers);
        assert_eq!(server_wait, Some(MAX_SERVER_WAIT));
        let policy = RetryPolicy::default();
        assert_eq!(policy.wait_before(1, server_wait, Duration::from_secs(13), 0.5), None);
        // Even an uncapped wait at the edge of Duration does not overflow.
        assert_eq!(policy.wait_before(1, Some(Duration::MAX), Duration::MAX, 0.5), None);
        assert_eq!(
            policy.wait_before(1, Some(Duration::from_secs(2)), Duration::from_secs(1), 0.5),
            Some(Duration::from_secs(2))
        );
    }

    proptest::proptest! {
        #[test]
        fn waits_never_panic_and_never_pass_the_budget(
            retry in proptest::prelude::any::<u32>(),
            server in proptest::option::of(proptest::prelude::any::<u64>()),
            millis in proptest::prelude::any::<bool>(),
            elapsed_secs in proptest::prelude::any::<u64>(),
            jitter in proptest::prelude::any::<f64>(),
        ) {
            let mut headers = HeaderMap::new();
            if let Some(value) = server {
                let name = if millis { "retry-after-ms" } else { "retry-after" };
                headers.insert(name, HeaderValue::from(value));
            }
            let policy = RetryPolicy::default();
            let elapsed = Duration::from_secs(elapsed_secs);
            if let Some(wait) = policy.wait_before(retry, retry_after(&headers), elapsed, jitter) {
                proptest::prop_assert!(wait <= MAX_SERVER_WAIT);
                proptest::prop_assert!(elapsed.saturating_add(wait) <= policy.max_elapsed);
            }
        }
    }

    #[test]
    fn retry_after_ignores_dates_and_garbage() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
    }
}
