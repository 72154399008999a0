//! #15 faults end to end (real sockets, the real emulator, the real `handler` binary where a process is
//! killed, SQLite and PostgreSQL): the emulator down while members send, the handler SIGKILLed between the
//! commit and the broadcast, and two handler processes on one PostgreSQL sending and draining at once.
//! Every wait is a bounded loop; PostgreSQL tests get a database of their own, so no other test's drain
//! takes their outbox rows.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::standin::HandlerProcess;
use crate::support::{
    HUB, RunningEmulator, Socket, base_env, get_json, http, postgres_database, serve_emulator, sqlite_store,
    start_handler,
};

/// The key every emulator in these tests signs with, so a restarted one accepts the same clients.
const KEY: &str = "faults-test-access-key-0123456789abcdefghij";
/// Longest any one scenario waits for deliveries.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(40);

/// A fresh SQLite file, and a fresh database in the test PostgreSQL.
async fn backends() -> Vec<String> {
    vec![sqlite_store("faults"), postgres_database().await]
}

fn connection_string(port: u16) -> String {
    format!("Endpoint=http://127.0.0.1;Port={port};AccessKey={KEY};Version=1.0;")
}

/// The settings of a `handler` process calling the service on `port` with store `store`.
fn process_settings(port: u16, store: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("WebPubSubConnectionString".to_owned(), connection_string(port)),
        ("WebPubSubHub".to_owned(), HUB.to_owned()),
        ("NegotiateIdentity".to_owned(), "anonymous".to_owned()),
        ("PublishTrust".to_owned(), "functionkey".to_owned()),
        ("StoreConnectionString".to_owned(), store.to_owned()),
    ])
}

/// The emulator signing with [`KEY`] on loopback `port` (0: any), so it can stop and come back on the same
/// one: binding retries for up to 10 s while a stopped predecessor lets the port go.
async fn start_emulator_on(port: u16) -> RunningEmulator {
    let started = Instant::now();
    let listener = loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => break listener,
            Err(error) if started.elapsed() < Duration::from_secs(10) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot bind 127.0.0.1:{port}: {error}"),
        }
    };
    let config = webpubsub_emulator::EmulatorConfig {
        access_key: KEY.to_owned(),
        ..webpubsub_emulator::EmulatorConfig::default()
    };
    serve_emulator(listener, config)
}

/// A client as the issue designs one: it drops repeated frames by `id`, and applies messages in `seq` order —
/// a frame past a gap waits while the gap is fetched from history (delivery is at least once, and retries
/// may arrive out of order).
#[derive(Default)]
struct Deduplicating {
    seen: HashSet<String>,
    /// Each message once, in arrival order.
    messages: Vec<Value>,
    /// Every frame that was a repeat.
    repeats: usize,
    /// The messages as the application sees them: each once, in `seq` order.
    applied: Vec<i64>,
}

impl Deduplicating {
    /// Applies `frame` in `seq` order, first fetching a gap before it from `history` (`…/messages?userId=…`).
    async fn apply(&mut self, frame: &Value, history: &str) {
        let seq = frame["seq"].as_i64().unwrap();
        let last = self.applied.last().copied().unwrap_or(0);
        if seq <= last {
            return;
        }
        if seq > last + 1 {
            let page = get_json(format!("{history}&after={last}&limit=200")).await;
            for item in page["items"].as_array().unwrap() {
                let fetched = item["seq"].as_i64().unwrap();
                if fetched < seq && fetched > self.applied.last().copied().unwrap_or(0) {
                    self.applied.push(fetched);
                }
            }
        }
        self.applied.push(seq);
    }
}

