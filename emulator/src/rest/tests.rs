//! REST tests over real sockets: every operation, its status codes and errors, paging and tokens.

use super::paging::GroupPage;
use super::query::Query;
use super::route::path_segments;
use super::*;
use crate::config::{DEV_ACCESS_KEY, EmulatorConfig};
use crate::connection::{Connection, SocketQueue};
use crate::protocol::Frame;
use crate::service::GroupMember;
use crate::service::Target;
use bytes::Bytes;
use serde_json::Map;
use serde_json::{Value, json};
use warp::http::{HeaderMap, Method, header};
use webpubsub_protocol::jwt as token;
use webpubsub_protocol::keys::{AccessKey, ServiceKeys};

const V: &str = "api-version=2024-12-01";

struct Emulator {
    service: Arc<Service>,
    base: String,
    http: reqwest::Client,
    _server: test_support::Loopback,
}

struct Client {
    connection: Arc<Connection>,
    queue: SocketQueue,
}

impl Client {
    fn id(&self) -> &str {
        &self.connection.id
    }

    /// Frames queued so far.
    fn frames(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Ok(frame) = self.queue.frames.try_recv() {
            frames.push(frame);
        }
        frames
    }

    fn texts(&mut self) -> Vec<String> {
        self.frames()
            .into_iter()
            .filter_map(|f| match f {
                Frame::Text(t) => Some(t),
                Frame::Binary(_) => None,
            })
            .collect()
    }
}

/// The REST routes served on 127.0.0.1, port 0.
async fn emulator() -> Emulator {
    let service = Service::new(EmulatorConfig::default());
    let server = test_support::serve(routes(service.clone())).await;
    let base = server.url("");
    Emulator {
        service,
        base,
        http: reqwest::Client::new(),
        _server: server,
    }
}

fn dev_keys() -> ServiceKeys {
    ServiceKeys::new(AccessKey::new(DEV_ACCESS_KEY).unwrap())
}

fn bearer(aud: &str, key: &str, exp_offset: i64) -> String {
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(aud));
    claims.insert("exp".into(), json!(token::unix_now() as i64 + exp_offset));
    format!("Bearer {}", token::sign(&claims, &AccessKey::new(key).unwrap()))
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Emulator {
    /// A raw (no subprotocol) client in `hub`.
    fn connect(&self, hub: &str, user: Option<&str>, groups: &[&str]) -> Client {
        let (connection, queue) = crate::service::tests::connect(&self.service, hub, user, groups);
        Client { connection, queue }
    }

    /// A request with a valid token for `path` (which includes the query).
    fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        self.http
            .request(method, &url)
            .header("authorization", bearer(&url, DEV_ACCESS_KEY, 3600))
    }

    async fn call(&self, method: &str, path: &str) -> Reply {
        reply(self.request(method, path)).await
    }

    async fn send(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        reply(
            self.request("POST", path)
                .header("content-type", content_type)
                .body(body.into()),
        )
        .await
    }
}

async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request reaches the emulator");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap_or_default();
    Reply { status, headers, body }
}

/// The error code, after checking body and header agree.
fn error_code(response: &Reply) -> String {
    let header = response
        .headers
        .get("x-ms-error-code")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.json();
    assert_eq!(body["error"]["code"], json!(header), "body and header codes agree");
    header
}

