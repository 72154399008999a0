//! `events` end to end: the emulator validates the handler (abuse protection) and sends it real, signed
//! CloudEvents for clients that connect with a real WebSocket client. Covers subprotocol choice, echo,
//! broadcast through the REST API, connect refusal, key rotation and the `disconnected` log line.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use webpubsub_control::Env;
use webpubsub_control::webpubsub::{AccessKey, ClientAccessIssuer, ClientAccessRequest, Endpoint};
use webpubsub_emulator::{DEV_ACCESS_KEY, EmulatorConfig, EventHandlerConfig, HubConfig};

use crate::contract::checked;
use crate::support::{RunningHandler, Socket, base_env, http, next_json, start_handler};

const HUB: &str = "chat";
const JSON: &str = "json.webpubsub.azure.v1";
const RELIABLE_JSON: &str = "json.reliable.webpubsub.azure.v1";
/// Longest wait for one frame or handshake.
const WAIT: Duration = Duration::from_secs(10);

/// The emulator with `chat` wired to the handler's `/api/events`, and the handler pointing back at it.
struct System {
    handler: RunningHandler,
    emulator_addr: std::net::SocketAddr,
    stop_emulator: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_emulator.take() {
            let _ = stop.send(());
        }
    }
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

        let config = EmulatorConfig {
            hubs: vec![HubConfig {
                hub: HUB.into(),
                event_handlers: vec![EventHandlerConfig {
                    url_template: handler.url("/api/events"),
                    system_events: vec!["connect".into(), "connected".into(), "disconnected".into()],
                    user_event_pattern: Some("*".into()),
                }],
            }],
            // One quick retry keeps a failing test fast; the handler should never need it.
            upstream_retry_delays: vec![Duration::from_millis(100)],
            ..EmulatorConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            webpubsub_emulator::run(listener, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("the emulator runs");
        });
        System {
            handler,
            emulator_addr,
            stop_emulator: Some(stop),
        }
    }

    /// A client URL for `user` signed with the emulator's key.
    fn client_url(&self, user: Option<&str>) -> String {
        let endpoint = Endpoint::parse(&format!("http://{}", self.emulator_addr)).unwrap();
        let issuer = ClientAccessIssuer::new(endpoint, &AccessKey::new(DEV_ACCESS_KEY).unwrap());
        let request = ClientAccessRequest {
            user_id: user.map(str::to_owned),
            ..ClientAccessRequest::default()
        };
        issuer.issue(HUB, &request).unwrap().url
    }

    /// Connects offering `subprotocols`; returns the socket and the subprotocol the server chose.
    async fn connect(&self, user: Option<&str>, subprotocols: &[&str]) -> Result<(Socket, Option<String>), WsError> {
        let mut request = self.client_url(user).into_client_request().unwrap();
        if !subprotocols.is_empty() {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", subprotocols.join(", ").parse().unwrap());
        }
        let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake in time")?;
        let chosen = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok((socket, chosen))
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

/// A JSON-subprotocol client that keeps frames it read but was not yet asked for (an event's ack and the
/// handler's reply arrive in either order).
struct Client {
    socket: Socket,
    backlog: Vec<Value>,
}

impl Client {
    /// The first frame (backlog first, then at most 16 new ones) that satisfies `wanted`.
    async fn next_where(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(index);
        }
        for _ in 0..16 {
            let frame = next_json(&mut self.socket).await;
            if wanted(&frame) {
                return frame;
            }
            self.backlog.push(frame);
        }
        panic!("no wanted frame among 16; backlog: {:?}", self.backlog);
    }

    async fn next_message(&mut self) -> Value {
        self.next_where(|frame| frame["type"] == "message").await
    }

    /// Sends a JSON user event and returns its ack.
    async fn send_event(&mut self, ack_id: u64, event: &str, data: Value) -> Value {
        send_json(
            &mut self.socket,
            json!({"type": "event", "event": event, "ackId": ack_id, "dataType": "json", "data": data}),
        )
        .await;
        self.next_where(|frame| frame["type"] == "ack" && frame["ackId"] == ack_id)
            .await
    }
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
    let mut alice = Client {
        socket: system.connect_json("alice").await.0,
        backlog: Vec::new(),
    };
    let mut bob = Client {
        socket: system.connect_json("bob").await.0,
        backlog: Vec::new(),
    };

    // Joining: the REST call adds the connection; the reply and the new state come back through the emulator.
    for client in [&mut alice, &mut bob] {
        assert_eq!(
            client.send_event(1, "join", json!({"room": "room-1"})).await["success"],
            true
        );
        let joined = client.next_message().await;
        assert_eq!(joined["from"], "server");
        assert_eq!(joined["data"], json!({"event": "joined", "room": "room-1"}));
    }

    assert_eq!(
        alice
            .send_event(2, "message", json!({"room": "room-1", "text": "hi"}))
            .await["success"],
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
        bob.send_event(3, "message", json!({"room": "lobby", "text": "hello lobby"}))
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
        .send_event(4, "message", json!({"room": "room-2", "text": "nobody hears"}))
        .await;
    assert_eq!(refused["success"], false, "{refused}");
    // ...and after leaving, room-1 is refused too.
    assert_eq!(
        bob.send_event(5, "leave", json!({"room": "room-1"})).await["success"],
        true
    );
    let left = bob
        .next_where(|frame| frame["type"] == "message" && frame["data"]["event"] == "left")
        .await;
    assert_eq!(left["data"], json!({"event": "left", "room": "room-1"}));
    assert_eq!(
        bob.send_event(6, "message", json!({"room": "room-1"})).await["success"],
        false
    );
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
        .header("ce-specversion", "1.0")
        .header("ce-type", "azure.webpubsub.sys.connect")
        .header("ce-eventName", "connect")
        .header("ce-id", "1")
        .header("ce-source", "/hubs/chat/client/c1")
        .header("ce-hub", HUB)
        .header("ce-connectionId", "c1")
        .header("ce-userId", "mallory")
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
