//! Shared helpers for the end-to-end tests, so each scenario file holds only its scenarios: the handler and
//! the emulator in-process on `127.0.0.1:0` (alone, wired to each other, or on a store), the store backends
//! under test, checked HTTP calls, and WebSocket clients (signed client URLs, bounded handshakes, JSON frames
//! with a backlog and acks).

use std::net::SocketAddr;

use tokio::sync::oneshot;
use webpubsub_control::App;
use webpubsub_control::Env;
use webpubsub_control::Settings;

/// A handler served in-process; stopped when dropped.
pub(crate) struct RunningHandler {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    http: reqwest::Client,
}

impl RunningHandler {
    /// `http://127.0.0.1:<port>` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `method path` with an optional JSON body and extra headers; the answer is checked against
    /// openapi.yaml ([`crate::contract::checked`]) and returned as (status, JSON body or `null` when empty).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = crate::contract::checked(method, path, request.send().await.unwrap()).await;
        let body = if reply.body.is_empty() {
            serde_json::Value::Null
        } else {
            reply.json()
        };
        (reply.status.as_u16(), body)
    }
}

impl Drop for RunningHandler {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the handler with `env` (validated exactly like production) on an ephemeral loopback port.
pub(crate) async fn start_handler(env: Env) -> RunningHandler {
    let settings = Settings::from_env(&env).expect("test settings are valid");
    let app = App::new(settings).expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(webpubsub_control::run(listener, app, async {
        let _ = stopped.await;
    }));
    RunningHandler {
        addr,
        stop: Some(stop),
        http: http(),
    }
}

/// The hub of [`base_env`].
pub(crate) const HUB: &str = "chat";

/// A minimal valid environment: a connection string to nowhere (port 9 on loopback) and a hub.
pub(crate) fn base_env() -> Env {
    Env::from_pairs([
        (
            "WebPubSubConnectionString",
            "Endpoint=http://127.0.0.1;Port=9;AccessKey=test-access-key-0123456789abcdefghijklmnop;Version=1.0;",
        ),
        ("WebPubSubHub", "chat"),
        // negotiate refuses to start without an explicit identity mode.
        ("NegotiateIdentity", "anonymous"),
        // publish refuses to start without an explicit trust mode.
        ("PublishTrust", "functionkey"),
    ])
}

/// One pooled HTTP client for tests.
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The local Web PubSub emulator served in-process; stopped when dropped.
pub(crate) struct RunningEmulator {
    pub addr: SocketAddr,
    /// `Endpoint=http://127.0.0.1;Port=…;AccessKey=…;Version=1.0;`
    pub connection_string: String,
    pub access_key: String,
    /// The service behind it, for tests that inspect it (e.g. its identity authority).
    pub service: std::sync::Arc<webpubsub_emulator::Service>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningEmulator {
    /// Stops it and waits (bounded, 15 s) until it has let go of its port.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), &mut self.task).await;
    }

    /// A raw WebSocket client of `user` on `hub`, already in `groups`: see [`member_socket`].
    pub(crate) async fn member(&self, hub: &str, user: &str, groups: &[String]) -> Socket {
        member_socket(self.addr, &self.access_key, hub, user, groups).await
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the emulator with its default configuration on an ephemeral loopback port.
pub(crate) async fn start_emulator() -> RunningEmulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_emulator(listener, webpubsub_emulator::EmulatorConfig::default())
}

/// Serves the emulator with `config` (validated first) on `listener`, bound by the caller (e.g. before the
/// handler that the emulator's event handler URL names, or on a port a stopped emulator used).
pub(crate) fn serve_emulator(
    listener: tokio::net::TcpListener,
    config: webpubsub_emulator::EmulatorConfig,
) -> RunningEmulator {
    config.validate().expect("a valid emulator configuration");
    let access_key = config.access_key.clone();
    let addr = listener.local_addr().unwrap();
    let service = webpubsub_emulator::Service::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(webpubsub_emulator::serve(listener, service.clone(), async {
        let _ = stopped.await;
    }));
    RunningEmulator {
        addr,
        connection_string: webpubsub_emulator::connection_string(addr, &access_key),
        access_key,
        service,
        stop: Some(stop),
        task,
    }
}

/// A WebSocket client connection (tokio-tungstenite).
pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text frame within 10 s (pings and other control frames skipped, at most 16 of them).
pub(crate) async fn next_json(socket: &mut Socket) -> serde_json::Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    for _ in 0..16 {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(close) => panic!("connection closed: {close:?}"),
            _ => continue,
        }
    }
    panic!("no text frame among 16 frames");
}

