//! Unit tests of `publish`: settings, request parsing (known-answer REST requests for every action and
//! payload form, one test per refusal), the trust check, and execution against a scripted local upstream
//! on 127.0.0.1 (outcomes, retries, timeouts, status mapping) and the log line.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{StatusCode, header};

use super::request::{PlannedAction, parse};
use super::*;
use crate::auth::IdentityConfig;
use crate::webpubsub::Hubs;
use crate::webpubsub::{ContentType, RetryPolicy};
use ::test_support::tokens::now;

const ACCESS_KEY: &str = "publish-unit-test-access-key-0123456789abcdef";
const JWT_SECRET: &str = "publish-test-secret-at-least-32-bytes-long!";
const ROLE: &str = "WebPubSub.Publish";

// ----- parsing -----

fn hubs() -> Hubs {
    Hubs::new(vec!["chat".into(), "News".into()])
}

fn plan(body: Value) -> Vec<PlannedAction> {
    parse(body.to_string().as_bytes(), &hubs())
        .unwrap_or_else(|e| panic!("{body} was refused: {e}"))
        .actions
}

fn one(body: Value) -> PlannedAction {
    let mut actions = plan(body);
    assert_eq!(actions.len(), 1);
    actions.remove(0)
}

/// Method, path and query of a planned request (no endpoint; api-version `v`).
fn call(action: &PlannedAction) -> String {
    format!("{} {}", action.request.method(), action.request.url("", "v"))
}

fn body_of(action: &PlannedAction) -> (ContentType, Vec<u8>) {
    let (content_type, body) = action.request.body().expect("a body");
    (content_type, body.to_vec())
}

/// The JSON reply an error turns into.
async fn reply_of(error: ApiError) -> (StatusCode, Value) {
    let filter = warp::any().map(move || error.clone());
    let response = warp::test::request().reply(&filter).await;
    (response.status(), serde_json::from_slice(response.body()).unwrap())
}

async fn refused(body: &str) -> (StatusCode, Value) {
    reply_of(parse(body.as_bytes(), &hubs()).expect_err("refused")).await
}

