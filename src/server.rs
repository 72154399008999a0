//! The HTTP server: assembles the functions' routes under `/api/`, the host's readiness probe at `/`, one
//! tracing span per request, and the single place rejections are recovered.
//!
//! [`Settings`] gathers every module's validated settings from one environment snapshot; [`App`] builds each
//! function's state from its own settings and the service's. [`run`] takes an already bound listener so tests (and `handler dev`) bind `127.0.0.1:0` and learn the port.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::Filter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::auth::{JwtSettings, SharedAuth};
use crate::config::{ConfigError, Env};
use crate::error;
use crate::functions::{
    FUNCTIONS, conversations, durable, events, manage, negotiate, notifications, openapi, outbox, publish, sync,
};
use crate::request::{INVOCATION_ID_HEADER, control_characters};
use crate::telemetry::LogSettings;
use crate::webpubsub::ServiceSettings;

/// Port the handler listens on when `FUNCTIONS_CUSTOMHANDLER_PORT` is unset (the Functions host always sets it).
pub(crate) const DEFAULT_PORT: u16 = 3000;

/// Everything the handler needs, validated from one environment snapshot. Built once; shared read-only.
#[derive(Debug)]
pub struct Settings {
    /// Loopback port to listen on (`FUNCTIONS_CUSTOMHANDLER_PORT`).
    pub port: u16,
    /// Log filter and format (`RUST_LOG`, `LOG_FORMAT`), for `telemetry::init`.
    pub log: LogSettings,
    /// The Web PubSub service: connection string(s), keys and hubs.
    pub(crate) service: ServiceSettings,
    /// The `Auth*` settings, read once when a function identifies callers by bearer token.
    pub(crate) jwt: Option<JwtSettings>,
    /// `Negotiate*` settings.
    pub(crate) negotiate: negotiate::Settings,
    /// `Publish*` settings.
    pub(crate) publish: publish::Settings,
    /// `Events*` settings.
    pub(crate) events: events::Settings,
    /// `StoreConnectionString` and `MessageMaxBytes` (#15).
    pub(crate) durable: durable::Settings,
}

impl Settings {
    /// Reads and validates every setting from `env`; the first missing or malformed one is the error.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let port = env.parse_or("FUNCTIONS_CUSTOMHANDLER_PORT", DEFAULT_PORT)?;
        let log = LogSettings::from_env(env)?;
        let service = ServiceSettings::from_env(env)?;
        let negotiate = negotiate::Settings::from_env(env)?;
        let publish = publish::Settings::from_env(env)?;
        let jwt_users: Vec<String> = [negotiate.jwt_user(), publish.jwt_user()]
            .into_iter()
            .flatten()
            .collect();
        Ok(Self {
            port,
            log,
            service,
            jwt: SharedAuth::jwt_settings_from_env(env, &jwt_users)?,
            negotiate,
            publish,
            events: events::Settings::from_env(env)?,
            durable: durable::Settings::from_env(env)?,
        })
    }
}

/// The running application: every function's state, built once from validated settings.
pub struct App {
    negotiate: Arc<negotiate::State>,
    publish: Arc<publish::State>,
    events: Arc<events::State>,
    durable: Arc<durable::Durable>,
    manage: Arc<manage::State>,
    conversations: Arc<conversations::State>,
    notifications: Arc<notifications::State>,
    sync: Arc<sync::State>,
}

