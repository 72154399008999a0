//! #16 end to end, on SQLite and on PostgreSQL (`WPS_TEST_POSTGRES_URL`, from `scripts/postgres.sh env`;
//! unset is a failure, never a skip), with the real emulator delivering `connected` / `disconnected` events
//! to the handler and a local webhook sink on 127.0.0.1: catch-up through `sync` after being offline, `limited`
//! paging over 500 missed messages, unread counts following read markers, notifications reaching only their
//! user's group, the offline hand-off (HMAC checked) for a disconnected user and not for a connected one, and
//! the bad inputs (403 / 404 / 400 cursor, clamped limits).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use warp::Filter;
use webpubsub_control::Env;
use webpubsub_control::store::{PoolOptions, Store, StoreConnectionString};
use webpubsub_emulator::DEV_ACCESS_KEY;

use crate::support::{
    HUB, RunningEmulator, RunningHandler, Socket, backends, base_env, next_json, serve_emulator, start_handler,
    wired_to,
};

const WEBHOOK_SECRET: &str = "offline-webhook-test-secret";

/// What the webhook sink received: (X-Signature-256, body).
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The handler with a store and an offline webhook, the emulator sending it system events, and the sink.
struct Rig {
    handler: RunningHandler,
    emulator: RunningEmulator,
    store: Store,
    received: Received,
    _sink: test_support::Loopback,
}

