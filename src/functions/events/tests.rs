//! Route-level tests of `events`: whole requests through the warp filter (no sockets), one per behaviour and
//! per failure mode. End-to-end runs through the emulator live in `tests/e2e/events.rs`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};
use warp::http::{HeaderValue, StatusCode};
use warp::test::RequestBuilder;

use super::*;
use crate::config::Env;
use crate::webpubsub::{AccessKey, signature};

const PRIMARY_KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
const SECONDARY_KEY: &str = "secondary-key-ZYXWVUTSRQPONMLKJIHGFEDCBA987654";
/// The message of the one log line each event leaves.
const LOG_MESSAGE: &str = "Received Web PubSub upstream callback";
const CONNECTION_ID: &str = "0f9c97a2f0bf4706afe87a14e0797b11";
/// Known answer (Python `hmac`): HMAC-SHA256(PRIMARY_KEY, CONNECTION_ID).
const PRIMARY_SIGNATURE: &str = "sha256=8805d739a12d46f22bcb15382a8c1c2bf38ae8f04566017bd613d5ef47cafe2c";
/// Known answer (Python `hmac`): HMAC-SHA256(SECONDARY_KEY, CONNECTION_ID).
const SECONDARY_SIGNATURE: &str = "sha256=6b1abdc7c29b31556296c96e070519dead1d7fffb439ad673711b1de5fcbb243";

fn env() -> Env {
    Env::from_pairs([
        (
            "WebPubSubConnectionString",
            format!("Endpoint=https://contoso.webpubsub.azure.com;AccessKey={PRIMARY_KEY};Version=1.0;"),
        ),
        (
            "WebPubSubSecondaryConnectionString",
            format!("Endpoint=http://127.0.0.1;Port=8080;AccessKey={SECONDARY_KEY};"),
        ),
        ("WebPubSubHub", "chat".to_owned()),
    ])
}

/// The routes as the server mounts them: rejections recovered into JSON errors.
fn route_with(env: Env) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let (service, settings) = settings_of(&env);
    let builtin = Builtin::from_parts(&service, &settings).expect("built-in handler builds");
    recovered(State::with_handler(&settings, &service, Arc::new(builtin)).unwrap())
}

fn route_with_handler(
    env: Env,
    handler: Arc<dyn EventHandler>,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let (service, settings) = settings_of(&env);
    recovered(State::with_handler(&settings, &service, handler).unwrap())
}

/// The service's and this function's settings only, so other functions' settings never matter here.
fn settings_of(env: &Env) -> (ServiceSettings, Settings) {
    let service = ServiceSettings::from_env(env).expect("valid service settings");
    (service, Settings::from_env(env).expect("valid events settings"))
}

fn recovered(state: State) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    routes(Arc::new(state)).recover(crate::error::recover).unify()
}

/// The headers the service sends with an event of `event_type` from [`CONNECTION_ID`], signed with the
/// primary key (the known answer, so the builder's signing is not what is under test here).
fn service_event(event_type: &str) -> test_support::CloudEvent {
    test_support::CloudEvent::new(event_type)
        .connection("chat", CONNECTION_ID)
        .set("ce-id", "7")
        .set("ce-signature", PRIMARY_SIGNATURE)
}

/// A POST as the service sends it, without the headers named in `skip`.
fn event_without(event_type: &str, skip: &[&str]) -> RequestBuilder {
    service_event(event_type).without(skip).headers().iter().fold(
        warp::test::request().method("POST").path("/api/events"),
        |request, (name, value)| request.header(*name, value),
    )
}

/// A POST as the service sends it for `event_type`.
fn event(event_type: &str) -> RequestBuilder {
    event_without(event_type, &[])
}

fn connect_event(body: Value) -> RequestBuilder {
    event("azure.webpubsub.sys.connect")
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
}

fn json_of(response: &warp::http::Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or_else(|_| panic!("JSON body, got {:?}", response.body()))
}