async fn assert_refused(body: Value, code: &str, field: &str, index: Option<usize>) {
    let (status, reply) = refused(&body.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["code"], code, "{body} → {reply}");
    // Names compare ignoring case (a duplicate may be reported under either spelling).
    assert!(
        reply["field"]
            .as_str()
            .is_some_and(|named| named.eq_ignore_ascii_case(field)),
        "{body} → {reply}"
    );
    assert_eq!(
        reply.get("index").and_then(Value::as_u64),
        index.map(|i| i as u64),
        "{reply}"
    );
    assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn the_simple_form_sends_to_a_group_or_room() {
    let action = one(json!({"group": "ops", "message": "deploy done"}));
    assert_eq!(action.kind, ActionKind::SendToGroup);
    assert_eq!(call(&action), "POST /api/hubs/chat/groups/ops/:send?api-version=v");
    assert_eq!(body_of(&action), (ContentType::Text, b"deploy done".to_vec()));
    assert_eq!(action.target.group.as_deref(), Some("ops"));
    let room = one(
        json!({"room": "ops", "message": "hi", "excluded": ["c1"], "filter": "userId ne 'bob'", "messageTtlSeconds": 30}),
    );
    assert_eq!(
        call(&room),
        "POST /api/hubs/chat/groups/ops/:send?api-version=v&excluded=c1&filter=userId%20ne%20%27bob%27&messageTtlSeconds=30"
    );
    // Both spellings agreeing is fine.
    assert_eq!(
        one(json!({"room": "a b", "group": "a b", "message": "x"}))
            .target
            .group
            .as_deref(),
        Some("a b")
    );
}

#[test]
fn payloads_follow_the_data_type() {
    let cases = [
        (
            json!({"group": "g", "message": "hi", "dataType": "text"}),
            ContentType::Text,
            b"hi".to_vec(),
        ),
        (
            json!({"group": "g", "message": {"a": [1, true]}, "dataType": "json"}),
            ContentType::Json,
            br#"{"a":[1,true]}"#.to_vec(),
        ),
        // A string with dataType json holds JSON text, as the Functions binding sends it.
        (
            json!({"group": "g", "message": "{\"a\": 1}", "dataType": "JSON"}),
            ContentType::Json,
            br#"{"a": 1}"#.to_vec(),
        ),
        (
            json!({"group": "g", "message": "\"quoted\"", "dataType": "json"}),
            ContentType::Json,
            br#""quoted""#.to_vec(),
        ),
        (json!({"group": "g", "message": 42}), ContentType::Json, b"42".to_vec()),
        (
            json!({"group": "g", "message": "AAEC/w==", "dataType": "binary"}),
            ContentType::Binary,
            vec![0, 1, 2, 255],
        ),
        (
            json!({"group": "g", "message": "AAEC/w", "dataType": "Binary"}),
            ContentType::Binary,
            vec![0, 1, 2, 255],
        ),
        (
            json!({"group": "g", "message": {"type": "Buffer", "data": [7, 0, 255]}}),
            ContentType::Binary,
            vec![7, 0, 255],
        ),
        (json!({"group": "g", "message": ""}), ContentType::Text, Vec::new()),
    ];
    for (body, content_type, bytes) in cases {
        let action = one(body.clone());
        assert_eq!(body_of(&action), (content_type, bytes), "{body}");
        assert_eq!(action.message.map(|(t, _)| t), Some(content_type));
    }
}

#[test]
fn every_binding_action_becomes_its_rest_call() {
    let text = |extra: Value| {
        let mut object = json!({"data": "hi", "dataType": "text"});
        object
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        object
    };
    let cases = [
        (
            text(json!({"actionName": "sendToAll", "excluded": ["c1", "c2"]})),
            "POST /api/hubs/chat/:send?api-version=v&excluded=c1&excluded=c2",
        ),
        (
            text(json!({"actionName": "sendToGroup", "group": "g1"})),
            "POST /api/hubs/chat/groups/g1/:send?api-version=v",
        ),
        (
            text(json!({"actionName": "sendToUser", "userId": "ada", "filter": "'x' in groups"})),
            "POST /api/hubs/chat/users/ada/:send?api-version=v&filter=%27x%27%20in%20groups",
        ),
        (
            text(json!({"actionName": "sendToConnection", "connectionId": "c1", "messageTtlSeconds": 0})),
            "POST /api/hubs/chat/connections/c1/:send?api-version=v&messageTtlSeconds=0",
        ),
        (
            json!({"actionName": "addUserToGroup", "userId": "ada", "group": "g1"}),
            "PUT /api/hubs/chat/users/ada/groups/g1?api-version=v",
        ),
        (
            json!({"actionName": "removeUserFromGroup", "userId": "ada", "group": "g1"}),
            "DELETE /api/hubs/chat/users/ada/groups/g1?api-version=v",
        ),
        (
            json!({"actionName": "removeUserFromAllGroups", "userId": "ada"}),
            "DELETE /api/hubs/chat/users/ada/groups?api-version=v",
        ),
        (
            json!({"actionName": "addConnectionToGroup", "connectionId": "c1", "group": "g1"}),
            "PUT /api/hubs/chat/groups/g1/connections/c1?api-version=v",
        ),
        (
            json!({"actionName": "removeConnectionFromGroup", "connectionId": "c1", "group": "g1"}),
            "DELETE /api/hubs/chat/groups/g1/connections/c1?api-version=v",
        ),
        (
            json!({"actionName": "closeAllConnections", "excluded": ["c1"], "reason": "bye now"}),
            "POST /api/hubs/chat/:closeConnections?api-version=v&excluded=c1&reason=bye%20now",
        ),
        (
            json!({"actionName": "closeClientConnection", "connectionId": "c1", "reason": "kicked"}),
            "DELETE /api/hubs/chat/connections/c1?api-version=v&reason=kicked",
        ),
        (
            json!({"actionName": "closeGroupConnections", "group": "g1"}),
            "POST /api/hubs/chat/groups/g1/:closeConnections?api-version=v",
        ),
        (
            json!({"actionName": "grantPermission", "connectionId": "c1", "permission": "sendToGroup", "targetName": "g1"}),
            "PUT /api/hubs/chat/permissions/sendToGroup/connections/c1?api-version=v&targetName=g1",
        ),
        (
            json!({"actionName": "revokePermission", "connectionId": "c1", "permission": "joinLeaveGroup"}),
            "DELETE /api/hubs/chat/permissions/joinLeaveGroup/connections/c1?api-version=v",
        ),
    ];
    let writes = ActionKind::ALL.iter().filter(|kind| !kind.is_read_only()).count();
    assert_eq!(cases.len(), writes, "read-only actions are covered below");
    for (body, expected) in cases {
        let action = one(body.clone());
        assert_eq!(action.kind.name(), body["actionName"], "{body}");
        assert_eq!(call(&action), expected, "{body}");
    }
}

#[test]
fn names_and_values_match_ignoring_case() {
    let action = one(json!({"ACTIONNAME": "SendToUser", "UserId": "ada", "Data": "AQI=", "DATATYPE": "BINARY"}));
    assert_eq!(action.kind, ActionKind::SendToUser);
    assert_eq!(body_of(&action), (ContentType::Binary, vec![1, 2]));
    let grant = one(json!({"actionName": "grantpermission", "connectionId": "c", "permission": "SENDTOGROUP"}));
    assert_eq!(
        call(&grant),
        "PUT /api/hubs/chat/permissions/sendToGroup/connections/c?api-version=v"
    );
}

#[test]
fn arrays_keep_their_order_and_hubs_come_from_the_allow_list() {
    let actions = plan(json!([
        {"actionName": "addUserToGroup", "userId": "ada", "group": "g", "hub": "news"},
        {"actionName": "sendToGroup", "group": "g", "data": "x", "hub": "CHAT"},
        {"actionName": "removeUserFromGroup", "userId": "ada", "group": "g"},
    ]));
    let kinds: Vec<_> = actions.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            ActionKind::AddUserToGroup,
            ActionKind::SendToGroup,
            ActionKind::RemoveUserFromGroup
        ]
    );
    // The configured spelling is used.
    assert_eq!(actions[0].hub, "News");
    assert!(call(&actions[0]).contains("/hubs/News/"));
    assert_eq!(actions[1].hub, "chat");
}

#[test]
fn generic_builders_may_send_empty_fields_that_do_not_apply() {
    let action = one(
        json!({"actionName": "sendToUser", "userId": "u", "data": "x", "excluded": [], "reason": "", "group": null}),
    );
    assert_eq!(call(&action), "POST /api/hubs/chat/users/u/:send?api-version=v");
}

