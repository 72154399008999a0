//! The `sync` function (#16): one call after any (re)connect closes every gap. The caller is identified
//! exactly as `conversations` identifies it.
//!
//! - `GET /api/sync?since=<cursor>&limit=` → `{"conversations":[{"id","messages":[…],"unread",
//!   "membership"?}],"notifications":[…],"next":"<cursor>","limited":<bool>}`: every message of every
//!   conversation the caller belongs to, every membership change affecting them (`added` / `removed`) and
//!   every notification since the cursor, `limit` (clamped to 1..=1000, default 100) counting messages plus
//!   notifications; `limited: true` when more remains (call again with `next`). Without `since`: the current
//!   state (each conversation with its last message and unread, the latest notifications) and a cursor.
//!
//! The cursor is opaque: the position signed with HMAC-SHA256 under a key kept in the store (so every
//! instance shares it, [`crate::store::Store::sync_secret`]) and bound to its user; another user's, a tampered
//! or a made-up cursor is 400 `InvalidCursor`.

mod reply;
mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::OnceCell;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::functions::durable::request::{self as durable_request, Call};
use crate::functions::durable::{Durable, MemberState, bounded, reply as durable_reply};
use crate::store::cursor::CursorKey;

/// State of `sync`: what `conversations` has (caller identity, the shared durable state) and the cursor key
/// (read once from the store).
#[derive(Debug)]
pub(crate) struct State {
    members: MemberState,
    key: OnceCell<CursorKey>,
}

impl State {
    pub(crate) fn new(authenticator: Authenticator, durable: Arc<Durable>) -> Self {
        Self {
            members: MemberState::new(authenticator, durable),
            key: OnceCell::new(),
        }
    }
}

/// `GET /api/sync`.
pub(crate) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    durable_request::serve("sync", state, sync)
}

/// Check the path and method, identify the caller, verify the cursor, then read what they missed.
async fn sync(state: Arc<State>, call: Call) -> Result<Response, ApiError> {
    if !call.tail.as_str().is_empty() {
        return Err(durable_reply::not_found());
    }
    if call.method != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    let query = request::Query::parse(&call.query)?;
    let user = state.members.identify(&call.headers, query.user_id.as_deref()).await?;
    let limit = query.limit()?;
    let store = state.members.durable.store().await?;
    let key = state.key.get_or_try_init(|| bounded(store.sync_secret())).await?;
    let since = query
        .since
        .as_deref()
        .map(|cursor| key.decode(cursor, &user).map_err(request::cursor_error))
        .transpose()?;
    let result = bounded(store.sync(&user, since.as_ref(), limit)).await?;
    Ok(durable_reply::json_with(StatusCode::OK, &reply::sync(&result, key)))
}
