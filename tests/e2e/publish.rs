//! `POST /api/publish` end to end: the handler in-process in front of the local emulator, with real
//! WebSocket clients observing every action's effect (messages arrive, membership and permissions change,
//! connections close); bad and untrusted requests reach nobody; and a fault-injecting proxy between the
//! handler and the emulator shows retries, the right error, and that nothing reported done was lost.
//!
//! Absence is shown without timing: after an action that must not reach a client, a marker sent to that
//! client's own connection must be the next frame it reads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use warp::Filter as _;
use webpubsub_control::Env;

use crate::contract::checked;
use crate::support::{
    JSON_SUBPROTOCOL, JsonClient, RunningEmulator, RunningHandler, base_env, client_url, http, open_socket,
    start_emulator, start_handler,
};

/// Longest wait for anything a test expects.
const WAIT: Duration = Duration::from_secs(10);
const HUB: &str = "chat";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api://publish";
const JWT_SECRET: &str = "publish-e2e-secret-at-least-32-bytes-long";
const ROLE: &str = "WebPubSub.Publish";

/// The handler (bearer-token trust) in front of an emulator, or of a proxy to it.
struct Rig {
    emulator: RunningEmulator,
    handler: RunningHandler,
    http: reqwest::Client,
    token: String,
}

fn trusted_env(connection_string: &str) -> Env {
    base_env()
        .with("WebPubSubConnectionString", connection_string)
        .with("WebPubSubHub", HUB)
        .with("PublishTrust", "jwt")
        .with("PublishRequiredRole", ROLE)
        .with("AuthJwtIssuer", ISSUER)
        .with("AuthJwtAudience", AUDIENCE)
        .with("AuthJwtSecret", JWT_SECRET)
}

fn token(sub: &str, roles: &[&str]) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "roles": roles, "iat": now, "exp": now + 300});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

impl Rig {
    async fn start() -> Self {
        let emulator = start_emulator().await;
        let connection_string = emulator.connection_string.clone();
        Self::with_upstream(emulator, &connection_string).await
    }

    /// The handler's REST calls go to `connection_string`; clients connect to `emulator` directly.
    async fn with_upstream(emulator: RunningEmulator, connection_string: &str) -> Self {
        let handler = start_handler(trusted_env(connection_string)).await;
        Self {
            emulator,
            handler,
            http: http(),
            token: token("billing-job", &[ROLE]),
        }
    }

    async fn publish(&self, body: Value) -> Published {
        self.publish_as(Some(&self.token), body).await
    }

