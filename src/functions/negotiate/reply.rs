//! The answer of `negotiate`: the signed client access in both shapes clients understand, never cached,
//! and the one log line per issue (never the token).

use std::fmt;

use serde::Serialize;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use crate::error::ApiError;
use crate::webpubsub::{ClientAccessIssuer, ClientAccessRequest};

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
}

/// Signs `access` for `hub`, logs the issue and answers with the credential.
pub(super) fn issue(
    issuer: &ClientAccessIssuer,
    hub: &str,
    access_request: &ClientAccessRequest,
    user_id: &str,
) -> Result<Response, ApiError> {
    let access = issuer
        .issue(hub, access_request)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()).with_detail("field", e.field()))?;
    let expires_on = rfc3339(access.expires_at);
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

// TODO(merge): use webpubsub_protocol time formatting (RFC 3339 lives once, in the protocol crate).
/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (UTC, proleptic Gregorian calendar).
pub(super) fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}