// ---- abuse protection ----

fn options(origin: Option<&str>) -> RequestBuilder {
    let request = warp::test::request()
        .method("OPTIONS")
        .path("/api/events")
        .header("ce-awpsversion", "1.0");
    match origin {
        Some(origin) => request.header("WebHook-Request-Origin", origin),
        None => request,
    }
}

#[tokio::test]
async fn abuse_protection_allows_the_service_hosts() {
    let route = route_with(env());
    for origin in [
        "contoso.webpubsub.azure.com",
        "Contoso.WebPubSub.Azure.com",
        "127.0.0.1",
        "127.0.0.1:8080",
    ] {
        let response = options(Some(origin)).reply(&route).await;
        assert_eq!(response.status(), StatusCode::OK, "{origin}");
        assert_eq!(response.headers()["webhook-allowed-origin"], origin);
    }
}

#[tokio::test]
async fn abuse_protection_refuses_other_or_missing_origins() {
    let route = route_with(env());
    for origin in [Some("evil.example.com"), Some("*"), Some(""), None] {
        let response = options(origin).reply(&route).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{origin:?}");
        assert!(response.headers().get("webhook-allowed-origin").is_none());
        let body = json_of(&response);
        assert!(
            ["OriginNotAllowed", "MissingHeader"].contains(&body["code"].as_str().unwrap()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn abuse_protection_accepts_configured_extra_origins() {
    let route = route_with(env().with("EventsAllowedOrigins", "tunnel.example.com"));
    let response = options(Some("evil.example.com, tunnel.example.com"))
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["webhook-allowed-origin"], "tunnel.example.com");
}

#[tokio::test]
async fn several_origin_header_lines_are_read_together() {
    let (service, settings) = settings_of(&env());
    let state = State::new(&settings, &service).unwrap();
    let mut headers = HeaderMap::new();
    headers.append("webhook-request-origin", HeaderValue::from_static("evil.example.com"));
    headers.append(
        "webhook-request-origin",
        HeaderValue::from_static("other.example.com, contoso.webpubsub.azure.com"),
    );
    let joined = requested_origins(&headers);
    assert_eq!(
        joined.as_deref(),
        Some("evil.example.com,other.example.com, contoso.webpubsub.azure.com")
    );
    let response = reply::abuse_protection(&state, joined.as_deref());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["webhook-allowed-origin"],
        "contoso.webpubsub.azure.com"
    );
    assert_eq!(requested_origins(&HeaderMap::new()), None);
}

// ---- headers, signature, hub, body ----

#[tokio::test]
async fn each_required_header_missing_is_a_400_naming_it() {
    let route = route_with(env());
    for header in [
        "ce-specversion",
        "ce-type",
        "ce-eventName",
        "ce-id",
        "ce-source",
        "ce-hub",
        "ce-connectionId",
    ] {
        let request = event_without("azure.webpubsub.sys.connected", &[header]).body("{}");
        let response = request.reply(&route).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{header}");
        let body = json_of(&response);
        assert_eq!(body["code"], "MissingHeader", "{header}");
        assert_eq!(body["header"], header.to_ascii_lowercase(), "{header}");
    }
}

#[tokio::test]
async fn a_missing_signature_is_401() {
    let route = route_with(env());
    let response = event_without("azure.webpubsub.sys.connected", &["ce-signature"])
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&response)["code"], "MissingSignature");
    let blank = event("azure.webpubsub.sys.connected")
        .header("ce-signature", " ")
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(blank.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_wrong_signature_is_401() {
    let route = route_with(env());
    let forged = signature::sign(&AccessKey::new("not-the-key-0123456789").unwrap(), CONNECTION_ID);
    let response = event("azure.webpubsub.sys.connected")
        .header("ce-signature", forged)
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&response)["code"], "InvalidSignature");
    // A valid signature for another connection does not transfer.
    let response = event("azure.webpubsub.sys.connected")
        .header("ce-connectionId", "other")
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn key_rotation_accepts_a_request_signed_only_with_the_secondary_key() {
    let route = route_with(env());
    let response = event("azure.webpubsub.sys.connected")
        .header("ce-signature", SECONDARY_SIGNATURE)
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let both = format!("{PRIMARY_SIGNATURE},{SECONDARY_SIGNATURE}");
    let response = event("azure.webpubsub.sys.connected")
        .header("ce-signature", both)
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn without_a_secondary_key_its_signature_is_refused() {
    let env = Env::from_pairs([
        (
            "WebPubSubConnectionString",
            format!("Endpoint=https://contoso.webpubsub.azure.com;AccessKey={PRIMARY_KEY};"),
        ),
        ("WebPubSubHub", "chat".to_owned()),
    ]);
    let response = event("azure.webpubsub.sys.connected")
        .header("ce-signature", SECONDARY_SIGNATURE)
        .body("{}")
        .reply(&route_with(env))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hubs_are_checked_case_insensitively() {
    let route = route_with(env().with("WebPubSubAllowedHubs", "news"));
    for hub in ["CHAT", "News"] {
        let response = event("azure.webpubsub.sys.connected")
            .header("ce-hub", hub)
            .body("{}")
            .reply(&route)
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{hub}");
    }
    let response = event("azure.webpubsub.sys.connected")
        .header("ce-hub", "other")
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["code"], "HubNotServed");
}

#[tokio::test]
async fn unknown_event_types_are_400() {
    let route = route_with(env());
    let response = event("azure.webpubsub.sys.joined").body("{}").reply(&route).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["code"], "UnknownEventType");
}

#[tokio::test]
async fn the_signature_is_checked_before_the_body_is_read() {
    let route = route_with(env().with("EventsMaxBodyBytes", "4096"));
    let big = "x".repeat(10_000);
    let unsigned = event("azure.webpubsub.user.message")
        .header("ce-signature", "sha256=00")
        .body(big.clone())
        .reply(&route)
        .await;
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let signed = event("azure.webpubsub.user.message").body(big).reply(&route).await;
    assert_eq!(signed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&signed)["code"], "PayloadTooLarge");
}