#[tokio::test]
async fn malformed_bodies_are_refused() {
    for (body, code) in [
        ("", "EmptyBody"),
        ("  \n", "EmptyBody"),
        ("{not json", "InvalidJson"),
        ("\"text\"", "InvalidBody"),
        ("[]", "NoActions"),
    ] {
        let (status, reply) = refused(body).await;
        assert_eq!(
            (status, reply["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, code),
            "{body:?}"
        );
    }
    let many: Vec<Value> = (0..=MAX_ACTIONS)
        .map(|_| json!({"actionName": "sendToAll", "data": "x"}))
        .collect();
    let (_, reply) = refused(&Value::Array(many).to_string()).await;
    assert_eq!(reply["code"], "TooManyActions");
    assert_eq!(
        plan(Value::Array(vec![
            json!({"actionName": "sendToAll", "data": "x"});
            MAX_ACTIONS
        ]))
        .len(),
        MAX_ACTIONS
    );
}

#[tokio::test]
async fn each_bad_field_is_named() {
    let cases = [
        (json!({"message": "x"}), "MissingField", "group", None),
        (
            json!({"group": "a", "room": "b", "message": "x"}),
            "ConflictingFields",
            "room",
            None,
        ),
        (json!({"group": "g"}), "MissingField", "message", None),
        (
            json!({"group": "g", "data": "x", "message": "y"}),
            "FieldNotApplicable",
            "data",
            None,
        ),
        (json!({"group": 7, "message": "x"}), "InvalidField", "group", None),
        (json!({"group": " ", "message": "x"}), "InvalidGroup", "group", None),
        (
            json!({"group": "g", "message": "x", "dataType": "xml"}),
            "InvalidDataType",
            "dataType",
            None,
        ),
        (
            json!({"group": "g", "message": {"a": 1}, "dataType": "text"}),
            "InvalidData",
            "message",
            None,
        ),
        (
            json!({"group": "g", "message": "not json", "dataType": "json"}),
            "InvalidJson",
            "message",
            None,
        ),
        (
            json!({"group": "g", "message": "!!!", "dataType": "binary"}),
            "InvalidData",
            "message",
            None,
        ),
        (
            json!({"group": "g", "message": {"type": "Buffer", "data": [256]}}),
            "InvalidData",
            "message",
            None,
        ),
        (
            json!({"group": "g", "message": [1, 2], "dataType": "binary"}),
            "InvalidData",
            "message",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "messageTtlSeconds": 301}),
            "InvalidMessageTtl",
            "messageTtlSeconds",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "messageTtlSeconds": -1}),
            "InvalidMessageTtl",
            "messageTtlSeconds",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "excluded": [""]}),
            "InvalidField",
            "excluded",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "excluded": "c1"}),
            "InvalidField",
            "excluded",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "filter": "  "}),
            "InvalidFilter",
            "filter",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "hub": "no such hub"}),
            "InvalidHub",
            "hub",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "colour": "red"}),
            "UnknownField",
            "colour",
            None,
        ),
        (
            json!({"group": "g", "message": "x", "Group": "h"}),
            "DuplicateField",
            "Group",
            None,
        ),
        (
            json!({"actionName": "sendToEveryone", "data": "x"}),
            "UnknownAction",
            "actionName",
            None,
        ),
        (json!({"actionName": 3}), "InvalidField", "actionName", None),
        (
            json!({"actionName": "sendToUser", "data": "x"}),
            "MissingField",
            "userId",
            None,
        ),
        (
            json!({"actionName": "sendToUser", "userId": "", "data": "x"}),
            "InvalidUserId",
            "userId",
            None,
        ),
        (
            json!({"actionName": "sendToUser", "userId": "u", "data": "x", "excluded": ["c"]}),
            "FieldNotApplicable",
            "excluded",
            None,
        ),
        (
            json!({"actionName": "sendToConnection", "connectionId": "c", "data": "x", "filter": "userId eq 'a'"}),
            "FieldNotApplicable",
            "filter",
            None,
        ),
        (
            json!({"actionName": "sendToConnection", "connectionId": "..", "data": "x"}),
            "InvalidConnectionId",
            "connectionId",
            None,
        ),
        (
            json!({"actionName": "sendToGroup", "group": "g", "data": "x", "reason": "why"}),
            "FieldNotApplicable",
            "reason",
            None,
        ),
        (
            json!({"actionName": "closeClientConnection"}),
            "MissingField",
            "connectionId",
            None,
        ),
        (
            json!({"actionName": "grantPermission", "connectionId": "c"}),
            "MissingField",
            "permission",
            None,
        ),
        (
            json!({"actionName": "grantPermission", "connectionId": "c", "permission": "admin"}),
            "InvalidPermission",
            "permission",
            None,
        ),
        (
            json!({"actionName": "revokePermission", "connectionId": "c", "permission": "sendToGroup", "targetName": ""}),
            "InvalidGroup",
            "targetName",
            None,
        ),
        (
            json!({"actionName": "addUserToGroup", "userId": "u", "group": "x".repeat(1025)}),
            "InvalidGroup",
            "group",
            None,
        ),
        (
            json!([{"actionName": "sendToAll", "data": "x"}, {"actionName": "closeGroupConnections"}]),
            "MissingField",
            "group",
            Some(1),
        ),
        (
            json!([{"actionName": "sendToAll", "data": "x"}, "sendToAll"]),
            "InvalidAction",
            "actionName",
            Some(1),
        ),
        (
            json!([{"group": "g", "message": "simple forms are not actions"}]),
            "MissingField",
            "actionName",
            Some(0),
        ),
    ];
    for (body, code, field, index) in cases {
        assert_refused(body, code, field, index).await;
    }
}

