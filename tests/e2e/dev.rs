//! `handler dev` end to end, in-process through `dev::start`: the page is served, negotiate hands out
//! emulator URLs, real WebSocket clients join a room and talk through the handler's `events` function, a
//! publish over HTTP reaches them, and shutdown closes them. Plus the busy-port errors.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpStream;
use webpubsub_control::Env;
use webpubsub_control::dev::{self, DevError, DevOptions, RunningDev};

use crate::support::{JSON_SUBPROTOCOL, JsonClient, get_json, http, open_socket};

/// Longest wait for one frame, handshake or shutdown.
const WAIT: Duration = Duration::from_secs(10);

fn options() -> DevOptions {
    DevOptions {
        handler_port: 0,
        emulator_port: 0,
        hub: "chat".into(),
        data_dir: Some(temp_data_dir()),
        env: Env::default(),
        identity: false,
    }
}

/// A fresh `--data-dir` per test (the default, under the working directory, would be shared).
fn temp_data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wps-dev-{}", uuid::Uuid::now_v7()))
}

async fn start() -> RunningDev {
    dev::start(options()).await.expect("dev mode starts")
}

/// A chat client as the page is: negotiated anonymously, connected with the JSON subprotocol, past its
/// `connected` frame.
async fn connect(running: &RunningDev, user: &str) -> JsonClient {
    let reply = http()
        .get(running.url(&format!("/api/negotiate?userId={user}")))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    let url = body["url"].as_str().expect("a url");
    assert!(
        url.starts_with(&format!("ws://{}/client/hubs/chat?", running.emulator_addr())),
        "{url}"
    );
    let (socket, chosen) = open_socket(url, &[JSON_SUBPROTOCOL])
        .await
        .expect("the handler accepts the connect");
    assert_eq!(chosen.as_deref(), Some(JSON_SUBPROTOCOL));
    let mut client = JsonClient::new(socket);
    let connected = client.next_where(|frame| frame["type"] == "system").await;
    assert_eq!(
        (connected["event"].as_str(), connected["userId"].as_str()),
        (Some("connected"), Some(user))
    );
    client
}