#[tokio::test]
async fn other_methods_are_refused() {
    let route = route_with(env());
    let response = warp::test::request()
        .method("GET")
        .path("/api/events")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

// ---- connect ----

#[tokio::test]
async fn connect_prefers_the_reliable_json_subprotocol() {
    let route = route_with(env());
    let offered = json!({"subprotocols": ["json.webpubsub.azure.v1", "json.reliable.webpubsub.azure.v1"], "claims": {"sub": ["alice"]}});
    let response = connect_event(offered).reply(&route).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        json_of(&response),
        json!({"subprotocol": "json.reliable.webpubsub.azure.v1"})
    );
}

#[tokio::test]
async fn connect_follows_a_configured_preference_list() {
    let route = route_with(env().with(
        "EventsSubprotocols",
        "json.webpubsub.azure.v1,json.reliable.webpubsub.azure.v1",
    ));
    let offered = json!({"subprotocols": ["json.reliable.webpubsub.azure.v1", "json.webpubsub.azure.v1"]});
    let response = connect_event(offered).reply(&route).await;
    assert_eq!(json_of(&response)["subprotocol"], "json.webpubsub.azure.v1");
}

#[tokio::test]
async fn connect_with_nothing_to_change_is_204() {
    let route = route_with(env());
    let response = connect_event(json!({"claims": {"sub": ["alice"]}, "query": {}, "headers": {}, "subprotocols": []}))
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.body().is_empty());
}

#[tokio::test]
async fn connect_refuses_offers_it_does_not_speak() {
    let route = route_with(env());
    let response = connect_event(json!({"subprotocols": ["protobuf.webpubsub.azure.v1"]}))
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["code"], "UnsupportedSubprotocol");
}