#[tokio::test]
async fn health_needs_nothing() {
    let emulator = emulator().await;
    let response = reply(emulator.http.head(format!("{}/api/health", emulator.base))).await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn unknown_path_is_404_with_service_error_shape() {
    let emulator = emulator().await;
    let response = emulator.call("POST", &format!("/api/hubs/chat/:nope?{V}")).await;
    assert_eq!(response.status, 404);
    assert_eq!(error_code(&response), "NotFound");
    assert!(
        response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no REST operation")
    );
}

#[tokio::test]
async fn wrong_method_is_405() {
    let emulator = emulator().await;
    let response = emulator.call("GET", &format!("/api/hubs/chat/:send?{V}")).await;
    assert_eq!(response.status, 405);
    assert_eq!(error_code(&response), "MethodNotAllowed");
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let emulator = emulator().await;
    let path = format!("/api/hubs/chat/users/u?{V}");
    let url = format!("{}{path}", emulator.base);
    let no_token = reply(
        emulator
            .http
            .get(format!("{}/api/hubs/chat/groups/g/connections?{V}", emulator.base)),
    )
    .await;
    assert_eq!(no_token.status, 401);
    assert_eq!(no_token.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(error_code(&no_token), "Unauthorized");
    let wrong_key = "another-key-another-key-another-key-000";
    let cases = [
        bearer(&url, wrong_key, 3600),
        bearer(&url, DEV_ACCESS_KEY, -3600),
        bearer(
            &format!("{}/api/hubs/other/users/u", emulator.base),
            DEV_ACCESS_KEY,
            3600,
        ),
        "Bearer not-a-jwt".to_owned(),
    ];
    for authorization in cases {
        let response = reply(emulator.http.head(&url).header("authorization", authorization)).await;
        assert_eq!(response.status, 401);
    }
    // Audience without the query, and in another case, are accepted.
    let without_query = format!("{}/api/hubs/CHAT/users/u", emulator.base);
    let response = reply(
        emulator
            .http
            .head(&url)
            .header("authorization", bearer(&without_query, DEV_ACCESS_KEY, 60)),
    )
    .await;
    assert_eq!(response.status, 404);
}

#[tokio::test]
async fn error_bodies_never_echo_the_token() {
    let emulator = emulator().await;
    let url = format!("{}/api/hubs/chat/:send?{V}", emulator.base);
    let token = bearer(&url, "another-key-another-key-another-key-000", 3600);
    let response = reply(emulator.http.post(&url).header("authorization", &token)).await;
    assert_eq!(response.status, 401);
    let body = String::from_utf8_lossy(&response.body).into_owned();
    assert!(!body.contains(token.trim_start_matches("Bearer ")));
}

#[tokio::test]
async fn api_version_is_required_and_checked() {
    let emulator = emulator().await;
    let missing = emulator.call("HEAD", "/api/hubs/chat/users/u").await;
    assert_eq!(missing.status, 400);
    let missing = emulator.call("DELETE", "/api/hubs/chat/users/u/groups").await;
    assert_eq!(error_code(&missing), "MissingApiVersion");
    let unsupported = emulator
        .call("DELETE", "/api/hubs/chat/users/u/groups?api-version=2019-01-01")
        .await;
    assert_eq!(error_code(&unsupported), "UnsupportedApiVersion");
    assert!(
        unsupported.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2024-12-01")
    );
    for version in API_VERSIONS {
        let ok = emulator
            .call(
                "DELETE",
                &format!("/api/hubs/chat/users/u/groups?api-version={version}"),
            )
            .await;
        assert_eq!(ok.status, 204, "{version}");
    }
}

#[tokio::test]
async fn invalid_names_are_400() {
    let emulator = emulator().await;
    let bad_hub = emulator.call("HEAD", &format!("/api/hubs/1chat/users/u?{V}")).await;
    assert_eq!(bad_hub.status, 400);
    let long_group = format!("/api/hubs/chat/users/u/groups/{}", "g".repeat(1025));
    let cases = [
        ("/api/hubs/1chat/users/u/groups", "InvalidHubName"),
        (long_group.as_str(), "InvalidGroupName"),
        ("/api/hubs/chat/users/u/groups/%20%20", "InvalidGroupName"),
        ("/api/hubs/chat/permissions/fly/connections/c", "InvalidPermission"),
        ("/api/hubs/chat/connections/%20", "InvalidConnectionId"),
        ("/api/hubs/chat/connections/%20/:send", "InvalidConnectionId"),
        ("/api/hubs/chat/groups/%20/:closeConnections", "InvalidGroupName"),
    ];
    for (path, code) in cases {
        let method = if path.contains("/:") { "POST" } else { "DELETE" };
        let response = emulator.call(method, &format!("{path}?{V}")).await;
        assert_eq!(
            (response.status, error_code(&response)),
            (400, code.to_owned()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn send_to_all_delivers_each_content_type() {
    let emulator = emulator().await;
    let mut a = emulator.connect("chat", Some("alice"), &[]);
    let path = format!("/api/hubs/Chat/:send?{V}");
    assert_eq!(
        emulator.send(&path, "text/plain; charset=utf-8", "hello").await.status,
        202
    );
    assert_eq!(emulator.send(&path, "application/json", r#"{"a":1}"#).await.status, 202);
    assert_eq!(
        emulator
            .send(&path, "application/octet-stream", vec![0u8, 1, 255])
            .await
            .status,
        202
    );
    assert_eq!(
        a.frames(),
        vec![
            Frame::Text("hello".into()),
            Frame::Text(r#"{"a":1}"#.into()),
            Frame::Binary(Bytes::from_static(&[0, 1, 255]))
        ]
    );
    // Sends aimed at nobody still succeed.
    assert_eq!(
        emulator
            .send(&format!("/api/hubs/empty/:send?{V}"), "text/plain", "x")
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn send_to_all_honours_excluded_and_filter() {
    let emulator = emulator().await;
    let mut a = emulator.connect("chat", Some("alice"), &["g1"]);
    let mut b = emulator.connect("chat", Some("bob"), &[]);
    let mut c = emulator.connect("chat", None, &["g1"]);
    let path = format!("/api/hubs/chat/:send?{V}&excluded={}&excluded={}", a.id(), b.id());
    assert_eq!(emulator.send(&path, "text/plain", "1").await.status, 202);
    assert_eq!(
        (a.texts().len(), b.texts().len(), c.texts(),),
        (0, 0, vec!["1".to_owned()])
    );

    let filter = "%27g1%27%20in%20groups%20and%20userId%20ne%20null";
    let path = format!("/api/hubs/chat/:send?{V}&filter={filter}");
    assert_eq!(emulator.send(&path, "text/plain", "2").await.status, 202);
    assert_eq!(
        (a.texts(), b.texts().len(), c.texts().len()),
        (vec!["2".to_owned()], 0, 0)
    );
}

#[tokio::test]
async fn invalid_filter_is_400_with_the_reason() {
    let emulator = emulator().await;
    let path = format!("/api/hubs/chat/:send?{V}&filter=userId%20%3D%20%27a%27");
    let response = emulator.send(&path, "text/plain", "x").await;
    assert_eq!(response.status, 400);
    assert_eq!(error_code(&response), "InvalidFilter");
    let message = response.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("position 7") && message.contains("eq"), "{message}");
}

#[tokio::test]
async fn message_ttl_is_validated() {
    let emulator = emulator().await;
    for (ttl, status) in [("0", 202), ("300", 202), ("301", 400), ("-1", 400), ("abc", 400)] {
        let path = format!("/api/hubs/chat/:send?{V}&messageTtlSeconds={ttl}");
        assert_eq!(
            emulator.send(&path, "text/plain", "x").await.status,
            status,
            "ttl {ttl}"
        );
    }
}

#[tokio::test]
async fn send_body_rules() {
    let emulator = emulator().await;
    let path = format!("/api/hubs/chat/:send?{V}");
    let unsupported = emulator.send(&path, "application/xml", "<a/>").await;
    assert_eq!(unsupported.status, 415);
    assert_eq!(error_code(&unsupported), "UnsupportedMediaType");
    let bad_json = emulator.send(&path, "application/json", "{nope").await;
    assert_eq!(error_code(&bad_json), "InvalidPayload");
    let bad_text = emulator.send(&path, "text/plain", vec![0xffu8, 0xfe]).await;
    assert_eq!(error_code(&bad_text), "InvalidPayload");
    let mut a = emulator.connect("chat", None, &[]);
    let at_limit = emulator
        .send(&path, "application/octet-stream", vec![7u8; MAX_BODY_BYTES])
        .await;
    assert_eq!(at_limit.status, 202);
    assert_eq!(a.frames().len(), 1);
    let too_big = emulator
        .send(&path, "application/octet-stream", vec![7u8; MAX_BODY_BYTES + 1])
        .await;
    assert_eq!(too_big.status, 413);
    assert_eq!(error_code(&too_big), "PayloadTooLarge");
    assert!(a.frames().is_empty());
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let emulator = emulator().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = format!("/api/hubs/chat/:send?{V}");
    let url = format!("{}{path}", emulator.base);
    let host = emulator.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        bearer(&url, DEV_ACCESS_KEY, 60)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 300 * 1024];
    for _ in 0..5 {
        // The server may answer 413 and stop reading before every chunk is written.
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = vec![0u8; 64];
    let read = stream.read(&mut response).await.unwrap();
    let status_line = String::from_utf8_lossy(&response[..read]).into_owned();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

#[tokio::test]
async fn send_to_group_user_and_connection() {
    let emulator = emulator().await;
    let mut a = emulator.connect("chat", Some("alice"), &["room"]);
    let mut b = emulator.connect("chat", Some("bob"), &["room"]);
    let group = format!("/api/hubs/chat/groups/room/:send?{V}&excluded={}", b.id());
    assert_eq!(emulator.send(&group, "text/plain", "to-group").await.status, 202);
    let user = format!("/api/hubs/chat/users/bob/:send?{V}");
    assert_eq!(emulator.send(&user, "text/plain", "to-bob").await.status, 202);
    let user_filtered = format!("/api/hubs/chat/users/bob/:send?{V}&filter=userId%20eq%20%27x%27");
    assert_eq!(emulator.send(&user_filtered, "text/plain", "nobody").await.status, 202);
    let connection = format!("/api/hubs/chat/connections/{}/:send?{V}", a.id());
    assert_eq!(emulator.send(&connection, "text/plain", "to-a").await.status, 202);
    let missing = format!("/api/hubs/chat/connections/missing/:send?{V}");
    assert_eq!(emulator.send(&missing, "text/plain", "lost").await.status, 202);
    assert_eq!(a.texts(), vec!["to-group", "to-a"]);
    assert_eq!(b.texts(), vec!["to-bob"]);
}

#[tokio::test]
async fn group_names_with_reserved_characters_round_trip() {
    let emulator = emulator().await;
    let mut a = emulator.connect("chat", None, &["a/b c?"]);
    let path = format!("/api/hubs/chat/groups/a%2Fb%20c%3F/:send?{V}");
    assert_eq!(emulator.send(&path, "text/plain", "x").await.status, 202);
    assert_eq!(a.texts(), vec!["x"]);
}

#[tokio::test]
async fn existence_checks() {
    let emulator = emulator().await;
    let a = emulator.connect("chat", Some("alice"), &["room"]);
    let cases = [
        (format!("/api/hubs/chat/connections/{}?{V}", a.id()), 200),
        (format!("/api/hubs/chat/connections/nope?{V}"), 404),
        (format!("/api/hubs/chat/groups/room?{V}"), 200),
        (format!("/api/hubs/chat/groups/other?{V}"), 404),
        (format!("/api/hubs/chat/users/alice?{V}"), 200),
        (format!("/api/hubs/chat/users/bob?{V}"), 404),
        (format!("/api/hubs/other/users/alice?{V}"), 404),
    ];
    for (path, status) in cases {
        assert_eq!(emulator.call("HEAD", &path).await.status, status, "{path}");
    }
}

#[tokio::test]
async fn connection_group_membership() {
    let emulator = emulator().await;
    let a = emulator.connect("chat", None, &[]);
    let member = format!("/api/hubs/chat/groups/room/connections/{}?{V}", a.id());
    assert_eq!(emulator.call("PUT", &member).await.status, 200);
    assert!(emulator.service.exists("chat", Target::Group("room")));
    let missing = emulator
        .call("PUT", &format!("/api/hubs/chat/groups/room/connections/ghost?{V}"))
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(error_code(&missing), "ConnectionNotFound");
    assert_eq!(emulator.call("DELETE", &member).await.status, 204);
    assert!(!emulator.service.exists("chat", Target::Group("room")));
    assert_eq!(emulator.call("DELETE", &member).await.status, 204);

    emulator.service.add_connection_to_group("chat", "x", a.id());
    emulator.service.add_connection_to_group("chat", "y", a.id());
    let all = format!("/api/hubs/chat/connections/{}/groups?{V}", a.id());
    assert_eq!(emulator.call("DELETE", &all).await.status, 204);
    assert!(
        !emulator.service.exists("chat", Target::Group("x")) && !emulator.service.exists("chat", Target::Group("y"))
    );
}

#[tokio::test]
async fn user_group_membership() {
    let emulator = emulator().await;
    let _a = emulator.connect("chat", Some("alice"), &[]);
    let room = format!("/api/hubs/chat/users/alice/groups/room?{V}");
    assert_eq!(emulator.call("PUT", &room).await.status, 200);
    assert!(emulator.service.exists("chat", Target::Group("room")));
    assert_eq!(emulator.call("DELETE", &room).await.status, 204);
    assert!(!emulator.service.exists("chat", Target::Group("room")));
    emulator.service.add_user_to_group("chat", "r2", "alice");
    let all = format!("/api/hubs/chat/users/alice/groups?{V}");
    assert_eq!(emulator.call("DELETE", &all).await.status, 204);
    assert!(!emulator.service.exists("chat", Target::Group("r2")));
}

#[tokio::test]
async fn add_and_remove_groups_by_filter() {
    let emulator = emulator().await;
    let a = emulator.connect("chat", Some("alice"), &[]);
    let b = emulator.connect("chat", Some("bob"), &[]);
    let rest = &emulator;
    let change = |operation: &str, body: &str| {
        let path = format!("/api/hubs/chat/:{operation}?{V}");
        let body = body.to_owned();
        async move { rest.send(&path, "application/json", body).await }
    };
    let add = change("addToGroups", r#"{"groups":["g1","g2"],"filter":"userId eq 'alice'"}"#).await;
    assert_eq!(add.status, 200);
    let members = |g: &str| {
        emulator
            .service
            .group_connections("chat", g)
            .into_iter()
            .map(|m| m.connection_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(members("g1"), vec![a.id().to_owned()]);
    assert_eq!(members("g2"), vec![a.id().to_owned()]);
    assert_eq!(change("addToGroups", r#"{"groups":["g3"]}"#).await.status, 200);
    assert_eq!(members("g3").len(), 2);
    let remove = change("removeFromGroups", r#"{"groups":["g3"],"filter":"userId eq 'bob'"}"#).await;
    assert_eq!(remove.status, 200);
    assert_eq!(members("g3"), vec![a.id().to_owned()]);
    assert!(!members("g1").contains(&b.id().to_owned()));

    let rejected = [
        (r#"{"filter":"true"}"#, "InvalidBody"),
        (r#"{"groups":["g"],"filter":"userId"}"#, "InvalidFilter"),
        (r#"{"groups":[" "]}"#, "InvalidGroupName"),
    ];
    for (body, code) in rejected {
        assert_eq!(error_code(&change("addToGroups", body).await), code, "{body}");
    }
}

#[tokio::test]
async fn closes_end_connections() {
    let emulator = emulator().await;
    let a = emulator.connect("chat", Some("alice"), &["room"]);
    let b = emulator.connect("chat", Some("alice"), &[]);
    let c = emulator.connect("chat", Some("carol"), &["room"]);
    let d = emulator.connect("chat", None, &[]);
    let exists = |id: &str| emulator.service.exists("chat", Target::Connection(id));
    let close_user = format!(
        "/api/hubs/chat/users/alice/:closeConnections?{V}&excluded={}&reason=bye",
        b.id()
    );
    assert_eq!(emulator.call("POST", &close_user).await.status, 204);
    assert!(!exists(a.id()) && exists(b.id()));
    let close_group = format!("/api/hubs/chat/groups/room/:closeConnections?{V}");
    assert_eq!(emulator.call("POST", &close_group).await.status, 204);
    assert!(!exists(c.id()));
    let close_one = format!("/api/hubs/chat/connections/{}?{V}&reason=done", b.id());
    assert_eq!(emulator.call("DELETE", &close_one).await.status, 204);
    assert!(!exists(b.id()));
    assert_eq!(emulator.call("DELETE", &close_one).await.status, 204);
    let close_all = format!("/api/hubs/chat/:closeConnections?{V}");
    assert_eq!(emulator.call("POST", &close_all).await.status, 204);
    assert!(!exists(d.id()));
    let long_reason = format!(
        "/api/hubs/chat/:closeConnections?{V}&reason={}",
        "r".repeat(MAX_REASON_CHARS + 1)
    );
    assert_eq!(emulator.call("POST", &long_reason).await.status, 400);
}

#[tokio::test]
async fn permissions_grant_check_revoke() {
    let emulator = emulator().await;
    let a = emulator.connect("chat", None, &[]);
    let path = |p: &str, target: &str| format!("/api/hubs/chat/permissions/{p}/connections/{}?{V}{target}", a.id());
    // In order: (method, permission, targetName query, expected status).
    let steps = [
        ("HEAD", "sendToGroup", "&targetName=g", 404),
        ("PUT", "sendToGroup", "&targetName=g", 200),
        ("HEAD", "sendToGroup", "&targetName=g", 200),
        ("HEAD", "sendToGroup", "&targetName=h", 404),
        ("HEAD", "joinLeaveGroup", "&targetName=g", 404),
        ("DELETE", "sendToGroup", "&targetName=g", 204),
        ("HEAD", "sendToGroup", "&targetName=g", 404),
        ("PUT", "joinLeaveGroup", "", 200),
        ("HEAD", "joinLeaveGroup", "&targetName=any", 200),
    ];
    for (method, permission, target, status) in steps {
        let response = emulator.call(method, &path(permission, target)).await;
        assert_eq!(response.status, status, "{method} {permission}{target}");
    }
    let ghost = emulator
        .call(
            "PUT",
            &format!("/api/hubs/chat/permissions/sendToGroup/connections/ghost?{V}"),
        )
        .await;
    assert_eq!(error_code(&ghost), "ConnectionNotFound");
    let bad_target = emulator.call("PUT", &path("sendToGroup", "&targetName=%20")).await;
    assert_eq!(error_code(&bad_target), "InvalidTargetName");
}

#[tokio::test]
async fn generate_token_signs_client_tokens() {
    let emulator = emulator().await;
    let path = format!(
        "/api/hubs/Chat/:generateToken?{V}&userId=alice&role=webpubsub.joinLeaveGroup&role=r2&group=g1&minutesToExpire=5"
    );
    let response = emulator.call("POST", &path).await;
    assert_eq!(response.status, 200);
    let token = response.json()["token"].as_str().unwrap().to_owned();
    let claims = token::verify(&token, &dev_keys(), token::unix_now()).unwrap();
    assert_eq!(claims["aud"], json!(format!("{}/client/hubs/chat", emulator.base)));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["role"], json!(["webpubsub.joinLeaveGroup", "r2"]));
    assert_eq!(claims["webpubsub.group"], json!(["g1"]));
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 300);

    let mqtt = emulator
        .call("POST", &format!("/api/hubs/chat/:generateToken?{V}&clientType=mqtt"))
        .await;
    let token = mqtt.json()["token"].as_str().unwrap().to_owned();
    let claims = token::verify(&token, &dev_keys(), token::unix_now()).unwrap();
    assert_eq!(
        claims["aud"],
        json!(format!("{}/clients/mqtt/hubs/chat", emulator.base))
    );
    assert!(claims.get("sub").is_none());

    let socketio = emulator
        .call(
            "POST",
            &format!("/api/hubs/chat/:generateToken?{V}&clientType=SocketIO"),
        )
        .await;
    let token = socketio.json()["token"].as_str().unwrap().to_owned();
    let claims = token::verify(&token, &dev_keys(), token::unix_now()).unwrap();
    assert_eq!(
        claims["aud"],
        json!(format!("{}/clients/socketio/hubs/chat", emulator.base))
    );

    for bad in ["clientType=ws", "minutesToExpire=0", "minutesToExpire=x", "group=%20"] {
        let response = emulator
            .call("POST", &format!("/api/hubs/chat/:generateToken?{V}&{bad}"))
            .await;
        assert_eq!(response.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn list_group_connections_pages() {
    let emulator = emulator().await;
    let clients: Vec<Client> = (0..5)
        .map(|i| emulator.connect("chat", Some(&format!("u{i}")), &["room"]))
        .collect();
    let mut expected: Vec<String> = clients.iter().map(|c| c.id().to_owned()).collect();
    expected.sort();

    let mut seen = Vec::new();
    let mut link = Some(format!("/api/hubs/chat/groups/room/connections?{V}&maxpagesize=2"));
    let mut pages = 0;
    while let Some(path) = link.take() {
        pages += 1;
        assert!(pages <= 5, "paging must end");
        let response = emulator.call("GET", &path).await;
        assert_eq!(response.status, 200);
        let body = response.json();
        for item in body["value"].as_array().unwrap() {
            assert!(item["userId"].as_str().unwrap().starts_with('u'));
            seen.push(item["connectionId"].as_str().unwrap().to_owned());
        }
        link = body["nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    let top = emulator
        .call(
            "GET",
            &format!("/api/hubs/chat/groups/room/connections?{V}&maxpagesize=2&top=3"),
        )
        .await;
    let body = top.json();
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    let next = body["nextLink"].as_str().unwrap().to_owned();
    assert!(next.contains("top=1"), "{next}");
    let last = emulator.call("GET", &next).await.json();
    assert_eq!(last["value"].as_array().unwrap().len(), 1);
    assert!(last.get("nextLink").is_none());

    let empty = emulator
        .call("GET", &format!("/api/hubs/chat/groups/none/connections?{V}"))
        .await
        .json();
    assert_eq!(empty, json!({"value": []}));
    let bad_size = emulator
        .call(
            "GET",
            &format!("/api/hubs/chat/groups/room/connections?{V}&maxpagesize=201"),
        )
        .await;
    assert_eq!(bad_size.status, 400);
    let bad_token = emulator
        .call(
            "GET",
            &format!("/api/hubs/chat/groups/room/connections?{V}&continuationToken=zz"),
        )
        .await;
    assert_eq!(error_code(&bad_token), "InvalidContinuationToken");
}

#[test]
fn page_arithmetic() {
    let members: Vec<GroupMember> = ["a", "b", "c"]
        .iter()
        .map(|id| GroupMember {
            connection_id: id.to_string(),
            user_id: None,
        })
        .collect();
    let first = GroupPage::of(&members, None, 2, None);
    assert_eq!((first.items.len(), first.next_after), (2, Some("b")));
    let second = GroupPage::of(&members, Some("b"), 2, None);
    assert_eq!((second.items.len(), second.next_after), (1, None));
    // A member that left between pages does not shift the next page.
    let rest = GroupPage::of(&members[1..], Some("a"), 5, None);
    assert_eq!(rest.items.len(), 2);
    let capped = GroupPage::of(&members, None, 5, Some(2));
    assert_eq!(
        (capped.items.len(), capped.next_after, capped.remaining_top),
        (2, None, Some(0))
    );
}

#[test]
fn query_names_ignore_case_and_singletons_reject_repeats() {
    let query = Query::parse("API-VERSION=1&excluded=a&Excluded=b&x=1&x=2");
    assert_eq!(query.one("api-version").unwrap(), Some("1"));
    assert_eq!(query.all("excluded").collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(query.one("x").unwrap_err().code, "InvalidQueryParameter");
}

#[test]
fn path_segments_decode() {
    assert_eq!(
        path_segments("/api/hubs/h/groups/a%2Fb/").unwrap(),
        vec!["hubs", "h", "groups", "a/b"]
    );
    assert_eq!(path_segments("/api/hubs/%FF").unwrap_err().code, "InvalidPath");
}
