//! Tokens: client tokens from `:generateToken` (audience by client type) and the check of REST
//! bearer tokens (signed with either key, audience = the request URL with or without its query).

use std::time::Duration;

use webpubsub_protocol::{AccessKey, ClientAccessRequest};

use super::*;

impl Service {
    /// `POST /api/hubs/{hub}/:generateToken`. `endpoint` is the emulator's base URL as the
    /// caller reached it, e.g. `http://127.0.0.1:8080`.
    pub fn generate_client_token(&self, hub: &str, endpoint: &str, request: &ClientAccessRequest) -> String {
        let audience = clients::audience(endpoint, request.client_type, &names::normalize_hub(hub));
        token::sign(&request.claims(&audience, token::unix_now()), self.keys.primary())
    }

    /// Checks a REST call's `Authorization` header: a Bearer HS256 token signed with either
    /// key, not expired, whose `aud` is the request URL with or without its query (compared
    /// ignoring case, scheme and host, also after percent-decoding). `request_url` is the
    /// URL as received, e.g. `http://127.0.0.1:8080/api/hubs/chat/:send?api-version=2024-12-01`.
    pub fn verify_rest_token(&self, authorization: Option<&str>, request_url: &str) -> Result<(), TokenError> {
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        let claims = token::verify(token, &self.keys, token::unix_now())?;
        let audiences = token::string_values(&claims, "aud");
        if audiences.iter().any(|aud| rest_audience_matches(aud, request_url)) {
            Ok(())
        } else {
            Err(TokenError::AudienceMismatch)
        }
    }
}

/// Compares a REST token audience with the request URL (see [`Service::verify_rest_token`]).
pub(super) fn rest_audience_matches(audience: &str, request_url: &str) -> bool {
    let audience = normalize_url_tail(audience);
    let full = normalize_url_tail(request_url);
    let without_query = normalize_url_tail(request_url.split('?').next().unwrap_or(request_url));
    audience == full || audience == without_query
}

/// The part after scheme and host, percent-decoded, lowercased, without trailing `/`.
pub(crate) fn normalize_url_tail(url: &str) -> String {
    let tail = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => url,
    };
    let decoded = percent_encoding::percent_decode_str(tail)
        .decode_utf8_lossy()
        .to_lowercase();
    match decoded.split_once('?') {
        Some((path, query)) => format!("{}?{query}", path.trim_end_matches('/')),
        None => decoded.trim_end_matches('/').to_owned(),
    }
}

/// A client token signed with `key`, for tests and tools that need one without the REST API (its claims are
/// [`ClientAccessRequest::claims`], as `:generateToken` signs them).
pub fn client_token(
    key: &AccessKey,
    audience: &str,
    user_id: Option<&str>,
    roles: &[&str],
    groups: &[&str],
    ttl_secs: u64,
) -> String {
    let owned = |items: &[&str]| items.iter().map(|&item| item.to_owned()).collect();
    let request = ClientAccessRequest {
        user_id: user_id.map(str::to_owned),
        roles: owned(roles),
        groups: owned(groups),
        ttl: Duration::from_secs(ttl_secs),
        ..ClientAccessRequest::default()
    };
    token::sign(&request.claims(audience, token::unix_now()), key)
}
