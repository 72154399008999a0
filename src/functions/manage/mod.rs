//! The `manage` function (#15): the trusted door to durable conversations, for a backend, a bot or a job —
//! checked exactly as `publish` (the host's function key plus `PublishTrust`, see
//! [`crate::functions::publish::Trust`]).
//!
//! - `POST /api/manage/conversations` `{"id"?, "title"?, "members": ["alice","bob"]}` → 201
//!   `{"id","title","members","createdAt"}`; the same id and members again → 200; other members → 409.
//! - `PUT /api/manage/conversations/{id}/members/{userId}` → 201 added, 200 already a member.
//! - `DELETE /api/manage/conversations/{id}/members/{userId}` → 204; the removal reaches live connections
//!   through the outbox (out of `conversation:{id}`).
//! - `POST /api/manage/conversations/{id}/messages` `{"sender", "id"?, "body"}` → 201 / 200 (a retry), a
//!   system message (bots, notices) stored and broadcast like a member's.
//! - `POST /api/manage/notifications` `{"id"?, "userIds": [...] | "conversationId", "data"}` → 201
//!   `{"id","userIds"}`, 200 on a retry with the same id (nothing resent) (#16). Stored per user and delivered
//!   through the outbox to `notifications:user:{userId}` as `{"type":"notification","id","seq","createdAt",
//!   "data"}`, plus the offline webhook for recipients with no live connection.
//!
//! The store comes from [`crate::functions::durable`]; without `StoreConnectionString` every route answers
//! 503 `StoreNotConfigured`.

mod request;

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::{Reply, Response};

use crate::error::{self, ApiError};
use crate::functions::durable::{self, Durable, bounded, reply, try_now};
use crate::functions::publish::Trust;
use crate::request::{UnreadBody, read_body, unread_body};
use crate::store::messages::Sender;
use crate::store::outbox::OutboxKind;

/// Largest body of a conversation create (a member list).
const MAX_CREATE_BYTES: u64 = 256 * 1024;
/// Largest body of a notification (up to 10 000 user ids and its data).
const MAX_NOTIFY_BYTES: u64 = 2 * 1024 * 1024;

/// State of `manage`: publish's trust check and the shared durable state.
#[derive(Debug)]
pub(crate) struct State {
    trust: Trust,
    durable: Arc<Durable>,
}

impl State {
    pub(crate) fn new(trust: Trust, durable: Arc<Durable>) -> Self {
        Self { trust, durable }
    }
}

/// `POST|PUT|DELETE /api/manage/{*rest}`.
pub(crate) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "manage" / ..)
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(unread_body())
        .then(
            move |tail: warp::path::Tail, method: Method, headers: HeaderMap, body: UnreadBody| {
                let state = state.clone();
                async move { error::into_response(manage(&state, tail.as_str(), &method, &headers, body).await) }
            },
        )
        .boxed()
}

/// Trust the caller, then dispatch on the path.
async fn manage(
    state: &State,
    tail: &str,
    method: &Method,
    headers: &HeaderMap,
    body: UnreadBody,
) -> Result<Response, ApiError> {
    let caller = state.trust.check(headers).await?;
    let segments = reply::segments(tail)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let ["conversations", _, "members", user] = segments.as_slice() {
        request::member_user_id(user)?;
    }
    let durable = &state.durable;
    match (segments.as_slice(), method) {
        (["conversations"], &Method::POST) => {
            let body = read_body(headers, body, MAX_CREATE_BYTES).await?;
            let create = request::create(&body)?;
            let store = durable.store().await?;
            let done =
                bounded(store.create_conversation(create.id.as_deref(), create.title.as_deref(), &create.members))
                    .await?;
            tracing::info!(user_id = %caller, conversation_id = %done.item.id, created = done.created, "conversation created");
            Ok(reply::json_with(
                reply::created_or_found(done.created),
                &reply::conversation(&done.item),
            ))
        }
        (["conversations", id, "members", user], &Method::PUT) => {
            let store = durable.store().await?;
            let added = bounded(store.add_member(id, user)).await?;
            tracing::info!(user_id = %caller, conversation_id = %id, member = %user, added, "member added");
            let conversation = bounded(store.conversation(id)).await?;
            Ok(reply::json_with(
                reply::created_or_found(added),
                &reply::conversation(&conversation),
            ))
        }
        (["conversations", id, "members", user], &Method::DELETE) => {
            let store = durable.store().await?;
            let removal = bounded(store.remove_member(id, user)).await?;
            tracing::info!(user_id = %caller, conversation_id = %id, member = %user, removed = removal.removed, "member removed");
            if let Some(lease) = removal.outbox {
                let payload = serde_json::json!({
                    "conversationId": id,
                    "userId": user,
                    "group": crate::store::conversations::group_name(id),
                });
                try_now(
                    durable.clone(),
                    store.clone(),
                    lease,
                    OutboxKind::MembershipRemoved,
                    payload,
                );
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (["conversations", id, "messages"], &Method::POST) => {
            let body = read_body(headers, body, durable.message_max_bytes).await?;
            let send = request::system_message(&body)?;
            let store = durable.store().await?;
            let sent =
                bounded(store.send_message(id, Sender::System(&send.sender), send.id.as_deref(), &send.body)).await?;
            Ok(durable::after_send(durable, store, sent))
        }
        (["notifications"], &Method::POST) => {
            let body = read_body(headers, body, MAX_NOTIFY_BYTES).await?;
            let notify = request::notify(&body)?;
            let store = durable.store().await?;
            let offline = durable.offline_webhook().is_some();
            let done =
                bounded(store.create_notification(notify.id.as_deref(), &notify.audience, &notify.data, offline))
                    .await?;
            tracing::info!(user_id = %caller, notification_id = %done.item.id, recipients = done.item.user_ids.len(), created = done.created, "notification stored");
            if done.created {
                // The fan-out's outbox rows are due now; deliver them at once instead of at the next tick.
                durable::drain_soon(durable.clone(), store.clone());
            }
            Ok(reply::json_with(
                reply::created_or_found(done.created),
                &serde_json::json!({ "id": done.item.id, "userIds": done.item.user_ids }),
            ))
        }
        (["notifications"], _) => Err(ApiError::method_not_allowed("POST")),
        (["conversations"], _) => Err(ApiError::method_not_allowed("POST")),
        (["conversations", _, "members", _], _) => Err(ApiError::method_not_allowed("PUT, DELETE")),
        (["conversations", _, "messages"], _) => Err(ApiError::method_not_allowed("POST")),
        _ => Err(reply::not_found()),
    }
}