    async fn publish_as(&self, token: Option<&str>, body: Value) -> Published {
        let mut request = self.http.post(self.handler.url("/api/publish")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the handler answers");
        let reply = checked("POST", "/api/publish", response).await;
        let status = reply.status;
        let retry_after = reply.headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body = reply.json();
        Published {
            status,
            retry_after,
            body,
        }
    }

    /// Publishes and expects every action done.
    async fn publish_ok(&self, body: Value) {
        let reply = self.publish(body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(reply.statuses().iter().all(|s| s == "done"), "{}", reply.body);
    }

    async fn connect(&self, user: Option<&str>, groups: &[&str], json_protocol: bool) -> Client {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let url = client_url(self.emulator.addr, &self.emulator.access_key, HUB, user, &groups);
        let subprotocols: &[&str] = if json_protocol { &[JSON_SUBPROTOCOL] } else { &[] };
        let (socket, _) = open_socket(&url, subprotocols).await.expect("connects");
        let mut client = Client {
            io: JsonClient::new(socket),
            connection_id: String::new(),
        };
        if json_protocol {
            let connected = client.io.next_in_order().await;
            assert_eq!(connected["event"], "connected", "{connected}");
            client.connection_id = connected["connectionId"].as_str().unwrap().to_owned();
        }
        client
    }

    /// A JSON-subprotocol client.
    async fn json_client(&self, user: &str, groups: &[&str]) -> Client {
        self.connect(Some(user), groups, true).await
    }

    /// Sends a marker to `client`'s own connection and checks it is the next frame: nothing else arrived.
    async fn assert_nothing_else(&self, client: &mut Client, marker: &str) {
        self.publish_ok(
            json!({"actionName": "sendToConnection", "connectionId": client.connection_id, "data": marker}),
        )
        .await;
        assert_eq!(
            client.next_server_data().await,
            json!(marker),
            "an unexpected frame arrived before the marker"
        );
    }
}

struct Published {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Published {
    fn statuses(&self) -> Vec<String> {
        self.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["status"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A WebSocket client of the emulator; `connection_id` is known for JSON clients.
struct Client {
    io: JsonClient,
    connection_id: String,
}

impl Client {
    /// The next data or close frame of a raw client, within `WAIT`.
    async fn next(&mut self) -> Message {
        for _ in 0..100 {
            let frame = tokio::time::timeout(WAIT, self.io.socket.next())
                .await
                .expect("a frame arrives in time")
                .expect("the socket is open")
                .expect("a valid frame");
            if !matches!(frame, Message::Ping(_) | Message::Pong(_)) {
                return frame;
            }
        }
        panic!("only pings in 100 frames");
    }

    /// The next server message of a JSON client: `(dataType, data)` checked as from the server.
    async fn next_server_message(&mut self) -> (String, Value) {
        let frame = self.io.next_in_order().await;
        assert_eq!(
            (frame["type"].as_str(), frame["from"].as_str()),
            (Some("message"), Some("server")),
            "{frame}"
        );
        (frame["dataType"].as_str().unwrap().to_owned(), frame["data"].clone())
    }

    async fn next_server_data(&mut self) -> Value {
        self.next_server_message().await.1
    }
}

// ----- every action, observed by real clients -----

#[tokio::test]
async fn the_simple_form_reaches_the_room_as_text_json_and_binary() {
    let rig = Rig::start().await;
    let mut json_client = rig.json_client("ada", &["ops"]).await;
    let mut raw_client = rig.connect(Some("bob"), &["ops"], false).await;

    let reply = rig.publish(json!({"room": "ops", "message": "deploy done"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"status": "published", "results": [{"index": 0, "action": "sendToGroup", "status": "done"}]})
    );
    assert_eq!(
        json_client.next_server_message().await,
        ("text".into(), json!("deploy done"))
    );
    assert_eq!(raw_client.next().await, Message::text("deploy done"));

    rig.publish_ok(json!({"group": "ops", "message": {"build": 7, "ok": true}, "dataType": "json"}))
        .await;
    assert_eq!(
        json_client.next_server_message().await,
        ("json".into(), json!({"build": 7, "ok": true}))
    );
    let Message::Text(text) = raw_client.next().await else {
        panic!("json arrives as a text frame")
    };
    assert_eq!(
        serde_json::from_str::<Value>(text.as_str()).unwrap(),
        json!({"build": 7, "ok": true})
    );

    rig.publish_ok(json!({"group": "ops", "message": "AAEC/w==", "dataType": "binary"}))
        .await;
    assert_eq!(
        json_client.next_server_message().await,
        ("binary".into(), json!("AAEC/w=="))
    );
    assert_eq!(
        raw_client.next().await,
        Message::Binary(Bytes::from_static(&[0, 1, 2, 255]))
    );
}

#[tokio::test]
async fn send_actions_reach_everyone_a_group_a_user_and_a_connection() {
    let rig = Rig::start().await;
    let mut ada = rig.json_client("ada", &["g1"]).await;
    let mut bob = rig.connect(Some("bob"), &[], false).await;
    let mut carol = rig.json_client("carol", &[]).await;
    let reply = rig
        .publish(json!([
            {"actionName": "sendToAll", "data": "to all but carol", "dataType": "text", "excluded": [carol.connection_id]},
            {"actionName": "sendToGroup", "group": "g1", "data": "{\"n\":1}", "dataType": "json"},
            {"actionName": "sendToUser", "userId": "bob", "data": {"type": "Buffer", "data": [1, 2, 3]}, "dataType": "binary"},
            {"actionName": "sendToConnection", "connectionId": carol.connection_id, "data": "just carol"},
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.statuses(), ["done"; 4]);
    assert_eq!(
        ada.next_server_message().await,
        ("text".into(), json!("to all but carol"))
    );
    assert_eq!(ada.next_server_message().await, ("json".into(), json!({"n": 1})));
    assert_eq!(bob.next().await, Message::text("to all but carol"));
    assert_eq!(bob.next().await, Message::Binary(Bytes::from_static(&[1, 2, 3])));
    // Excluded from the broadcast: the first thing carol sees is her own message.
    assert_eq!(carol.next_server_data().await, json!("just carol"));

    // A filter narrows a broadcast.
    rig.publish_ok(json!({"actionName": "sendToAll", "data": "only carol", "filter": "userId eq 'carol'"}))
        .await;
    assert_eq!(carol.next_server_data().await, json!("only carol"));
    rig.assert_nothing_else(&mut ada, "ada-marker").await;
}

#[tokio::test]
async fn group_membership_actions_change_who_receives() {
    let rig = Rig::start().await;
    let mut ada = rig.json_client("ada", &[]).await;
    let mut bob = rig.json_client("bob", &[]).await;
    rig.publish_ok(json!([
        {"actionName": "addUserToGroup", "userId": "ada", "group": "team"},
        {"actionName": "addConnectionToGroup", "connectionId": bob.connection_id, "group": "team"},
        {"actionName": "sendToGroup", "group": "team", "data": "1"},
    ]))
    .await;
    assert_eq!(ada.next_server_data().await, json!("1"));
    assert_eq!(bob.next_server_data().await, json!("1"));

    rig.publish_ok(json!([
        {"actionName": "removeUserFromGroup", "userId": "ada", "group": "team"},
        {"actionName": "sendToGroup", "group": "team", "data": "2"},
    ]))
    .await;
    assert_eq!(bob.next_server_data().await, json!("2"));
    rig.assert_nothing_else(&mut ada, "ada-1").await;

    rig.publish_ok(json!([
        {"actionName": "removeConnectionFromGroup", "connectionId": bob.connection_id, "group": "team"},
        {"actionName": "addUserToGroup", "userId": "ada", "group": "a"},
        {"actionName": "addUserToGroup", "userId": "ada", "group": "b"},
        {"actionName": "sendToGroup", "group": "team", "data": "3"},
        {"actionName": "sendToGroup", "group": "b", "data": "4"},
    ]))
    .await;
    assert_eq!(ada.next_server_data().await, json!("4"));
    rig.assert_nothing_else(&mut bob, "bob-1").await;

    rig.publish_ok(json!([
        {"actionName": "removeUserFromAllGroups", "userId": "ada"},
        {"actionName": "sendToGroup", "group": "a", "data": "5"},
        {"actionName": "sendToGroup", "group": "b", "data": "6"},
    ]))
    .await;
    rig.assert_nothing_else(&mut ada, "ada-2").await;
}

#[tokio::test]
async fn permissions_are_granted_and_revoked() {
    let rig = Rig::start().await;
    let mut ada = rig.json_client("ada", &[]).await;
    let to_news = json!({"type": "sendToGroup", "group": "news", "data": "hello"});
    assert!(
        !ada.io.acked(to_news.clone()).await,
        "a client without the permission may not publish"
    );

    rig.publish_ok(json!({"actionName": "grantPermission", "connectionId": ada.connection_id, "permission": "sendToGroup", "targetName": "news"}))
        .await;
    assert!(ada.io.acked(to_news.clone()).await, "granted");
    let to_sports = json!({"type": "sendToGroup", "group": "sports", "data": "x"});
    assert!(!ada.io.acked(to_sports).await, "the grant covers only its target group");

    rig.publish_ok(json!({"actionName": "revokePermission", "connectionId": ada.connection_id, "permission": "sendToGroup", "targetName": "news"}))
        .await;
    assert!(!ada.io.acked(to_news).await, "revoked");

    // Without targetName a permission covers every group.
    let join = json!({"type": "joinGroup", "group": "anything"});
    assert!(!ada.io.acked(join.clone()).await);
    rig.publish_ok(
        json!({"actionName": "grantPermission", "connectionId": ada.connection_id, "permission": "joinLeaveGroup"}),
    )
    .await;
    assert!(ada.io.acked(join).await);
}

#[tokio::test]
async fn read_only_actions_answer_what_the_service_knows() {
    let rig = Rig::start().await;
    let ada = rig.json_client("ada", &["team"]).await;
    let bob = rig.json_client("bob", &["team"]).await;
    let rig = &rig;
    let ask = |body: Value| async move {
        let reply = rig.publish(body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.statuses(), ["done"], "{}", reply.body);
        reply.body["results"][0].clone()
    };
    let exists = |body: Value| async move { ask(body).await["exists"].as_bool().expect("exists") };
    assert!(exists(json!({"actionName": "connectionExists", "connectionId": ada.connection_id})).await);
    assert!(!exists(json!({"actionName": "connectionExists", "connectionId": "no-such-connection"})).await);
    assert!(exists(json!({"actionName": "groupExists", "group": "team"})).await);
    assert!(!exists(json!({"actionName": "groupExists", "group": "empty"})).await);
    assert!(exists(json!({"actionName": "userExists", "userId": "bob"})).await);
    assert!(!exists(json!({"actionName": "userExists", "userId": "carol"})).await);

    let check = json!({"actionName": "checkPermission", "connectionId": ada.connection_id, "permission": "sendToGroup", "targetName": "team"});
    assert_eq!(ask(check.clone()).await["granted"], false);
    rig.publish_ok(json!({"actionName": "grantPermission", "connectionId": ada.connection_id, "permission": "sendToGroup", "targetName": "team"}))
        .await;
    let answer = ask(check).await;
    assert_eq!(
        (answer["action"].as_str(), answer["granted"].as_bool()),
        (Some("checkPermission"), Some(true))
    );

    // One page at a time: the first page and its token, then the rest.
    let first = ask(json!({"actionName": "listConnectionsInGroup", "group": "team", "maxPageSize": 1})).await;
    let mut seen: Vec<Value> = first["connections"].as_array().expect("connections").clone();
    assert_eq!(seen.len(), 1, "{first}");
    let token = first["continuationToken"]
        .as_str()
        .expect("a continuation token")
        .to_owned();
    let rest = ask(json!({"actionName": "listConnectionsInGroup", "group": "team", "continuationToken": token})).await;
    assert_eq!(rest.get("continuationToken"), None, "{rest}");
    seen.extend(rest["connections"].as_array().expect("connections").iter().cloned());
    let mut members: Vec<(String, String)> = seen
        .iter()
        .map(|m| {
            (
                m["connectionId"].as_str().unwrap().to_owned(),
                m["userId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    members.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        members,
        [
            (ada.connection_id.clone(), "ada".to_owned()),
            (bob.connection_id.clone(), "bob".to_owned())
        ]
    );

    // Questions and changes mix in one batch, in order.
    let reply = rig
        .publish(json!([
            {"actionName": "removeUserFromGroup", "userId": "bob", "group": "team"},
            {"actionName": "listConnectionsInGroup", "group": "team"}
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let listed = &reply.body["results"][1]["connections"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["userId"], "ada");
}

#[tokio::test]
async fn the_recipes_body_publishes_with_its_user_id() {
    let rig = Rig::start().await;
    let mut ada = rig.json_client("ada", &["lobby"]).await;
    let reply = rig
        .publish(json!({"user_id": "bob", "room": "lobby", "message": "hello from the recipe"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "published");
    assert_eq!(ada.next_server_data().await, json!("hello from the recipe"));
}

#[tokio::test]
async fn close_actions_close_exactly_the_right_connections() {
    let rig = Rig::start().await;
    let mut in_group = rig.json_client("ada", &["g"]).await;
    let mut spared = rig.json_client("bob", &["g"]).await;
    let mut other = rig.json_client("carol", &[]).await;
    let mut kicked = rig.json_client("dave", &[]).await;

    rig.publish_ok(
        json!({"actionName": "closeClientConnection", "connectionId": kicked.connection_id, "reason": "kicked"}),
    )
    .await;
    kicked.io.closed_with("kicked").await;

    rig.publish_ok(json!({"actionName": "closeGroupConnections", "group": "g", "excluded": [spared.connection_id], "reason": "group closed"}))
        .await;
    in_group.io.closed_with("group closed").await;
    rig.assert_nothing_else(&mut spared, "still open").await;
    rig.assert_nothing_else(&mut other, "still open").await;

    rig.publish_ok(json!({"actionName": "closeAllConnections", "reason": "maintenance"}))
        .await;
    spared.io.closed_with("maintenance").await;
    other.io.closed_with("maintenance").await;
}

// ----- refused requests reach nobody -----

#[tokio::test]
async fn bad_inputs_are_400s_naming_the_field_and_nothing_is_sent() {
    let rig = Rig::start().await;
    let mut ada = rig.json_client("ada", &["g"]).await;
    let reply = rig
        .publish(json!([
            {"actionName": "sendToGroup", "group": "g", "data": "must not arrive"},
            {"actionName": "sendToUser", "data": "no user"},
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (
            reply.body["code"].as_str(),
            reply.body["field"].as_str(),
            reply.body["index"].as_u64()
        ),
        (Some("MissingField"), Some("userId"), Some(1))
    );

    let cases = [
        (
            json!({"group": "g", "message": "x", "dataType": "yaml"}),
            "InvalidDataType",
            "dataType",
        ),
        (
            json!({"actionName": "sendToGroup", "group": "g", "data": "x", "messageTtlSeconds": 301}),
            "InvalidMessageTtl",
            "messageTtlSeconds",
        ),
        (
            json!({"actionName": "grantPermission", "connectionId": "c", "permission": "everything"}),
            "InvalidPermission",
            "permission",
        ),
        (
            json!({"actionName": "broadcast", "data": "x"}),
            "UnknownAction",
            "actionName",
        ),
        (
            json!({"group": "g", "message": "x", "exclude": ["c"]}),
            "UnknownField",
            "exclude",
        ),
    ];
    for (body, code, field) in cases {
        let reply = rig.publish(body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (reply.body["code"].as_str(), reply.body["field"].as_str()),
            (Some(code), Some(field)),
            "{body} → {}",
            reply.body
        );
    }
    let hub = rig.publish(json!({"group": "g", "message": "x", "hub": "admin"})).await;
    assert_eq!(
        (hub.status, hub.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("HubNotAllowed"))
    );
    rig.assert_nothing_else(&mut ada, "after the bad requests").await;
}

#[tokio::test]
async fn untrusted_callers_are_refused_and_reach_nobody() {
    let rig = Rig::start().await;
    let mut ada = rig.json_client("ada", &["g"]).await;
    let body = json!({"group": "g", "message": "must not arrive"});
    let anonymous = rig.publish_as(None, body.clone()).await;
    assert_eq!(
        (anonymous.status, anonymous.body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("MissingCredentials"))
    );
    let forged = rig.publish_as(Some("e30.e30.c2ln"), body.clone()).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let reader = rig
        .publish_as(Some(&token("reporting-job", &["Reader"])), body.clone())
        .await;
    assert_eq!(
        (reader.status, reader.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("MissingRole"))
    );
    rig.assert_nothing_else(&mut ada, "after the untrusted requests").await;
}

/// Trust comes before the body: an unauthenticated upload that declares a large (but allowed) body and
/// never sends it is answered 401 at once, so no caller can make the handler hold its body.
#[tokio::test]
async fn an_untrusted_upload_is_refused_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rig = Rig::start().await;
    let mut socket = TcpStream::connect(rig.handler.addr).await.unwrap();
    // 2 000 000 bytes is under PublishMaxBodyBytes, so only the trust check can answer before the body.
    let head = "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Content-Length: 2000000\r\n\r\n{\"group\":\"g\",\"message\":\"";
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&[b'a'; 4096]).await.unwrap();
    let mut answer = [0u8; 12];
    tokio::time::timeout(WAIT, socket.read_exact(&mut answer))
        .await
        .expect("answered while the body is still unsent")
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 401");
}

// ----- a failing upstream -----

/// An injected answer for requests whose path contains `path_part`, `times` times.
struct Fault {
    path_part: &'static str,
    status: u16,
    retry_after_ms: Option<u64>,
    times: u32,
}

/// A proxy on 127.0.0.1 between the handler and the emulator: it answers matching requests with injected
/// failures and forwards the rest unchanged (the `Host` header too, so the REST token's audience holds).
struct FaultyProxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Vec<Fault>>>,
    /// `(path, injected)` of every request, in order.
    seen: Arc<Mutex<Vec<(String, bool)>>>,
    _server: test_support::Loopback,
}

impl FaultyProxy {
    async fn start(target: SocketAddr) -> Self {
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let route = {
            let (faults, seen) = (faults.clone(), seen.clone());
            test_support::recorder::request().then(move |request: test_support::recorder::Recorded| {
                let path = request.path.clone();
                let injected = faults
                    .lock()
                    .unwrap()
                    .iter_mut()
                    .find(|f| f.times > 0 && path.contains(f.path_part))
                    .map(|fault| {
                        fault.times -= 1;
                        (fault.status, fault.retry_after_ms)
                    });
                seen.lock().unwrap().push((path.clone(), injected.is_some()));
                let client = client.clone();
                async move {
                    if let Some((status, retry_after_ms)) = injected {
                        let mut response = warp::http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json");
                        if let Some(ms) = retry_after_ms {
                            response = response.header("retry-after-ms", ms.to_string());
                        }
                        return response
                            .body(bytes::Bytes::from_static(
                                br#"{"error":{"code":"Injected","message":"injected by the test proxy"}}"#,
                            ))
                            .unwrap();
                    }
                    let url = if request.query.is_empty() {
                        format!("http://{target}{path}")
                    } else {
                        format!("http://{target}{path}?{}", request.query)
                    };
                    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
                    let upstream = client
                        .request(method, url)
                        .headers(request.headers)
                        .body(request.body)
                        .send()
                        .await
                        .expect("the emulator answers");
                    let mut response = warp::http::Response::builder().status(upstream.status());
                    for (name, value) in upstream.headers() {
                        response = response.header(name, value);
                    }
                    response.body(upstream.bytes().await.unwrap()).unwrap()
                }
            })
        };
        let server = test_support::serve(route).await;
        let addr = server.addr;
        Self {
            addr,
            faults,
            seen,
            _server: server,
        }
    }

    fn connection_string(&self, access_key: &str) -> String {
        format!(
            "Endpoint=http://{};Port={};AccessKey={access_key};Version=1.0;",
            self.addr.ip(),
            self.addr.port()
        )
    }

    fn inject(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }

    fn clear(&self) {
        self.faults.lock().unwrap().clear();
    }

    /// How many requests for paths containing `path_part` arrived: `(injected, forwarded)`.
    fn attempts(&self, path_part: &str) -> (usize, usize) {
        let seen = self.seen.lock().unwrap();
        let matching = seen.iter().filter(|(path, _)| path.contains(path_part));
        let injected = matching.clone().filter(|(_, injected)| *injected).count();
        (injected, matching.count() - injected)
    }
}

async fn rig_behind_proxy() -> (Rig, FaultyProxy) {
    let emulator = start_emulator().await;
    let proxy = FaultyProxy::start(emulator.addr).await;
    let connection_string = proxy.connection_string(&emulator.access_key);
    (Rig::with_upstream(emulator, &connection_string).await, proxy)
}

fn three_sends(connection_id: &str) -> Value {
    json!([
        {"actionName": "sendToGroup", "group": "g", "data": "one"},
        {"actionName": "sendToUser", "userId": "ada", "data": "two"},
        {"actionName": "sendToConnection", "connectionId": connection_id, "data": "three"},
    ])
}

#[tokio::test]
async fn throttling_is_retried_and_every_message_arrives_once() {
    let (rig, proxy) = rig_behind_proxy().await;
    let mut ada = rig.json_client("ada", &["g"]).await;
    proxy.inject(Fault {
        path_part: "/users/ada/:send",
        status: 429,
        retry_after_ms: Some(10),
        times: 2,
    });
    let reply = rig.publish(three_sends(&ada.connection_id)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.statuses(), ["done", "done", "done"]);
    assert_eq!(
        proxy.attempts("/users/ada/:send"),
        (2, 1),
        "two throttled attempts, then one forwarded"
    );
    for expected in ["one", "two", "three"] {
        assert_eq!(ada.next_server_data().await, json!(expected));
    }
    rig.assert_nothing_else(&mut ada, "no duplicates").await;
}

#[tokio::test]
async fn a_send_that_may_have_happened_is_reported_unknown_not_retried_and_later_actions_are_not_attempted() {
    let (rig, proxy) = rig_behind_proxy().await;
    let mut ada = rig.json_client("ada", &["g"]).await;
    proxy.inject(Fault {
        path_part: "/users/ada/:send",
        status: 503,
        retry_after_ms: None,
        times: u32::MAX,
    });
    let reply = rig.publish(three_sends(&ada.connection_id)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    assert_eq!(reply.body["code"], "ServiceUnavailable");
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    assert_eq!(reply.statuses(), ["done", "unknown", "notAttempted"]);
    let error = &reply.body["results"][1]["error"];
    assert_eq!(
        (error["upstreamStatus"].as_u64(), error["attempts"].as_u64()),
        (Some(503), Some(1))
    );
    assert_eq!(
        proxy.attempts("/users/ada/:send"),
        (1, 0),
        "a send whose fate is unknown is never repeated"
    );
    assert_eq!(
        proxy.attempts("/connections/"),
        (0, 0),
        "the third action was not attempted"
    );
    // What was reported done arrived; nothing else did.
    assert_eq!(ada.next_server_data().await, json!("one"));
    proxy.clear();
    rig.assert_nothing_else(&mut ada, "nothing after one").await;
}

#[tokio::test]
async fn explicit_back_pressure_is_retried_then_reported_failed() {
    let (rig, proxy) = rig_behind_proxy().await;
    let mut ada = rig.json_client("ada", &[]).await;
    proxy.inject(Fault {
        path_part: "/users/ada/groups/g",
        status: 503,
        retry_after_ms: Some(10),
        times: u32::MAX,
    });
    let reply = rig
        .publish(json!([
            {"actionName": "sendToConnection", "connectionId": ada.connection_id, "data": "before"},
            {"actionName": "addUserToGroup", "userId": "ada", "group": "g"},
            {"actionName": "sendToGroup", "group": "g", "data": "after"},
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    assert_eq!(reply.statuses(), ["done", "failed", "notAttempted"]);
    assert_eq!(
        reply.body["results"][1]["error"]["attempts"], 4,
        "the first try and three retries"
    );
    assert_eq!(proxy.attempts("/users/ada/groups/g"), (4, 0));
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("action 1 (addUserToGroup) failed"),
        "{}",
        reply.body
    );
    assert_eq!(ada.next_server_data().await, json!("before"));
    proxy.clear();
    rig.assert_nothing_else(&mut ada, "membership unchanged").await;
}

#[tokio::test]
async fn an_idempotent_action_is_retried_through_server_errors() {
    let (rig, proxy) = rig_behind_proxy().await;
    let mut ada = rig.json_client("ada", &[]).await;
    proxy.inject(Fault {
        path_part: "/groups/g/connections/",
        status: 500,
        retry_after_ms: None,
        times: 2,
    });
    rig.publish_ok(json!([
        {"actionName": "addConnectionToGroup", "connectionId": ada.connection_id, "group": "g"},
        {"actionName": "sendToGroup", "group": "g", "data": "joined"},
    ]))
    .await;
    assert_eq!(proxy.attempts("/groups/g/connections/"), (2, 1));
    assert_eq!(ada.next_server_data().await, json!("joined"));
}

#[tokio::test]
async fn nothing_listening_is_a_502_after_retries_and_nothing_is_done() {
    let emulator = start_emulator().await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!(
        "Endpoint=http://127.0.0.1;Port={closed_port};AccessKey={};Version=1.0;",
        emulator.access_key
    );
    let rig = Rig::with_upstream(emulator, &nowhere).await;
    let reply = rig
        .publish(json!([{"actionName": "sendToAll", "data": "x"}, {"actionName": "sendToAll", "data": "y"}]))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert_eq!(reply.body["code"], "ServiceUnreachable");
    assert_eq!(reply.statuses(), ["failed", "notAttempted"]);
    assert_eq!(
        reply.body["results"][0]["error"]["attempts"], 4,
        "connection failures are retried: nothing was sent"
    );
}