#[tokio::test]
async fn hubs_outside_the_allow_list_are_forbidden() {
    let (status, reply) = refused(&json!({"group": "g", "message": "x", "hub": "admin"}).to_string()).await;
    assert_eq!(
        (status, reply["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "HubNotAllowed")
    );
    assert_eq!(reply["hub"], "admin");
}

#[tokio::test]
async fn messages_over_one_mebibyte_are_refused() {
    let limit = crate::webpubsub::validate::MAX_MESSAGE_BYTES;
    assert_eq!(
        one(json!({"group": "g", "message": "a".repeat(limit)}))
            .message
            .unwrap()
            .1,
        limit
    );
    assert_refused(
        json!({"group": "g", "message": "a".repeat(limit + 1)}),
        "MessageTooLarge",
        "message",
        None,
    )
    .await;
    let binary = base64::engine::general_purpose::STANDARD.encode(vec![0u8; limit + 1]);
    assert_refused(
        json!({"actionName": "sendToAll", "data": binary, "dataType": "binary"}),
        "MessageTooLarge",
        "data",
        None,
    )
    .await;
    let json_text = format!("\"{}\"", "j".repeat(limit));
    assert_refused(
        json!({"group": "g", "message": json_text, "dataType": "json"}),
        "MessageTooLarge",
        "message",
        None,
    )
    .await;
}

mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::hubs;
    use crate::functions::publish::request::parse;

    fn field_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!(-1)),
            Just(json!([1, "a"])),
            Just(json!({"type": "Buffer", "data": [300]})),
            "\\PC{0,20}".prop_map(Value::from)
        ]
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(input in "\\PC{0,300}") {
            let _ = parse(input.as_bytes(), &hubs());
        }

        #[test]
        fn the_parser_never_panics_on_action_shaped_input(
            name in "(sendTo(All|Group|User|Connection)|grantPermission|closeAllConnections|listConnectionsInGroup|checkPermission|x)",
            field in "(group|userId|connectionId|data|dataType|excluded|permission|targetName|hub|filter|messageTtlSeconds|maxPageSize|continuationToken|user_id)",
            value in field_value(),
        ) {
            let mut body = json!({"actionName": name, "data": "x"});
            body.as_object_mut().unwrap().insert(field, value);
            let _ = parse(body.to_string().as_bytes(), &hubs());
        }
    }
}

fn writes_count() -> usize {
    ActionKind::ALL.iter().filter(|kind| !kind.is_read_only()).count()
}

#[test]
fn read_only_actions_become_their_rest_questions() {
    let cases = [
        (
            json!({"actionName": "connectionExists", "connectionId": "c1"}),
            "HEAD /api/hubs/chat/connections/c1?api-version=v",
        ),
        (
            json!({"actionName": "groupExists", "group": "g"}),
            "HEAD /api/hubs/chat/groups/g?api-version=v",
        ),
        (
            json!({"actionName": "userExists", "userId": "ada"}),
            "HEAD /api/hubs/chat/users/ada?api-version=v",
        ),
        (
            json!({"actionName": "checkPermission", "connectionId": "c1", "permission": "sendToGroup", "targetName": "g"}),
            "HEAD /api/hubs/chat/permissions/sendToGroup/connections/c1?api-version=v&targetName=g",
        ),
        (
            json!({"actionName": "listConnectionsInGroup", "group": "g"}),
            "GET /api/hubs/chat/groups/g/connections?api-version=v&maxpagesize=100",
        ),
        (
            json!({"actionName": "listConnectionsInGroup", "group": "g", "maxPageSize": 5, "continuationToken": "t"}),
            "GET /api/hubs/chat/groups/g/connections?api-version=v&maxpagesize=5&continuationToken=t",
        ),
    ];
    assert_eq!(cases.len() - 1, ActionKind::ALL.len() - writes_count());
    for (body, expected) in cases {
        let action = one(body.clone());
        assert!(action.kind.is_read_only(), "{body}");
        assert_eq!(call(&action), expected, "{body}");
    }
}

