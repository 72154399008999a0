//! Shared helpers for the end-to-end tests: start the handler in-process on `127.0.0.1:0` with a given
//! environment, and talk to it over real HTTP.

#![allow(dead_code)] // each test module uses a different subset

use std::net::SocketAddr;

use tokio::sync::oneshot;
use webpubsub_control::{App, Env, Settings};

/// A handler served in-process; stopped when dropped.
pub(crate) struct RunningHandler {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningHandler {
    /// `http://127.0.0.1:<port>` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
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
    RunningHandler { addr, stop: Some(stop) }
}

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
    stop: Option<oneshot::Sender<()>>,
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
    let config = webpubsub_emulator::EmulatorConfig::default();
    let access_key = config.access_key.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = webpubsub_emulator::run(listener, config, async {
            let _ = stopped.await;
        });
        served.await.expect("the emulator runs");
    });
    RunningEmulator {
        addr,
        connection_string: webpubsub_emulator::connection_string(addr, &access_key),
        access_key,
        stop: Some(stop),
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
