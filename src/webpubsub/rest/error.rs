//! Errors of the REST client: [`RestError`] says what failed, whether it may be worth retrying later
//! ([`RestError::is_retryable`]) and whether the service may have acted ([`Delivery`]), so callers can
//! report precisely which actions took effect.

use std::fmt;
use std::time::Duration;

use super::request::Operation;
use crate::identity::IdentityError;
use crate::webpubsub::validate::ValidationError;

/// What is known about whether the service carried out a failed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Delivery {
    /// Nothing reached the service (invalid input, or no connection could be opened).
    NotSent,
    /// The service answered and did not carry it out (4xx, 429, 503 with `Retry-After`).
    Refused,
    /// It may or may not have been carried out (timeout, broken connection, 5xx).
    Unknown,
    /// The service accepted it (2xx) but its answer could not be read.
    Performed,
}

impl Delivery {
    /// Whether the operation may have taken effect (e.g. a message may have been delivered).
    pub fn may_have_taken_effect(self) -> bool {
        matches!(self, Self::Unknown | Self::Performed)
    }

    /// The snake_case name (also what `Display` writes).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotSent => "not_sent",
            Self::Refused => "refused",
            Self::Unknown => "unknown",
            Self::Performed => "performed",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-success answer from the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status.
    pub status: u16,
    /// `x-ms-error-code` header, or the body's `code`.
    pub error_code: Option<String>,
    /// The body's `message` (from `{"error":{…}}` or `{…}`), else the body text, else the status reason.
    pub message: String,
    /// The service's requested wait, if it sent one.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.error_code {
            write!(f, " ({code})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// A failed REST operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// Refused before any call.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No HTTP answer: the connection failed or broke.
    #[error("{operation}: Web PubSub service unreachable after {attempts} attempt(s): {detail}")]
    Transport {
        /// The operation that failed.
        operation: Operation,
        /// Whether it may have taken effect.
        delivery: Delivery,
        /// Attempts made, retries included.
        attempts: u32,
        /// The transport or parse error's text.
        detail: String,
    },
    /// No answer within the request (or connect) timeout.
    #[error("{operation}: Web PubSub service did not answer in time after {attempts} attempt(s)")]
    Timeout {
        /// The operation that failed.
        operation: Operation,
        /// Whether it may have taken effect.
        delivery: Delivery,
        /// Attempts made, retries included.
        attempts: u32,
    },
    /// The service answered with an error status.
    #[error("{operation}: Web PubSub service answered {error} after {attempts} attempt(s)")]
    Service {
        /// The operation that failed.
        operation: Operation,
        /// Whether it may have taken effect.
        delivery: Delivery,
        /// Attempts made, retries included.
        attempts: u32,
        /// The service's answer.
        error: ServiceError,
    },
    /// Identity mode: no token for the service could be had (the identity endpoint is down, slow or
    /// refuses); nothing was sent. Callers answer 503 with `IdentityError::retry_after_secs`.
    #[error("{operation}: no identity token for the Web PubSub service: {error}")]
    Identity {
        /// The operation that was not sent.
        operation: Operation,
        /// Why no token was had.
        error: IdentityError,
    },
    /// The service answered 2xx but the body was not what the API defines.
    #[error("{operation}: unexpected response from the Web PubSub service (HTTP {status}): {detail}")]
    InvalidResponse {
        /// The operation that failed.
        operation: Operation,
        /// The HTTP status of the unreadable answer.
        status: u16,
        /// The transport or parse error's text.
        detail: String,
    },
}

impl RestError {
    /// Whether the service may have acted on the request.
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Invalid(_) | Self::Identity { .. } => Delivery::NotSent,
            Self::Transport { delivery, .. } | Self::Timeout { delivery, .. } | Self::Service { delivery, .. } => {
                *delivery
            }
            Self::InvalidResponse { .. } => Delivery::Performed,
        }
    }

    /// Whether trying again later could succeed: transport failures, timeouts, 408, 429 and 5xx.
    /// Whether a retry is *safe* also depends on [`RestError::delivery`] and the operation.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } | Self::Identity { .. } => true,
            Self::Service { error, .. } => matches!(error.status, 408 | 429 | 500..=599) && error.status != 501,
            Self::Invalid(_) | Self::InvalidResponse { .. } => false,
        }
    }

    /// The HTTP status the service answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Service { error, .. } => Some(error.status),
            Self::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's `x-ms-error-code`, if any.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Service { error, .. } => error.error_code.as_deref(),
            _ => None,
        }
    }

    /// The operation that failed (`None` for input refused before an operation was built).
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Self::Invalid(_) => None,
            Self::Transport { operation, .. }
            | Self::Timeout { operation, .. }
            | Self::Service { operation, .. }
            | Self::Identity { operation, .. }
            | Self::InvalidResponse { operation, .. } => Some(*operation),
        }
    }

    /// How many HTTP attempts were made (0 when refused before sending).
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Invalid(_) | Self::Identity { .. } => 0,
            Self::Transport { attempts, .. } | Self::Timeout { attempts, .. } | Self::Service { attempts, .. } => {
                *attempts
            }
            Self::InvalidResponse { .. } => 1,
        }
    }

    /// A stable PascalCase code for API replies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(error) => error.code(),
            Self::Transport { .. } => "ServiceUnreachable",
            Self::Timeout { .. } => "ServiceTimeout",
            Self::Service { error, .. } if error.status == 429 => "ServiceThrottled",
            Self::Service { error, .. } if error.status >= 500 => "ServiceUnavailable",
            Self::Service { .. } => "ServiceRejected",
            Self::InvalidResponse { .. } => "ServiceBadResponse",
            Self::Identity { .. } => "IdentityUnavailable",
        }
    }

    /// Identity mode: the `Retry-After` (seconds) a 503 for a missing identity token should carry.
    pub fn identity_retry_after(&self) -> Option<u64> {
        match self {
            Self::Identity { error, .. } => Some(error.retry_after_secs()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16) -> RestError {
        RestError::Service {
            operation: Operation::SendToAll,
            delivery: Delivery::Refused,
            attempts: 2,
            error: ServiceError {
                status,
                error_code: Some("Throttled".into()),
                message: "slow down".into(),
                retry_after: None,
            },
        }
    }

    #[test]
    fn service_errors_show_status_code_and_message() {
        let error = service(429);
        assert_eq!(
            error.to_string(),
            "send_to_all: Web PubSub service answered HTTP 429 (Throttled): slow down after 2 attempt(s)"
        );
        assert_eq!(error.status(), Some(429));
        assert_eq!(error.error_code(), Some("Throttled"));
        assert_eq!(error.code(), "ServiceThrottled");
        assert_eq!(error.attempts(), 2);
        assert_eq!(error.operation(), Some(Operation::SendToAll));
    }

    #[test]
    fn retryability_follows_the_status() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(service(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 501] {
            assert!(!service(status).is_retryable(), "{status}");
        }
        let timeout = RestError::Timeout {
            operation: Operation::SendToAll,
            delivery: Delivery::Unknown,
            attempts: 1,
        };
        assert!(timeout.is_retryable());
        assert!(timeout.delivery().may_have_taken_effect());
        assert!(!RestError::from(ValidationError::InvalidHub).is_retryable());
    }

    #[test]
    fn validation_errors_were_never_sent() {
        let error = RestError::from(ValidationError::EmptyUserId);
        assert_eq!(error.delivery(), Delivery::NotSent);
        assert_eq!(error.attempts(), 0);
        assert_eq!(error.code(), "InvalidUserId");
        assert_eq!(error.to_string(), "userId must not be empty");
    }

    #[test]
    fn identity_failures_were_never_sent_and_carry_a_retry_hint() {
        let error = RestError::Identity {
            operation: Operation::SendToAll,
            error: IdentityError::Unavailable {
                reason: "cannot connect".into(),
                retry_after_secs: 3,
            },
        };
        assert_eq!(error.delivery(), Delivery::NotSent);
        assert_eq!(error.attempts(), 0);
        assert!(error.is_retryable());
        assert_eq!(error.code(), "IdentityUnavailable");
        assert_eq!(error.identity_retry_after(), Some(3));
        assert_eq!(service(503).identity_retry_after(), None);
    }

    #[test]
    fn delivery_order_puts_unknown_above_refused_above_not_sent() {
        assert!(Delivery::NotSent < Delivery::Refused && Delivery::Refused < Delivery::Unknown);
        assert!(!Delivery::Refused.may_have_taken_effect());
        assert!(Delivery::Performed.may_have_taken_effect());
    }
}
