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
//! - token refresh, with the real `handler` binary and the emulator's identity tokens shortened
//!   (`--identity-token-lifetime-secs`): publishes keep working across the expiry of the first token, the
//!   endpoint is asked again (the emulator counts what it served), an expired token is refused by the
//!   emulator (so a handler reusing one would fail), a token is cached until 5 minutes before it expires,
//!   and concurrent callers share one refresh.
//!
//! Publish of every action in both modes: `identity_publish.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::CloudEvent;
use webpubsub_control::Env;
use webpubsub_control::dev::{self, DevOptions};
use webpubsub_emulator::identity::{IdentityAuthority, SERVICE_CLIENT_ID, TENANT_ID};
use webpubsub_emulator::{EmulatorConfig, IdentityModeConfig};
use webpubsub_protocol::cloudevents as ce;

use crate::standin::HandlerProcess;
use crate::support::{JSON_SUBPROTOCOL, JsonClient, RunningEmulator, http, open_socket, serve_emulator, start_handler};

const HEADER: &str = "e2e-identity-header-0123456789";
const AUDIENCE: &str = "api://webpubsub-control-e2e";

/// An emulator in identity mode (local auth disabled, upstream bearer for [`AUDIENCE`]) on 127.0.0.1:0.
pub(crate) struct Emulator {
    pub(crate) addr: std::net::SocketAddr,
    running: RunningEmulator,
}

impl Emulator {
    pub(crate) async fn start() -> Self {
        Self::start_with(IdentityModeConfig::new(HEADER)).await
    }

    /// With identity tokens that live `lifetime` (the `--identity-token-lifetime-secs` option).
    async fn with_token_lifetime(lifetime: Duration) -> Self {
        Self::start_with(IdentityModeConfig {
            token_ttl: lifetime,
            ..IdentityModeConfig::new(HEADER)
        })
        .await
    }

