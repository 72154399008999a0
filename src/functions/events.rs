//! The `events` function (skeleton: its behaviour lands with its own issue).

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use crate::config::{ConfigError, Env};

/// Settings of `events`.
#[derive(Debug, Default)]
pub struct Settings {}

impl Settings {
    pub fn from_env(_env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

/// State of `events`, built once at start-up.
#[derive(Debug, Default)]
pub struct State {}

impl State {
    pub fn new(_settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}

/// `OPTIONS|POST /api/events`.
pub fn routes(_state: Arc<State>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "events")
        .and(warp::options().or(warp::post()).unify())
        .map(|| super::not_implemented("events").into_response())
        .boxed()
}
