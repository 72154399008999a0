//! The answer of `negotiate`: the signed client access in both shapes clients understand, never cached,
//! and the one log line per issue (never the token).

use std::fmt;

use serde::Serialize;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use super::issuer::Issuer;
use crate::error::ApiError;
use crate::webpubsub::{ClientAccessRequest, ClientType};

/// The reply: the SDK shape (`url`, `baseUrl`, `token`) and the Functions binding shape (`accessToken`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NegotiateResponse<'a> {
    url: &'a str,
    base_url: &'a str,
    token: &'a str,
    access_token: &'a str,
    expires_on: String,
    user_id: &'a str,
    /// Socket.IO only, as the Functions `SocketIONegotiation` binding answers: the service origin over
    /// http(s) with a trailing `/`, and the Socket.IO path (`/clients/socketio/hubs/<hub>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

/// `(endpoint, path)` of a Socket.IO base URL: `wss://host/clients/socketio/hubs/chat` →
/// `("https://host/", "/clients/socketio/hubs/chat")`; `ws://` (a loopback emulator) → `http://`.
pub(super) fn socketio_endpoint(base_url: &str) -> Option<(String, &str)> {
    let (scheme, rest) = base_url.split_once("://")?;
    let scheme = match scheme {
        "wss" | "https" => "https",
        "ws" | "http" => "http",
        _ => return None,
    };
    let slash = rest.find('/')?;
    let (host, path) = rest.split_at(slash);
    Some((format!("{scheme}://{host}/"), path))
}

/// Issues `access` for `hub` (signed here, or by the service in identity mode), logs the issue and
/// answers with the credential.
pub(super) async fn issue(
    issuer: &Issuer,
    hub: &str,
    access_request: &ClientAccessRequest,
    user_id: &str,
) -> Result<Response, ApiError> {
    let access = issuer.issue(hub, access_request).await?;
    let socketio = match access_request.client_type {
        ClientType::SocketIo => socketio_endpoint(&access.base_url),
        _ => None,
    };
    let expires_on = webpubsub_protocol::time::rfc3339_from_unix(access.expires_at);
    tracing::info!(
        user_id,
        hub,
        roles = %Joined(&access_request.roles),
        groups = %Joined(&access_request.groups),
        client_type = %access_request.client_type,
        expires_on = %expires_on,
        "Issued Web PubSub access token"
    );
    let body = NegotiateResponse {
        url: &access.url,
        base_url: &access.base_url,
        token: &access.token,
        access_token: &access.token,
        expires_on,
        user_id,
        path: socketio.as_ref().map(|(_, path)| *path),
        endpoint: socketio.map(|(endpoint, _)| endpoint),
    };
    let mut response = warp::reply::json(&body).into_response();
    // The body is a credential: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Shows a list as `a,b,c` in log fields without building a string.
pub(super) struct Joined<'a>(pub(super) &'a [String]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, item) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}
