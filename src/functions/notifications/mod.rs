//! The `notifications` function (#16): the caller's notification feed. The caller is identified exactly as
//! `conversations` identifies it (`MemberState::identify`: negotiate's `NegotiateIdentity`; in `anonymous`
//! mode `userId` or `X-User-Id`). Notifications are created through the trusted door
//! (`POST /api/manage/notifications`).
//!
//! - `GET /api/notifications?after=<seq>&limit=` → `{"items":[{"type":"notification","id","seq","createdAt",
//!   "data"}],"next":<seq or null>,"unread":<n>}`: ascending `seq` (per user, gap-free); `next` goes into
//!   `after`; items are exactly the live frames, so a client deduplicates both by `id`.
//! - `PUT /api/notifications/read` `{"seq": n}` → `{"seq"}`: the feed's read marker, monotonic; beyond the
//!   last notification 400.

mod request;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::error::ApiError;
use crate::functions::durable::request::{Call, MAX_READ_BYTES, read_marker};
use crate::functions::durable::{self, bounded, reply};
use crate::request::read_body;

/// State of `notifications`: negotiate's way of identifying callers and the shared durable state.
pub(crate) type State = durable::MemberState;

/// `GET /api/notifications`, `PUT /api/notifications/read`.
pub(crate) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    durable::request::serve("notifications", state, notifications)
}

/// Identify the caller, then dispatch on the path.
async fn notifications(state: Arc<State>, call: Call) -> Result<Response, ApiError> {
    let (tail, method, headers, body) = (call.tail.as_str(), &call.method, &call.headers, call.body);
    let query = request::Query::parse(&call.query)?;
    let user = state.identify(headers, query.user_id.as_deref()).await?;
    let segments = reply::segments(tail)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let durable = &state.durable;
    match (segments.as_slice(), method) {
        ([], &Method::GET) => {
            let (after, limit) = query.page()?;
            let store = durable.store().await?;
            let page = bounded(store.list_notifications(&user, after, limit)).await?;
            let items: Vec<_> = page.items.iter().map(|n| n.frame()).collect();
            Ok(reply::json_with(
                StatusCode::OK,
                &serde_json::json!({ "items": items, "next": page.next, "unread": page.unread }),
            ))
        }
        (["read"], &Method::PUT) => {
            let body = read_body(headers, body, MAX_READ_BYTES).await?;
            let seq = read_marker(&body)?;
            let store = durable.store().await?;
            let marker = bounded(store.mark_notifications_read(&user, seq)).await?;
            Ok(reply::json_with(StatusCode::OK, &serde_json::json!({ "seq": marker })))
        }
        ([], _) => Err(ApiError::method_not_allowed("GET")),
        (["read"], _) => Err(ApiError::method_not_allowed("PUT")),
        _ => Err(reply::not_found()),
    }
}
