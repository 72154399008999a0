//! Identity (keyless) mode end to end (#18), real sockets only: the handler with
//! `WebPubSubConnectionString__serviceUri` and a managed identity from the emulator's App Service-shaped
//! identity endpoint, the emulator refusing access keys.
//!
//! - `handler dev --identity`: negotiate (via `:generateToken`) → a real WebSocket client connects (its
//!   `connect` event passes the Entra bearer check), joins a room through the handler's REST calls, and a
//!   publish reaches it.
//! - events: accepted with the service's bearer; 401 with a missing, expired, wrong-audience, wrong-tenant
//!   or other-client token.
//! - the identity endpoint down: negotiate and publish answer 503 with `Retry-After` within 10 s, and no
//!   secret in the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webpubsub_control::Env;
use webpubsub_control::dev::{self, DevOptions};
use webpubsub_emulator::identity::{IdentityAuthority, SERVICE_CLIENT_ID, TENANT_ID};
use webpubsub_emulator::{EmulatorConfig, IdentityModeConfig, Service};

use crate::support::{Socket, http, next_json, start_handler};

const HEADER: &str = "e2e-identity-header-0123456789";
const AUDIENCE: &str = "api://webpubsub-control-e2e";
const JSON: &str = "json.webpubsub.azure.v1";

/// An emulator in identity mode (local auth disabled, upstream bearer for [`AUDIENCE`]) on 127.0.0.1:0.
struct Emulator {
    addr: std::net::SocketAddr,
    service: Arc<Service>,
    _stop: oneshot::Sender<()>,
}