#[tokio::test]
async fn malformed_connect_bodies_are_400_json() {
    let route = route_with(env());
    for body in ["", "{", "[]", "{\"claims\": [1]}", "{\"claims\": 5}"] {
        let response = event("azure.webpubsub.sys.connect").body(body).reply(&route).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(json_of(&response)["code"], "InvalidJson", "{body:?}");
    }
}

#[tokio::test]
async fn connect_adds_default_groups_and_roles_to_the_tokens() {
    let route = route_with(env().with("EventsDefaultGroups", "lobby,user-{userId}").with(
        "EventsDefaultRoles",
        "webpubsub.sendToGroup.user-{userId},webpubsub.joinLeaveGroups.{userId}.*",
    ));
    let response = connect_event(json!({
        "claims": {"sub": ["alice"], "role": ["webpubsub.joinLeaveGroup.lobby"], "webpubsub.group": ["news"]},
    }))
    .reply(&route)
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_of(&response),
        json!({
            "groups": ["news", "lobby", "user-alice"],
            "roles": ["webpubsub.joinLeaveGroup.lobby", "webpubsub.sendToGroup.user-alice", "webpubsub.joinLeaveGroups.alice.*"],
        })
    );
}

#[tokio::test]
async fn a_user_id_holding_the_separator_after_its_placeholder_gets_no_default_group() {
    // `inbox.{userId}.all` for `john.smith` would render `inbox.john.smith.all`, which `inbox.{userId}.*`
    // grants to user `john`: refused as a bad user id instead of rendered.
    let route = route_with(
        env()
            .with("EventsUserIdSource", "query:name")
            .with("EventsDefaultGroups", "inbox.{userId}.all"),
    );
    let connect_as = |name: &str| {
        event_without("azure.webpubsub.sys.connect", &["ce-userId"])
            .body(json!({"query": {"name": [name]}}).to_string())
    };
    let response = connect_as("john.smith").reply(&route).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["code"], "InvalidUserId");
    let response = connect_as("john").reply(&route).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(&response)["groups"], json!(["inbox.john.all"]));
}

#[tokio::test]
async fn user_ids_are_escaped_inside_wildcard_roles() {
    let route = route_with(
        env()
            .with("EventsUserIdSource", "query:name")
            .with("EventsDefaultRoles", "webpubsub.sendToGroups.{userId}.*"),
    );
    let response = event_without("azure.webpubsub.sys.connect", &["ce-userId"])
        .body(json!({"query": {"name": ["a*b"]}}).to_string())
        .reply(&route)
        .await;
    let body = json_of(&response);
    assert_eq!(body["userId"], "a*b");
    assert_eq!(body["roles"], json!(["webpubsub.sendToGroups.a\\*b.*"]));
}

#[tokio::test]
async fn a_configured_claim_overrides_the_token_subject() {
    let route = route_with(env().with("EventsUserIdSource", "claim:email"));
    let response = connect_event(json!({"claims": {"sub": ["alice"], "email": ["alice@example.com"]}}))
        .reply(&route)
        .await;
    assert_eq!(json_of(&response), json!({"userId": "alice@example.com"}));
    // Without the claim, the token's user stays (nothing to change → 204).
    let response = connect_event(json!({"claims": {"sub": ["alice"]}})).reply(&route).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_query_user_id_never_overrides_the_token() {
    let route = route_with(env().with("EventsUserIdSource", "query:user"));
    let response = connect_event(json!({"query": {"user": ["mallory"]}}))
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "the token's alice stays");
    let anonymous = event_without("azure.webpubsub.sys.connect", &["ce-userId"])
        .body(json!({"query": {"user": ["bob"]}}).to_string())
        .reply(&route)
        .await;
    assert_eq!(json_of(&anonymous), json!({"userId": "bob"}));
    let blank = event_without("azure.webpubsub.sys.connect", &["ce-userId"])
        .body(json!({"query": {"user": ["  "]}}).to_string())
        .reply(&route)
        .await;
    assert_eq!(blank.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&blank)["code"], "InvalidUserId");
}