/// `GET url` and its JSON body, whatever the status.
pub(crate) async fn get_json(url: impl reqwest::IntoUrl) -> serde_json::Value {
    http().get(url).send().await.unwrap().json().await.unwrap()
}

/// The JSON subprotocol.
pub(crate) const JSON_SUBPROTOCOL: &str = "json.webpubsub.azure.v1";
/// Longest wait for a WebSocket handshake or frame.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A client URL (`ws://…/client/hubs/{hub}?access_token=…`) for `user` in `groups`, signed with `access_key` for
/// the service (the emulator) at `service`.
pub(crate) fn client_url(
    service: SocketAddr,
    access_key: &str,
    hub: &str,
    user: Option<&str>,
    groups: &[String],
) -> String {
    use webpubsub_control::webpubsub::{AccessKey, ClientAccessIssuer, ClientAccessRequest, Endpoint};
    let endpoint = Endpoint::parse(&format!("http://{service}")).unwrap();
    let issuer = ClientAccessIssuer::new(endpoint, &AccessKey::new(access_key).unwrap());
    let request = ClientAccessRequest {
        user_id: user.map(str::to_owned),
        groups: groups.to_vec(),
        ..ClientAccessRequest::default()
    };
    issuer.issue(hub, &request).unwrap().url
}

/// Opens a WebSocket to `url` offering `subprotocols` (none: no header) within 10 s; the socket and the
/// subprotocol the server chose, or the handshake's error.
pub(crate) async fn open_socket(
    url: &str,
    subprotocols: &[&str],
) -> Result<(Socket, Option<String>), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
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
        .map(|value| value.to_str().unwrap().to_owned());
    Ok((socket, chosen))
}

/// A raw WebSocket client (no subprotocol) of `user`, already in `groups` (its token says so), through the
/// service at `service`: a member's client.
pub(crate) async fn member_socket(
    service: SocketAddr,
    access_key: &str,
    hub: &str,
    user: &str,
    groups: &[String],
) -> Socket {
    let url = client_url(service, access_key, hub, Some(user), groups);
    open_socket(&url, &[]).await.expect("connects").0
}

/// A JSON-subprotocol client that keeps frames it read but was not yet asked for (an event's ack and the
/// handler's reply arrive in either order), and numbers its acked frames.
pub(crate) struct JsonClient {
    pub socket: Socket,
    backlog: Vec<serde_json::Value>,
    next_ack_id: u64,
}

impl JsonClient {
    /// Wraps a connected socket.
    pub(crate) fn new(socket: Socket) -> Self {
        Self {
            socket,
            backlog: Vec::new(),
            next_ack_id: 1,
        }
    }

    /// The next text frame as JSON within 10 s (control frames skipped, at most 16); `None` once the
    /// connection closed.
    pub(crate) async fn next_frame(&mut self) -> Option<serde_json::Value> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        for _ in 0..16 {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame in time");
            match frame {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(text.as_str()).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
        panic!("no text frame among 16 frames");
    }

    /// The first frame (backlog first, then at most 16 new ones) that satisfies `wanted`.
    pub(crate) async fn next_where(&mut self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        if let Some(index) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(index);
        }
        for _ in 0..16 {
            let frame = self.next_frame().await.expect("the connection is open");
            if wanted(&frame) {
                return frame;
            }
            self.backlog.push(frame);
        }
        panic!("no wanted frame among 16; backlog: {:?}", self.backlog);
    }

    /// The next `message` frame.
    pub(crate) async fn next_message(&mut self) -> serde_json::Value {
        self.next_where(|frame| frame["type"] == "message").await
    }

