//! The `publish` function (skeleton: its behaviour lands with its own issue).

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use crate::config::{ConfigError, Env};

/// Settings of `publish`.
#[derive(Debug, Default)]
pub struct Settings {}

impl Settings {
    pub fn from_env(_env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

/// State of `publish`, built once at start-up.
#[derive(Debug, Default)]
pub struct State {}

impl State {
    pub fn new(_settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}

/// `POST /api/publish`.
pub fn routes(_state: Arc<State>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "publish")
        .and(warp::post())
        .map(|| super::not_implemented("publish").into_response())
        .boxed()
}