    async fn start_with(mode: IdentityModeConfig) -> Self {
        let config = EmulatorConfig {
            identity: Some(IdentityModeConfig {
                disable_local_auth: true,
                upstream_audience: Some(AUDIENCE.into()),
                ..mode
            }),
            ..EmulatorConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = serve_emulator(listener, config);
        Self {
            addr: running.addr,
            running,
        }
    }

    fn authority(&self) -> &IdentityAuthority {
        self.running.service.identity().expect("identity mode")
    }

    /// Its own identity endpoint, as `IDENTITY_ENDPOINT`.
    pub(crate) fn identity_endpoint(&self) -> String {
        format!("http://{}/identity/token", self.addr)
    }
}

/// The handler's keyless settings against `emulator` (identity endpoint at `identity_endpoint`).
fn keyless_values(emulator: std::net::SocketAddr, identity_endpoint: &str) -> BTreeMap<String, String> {
    [
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
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

pub(crate) fn keyless_env(emulator: std::net::SocketAddr, identity_endpoint: &str) -> Env {
    Env::from_pairs(keyless_values(emulator, identity_endpoint))
}

/// Negotiates at `negotiate_url` and connects with the JSON subprotocol: the client, its connection id (from
/// the `connected` frame, which must name `user`) and the negotiated URL.
pub(crate) async fn connect_negotiated(negotiate_url: &str, user: &str) -> (JsonClient, String, String) {
    let response = http().get(negotiate_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "negotiate for {user}");
    let negotiated: Value = response.json().await.unwrap();
    assert_eq!(negotiated["userId"], user, "{negotiated}");
    assert!(negotiated["expiresOn"].is_string(), "{negotiated}");
    let url = negotiated["url"].as_str().expect("a url").to_owned();
    let (socket, _) = open_socket(&url, &[JSON_SUBPROTOCOL]).await.expect("connect accepted");
    let mut client = JsonClient::new(socket);
    let connected = client.next_in_order().await;
    assert_eq!(
        (connected["event"].as_str(), connected["userId"].as_str()),
        (Some("connected"), Some(user)),
        "{connected}"
    );
    let connection_id = connected["connectionId"].as_str().expect("a connection id").to_owned();
    (client, connection_id, url)
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

    // The connect event passed the Entra bearer check, or the handshake would have been refused.
    let (mut alice, _, url) = connect_negotiated(&running.url("/api/negotiate?userId=alice"), "alice").await;
    assert!(url.starts_with(&format!(
        "ws://{}/client/hubs/chat?access_token=",
        running.emulator_addr()
    )));

    // Joining a room makes the handler call the emulator's REST API with its identity token.
    let joined = alice.event("join", json!({"room": "lobby"})).await;
    assert_eq!(joined["success"], true, "{joined}");

    let published = http()
        .post(running.url("/api/publish"))
        .json(&json!({"room": "lobby", "message": "keyless hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    let message = alice
        .next_where(|f| f["type"] == "message" && f["data"] == "keyless hello")
        .await;
    assert_eq!(message["from"], "server");
    running.shutdown().await;
}

/// A `connected` event as the service posts it, with `authorization` if given.
async fn post_event(handler: &crate::support::RunningHandler, authorization: Option<String>) -> reqwest::Response {
    let event = CloudEvent::new("azure.webpubsub.sys.connected")
        .connection("chat", "c1")
        .set(ce::WEBHOOK_REQUEST_ORIGIN, "127.0.0.1");
    let mut request = http()
        .post(handler.url("/api/events"))
        .headers(event.header_map())
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

// ----- token refresh at expiry, with the real handler binary -----

/// The handler binary in keyless mode against `emulator`; its base URL once it answers.
async fn keyless_handler_process(emulator: &Emulator) -> (HandlerProcess, String) {
    let mut process = HandlerProcess::spawn(&keyless_values(emulator.addr, &emulator.identity_endpoint()));
    process.wait_ready().await;
    let base = format!("http://127.0.0.1:{}", process.port);
    (process, base)
}

/// `sendToUser` `ada` through the handler at `base`; it must succeed.
async fn publish_to_ada(base: &str, data: &str) {
    let response = http()
        .post(format!("{base}/api/publish"))
        .json(&json!({"actionName": "sendToUser", "userId": "ada", "data": data}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 200, "{data}: {}", response.text().await.unwrap());
}

/// `count` publishes to `ada` at once, each of which must succeed.
async fn concurrent_publishes_to_ada(base: &str, count: usize) {
    let calls: Vec<_> = (0..count)
        .map(|n| {
            let base = base.to_owned();
            tokio::spawn(async move { publish_to_ada(&base, &format!("concurrent {n}")).await })
        })
        .collect();
    for call in calls {
        call.await.expect("the publish succeeded");
    }
}

/// A token from the emulator's identity endpoint, as the handler gets one: `(token, expires_on)`.
async fn identity_token(emulator: &Emulator) -> (String, u64) {
    let url = format!(
        "{}?resource=https://webpubsub.azure.com&api-version=2019-08-01",
        emulator.identity_endpoint()
    );
    let response = http()
        .get(url)
        .header("X-IDENTITY-HEADER", HEADER)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    let expires_on = answer["expires_on"].as_str().unwrap().parse().unwrap();
    (answer["access_token"].as_str().unwrap().to_owned(), expires_on)
}

/// Tokens that live 2 s: under the handler's 5-minute margin, so it must fetch a fresh one before every
/// use. Publishes before and after the first token's expiry all work, the endpoint was asked once per use,
/// and the emulator refuses an expired token of the same kind: had the handler reused its first token after
/// the wait, the publishes after it would have failed (502).
#[tokio::test]
async fn publishes_keep_working_across_token_expiry_and_no_expired_token_is_sent() {
    let emulator = Emulator::with_token_lifetime(Duration::from_secs(2)).await;
    let authority = emulator.authority();
    let (_process, base) = keyless_handler_process(&emulator).await;
    let (mut ada, _, _) = connect_negotiated(&format!("{base}/api/negotiate?userId=ada"), "ada").await;
    // The handler's first token was fetched for negotiate, before this one: both expire by `expires_on`.
    let (first_token, expires_on) = identity_token(&emulator).await;
    publish_to_ada(&base, "before expiry").await;
    ada.receives(json!("before expiry")).await;

    let waited = Instant::now();
    while webpubsub_protocol::jwt::unix_now() <= expires_on {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the token expires within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let served = authority.tokens_served();
    for data in ["after expiry", "and again"] {
        publish_to_ada(&base, data).await;
        ada.receives(json!(data)).await;
    }
    assert_eq!(
        authority.tokens_served(),
        served + 2,
        "a token with under 5 minutes left is refreshed before each use"
    );

    let refused = http()
        .post(format!(
            "http://{}/api/hubs/chat/:send?api-version=2024-12-01",
            emulator.addr
        ))
        .bearer_auth(&first_token)
        .header("content-type", "text/plain")
        .body("sent with an expired token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the emulator refuses an expired identity token");
    let body = refused.text().await.unwrap();
    assert!(body.contains("expired"), "{body}");
}

/// Tokens that live 308 s: the handler may use one for 8 s (until 5 minutes are left), then refreshes it
/// before use. Concurrent calls with no usable token — at start and at the refresh — make one identity call.
#[tokio::test]
async fn a_token_is_cached_until_five_minutes_are_left_and_concurrent_callers_share_one_refresh() {
    const LIFETIME: u64 = 308;
    let emulator = Emulator::with_token_lifetime(Duration::from_secs(LIFETIME)).await;
    let authority = emulator.authority();
    let (_process, base) = keyless_handler_process(&emulator).await;
    let at_start = authority.tokens_served();

    let usable_secs = LIFETIME - 300;
    let before = webpubsub_protocol::jwt::unix_now();
    concurrent_publishes_to_ada(&base, 8).await;
    let after = webpubsub_protocol::jwt::unix_now();
    assert_eq!(
        authority.tokens_served(),
        at_start + 1,
        "8 concurrent first calls, one identity call"
    );
    let (mut ada, _, _) = connect_negotiated(&format!("{base}/api/negotiate?userId=ada"), "ada").await;
    publish_to_ada(&base, "cached").await;
    ada.receives(json!("cached")).await;
    assert!(
        webpubsub_protocol::jwt::unix_now() < before + usable_secs,
        "the cached phase ran inside the token's usable window (machine too slow)"
    );
    assert_eq!(
        authority.tokens_served(),
        at_start + 1,
        "negotiate and publish used the cached token"
    );

    // Past the window: under 5 minutes left, so the next callers refresh it, once between them.
    while webpubsub_protocol::jwt::unix_now() < after + usable_secs {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    concurrent_publishes_to_ada(&base, 8).await;
    assert_eq!(
        authority.tokens_served(),
        at_start + 2,
        "one refresh for 8 concurrent callers"
    );
    publish_to_ada(&base, "refreshed").await;
    assert_eq!(authority.tokens_served(), at_start + 2, "the refreshed token is cached");
    for _ in 0..8 {
        let frame = ada.next_in_order().await;
        assert!(frame["data"].as_str().unwrap().starts_with("concurrent "), "{frame}");
    }
    ada.receives(json!("refreshed")).await;
}