impl Rig {
    async fn start(store: &str) -> Self {
        // The sink: records every POST, answers 200.
        let received: Received = Arc::default();
        let sink_log = received.clone();
        let sink = warp::post()
            .and(warp::header::optional::<String>("x-signature-256"))
            .and(warp::body::bytes())
            .map(move |signature: Option<String>, body: bytes::Bytes| {
                sink_log
                    .lock()
                    .unwrap()
                    .push((signature.unwrap_or_default(), body.to_vec()));
                warp::reply()
            });
        let sink = test_support::serve(sink).await;
        let sink_addr = sink.addr;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator_addr = listener.local_addr().unwrap();
        let env: Env = base_env()
            .with(
                "WebPubSubConnectionString",
                webpubsub_emulator::connection_string(emulator_addr, DEV_ACCESS_KEY),
            )
            .with("WebPubSubHub", HUB)
            .with("StoreConnectionString", store)
            .with("NotificationsOfflineWebhookUrl", format!("http://{sink_addr}/push"))
            .with("NotificationsOfflineWebhookSecret", WEBHOOK_SECRET);
        let handler = start_handler(env).await;
        let config = wired_to(&handler, &["connected", "disconnected"], None);
        let store = Store::open(&StoreConnectionString::parse(store).unwrap(), PoolOptions::default())
            .await
            .expect("the test opens the store");
        Self {
            handler,
            emulator: serve_emulator(listener, config),
            store,
            received,
            _sink: sink,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.handler.call(method, path, body, &[]).await
    }

    /// A WebSocket for `user` in `groups`, through the emulator (which reports `connected` to the handler).
    async fn socket(&self, user: &str, groups: &[String]) -> Socket {
        self.emulator.member(HUB, user, groups).await
    }

    /// Waits (bounded) until the store records `count` live connections for `user`.
    async fn await_presence(&self, user: &str, count: i64) {
        for _ in 0..100 {
            if self.store.live_connections(user).await.unwrap() == count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{user} never had {count} live connections");
    }

    async fn create(&self, id: &str, members: &[&str]) {
        let (status, body) = self
            .call(
                "POST",
                "/api/manage/conversations",
                Some(json!({"id": id, "title": "Team", "members": members})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn send(&self, id: &str, user: &str, text: &str) -> Value {
        let (status, sent) = self
            .call(
                "POST",
                &format!("/api/conversations/{id}/messages?userId={user}"),
                Some(json!({"body": text})),
            )
            .await;
        assert_eq!(status, 201, "{sent}");
        sent
    }

    async fn notify(&self, body: Value) -> (u16, Value) {
        self.call("POST", "/api/manage/notifications", Some(body)).await
    }

    async fn sync(&self, user: &str, since: Option<&str>, limit: Option<i64>) -> Value {
        let mut path = format!("/api/sync?userId={user}");
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        if let Some(limit) = limit {
            path.push_str(&format!("&limit={limit}"));
        }
        let (status, body) = self.call("GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Webhook bodies received so far (each signature checked independently of the handler's code).
    fn webhook_bodies(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(signature, body)| {
                let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
                mac.update(body);
                let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                assert_eq!(signature, &expected, "X-Signature-256 is the HMAC of the body");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }

    /// Waits (bounded) for `n` webhook POSTs.
    async fn await_webhooks(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            if self.received.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bodies = self.webhook_bodies();
        assert!(bodies.len() >= n, "only {} webhook posts: {bodies:?}", bodies.len());
        bodies
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7())
}

/// Fresh user names for one run (the PostgreSQL database outlives runs, and presence and feeds are per user).
struct Users {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

impl Users {
    fn new() -> Self {
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let name = |n: &str| format!("{n}-{tag}");
        Self {
            alice: name("alice"),
            bob: name("bob"),
            carol: name("carol"),
            dave: name("dave"),
        }
    }
}

fn cursor(body: &Value) -> String {
    body["next"].as_str().expect("a next cursor").to_owned()
}

#[tokio::test]
async fn offline_client_catches_up_with_one_sync_and_unread_follows_markers() {
    for store in backends("notify") {
        let rig = Rig::start(&store).await;
        let users = Users::new();
        let (alice, bob) = (&*users.alice, &*users.bob);
        let id = new_id("c");
        rig.create(&id, &[alice, bob]).await;

        // Alice's initial state, then she goes offline.
        let initial = rig.sync(alice, None, None).await;
        assert_eq!(initial["conversations"][0]["id"], id.as_str(), "{store}: {initial}");
        assert_eq!(initial["conversations"][0]["messages"], json!([]));
        assert_eq!(initial["limited"], false);
        let since = cursor(&initial);

        // While she is away: 5 messages and 2 notifications.
        let mut sent = Vec::new();
        for n in 1..=5 {
            sent.push(rig.send(&id, bob, &format!("m{n}")).await["id"].clone());
        }
        for n in 1..=2 {
            let (status, created) = rig
                .notify(json!({"id": format!("{id}-n{n}"), "userIds": [alice], "data": {"n": n}}))
                .await;
            assert_eq!((status, created["userIds"].clone()), (201, json!([alice])));
        }

        let caught = rig.sync(alice, Some(&since), None).await;
        assert_eq!(caught["limited"], false);
        let conversations = caught["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), 1, "{caught}");
        let messages = conversations[0]["messages"].as_array().unwrap();
        let ids: Vec<Value> = messages.iter().map(|m| m["id"].clone()).collect();
        assert_eq!(ids, sent, "exactly those messages, once, in order");
        let seqs: Vec<i64> = messages.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(conversations[0]["unread"], 5);
        let notifications = caught["notifications"].as_array().unwrap();
        let data: Vec<Value> = notifications.iter().map(|n| n["data"]["n"].clone()).collect();
        assert_eq!(data, vec![json!(1), json!(2)]);
        assert!(notifications.iter().all(|n| n["type"] == "notification"));
        // From the new cursor: nothing again.
        let again = rig.sync(alice, Some(&cursor(&caught)), None).await;
        assert_eq!(
            (again["conversations"].clone(), again["notifications"].clone()),
            (json!([]), json!([]))
        );

        // A retried notification: 200, nothing new in the feed.
        let (status, _) = rig
            .notify(json!({"id": format!("{id}-n1"), "userIds": [alice], "data": {"n": 1}}))
            .await;
        assert_eq!(status, 200);

        // Unread follows markers: own messages never count, system messages do.
        let (status, alice_list) = rig
            .call("GET", &format!("/api/conversations?userId={alice}"), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            (alice_list["items"][0]["unread"].clone(), alice_list["unread"].clone()),
            (json!(5), json!(5))
        );
        assert_eq!(alice_list["items"][0]["lastMessage"]["seq"], 5);
        let read = format!("/api/conversations/{id}/read?userId={alice}");
        let (status, marker) = rig.call("PUT", &read, Some(json!({"seq": 3}))).await;
        assert_eq!((status, marker["seq"].clone()), (200, json!(3)));
        let (status, marker) = rig.call("PUT", &read, Some(json!({"seq": 1}))).await;
        assert_eq!(
            (status, marker["seq"].clone()),
            (200, json!(3)),
            "markers never move back"
        );
        let (status, error) = rig.call("PUT", &read, Some(json!({"seq": 6}))).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("InvalidField")));
        let (_, alice_list) = rig
            .call("GET", &format!("/api/conversations?userId={alice}"), None)
            .await;
        assert_eq!(alice_list["unread"], 2);
        let (_, bob_list) = rig.call("GET", &format!("/api/conversations?userId={bob}"), None).await;
        assert_eq!(bob_list["unread"], 0, "own messages are never unread");
        let (status, _) = rig
            .call(
                "POST",
                &format!("/api/manage/conversations/{id}/messages"),
                Some(json!({"sender": bob, "body": "system notice"})),
            )
            .await;
        assert_eq!(status, 201);
        let (_, bob_list) = rig.call("GET", &format!("/api/conversations?userId={bob}"), None).await;
        assert_eq!(
            bob_list["unread"], 1,
            "system messages count, even under the member's name"
        );

        // The notification feed and its marker.
        let (status, feed) = rig
            .call("GET", &format!("/api/notifications?userId={alice}"), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            (feed["items"].as_array().unwrap().len(), feed["unread"].clone()),
            (2, json!(2))
        );
        let (_, page) = rig
            .call("GET", &format!("/api/notifications?userId={alice}&limit=1"), None)
            .await;
        assert_eq!(
            (page["items"][0]["seq"].clone(), page["next"].clone()),
            (json!(1), json!(1))
        );
        let (_, page) = rig
            .call(
                "GET",
                &format!("/api/notifications?userId={alice}&after=1&limit=0"),
                None,
            )
            .await;
        assert_eq!(
            (page["items"][0]["seq"].clone(), page["next"].clone()),
            (json!(2), Value::Null)
        );
        let (status, marker) = rig
            .call(
                "PUT",
                &format!("/api/notifications/read?userId={alice}"),
                Some(json!({"seq": 2})),
            )
            .await;
        assert_eq!((status, marker["seq"].clone()), (200, json!(2)));
        let (_, marker) = rig
            .call(
                "PUT",
                &format!("/api/notifications/read?userId={alice}"),
                Some(json!({"seq": 1})),
            )
            .await;
        assert_eq!(marker["seq"], 2, "monotonic");
        let (status, _) = rig
            .call(
                "PUT",
                &format!("/api/notifications/read?userId={alice}"),
                Some(json!({"seq": 3})),
            )
            .await;
        assert_eq!(status, 400);
        let (_, feed) = rig
            .call("GET", &format!("/api/notifications?userId={alice}"), None)
            .await;
        assert_eq!(feed["unread"], 0);

        // Bad input.
        let (status, error) = rig
            .call(
                "PUT",
                &format!("/api/conversations/{id}/read?userId=mallory"),
                Some(json!({"seq": 1})),
            )
            .await;
        assert_eq!((status, error["code"].as_str()), (403, Some("NotAMember")));
        let (status, _) = rig
            .call(
                "PUT",
                &format!("/api/conversations/nope/read?userId={alice}"),
                Some(json!({"seq": 1})),
            )
            .await;
        assert_eq!(status, 404);
        let alice_cursor = cursor(&caught);
        for bad in [
            alice_cursor.clone(),                              // another user's
            format!("{}x", alice_cursor),                      // tampered
            "eyJ1IjoiYm9iIn0.bm90LWEtc2lnbmF0dXJl".to_owned(), // made up
            "garbage".to_owned(),
        ] {
            let (status, error) = rig
                .call("GET", &format!("/api/sync?userId={bob}&since={bad}"), None)
                .await;
            assert_eq!((status, error["code"].as_str()), (400, Some("InvalidCursor")), "{bad}");
        }
        let (status, _) = rig
            .call("GET", &format!("/api/sync?userId={alice}&limit=999999"), None)
            .await;
        assert_eq!(status, 200, "limit clamped, not refused");
        let (status, _) = rig
            .call("GET", &format!("/api/sync?userId={alice}&limit=ten"), None)
            .await;
        assert_eq!(status, 400);
        let (status, _) = rig.call("GET", "/api/sync", None).await;
        assert_eq!(status, 401, "anonymous mode needs the caller named");
        let (status, error) = rig
            .notify(json!({"userIds": ["a"], "conversationId": id, "data": 1}))
            .await;
        assert_eq!((status, error["code"].as_str()), (400, Some("InvalidField")));
        let (status, _) = rig.notify(json!({"conversationId": "nope", "data": 1})).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn limited_paging_over_500_missed_messages_loses_and_repeats_nothing() {
    for store in backends("notify") {
        let rig = Rig::start(&store).await;
        let users = Users::new();
        let (alice, bob, carol) = (&*users.alice, &*users.bob, &*users.carol);
        let (a, b) = (new_id("a"), new_id("b"));
        rig.create(&a, &[alice, bob]).await;
        rig.create(&b, &[alice, carol]).await;
        let since = cursor(&rig.sync(alice, None, None).await);
        let mut expected: BTreeSet<String> = BTreeSet::new();
        for n in 0..500 {
            let (conversation, sender) = if n % 3 == 0 { (&b, carol) } else { (&a, bob) };
            let sent = rig.send(conversation, sender, &format!("m{n}")).await;
            expected.insert(sent["id"].as_str().unwrap().to_owned());
            if n % 100 == 0 {
                let (status, _) = rig.notify(json!({"userIds": [alice, bob], "data": {"n": n}})).await;
                assert_eq!(status, 201);
            }
        }
        let mut seen: Vec<String> = Vec::new();
        let mut last_seq: std::collections::HashMap<String, i64> = Default::default();
        let mut notifications = Vec::new();
        let mut cursor_now = since;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 100, "paging ends");
            let page = rig.sync(alice, Some(&cursor_now), Some(70)).await;
            let mut count = 0;
            for conversation in page["conversations"].as_array().unwrap() {
                let cid = conversation["id"].as_str().unwrap().to_owned();
                for message in conversation["messages"].as_array().unwrap() {
                    let seq = message["seq"].as_i64().unwrap();
                    let previous = last_seq.insert(cid.clone(), seq).unwrap_or(0);
                    assert_eq!(seq, previous + 1, "{store}: gap-free, in order, in {cid}");
                    seen.push(message["id"].as_str().unwrap().to_owned());
                    count += 1;
                }
            }
            for notification in page["notifications"].as_array().unwrap() {
                notifications.push(notification["seq"].as_i64().unwrap());
                count += 1;
            }
            assert!(count <= 70, "limit counts messages plus notifications");
            cursor_now = cursor(&page);
            if page["limited"] == false {
                break;
            }
        }
        assert!(pages >= 8, "500 + 5 items in pages of 70: {pages}");
        assert_eq!(seen.len(), 500, "nothing repeated");
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected, "nothing lost");
        assert_eq!(notifications, vec![1, 2, 3, 4, 5]);
    }
}

#[tokio::test]
async fn notifications_reach_only_their_users_group_and_offline_users_get_the_webhook() {
    for store in backends("notify") {
        let rig = Rig::start(&store).await;
        let users = Users::new();
        let (alice, bob, dave) = (&*users.alice, &*users.bob, &*users.dave);
        let (na, nb, nc) = (new_id("n-a"), new_id("n-b"), new_id("n-c"));
        let group = |user: &str| format!("notifications:user:{user}");
        let mut alice_ws = rig.socket(alice, &[group(alice)]).await;
        let mut bob_ws = rig.socket(bob, &[group(bob)]).await;
        rig.await_presence(alice, 1).await;
        rig.await_presence(bob, 1).await;

        // Alice and bob connected, dave offline: frames to the two groups, the webhook for dave only.
        let (status, created) = rig
            .notify(json!({"id": na, "userIds": [alice, dave], "data": {"to": "alice+dave"}}))
            .await;
        assert_eq!(
            (status, created["userIds"].clone()),
            (201, json!([alice, dave])),
            "{store}"
        );
        let frame = next_json(&mut alice_ws).await;
        assert_eq!(
            (frame["type"].as_str(), frame["id"].as_str(), frame["seq"].as_i64()),
            (Some("notification"), Some(na.as_str()), Some(1))
        );
        assert_eq!(frame["data"], json!({"to": "alice+dave"}));
        let (status, _) = rig
            .notify(json!({"id": nb, "userIds": [bob], "data": {"to": bob}}))
            .await;
        assert_eq!(status, 201);
        let frame = next_json(&mut bob_ws).await;
        assert_eq!(
            frame["id"],
            nb.as_str(),
            "bob's first frame is his own: alice's never reached his group"
        );
        let hooks = rig.await_webhooks(1).await;
        assert_eq!(hooks[0]["userId"], dave);
        assert_eq!(hooks[0]["notification"]["id"], na.as_str());
        assert_eq!(hooks[0]["notification"]["type"], "notification");

        // Alice disconnects: her next notification goes to the webhook too.
        alice_ws.close(None).await.unwrap();
        drop(alice_ws);
        rig.await_presence(alice, 0).await;
        let (status, _) = rig
            .notify(json!({"id": nc, "userIds": [alice, bob], "data": {"to": "alice+bob"}}))
            .await;
        assert_eq!(status, 201);
        let frame = next_json(&mut bob_ws).await;
        assert_eq!(frame["id"], nc.as_str());
        let hooks = rig.await_webhooks(2).await;
        // Give a wrong extra POST (for bob, connected) the time to arrive before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let hooks_after = rig.webhook_bodies();
        assert_eq!(hooks_after.len(), 2, "nothing for connected users: {hooks_after:?}");
        assert_eq!(
            (hooks[1]["userId"].as_str(), hooks[1]["notification"]["id"].as_str()),
            (Some(alice), Some(nc.as_str()))
        );
        assert_eq!(hooks[1]["notification"]["seq"], 2, "alice's second notification");
    }
}