impl App {
    /// Builds every function's state from its own settings and the service's, with one shared authenticator.
    /// Fails on settings that only make sense together (e.g. keys vs. modes).
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let auth = SharedAuth::new(settings.jwt.as_ref())?;
        let service = &settings.service;
        warn_on_plain_http(service);
        let durable = Arc::new(durable::Durable::new(&settings.durable, service)?);
        let manage_trust = publish::Trust::new(&settings.publish.trust, &auth)?;
        let conversations_identity = auth.authenticator(settings.negotiate.identity)?;
        Ok(Self {
            negotiate: Arc::new(
                negotiate::State::new(&settings.negotiate, service, &auth)?.with_durable(durable.clone()),
            ),
            publish: Arc::new(publish::State::new(&settings.publish, service, &auth)?),
            // Presence for the offline hand-off (#16) is recorded around the events handler when a store is set.
            events: Arc::new(events::State::with_handler(
                &settings.events,
                service,
                durable::presence::PresenceRecorder::wrap(
                    Arc::new(events::Builtin::from_parts(service, &settings.events)?),
                    &durable,
                ),
            )?),
            manage: Arc::new(manage::State::new(manage_trust, durable.clone())),
            conversations: Arc::new(conversations::State::new(conversations_identity, durable.clone())),
            notifications: Arc::new(notifications::State::new(
                auth.authenticator(settings.negotiate.identity)?,
                durable.clone(),
            )),
            sync: Arc::new(sync::State::new(
                auth.authenticator(settings.negotiate.identity)?,
                durable.clone(),
            )),
            durable,
        })
    }

    /// Opens the store now (at start-up), so migrations run before the first request; a failure is logged
    /// and the first durable request tries again (answering 503 meanwhile).
    pub async fn open_store(&self) {
        match self.durable.open().await {
            Ok(Some(store)) => tracing::info!(backend = ?store.backend(), "store opened"),
            Ok(None) => tracing::info!("StoreConnectionString unset: durable conversations answer 503"),
            Err(error) => tracing::error!(error = %error, "store not opened; durable routes answer 503 until it is"),
        }
    }

    /// The shared durable state (`handler dev` drains its outbox in-process).
    pub fn durable(&self) -> Arc<durable::Durable> {
        self.durable.clone()
    }

    /// The application's own Web PubSub event handling in `events` instead of the settings-driven built-in
    /// behaviours, which it replaces: `EventsUserEventBehavior` (`echo`, `broadcast` and its rooms) no longer
    /// applies, and the built-in handler is not reachable to delegate to. Signature checks, connect policy,
    /// replies and logs still apply; with a store, presence is still recorded around it for the offline
    /// hand-off.
    pub fn with_event_handler(mut self, handler: Arc<dyn events::EventHandler>) -> Self {
        let handler = durable::presence::PresenceRecorder::wrap(handler, &self.durable);
        self.events = Arc::new(self.events.replace_handler(handler));
        self
    }

    /// All routes, recovered and traced.
    pub fn routes(&self) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
        let api = negotiate::routes(self.negotiate.clone())
            .or(publish::routes(self.publish.clone()))
            .unify()
            .or(events::routes(self.events.clone()))
            .unify()
            .or(manage::routes(self.manage.clone()))
            .unify()
            .or(conversations::routes(self.conversations.clone()))
            .unify()
            .or(notifications::routes(self.notifications.clone()))
            .unify()
            .or(sync::routes(self.sync.clone()))
            .unify()
            .or(openapi::routes())
            .unify();
        let api = control_characters()
            .or(method_not_allowed())
            .unify()
            .or(api)
            .unify()
            .boxed();
        readiness()
            .or(outbox::routes(self.durable.clone()))
            .unify()
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

/// One warning at start per connection string whose endpoint is plain `http` to a host that is not loopback:
/// tokens, keys' signatures and messages would cross the network unencrypted (#14 item 12). The emulator on
/// loopback stays silent.
fn warn_on_plain_http(service: &ServiceSettings) {
    let named = [("WebPubSubConnectionString", Some(&service.primary))]
        .into_iter()
        .chain([("WebPubSubSecondaryConnectionString", service.secondary.as_ref())]);
    for (setting, connection) in named {
        let Some(endpoint) = connection.map(|connection| connection.endpoint()) else {
            continue;
        };
        let host = endpoint.host();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !endpoint.is_https() && !loopback {
            tracing::warn!(
                setting,
                host,
                "the Web PubSub endpoint is plain http to a host that is not loopback: \
                 traffic to the service is unencrypted; use https"
            );
        }
    }
}

/// `GET /`: the Functions host polls this until it answers, then treats the handler as ready.
fn readiness() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::end()
        .and(warp::get().or(warp::head()).unify())
        .map(|| "ok".into_response())
}

