//! The `publish` function: trusted callers (a backend, a job, another function) drive the Web PubSub data
//! plane — send text, JSON or binary to everyone, a group, a user or a connection, manage groups, close
//! connections and grant permissions — one action or several in order, through the core [`RestClient`].
//!
//! `POST /api/publish` takes one of:
//! 1. the simple form `{"group"|"room": "ops", "message": ..., "dataType"?: "text|json|binary"}` (a
//!    `sendToGroup`; also `hub`, `excluded`, `filter`, `messageTtlSeconds`);
//! 2. an action object of the Functions Web PubSub output binding, `{"actionName": "sendToUser",
//!    "userId": "ada", "data": "hi", "dataType": "text"}`, with `actionName` one of [`ActionKind`];
//! 3. an array of 1 to [`MAX_ACTIONS`] action objects, executed in order.
//!
//! The simple form may carry `user_id` (the recipe's body `{"user_id","room","message"}`): the publisher's
//! attribution, logged as `user_id=` (the trusted caller then as `caller=`) and trusted for nothing else;
//! its answer adds `"status": "published"`. Trusted callers may also ask read-only questions as actions
//! (`connectionExists`, `groupExists`, `userExists`, `listConnectionsInGroup`, `checkPermission`), answered
//! in the action's result.
//!
//! Payloads (`message` / `data`): text is a string; json is a JSON value, or a string holding JSON text (as
//! the binding sends it); binary is base64 text or a Node.js Buffer object, and goes as bytes. Without
//! `dataType` a string is text, a Buffer binary, anything else json. Every action may name a `hub` from
//! the allow-list (`WebPubSubHub` plus `WebPubSubAllowedHubs`).
//!
//! Every field is validated against the service's limits before any call (see `request`): a bad one is a
//! 400 naming the `field` (and the `index` of the action in an array); nothing is sent. Actions then run one
//! after another and execution stops at the first one not done; the reply lists each action's outcome
//! (`done`, `failed`, `unknown`, `notAttempted`; see `reply`). Upstream failures are 502 / 503 / 504,
//! and input the service refuses or a target it does not know (a 400 / 404 from it) is a 400 / 404 with the
//! same `results`; a 4xx without `results` means nothing was attempted.
//!
//! Trust: the host's function key plus `policy`'s configured second check. Settings (read once at start-up):
//!
//! | Setting | Default | Meaning |
//! |---|---|---|
//! | `PublishTrust` | required | `jwt`, `appservice` or `functionkey` (function key only; warned about). |
//! | `PublishRequiredRole` | required with `jwt` / `appservice` | App role(s) or scope(s), comma-separated; a caller needs one. |
//! | `PublishMaxBodyBytes` | `2097152` | Largest request body read (a 1 MiB message as base64 plus the envelope). |
//! | `PublishDeadlineSeconds` | `50` | Longest a request may take (1 to 230, below `functionTimeout`); then 504 with `results`. |
//!
//! Each action done is logged as `Forwarded WebSocket message through Web PubSub room=… user_id=…` (sends)
//! or `Performed Web PubSub action …`, with the caller in `user_id`; payloads and credentials never are.

mod actions;
mod fields;
mod payload;
mod policy;
mod reply;
mod request;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;

#[cfg(test)]
pub(crate) use policy::{FUNCTION_KEY_CALLER, REQUIRED_ROLE_SETTING};
pub(crate) use policy::{TRUST_SETTING, Trust, TrustSettings};
#[cfg(test)]
pub(crate) use request::{ActionKind, MAX_ACTIONS};

use crate::auth::SharedAuth;
use crate::config::{ConfigError, Env};
use crate::error::{self, ApiError};
use crate::request::{MAX_BODY_BYTES_RANGE, UnreadBody, read_body, unread_body};
use crate::webpubsub::{Hubs, RestClient, RestOptions, ServiceSettings};

pub(crate) const MAX_BODY_SETTING: &str = "PublishMaxBodyBytes";
pub(crate) const DEADLINE_SETTING: &str = "PublishDeadlineSeconds";
/// Below host.json's `functionTimeout` (60 s here; the Functions default is 5 min), so publish answers
/// before the host kills the handler.
pub(crate) const DEFAULT_DEADLINE_SECONDS: u64 = 50;
/// Bounds for `PublishDeadlineSeconds`: Azure's front end drops HTTP requests after 230 s anyway.
const DEADLINE_RANGE: RangeInclusive<u64> = 1..=230;
/// A 1 MiB binary message as base64 is about 1.4 MiB; the rest is room for the JSON envelope.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;

/// Settings of `publish`.
#[derive(Debug)]
pub(crate) struct Settings {
    pub trust: TrustSettings,
    pub max_body_bytes: u64,
    /// How long one publish request may take, from arrival to answer.
    pub deadline: Duration,
}

impl Settings {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let trust = TrustSettings::from_env(env)?;
        let max_body_bytes = env.parse_in(MAX_BODY_SETTING, DEFAULT_MAX_BODY_BYTES, MAX_BODY_BYTES_RANGE, "bytes")?;
        let deadline_seconds = env.parse_in(
            DEADLINE_SETTING,
            DEFAULT_DEADLINE_SECONDS,
            DEADLINE_RANGE,
            "seconds (and below host.json's functionTimeout)",
        )?;
        Ok(Self {
            trust,
            max_body_bytes,
            deadline: Duration::from_secs(deadline_seconds),
        })
    }

    /// `PublishTrust=jwt` when this function reads bearer tokens (the app then reads the `Auth*` settings).
    pub(crate) fn jwt_user(&self) -> Option<String> {
        (self.trust.identity() == Some(crate::auth::IdentityConfig::Jwt)).then(|| format!("{TRUST_SETTING}=jwt"))
    }
}

/// State of `publish`, built once at start-up: the trust check and one pooled REST client for the primary
/// connection string.
#[derive(Debug)]
pub(crate) struct State {
    trust: policy::Trust,
    client: RestClient,
    hubs: Hubs,
    max_body_bytes: u64,
    deadline: Duration,
}

impl State {
    /// The state for `own` settings in front of `service`, identifying callers through the app's `auth`.
    pub(crate) fn new(own: &Settings, service: &ServiceSettings, auth: &SharedAuth) -> anyhow::Result<Self> {
        Self::build(own, service, auth, RestOptions::default())
    }

    /// As [`State::new`], with REST `options` (tests shorten timeouts).
    fn build(
        own: &Settings,
        service: &ServiceSettings,
        auth: &SharedAuth,
        options: RestOptions,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            trust: policy::Trust::new(&own.trust, auth)?,
            client: RestClient::for_service(service, options)?,
            hubs: service.hubs.clone(),
            max_body_bytes: own.max_body_bytes,
            deadline: own.deadline,
        })
    }
}

/// `POST /api/publish`.
pub(crate) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "publish")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(unread_body())
        .then(move |headers: HeaderMap, body: UnreadBody| {
            let state = state.clone();
            async move { error::into_response(publish(&state, &headers, body).await) }
        })
        .boxed()
}

/// Trust the caller, read and validate the whole request, then run it.
async fn publish(state: &State, headers: &HeaderMap, body: UnreadBody) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + state.deadline;
    let caller = state.trust.check(headers).await?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let plan = request::parse(&body, &state.hubs)?;
    reply::execute(&state.client, &plan, &caller, deadline).await
}

#[cfg(test)]
mod tests;