#[tokio::test]
async fn a_required_user_id_is_enforced_with_401_and_a_reason() {
    let route = route_with(env().with("EventsRequireUserId", "true"));
    let response = event_without("azure.webpubsub.sys.connect", &["ce-userId"])
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = json_of(&response);
    assert_eq!(body["code"], "Unauthorized");
    assert_eq!(body["reason"], "UserIdRequired");
    let with_user = connect_event(json!({})).reply(&route).await;
    assert_eq!(with_user.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn mqtt_connect_rejections_use_mqtt_reason_codes() {
    let route = route_with(env().with("EventsRequireUserId", "true"));
    // 401 → not authorized, as the official handlers map it.
    for (version, code) in [(5, 135), (4, 5)] {
        let response = event_without("azure.webpubsub.sys.connect", &["ce-userId"])
            .header("ce-physicalConnectionId", "phys-1")
            .body(json!({"subprotocols": ["mqtt"], "mqtt": {"protocolVersion": version, "username": "u", "password": "cA=="}}).to_string())
            .reply(&route)
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = json_of(&response);
        assert_eq!(body["mqtt"]["code"], code, "{body}");
        assert!(body["mqtt"]["reason"].as_str().unwrap().contains("user id"));
    }
}

#[tokio::test]
async fn mqtt_connect_refusals_map_400_to_bad_user_name_or_password() {
    let route = route_with(env());
    for (version, code) in [(5, 134), (4, 4)] {
        let response = connect_event(json!({"claims": {"role": [""]}, "mqtt": {"protocolVersion": version}}))
            .reply(&route)
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json_of(&response)["mqtt"]["code"], code);
    }
}

#[tokio::test]
async fn bad_token_groups_and_roles_are_400_logged_at_warn() {
    let (captured, _guard) = test_support::capture_logs(crate::telemetry::TextFields);
    let route = route_with(env());
    let long = "g".repeat(2000);
    for (claims, code) in [
        (json!({"role": [""]}), "InvalidRole"),
        (
            json!({"role": ["webpubsub.sendToGroup.a,webpubsub.sendToGroup"]}),
            "InvalidRole",
        ),
        (json!({"webpubsub.group": ["  "]}), "InvalidGroup"),
        (json!({"webpubsub.group": [long]}), "InvalidGroup"),
        (json!({"webpubsub.group": ["room-1\u{0}"]}), "InvalidGroup"),
        (json!({"webpubsub.group": ["a\nb"]}), "InvalidGroup"),
    ] {
        let response = connect_event(json!({ "claims": claims })).reply(&route).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{claims}");
        assert_eq!(json_of(&response)["code"], code, "{claims}");
    }
    let log = captured.text();
    assert!(!log.contains("connect hook"), "{log}");
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(LOG_MESSAGE)).collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert!(
        lines
            .iter()
            .all(|line| line.contains("WARN") && line.contains("status=400")),
        "{log}"
    );
}

