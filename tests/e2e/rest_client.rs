//! The REST client against a local recording HTTP server on 127.0.0.1: every data-plane operation's
//! method, path, query, headers, body and bearer JWT; answers (existence, tokens, pages); the retry
//! rule (what is retried and what never is); and typed errors carrying status and `x-ms-error-code`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use test_support::recorder::{AfterScript, Answer, Recorded, Recorder};
use webpubsub_control::webpubsub::{
    ClientType, CloseOptions, ConnectionString, Delivery, GenerateTokenOptions, GroupMember, ListConnectionsOptions,
    Message, Operation, Permission, RestClient, RestError, RestOptions, RetryPolicy, SendOptions, ValidationError,
};

const KEY: &str = "rest-client-e2e-key-0123456789abcdefghijklmnop";
/// Upper bound on any scripted stall; the client's timeout is far shorter.
const STALL: Duration = Duration::from_secs(5);

/// What the server answers next (the shared scripted server's answer).
type Reply = Answer;

/// A reply only after the client's timeout.
fn stall() -> Reply {
    Reply::status(200).delayed(STALL)
}

/// The stand-in service: a shared [`Recorder`] (scripted replies used in order, then 200; every request
/// recorded) and the servers it runs on, stopped when the last clone drops.
#[derive(Clone)]
struct Server {
    recorder: Recorder,
    serving: Arc<Mutex<Vec<test_support::Loopback>>>,
}

impl Server {
    fn new() -> Self {
        Self {
            recorder: Recorder::new(AfterScript::Ok),
            serving: Arc::default(),
        }
    }

    /// Scripts the next replies and forgets the requests so far.
    fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        self.recorder.script(replies);
        self.recorder.clear();
    }

    fn requests(&self) -> Vec<Recorded> {
        self.recorder.requests()
    }

    /// The single request made since the last `reply`.
    fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request, got {requests:#?}");
        requests.into_iter().next().unwrap()
    }

    /// Serves on `listener` too.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let loopback = self.recorder.serve_on(listener);
        self.serving.lock().unwrap().push(loopback);
    }

    async fn start() -> (Self, SocketAddr) {
        let server = Self::new();
        let loopback = server.recorder.start().await;
        let addr = loopback.addr;
        server.serving.lock().unwrap().push(loopback);
        (server, addr)
    }
}

fn options() -> RestOptions {
    RestOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            max_elapsed: Duration::from_secs(10),
        },
        ..RestOptions::default()
    }
}

fn client_for(addr: SocketAddr, options: RestOptions) -> RestClient {
    let connection = ConnectionString::parse(&format!("Endpoint=http://{addr};AccessKey={KEY};Version=1.0;")).unwrap();
    RestClient::new(&connection, options).unwrap()
}

async fn setup() -> (Server, RestClient, SocketAddr) {
    let (recorder, addr) = Server::start().await;
    (recorder, client_for(addr, options()), addr)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// What one operation must have put on the wire.
struct Expected<'a> {
    method: &'a str,
    path: &'a str,
    /// Raw query after `api-version=2024-12-01`.
    query: &'a str,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

impl<'a> Expected<'a> {
    /// A request without a body (and so without a content type).
    fn empty(method: &'a str, path: &'a str, query: &'a str) -> Self {
        Self {
            method,
            path,
            query,
            content_type: None,
            body: b"",
        }
    }

    /// A request carrying `body` as `content_type`.
    fn with_body(method: &'a str, path: &'a str, query: &'a str, content_type: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            path,
            query,
            content_type: Some(content_type),
            body,
        }
    }
}

