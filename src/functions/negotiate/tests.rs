//! Unit tests of `negotiate`: settings, request parsing (body and query), identity modes, the policy (hubs,
//! lifetimes, groups, roles, rate limit), the reply and its log line.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use warp::http::{StatusCode, header};

use super::reply::*;
use super::request::*;
use super::*;
use ::test_support::tokens::{JwksServer, TEST_KEY_1_JWK, TEST_KEY_1_PEM, jwks, now, rs_token};

const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
const CONNECTION_STRING: &str =
    "Endpoint=http://localhost;Port=8080;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;";
const JWT_SECRET: &str = "negotiate-test-secret-at-least-32-bytes!";

pub(super) fn env(mode: &str) -> Env {
    Env::from_pairs([
        ("WebPubSubConnectionString", CONNECTION_STRING),
        ("WebPubSubHub", "chat"),
        (IDENTITY_SETTING, mode),
    ])
}

pub(super) fn route_for(env: &Env) -> BoxedFilter<(Response,)> {
    let settings = Settings::from_env(env).unwrap();
    let service = ServiceSettings::from_env(env).unwrap();
    let jwt = SharedAuth::jwt_settings_from_env(env, settings.jwt_user().as_slice()).unwrap();
    let auth = SharedAuth::new(jwt.as_ref()).unwrap();
    routes(Arc::new(State::new(&settings, &service, &auth).unwrap()))
}

pub(super) type Reply = test_support::JsonReply;

pub(super) async fn post(route: &BoxedFilter<(Response,)>, body: Value) -> Reply {
    send(
        route,
        warp::test::request()
            .method("POST")
            .path("/api/negotiate")
            .body(body.to_string()),
    )
    .await
}

async fn get(route: &BoxedFilter<(Response,)>, query: &str) -> Reply {
    send(
        route,
        warp::test::request()
            .method("GET")
            .path(&format!("/api/negotiate{query}")),
    )
    .await
}

async fn send(route: &BoxedFilter<(Response,)>, request: warp::test::RequestBuilder) -> Reply {
    test_support::reply_json(&route.clone().recover(error::recover), request).await
}

/// The token's claims, verified with the access key against the audience of `path_and_hub`.
pub(super) fn claims(reply: &Reply, path_and_hub: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[format!("http://localhost:8080{path_and_hub}")]);
    let token = reply.body["token"].as_str().expect("a token");
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(KEY.as_bytes()), &validation)
        .unwrap()
        .claims
}

pub(super) fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

// ----- settings -----

#[test]
fn the_identity_mode_is_required() {
    let env = Env::from_pairs([("WebPubSubConnectionString", CONNECTION_STRING)]);
    let error = Settings::from_env(&env).unwrap_err();
    assert_eq!(error.setting, IDENTITY_SETTING);
    assert!(error.problem.contains("anonymous"), "{error}");
}

#[test]
fn defaults() {
    let settings = Settings::from_env(&env("anonymous")).unwrap();
    assert_eq!((settings.token_ttl_minutes, settings.max_token_ttl_minutes), (60, 60));
    assert!(
        settings.default_roles.is_empty() && settings.allowed_groups.is_empty() && settings.allowed_roles.is_empty()
    );
    assert_eq!(settings.rate_limit_per_minute, None);
}

#[test]
fn lifetimes_must_be_consistent() {
    let error = Settings::from_env(
        &env("anonymous")
            .with(TOKEN_TTL_SETTING, "90")
            .with(MAX_TOKEN_TTL_SETTING, "60"),
    )
    .unwrap_err();
    assert_eq!(
        error.setting, MAX_TOKEN_TTL_SETTING,
        "a TTL above the maximum is a contradiction"
    );
    assert!(error.problem.contains(TOKEN_TTL_SETTING));
    let raised = Settings::from_env(&env("anonymous").with(TOKEN_TTL_SETTING, "90")).unwrap();
    assert_eq!(raised.max_token_ttl_minutes, 90, "the maximum defaults to the TTL");
    let ok = Settings::from_env(
        &env("anonymous")
            .with(TOKEN_TTL_SETTING, "90")
            .with(MAX_TOKEN_TTL_SETTING, "120"),
    )
    .unwrap();
    assert_eq!((ok.token_ttl_minutes, ok.max_token_ttl_minutes), (90, 120));
    let error = Settings::from_env(&env("anonymous").with(MAX_TOKEN_TTL_SETTING, "1441")).unwrap_err();
    assert_eq!(error.setting, MAX_TOKEN_TTL_SETTING);
    assert_eq!(
        Settings::from_env(&env("anonymous").with(TOKEN_TTL_SETTING, "0"))
            .unwrap_err()
            .setting,
        TOKEN_TTL_SETTING
    );
    assert_eq!(
        Settings::from_env(&env("anonymous").with(TOKEN_TTL_SETTING, "soon"))
            .unwrap_err()
            .setting,
        TOKEN_TTL_SETTING
    );
}

