//! The HTTP server: assembles the functions' routes under `/api/`, the host's readiness probe at `/`, one
//! tracing span per request, and the single place rejections are recovered.
//!
//! [`run`] takes an already bound listener so tests (and `handler dev`) bind `127.0.0.1:0` and learn the port.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::Filter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::config::Settings;
use crate::error;
use crate::functions::{FUNCTIONS, events, negotiate, openapi, publish};
use crate::request::{INVOCATION_ID_HEADER, no_control_characters};

/// The running application: every function's state, built once from validated settings.
pub struct App {
    negotiate: Arc<negotiate::State>,
    publish: Arc<publish::State>,
    events: Arc<events::State>,
}

impl App {
    /// Builds every function's state. Fails on settings that only make sense together (e.g. keys vs. modes).
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        Ok(Self {
            negotiate: Arc::new(negotiate::State::new(&settings)?),
            publish: Arc::new(publish::State::new(&settings)?),
            events: Arc::new(events::State::new(&settings)?),
        })
    }

    /// Like [`App::new`], with the application's own Web PubSub event handling in `events` instead of the
    /// settings-driven built-in behaviours (signature checks, connect policy, replies and logs still apply).
    pub fn with_event_handler(settings: Settings, handler: Arc<dyn events::EventHandler>) -> anyhow::Result<Self> {
        Ok(Self {
            negotiate: Arc::new(negotiate::State::new(&settings)?),
            publish: Arc::new(publish::State::new(&settings)?),
            events: Arc::new(events::State::with_handler(&settings, handler)?),
        })
    }

    /// All routes, recovered and traced.
    pub fn routes(&self) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
        let api = negotiate::routes(self.negotiate.clone())
            .or(publish::routes(self.publish.clone()))
            .unify()
            .or(events::routes(self.events.clone()))
            .unify()
            .or(openapi::routes())
            .unify();
        let api = no_control_characters()
            .and(method_not_allowed().or(api).unify())
            .boxed();
        readiness()
            .or(api)
            .unify()
            .recover(error::recover)
            .unify()
            .with(warp::trace(|info| {
                let invocation_id = info
                    .request_headers()
                    .get(INVOCATION_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %info.method(), path = info.path(), invocation_id)
            }))
    }
}

/// `GET /`: the Functions host polls this until it answers, then treats the handler as ready.
fn readiness() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::end()
        .and(warp::get().or(warp::head()).unify())
        .map(|| "ok".into_response())
}

/// A function's route with a method it does not take: 405 with `Allow` listing the methods it does take
/// (from [`FUNCTIONS`], which the route-consistency test holds in step with the routes). Any other request
/// passes on untouched.
fn method_not_allowed() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and(warp::method())
        .and_then(|path: warp::path::FullPath, method: Method| async move {
            let function = path
                .as_str()
                .strip_prefix("/api/")
                .and_then(|name| FUNCTIONS.iter().find(|function| function.name == name));
            match function {
                Some(function) if !function.methods.contains(&method) => {
                    let allow = function
                        .methods
                        .iter()
                        .map(Method::as_str)
                        .collect::<Vec<_>>()
                        .join(", ");
                    let message = format!("this function takes {allow}");
                    let mut response =
                        error::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
                            .into_response();
                    if let Ok(allow) = HeaderValue::from_str(&allow) {
                        response.headers_mut().insert(header::ALLOW, allow);
                    }
                    Ok(response)
                }
                _ => Err(warp::reject::not_found()),
            }
        })
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains open connections.
pub async fn run(listener: TcpListener, app: App, shutdown: impl Future<Output = ()> + Send + 'static) {
    warp::serve(app.routes())
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// Resolves on ctrl-c or SIGTERM (local runs; the Functions host itself kills the process).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining connections");
}