/// Checks the request and its bearer token: HS256 with the key, `aud` = the exact URL received
/// (with query), `exp` = `iat` + 5 minutes.
fn check(addr: SocketAddr, request: &Recorded, expected: &Expected<'_>) {
    let query = format!("api-version=2024-12-01{}", expected.query);
    assert_eq!(request.method, expected.method, "{}", expected.path);
    assert_eq!(request.path, expected.path);
    assert_eq!(request.query, query, "{}", expected.path);
    assert_eq!(request.body.as_ref(), expected.body, "{}", expected.path);
    let content_type = request.headers.get("content-type").map(|v| v.to_str().unwrap());
    assert_eq!(content_type, expected.content_type, "{}", expected.path);
    if matches!(expected.method, "POST" | "PUT") {
        let length = request
            .headers
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            length,
            Some(expected.body.len().to_string()),
            "{}: Content-Length",
            expected.path
        );
    }
    let user_agent = request.headers["user-agent"].to_str().unwrap();
    assert!(user_agent.starts_with("webpubsub-control/"), "{user_agent}");

    let authorization = request.headers["authorization"].to_str().unwrap();
    let token = authorization.strip_prefix("Bearer ").expect("a bearer token");
    let audience = format!("http://{addr}{}?{query}", expected.path);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[&audience]);
    validation.set_required_spec_claims(&["aud", "exp", "iat"]);
    let claims = decode::<serde_json::Value>(token, &DecodingKey::from_secret(KEY.as_bytes()), &validation)
        .unwrap_or_else(|e| panic!("{}: bearer does not verify for aud {audience}: {e}", expected.path))
        .claims;
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300, "{}", expected.path);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(iat.abs_diff(now) < 600, "iat {iat} is the current time");
    assert_eq!(claims.as_object().unwrap().len(), 3, "only aud, iat, exp: {claims}");
}