/// A function's route with a method it does not take: 405 with `Allow` listing the methods it does take.
/// The contract's path table ([`openapi::paths`]) decides for a documented path, so a catch-all function
/// names the methods of the path asked for; otherwise the function's methods from [`FUNCTIONS`] (which the
/// route-consistency test holds in step with the routes). Any other request passes on untouched.
fn method_not_allowed() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and(warp::method())
        .and_then(|path: warp::path::FullPath, method: Method| async move {
            let function = path
                .as_str()
                .strip_prefix("/api/")
                .and_then(|name| FUNCTIONS.iter().find(|function| function.serves(name)));
            let allowed = match (openapi::paths::allowed_methods(path.as_str()), function) {
                (Some(documented), _) => documented,
                (None, Some(function)) => function.methods,
                (None, None) => return Err(warp::reject::not_found()),
            };
            if allowed.contains(&method) {
                return Err(warp::reject::not_found());
            }
            let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            let message = format!("this route takes {allow}");
            let mut response =
                error::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message).into_response();
            if let Ok(allow) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            Ok(response)
        })
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains open connections, within the default
/// [`Limits`](crate::connections::Limits).
pub async fn run(listener: TcpListener, app: App, shutdown: impl Future<Output = ()> + Send + 'static) {
    run_with_limits(listener, app, crate::connections::Limits::default(), shutdown).await;
}

