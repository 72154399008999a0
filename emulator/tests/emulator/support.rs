//! Shared helpers: start an emulator, mint tokens, open WebSockets, read frames with
//! bounded waits, and a recording upstream server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webpubsub_emulator::{EmulatorConfig, Service, service};

/// Longest wait for anything the tests expect to happen.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) const KEY: &str = "test-access-key-0123456789-0123456789-abcdef";
pub(crate) const SECONDARY_KEY: &str = "test-secondary-key-0123456789-0123456789";

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running emulator; dropping it shuts it down.
pub(crate) struct Emulator {
    pub addr: SocketAddr,
    pub service: Arc<Service>,
    _shutdown: oneshot::Sender<()>,
}

/// A configuration with the test key and fast upstream retries.
pub(crate) fn config() -> EmulatorConfig {
    EmulatorConfig {
        access_key: KEY.into(),
        upstream_timeout: Duration::from_secs(5),
        upstream_retry_delays: vec![Duration::from_millis(10); 3],
        validation_retry_interval: Duration::ZERO,
        reconnect_window: Duration::from_secs(30),
        ..EmulatorConfig::default()
    }
}

pub(crate) async fn start(config: EmulatorConfig) -> Emulator {
    config.validate().expect("valid test config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Service::new(config);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(webpubsub_emulator::serve(listener, service.clone(), async {
        let _ = rx.await;
    }));
    Emulator {
        addr,
        service,
        _shutdown: tx,
    }
}

impl Emulator {
    pub(crate) fn url(&self, hub: &str, token: &str) -> String {
        format!("ws://{}/client/hubs/{hub}?access_token={token}", self.addr)
    }

    pub(crate) fn audience(&self, hub: &str) -> String {
        format!("http://{}/client/hubs/{hub}", self.addr)
    }

    /// A client token for `hub` signed with the test key.
    pub(crate) fn token(&self, hub: &str, user: Option<&str>, roles: &[&str], groups: &[&str]) -> String {
        token_with_key(KEY, &self.audience(hub), user, roles, groups, 3600)
    }

    /// Connects with `user` and `roles`, offering `subprotocol`.
    pub(crate) async fn connect(
        &self,
        hub: &str,
        user: Option<&str>,
        roles: &[&str],
        subprotocol: Option<&str>,
    ) -> Socket {
        let token = self.token(hub, user, roles, &[]);
        open(&self.url(hub, &token), subprotocol)
            .await
            .expect("client connects")
    }

    /// Connects a JSON client and returns it with its `connected` system message.
    pub(crate) async fn connect_json(&self, hub: &str, user: Option<&str>, roles: &[&str]) -> (Socket, Value) {
        let mut socket = self.connect(hub, user, roles, Some("json.webpubsub.azure.v1")).await;
        let connected = next_json(&mut socket).await;
        assert_eq!(connected["type"], "system");
        assert_eq!(connected["event"], "connected");
        (socket, connected)
    }
}

pub(crate) fn token_with_key(
    key: &str,
    audience: &str,
    user: Option<&str>,
    roles: &[&str],
    groups: &[&str],
    ttl_secs: u64,
) -> String {
    let key = webpubsub_protocol::AccessKey::new(key).unwrap();
    service::client_token(&key, audience, user, roles, groups, ttl_secs)
}

/// Opens a WebSocket, offering `subprotocol` when given.
pub(crate) async fn open(url: &str, subprotocol: Option<&str>) -> Result<Socket, WsError> {
    let mut request = url.into_client_request()?;
    if let Some(protocol) = subprotocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
    }
    let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")?;
    if let Some(protocol) = subprotocol.filter(|p| webpubsub_emulator::protocol::Protocol::is_supported(p)) {
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
    }
    Ok(socket)
}

/// The HTTP status of a refused upgrade.
pub(crate) async fn refused_status(url: &str, subprotocol: Option<&str>) -> u16 {
    match open(url, subprotocol).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected the upgrade to be refused"),
    }
}

/// The next data frame (skipping pings), within `WAIT`.
pub(crate) async fn next_message(socket: &mut Socket) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame arrives in time")
            .expect("the socket is open")
            .expect("the frame is valid");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

pub(crate) async fn next_json(socket: &mut Socket) -> Value {
    match next_message(socket).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads frames until one satisfies `wanted` (at most 50 frames).
pub(crate) async fn next_json_where(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..50 {
        let value = next_json(socket).await;
        if wanted(&value) {
            return value;
        }
    }
    panic!("no matching frame in 50 frames");
}

/// Reads until the close frame and returns it (code, reason).
pub(crate) async fn close_frame(socket: &mut Socket) -> (u16, String) {
    for _ in 0..100 {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("close in time") {
            Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                return (code.into(), reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before close frame: {e}"),
            None => panic!("socket ended without a close frame"),
        }
    }
    panic!("no close frame in 100 frames");
}

pub(crate) async fn send_json(socket: &mut Socket, value: Value) {
    socket.send(Message::text(value.to_string())).await.unwrap();
}

/// Polls `condition` every 20 ms for up to `WAIT`.
pub(crate) async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request the upstream server received.
pub(crate) use test_support::recorder::Recorded;

type Responder = dyn Fn(&Recorded) -> warp::http::Response<Bytes> + Send + Sync;

/// A local event handler that records every request and answers with `respond`
/// (abuse-protection OPTIONS requests are answered with `WebHook-Allowed-Origin: *` unless
/// `respond` handles them itself).
pub(crate) struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<Recorded>>,
    _server: test_support::Loopback,
}

pub(crate) fn reply(status: u16) -> warp::http::Response<Bytes> {
    warp::http::Response::builder()
        .status(status)
        .body(Bytes::new())
        .unwrap()
}

pub(crate) fn allow_origin() -> warp::http::Response<Bytes> {
    warp::http::Response::builder()
        .status(200)
        .header("WebHook-Allowed-Origin", "*")
        .body(Bytes::new())
        .unwrap()
}

impl Upstream {
    pub(crate) async fn start(
        respond: impl Fn(&Recorded) -> warp::http::Response<Bytes> + Send + Sync + 'static,
    ) -> Upstream {
        use warp::Filter as _;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let respond: Arc<Responder> = Arc::new(respond);
        let recorded = requests.clone();
        let route = test_support::recorder::request().map(move |request: Recorded| {
            recorded.lock().unwrap().push(request.clone());
            let _ = tx.send(request.clone());
            respond(&request)
        });
        let server = test_support::serve(route).await;
        let addr = server.addr;
        Upstream {
            addr,
            requests,
            arrivals: tokio::sync::Mutex::new(rx),
            _server: server,
        }
    }

    pub(crate) fn url(&self, template_path: &str) -> String {
        format!("http://{}{template_path}", self.addr)
    }

    /// The next request whose `ce-eventName` is `event` (or OPTIONS for "validate").
    pub(crate) async fn next_event(&self, event: &str) -> Recorded {
        let mut arrivals = self.arrivals.lock().await;
        for _ in 0..100 {
            let request = tokio::time::timeout(WAIT, arrivals.recv())
                .await
                .expect("upstream request in time")
                .expect("upstream open");
            let matches = if event == "validate" {
                request.method == "OPTIONS"
            } else {
                request.method == "POST" && request.header("ce-eventname") == Some(event)
            };
            if matches {
                return request;
            }
        }
        panic!("no {event} request among 100");
    }

    pub(crate) fn count(&self, predicate: impl Fn(&Recorded) -> bool) -> usize {
        self.requests.lock().unwrap().iter().filter(|r| predicate(r)).count()
    }
}