#[tokio::test]
async fn mqtt_user_events_carry_any_media_type_both_ways() {
    let route = route_with(env().with("EventsUserEventBehavior", "echo"));
    let response = event("azure.webpubsub.user.message")
        .header("ce-physicalConnectionId", "phys-1")
        .header("content-type", "image/png")
        .body(&b"\x89PNG"[..])
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.body().as_ref(), b"\x89PNG");
    let unbounded = event("azure.webpubsub.user.message")
        .header("ce-physicalConnectionId", "phys-1")
        .header("content-type", format!("image/{}", "x".repeat(300)))
        .body("x")
        .reply(&route)
        .await;
    assert_eq!(unbounded.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn group_joined_and_left_are_200_and_reach_the_handler() {
    struct Groups(Mutex<Vec<(String, String)>>);
    impl EventHandler for Groups {
        fn on_group_event<'a>(&'a self, event: &'a VerifiedEvent, group: &'a str) -> HookFuture<'a, ()> {
            self.0
                .lock()
                .unwrap()
                .push((event.kind().name().to_owned(), group.to_owned()));
            Box::pin(std::future::ready(()))
        }
    }
    let (captured, _guard) = test_support::capture_logs(crate::telemetry::TextFields);
    let groups = Arc::new(Groups(Mutex::new(Vec::new())));
    let route = route_with_handler(env(), groups.clone());
    for event_type in ["azure.webpubsub.sys.gp.joined", "azure.webpubsub.sys.gp.left"] {
        let name = event_type.trim_start_matches("azure.webpubsub.sys.");
        let response = event(event_type)
            .header("ce-eventName", name)
            .header("content-type", "application/json")
            .body(r#"{"group":"lobby"}"#)
            .reply(&route)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{event_type}");
    }
    assert_eq!(
        *groups.0.lock().unwrap(),
        [
            ("gp.joined".to_owned(), "lobby".to_owned()),
            ("gp.left".to_owned(), "lobby".to_owned())
        ]
    );
    let log = captured.text();
    assert!(log.contains("event_type=azure.webpubsub.sys.gp.joined"), "{log}");
    let malformed = event("azure.webpubsub.sys.gp.joined")
        .header("ce-eventName", "gp.joined")
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mqtt_clients_keep_their_subprotocol() {
    let route = route_with(env());
    let response = connect_event(json!({"subprotocols": ["mqtt"], "mqtt": {"protocolVersion": 5, "username": "u"}}))
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

// ---- connected / disconnected ----

#[tokio::test]
async fn connected_and_disconnected_are_204() {
    let route = route_with(env());
    assert_eq!(
        event("azure.webpubsub.sys.connected")
            .body("{}")
            .reply(&route)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        event("azure.webpubsub.sys.connected").reply(&route).await.status(),
        StatusCode::NO_CONTENT
    );
    let disconnected = event("azure.webpubsub.sys.disconnected")
        .body(r#"{"reason":"closed by client"}"#)
        .reply(&route)
        .await;
    assert_eq!(disconnected.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        event("azure.webpubsub.sys.disconnected").reply(&route).await.status(),
        StatusCode::NO_CONTENT
    );
    let malformed = event("azure.webpubsub.sys.disconnected").body("{").reply(&route).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

/// Log output captured on the current thread (tests run on a current-thread runtime).

#[tokio::test]
async fn each_event_leaves_one_structured_log_line_without_secrets() {
    let (captured, _guard) = test_support::capture_logs(crate::telemetry::TextFields);
    let route = route_with(env());

    event("azure.webpubsub.sys.connected").body("{}").reply(&route).await;
    event("azure.webpubsub.sys.disconnected")
        .body(r#"{"reason":"network lost"}"#)
        .reply(&route)
        .await;
    let log = captured.text();
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(LOG_MESSAGE)).collect();
    assert_eq!(lines.len(), 2, "{log}");
    for field in [
        "event_type=azure.webpubsub.sys.connected",
        "hub=chat",
        &format!("connection_id={CONNECTION_ID}"),
        "user_id=alice",
        "status=204",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
    assert!(
        lines[1].contains("event_type=azure.webpubsub.sys.disconnected"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("reason=network lost"), "{}", lines[1]);
    assert!(!log.contains(&PRIMARY_SIGNATURE[7..]), "signatures are never logged");
}

// ---- user events ----

#[tokio::test]
async fn user_events_default_to_204() {
    let route = route_with(env());
    let response = event("azure.webpubsub.user.message")
        .header("content-type", "text/plain")
        .body("hi")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn echo_returns_the_payload_with_its_data_type() {
    let route = route_with(env().with("EventsUserEventBehavior", "echo"));
    for (content_type, expected, body) in [
        ("text/plain", "text/plain; charset=utf-8", &b"hello"[..]),
        ("application/json", "application/json", br#"{"a":1}"#),
        ("application/octet-stream", "application/octet-stream", b"\x00\x01\xff"),
    ] {
        let response = event("azure.webpubsub.user.message")
            .header("content-type", content_type)
            .body(body)
            .reply(&route)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
        assert_eq!(response.headers()["content-type"], expected);
        assert_eq!(response.body().as_ref(), body);
    }
    let empty = event("azure.webpubsub.user.message")
        .header("content-type", "text/plain")
        .reply(&route)
        .await;
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn unsupported_user_event_content_types_are_415() {
    let route = route_with(env().with("EventsUserEventBehavior", "echo"));
    let response = event("azure.webpubsub.user.message")
        .header("content-type", "image/png")
        .body("x")
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json_of(&response)["code"], "UnsupportedContentType");
}

#[tokio::test]
async fn broadcast_records_the_connection_groups_as_rooms() {
    let route = route_with(
        env()
            .with("EventsUserEventBehavior", "broadcast")
            .with("EventsDefaultGroups", "lobby"),
    );
    let response = connect_event(json!({"claims": {"sub": ["alice"]}})).reply(&route).await;
    assert_eq!(response.status(), StatusCode::OK);
    let state = ConnectionState::decode(response.headers()["ce-connectionstate"].to_str().unwrap()).unwrap();
    assert_eq!(builtin::rooms_of(&state).into_iter().collect::<Vec<_>>(), ["lobby"]);
}

#[tokio::test]
async fn broadcast_refuses_rooms_the_sender_is_not_in() {
    let route = route_with(env().with("EventsUserEventBehavior", "broadcast"));
    let mut state = ConnectionState::new();
    state.insert(builtin::ROOMS_STATE_KEY, ["lobby"]);
    let response = event("azure.webpubsub.user.message")
        .header("content-type", "application/json")
        .header("ce-connectionState", state.encode())
        .body(r#"{"room":"secret","text":"hi"}"#)
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(&response)["code"], "NotInRoom");
    // Joining a room that is not joinable is refused before any REST call.
    let response = event("azure.webpubsub.user.join")
        .header("content-type", "application/json")
        .body(r#"{"room":"user-bob"}"#)
        .reply(&route)
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(&response)["code"], "RoomNotJoinable");
}

// ---- application hooks ----

/// An application handler: refuses user `mallory`, tags connections, counts messages in the state.
struct App {
    disconnects: Mutex<Vec<(String, Option<String>)>>,
}

impl EventHandler for App {
    fn on_connect<'a>(
        &'a self,
        request: &'a ConnectRequest<'a>,
        mut response: ConnectResponse,
    ) -> HookFuture<'a, Result<ConnectResponse, ApiError>> {
        Box::pin(async move {
            if request.event.user_id() == Some("mallory") {
                return Err(ApiError::forbidden("Banned", "this user is banned"));
            }
            response.add_group("app-group");
            response.state.insert("count", 0);
            Ok(response)
        })
    }

    fn on_user_event<'a>(
        &'a self,
        event: &'a VerifiedEvent,
        message: UserMessage,
    ) -> HookFuture<'a, Result<UserEventReply, ApiError>> {
        Box::pin(async move {
            let mut state = ConnectionState::decode_lenient(event.connection_state_header());
            let count = state.get_as::<u64>("count").unwrap_or(0) + 1;
            state.insert("count", count);
            Ok(UserEventReply::text(format!("{count}: {}", message.text().unwrap_or(""))).with_state(state))
        })
    }

    fn on_disconnected<'a>(&'a self, event: &'a VerifiedEvent, reason: Option<&'a str>) -> HookFuture<'a, ()> {
        self.disconnects
            .lock()
            .unwrap()
            .push((event.connection_id().to_owned(), reason.map(str::to_owned)));
        Box::pin(std::future::ready(()))
    }
}

#[tokio::test]
async fn an_application_handler_plugs_in_without_touching_the_plumbing() {
    let app = Arc::new(App {
        disconnects: Mutex::new(Vec::new()),
    });
    let route = route_with_handler(env(), app.clone());

    let refused = connect_event(json!({}))
        .header("ce-userId", "mallory")
        .reply(&route)
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(&refused)["code"], "Banned");

    let accepted = connect_event(json!({})).reply(&route).await;
    assert_eq!(json_of(&accepted), json!({"groups": ["app-group"]}));
    let state = accepted.headers()["ce-connectionstate"].to_str().unwrap().to_owned();
    assert_eq!(ConnectionState::decode(&state).unwrap().get_as::<u64>("count"), Some(0));

    let reply = event("azure.webpubsub.user.message")
        .header("content-type", "text/plain")
        .header("ce-connectionState", state)
        .body("hi")
        .reply(&route)
        .await;
    assert_eq!(reply.body().as_ref(), b"1: hi");
    let next = ConnectionState::decode(reply.headers()["ce-connectionstate"].to_str().unwrap()).unwrap();
    assert_eq!(next.get_as::<u64>("count"), Some(1));

    // Plumbing still applies: an unsigned request never reaches the hooks.
    let unsigned = event_without("azure.webpubsub.sys.disconnected", &["ce-signature"])
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    event("azure.webpubsub.sys.disconnected")
        .body(r#"{"reason":"bye"}"#)
        .reply(&route)
        .await;
    assert_eq!(
        *app.disconnects.lock().unwrap(),
        [(CONNECTION_ID.to_owned(), Some("bye".to_owned()))]
    );
}

#[tokio::test]
async fn a_hook_choosing_an_unoffered_subprotocol_is_the_applications_fault() {
    struct Wrong;
    impl EventHandler for Wrong {
        fn on_connect<'a>(
            &'a self,
            _request: &'a ConnectRequest<'a>,
            mut response: ConnectResponse,
        ) -> HookFuture<'a, Result<ConnectResponse, ApiError>> {
            response.subprotocol = Some("made.up".into());
            Box::pin(std::future::ready(Ok(response)))
        }
    }
    let response = connect_event(json!({"subprotocols": ["json.webpubsub.azure.v1"]}))
        .reply(&route_with_handler(env(), Arc::new(Wrong)))
        .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

// ---- robustness ----

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever a signed caller sends (any event type, content type and body), the answer is never a 5xx.
    #[test]
    fn client_input_never_causes_a_server_error(
        event_type in proptest::sample::select(vec![
            "azure.webpubsub.sys.connect",
            "azure.webpubsub.sys.connected",
            "azure.webpubsub.sys.disconnected",
            "azure.webpubsub.user.message",
            "azure.webpubsub.user.join",
            "azure.webpubsub.sys.unknown",
        ]),
        content_type in proptest::sample::select(vec!["application/json", "text/plain", "application/octet-stream", "x/y"]),
        behavior in proptest::sample::select(vec!["none", "echo", "broadcast"]),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        json_body in r#"\{"(claims|query|subprotocols|mqtt|room|reason)": ?(null|\[\]|\{\}|"x"|\["json.webpubsub.azure.v1"\]|\{"protocolVersion": ?5\})\}"#,
        use_json in proptest::prelude::any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut env = env().with("EventsUserEventBehavior", behavior);
        if behavior == "broadcast" {
            env = env.with("EventsJoinableRooms", "room-*");
        }
        let route = route_with(env);
        let body = if use_json { json_body.into_bytes() } else { body };
        let response = runtime.block_on(event(event_type).header("content-type", content_type).body(body).reply(&route));
        proptest::prop_assert!(response.status().as_u16() < 500, "status {} for {event_type}", response.status());
    }
}
