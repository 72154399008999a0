//! `negotiate` end to end: real HTTP to the handler, and the issued URL used by a real WebSocket client
//! against the emulator, where the granted rights must hold (allowed group joins succeed, others are
//! Forbidden).

use futures_util::SinkExt;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use webpubsub_control::Env;

use crate::contract::checked;
use crate::support::{Socket, base_env, http, next_json, open_socket, start_emulator, start_handler};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api://webpubsub-control-tests";
const JWT_SECRET: &str = "e2e-negotiate-secret-of-at-least-32-bytes";
const SUBPROTOCOL: &str = "json.webpubsub.azure.v1";

fn bearer_for(user_id: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "iat": now, "exp": now + 300});
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    format!("Bearer {token}")
}

fn jwt_env(connection_string: &str) -> Env {
    base_env()
        .with("WebPubSubConnectionString", connection_string)
        .with("NegotiateIdentity", "jwt")
        .with("AuthJwtIssuer", ISSUER)
        .with("AuthJwtAudience", AUDIENCE)
        .with("AuthJwtSecret", JWT_SECRET)
        .with("NegotiateAllowedGroups", "notifications:user:{userId},conversation:*")
        .with(
            "NegotiateAllowedRoles",
            "webpubsub.joinLeaveGroup.conversation:*,webpubsub.sendToGroup.conversation:*",
        )
}

async fn connect(url: &str) -> Socket {
    let (socket, chosen) = open_socket(url, &[SUBPROTOCOL]).await.expect("the issued URL connects");
    assert_eq!(chosen.as_deref(), Some(SUBPROTOCOL));
    socket
}