#[test]
fn role_settings_must_name_service_roles() {
    for setting in [DEFAULT_ROLES_SETTING, ALLOWED_ROLES_SETTING] {
        for bad in [
            "admin",
            "webpubsub.joinLeaveGroup*",
            "webpubsub.sendToGroup.",
            "webpubsub.joinLeaveGroups.",
        ] {
            let error = Settings::from_env(&env("anonymous").with(setting, bad)).unwrap_err();
            assert_eq!(error.setting, setting, "{bad}");
        }
    }
    let env = env("anonymous")
        .with(
            DEFAULT_ROLES_SETTING,
            "webpubsub.sendToGroup.user:{userId}, webpubsub.joinLeaveGroup",
        )
        .with(
            ALLOWED_ROLES_SETTING,
            "webpubsub.joinLeaveGroup.room:*,webpubsub.sendToGroups.team.*",
        );
    let settings = Settings::from_env(&env).unwrap();
    assert_eq!(settings.default_roles.len(), 2);
    assert_eq!(settings.allowed_roles.len(), 2);
}

#[test]
fn bad_templates_hubs_and_limits_name_their_setting() {
    let cases = [(ALLOWED_GROUPS_SETTING, "room:**"), (RATE_LIMIT_SETTING, "-1")];
    for (setting, value) in cases {
        assert_eq!(
            Settings::from_env(&env("anonymous").with(setting, value))
                .unwrap_err()
                .setting,
            setting,
            "{value}"
        );
    }
}

// ----- the reply -----