impl Deduplicating {
    /// Reads frames until `count` distinct messages arrived or the deadline passed.
    async fn read_until(&mut self, socket: &mut Socket, count: usize, deadline: Instant) {
        while self.messages.len() < count && Instant::now() < deadline {
            let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_millis(250), socket.next()).await else {
                continue;
            };
            if let Message::Text(text) = frame {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(frame["type"], "message", "{frame}");
                let id = frame["id"].as_str().unwrap().to_owned();
                if self.seen.insert(id) {
                    self.messages.push(frame);
                } else {
                    self.repeats += 1;
                }
            }
        }
    }

    fn seqs(&self) -> Vec<i64> {
        self.messages.iter().map(|m| m["seq"].as_i64().unwrap()).collect()
    }
}

/// POSTs the host's timer payload to `/outbox` at `base` every 200 ms until aborted (as the timer would,
/// only faster).
fn drain_repeatedly(base: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = http();
        loop {
            let _ = client
                .post(format!("{base}/outbox"))
                .json(&timer_payload())
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn timer_payload() -> Value {
    json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "outbox", "UtcNow": "2026-11-29T21:00:00.000Z", "RandGuid": "6a0c2a1e-3b4f-4c5d-8e9f-0a1b2c3d4e5f"}}
    })
}

async fn create(base: &str, id: &str, members: &[&str]) {
    let reply = http()
        .post(format!("{base}/api/manage/conversations"))
        .json(&json!({"id": id, "members": members}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201, "{}", reply.text().await.unwrap());
}

/// A member's send; returns (status, body).
async fn send(base: &str, conversation: &str, user: &str, id: &str) -> (u16, Value) {
    let reply = http()
        .post(format!(
            "{base}/api/conversations/{conversation}/messages?userId={user}"
        ))
        .json(&json!({"id": id, "body": {"text": id}}))
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

fn new_conversation() -> String {
    format!("f-{}", uuid::Uuid::now_v7())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_emulator_down_sends_go_on_and_the_drain_delivers_each_once_in_order() {
    for store in backends().await {
        let first = start_emulator_on(0).await;
        let port = first.addr.port();
        let env = base_env()
            .with("WebPubSubConnectionString", connection_string(port))
            .with("WebPubSubHub", HUB)
            .with("StoreConnectionString", &store);
        let handler = start_handler(env).await;
        let base = handler.url("");
        let id = new_conversation();
        let group = format!("conversation:{id}");
        create(&base, &id, &["alice", "bob"]).await;
        let mut bob = first.member(HUB, "bob", std::slice::from_ref(&group)).await;
        let mut client = Deduplicating::default();
        assert_eq!(send(&base, &id, "alice", "m1").await.0, 201);
        client
            .read_until(&mut bob, 1, Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!(client.seqs(), [1], "{store}: the live path works before the fault");
        let history = format!("{base}/api/conversations/{id}/messages?userId=bob");

        first.stop().await;
        drop(bob);
        for n in 2..=6 {
            let (status, body) = send(&base, &id, "alice", &format!("m{n}")).await;
            assert_eq!((status, body["seq"].as_i64()), (201, Some(n)), "{store}: {body}");
        }
        // Let the immediate tries (bounded to 2 s) fail before the service returns.
        tokio::time::sleep(Duration::from_secs(3)).await;

        // Back on the same port; the client reconnects and keeps its de-duplication state.
        let second = start_emulator_on(port).await;
        let mut bob = second.member(HUB, "bob", std::slice::from_ref(&group)).await;
        let drains = drain_repeatedly(base.clone());
        client.read_until(&mut bob, 6, Instant::now() + DELIVERY_DEADLINE).await;
        drains.abort();
        let mut delivered = client.seqs();
        delivered.sort_unstable();
        assert_eq!(
            delivered,
            [1, 2, 3, 4, 5, 6],
            "{store}: the drain delivered every message live"
        );
        for frame in client.messages.clone() {
            client.apply(&frame, &history).await;
        }
        assert_eq!(
            client.applied,
            [1, 2, 3, 4, 5, 6],
            "{store}: each message once, in seq order"
        );
        second.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_killed_between_commit_and_broadcast_is_made_good_by_the_next_drain() {
    for store in backends().await {
        // A service that accepts connections and never answers: the broadcast after the commit hangs.
        let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hole_port = black_hole.local_addr().unwrap().port();
        let hole = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = black_hole.accept().await {
                held.push(stream);
            }
        });
        let values = process_settings(hole_port, &store);
        let mut process = HandlerProcess::spawn(&values);
        process.wait_ready().await;
        let base = format!("http://127.0.0.1:{}", process.port);
        let id = new_conversation();
        create(&base, &id, &["alice", "bob"]).await;
        let (status, sent) = send(&base, &id, "alice", "killed-1").await;
        assert_eq!(status, 201, "{store}: {sent}");
        drop(process); // SIGKILL while the broadcast hangs
        hole.abort();

        let emulator = start_emulator_on(0).await;
        let mut bob = emulator.member(HUB, "bob", &[format!("conversation:{id}")]).await;
        let env = base_env()
            .with("WebPubSubConnectionString", connection_string(emulator.addr.port()))
            .with("WebPubSubHub", HUB)
            .with("StoreConnectionString", &store);
        let next = start_handler(env).await;
        let drains = drain_repeatedly(next.url(""));
        let mut client = Deduplicating::default();
        // The dead process's lease on the row runs out first (10 s), then a drain delivers it.
        client.read_until(&mut bob, 1, Instant::now() + DELIVERY_DEADLINE).await;
        drains.abort();
        assert_eq!(client.messages.len(), 1, "{store}: the next drain delivered");
        assert_eq!(client.messages[0]["id"], "killed-1");
        assert_eq!(client.messages[0]["seq"], sent["seq"]);
        emulator.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_keep_seq_gap_free_and_two_drains_send_each_row_once() {
    const PER_PROCESS: usize = 30;
    let store = postgres_database().await;
    // The emulator's port, not yet served: every immediate broadcast fails, so the drains do all the work.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let values = process_settings(port, &store);
    let mut one = HandlerProcess::spawn(&values);
    let mut two = HandlerProcess::spawn(&values);
    one.wait_ready().await;
    two.wait_ready().await;
    let bases = [
        format!("http://127.0.0.1:{}", one.port),
        format!("http://127.0.0.1:{}", two.port),
    ];
    let id = new_conversation();
    create(&bases[0], &id, &["alice", "bob"]).await;

    let sends = (0..PER_PROCESS * 2).map(|n| {
        let base = bases[n % 2].clone();
        let id = id.clone();
        async move { send(&base, &id, "alice", &format!("p{}-{n}", n % 2)).await }
    });
    let replies = futures_util::future::join_all(sends).await;
    let mut seqs: Vec<i64> = replies
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body["seq"].as_i64().unwrap()
        })
        .collect();
    seqs.sort_unstable();
    let expected: Vec<i64> = (1..=(PER_PROCESS as i64 * 2)).collect();
    assert_eq!(seqs, expected, "seq is unique and gap-free across both processes");
    let history = get_json(format!(
        "{}/api/conversations/{id}/messages?userId=bob&after=0&limit=200",
        bases[1]
    ))
    .await;
    let stored: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(stored, expected, "history holds every message once");
    // Let the immediate tries (bounded to 2 s) fail before the service comes up.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let emulator = start_emulator_on(port).await;
    let mut bob = emulator.member(HUB, "bob", &[format!("conversation:{id}")]).await;
    let drains = [drain_repeatedly(bases[0].clone()), drain_repeatedly(bases[1].clone())];
    let mut client = Deduplicating::default();
    client
        .read_until(&mut bob, PER_PROCESS * 2, Instant::now() + DELIVERY_DEADLINE)
        .await;
    // Keep both drains racing a little longer: a row sent twice would show up now.
    let linger = Instant::now() + Duration::from_secs(2);
    client.read_until(&mut bob, usize::MAX, linger).await;
    for drain in drains {
        drain.abort();
    }
    assert_eq!(client.messages.len(), PER_PROCESS * 2, "every row delivered");
    assert_eq!(client.repeats, 0, "two drains at once sent no row twice");
    emulator.stop().await;
}