    /// Sends `frame` with a fresh `ackId` and returns the ack.
    pub(crate) async fn send_acked(&mut self, mut frame: serde_json::Value) -> serde_json::Value {
        use futures_util::SinkExt;
        let ack_id = self.next_ack_id;
        self.next_ack_id += 1;
        frame["ackId"] = serde_json::json!(ack_id);
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(frame.to_string()))
            .await
            .unwrap();
        self.next_where(|frame| frame["type"] == "ack" && frame["ackId"] == ack_id)
            .await
    }

    /// The next frame in order (the backlog first): what a test asserts is the very next thing a client saw.
    pub(crate) async fn next_in_order(&mut self) -> serde_json::Value {
        self.next_where(|_| true).await
    }

    /// The next frame is a message from the server with `data`.
    pub(crate) async fn receives(&mut self, data: serde_json::Value) {
        let frame = self.next_in_order().await;
        assert_eq!(
            (frame["type"].as_str(), frame["from"].as_str(), &frame["data"]),
            (Some("message"), Some("server"), &data),
            "{frame}"
        );
    }

    /// Sends `frame` with a fresh `ackId`: whether the service acknowledged it as a success.
    pub(crate) async fn acked(&mut self, frame: serde_json::Value) -> bool {
        let ack = self.send_acked(frame).await;
        ack["success"].as_bool().expect("success")
    }

    /// The service closes the connection with `reason`: next a `disconnected` frame, then the close.
    pub(crate) async fn closed_with(&mut self, reason: &str) {
        let disconnected = self.next_in_order().await;
        assert_eq!(
            (disconnected["event"].as_str(), disconnected["message"].as_str()),
            (Some("disconnected"), Some(reason)),
            "{disconnected}"
        );
        let after = self.next_frame().await;
        assert_eq!(after, None, "the connection closes after `disconnected`");
    }

    /// Sends the JSON user event `event` with `data` and returns its ack.
    pub(crate) async fn event(&mut self, event: &str, data: serde_json::Value) -> serde_json::Value {
        self.send_acked(serde_json::json!({"type": "event", "event": event, "dataType": "json", "data": data}))
            .await
    }
}

/// The store connection strings under test: a fresh SQLite file (in a new temporary folder named after
/// `suite`) and the test PostgreSQL (`WPS_TEST_POSTGRES_URL`, from `scripts/postgres.sh env`; unset is a
/// failure, never a skip).
pub(crate) fn backends(suite: &str) -> Vec<String> {
    vec![sqlite_store(suite), test_support::postgres::base_url()]
}

/// A fresh SQLite store in a new temporary folder named after `suite`.
pub(crate) fn sqlite_store(suite: &str) -> String {
    let dir = std::env::temp_dir().join(format!("wps-{suite}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite:{}", dir.join("store.db").display())
}

/// A new, empty database in the test PostgreSQL, so no other test's work (e.g. a drain) touches its rows.
pub(crate) async fn postgres_database() -> String {
    test_support::postgres::fresh_database(&test_support::postgres::base_url(), "f").await
}

/// The emulator (default configuration) and a handler on store `store` that calls it, both on `127.0.0.1:0`.
pub(crate) async fn start_with_store(store: &str) -> (RunningEmulator, RunningHandler) {
    let emulator = start_emulator().await;
    let env = base_env()
        .with("WebPubSubConnectionString", &emulator.connection_string)
        .with("StoreConnectionString", store);
    let handler = start_handler(env).await;
    (emulator, handler)
}

/// An emulator configuration whose hub [`HUB`] sends `system_events` (and the user events matching
/// `user_events`) to `handler`'s `/api/events`, with one quick upstream retry (100 ms) that keeps a failing
/// test fast (the handler should never need it).
pub(crate) fn wired_to(
    handler: &RunningHandler,
    system_events: &[&str],
    user_events: Option<&str>,
) -> webpubsub_emulator::EmulatorConfig {
    use webpubsub_emulator::{EmulatorConfig, EventHandlerConfig, HubConfig};
    EmulatorConfig {
        hubs: vec![HubConfig {
            hub: HUB.into(),
            event_handlers: vec![EventHandlerConfig {
                url_template: handler.url("/api/events"),
                system_events: system_events.iter().map(|event| (*event).to_owned()).collect(),
                user_event_pattern: user_events.map(str::to_owned),
            }],
        }],
        upstream_retry_delays: vec![std::time::Duration::from_millis(100)],
        ..EmulatorConfig::default()
    }
}
