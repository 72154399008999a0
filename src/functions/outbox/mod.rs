//! The `outbox` function (#15): a timer trigger (`*/10 * * * * *` in its `function.json`). The Functions host
//! POSTs `/outbox` (the folder name, no route prefix) with the JSON payload of a non-HTTP trigger
//! (`{"Data":{"timer":{…}},"Metadata":{…}}`) and expects a 2xx `application/json` invocation result; the
//! drain ([`crate::functions::durable::drain`]) delivers what the immediate try after a send missed.
//!
//! Answers `200 {"Outputs":{},"Logs":[],"ReturnValue":null}` after a drain (also when no store is configured:
//! nothing to drain); a store failure is a 503, which the host records as a failed invocation, and the next
//! tick tries again. `handler dev` runs the same drain in-process ([`run_every`]).

use std::sync::Arc;
#[cfg(feature = "dev")]
use std::time::Duration;

use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use crate::error::{self, ApiError};
use crate::functions::durable::{DrainReport, Durable, drain, reply, store_error};
use crate::request::{UnreadBody, read_body, unread_body};

/// Largest invocation payload read (a timer's is a few hundred bytes).
const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// `POST /outbox` (the host's invocation of the timer function).
pub(crate) fn routes(durable: Arc<Durable>) -> BoxedFilter<(Response,)> {
    warp::path!("outbox")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(unread_body())
        .then(move |headers: HeaderMap, body: UnreadBody| {
            let durable = durable.clone();
            async move { error::into_response(invoke(&durable, &headers, body).await) }
        })
        // Any other method: a 405 naming POST (fuzz finding ST204, #17).
        .or(warp::path!("outbox").map(|| warp::Reply::into_response(ApiError::method_not_allowed("POST"))))
        .unify()
        .boxed()
}

/// The invocation result the host expects from a function without output bindings.
pub(crate) fn invocation_result() -> Value {
    json!({ "Outputs": {}, "Logs": [], "ReturnValue": null })
}

/// Reads the payload (it must be a JSON object), drains once, answers the invocation result.
async fn invoke(durable: &Durable, headers: &HeaderMap, body: UnreadBody) -> Result<Response, ApiError> {
    let body = read_body(headers, body, MAX_PAYLOAD_BYTES).await?;
    let payload: Value = reply::parse_json(&body)?;
    if !payload.is_object() {
        return Err(ApiError::bad_request(
            "InvalidJson",
            "the invocation payload must be a JSON object",
        ));
    }
    let report = run_once(durable).await?;
    log_drained(&report);
    Ok(reply::json_with(StatusCode::OK, &invocation_result()))
}

/// One drain, or nothing when no store is configured.
pub(crate) async fn run_once(durable: &Durable) -> Result<DrainReport, ApiError> {
    if !durable.is_configured() {
        return Ok(DrainReport::default());
    }
    let store = durable.store().await?;
    drain(durable, store).await.map_err(store_error)
}

/// Drains every `interval` until dropped (`handler dev`, where no Functions host fires the timer).
#[cfg(feature = "dev")]
pub(crate) async fn run_every(durable: Arc<Durable>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match run_once(&durable).await {
            Ok(report) if report != DrainReport::default() => log_drained(&report),
            Ok(_) => {}
            Err(error) => tracing::warn!(code = error.code(), "outbox drain failed; next tick retries"),
        }
    }
}

/// The one log line of a drain that did something.
fn log_drained(report: &DrainReport) {
    tracing::info!(
        sent = report.sent,
        retried = report.retried,
        parked = report.parked,
        pruned = report.pruned,
        "outbox drained"
    );
}