#[tokio::test]
async fn dev_mode_serves_the_page_and_a_working_chat() {
    let running = start().await;

    // The page, with a policy allowing only this origin and the emulator's WebSocket endpoint.
    let page = http().get(running.chat_url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        policy.contains(&format!("connect-src 'self' ws://{}", running.emulator_addr())),
        "{policy}"
    );
    assert!(page.text().await.unwrap().contains("chat.js"));

    let mut alice = connect(&running, "alice").await;
    let mut bob = connect(&running, "bob").await;

    // Least privilege: the token carries no roles, so joining a group directly is refused...
    let direct = alice.send_acked(json!({"type": "joinGroup", "group": "lobby"})).await;
    assert_eq!(direct["success"], false, "{direct}");
    // ...and rooms are joined through the handler's `join` event.
    for client in [&mut alice, &mut bob] {
        let ack = client.event("join", json!({"room": "lobby"})).await;
        assert_eq!(ack["success"], true, "{ack}");
        let joined = client.next_message().await;
        assert_eq!(joined["data"], json!({"event": "joined", "room": "lobby"}));
    }

    // A chat line goes through the upstream and reaches the room, tagged with the verified sender.
    let ack = alice.event("message", json!({"room": "lobby", "text": "hi bob"})).await;
    assert_eq!(ack["success"], true, "{ack}");
    for client in [&mut bob, &mut alice] {
        let message = client.next_message().await;
        assert_eq!(message["from"], "server");
        assert_eq!(
            message["data"],
            json!({"from": "alice", "room": "lobby", "event": "message", "dataType": "json",
                   "data": {"room": "lobby", "text": "hi bob"}})
        );
    }

    // A publish over HTTP (the simple form) reaches both.
    let published = http()
        .post(running.url("/api/publish"))
        .json(&json!({"room": "lobby", "message": "from the server"}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    for client in [&mut alice, &mut bob] {
        let message = client.next_message().await;
        assert_eq!(
            message,
            json!({"type": "message", "from": "server", "dataType": "text", "data": "from the server"})
        );
    }

    // Shutdown closes the clients and stops both servers.
    let handler_addr = running.handler_addr();
    tokio::time::timeout(WAIT * 3, running.shutdown())
        .await
        .expect("dev mode stops in time");
    for client in [&mut alice, &mut bob] {
        let mut closed = false;
        for _ in 0..16 {
            match client.next_frame().await {
                None => {
                    closed = true;
                    break;
                }
                Some(_) => continue,
            }
        }
        assert!(closed, "the client was disconnected");
    }
    assert!(
        TcpStream::connect(handler_addr).await.is_err(),
        "the handler no longer listens"
    );
}

#[tokio::test]
async fn the_banner_names_the_real_addresses_and_warns() {
    let running = start().await;
    let banner = running.banner();
    assert!(banner.starts_with("==================== DEVELOPMENT ONLY"), "{banner}");
    assert!(
        banner.contains(&format!("chat page   http://{}/", running.handler_addr())),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("emulator    http://{}", running.emulator_addr())),
        "{banner}"
    );
    assert!(
        banner.contains("negotiate=anonymous") && banner.contains("publish=functionkey"),
        "{banner}"
    );
    assert!(!banner.contains("AccessKey"), "no key in the banner: {banner}");
}

#[tokio::test]
async fn the_environment_may_override_the_chat_defaults() {
    let env = Env::default().with("EventsUserEventBehavior", "echo");
    let running = dev::start(DevOptions { env, ..options() })
        .await
        .expect("dev mode starts");
    assert!(running.banner().contains("user events=echo"), "{}", running.banner());
    let mut alice = connect(&running, "alice").await;
    let ack = alice.event("message", json!({"text": "echo me"})).await;
    assert_eq!(ack["success"], true, "{ack}");
    let echoed = alice.next_message().await;
    assert_eq!(echoed["data"], json!({"text": "echo me"}));
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error_naming_the_flag() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();

    let error = dev::start(DevOptions {
        handler_port: port,
        ..options()
    })
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(error, DevError::PortInUse { port: p, flag: "--port", .. } if p == port),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&port.to_string()) && message.contains("--port") && message.contains("in use"),
        "{message}"
    );

    let error = dev::start(DevOptions {
        emulator_port: port,
        ..options()
    })
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(
            error,
            DevError::PortInUse {
                flag: "--emulator-port",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("--emulator-port"), "{error}");
}

#[tokio::test]
async fn a_bad_setting_in_the_environment_is_a_configuration_error() {
    let env = Env::default().with("EventsUserEventBehavior", "shout");
    let error = dev::start(DevOptions { env, ..options() })
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&error, DevError::Config(config) if config.setting == "EventsUserEventBehavior"),
        "{error}"
    );
}

#[tokio::test]
async fn history_survives_a_restart_with_the_same_data_dir() {
    let data_dir = temp_data_dir();
    let with_dir = || DevOptions {
        data_dir: Some(data_dir.clone()),
        ..options()
    };
    let running = dev::start(with_dir()).await.expect("dev mode starts");
    let store_file = data_dir.join(dev::DEV_STORE_FILE);
    let banner = running.banner();
    assert!(banner.contains(&store_file.display().to_string()), "{banner}");
    let created = http()
        .post(running.url("/api/manage/conversations"))
        .json(&json!({"id": "kept", "members": ["alice", "bob"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let sent = http()
        .post(running.url("/api/conversations/kept/messages?userId=alice"))
        .json(&json!({"id": "m1", "body": "still here after a restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    running.shutdown().await;
    assert!(store_file.is_file(), "the SQLite file is under --data-dir");

    let running = dev::start(with_dir()).await.expect("dev mode starts again");
    let history = get_json(running.url("/api/conversations/kept/messages?userId=bob")).await;
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{history}");
    assert_eq!(
        (
            items[0]["id"].as_str(),
            items[0]["seq"].as_i64(),
            items[0]["body"].as_str()
        ),
        (Some("m1"), Some(1), Some("still here after a restart"))
    );
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}
