//! What a caller of `negotiate` asks for: the JSON body of a `POST`, or the query of a `GET` (or of a `POST`
//! without body), read within [`MAX_BODY_BYTES`] and parsed into a [`NegotiateRequest`]. Wrong types are a
//! 400 naming the field; more than [`MAX_REQUESTED_ITEMS`] groups or roles a 400 `TooManyItems`.

use bytes::Bytes;
use serde::Deserialize;
use warp::http::HeaderMap;

use super::{MAX_BODY_BYTES, MAX_REQUESTED_ITEMS};
use crate::error::ApiError;
use crate::request::{UnreadBody, read_body};

/// The request from the JSON body of a `POST`, or from the query (a `GET`, or a `POST` without body).
pub(super) async fn read(
    body: Option<UnreadBody>,
    query: &str,
    headers: &HeaderMap,
) -> Result<NegotiateRequest, ApiError> {
    let body = match body {
        Some(body) => read_body(headers, body, MAX_BODY_BYTES).await?,
        None => Bytes::new(),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        parse_query(query)
    } else {
        parse_json(&body)
    }
}

/// What a caller may ask for. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NegotiateRequest {
    pub(super) user_id: Option<String>,
    pub(super) hub: Option<String>,
    pub(super) groups: Option<Vec<String>>,
    pub(super) roles: Option<Vec<String>>,
    pub(super) minutes_to_expire: Option<u32>,
    pub(super) client_type: Option<String>,
}

pub(super) fn parse_json(body: &[u8]) -> Result<NegotiateRequest, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::bad_request(
            "InvalidField",
            format!("the request body has a field of the wrong type: {e}"),
        ),
        _ => ApiError::bad_request("InvalidJson", format!("the request body is not valid JSON: {e}")),
    })
}

pub(super) fn parse_query(query: &str) -> Result<NegotiateRequest, ApiError> {
    let mut request = NegotiateRequest::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let list = |current: &mut Option<Vec<String>>| {
            current
                .get_or_insert_with(Vec::new)
                .extend(value.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
        };
        match name.as_ref() {
            n if n.eq_ignore_ascii_case("userId") => request.user_id = Some(value.into_owned()),
            n if n.eq_ignore_ascii_case("hub") => request.hub = Some(value.into_owned()),
            n if n.eq_ignore_ascii_case("groups") => list(&mut request.groups),
            n if n.eq_ignore_ascii_case("roles") => list(&mut request.roles),
            n if n.eq_ignore_ascii_case("clientType") => request.client_type = Some(value.into_owned()),
            n if n.eq_ignore_ascii_case("minutesToExpire") => {
                let minutes = value.trim().parse().map_err(|_| {
                    ApiError::bad_request(
                        "InvalidField",
                        "query parameter minutesToExpire must be a whole number of minutes",
                    )
                    .with_detail("field", "minutesToExpire")
                })?;
                request.minutes_to_expire = Some(minutes);
            }
            _ => {}
        }
        if request.groups.as_ref().is_some_and(|g| g.len() > MAX_REQUESTED_ITEMS)
            || request.roles.as_ref().is_some_and(|r| r.len() > MAX_REQUESTED_ITEMS)
        {
            return Err(too_many());
        }
    }
    Ok(request)
}

pub(super) fn too_many() -> ApiError {
    ApiError::bad_request(
        "TooManyItems",
        format!("ask for at most {MAX_REQUESTED_ITEMS} groups and {MAX_REQUESTED_ITEMS} roles"),
    )
}