async fn send_json(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

/// The ack for `ack_id`, skipping (at most 16) other frames such as group messages.
async fn ack(socket: &mut Socket, ack_id: u64) -> Value {
    for _ in 0..16 {
        let frame = next_json(socket).await;
        if frame["type"] == "ack" && frame["ackId"] == ack_id {
            return frame;
        }
    }
    panic!("no ack {ack_id}");
}

#[tokio::test]
async fn the_issued_url_connects_to_the_emulator_and_the_rights_hold() {
    let emulator = start_emulator().await;
    let handler = start_handler(jwt_env(&emulator.connection_string)).await;

    let reply = http()
        .post(handler.url("/api/negotiate"))
        .header("authorization", bearer_for("ada"))
        .json(&json!({
            "groups": ["conversation:7"],
            "roles": ["webpubsub.joinLeaveGroup.conversation:42", "webpubsub.sendToGroup.conversation:7"],
            "minutesToExpire": 5
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let body = checked("POST", "/api/negotiate", reply).await.json();
    assert_eq!(body["userId"], "ada");
    assert_eq!(body["accessToken"], body["token"]);
    let hub_url = format!("ws://127.0.0.1:{}/client/hubs/chat", emulator.addr.port());
    assert_eq!(body["baseUrl"], hub_url);

    // The claims, checked with the access key.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[format!("http://127.0.0.1:{}/client/hubs/chat", emulator.addr.port())]);
    let key = DecodingKey::from_secret(emulator.access_key.as_bytes());
    let claims = jsonwebtoken::decode::<Value>(body["token"].as_str().unwrap(), &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["webpubsub.group"], json!(["conversation:7"]));
    assert_eq!(
        claims["role"],
        json!([
            "webpubsub.joinLeaveGroup.conversation:42",
            "webpubsub.sendToGroup.conversation:7"
        ])
    );
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 300);

    let mut socket = connect(body["url"].as_str().unwrap()).await;
    let connected = next_json(&mut socket).await;
    assert_eq!(
        (connected["type"].as_str(), connected["event"].as_str()),
        (Some("system"), Some("connected")),
        "{connected}"
    );
    assert_eq!(connected["userId"], "ada");

    // Joining the group the token names succeeds; any other group is Forbidden.
    send_json(
        &mut socket,
        json!({"type": "joinGroup", "group": "conversation:42", "ackId": 1}),
    )
    .await;
    let allowed = ack(&mut socket, 1).await;
    assert_eq!(allowed["success"], true, "{allowed}");
    send_json(
        &mut socket,
        json!({"type": "joinGroup", "group": "conversation:43", "ackId": 2}),
    )
    .await;
    let refused = ack(&mut socket, 2).await;
    assert_eq!(refused["success"], false, "{refused}");
    assert_eq!(refused["error"]["name"], "Forbidden", "{refused}");

    // The token's group was joined on connect, and sending to it is allowed; sending elsewhere is not.
    send_json(
        &mut socket,
        json!({"type": "sendToGroup", "group": "conversation:7", "dataType": "text", "data": "hi", "ackId": 3}),
    )
    .await;
    let mut delivered = None;
    let mut sent = None;
    for _ in 0..4 {
        let frame = next_json(&mut socket).await;
        if frame["type"] == "message" {
            delivered = Some(frame);
        } else if frame["type"] == "ack" && frame["ackId"] == 3 {
            sent = Some(frame);
        }
        if delivered.is_some() && sent.is_some() {
            break;
        }
    }
    assert_eq!(sent.expect("an ack for the send")["success"], true);
    let delivered = delivered.expect("the group message comes back to its member");
    assert_eq!(
        (delivered["group"].as_str(), delivered["data"].as_str()),
        (Some("conversation:7"), Some("hi")),
        "{delivered}"
    );
    send_json(
        &mut socket,
        json!({"type": "sendToGroup", "group": "conversation:8", "dataType": "text", "data": "x", "ackId": 4}),
    )
    .await;
    assert_eq!(ack(&mut socket, 4).await["error"]["name"], "Forbidden");
}

#[tokio::test]
async fn a_disallowed_request_gets_no_token_at_all() {
    let emulator = start_emulator().await;
    let handler = start_handler(jwt_env(&emulator.connection_string)).await;
    let client = http();

    let no_credentials = client.post(handler.url("/api/negotiate")).send().await.unwrap();
    assert_eq!(no_credentials.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        checked("POST", "/api/negotiate", no_credentials).await.json()["code"],
        "MissingCredentials"
    );

    let forged = client
        .post(handler.url("/api/negotiate"))
        .header("authorization", bearer_for("ada").replace('.', ".x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let other_users_inbox = client
        .post(handler.url("/api/negotiate"))
        .header("authorization", bearer_for("ada"))
        .json(&json!({"groups": ["notifications:user:bob"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_users_inbox.status(), StatusCode::FORBIDDEN);
    let body = checked("POST", "/api/negotiate", other_users_inbox).await.json();
    assert_eq!(
        (body["code"].as_str(), body["group"].as_str()),
        (Some("GroupNotAllowed"), Some("notifications:user:bob"))
    );
    assert!(body.get("token").is_none());
}

#[tokio::test]
async fn get_with_query_parameters_serves_functions_style_clients() {
    let emulator = start_emulator().await;
    let handler = start_handler(jwt_env(&emulator.connection_string)).await;
    // The Functions host merges repeated keys with "," (then URL-encodes it) and keeps `code`.
    let reply =
        http()
            .get(handler.url(
                "/api/negotiate?groups=notifications%3Auser%3Aada%2Cconversation%3A1&clientType=SocketIO&code=key",
            ))
            .header("authorization", bearer_for("ada"))
            .send()
            .await
            .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let body = checked("GET", "/api/negotiate", reply).await.json();
    assert_eq!(
        body["baseUrl"],
        format!("ws://127.0.0.1:{}/clients/socketio/hubs/chat", emulator.addr.port())
    );
    let token = body["token"].as_str().unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(token).unwrap().claims;
    assert_eq!(
        claims["webpubsub.group"],
        json!(["notifications:user:ada", "conversation:1"])
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let emulator = start_emulator().await;
    let handler = start_handler(jwt_env(&emulator.connection_string).with("NegotiateRateLimitPerMinute", "3")).await;
    let client = http();
    let negotiate = |user: &str| {
        client
            .post(handler.url("/api/negotiate"))
            .header("authorization", bearer_for(user))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(negotiate("ada").await.unwrap().status(), StatusCode::OK);
    }
    let limited = negotiate("ada").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(
        checked("POST", "/api/negotiate", limited).await.json()["code"],
        "TooManyRequests"
    );
    assert_eq!(
        negotiate("bob").await.unwrap().status(),
        StatusCode::OK,
        "other identities are unaffected"
    );
}

#[tokio::test]
async fn bad_input_is_a_400_with_a_stable_code() {
    let handler = start_handler(base_env()).await;
    let client = http();
    for (body, code) in [
        ("{", "InvalidJson"),
        (r#"{"groups":"lobby"}"#, "InvalidField"),
        (r#"{"minutesToExpire":-1}"#, "InvalidField"),
    ] {
        let reply = client
            .post(handler.url("/api/negotiate"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            checked("POST", "/api/negotiate", reply).await.json()["code"],
            code,
            "{body}"
        );
    }
    let oversized = client
        .post(handler.url("/api/negotiate"))
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        checked("POST", "/api/negotiate", oversized).await.json()["code"],
        "PayloadTooLarge"
    );
}