#[tokio::test]
async fn read_only_actions_refuse_bad_fields() {
    let list = |extra: Value| {
        let mut body = json!({"actionName": "listConnectionsInGroup", "group": "g"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    assert_refused(list(json!({"maxPageSize": 0})), "InvalidPageSize", "maxPageSize", None).await;
    assert_refused(
        list(json!({"maxPageSize": 201})),
        "InvalidPageSize",
        "maxPageSize",
        None,
    )
    .await;
    assert_refused(
        list(json!({"continuationToken": "t".repeat(5000)})),
        "InvalidField",
        "continuationToken",
        None,
    )
    .await;
    assert_refused(list(json!({"data": "x"})), "FieldNotApplicable", "data", None).await;
    assert_refused(json!({"actionName": "userExists"}), "MissingField", "userId", None).await;
    assert_refused(
        json!({"actionName": "checkPermission", "connectionId": "c", "permission": "admin"}),
        "InvalidPermission",
        "permission",
        None,
    )
    .await;
}

#[test]
fn the_simple_form_takes_the_recipes_user_id_as_attribution() {
    let plan = parse(
        json!({"user_id": "ada", "room": "lobby", "message": "hi"})
            .to_string()
            .as_bytes(),
        &hubs(),
    )
    .unwrap();
    assert!(plan.simple);
    assert_eq!(plan.attribution.as_deref(), Some("ada"));
    assert_eq!(
        call(&plan.actions[0]),
        "POST /api/hubs/chat/groups/lobby/:send?api-version=v"
    );
    // Action objects keep their own userId; user_id is the simple form's only.
    let action = parse(
        json!({"actionName": "sendToAll", "data": "x"}).to_string().as_bytes(),
        &hubs(),
    )
    .unwrap();
    assert!(!action.simple && action.attribution.is_none());
}

#[tokio::test]
async fn the_simple_forms_user_id_is_validated() {
    assert_refused(
        json!({"user_id": "", "room": "r", "message": "m"}),
        "InvalidUserId",
        "user_id",
        None,
    )
    .await;
    assert_refused(
        json!({"user_id": 7, "room": "r", "message": "m"}),
        "InvalidField",
        "user_id",
        None,
    )
    .await;
    assert_refused(
        json!({"actionName": "sendToAll", "data": "x", "user_id": "ada"}),
        "FieldNotApplicable",
        "user_id",
        None,
    )
    .await;
}

// ----- settings -----

fn connection_string(port: u16) -> String {
    format!("Endpoint=http://127.0.0.1;Port={port};AccessKey={ACCESS_KEY};Version=1.0;")
}

fn env(trust: &str) -> Env {
    Env::from_pairs([
        ("WebPubSubConnectionString", connection_string(9).as_str()),
        ("WebPubSubHub", "chat"),
        (TRUST_SETTING, trust),
    ])
}

fn jwt_env() -> Env {
    env("jwt")
        .with(REQUIRED_ROLE_SETTING, ROLE)
        .with("AuthJwtIssuer", "https://issuer.example")
        .with("AuthJwtAudience", "api://publish")
        .with("AuthJwtSecret", JWT_SECRET)
}

#[test]
fn the_trust_mode_is_required_and_named() {
    let error =
        Settings::from_env(&Env::from_pairs([("WebPubSubConnectionString", connection_string(9))])).unwrap_err();
    assert_eq!(error.setting, TRUST_SETTING);
    assert!(error.problem.contains("functionkey"), "{error}");
    assert_eq!(
        Settings::from_env(&env("anonymous")).unwrap_err().setting,
        TRUST_SETTING
    );
}

#[test]
fn role_based_modes_need_a_role_and_jwt_needs_the_auth_settings() {
    assert_eq!(
        Settings::from_env(&env("jwt")).unwrap_err().setting,
        REQUIRED_ROLE_SETTING
    );
    assert_eq!(
        Settings::from_env(&env("AppService")).unwrap_err().setting,
        REQUIRED_ROLE_SETTING
    );
    // The `Auth*` settings are read once for the whole app: see `server::tests`.
    let jwt = Settings::from_env(&env("jwt").with(REQUIRED_ROLE_SETTING, ROLE)).unwrap();
    assert_eq!(jwt.trust.identity(), Some(IdentityConfig::Jwt));
    assert_eq!(Settings::from_env(&jwt_env()).unwrap().trust.mode_name(), "jwt");
    let appservice = Settings::from_env(&env("appservice").with(REQUIRED_ROLE_SETTING, "a, b")).unwrap();
    assert!(
        matches!(appservice.trust, TrustSettings::AppService { ref required_roles } if required_roles == &["a", "b"])
    );
}

#[test]
fn an_invalid_trust_mode_is_named_without_its_value() {
    // A connection string pasted into the wrong setting must not reach stderr (#14 item 7).
    let pasted = "Endpoint=https://x.webpubsub.azure.com;AccessKey=PASTED-SECRET-KEY;Version=1.0;";
    let error = Settings::from_env(&env(pasted)).unwrap_err();
    assert_eq!(error.setting, TRUST_SETTING);
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("jwt, appservice or functionkey"), "{shown}");
    assert!(
        !shown.contains("PASTED-SECRET-KEY") && !shown.contains("x.webpubsub"),
        "{shown}"
    );
}

#[test]
fn function_key_mode_refuses_a_role_it_would_not_check() {
    assert_eq!(
        Settings::from_env(&env("functionkey")).unwrap().trust.mode_name(),
        "functionkey"
    );
    assert_eq!(
        Settings::from_env(&env("functionkey").with(REQUIRED_ROLE_SETTING, ROLE))
            .unwrap_err()
            .setting,
        REQUIRED_ROLE_SETTING
    );
}

#[test]
fn the_body_limit_is_bounded() {
    assert_eq!(
        Settings::from_env(&env("functionkey")).unwrap().max_body_bytes,
        DEFAULT_MAX_BODY_BYTES
    );
    for bad in ["0", "big", "104857601"] {
        assert_eq!(
            Settings::from_env(&env("functionkey").with(MAX_BODY_SETTING, bad))
                .unwrap_err()
                .setting,
            MAX_BODY_SETTING
        );
    }
}

#[test]
fn the_deadline_defaults_below_the_function_timeout_and_is_bounded() {
    let settings = Settings::from_env(&env("functionkey")).unwrap();
    assert_eq!(settings.deadline, Duration::from_secs(DEFAULT_DEADLINE_SECONDS));
    let host: Value = serde_json::from_str(include_str!("../../../host.json")).unwrap();
    let timeout = host["functionTimeout"].as_str().unwrap();
    let seconds: Vec<u64> = timeout.split(':').map(|part| part.parse().unwrap()).collect();
    let function_timeout = seconds[0] * 3600 + seconds[1] * 60 + seconds[2];
    assert!(DEFAULT_DEADLINE_SECONDS < function_timeout, "{timeout}");
    let set = |value: &str| Settings::from_env(&env("functionkey").with(DEADLINE_SETTING, value));
    assert_eq!(set("5").unwrap().deadline, Duration::from_secs(5));
    for bad in ["0", "231", "-1", "1.5", "soon"] {
        assert_eq!(set(bad).unwrap_err().setting, DEADLINE_SETTING, "{bad}");
    }
}

// ----- a scripted upstream -----

/// A scripted upstream answer (the shared scripted server's).
type Answer = test_support::recorder::Answer;

/// An answer only after the client's timeout.
fn stall() -> Answer {
    Answer::status(200).delayed(Duration::from_secs(5))
}

/// A local HTTP server that records requests and answers from a script (then 200).
struct Upstream {
    port: u16,
    recorder: test_support::recorder::Recorder,
    _server: test_support::Loopback,
}

impl Upstream {
    async fn start(script: impl IntoIterator<Item = Answer>) -> Self {
        let recorder = test_support::recorder::Recorder::new(test_support::recorder::AfterScript::Ok);
        recorder.script(script);
        let server = recorder.start().await;
        Self {
            port: server.port(),
            recorder,
            _server: server,
        }
    }

    fn seen(&self) -> Vec<test_support::recorder::Recorded> {
        self.recorder.requests()
    }

    fn calls(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|seen| {
                format!(
                    "{} {}",
                    seen.method,
                    seen.path_and_query().split("?api-version").next().unwrap()
                )
            })
            .collect()
    }
}

/// Fast retries and a short timeout, so failure tests stay quick.
fn test_options() -> RestOptions {
    RestOptions {
        request_timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(5),
        },
        ..RestOptions::default()
    }
}

