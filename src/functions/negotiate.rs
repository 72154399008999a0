//! The `negotiate` function (skeleton: its behaviour lands with its own issue).

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use crate::config::{ConfigError, Env};

/// Settings of `negotiate`.
#[derive(Debug, Default)]
pub struct Settings {}

impl Settings {
    pub fn from_env(_env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

/// State of `negotiate`, built once at start-up.
#[derive(Debug, Default)]
pub struct State {}

impl State {
    pub fn new(_settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}

/// `GET|POST /api/negotiate`.
pub fn routes(_state: Arc<State>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "negotiate")
        .and(warp::get().or(warp::post()).unify())
        .map(|| super::not_implemented("negotiate").into_response())
        .boxed()
}
