//! #15 end to end, on SQLite and on PostgreSQL (`WPS_TEST_POSTGRES_URL`, from `scripts/postgres.sh env`;
//! unset is a failure, never a skip): the trusted `manage` door, member sends stored first and broadcast to
//! a member's real WebSocket through the real emulator, idempotent retries, history pages, 403 / 404 / 400,
//! and the `outbox` timer route answering the host's payload.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webpubsub_control::Env;
use webpubsub_control::webpubsub::{AccessKey, ClientAccessIssuer, ClientAccessRequest, Endpoint};

use crate::contract::checked;
use crate::support::{
    RunningEmulator, RunningHandler, Socket, base_env, http, next_json, start_emulator, start_handler,
};

const HUB: &str = "chat";

/// The store connection strings under test: a fresh SQLite file and the test PostgreSQL.
fn backends() -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("wps-durable-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let postgres = std::env::var("WPS_TEST_POSTGRES_URL")
        .expect("WPS_TEST_POSTGRES_URL is unset: run `eval \"$(bash scripts/postgres.sh env)\"` first");
    vec![format!("sqlite:{}", dir.join("store.db").display()), postgres]
}

struct Rig {
    emulator: RunningEmulator,
    handler: RunningHandler,
    http: reqwest::Client,
}

impl Rig {
    async fn start(store: &str) -> Self {
        let emulator = start_emulator().await;
        let env: Env = base_env()
            .with("WebPubSubConnectionString", &emulator.connection_string)
            .with("WebPubSubHub", HUB)
            .with("StoreConnectionString", store);
        let handler = start_handler(env).await;
        Self {
            emulator,
            handler,
            http: http(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            self.handler.url(path),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = checked(method, path, request.send().await.unwrap()).await;
        let body = if reply.body.is_empty() {
            Value::Null
        } else {
            reply.json()
        };
        (reply.status.as_u16(), body)
    }

    async fn member_socket(&self, user: &str, group: &str) -> Socket {
        let endpoint = Endpoint::parse(&format!("http://{}", self.emulator.addr)).unwrap();
        let issuer = ClientAccessIssuer::new(endpoint, &AccessKey::new(self.emulator.access_key.clone()).unwrap());
        let access = issuer
            .issue(
                HUB,
                &ClientAccessRequest {
                    user_id: Some(user.to_owned()),
                    groups: vec![group.to_owned()],
                    ..ClientAccessRequest::default()
                },
            )
            .unwrap();
        let request = access.url.as_str().into_client_request().unwrap();
        let (socket, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request))
            .await
            .expect("connects in time")
            .expect("connects");
        socket
    }
}

fn new_id() -> String {
    format!("c-{}", uuid::Uuid::now_v7())
}

#[tokio::test]
async fn members_send_history_and_live_frames_on_both_backends() {
    for store in backends() {
        let rig = Rig::start(&store).await;
        let id = new_id();
        let (status, created) = rig
            .call(
                "POST",
                "/api/manage/conversations",
                Some(json!({"id": id, "title": "Team", "members": ["alice", "bob"]})),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{store}: {created}");
        assert_eq!(created["members"], json!(["alice", "bob"]));
        let (status, _) = rig
            .call(
                "POST",
                "/api/manage/conversations",
                Some(json!({"id": id, "members": ["bob", "alice"]})),
                &[],
            )
            .await;
        assert_eq!(status, 200, "same id and members again");
        let (status, conflict) = rig
            .call(
                "POST",
                "/api/manage/conversations",
                Some(json!({"id": id, "members": ["carol"]})),
                &[],
            )
            .await;
        assert_eq!((status, conflict["code"].as_str()), (409, Some("Conflict")));

        let mut bob = rig.member_socket("bob", &format!("conversation:{id}")).await;
        let path = format!("/api/conversations/{id}/messages?userId=alice");
        let (status, sent) = rig
            .call(
                "POST",
                &path,
                Some(json!({"body": {"text": "hi"}})),
                &[("Idempotency-Key", "k-1")],
            )
            .await;
        assert_eq!(status, 201, "{store}: {sent}");
        assert_eq!(
            (sent["id"].as_str(), sent["seq"].as_i64(), sent["sender"].as_str()),
            (Some("k-1"), Some(1), Some("alice"))
        );
        let frame = next_json(&mut bob).await;
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["id"], "k-1");
        assert_eq!(frame["conversationId"], id.as_str());
        assert_eq!(frame["seq"], 1);
        assert_eq!(frame["body"], json!({"text": "hi"}));
        assert_eq!(frame["createdAt"], sent["createdAt"]);

        // A retry: 200 with the stored message, no second row and no second broadcast.
        let (status, again) = rig
            .call("POST", &path, Some(json!({"id": "k-1", "body": {"text": "hi"}})), &[])
            .await;
        assert_eq!((status, &again), (200, &sent));
        let (status, system) = rig
            .call(
                "POST",
                &format!("/api/manage/conversations/{id}/messages"),
                Some(json!({"sender": "bot", "body": "welcome"})),
                &[],
            )
            .await;
        assert_eq!((status, system["seq"].as_i64()), (201, Some(2)));
        let next = next_json(&mut bob).await;
        assert_eq!(
            (next["seq"].as_i64(), next["sender"].as_str()),
            (Some(2), Some("bot")),
            "the retry was not broadcast"
        );

        for n in 3..=7 {
            let (status, _) = rig
                .call("POST", &path, Some(json!({"body": format!("m{n}")})), &[])
                .await;
            assert_eq!(status, 201);
        }
        let history = |query: &str| format!("/api/conversations/{id}/messages?{query}");
        let (status, page) = rig
            .call("GET", &history("limit=3"), None, &[("X-User-Id", "bob")])
            .await;
        assert_eq!(status, 200);
        let seqs = |page: &Value| {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!((seqs(&page), page["next"].as_i64()), (vec![5, 6, 7], Some(5)));
        let (_, page) = rig
            .call("GET", &history("before=5&limit=3&userId=bob"), None, &[])
            .await;
        assert_eq!((seqs(&page), page["next"].as_i64()), (vec![2, 3, 4], Some(2)));
        let (_, page) = rig
            .call("GET", &history("before=2&limit=3&userId=bob"), None, &[])
            .await;
        assert_eq!((seqs(&page), page["next"].clone()), (vec![1], Value::Null));
        let (_, page) = rig.call("GET", &history("after=4&userId=bob"), None, &[]).await;
        assert_eq!((seqs(&page), page["next"].clone()), (vec![5, 6, 7], Value::Null));

        let (status, error) = rig.call("GET", &history("after=x&userId=bob"), None, &[]).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("InvalidCursor")));
        let (status, error) = rig.call("GET", &history("userId=mallory"), None, &[]).await;
        assert_eq!((status, error["code"].as_str()), (403, Some("NotAMember")));
        let (status, error) = rig
            .call(
                "POST",
                &format!("/api/conversations/{id}/messages?userId=mallory"),
                Some(json!({"body": "x"})),
                &[],
            )
            .await;
        assert_eq!((status, error["code"].as_str()), (403, Some("NotAMember")));
        let (status, error) = rig
            .call(
                "POST",
                "/api/conversations/no-such-conversation/messages?userId=alice",
                Some(json!({"body": "x"})),
                &[],
            )
            .await;
        assert_eq!((status, error["code"].as_str()), (404, Some("NotFound")));
        let big = "x".repeat(70_000);
        let (status, _) = rig.call("POST", &path, Some(json!({"body": big})), &[]).await;
        assert_eq!(status, 413);

        let (status, list) = rig.call("GET", "/api/conversations?userId=bob", None, &[]).await;
        assert_eq!(status, 200);
        assert!(list["items"].as_array().unwrap().iter().any(|c| c["id"] == id.as_str()));

        // Removed: 204, then bob's sends are refused.
        let (status, _) = rig
            .call(
                "DELETE",
                &format!("/api/manage/conversations/{id}/members/bob"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 204);
        let (status, _) = rig.call("GET", &history("userId=bob"), None, &[]).await;
        assert_eq!(status, 403);
        let (status, _) = rig
            .call("PUT", &format!("/api/manage/conversations/{id}/members/bob"), None, &[])
            .await;
        assert_eq!(status, 201);
    }
}

#[tokio::test]
async fn the_outbox_route_answers_the_hosts_timer_payload() {
    for store in backends() {
        let rig = Rig::start(&store).await;
        let payload = json!({
            "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "IsPastDue": false}},
            "Metadata": {"sys": {"MethodName": "outbox", "UtcNow": "2026-11-29T17:40:43.123Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"}}
        });
        let response = rig
            .http
            .post(rig.handler.url("/outbox"))
            .header("content-type", "application/json; charset=utf-8")
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"Outputs": {}, "Logs": [], "ReturnValue": null}));
    }
}

#[tokio::test]
async fn without_a_store_the_durable_routes_answer_503_store_not_configured() {
    let handler = start_handler(base_env()).await;
    let response = http()
        .get(handler.url("/api/conversations?userId=alice"))
        .send()
        .await
        .unwrap();
    let reply = checked("GET", "/api/conversations", response).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["code"], "StoreNotConfigured");
}