fn route_with(env: &Env, port: u16) -> BoxedFilter<(Response,)> {
    route_with_deadline(env, port, None, test_options())
}

fn route_with_deadline(
    env: &Env,
    port: u16,
    deadline: Option<Duration>,
    options: RestOptions,
) -> BoxedFilter<(Response,)> {
    let env = env.clone().with("WebPubSubConnectionString", connection_string(port));
    let mut settings = Settings::from_env(&env).unwrap();
    if let Some(deadline) = deadline {
        settings.deadline = deadline;
    }
    let service = ServiceSettings::from_env(&env).unwrap();
    let jwt = SharedAuth::jwt_settings_from_env(&env, settings.jwt_user().as_slice()).unwrap();
    let auth = SharedAuth::new(jwt.as_ref()).unwrap();
    routes(Arc::new(State::build(&settings, &service, &auth, options).unwrap()))
}

type Reply = test_support::JsonReply;

async fn post(route: &BoxedFilter<(Response,)>, request: warp::test::RequestBuilder) -> Reply {
    test_support::reply_json(&route.clone().recover(error::recover), request).await
}

fn request(body: &Value) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("POST")
        .path("/api/publish")
        .body(body.to_string())
}

fn statuses(reply: &Reply) -> Vec<String> {
    reply.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

// ----- execution -----

#[tokio::test]
async fn a_batch_runs_in_order_and_reports_every_action_done() {
    let upstream = Upstream::start([]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let body = json!([
        {"actionName": "addUserToGroup", "userId": "ada", "group": "ops"},
        {"actionName": "sendToGroup", "group": "ops", "data": {"build": 7}, "dataType": "json"},
        {"actionName": "closeClientConnection", "connectionId": "c9", "reason": "done"},
    ]);
    let reply = post(&route, request(&body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"results": [
            {"index": 0, "action": "addUserToGroup", "status": "done"},
            {"index": 1, "action": "sendToGroup", "status": "done"},
            {"index": 2, "action": "closeClientConnection", "status": "done"},
        ]})
    );
    assert_eq!(
        upstream.calls(),
        [
            "PUT /api/hubs/chat/users/ada/groups/ops",
            "POST /api/hubs/chat/groups/ops/:send",
            "DELETE /api/hubs/chat/connections/c9"
        ]
    );
    assert_eq!(upstream.seen()[1].body.as_ref(), br#"{"build":7}"#);
}

#[tokio::test]
async fn a_bad_action_anywhere_means_no_call_at_all() {
    let upstream = Upstream::start([]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let body = json!([{"actionName": "sendToAll", "data": "first"}, {"actionName": "sendToUser", "data": "second"}]);
    let reply = post(&route, request(&body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (reply.body["field"].as_str(), reply.body["index"].as_u64()),
        (Some("userId"), Some(1))
    );
    assert!(
        upstream.seen().is_empty(),
        "nothing may be sent before the whole request is valid"
    );
}

#[tokio::test]
async fn execution_stops_at_the_first_failure() {
    let not_found = Answer::status(404).with_header("x-ms-error-code", "ConnectionNotFound");
    let upstream = Upstream::start([Answer::status(202), not_found]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let body = json!([
        {"actionName": "sendToAll", "data": "one"},
        {"actionName": "addConnectionToGroup", "connectionId": "gone", "group": "g"},
        {"actionName": "sendToAll", "data": "three"},
    ]);
    let reply = post(&route, request(&body)).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "the service is healthy and knows no such connection: {}",
        reply.body
    );
    assert_eq!(reply.body["code"], "ServiceRejected");
    assert_eq!(statuses(&reply), ["done", "failed", "notAttempted"]);
    let error = &reply.body["results"][1]["error"];
    assert_eq!(
        (error["upstreamStatus"].as_u64(), error["attempts"].as_u64()),
        (Some(404), Some(1))
    );
    assert!(error["message"].as_str().unwrap().contains("ConnectionNotFound"));
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("action 1 (addConnectionToGroup) failed")
    );
    assert_eq!(upstream.seen().len(), 2, "the third action is never sent");
}

#[tokio::test]
async fn input_the_service_refuses_is_a_400_with_results() {
    let invalid_filter = Answer::status(400).with_header("x-ms-error-code", "InvalidFilter");
    let upstream = Upstream::start([Answer::status(202), invalid_filter]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let body = json!([
        {"actionName": "sendToAll", "data": "one"},
        {"actionName": "sendToAll", "data": "two", "filter": "ã"},
    ]);
    let reply = post(&route, request(&body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["code"], "ServiceRejected");
    assert_eq!(statuses(&reply), ["done", "failed"]);
    assert_eq!(reply.body["results"][1]["error"]["upstreamStatus"], 400);
}

#[tokio::test]
async fn a_send_that_may_have_happened_is_unknown_and_never_repeated() {
    let upstream = Upstream::start([Answer::status(500)]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let reply = post(&route, request(&json!({"group": "g", "message": "once"}))).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(statuses(&reply), ["unknown"]);
    assert_eq!(reply.body["results"][0]["error"]["attempts"], 1);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("may or may not have taken effect")
    );
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn an_idempotent_action_is_retried_after_a_5xx() {
    let upstream = Upstream::start([Answer::status(502), Answer::status(500)]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let reply = post(
        &route,
        request(&json!({"actionName": "removeUserFromAllGroups", "userId": "ada"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(upstream.seen().len(), 3);
}

#[tokio::test]
async fn a_timeout_is_a_504_with_an_unknown_outcome() {
    let upstream = Upstream::start([stall()]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let reply = post(
        &route,
        request(&json!([{"actionName": "sendToAll", "data": "x"}, {"actionName": "sendToAll", "data": "y"}])),
    )
    .await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert_eq!(reply.body["code"], "ServiceTimeout");
    assert_eq!(statuses(&reply), ["unknown", "notAttempted"]);
}

#[tokio::test]
async fn the_deadline_answers_504_with_what_was_done_so_far() {
    // The upstream stalls on the second send for 5 s; the client would wait 10 s; the deadline is 300 ms.
    let upstream = Upstream::start([Answer::status(202), stall()]).await;
    let options = RestOptions {
        request_timeout: Duration::from_secs(10),
        ..test_options()
    };
    let route = route_with_deadline(
        &env("functionkey"),
        upstream.port,
        Some(Duration::from_millis(300)),
        options,
    );
    let reply = post(
        &route,
        request(&json!([
            {"actionName": "sendToAll", "data": "x"},
            {"actionName": "sendToAll", "data": "y"},
            {"actionName": "sendToAll", "data": "z"}
        ])),
    )
    .await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert_eq!(reply.body["code"], "PublishDeadlineExceeded");
    assert_eq!(statuses(&reply), ["done", "unknown", "notAttempted"]);
    assert_eq!(reply.body["results"][1]["error"]["code"], "PublishDeadlineExceeded");
    assert_eq!(upstream.seen().len(), 2, "the third send was never made");
}

#[tokio::test]
async fn the_simple_form_answers_published_and_logs_the_attribution() {
    let (captured, _guard) = test_support::capture_logs(crate::telemetry::TextFields);
    let upstream = Upstream::start([]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let reply = post(
        &route,
        request(&json!({"user_id": "ada", "room": "lobby", "message": "hi"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "published");
    assert_eq!(statuses(&reply), ["done"]);
    let logs = captured.text();
    assert!(logs.contains("user_id=ada"), "{logs}");
    assert!(logs.contains(&format!("caller={FUNCTION_KEY_CALLER}")), "{logs}");
    // Action objects answer without a status of their own.
    let reply = post(&route, request(&json!({"actionName": "sendToAll", "data": "x"}))).await;
    assert_eq!(reply.body.get("status"), None, "{}", reply.body);
}

#[tokio::test]
async fn throttling_is_retried_then_passed_on_as_503_with_retry_after() {
    let throttled = || Answer::status(429).with_header("retry-after-ms", "5");
    let upstream = Upstream::start([throttled()]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let reply = post(&route, request(&json!({"group": "g", "message": "x"}))).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a throttled send was refused, so it is retried: {}",
        reply.body
    );
    assert_eq!(upstream.seen().len(), 2);

    let upstream = Upstream::start([throttled(), throttled(), throttled()]).await;
    let route = route_with(&env("functionkey"), upstream.port);
    let reply = post(&route, request(&json!({"group": "g", "message": "x"}))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["code"], "ServiceThrottled");
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    assert_eq!(statuses(&reply), ["failed"]);
    assert_eq!(reply.body["results"][0]["error"]["attempts"], 3);
    assert_eq!(upstream.seen().len(), 3);
}

#[tokio::test]
async fn an_unreachable_service_is_a_502_and_nothing_was_done() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let route = route_with(&env("functionkey"), port);
    let reply = post(&route, request(&json!({"group": "g", "message": "x"}))).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert_eq!(reply.body["code"], "ServiceUnreachable");
    assert_eq!(statuses(&reply), ["failed"]);
    assert_eq!(
        reply.body["results"][0]["error"]["attempts"], 3,
        "connection failures are retried"
    );
}

#[tokio::test]
async fn oversized_bodies_and_other_methods_are_refused() {
    let upstream = Upstream::start([]).await;
    let route = route_with(&env("functionkey").with(MAX_BODY_SETTING, "4096"), upstream.port);
    let reply = post(&route, request(&json!({"group": "g", "message": "x".repeat(5000)}))).await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("PayloadTooLarge"))
    );
    let reply = post(&route, warp::test::request().method("GET").path("/api/publish")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(upstream.seen().is_empty());
}

// ----- trust -----

fn hs_token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn service_claims(extra: Value) -> Value {
    let mut claims =
        json!({"iss": "https://issuer.example", "aud": "api://publish", "sub": "billing-job", "exp": now() + 300});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    claims
}

fn with_bearer(token: &str) -> warp::test::RequestBuilder {
    request(&json!({"group": "g", "message": "x"})).header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn jwt_callers_need_a_valid_token_with_the_role_or_scope() {
    let upstream = Upstream::start([]).await;
    let route = route_with(&jwt_env(), upstream.port);
    let missing = post(&route, request(&json!({"group": "g", "message": "x"}))).await;
    assert_eq!(
        (missing.status, missing.body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("MissingCredentials"))
    );
    let foreign = post(
        &route,
        with_bearer(&hs_token(service_claims(
            json!({"aud": "api://other", "roles": [ROLE]}),
        ))),
    )
    .await;
    assert_eq!(
        (foreign.status, foreign.body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("InvalidCredentials"))
    );
    let no_role = post(
        &route,
        with_bearer(&hs_token(service_claims(json!({"roles": ["Reader"]})))),
    )
    .await;
    assert_eq!(
        (no_role.status, no_role.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("MissingRole"))
    );
    assert!(upstream.seen().is_empty());

    let by_role = post(
        &route,
        with_bearer(&hs_token(service_claims(json!({"roles": ["Reader", ROLE]})))),
    )
    .await;
    assert_eq!(by_role.status, StatusCode::OK, "{}", by_role.body);
    let by_scope = post(
        &route,
        with_bearer(&hs_token(service_claims(json!({"scp": format!("openid {ROLE}")})))),
    )
    .await;
    assert_eq!(by_scope.status, StatusCode::OK, "{}", by_scope.body);
    assert_eq!(upstream.seen().len(), 2);
}

#[tokio::test]
async fn app_service_callers_need_the_role_in_their_principal() {
    let upstream = Upstream::start([]).await;
    let route = route_with(&env("appservice").with(REQUIRED_ROLE_SETTING, ROLE), upstream.port);
    let principal = |role: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(json!({"auth_typ": "aad", "claims": [{"typ": "roles", "val": role}]}).to_string())
    };
    let anonymous = post(&route, request(&json!({"group": "g", "message": "x"}))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let reader = request(&json!({"group": "g", "message": "x"}))
        .header("x-ms-client-principal-id", "app-1")
        .header("x-ms-client-principal", principal("Reader"));
    assert_eq!(post(&route, reader).await.status, StatusCode::FORBIDDEN);
    // A bearer token is not what this mode trusts.
    let bearer = with_bearer(&hs_token(service_claims(json!({"roles": [ROLE]}))));
    assert_eq!(post(&route, bearer).await.status, StatusCode::UNAUTHORIZED);
    assert!(upstream.seen().is_empty());
    let publisher = request(&json!({"group": "g", "message": "x"}))
        .header("x-ms-client-principal-id", "app-1")
        .header("x-ms-client-principal", principal(ROLE));
    assert_eq!(post(&route, publisher).await.status, StatusCode::OK);
}

#[tokio::test]
async fn trust_is_checked_before_the_body_is_judged() {
    let upstream = Upstream::start([]).await;
    let route = route_with(&jwt_env(), upstream.port);
    let reply = post(
        &route,
        warp::test::request()
            .method("POST")
            .path("/api/publish")
            .body("{broken"),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "an untrusted caller learns nothing about the body"
    );
}

// ----- logging -----

#[tokio::test]
async fn each_action_is_logged_with_caller_and_target_but_not_the_payload_or_token() {
    let (captured, _guard) = test_support::capture_logs(crate::telemetry::TextFields);
    let upstream = Upstream::start([]).await;
    let route = route_with(&jwt_env().with("AuthUserIdClaim", "sub"), upstream.port);
    let token = hs_token(service_claims(json!({"sub": "ada", "roles": [ROLE]})));
    let body = json!([
        {"actionName": "sendToGroup", "group": "ops", "data": "secret payload"},
        {"actionName": "addUserToGroup", "userId": "bob", "group": "ops"},
    ]);
    let reply = post(
        &route,
        request(&body).header("authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let logs = captured.text();
    let forwarded = captured.line("Forwarded WebSocket message through Web PubSub");
    test_support::assert_fields(
        &forwarded,
        &[
            "room=ops",
            "user_id=ada",
            "hub=chat",
            "action=sendToGroup",
            "data_type=text",
            "bytes=14",
        ],
    );
    let performed = captured.line("Performed Web PubSub action");
    assert!(
        performed.contains("target_user_id=bob") && performed.contains("user_id=ada"),
        "{performed}"
    );
    assert!(!logs.contains("secret payload"));
    assert!(!logs.contains(token.rsplit('.').next().unwrap()));
}
