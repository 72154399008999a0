//! The identity token itself and the token endpoints' answers.
//!
//! [`AccessToken`] never shows its value in `Debug` or `Display`; only [`AccessToken::expose_secret`] (for the
//! `Authorization` header) does. [`parse_token_response`] reads the JSON the App Service identity endpoint,
//! IMDS and the Entra token endpoint answer with: `access_token` plus `expires_on` (epoch seconds, a string
//! on App Service, a number elsewhere — both accepted) or else `expires_in` (seconds from now, likewise).
//! [`IdentityError`] is what callers see: every variant maps to 503 with `Retry-After`, and no variant
//! carries a token, a secret or the endpoint's raw body.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// An Entra access token. `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The token, for `Authorization: Bearer`. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A token and when it expires (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpiringToken {
    pub token: AccessToken,
    pub expires_on: u64,
}

/// Why no identity token could be had. Callers answer 503 with [`IdentityError::retry_after_secs`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The endpoint is down, slow or throttling; worth retrying later.
    #[error("the identity endpoint is unavailable: {reason}")]
    Unavailable { reason: String, retry_after_secs: u64 },
    /// The endpoint refused (e.g. 400 "Unable to load the proper Managed Identity": no identity assigned,
    /// or several and none named). Retrying soon will not help; the configuration must change.
    #[error("the identity endpoint refused the token request (HTTP {status}){}", correlation_suffix(.correlation_id))]
    Refused {
        status: u16,
        correlation_id: Option<String>,
    },
    /// The answer was not a usable token response.
    #[error("the identity endpoint answered with an unusable token response: {0}")]
    BadResponse(&'static str),
    /// Something local is missing (e.g. `IDENTITY_HEADER` unset, the federated token file unreadable).
    #[error("identity is misconfigured: {0}")]
    Misconfigured(String),
}

fn correlation_suffix(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(", correlation id {id}"))
        .unwrap_or_default()
}

/// Seconds a caller is told to wait when no other hint exists.
pub(crate) const DEFAULT_RETRY_AFTER_SECS: u64 = 10;

impl IdentityError {
    /// The `Retry-After` a 503 caused by this error should carry.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Unavailable { retry_after_secs, .. } => (*retry_after_secs).max(1),
            _ => DEFAULT_RETRY_AFTER_SECS,
        }
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    expires_on: Option<Value>,
    expires_in: Option<Value>,
    token_type: Option<String>,
}

/// Reads a token response received at `now` (Unix seconds).
pub(crate) fn parse_token_response(body: &[u8], now: u64) -> Result<ExpiringToken, IdentityError> {
    let raw: RawTokenResponse =
        serde_json::from_slice(body).map_err(|_| IdentityError::BadResponse("not a JSON token response"))?;
    if raw
        .token_type
        .as_deref()
        .is_some_and(|kind| !kind.eq_ignore_ascii_case("bearer"))
    {
        return Err(IdentityError::BadResponse("token_type is not Bearer"));
    }
    let token = raw
        .access_token
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(IdentityError::BadResponse("no usable access_token"))?;
    let expires_on = match (
        raw.expires_on.as_ref().and_then(seconds),
        raw.expires_in.as_ref().and_then(seconds),
    ) {
        (Some(on), _) => on,
        (None, Some(within)) => now.saturating_add(within),
        (None, None) => return Err(IdentityError::BadResponse("no usable expires_on or expires_in")),
    };
    Ok(ExpiringToken {
        token: AccessToken(token),
        expires_on,
    })
}

/// A whole number of seconds given as a JSON number or a string of digits.
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The `correlationId` of an identity endpoint's error body, if it has one (kept short and printable).
pub(crate) fn correlation_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let id = value
        .get("correlationId")
        .or_else(|| value.get("correlation_id"))?
        .as_str()?;
    (id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_everywhere_but_expose() {
        let token = AccessToken::new("eyJ.secret.sig");
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
        assert_eq!(format!("{token}"), "<redacted>");
        let expiring = ExpiringToken { token, expires_on: 5 };
        assert!(!format!("{expiring:?}").contains("secret"));
        assert_eq!(expiring.token.expose_secret(), "eyJ.secret.sig");
    }

    #[test]
    fn expires_on_as_string_or_number() {
        let app_service = br#"{"access_token":"t1","expires_on":"1700003600","resource":"https://webpubsub.azure.com","token_type":"Bearer","client_id":"c"}"#;
        assert_eq!(parse_token_response(app_service, 0).unwrap().expires_on, 1_700_003_600);
        let numeric = br#"{"access_token":"t2","expires_on":1700003600}"#;
        assert_eq!(parse_token_response(numeric, 0).unwrap().expires_on, 1_700_003_600);
    }

    #[test]
    fn expires_in_counts_from_now_when_expires_on_is_absent() {
        let entra = br#"{"token_type":"Bearer","expires_in":3599,"access_token":"t3"}"#;
        assert_eq!(parse_token_response(entra, 1000).unwrap().expires_on, 4599);
        let imds = br#"{"access_token":"t4","expires_in":"3599"}"#;
        assert_eq!(parse_token_response(imds, 1000).unwrap().expires_on, 4599);
    }

    #[test]
    fn unusable_responses_are_refused() {
        for body in [
            &br#"not json"#[..],
            br#"{"expires_on":"1"}"#,
            br#"{"access_token":"","expires_on":"1"}"#,
            br#"{"access_token":"has space","expires_on":"1"}"#,
            br#"{"access_token":"t"}"#,
            br#"{"access_token":"t","expires_on":"soon"}"#,
            br#"{"access_token":"t","expires_on":-5}"#,
            br#"{"access_token":"t","expires_on":1,"token_type":"pop"}"#,
        ] {
            assert!(
                matches!(parse_token_response(body, 0), Err(IdentityError::BadResponse(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn correlation_ids_are_kept_only_when_plain() {
        let body =
            br#"{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"7f1c-22"}"#;
        assert_eq!(correlation_id(body).as_deref(), Some("7f1c-22"));
        assert_eq!(correlation_id(br#"{"correlationId":"<script>"}"#), None);
        assert_eq!(correlation_id(b"oops"), None);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let e = IdentityError::Unavailable {
            reason: "x".into(),
            retry_after_secs: 0,
        };
        assert_eq!(e.retry_after_secs(), 1);
        let refused = IdentityError::Refused {
            status: 400,
            correlation_id: Some("abc".into()),
        };
        assert_eq!(refused.retry_after_secs(), DEFAULT_RETRY_AFTER_SECS);
        assert!(refused.to_string().contains("correlation id abc"));
    }
}