#[tokio::test]
async fn every_operation_sends_the_documented_request() {
    let (server, client, addr) = setup().await;
    let text = Message::text("héllo");
    let filter = "userId ne 'bob' and 'room 1' in groups";
    let encoded_filter = "userId%20ne%20%27bob%27%20and%20%27room%201%27%20in%20groups";
    let full_query = format!("&excluded=c-1&excluded=c%2F2&filter={encoded_filter}&messageTtlSeconds=30");
    let user_query = format!("&filter={encoded_filter}&messageTtlSeconds=0");
    let full = SendOptions {
        excluded: strings(&["c-1", "c/2"]),
        filter: Some(filter.into()),
        ttl_seconds: Some(30),
    };
    let ttl_only = SendOptions {
        ttl_seconds: Some(0),
        ..Default::default()
    };
    let close = CloseOptions {
        excluded: strings(&["c-1"]),
        reason: Some("bye now".into()),
    };
    let mut checked = Vec::new();

    macro_rules! expect {
        ($operation:expr, $reply:expr, $call:expr, $expected:expr) => {{
            server.reply([$reply]);
            $call.await.unwrap_or_else(|e| panic!("{}: {e}", $operation));
            check(addr, &server.only_request(), &$expected);
            checked.push($operation);
        }};
    }

    expect!(
        Operation::Health,
        Reply::status(200),
        client.health(),
        Expected::empty("HEAD", "/api/health", "")
    );
    expect!(
        Operation::SendToAll,
        Reply::status(202),
        client.send_to_all("chat", &text, &full),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/:send",
            &full_query,
            "text/plain",
            "héllo".as_bytes()
        )
    );
    expect!(
        Operation::SendToAll,
        Reply::status(202),
        client.send_to_all(
            "chat",
            &Message::json(&serde_json::json!({"a": [1, "x"]})).unwrap(),
            &SendOptions::default()
        ),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/:send",
            "",
            "application/json",
            br#"{"a":[1,"x"]}"#
        )
    );
    expect!(
        Operation::SendToAll,
        Reply::status(202),
        client.send_to_all("chat", &Message::binary(vec![0u8, 1, 255]), &SendOptions::default()),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/:send",
            "",
            "application/octet-stream",
            &[0, 1, 255]
        )
    );
    expect!(
        Operation::CloseAllConnections,
        Reply::status(204),
        client.close_all_connections("chat", &close),
        Expected::empty(
            "POST",
            "/api/hubs/chat/:closeConnections",
            "&excluded=c-1&reason=bye%20now"
        )
    );
    expect!(
        Operation::GenerateToken,
        Reply::json(200, r#"{"token":"service-token"}"#),
        client.generate_token(
            "chat",
            &GenerateTokenOptions {
                user_id: Some("alice".into()),
                roles: strings(&["webpubsub.sendToGroup"]),
                groups: strings(&["g 1"]),
                minutes_to_expire: Some(15),
                client_type: ClientType::Mqtt
            }
        ),
        Expected::empty(
            "POST",
            "/api/hubs/chat/:generateToken",
            "&userId=alice&role=webpubsub.sendToGroup&minutesToExpire=15&group=g%201&clientType=MQTT"
        )
    );
    expect!(
        Operation::AddConnectionsToGroups,
        Reply::status(200),
        client.add_connections_to_groups("chat", &strings(&["g1", "g 2"]), filter),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/:addToGroups",
            "",
            "application/json",
            br#"{"groups":["g1","g 2"],"filter":"userId ne 'bob' and 'room 1' in groups"}"#
        )
    );
    expect!(
        Operation::RemoveConnectionsFromGroups,
        Reply::status(200),
        client.remove_connections_from_groups("chat", &strings(&["g1"]), "userId eq 'x'"),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/:removeFromGroups",
            "",
            "application/json",
            br#"{"groups":["g1"],"filter":"userId eq 'x'"}"#
        )
    );
    expect!(
        Operation::CloseConnection,
        Reply::status(204),
        client.close_connection("chat", "conn 1", Some("bye")),
        Expected::empty("DELETE", "/api/hubs/chat/connections/conn%201", "&reason=bye")
    );
    expect!(
        Operation::ConnectionExists,
        Reply::status(200),
        client.connection_exists("chat", "conn-1"),
        Expected::empty("HEAD", "/api/hubs/chat/connections/conn-1", "")
    );
    expect!(
        Operation::SendToConnection,
        Reply::status(202),
        client.send_to_connection("chat", "conn-1", &text, &ttl_only),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/connections/conn-1/:send",
            "&messageTtlSeconds=0",
            "text/plain",
            "héllo".as_bytes()
        )
    );
    expect!(
        Operation::RemoveConnectionFromAllGroups,
        Reply::status(204),
        client.remove_connection_from_all_groups("chat", "conn-1"),
        Expected::empty("DELETE", "/api/hubs/chat/connections/conn-1/groups", "")
    );
    expect!(
        Operation::GroupExists,
        Reply::status(200),
        client.group_exists("chat", "room 1/a?b#c"),
        Expected::empty("HEAD", "/api/hubs/chat/groups/room%201%2Fa%3Fb%23c", "")
    );
    expect!(
        Operation::CloseGroupConnections,
        Reply::status(204),
        client.close_group_connections("chat", "room1", &close),
        Expected::empty(
            "POST",
            "/api/hubs/chat/groups/room1/:closeConnections",
            "&excluded=c-1&reason=bye%20now"
        )
    );
    expect!(
        Operation::SendToGroup,
        Reply::status(202),
        client.send_to_group("chat", "room 1", &text, &full),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/groups/room%201/:send",
            &full_query,
            "text/plain",
            "héllo".as_bytes()
        )
    );
    expect!(
        Operation::ListGroupConnections,
        Reply::json(200, r#"{"value":[]}"#),
        client.list_group_connections(
            "chat",
            "room1",
            &ListConnectionsOptions {
                max_page_size: Some(10),
                top: Some(20),
                continuation_token: Some("t=1".into())
            }
        ),
        Expected::empty(
            "GET",
            "/api/hubs/chat/groups/room1/connections",
            "&maxpagesize=10&top=20&continuationToken=t%3D1"
        )
    );
    expect!(
        Operation::AddConnectionToGroup,
        Reply::status(200),
        client.add_connection_to_group("chat", "room1", "conn-1"),
        Expected::empty("PUT", "/api/hubs/chat/groups/room1/connections/conn-1", "")
    );
    expect!(
        Operation::RemoveConnectionFromGroup,
        Reply::status(204),
        client.remove_connection_from_group("chat", "room1", "conn-1"),
        Expected::empty("DELETE", "/api/hubs/chat/groups/room1/connections/conn-1", "")
    );
    expect!(
        Operation::GrantPermission,
        Reply::status(200),
        client.grant_permission("chat", Permission::JoinLeaveGroup, "conn-1", Some("room 1")),
        Expected::empty(
            "PUT",
            "/api/hubs/chat/permissions/joinLeaveGroup/connections/conn-1",
            "&targetName=room%201"
        )
    );
    expect!(
        Operation::RevokePermission,
        Reply::status(204),
        client.revoke_permission("chat", Permission::SendToGroup, "conn-1", None),
        Expected::empty(
            "DELETE",
            "/api/hubs/chat/permissions/sendToGroup/connections/conn-1",
            ""
        )
    );
    expect!(
        Operation::CheckPermission,
        Reply::status(200),
        client.check_permission("chat", Permission::SendToGroup, "conn-1", Some("room1")),
        Expected::empty(
            "HEAD",
            "/api/hubs/chat/permissions/sendToGroup/connections/conn-1",
            "&targetName=room1"
        )
    );
    expect!(
        Operation::UserExists,
        Reply::status(200),
        client.user_exists("chat", "alice@example.com"),
        Expected::empty("HEAD", "/api/hubs/chat/users/alice%40example.com", "")
    );
    expect!(
        Operation::CloseUserConnections,
        Reply::status(204),
        client.close_user_connections("chat", "alice", &close),
        Expected::empty(
            "POST",
            "/api/hubs/chat/users/alice/:closeConnections",
            "&excluded=c-1&reason=bye%20now"
        )
    );
    expect!(
        Operation::SendToUser,
        Reply::status(202),
        client.send_to_user(
            "chat",
            "alice",
            &text,
            &SendOptions {
                filter: Some(filter.into()),
                ..ttl_only.clone()
            }
        ),
        Expected::with_body(
            "POST",
            "/api/hubs/chat/users/alice/:send",
            &user_query,
            "text/plain",
            "héllo".as_bytes()
        )
    );
    expect!(
        Operation::RemoveUserFromAllGroups,
        Reply::status(204),
        client.remove_user_from_all_groups("chat", "alice"),
        Expected::empty("DELETE", "/api/hubs/chat/users/alice/groups", "")
    );
    expect!(
        Operation::AddUserToGroup,
        Reply::status(200),
        client.add_user_to_group("chat", "room1", "alice"),
        Expected::empty("PUT", "/api/hubs/chat/users/alice/groups/room1", "")
    );
    expect!(
        Operation::RemoveUserFromGroup,
        Reply::status(204),
        client.remove_user_from_group("chat", "room1", "alice"),
        Expected::empty("DELETE", "/api/hubs/chat/users/alice/groups/room1", "")
    );

    for operation in Operation::ALL {
        assert!(checked.contains(&operation), "{operation} was not exercised");
    }
}

