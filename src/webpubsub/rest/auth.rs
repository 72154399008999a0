//! How the REST client authenticates each request: in key mode a fresh short-lived HS256 token whose
//! `aud` is the full request URL (made per attempt, never cached); in identity mode the Entra token of the
//! shared [`TokenSource`] (cached there until 5 minutes before expiry, so no identity call per request).
//! An identity failure becomes [`RestError::Identity`] before anything is sent.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use http::header::AUTHORIZATION;
use serde::Serialize;
use webpubsub_protocol::jwt::Hs256Signer;

use super::{ApiRequest, Operation, RestClient, RestClientInitError, RestError, RestOptions};
use crate::identity::{AccessToken, ServiceCredential, TokenSource};
use crate::webpubsub::{ServiceSettings, keys::AccessKey};

/// What signs or carries a request's `Authorization`.
pub(super) enum Credential {
    Key(Box<Hs256Signer>),
    Identity(Arc<TokenSource>),
}

impl Credential {
    pub(super) fn key(key: &AccessKey) -> Self {
        Self::Key(Box::new(Hs256Signer::new(key)))
    }

    /// Key mode: `Bearer <HS256 token for url>` valid for `ttl` from `now`. Identity mode: `None` (the
    /// token is added by [`RestClient::prepare_authorized`], which may wait for a refresh).
    pub(super) fn signed_header(&self, url: &str, now: SystemTime, ttl: Duration) -> Option<HeaderValue> {
        let Self::Key(signer) = self else {
            return None;
        };
        #[derive(Serialize)]
        struct BearerClaims<'a> {
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let issued_at = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let token = signer.sign(&BearerClaims {
            aud: url,
            iat: issued_at,
            exp: issued_at.saturating_add(ttl.as_secs()),
        });
        Some(bearer(&token))
    }
}

/// `Bearer <token>`, marked sensitive so no debug output shows it.
fn bearer(token: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(["Bearer ", token].concat())
        .expect("a JWT is base64url and dots, always a valid header value");
    value.set_sensitive(true);
    value
}

impl RestClient {
    /// The client for the service's primary connection: signing with its key, or carrying the identity
    /// token of the shared source in identity mode.
    pub fn for_service(service: &ServiceSettings, options: RestOptions) -> Result<Self, RestClientInitError> {
        match (&service.primary, &service.identity) {
            (ServiceCredential::AccessKey(connection), _) => Self::new(connection, options),
            (ServiceCredential::Identity { endpoint, .. }, Some(tokens)) => {
                Self::with_identity(endpoint.clone(), tokens.clone(), options)
            }
            (ServiceCredential::Identity { endpoint, .. }, None) => {
                unreachable!("identity mode for {endpoint:?} always has a token source")
            }
        }
    }

    /// A client for `endpoint` sending the identity tokens of `tokens`.
    pub fn with_identity(
        endpoint: crate::webpubsub::Endpoint,
        tokens: Arc<TokenSource>,
        options: RestOptions,
    ) -> Result<Self, RestClientInitError> {
        Self::build(endpoint, Credential::Identity(tokens), options)
    }

    /// Whether requests carry an identity token (identity mode).
    pub fn is_identity(&self) -> bool {
        matches!(self.inner.credential, Credential::Identity(_))
    }

    /// [`RestClient::prepare`] for sending now, with the identity token in identity mode.
    pub(super) async fn prepare_authorized(
        &self,
        request: &ApiRequest,
        operation: Operation,
    ) -> Result<reqwest::Request, RestError> {
        let mut prepared = self.prepare(request, SystemTime::now())?;
        if let Credential::Identity(tokens) = &self.inner.credential {
            let token: AccessToken = tokens
                .token()
                .await
                .map_err(|error| RestError::Identity { operation, error })?;
            prepared
                .headers_mut()
                .insert(AUTHORIZATION, bearer(token.expose_secret()));
        }
        Ok(prepared)
    }
}