#[tokio::test]
async fn anonymous_post_issues_a_token_in_both_shapes() {
    let route = route_for(&env("anonymous"));
    let reply = post(&route, json!({"userId": "ada"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let token = reply.body["token"].as_str().unwrap();
    assert_eq!(reply.body["accessToken"], token);
    assert_eq!(reply.body["baseUrl"], "ws://localhost:8080/client/hubs/chat");
    assert_eq!(
        reply.body["url"],
        format!("ws://localhost:8080/client/hubs/chat?access_token={token}")
    );
    assert_eq!(reply.body["userId"], "ada");
    let claims = claims(&reply, "/client/hubs/chat");
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
    assert!(
        claims.get("role").is_none() && claims.get("webpubsub.group").is_none(),
        "{claims}"
    );
    assert_eq!(
        reply.body["expiresOn"],
        webpubsub_protocol::time::rfc3339_from_unix(claims["exp"].as_u64().unwrap())
    );
}

#[tokio::test]
async fn anonymous_callers_without_an_id_get_a_generated_one() {
    let route = route_for(&env("anonymous"));
    let first = post(&route, json!({})).await;
    let second = get(&route, "").await;
    let (a, b) = (
        first.body["userId"].as_str().unwrap(),
        second.body["userId"].as_str().unwrap(),
    );
    assert!(a.starts_with("anonymous-") && b.starts_with("anonymous-"));
    assert_ne!(a, b);
    assert_eq!(claims(&first, "/client/hubs/chat")["sub"], a);
}

#[tokio::test]
async fn anonymous_user_ids_are_validated() {
    let route = route_for(&env("anonymous"));
    assert_error(
        &post(&route, json!({"userId": ""})).await,
        StatusCode::BAD_REQUEST,
        "InvalidUserId",
    );
    assert_error(
        &post(&route, json!({"userId": "a\u{0}b"})).await,
        StatusCode::BAD_REQUEST,
        "InvalidUserId",
    );
    assert_error(
        &post(&route, json!({"userId": "x".repeat(300)})).await,
        StatusCode::BAD_REQUEST,
        "InvalidUserId",
    );
}

#[tokio::test]
async fn get_reads_the_query_with_comma_separated_and_repeated_lists() {
    let env = env("anonymous")
        .with(ALLOWED_GROUPS_SETTING, "room:*")
        .with(ALLOWED_ROLES_SETTING, "webpubsub.sendToGroup.room:*")
        .with(MAX_TOKEN_TTL_SETTING, "120");
    let route = route_for(&env);
    let reply = get(
        &route,
        "?userId=ada&groups=room:1%2Croom:2&groups=room:3&roles=webpubsub.sendToGroup.room:1&minutesToExpire=5&code=functionkey",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = claims(&reply, "/client/hubs/chat");
    assert_eq!(claims["webpubsub.group"], json!(["room:1", "room:2", "room:3"]));
    assert_eq!(claims["role"], json!(["webpubsub.sendToGroup.room:1"]));
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 300);
}

#[tokio::test]
async fn a_post_without_body_reads_the_query() {
    let route = route_for(&env("anonymous"));
    let reply = send(
        &route,
        warp::test::request().method("POST").path("/api/negotiate?userId=bob"),
    )
    .await;
    assert_eq!(reply.body["userId"], "bob");
}

// ----- rights -----

fn policy_env() -> Env {
    env("anonymous")
        .with(
            DEFAULT_ROLES_SETTING,
            "webpubsub.sendToGroup.notifications:user:{userId}",
        )
        .with(ALLOWED_GROUPS_SETTING, "notifications:user:{userId},conversation:*")
        .with(
            ALLOWED_ROLES_SETTING,
            "webpubsub.joinLeaveGroup.conversation:*,webpubsub.joinLeaveGroups.user.{userId}.*",
        )
}

#[tokio::test]
async fn allowed_groups_and_roles_are_granted_on_top_of_the_defaults() {
    let route = route_for(&policy_env());
    let reply = post(
        &route,
        json!({
            "userId": "ada",
            "groups": ["notifications:user:ada", "conversation:42", "conversation:42"],
            "roles": ["webpubsub.joinLeaveGroup.conversation:42", "webpubsub.joinLeaveGroups.user.ada.*"]
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = claims(&reply, "/client/hubs/chat");
    assert_eq!(
        claims["webpubsub.group"],
        json!(["notifications:user:ada", "conversation:42"])
    );
    assert_eq!(
        claims["role"],
        json!([
            "webpubsub.sendToGroup.notifications:user:ada",
            "webpubsub.joinLeaveGroup.conversation:42",
            "webpubsub.joinLeaveGroups.user.ada.*"
        ])
    );
}

#[tokio::test]
async fn other_groups_are_forbidden_and_named() {
    let route = route_for(&policy_env());
    for group in ["notifications:user:bob", "lobby", "conversation:"] {
        let reply = post(&route, json!({"userId": "ada", "groups": [group]})).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "GroupNotAllowed");
        assert_eq!(reply.body["group"], group);
        assert!(reply.body["message"].as_str().unwrap().contains(group));
    }
}

#[tokio::test]
async fn other_roles_are_forbidden_and_named() {
    let route = route_for(&policy_env());
    for role in [
        "webpubsub.sendToGroup.conversation:42",
        "webpubsub.joinLeaveGroup",
        "webpubsub.joinLeaveGroups.user.bob.*",
        "webpubsub.joinLeaveGroups.user.ada.**",
        "webpubsub.joinLeaveGroups.**",
    ] {
        let reply = post(&route, json!({"userId": "ada", "roles": [role]})).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "RoleNotAllowed");
        assert_eq!(reply.body["role"], role);
    }
}

#[tokio::test]
async fn a_user_id_with_wildcards_cannot_widen_a_wildcard_role() {
    let route = route_for(&policy_env());
    let reply = post(
        &route,
        json!({"userId": "*", "roles": ["webpubsub.joinLeaveGroups.user.*.*"]}),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "RoleNotAllowed");
    let reply = post(
        &route,
        json!({"userId": "*", "roles": [r"webpubsub.joinLeaveGroups.user.\*.*"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn user_id_segments_never_reach_another_users_groups() {
    // Issue #14 item 3: `john` asking for a group of `john.smith`'s inbox.
    let env = env("anonymous")
        .with(DEFAULT_ROLES_SETTING, "webpubsub.sendToGroup.inbox.{userId}")
        .with(ALLOWED_GROUPS_SETTING, "inbox.{userId}.*,*:{userId}");
    let route = route_for(&env);
    let reply = post(&route, json!({"userId": "john", "groups": ["inbox.john.private"]})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // `john.smith` cannot use templates whose separator is part of the id, so no name of theirs is
    // reachable through `john`'s templates, and they get no default role that `john` could reach.
    let reply = post(&route, json!({"userId": "john.smith"})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidUserId");
    let route = route_for(&env.with(DEFAULT_ROLES_SETTING, ""));
    let reply = post(
        &route,
        json!({"userId": "john.smith", "groups": ["inbox.john.smith.private"]}),
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "GroupNotAllowed");
    let reply = post(&route, json!({"userId": "b:c", "groups": ["a:b:c"]})).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "GroupNotAllowed");
    let reply = post(&route, json!({"userId": "c", "groups": ["a:b:c"]})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn names_with_control_characters_or_commas_are_refused() {
    // #14 item 11: nothing the handler builds or forwards may carry NUL, newlines or `,`.
    let route = route_for(
        &policy_env()
            .with(ALLOWED_GROUPS_SETTING, "*")
            .with(ALLOWED_ROLES_SETTING, "webpubsub.sendToGroup.*"),
    );
    for group in ["room-1\u{0}", "a\nb", "a,b"] {
        let reply = post(&route, json!({"userId": "ada", "groups": [group]})).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidGroup");
    }
    for role in [
        "webpubsub.sendToGroup.a,webpubsub.sendToGroup",
        "webpubsub.sendToGroup.a\u{0}",
    ] {
        let reply = post(&route, json!({"userId": "ada", "roles": [role]})).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidRole");
    }
    // A user id placed into a default role must not smuggle a second role in.
    let reply = post(&route, json!({"userId": "x,webpubsub.joinLeaveGroup"})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidUserId");
    let reply = post(
        &route,
        json!({"userId": "ada", "groups": ["a;b"], "roles": ["webpubsub.sendToGroup.a;b"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[test]
fn ambiguous_user_id_templates_are_refused_at_start_up() {
    for (setting, value) in [
        (ALLOWED_GROUPS_SETTING, "inbox.{userId}*"),
        (ALLOWED_GROUPS_SETTING, "inbox.*{userId}"),
        (ALLOWED_GROUPS_SETTING, "*.{userId}.*"),
        (ALLOWED_ROLES_SETTING, "webpubsub.sendToGroup.user{userId}"),
        (DEFAULT_ROLES_SETTING, "webpubsub.sendToGroup.user.{userId}x"),
    ] {
        let error = Settings::from_env(&env("anonymous").with(setting, value)).unwrap_err();
        assert_eq!(error.setting, setting, "{value}");
        assert!(error.problem.contains("{userId}"), "{error}");
    }
}

#[tokio::test]
async fn malformed_groups_and_roles_are_bad_requests() {
    let route = route_for(&policy_env());
    assert_error(
        &post(&route, json!({"groups": ["  "]})).await,
        StatusCode::BAD_REQUEST,
        "InvalidGroup",
    );
    assert_error(
        &post(&route, json!({"roles": ["admin"]})).await,
        StatusCode::BAD_REQUEST,
        "InvalidRole",
    );
    let many: Vec<String> = (0..101).map(|i| format!("conversation:{i}")).collect();
    assert_error(
        &post(&route, json!({"groups": many})).await,
        StatusCode::BAD_REQUEST,
        "TooManyItems",
    );
    let query: String = (0..101).map(|i| format!("&groups=conversation:{i}")).collect();
    assert_error(
        &get(&route, &format!("?userId=ada{query}")).await,
        StatusCode::BAD_REQUEST,
        "TooManyItems",
    );
}

// ----- lifetime, hub, client type -----

#[tokio::test]
async fn callers_may_shorten_but_never_lengthen_the_lifetime() {
    let route = route_for(
        &env("anonymous")
            .with(TOKEN_TTL_SETTING, "30")
            .with(MAX_TOKEN_TTL_SETTING, "45"),
    );
    let default = post(&route, json!({})).await;
    let claims_default = claims(&default, "/client/hubs/chat");
    assert_eq!(
        claims_default["exp"].as_u64().unwrap() - claims_default["iat"].as_u64().unwrap(),
        30 * 60
    );
    let longer = post(&route, json!({"minutesToExpire": 45})).await;
    let claims_longer = claims(&longer, "/client/hubs/chat");
    assert_eq!(
        claims_longer["exp"].as_u64().unwrap() - claims_longer["iat"].as_u64().unwrap(),
        45 * 60
    );
    for minutes in [0, 46, 100_000] {
        let reply = post(&route, json!({"minutesToExpire": minutes})).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidTokenLifetime");
        assert!(reply.body["message"].as_str().unwrap().contains("45"));
    }
}

#[tokio::test]
async fn hubs_come_from_the_allow_list() {
    let route = route_for(&env("anonymous").with("WebPubSubAllowedHubs", "Lobby,game"));
    let reply = post(&route, json!({"hub": "lobby"})).await;
    assert_eq!(reply.body["baseUrl"], "ws://localhost:8080/client/hubs/Lobby");
    claims(&reply, "/client/hubs/Lobby");
    assert_eq!(post(&route, json!({"hub": "chat"})).await.status, StatusCode::OK);
    let reply = post(&route, json!({"hub": "admin"})).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "HubNotAllowed");
    assert_eq!(reply.body["hub"], "admin");
    assert_error(
        &post(&route, json!({"hub": "no spaces"})).await,
        StatusCode::BAD_REQUEST,
        "InvalidHub",
    );
}

#[tokio::test]
async fn client_types_choose_the_endpoint_path() {
    let route = route_for(&env("anonymous"));
    for (name, path) in [
        ("default", "/client/hubs/chat"),
        ("MQTT", "/clients/mqtt/hubs/chat"),
        ("socketio", "/clients/socketio/hubs/chat"),
    ] {
        let reply = post(&route, json!({"clientType": name})).await;
        assert_eq!(reply.body["baseUrl"], format!("ws://localhost:8080{path}"), "{name}");
        claims(&reply, path);
        // Socket.IO clients read the binding's `endpoint` and `path` (#14 item 15); the others do not get them.
        if name == "socketio" {
            assert_eq!(reply.body["endpoint"], "http://localhost:8080/");
            assert_eq!(reply.body["path"], path);
            assert_eq!(reply.body["token"], reply.body["accessToken"]);
        } else {
            assert!(
                reply.body.get("endpoint").is_none() && reply.body.get("path").is_none(),
                "{name}"
            );
        }
    }
    assert_error(
        &post(&route, json!({"clientType": "carrier-pigeon"})).await,
        StatusCode::BAD_REQUEST,
        "InvalidClientType",
    );
    assert_error(
        &get(&route, "?clientType=x").await,
        StatusCode::BAD_REQUEST,
        "InvalidClientType",
    );
}

// ----- bad input -----

#[tokio::test]
async fn bad_bodies_are_400s_with_stable_codes() {
    let route = route_for(&env("anonymous"));
    let raw = |body: &'static str| warp::test::request().method("POST").path("/api/negotiate").body(body);
    assert_error(
        &send(&route, raw("{not json")).await,
        StatusCode::BAD_REQUEST,
        "InvalidJson",
    );
    assert_error(
        &send(&route, raw("[1,2]")).await,
        StatusCode::BAD_REQUEST,
        "InvalidField",
    );
    assert_error(
        &post(&route, json!({"groups": "room"})).await,
        StatusCode::BAD_REQUEST,
        "InvalidField",
    );
    assert_error(
        &post(&route, json!({"minutesToExpire": "5"})).await,
        StatusCode::BAD_REQUEST,
        "InvalidField",
    );
    assert_error(
        &post(&route, json!({"minutesToExpire": 1.5})).await,
        StatusCode::BAD_REQUEST,
        "InvalidField",
    );
    assert_error(
        &post(&route, json!({"userId": 7})).await,
        StatusCode::BAD_REQUEST,
        "InvalidField",
    );
    assert_error(
        &get(&route, "?minutesToExpire=soon").await,
        StatusCode::BAD_REQUEST,
        "InvalidField",
    );
}

#[tokio::test]
async fn unknown_fields_and_nulls_are_ignored() {
    let route = route_for(&env("anonymous"));
    let reply = post(
        &route,
        json!({"userId": "ada", "color": "blue", "hub": null, "groups": null}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let route = route_for(&env("anonymous"));
    let body = format!(r#"{{"userId":"{}"}}"#, "a".repeat(MAX_BODY_BYTES as usize));
    let reply = send(
        &route,
        warp::test::request().method("POST").path("/api/negotiate").body(body),
    )
    .await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge");
}

#[tokio::test]
async fn other_methods_are_not_served() {
    let route = route_for(&env("anonymous"));
    let reply = send(&route, warp::test::request().method("DELETE").path("/api/negotiate")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

// ----- identity modes -----

#[tokio::test]
async fn appservice_mode_uses_the_principal_and_refuses_without_it() {
    let route = route_for(&env("appservice"));
    let request = || warp::test::request().method("POST").path("/api/negotiate");
    assert_error(
        &send(&route, request()).await,
        StatusCode::UNAUTHORIZED,
        "MissingCredentials",
    );
    let reply = send(&route, request().header("x-ms-client-principal-id", "ada-object-id")).await;
    assert_eq!(reply.body["userId"], "ada-object-id");
    let mismatch = send(
        &route,
        request()
            .header("x-ms-client-principal-id", "ada-object-id")
            .body(r#"{"userId":"bob"}"#),
    )
    .await;
    assert_error(&mismatch, StatusCode::FORBIDDEN, "UserIdMismatch");
    let bad = send(
        &route,
        request()
            .header("x-ms-client-principal-id", "a")
            .header("x-ms-client-principal", "%%%"),
    )
    .await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "InvalidCredentials");
}

fn jwt_env() -> Env {
    env("jwt")
        .with("AuthJwtIssuer", "https://issuer.example")
        .with("AuthJwtAudience", "api://negotiate")
        .with("AuthJwtSecret", JWT_SECRET)
}

fn hs_token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn idp_claims(sub: &str) -> Value {
    json!({"iss": "https://issuer.example", "aud": "api://negotiate", "sub": sub, "oid": "object-1", "exp": now() + 300})
}

fn with_bearer(token: &str) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("POST")
        .path("/api/negotiate")
        .header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn jwt_mode_takes_the_user_id_from_the_token() {
    let route = route_for(&jwt_env());
    let reply = send(&route, with_bearer(&hs_token(idp_claims("ada")))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["userId"], "ada");
    assert_eq!(claims(&reply, "/client/hubs/chat")["sub"], "ada");
    let oid_route = route_for(&jwt_env().with("AuthUserIdClaim", "oid"));
    assert_eq!(
        send(&oid_route, with_bearer(&hs_token(idp_claims("ada")))).await.body["userId"],
        "object-1"
    );
}

#[tokio::test]
async fn jwt_mode_rejects_missing_and_invalid_tokens() {
    let route = route_for(&jwt_env());
    assert_error(
        &send(&route, warp::test::request().method("POST").path("/api/negotiate")).await,
        StatusCode::UNAUTHORIZED,
        "MissingCredentials",
    );
    let mut expired = idp_claims("ada");
    expired["exp"] = json!(now() - 3600);
    let reply = send(&route, with_bearer(&hs_token(expired))).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "InvalidCredentials");
    assert!(reply.body["message"].as_str().unwrap().contains("expired"));
    let mut foreign = idp_claims("ada");
    foreign["aud"] = json!("api://someone-else");
    assert_error(
        &send(&route, with_bearer(&hs_token(foreign))).await,
        StatusCode::UNAUTHORIZED,
        "InvalidCredentials",
    );
    assert_error(
        &send(&route, with_bearer("garbage")).await,
        StatusCode::UNAUTHORIZED,
        "InvalidCredentials",
    );
    // A caller-chosen userId other than the token's is refused.
    let mismatch = send(
        &route,
        with_bearer(&hs_token(idp_claims("ada"))).body(r#"{"userId":"bob"}"#),
    )
    .await;
    assert_error(&mismatch, StatusCode::FORBIDDEN, "UserIdMismatch");
}

#[tokio::test]
async fn jwt_mode_with_a_jwks_url_verifies_rs256_tokens() {
    let server = JwksServer::start(jwks(&[TEST_KEY_1_JWK])).await;
    let env = jwt_env().with("AuthJwtSecret", "").with("AuthJwksUrl", server.url());
    let route = route_for(&env);
    let reply = send(
        &route,
        with_bearer(&rs_token("test-key-1", TEST_KEY_1_PEM, idp_claims("ada"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["userId"], "ada");
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_a_503_with_retry_after() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let route = route_for(&jwt_env().with("AuthJwtSecret", "").with("AuthJwksUrl", url));
    let reply = send(
        &route,
        with_bearer(&rs_token("test-key-1", TEST_KEY_1_PEM, idp_claims("ada"))),
    )
    .await;
    assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "IdentityProviderUnavailable");
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
}

// ----- abuse guard -----

#[tokio::test]
async fn the_rate_limit_is_per_identity_with_retry_after() {
    let route = route_for(&env("anonymous").with(RATE_LIMIT_SETTING, "2"));
    for _ in 0..2 {
        assert_eq!(post(&route, json!({"userId": "ada"})).await.status, StatusCode::OK);
    }
    let limited = post(&route, json!({"userId": "ada"})).await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    let retry_after: u64 = limited.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(post(&route, json!({"userId": "bob"})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_rate_limit_many_requests_pass() {
    let route = route_for(&env("anonymous"));
    for _ in 0..50 {
        assert_eq!(post(&route, json!({"userId": "ada"})).await.status, StatusCode::OK);
    }
}

// ----- logging -----

#[tokio::test]
async fn each_issue_is_logged_without_the_token() {
    let (captured, _guard) = test_support::capture_logs(crate::telemetry::TextFields);
    let route = route_for(&policy_env());
    let reply = post(&route, json!({"userId": "ada", "groups": ["conversation:7"]})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.body["token"].as_str().unwrap();
    let logs = captured.text();
    let line = captured.line("Issued Web PubSub access token");
    test_support::assert_fields(
        &line,
        &[
            "user_id=ada",
            "hub=chat",
            "roles=webpubsub.sendToGroup.notifications:user:ada",
            "groups=conversation:7",
        ],
    );
    assert!(!logs.contains(token), "the token must never be logged");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature));
}

// ----- helpers -----

#[test]
fn socketio_endpoints_follow_the_binding() {
    assert_eq!(
        socketio_endpoint("wss://demo.webpubsub.azure.com/clients/socketio/hubs/chat"),
        Some((
            "https://demo.webpubsub.azure.com/".to_owned(),
            "/clients/socketio/hubs/chat"
        ))
    );
    assert_eq!(
        socketio_endpoint("ws://127.0.0.1:8080/clients/socketio/hubs/chat"),
        Some(("http://127.0.0.1:8080/".to_owned(), "/clients/socketio/hubs/chat"))
    );
    assert_eq!(socketio_endpoint("nonsense"), None);
}

#[test]
fn joined_lists() {
    assert_eq!(Joined(&[]).to_string(), "");
    assert_eq!(Joined(&["a".into(), "b".into()]).to_string(), "a,b");
}

proptest::proptest! {
    #[test]
    fn request_parsers_never_panic(input in "\\PC{0,200}") {
        let _ = parse_query(&input);
        let _ = parse_json(input.as_bytes());
    }
}
