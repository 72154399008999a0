//! `events` end to end: the emulator validates the handler (abuse protection) and sends it real, signed
//! CloudEvents for clients that connect with a real WebSocket client. Covers subprotocol choice, echo,
//! broadcast through the REST API, connect refusal, key rotation and the `disconnected` log line.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use test_support::CloudEvent;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use webpubsub_control::Env;
use webpubsub_emulator::DEV_ACCESS_KEY;

use crate::contract::checked;
use crate::support::{
    HUB, JsonClient, RunningEmulator, RunningHandler, Socket, base_env, client_url, http, next_json, open_socket,
    serve_emulator, start_handler, wired_to,
};

const JSON: &str = "json.webpubsub.azure.v1";
const RELIABLE_JSON: &str = "json.reliable.webpubsub.azure.v1";

/// The emulator with `chat` wired to the handler's `/api/events`, and the handler pointing back at it.
struct System {
    handler: RunningHandler,
    emulator: RunningEmulator,
}

impl System {
    /// Starts both. `configure` adds `events` settings to an environment whose connection string is the
    /// emulator's (with `DEV_ACCESS_KEY`).
    async fn start(configure: impl FnOnce(Env) -> Env) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator_addr = listener.local_addr().unwrap();
        let connection_string = webpubsub_emulator::connection_string(emulator_addr, DEV_ACCESS_KEY);
        let handler = start_handler(configure(
            base_env().with("WebPubSubConnectionString", connection_string),
        ))
        .await;

        let config = wired_to(&handler, &["connect", "connected", "disconnected"], Some("*"));
        System {
            handler,
            emulator: serve_emulator(listener, config),
        }
    }

    /// Connects offering `subprotocols`; returns the socket and the subprotocol the server chose.
    async fn connect(&self, user: Option<&str>, subprotocols: &[&str]) -> Result<(Socket, Option<String>), WsError> {
        let url = client_url(self.emulator.addr, DEV_ACCESS_KEY, HUB, user, &[]);
        open_socket(&url, subprotocols).await
    }

    /// Connects a JSON client for `user` and returns it with its connection id.
    async fn connect_json(&self, user: &str) -> (Socket, String) {
        let (mut socket, chosen) = self
            .connect(Some(user), &[JSON])
            .await
            .expect("the handler accepts the connect");
        assert_eq!(chosen.as_deref(), Some(JSON));
        let connected = next_json(&mut socket).await;
        assert_eq!(
            (connected["type"].as_str(), connected["event"].as_str()),
            (Some("system"), Some("connected")),
            "{connected}"
        );
        (socket, connected["connectionId"].as_str().unwrap().to_owned())
    }
}

/// The next frame of `type`, skipping (at most 16) others.
async fn next_of_type(socket: &mut Socket, frame_type: &str) -> Value {
    for _ in 0..16 {
        let frame = next_json(socket).await;
        if frame["type"] == frame_type {
            return frame;
        }
    }
    panic!("no {frame_type} frame among 16 frames");
}

