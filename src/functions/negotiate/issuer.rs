//! Who makes the client token: in key mode this handler signs it with the primary access key (no call);
//! in identity mode (no key) the service does, through `POST /api/hubs/{hub}/:generateToken` with the
//! identity token. The reply is the same either way. The REST client is built once and shared, so calls
//! reuse pooled connections, and the identity token comes from the shared cache (no identity call per
//! negotiate).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use warp::http::StatusCode;

use crate::error::ApiError;
use crate::identity::ServiceCredential;
use crate::webpubsub::{
    ClientAccess, ClientAccessIssuer, ClientAccessRequest, Endpoint, GenerateTokenOptions, RestClient, RestError,
    RestOptions, ServiceSettings,
};

/// Issues client access for `negotiate`.
#[derive(Debug)]
pub(super) enum Issuer {
    /// Key mode: signed here.
    Key(Box<ClientAccessIssuer>),
    /// Identity mode: asked of the service.
    Service { client: RestClient, endpoint: Endpoint },
}

impl Issuer {
    pub(super) fn for_service(service: &ServiceSettings) -> anyhow::Result<Self> {
        Ok(match &service.primary {
            ServiceCredential::AccessKey(connection) => Self::Key(Box::new(ClientAccessIssuer::new(
                connection.endpoint().clone(),
                connection.access_key(),
            ))),
            ServiceCredential::Identity { endpoint, .. } => Self::Service {
                client: RestClient::for_service(service, RestOptions::default())?,
                endpoint: endpoint.clone(),
            },
        })
    }

    /// A client URL and token for `hub`. Bad input is a 400; in identity mode a missing identity token is
    /// a 503 with `Retry-After`, and a failing service a 502 (503 when it asks to slow down).
    pub(super) async fn issue(&self, hub: &str, request: &ClientAccessRequest) -> Result<ClientAccess, ApiError> {
        match self {
            Self::Key(issuer) => issuer
                .issue(hub, request)
                .map_err(|e| ApiError::bad_request(e.code(), e.to_string()).with_detail("field", e.field())),
            Self::Service { client, endpoint } => {
                let minutes = request.ttl.as_secs().div_ceil(60).max(1);
                let options = GenerateTokenOptions {
                    user_id: request.user_id.clone(),
                    roles: request.roles.clone(),
                    groups: request.groups.clone(),
                    minutes_to_expire: Some(u32::try_from(minutes).unwrap_or(u32::MAX)),
                    client_type: request.client_type,
                };
                let requested_at = unix_now();
                let token = client.generate_token(hub, &options).await.map_err(service_error)?;
                let expires_at = expiry_of(&token).unwrap_or(requested_at + minutes * 60);
                Ok(ClientAccess::for_token(
                    endpoint,
                    request.client_type,
                    hub,
                    token,
                    expires_at,
                ))
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The `exp` claim of a token the service made (read, not verified: the service is trusted for its own
/// tokens and only the expiry time shown to the caller depends on it).
fn expiry_of(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// A failed `:generateToken`: the caller's input (400), no identity token (503 + Retry-After), the
/// service throttling or unavailable (503), anything else upstream (502). Never a secret in the answer.
fn service_error(error: RestError) -> ApiError {
    if let RestError::Invalid(e) = &error {
        return ApiError::bad_request(e.code(), e.to_string()).with_detail("field", e.field());
    }
    tracing::warn!(code = error.code(), error = %error, "generateToken failed");
    if let Some(retry_after) = error.identity_retry_after() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error.code(),
            "no identity token for the Web PubSub service; retry later",
        )
        .with_retry_after(retry_after);
    }
    match &error {
        RestError::Service { error: service, .. } if matches!(service.status, 429 | 503) => {
            let wait = service.retry_after.map_or(1, |w| w.as_secs().max(1));
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                error.code(),
                "the Web PubSub service is busy; retry later",
            )
            .with_retry_after(wait)
        }
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            error.code(),
            "the Web PubSub service could not issue a client token",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_from_the_service_token() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1700000900}"#);
        assert_eq!(expiry_of(&format!("h.{payload}.s")), Some(1_700_000_900));
        assert_eq!(expiry_of("not-a-jwt"), None);
        assert_eq!(expiry_of("a.!!.c"), None);
    }
}