#[tokio::test]
async fn existence_checks_read_200_as_yes_and_404_as_no() {
    let (server, client, _) = setup().await;
    server.reply([
        Reply::status(200),
        Reply::status(404),
        Reply::status(404),
        Reply::status(200),
    ]);
    assert!(client.connection_exists("chat", "c").await.unwrap());
    assert!(!client.group_exists("chat", "g").await.unwrap());
    assert!(!client.user_exists("chat", "u").await.unwrap());
    assert!(
        client
            .check_permission("chat", Permission::SendToGroup, "c", None)
            .await
            .unwrap()
    );
    assert_eq!(server.requests().len(), 4, "a 404 answer is final, not retried");
}

#[tokio::test]
async fn a_404_elsewhere_is_an_error() {
    let (server, client, _) = setup().await;
    server.reply([Reply::json(404, r#"{"code":"NotFound","message":"connection gone"}"#)]);
    let error = client.add_connection_to_group("chat", "g", "c").await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert_eq!(error.error_code(), Some("NotFound"));
    assert_eq!(error.delivery(), Delivery::Refused);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn generate_token_returns_the_service_token() {
    let (server, client, _) = setup().await;
    server.reply([Reply::json(200, r#"{"token":"abc.def.ghi"}"#)]);
    assert_eq!(
        client
            .generate_token("chat", &GenerateTokenOptions::default())
            .await
            .unwrap(),
        "abc.def.ghi"
    );
    server.reply([Reply::json(200, r#"{"nope":1}"#)]);
    let error = client
        .generate_token("chat", &GenerateTokenOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RestError::InvalidResponse {
                operation: Operation::GenerateToken,
                status: 200,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.delivery(), Delivery::Performed);
}

#[tokio::test]
async fn list_connections_pages_through_next_links() {
    let (server, client, _) = setup().await;
    server.reply([Reply::json(
        200,
        r#"{"value":[{"connectionId":"c1","userId":"u1"},{"connectionId":"c2"}],
            "nextLink":"/api/hubs/chat/groups/g/connections?continuationToken=next%2B1&api-version=2024-12-01"}"#,
    )]);
    let page = client
        .list_group_connections("chat", "g", &ListConnectionsOptions::default())
        .await
        .unwrap();
    assert_eq!(
        page.members,
        [
            GroupMember {
                connection_id: "c1".into(),
                user_id: Some("u1".into())
            },
            GroupMember {
                connection_id: "c2".into(),
                user_id: None
            },
        ]
    );
    assert_eq!(page.continuation_token.as_deref(), Some("next+1"));

    server.reply([Reply::json(200, r#"{"value":[{"connectionId":"c3"}],"nextLink":null}"#)]);
    let options = ListConnectionsOptions {
        continuation_token: page.continuation_token,
        ..Default::default()
    };
    let last = client.list_group_connections("chat", "g", &options).await.unwrap();
    assert_eq!(
        server.only_request().query,
        "api-version=2024-12-01&continuationToken=next%2B1"
    );
    assert_eq!(last.members.len(), 1);
    assert_eq!(last.continuation_token, None);
}

#[tokio::test]
async fn a_send_is_retried_after_503_with_retry_after() {
    let (server, client, _) = setup().await;
    server.reply([Reply::status(503).with_header("retry-after", "0"), Reply::status(202)]);
    client
        .send_to_all("chat", &Message::text("once"), &SendOptions::default())
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[0].query, requests[1].query);
}

#[tokio::test]
async fn a_send_is_retried_after_429() {
    let (server, client, _) = setup().await;
    server.reply([
        Reply::status(429),
        Reply::status(429).with_header("retry-after-ms", "5"),
        Reply::status(202),
    ]);
    client
        .send_to_user("chat", "u", &Message::text("x"), &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_send_is_not_retried_after_503_without_retry_after() {
    let (server, client, _) = setup().await;
    server.reply([Reply::status(503), Reply::status(202)]);
    let error = client
        .send_to_group("chat", "g", &Message::text("x"), &SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503));
    assert_eq!(error.delivery(), Delivery::Unknown, "the message may have gone out");
    assert_eq!(error.attempts(), 1);
    assert!(error.is_retryable());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_send_is_not_retried_after_500() {
    let (server, client, _) = setup().await;
    server.reply([Reply::status(500), Reply::status(202)]);
    let error = client
        .send_to_connection("chat", "c", &Message::text("x"), &SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.delivery(), error.attempts()),
        (Some(500), Delivery::Unknown, 1)
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_send_is_not_retried_after_a_timeout() {
    let (server, client, _) = setup().await;
    server.reply([stall(), Reply::status(202)]);
    let error = client
        .send_to_all("chat", &Message::text("x"), &SendOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RestError::Timeout {
                operation: Operation::SendToAll,
                delivery: Delivery::Unknown,
                attempts: 1
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_idempotent_operation_is_retried_after_timeouts() {
    let (server, client, _) = setup().await;
    server.reply([stall(), stall(), Reply::status(200)]);
    client.add_user_to_group("chat", "g", "u").await.unwrap();
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn an_idempotent_operation_gives_up_after_max_retries() {
    let (server, client, _) = setup().await;
    server.reply(std::iter::repeat_n(Reply::status(500), 10));
    let error = client.remove_user_from_group("chat", "g", "u").await.unwrap_err();
    assert_eq!(
        (error.status(), error.attempts(), error.delivery()),
        (Some(500), 4, Delivery::Unknown)
    );
    assert_eq!(server.requests().len(), 4, "1 attempt + max_retries (3)");
}

#[tokio::test]
async fn an_earlier_unknown_outcome_sticks_to_the_final_error() {
    let (server, client, _) = setup().await;
    server.reply([
        Reply::status(502),
        Reply::json(400, r#"{"error":{"code":"BadRequest","message":"no"}}"#),
    ]);
    let error = client.close_connection("chat", "c", None).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(
        error.delivery(),
        Delivery::Unknown,
        "the 502 attempt may have closed it"
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_time_budget_is_not_waited_for() {
    let (server, client, _) = setup().await;
    server.reply([
        Reply::status(503).with_header("retry-after", "3600"),
        Reply::status(202),
    ]);
    let error = client
        .send_to_all("chat", &Message::text("x"), &SendOptions::default())
        .await
        .unwrap_err();
    match &error {
        RestError::Service {
            error: service,
            delivery,
            attempts,
            ..
        } => {
            assert_eq!(service.status, 503);
            assert_eq!(service.retry_after, Some(Duration::from_secs(3600)));
            assert_eq!((*delivery, *attempts), (Delivery::Refused, 1));
        }
        other => panic!("expected a service error, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn client_errors_are_typed_and_never_retried() {
    let (server, client, _) = setup().await;
    server.reply([
        Reply::json(403, r#"{"error":{"code":"BodyCode","message":"not allowed here"}}"#)
            .with_header("x-ms-error-code", "Forbidden"),
    ]);
    let error = client.close_connection("chat", "c", None).await.unwrap_err();
    match &error {
        RestError::Service {
            operation,
            error: service,
            delivery,
            attempts,
        } => {
            assert_eq!(*operation, Operation::CloseConnection);
            assert_eq!(service.status, 403);
            assert_eq!(
                service.error_code.as_deref(),
                Some("Forbidden"),
                "the header wins over the body"
            );
            assert_eq!(service.message, "not allowed here");
            assert_eq!((*delivery, *attempts), (Delivery::Refused, 1));
        }
        other => panic!("expected a service error, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert_eq!(error.code(), "ServiceRejected");
    assert!(!error.to_string().contains(KEY));

    server.reply([Reply::json(400, r#"{"code":"InvalidFilter","message":"bad filter"}"#)]);
    let error = client
        .send_to_all("chat", &Message::text("x"), &SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("InvalidFilter"), "the flat body shape");
    assert!(error.to_string().contains("bad filter"), "{error}");

    server.reply([Reply::status(401).with_body("token expired")]);
    let error = client.remove_user_from_all_groups("chat", "u").await.unwrap_err();
    assert!(
        error.to_string().contains("HTTP 401") && error.to_string().contains("token expired"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 1);

    // HEAD answers have no body: the header code and the status reason stand in.
    server.reply([Reply::status(403).with_header("x-ms-error-code", "Forbidden")]);
    let error = client.user_exists("chat", "u").await.unwrap_err();
    assert_eq!(error.error_code(), Some("Forbidden"));
    assert!(error.to_string().contains("HTTP 403 (Forbidden): Forbidden"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn bad_input_never_reaches_the_network() {
    let (server, client, _) = setup().await;
    server.reply([]);
    let text = Message::text("x");
    let checks: Vec<(RestError, ValidationError)> = vec![
        (
            client
                .send_to_all("1hub", &text, &SendOptions::default())
                .await
                .unwrap_err(),
            ValidationError::InvalidHub,
        ),
        (
            client
                .send_to_group("chat", " ", &text, &SendOptions::default())
                .await
                .unwrap_err(),
            ValidationError::InvalidGroup,
        ),
        (
            client
                .send_to_user("chat", "", &text, &SendOptions::default())
                .await
                .unwrap_err(),
            ValidationError::EmptyUserId,
        ),
        (
            client.close_connection("chat", "", None).await.unwrap_err(),
            ValidationError::EmptyConnectionId,
        ),
        (
            client
                .send_to_all(
                    "chat",
                    &Message::binary(vec![0u8; 1024 * 1024 + 1]),
                    &SendOptions::default(),
                )
                .await
                .unwrap_err(),
            ValidationError::MessageTooLarge {
                size: 1024 * 1024 + 1,
                limit: 1024 * 1024,
            },
        ),
        (
            client
                .send_to_all(
                    "chat",
                    &text,
                    &SendOptions {
                        ttl_seconds: Some(301),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_err(),
            ValidationError::TtlOutOfRange(301),
        ),
        (
            client
                .add_user_to_group("chat", &"g".repeat(1025), "u")
                .await
                .unwrap_err(),
            ValidationError::InvalidGroup,
        ),
    ];
    for (error, expected) in checks {
        match error {
            RestError::Invalid(actual) => assert_eq!(actual, expected),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    assert!(
        server.requests().is_empty(),
        "nothing was sent: {:#?}",
        server.requests()
    );
}

/// A loopback port that refuses connections: bound (so nobody else takes it) but not listening.
fn refusing_socket() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

#[tokio::test]
async fn a_send_is_retried_while_the_connection_is_refused_then_gives_up() {
    let (_socket, addr) = refusing_socket();
    let client = client_for(addr, options());
    let error = client
        .send_to_all("chat", &Message::text("x"), &SendOptions::default())
        .await
        .unwrap_err();
    match &error {
        RestError::Transport {
            delivery,
            attempts,
            detail,
            ..
        } => {
            assert_eq!((*delivery, *attempts), (Delivery::NotSent, 4), "{detail}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(error.is_retryable());
    assert!(!error.delivery().may_have_taken_effect());
}

#[tokio::test]
async fn a_send_succeeds_once_a_refusing_service_starts_listening() {
    let (socket, addr) = refusing_socket();
    let mut patient = options();
    patient.retry = RetryPolicy {
        max_retries: 100,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        max_elapsed: Duration::from_secs(15),
    };
    let client = client_for(addr, patient);
    let recorder = Server::new();
    recorder.reply([Reply::status(202)]);
    let starter = recorder.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        starter.serve(socket.listen(16).unwrap());
    });
    client
        .send_to_all("chat", &Message::text("late"), &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(recorder.only_request().body.as_ref(), b"late", "delivered exactly once");
}

#[tokio::test]
async fn clones_send_concurrently_from_spawned_tasks() {
    let (server, client, _) = setup().await;
    server.reply([Reply::status(202), Reply::status(202)]);
    let tasks: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|text| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .send_to_all("chat", &Message::text(text), &SendOptions::default())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut bodies: Vec<_> = server.requests().into_iter().map(|r| r.body).collect();
    bodies.sort();
    assert_eq!(bodies, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
}

/// Against the real local emulator: a WebSocket client connects with a token from our
/// [`ClientAccessIssuer`](webpubsub_control::webpubsub::ClientAccessIssuer), then every REST operation
/// goes through our client and its effect is observed on the service or the socket.
#[cfg(feature = "dev")]
mod against_the_emulator {
    use std::time::Duration;

    use futures_util::StreamExt as _;
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message as Frame;
    use webpubsub_control::webpubsub::{
        ClientAccessIssuer, ClientAccessRequest, CloseOptions, ConnectionString, GenerateTokenOptions,
        ListConnectionsOptions, Message, Permission, RestClient, RestOptions, SendOptions,
    };

    use crate::support::{JSON_SUBPROTOCOL, Socket, open_socket, serve_emulator};

    const KEY: &str = "rest-client-emulator-key-0123456789abcdefghij";
    /// Longest wait for a frame.
    const WAIT: Duration = Duration::from_secs(10);

    async fn next_json(socket: &mut Socket) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, socket.next())
                .await
                .expect("a frame within the wait")
                .expect("the socket is open")
                .expect("a valid frame");
            match frame {
                Frame::Text(text) => return serde_json::from_str(&text).unwrap(),
                Frame::Ping(_) | Frame::Pong(_) => continue,
                other => panic!("expected a JSON text frame, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn every_operation_works_against_the_emulator() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = webpubsub_emulator::EmulatorConfig {
            access_key: KEY.into(),
            ..Default::default()
        };
        let emulator = serve_emulator(listener, config);

        let connection = ConnectionString::parse(&emulator.connection_string).unwrap();
        let client = RestClient::new(&connection, RestOptions::default()).unwrap();
        let issuer = ClientAccessIssuer::new(connection.endpoint().clone(), connection.access_key());
        let access = issuer
            .issue(
                "chat",
                &ClientAccessRequest {
                    user_id: Some("alice".into()),
                    ..Default::default()
                },
            )
            .unwrap();

        client.health().await.unwrap();
        let (mut socket, _) = open_socket(&access.url, &[JSON_SUBPROTOCOL])
            .await
            .expect("the emulator accepts our token");
        let connected = next_json(&mut socket).await;
        assert_eq!(
            (connected["type"].as_str(), connected["event"].as_str()),
            (Some("system"), Some("connected"))
        );
        assert_eq!(connected["userId"], "alice");
        let id = connected["connectionId"].as_str().unwrap().to_owned();

        assert!(client.connection_exists("chat", &id).await.unwrap());
        assert!(!client.connection_exists("chat", "no-such-connection").await.unwrap());
        assert!(client.user_exists("chat", "alice").await.unwrap());
        assert!(!client.user_exists("chat", "bob").await.unwrap());

        client.add_connection_to_group("chat", "room 1", &id).await.unwrap();
        assert!(client.group_exists("chat", "room 1").await.unwrap());
        let page = client
            .list_group_connections("chat", "room 1", &ListConnectionsOptions::default())
            .await
            .unwrap();
        assert_eq!(page.members.len(), 1);
        assert_eq!(page.members[0].connection_id, id);
        assert_eq!(page.members[0].user_id.as_deref(), Some("alice"));

        client
            .send_to_group("chat", "room 1", &Message::text("to group"), &SendOptions::default())
            .await
            .unwrap();
        let frame = next_json(&mut socket).await;
        assert_eq!(
            frame,
            json!({"type": "message", "from": "server", "dataType": "text", "data": "to group"})
        );

        client
            .send_to_user(
                "chat",
                "alice",
                &Message::json(&json!({"n": 1})).unwrap(),
                &SendOptions::default(),
            )
            .await
            .unwrap();
        let frame = next_json(&mut socket).await;
        assert_eq!(
            (frame["dataType"].as_str(), &frame["data"]),
            (Some("json"), &json!({"n": 1}))
        );

        let ttl = SendOptions {
            ttl_seconds: Some(60),
            ..Default::default()
        };
        client
            .send_to_connection("chat", &id, &Message::binary(vec![1u8, 2, 3]), &ttl)
            .await
            .unwrap();
        let frame = next_json(&mut socket).await;
        assert_eq!(
            (frame["dataType"].as_str(), frame["data"].as_str()),
            (Some("binary"), Some("AQID"))
        );

        let others_only = SendOptions {
            excluded: vec![id.clone()],
            ..Default::default()
        };
        client
            .send_to_all("chat", &Message::text("not for alice"), &others_only)
            .await
            .unwrap();
        let filtered = SendOptions {
            filter: Some("userId eq 'alice'".into()),
            ..Default::default()
        };
        client
            .send_to_all("chat", &Message::text("for alice"), &filtered)
            .await
            .unwrap();
        let frame = next_json(&mut socket).await;
        assert_eq!(
            frame["data"], "for alice",
            "the excluded send never arrived; the filtered one did"
        );

        client
            .remove_connection_from_group("chat", "room 1", &id)
            .await
            .unwrap();
        assert!(!client.group_exists("chat", "room 1").await.unwrap());
        client
            .add_connections_to_groups("chat", &["g2".into(), "g3".into()], "userId eq 'alice'")
            .await
            .unwrap();
        assert!(client.group_exists("chat", "g3").await.unwrap());
        client
            .remove_connections_from_groups("chat", &["g3".into()], "userId eq 'alice'")
            .await
            .unwrap();
        assert!(!client.group_exists("chat", "g3").await.unwrap());
        client.remove_connection_from_all_groups("chat", &id).await.unwrap();
        assert!(!client.group_exists("chat", "g2").await.unwrap());
        client.add_user_to_group("chat", "g4", "alice").await.unwrap();
        assert!(client.group_exists("chat", "g4").await.unwrap());
        client.remove_user_from_group("chat", "g4", "alice").await.unwrap();
        assert!(!client.group_exists("chat", "g4").await.unwrap());
        client.add_user_to_group("chat", "g5", "alice").await.unwrap();
        client.remove_user_from_all_groups("chat", "alice").await.unwrap();
        assert!(!client.group_exists("chat", "g5").await.unwrap());

        client
            .grant_permission("chat", Permission::SendToGroup, &id, Some("g6"))
            .await
            .unwrap();
        assert!(
            client
                .check_permission("chat", Permission::SendToGroup, &id, Some("g6"))
                .await
                .unwrap()
        );
        client
            .revoke_permission("chat", Permission::SendToGroup, &id, Some("g6"))
            .await
            .unwrap();
        assert!(
            !client
                .check_permission("chat", Permission::SendToGroup, &id, Some("g6"))
                .await
                .unwrap()
        );

        let token = client
            .generate_token(
                "chat",
                &GenerateTokenOptions {
                    user_id: Some("bob".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(token.split('.').count(), 3, "a JWT");

        client
            .close_group_connections("chat", "nobody-here", &CloseOptions::default())
            .await
            .unwrap();
        client
            .close_user_connections("chat", "bob", &CloseOptions::default())
            .await
            .unwrap();
        client
            .close_all_connections(
                "chat",
                &CloseOptions {
                    excluded: vec![id.clone()],
                    reason: None,
                },
            )
            .await
            .unwrap();
        assert!(
            client.connection_exists("chat", &id).await.unwrap(),
            "excluded from the close"
        );
        client.close_connection("chat", &id, Some("done")).await.unwrap();
        let closing = next_json(&mut socket).await;
        assert_eq!(
            (closing["type"].as_str(), closing["event"].as_str()),
            (Some("system"), Some("disconnected"))
        );
        assert!(!client.connection_exists("chat", &id).await.unwrap());
        emulator.stop().await;
    }
}