impl Emulator {
    async fn start() -> Self {
        let config = EmulatorConfig {
            identity: Some(IdentityModeConfig {
                disable_local_auth: true,
                upstream_audience: Some(AUDIENCE.into()),
                ..IdentityModeConfig::new(HEADER)
            }),
            ..EmulatorConfig::default()
        };
        let service = Service::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(webpubsub_emulator::serve(listener, service.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            service,
            _stop: stop,
        }
    }

    fn authority(&self) -> &IdentityAuthority {
        self.service.identity().expect("identity mode")
    }
}

/// The handler's keyless settings against `emulator` (identity endpoint at `identity_endpoint`).
fn keyless_env(emulator: std::net::SocketAddr, identity_endpoint: &str) -> Env {
    Env::from_pairs([
        ("WebPubSubConnectionString__serviceUri", format!("http://{emulator}")),
        ("WebPubSubConnectionString__credential", "managedidentity".into()),
        ("IDENTITY_ENDPOINT", identity_endpoint.to_owned()),
        ("IDENTITY_HEADER", HEADER.into()),
        ("WebPubSubHub", "chat".into()),
        ("NegotiateIdentity", "anonymous".into()),
        ("PublishTrust", "functionkey".into()),
        ("EventsEntraAudience", AUDIENCE.into()),
        ("EventsEntraTenantId", TENANT_ID.into()),
        ("EventsEntraAllowedClientIds", SERVICE_CLIENT_ID.into()),
        ("EventsEntraJwksUrl", format!("http://{emulator}/identity/keys")),
    ])
}

#[tokio::test]
async fn dev_identity_runs_the_whole_loop_keyless() {
    let options = DevOptions {
        handler_port: 0,
        emulator_port: 0,
        identity: true,
        ..DevOptions::default()
    };
    let running = dev::start(options).await.expect("dev --identity starts");
    assert!(running.banner().contains("KEYLESS"), "{}", running.banner());

    let negotiated: Value = http()
        .get(running.url("/api/negotiate?userId=alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = negotiated["url"].as_str().expect("a url");
    assert!(url.starts_with(&format!(
        "ws://{}/client/hubs/chat?access_token=",
        running.emulator_addr()
    )));
    assert_eq!(negotiated["userId"], "alice");
    assert!(negotiated["expiresOn"].is_string());

    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", JSON.parse().unwrap());
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")
        .expect("connect accepted: the connect event passed the Entra bearer check");
    let connected = next_json(&mut socket).await;
    assert_eq!(
        (connected["event"].as_str(), connected["userId"].as_str()),
        (Some("connected"), Some("alice"))
    );

    // Joining a room makes the handler call the emulator's REST API with its identity token.
    send(
        &mut socket,
        json!({"type": "event", "event": "join", "dataType": "json", "data": {"room": "lobby"}, "ackId": 1}),
    )
    .await;
    let ack = next_where(&mut socket, |f| f["type"] == "ack").await;
    assert_eq!(ack["success"], true, "{ack}");

    let published = http()
        .post(running.url("/api/publish"))
        .json(&json!({"room": "lobby", "message": "keyless hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    let message = next_where(&mut socket, |f| f["type"] == "message" && f["data"] == "keyless hello").await;
    assert_eq!(message["from"], "server");
    running.shutdown().await;
}

async fn send(socket: &mut Socket, frame: Value) {
    use futures_util::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(frame.to_string()))
        .await
        .unwrap();
}

async fn next_where(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..16 {
        let frame = next_json(socket).await;
        if wanted(&frame) {
            return frame;
        }
    }
    panic!("no wanted frame among 16");
}

/// A `connected` event as the service posts it, with `authorization` if given.
async fn post_event(handler: &crate::support::RunningHandler, authorization: Option<String>) -> reqwest::Response {
    let mut request = http()
        .post(handler.url("/api/events"))
        .header("WebHook-Request-Origin", "127.0.0.1")
        .header("ce-specversion", "1.0")
        .header("ce-type", "azure.webpubsub.sys.connected")
        .header("ce-eventName", "connected")
        .header("ce-id", "1")
        .header("ce-source", "/hubs/chat/client/c1")
        .header("ce-hub", "chat")
        .header("ce-connectionId", "c1")
        .header("ce-userId", "alice")
        .header("content-type", "application/json")
        .body("{}");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn events_need_the_service_identitys_bearer() {
    let emulator = Emulator::start().await;
    let endpoint = format!("http://{}/identity/token", emulator.addr);
    let handler = start_handler(keyless_env(emulator.addr, &endpoint)).await;
    let authority = emulator.authority();
    let now = webpubsub_protocol::jwt::unix_now();
    let claims = |aud: &str, tid: &str, appid: &str, exp: u64| {
        json!({"aud": aud, "iss": format!("https://sts.windows.net/{tid}/"), "ver": "1.0", "tid": tid,
               "appid": appid, "iat": now - 7200, "nbf": now - 7200, "exp": exp})
    };
    let bearer = |token: String| Some(format!("Bearer {token}"));

    let accepted = post_event(&handler, bearer(authority.sign_upstream_bearer(AUDIENCE))).await;
    assert!(accepted.status().is_success(), "{}", accepted.status());

    let refused = [
        ("missing", None),
        (
            "expired",
            bearer(authority.sign_claims(&claims(AUDIENCE, TENANT_ID, SERVICE_CLIENT_ID, now - 3600))),
        ),
        (
            "wrong audience",
            bearer(authority.sign_upstream_bearer("api://someone-else")),
        ),
        (
            "wrong tenant",
            bearer(authority.sign_claims(&claims(AUDIENCE, "other-tenant", SERVICE_CLIENT_ID, now + 600))),
        ),
        (
            "other client",
            bearer(authority.mint_access_token(AUDIENCE, "another-app-of-the-tenant").0),
        ),
    ];
    for (case, authorization) in refused {
        let response = post_event(&handler, authorization).await;
        assert_eq!(response.status(), 401, "{case}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{case}: {body}"
        );
    }
}

#[tokio::test]
async fn identity_endpoint_down_is_503_with_retry_after_in_time_and_no_secret() {
    let emulator = Emulator::start().await;
    // Nothing listens on port 9: the identity endpoint is down.
    let handler = start_handler(keyless_env(emulator.addr, "http://127.0.0.1:9/identity/token")).await;
    for (method, path, body) in [
        ("GET", "/api/negotiate?userId=alice", None),
        ("POST", "/api/publish", Some(json!({"room": "lobby", "message": "hi"}))),
    ] {
        let started = Instant::now();
        let mut request = http().request(method.parse().unwrap(), handler.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(11),
            "{path}: {:?}",
            started.elapsed()
        );
        assert_eq!(response.status(), 503, "{path}");
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1, "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(HEADER), "{path}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["code"], "IdentityUnavailable", "{path}: {body}");
    }
}

#[tokio::test]
async fn the_emulator_refuses_access_keys_when_local_auth_is_disabled() {
    let emulator = Emulator::start().await;
    let handler = start_handler(
        crate::support::base_env()
            .with(
                "WebPubSubConnectionString",
                webpubsub_emulator::connection_string(emulator.addr, webpubsub_emulator::DEV_ACCESS_KEY),
            )
            .with("EventsAllowUnauthenticated", "false"),
    )
    .await;
    let response = http()
        .post(handler.url("/api/publish"))
        .json(&json!({"room": "lobby", "message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502, "key-mode REST is refused (401 upstream)");
}