async fn send_json(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

#[tokio::test]
async fn connect_picks_the_preferred_subprotocol_among_those_offered() {
    let system = System::start(|env| env).await;
    let (mut socket, chosen) = system
        .connect(Some("alice"), &[JSON, RELIABLE_JSON])
        .await
        .expect("accepted");
    assert_eq!(chosen.as_deref(), Some(RELIABLE_JSON));
    let connected = next_of_type(&mut socket, "system").await;
    assert_eq!(connected["userId"], "alice");
    assert!(
        connected["reconnectionToken"].is_string(),
        "a reliable connection gets a reconnection token: {connected}"
    );

    let preferring_plain = System::start(|env| env.with("EventsSubprotocols", format!("{JSON},{RELIABLE_JSON}"))).await;
    let (_socket, chosen) = preferring_plain
        .connect(Some("alice"), &[RELIABLE_JSON, JSON])
        .await
        .expect("accepted");
    assert_eq!(chosen.as_deref(), Some(JSON));
}

#[tokio::test]
async fn a_raw_client_offering_nothing_gets_no_subprotocol() {
    let system = System::start(|env| env).await;
    let (_socket, chosen) = system.connect(Some("alice"), &[]).await.expect("accepted");
    assert_eq!(chosen, None);
}

#[tokio::test]
async fn connect_refusals_reach_the_client() {
    let system = System::start(|env| env.with("EventsRequireUserId", "true")).await;
    match system.connect(None, &[JSON]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("an anonymous client must be refused"),
    }
    let (_socket, chosen) = system
        .connect(Some("alice"), &[JSON])
        .await
        .expect("a named client is accepted");
    assert_eq!(chosen.as_deref(), Some(JSON));
}

#[tokio::test]
async fn a_user_events_reply_reaches_the_sender() {
    let system = System::start(|env| env.with("EventsUserEventBehavior", "echo")).await;
    let (mut socket, _) = system.connect_json("alice").await;
    send_json(
        &mut socket,
        json!({"type": "event", "event": "message", "ackId": 1, "dataType": "text", "data": "hello"}),
    )
    .await;
    let reply = next_of_type(&mut socket, "message").await;
    assert_eq!(
        reply,
        json!({"type": "message", "from": "server", "dataType": "text", "data": "hello"})
    );

    send_json(
        &mut socket,
        json!({"type": "event", "event": "custom", "dataType": "json", "data": {"n": [1, 2]}}),
    )
    .await;
    let reply = next_of_type(&mut socket, "message").await;
    assert_eq!(reply["dataType"], "json");
    assert_eq!(reply["data"], json!({"n": [1, 2]}));
}

#[tokio::test]
async fn broadcast_reaches_the_room_with_the_senders_user_id() {
    let system = System::start(|env| {
        env.with("EventsUserEventBehavior", "broadcast")
            .with("EventsJoinableRooms", "room-*")
            .with("EventsDefaultGroups", "lobby")
    })
    .await;
    let mut alice = JsonClient::new(system.connect_json("alice").await.0);
    let mut bob = JsonClient::new(system.connect_json("bob").await.0);

    // Joining: the REST call adds the connection; the reply and the new state come back through the emulator.
    for client in [&mut alice, &mut bob] {
        assert_eq!(client.event("join", json!({"room": "room-1"})).await["success"], true);
        let joined = client.next_message().await;
        assert_eq!(joined["from"], "server");
        assert_eq!(joined["data"], json!({"event": "joined", "room": "room-1"}));
    }

    assert_eq!(
        alice.event("message", json!({"room": "room-1", "text": "hi"})).await["success"],
        true
    );
    for client in [&mut bob, &mut alice] {
        // A REST send reaches JSON clients as a server message; the envelope names the room and sender.
        let message = client.next_message().await;
        assert_eq!(message["from"], "server");
        assert_eq!(message["dataType"], "json");
        assert_eq!(
            message["data"],
            json!({"from": "alice", "room": "room-1", "event": "message", "dataType": "json", "data": {"room": "room-1", "text": "hi"}})
        );
    }

    // The default group is a room too (recorded at connect)...
    assert_eq!(
        bob.event("message", json!({"room": "lobby", "text": "hello lobby"}))
            .await["success"],
        true
    );
    let message = alice.next_message().await;
    assert_eq!(
        (message["data"]["room"].as_str(), message["data"]["from"].as_str()),
        (Some("lobby"), Some("bob"))
    );
    // ...a room never joined is refused (the emulator turns the 403 into a failed ack)...
    let refused = bob
        .event("message", json!({"room": "room-2", "text": "nobody hears"}))
        .await;
    assert_eq!(refused["success"], false, "{refused}");
    // ...and after leaving, room-1 is refused too.
    assert_eq!(bob.event("leave", json!({"room": "room-1"})).await["success"], true);
    let left = bob
        .next_where(|frame| frame["type"] == "message" && frame["data"]["event"] == "left")
        .await;
    assert_eq!(left["data"], json!({"event": "left", "room": "room-1"}));
    assert_eq!(bob.event("message", json!({"room": "room-1"})).await["success"], false);
}

#[tokio::test]
async fn key_rotation_a_service_signing_with_the_secondary_key_only_is_accepted() {
    // The handler's primary key is new; the emulator still signs with the old one, now the secondary.
    let system = System::start(|env| {
        let old = env.get("WebPubSubConnectionString").unwrap().to_owned();
        env.with(
            "WebPubSubConnectionString",
            old.replace(DEV_ACCESS_KEY, "rotated-primary-key-the-emulator-does-not-know"),
        )
        .with("WebPubSubSecondaryConnectionString", old)
    })
    .await;
    let (_socket, chosen) = system
        .connect(Some("alice"), &[JSON])
        .await
        .expect("signed with the secondary key only, accepted");
    assert_eq!(chosen.as_deref(), Some(JSON));
}

#[tokio::test]
async fn abuse_protection_answers_only_the_service_origin() {
    let system = System::start(|env| env).await;
    let url = system.handler.url("/api/events");
    let allowed = http()
        .request(reqwest::Method::OPTIONS, &url)
        .header("WebHook-Request-Origin", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["webhook-allowed-origin"], "127.0.0.1");
    checked("OPTIONS", "/api/events", allowed).await;
    let refused = http()
        .request(reqwest::Method::OPTIONS, &url)
        .header("WebHook-Request-Origin", "evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.headers().get("webhook-allowed-origin").is_none());
    let body = checked("OPTIONS", "/api/events", refused).await.json();
    assert_eq!(body["code"], "OriginNotAllowed");
}

#[tokio::test]
async fn an_unsigned_post_is_refused_over_http() {
    let system = System::start(|env| env).await;
    let response = http()
        .post(system.handler.url("/api/events"))
        .headers(
            // No origin header: a request from a foreign origin is refused before the signature is read.
            CloudEvent::new("azure.webpubsub.sys.connect")
                .connection(HUB, "c1")
                .user("mallory")
                .without(&["webhook-request-origin"])
                .header_map(),
        )
        .json(&json!({"claims": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = checked("POST", "/api/events", response).await.json();
    assert_eq!(body["code"], "MissingSignature");
}

#[tokio::test]
async fn disconnect_is_logged_with_the_event_metadata() {
    // The test runtime is single-threaded, so the handler and the emulator log on this thread too.
    let (captured, _guard) = test_support::capture_logs(webpubsub_control::telemetry::TextFields);

    let system = System::start(|env| env).await;
    let (mut socket, connection_id) = system.connect_json("alice").await;
    socket.close(None).await.unwrap();

    // The emulator sends `disconnected` asynchronously: poll the log (bounded: 200 × 25 ms).
    let wanted = |line: &&str| {
        line.contains("Received Web PubSub upstream callback")
            && line.contains("azure.webpubsub.sys.disconnected")
            && line.contains(&connection_id)
    };
    let mut line = None;
    for _ in 0..200 {
        let log = captured.text();
        if let Some(found) = log.lines().find(wanted) {
            line = Some(found.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let line = line.expect("a disconnected log line");
    assert!(line.contains("hub=chat"), "{line}");
    assert!(line.contains("user_id=alice"), "{line}");
    assert!(line.contains("status=204"), "{line}");
    let log = captured.text();
    let connected = log
        .lines()
        .filter(|l| l.contains("Received Web PubSub upstream callback") && l.contains("azure.webpubsub.sys.connected"))
        .filter(|l| l.contains(&connection_id))
        .count();
    assert_eq!(connected, 1, "one line per event");
    assert!(!log.contains("sha256="), "signatures are never logged");
}
