//! The `conversations` function (#15): the user door to durable conversations. The caller is identified
//! exactly as `negotiate` identifies it (`NegotiateIdentity`; in `anonymous` mode by the `userId` query
//! parameter or the `X-User-Id` header, which is then required), and every conversation route checks
//! membership in the store.
//!
//! - `GET /api/conversations` → `{"items":[{"id","title","lastMessage","unread"}],"unread":<total>}`, the
//!   caller's own (#16; their own messages never count as unread, system messages do).
//! - `PUT /api/conversations/{id}/read` `{"seq": n}` → `{"conversationId","seq"}`: the caller's read marker,
//!   monotonic (an older `seq` leaves it where it is), a `seq` beyond the last message 400 (#16).
//! - `POST /api/conversations/{id}/messages` `{"id"?, "body"}` (idempotency: the `Idempotency-Key` header or
//!   `id`) → 201 with the stored message, 200 with it on a retry; answered after the commit, then the
//!   broadcast to `conversation:{id}` is tried at once (bounded to 2 s; the `outbox` drain retries).
//! - `GET /api/conversations/{id}/messages?after=<seq>|before=<seq>&limit=` → `{"items":[…],"next"}`.
//!
//! Unknown conversation 404, not a member 403, bad cursor 400, body over `MessageMaxBytes` 413, store
//! unreachable 503 with Retry-After.

mod request;

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::error::ApiError;
use crate::functions::durable::request::{Call, MAX_READ_BYTES, read_marker};
use crate::functions::durable::{self, bounded, reply};
use crate::request::read_body;
use crate::store::messages::Sender;

/// State of `conversations`: negotiate's way of identifying callers and the shared durable state.
pub(crate) type State = durable::MemberState;

/// `GET|POST /api/conversations/{*rest}`.
pub(crate) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    durable::request::serve("conversations", state, conversations)
}

/// Identify the caller, then dispatch on the path.
async fn conversations(state: Arc<State>, call: Call) -> Result<Response, ApiError> {
    let (tail, method, headers, body) = (call.tail.as_str(), &call.method, &call.headers, call.body);
    let query = request::Query::parse(&call.query)?;
    let caller = state.identify(headers, query.user_id.as_deref()).await?;
    let user = caller.as_str();
    let durable = &state.durable;
    let segments = reply::segments(tail)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (segments.as_slice(), method) {
        ([], &Method::GET) => {
            let store = durable.store().await?;
            let list = bounded(store.conversation_list(user)).await?;
            let items: Vec<_> = list.items.iter().map(reply::summary).collect();
            Ok(reply::json_with(
                StatusCode::OK,
                &serde_json::json!({ "items": items, "unread": list.unread }),
            ))
        }
        ([id, "read"], &Method::PUT) => {
            let body = read_body(headers, body, MAX_READ_BYTES).await?;
            let seq = read_marker(&body)?;
            let store = durable.store().await?;
            let marker = bounded(store.mark_read(id, user, seq)).await?;
            Ok(reply::json_with(
                StatusCode::OK,
                &serde_json::json!({ "conversationId": id, "seq": marker }),
            ))
        }
        ([id, "messages"], &Method::POST) => {
            let body = read_body(headers, body, durable.message_max_bytes).await?;
            let send = request::send(&body, headers)?;
            let store = durable.store().await?;
            let sent = bounded(store.send_message(id, Sender::Member(user), send.id.as_deref(), &send.body)).await?;
            Ok(durable::after_send(durable, store, sent))
        }
        ([id, "messages"], &Method::GET) => {
            let (page, limit) = query.page()?;
            let store = durable.store().await?;
            if !bounded(store.is_member(id, user)).await? {
                return Err(durable::store_error(crate::store::StoreError::NotMember));
            }
            let page = bounded(store.history(id, page, limit)).await?;
            let items: Vec<_> = page.items.iter().map(reply::message).collect();
            Ok(reply::json_with(
                StatusCode::OK,
                &serde_json::json!({ "items": items, "next": page.next }),
            ))
        }
        ([], _) => Err(ApiError::method_not_allowed("GET")),
        ([_, "messages"], _) => Err(ApiError::method_not_allowed("GET, POST")),
        ([_, "read"], _) => Err(ApiError::method_not_allowed("PUT")),
        _ => Err(reply::not_found()),
    }
}