/// [`run`] within the given limits (tests shorten the timeouts).
pub async fn run_with_limits(
    listener: TcpListener,
    app: App,
    limits: crate::connections::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    crate::connections::serve(listener, app.routes(), limits, shutdown).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTION_STRING: &str =
        "Endpoint=http://localhost;Port=8080;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;";

    fn env(negotiate: &str, publish: &str) -> Env {
        Env::from_pairs([
            ("WebPubSubConnectionString", CONNECTION_STRING),
            ("WebPubSubHub", "chat"),
            (negotiate::IDENTITY_SETTING, negotiate),
            (publish::TRUST_SETTING, publish),
            (publish::REQUIRED_ROLE_SETTING, "Publisher"),
        ])
    }

    #[tokio::test]
    async fn a_non_ascii_origin_header_is_a_bad_request_not_a_wrong_method() {
        let app = App::new(Settings::from_env(&env("anonymous", "appservice")).unwrap()).unwrap();
        let origin = HeaderValue::from_bytes("h\u{f6}st.example".as_bytes()).unwrap();
        let response = warp::test::request()
            .method("OPTIONS")
            .path("/api/events")
            .header("webhook-request-origin", origin)
            .reply(&app.routes())
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{:?}", response.body());
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], "InvalidHeader");
    }

    fn function_key_env() -> Env {
        Env::from_pairs([
            ("WebPubSubConnectionString", CONNECTION_STRING),
            ("WebPubSubHub", "chat"),
            (negotiate::IDENTITY_SETTING, "anonymous"),
            (publish::TRUST_SETTING, "functionkey"),
        ])
    }

    /// Fuzz findings of #17 on the durable routes, one per class, through the assembled routes.
    #[tokio::test]
    async fn every_405_lists_the_methods_the_route_takes() {
        let app = App::new(Settings::from_env(&function_key_env()).unwrap()).unwrap();
        for (method, path, allow) in [
            ("PUT", "/api/manage/conversations", "POST"),
            ("POST", "/api/manage/conversations/team-1/members/alice", "PUT, DELETE"),
            ("PUT", "/api/manage/conversations/team-1/messages", "POST"),
            // A method the whole function does not take, or OPTIONS: still the path's own methods, not the
            // function's (fuzz finding ST205).
            ("GET", "/api/manage/conversations", "POST"),
            (
                "OPTIONS",
                "/api/manage/conversations/team-1/members/alice",
                "PUT, DELETE",
            ),
            ("OPTIONS", "/api/notifications/read?userId=ada", "PUT"),
            ("POST", "/api/conversations?userId=ada", "GET"),
            ("DELETE", "/api/conversations/team-1/messages?userId=ada", "GET, POST"),
            ("POST", "/api/sync?userId=ada", "GET"),
            ("TRACE", "/outbox", "POST"),
            ("GET", "/outbox", "POST"),
        ] {
            let response = warp::test::request()
                .method(method)
                .path(path)
                .reply(&app.routes())
                .await;
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(response.headers()[header::ALLOW], allow, "{method} {path}");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["code"], "MethodNotAllowed", "{method} {path}");
        }
    }

    #[tokio::test]
    async fn sync_serves_only_its_own_path() {
        let app = App::new(Settings::from_env(&function_key_env()).unwrap()).unwrap();
        for method in ["GET", "POST"] {
            let response = warp::test::request()
                .method(method)
                .path("/api/sync/more?userId=ada")
                .reply(&app.routes())
                .await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method}");
        }
    }

    #[tokio::test]
    async fn a_member_user_id_past_256_characters_is_refused() {
        let app = App::new(Settings::from_env(&function_key_env()).unwrap()).unwrap();
        let path = format!("/api/manage/conversations/team-1/members/{}", "0".repeat(257));
        for method in ["PUT", "DELETE"] {
            let response = warp::test::request()
                .method(method)
                .path(&path)
                .reply(&app.routes())
                .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{method}");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["field"], "userId", "{method}");
        }
    }

    #[tokio::test]
    async fn a_blank_x_user_id_header_is_refused_even_beside_a_user_id() {
        let app = App::new(Settings::from_env(&function_key_env()).unwrap()).unwrap();
        for value in ["", "  "] {
            let response = warp::test::request()
                .path("/api/conversations?userId=ada")
                .header("x-user-id", value)
                .reply(&app.routes())
                .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{value:?}");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["field"], "X-User-Id");
        }
    }

    #[test]
    fn a_plain_http_endpoint_off_loopback_warns_once_at_start() {
        let warnings = |endpoint: &str| {
            let (captured, _guard) = test_support::capture_logs(crate::telemetry::TextFields);
            let connection = format!("Endpoint={endpoint};AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;");
            let env = env("anonymous", "appservice").with("WebPubSubConnectionString", connection);
            App::new(Settings::from_env(&env).unwrap()).unwrap();
            captured
                .text()
                .lines()
                .filter(|line| line.contains("plain http"))
                .count()
        };
        assert_eq!(warnings("http://pubsub.example.com"), 1);
        assert_eq!(warnings("http://10.0.0.7:8080"), 1);
        assert_eq!(warnings("https://pubsub.example.com"), 0);
        for loopback in ["http://localhost:8080", "http://127.0.0.1", "http://[::1]:8080"] {
            assert_eq!(warnings(loopback), 0, "{loopback}");
        }
    }

    #[test]
    fn the_auth_settings_are_read_once_for_every_function_that_uses_them() {
        let error = Settings::from_env(&env("jwt", "appservice")).unwrap_err();
        assert_eq!(error.setting, "AuthJwtIssuer");
        assert!(error.problem.contains("NegotiateIdentity=jwt"), "{error}");
        let error = Settings::from_env(&env("anonymous", "jwt")).unwrap_err();
        assert_eq!(error.setting, "AuthJwtIssuer");
        assert!(error.problem.contains("PublishTrust=jwt"), "{error}");
        let error = Settings::from_env(&env("jwt", "jwt")).unwrap_err();
        assert!(
            error.problem.contains("NegotiateIdentity=jwt and PublishTrust=jwt"),
            "{error}"
        );
        let none = Settings::from_env(&env("anonymous", "appservice")).unwrap();
        assert!(none.jwt.is_none());
        let both = env("jwt", "jwt")
            .with("AuthJwtIssuer", "https://issuer.example")
            .with("AuthJwtAudience", "api://app")
            .with("AuthJwtSecret", "server-test-secret-at-least-32-bytes-long!");
        let settings = Settings::from_env(&both).unwrap();
        assert!(settings.jwt.is_some());
        assert!(App::new(settings).is_ok());
    }

    /// #18: without a key and without the Entra check, the app starts only when
    /// `EventsAllowUnauthenticated=true` says so (the rule is checked by `App::new`, the path the binary takes).
    #[test]
    fn keyless_events_without_the_entra_check_start_only_when_allowed() {
        let keyless = Env::from_pairs([
            ("WebPubSubConnectionString__serviceUri", "http://127.0.0.1:9"),
            ("WebPubSubConnectionString__credential", "managedidentity"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/identity/token"),
            ("IDENTITY_HEADER", "header"),
            ("WebPubSubHub", "chat"),
            (negotiate::IDENTITY_SETTING, "anonymous"),
            (publish::TRUST_SETTING, "functionkey"),
        ]);
        let refused = App::new(Settings::from_env(&keyless).unwrap())
            .err()
            .expect("refused at start");
        assert!(
            refused.to_string().contains("EventsAllowUnauthenticated"),
            "{refused:#}"
        );
        let allowed = keyless.with("EventsAllowUnauthenticated", "true");
        App::new(Settings::from_env(&allowed).unwrap()).unwrap();
    }
}
