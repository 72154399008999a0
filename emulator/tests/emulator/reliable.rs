//! The reliable JSON subprotocol: sequence ids, acks, resume with replay, failed resume.

use std::time::Duration;

use serde_json::{Value, json};
use webpubsub_emulator::protocol::{DataType, Payload};

use crate::support::*;
use webpubsub_emulator::service::Target;

const RELIABLE: &str = "json.reliable.webpubsub.azure.v1";

async fn connect_reliable(emulator: &Emulator) -> (Socket, String, String) {
    let mut socket = emulator.connect("chat", Some("u"), &[], Some(RELIABLE)).await;
    let connected = next_json(&mut socket).await;
    assert_eq!(connected["event"], "connected");
    let id = connected["connectionId"].as_str().unwrap().to_owned();
    let token = connected["reconnectionToken"]
        .as_str()
        .expect("reliable clients get a reconnection token")
        .to_owned();
    (socket, id, token)
}

fn send_text(emulator: &Emulator, id: &str, text: &str) {
    assert!(emulator.service.send(
        "chat",
        Target::Connection(id),
        &Payload::new(DataType::Text, text.to_owned()),
        &[],
        None
    ));
}

fn resume_url(emulator: &Emulator, id: &str, token: &str) -> String {
    format!(
        "ws://{}/client/hubs/chat?awps_connection_id={id}&awps_reconnection_token={token}",
        emulator.addr
    )
}

/// Sends a ping and waits for the pong, so everything sent before has been processed.
async fn sync(socket: &mut Socket) {
    send_json(socket, json!({"type":"ping"})).await;
    next_json_where(socket, |v| v["type"] == "pong").await;
}

#[tokio::test]
async fn resume_replays_every_unacked_message_in_order() {
    let emulator = start(config()).await;
    let (mut socket, id, token) = connect_reliable(&emulator).await;
    for text in ["m1", "m2", "m3"] {
        send_text(&emulator, &id, text);
    }
    for expected in 1..=3u64 {
        let message = next_json(&mut socket).await;
        assert_eq!(message["sequenceId"], expected);
        assert_eq!(message["data"], format!("m{expected}"));
    }
    send_json(&mut socket, json!({"type":"sequenceAck","sequenceId":1})).await;
    sync(&mut socket).await;

    // The network drops: no close frame.
    drop(socket);
    for text in ["m4", "m5"] {
        send_text(&emulator, &id, text);
    }

    let mut resumed = open(&resume_url(&emulator, &id, &token), Some(RELIABLE))
        .await
        .expect("resume accepted");
    let mut seen: Vec<(u64, String)> = Vec::new();
    for _ in 0..4 {
        let message: Value = next_json(&mut resumed).await;
        assert_eq!(message["type"], "message");
        seen.push((
            message["sequenceId"].as_u64().unwrap(),
            message["data"].as_str().unwrap().to_owned(),
        ));
    }
    let expected: Vec<(u64, String)> = (2..=5).map(|n| (n, format!("m{n}"))).collect();
    assert_eq!(seen, expected);

    // The resumed connection keeps its id and sequence.
    assert!(emulator.service.exists("chat", Target::Connection(&id)));
    send_text(&emulator, &id, "m6");
    assert_eq!(next_json(&mut resumed).await["sequenceId"], 6);
}

#[tokio::test]
async fn a_wrong_reconnection_token_is_closed_with_1008() {
    let emulator = start(config()).await;
    let (socket, id, _token) = connect_reliable(&emulator).await;
    drop(socket);
    let mut attempt = open(&resume_url(&emulator, &id, "forged"), Some(RELIABLE))
        .await
        .expect("upgrade then close");
    assert_eq!(close_frame(&mut attempt).await.0, 1008);
    let mut unknown = open(
        &resume_url(&emulator, "0123456789abcdef0123456789abcdef", "x"),
        Some(RELIABLE),
    )
    .await
    .unwrap();
    assert_eq!(close_frame(&mut unknown).await.0, 1008);
}

#[tokio::test]
async fn an_unresumed_connection_expires() {
    let emulator = start(webpubsub_emulator::EmulatorConfig {
        reconnect_window: Duration::from_millis(200),
        ..config()
    })
    .await;
    let (socket, id, token) = connect_reliable(&emulator).await;
    drop(socket);
    eventually("the connection to expire", || {
        !emulator.service.exists("chat", Target::Connection(&id))
    })
    .await;
    let mut late = open(&resume_url(&emulator, &id, &token), Some(RELIABLE)).await.unwrap();
    assert_eq!(close_frame(&mut late).await.0, 1008);
}

#[tokio::test]
async fn a_normal_close_ends_a_reliable_connection_at_once() {
    let emulator = start(config()).await;
    let (mut socket, id, _token) = connect_reliable(&emulator).await;
    socket.close(None).await.unwrap();
    eventually("the connection to go", || {
        !emulator.service.exists("chat", Target::Connection(&id))
    })
    .await;
}

#[tokio::test]
async fn plain_json_connections_do_not_resume() {
    let emulator = start(config()).await;
    let (socket, connected) = emulator.connect_json("chat", Some("u"), &[]).await;
    let id = connected["connectionId"].as_str().unwrap().to_owned();
    drop(socket);
    eventually("the connection to go", || {
        !emulator.service.exists("chat", Target::Connection(&id))
    })
    .await;
    let mut attempt = open(&resume_url(&emulator, &id, "anything"), Some(RELIABLE))
        .await
        .unwrap();
    assert_eq!(close_frame(&mut attempt).await.0, 1008);
}

#[tokio::test]
async fn group_messages_carry_sequence_ids() {
    let emulator = start(config()).await;
    let roles = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
    let mut socket = emulator.connect("chat", Some("u"), &roles, Some(RELIABLE)).await;
    next_json(&mut socket).await;
    send_json(&mut socket, json!({"type":"joinGroup","group":"g","ackId":1})).await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["success"], true);
    assert!(ack.get("sequenceId").is_none(), "acks are not sequenced");
    send_json(&mut socket, json!({"type":"sendToGroup","group":"g","data":"x"})).await;
    let message = next_json(&mut socket).await;
    assert_eq!(message["from"], "group");
    assert_eq!(message["sequenceId"], 1);
    socket.close(None).await.unwrap();
}
