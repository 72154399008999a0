//! Client endpoint behaviour: authentication, raw and JSON clients, roles, acks, limits.

use futures_util::SinkExt as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use webpubsub_emulator::protocol::{DataType, Payload};

use crate::support::*;
use webpubsub_emulator::service::Target;

#[tokio::test]
async fn tokens_are_checked_before_the_upgrade() {
    let emulator = start(config()).await;
    let aud = emulator.audience("chat");

    let wrong_key = token_with_key(
        "another-key-another-key-another-key-0000",
        &aud,
        Some("u"),
        &[],
        &[],
        3600,
    );
    assert_eq!(refused_status(&emulator.url("chat", &wrong_key), None).await, 401);

    let other_hub = emulator.token("other", Some("u"), &[], &[]);
    assert_eq!(refused_status(&emulator.url("chat", &other_hub), None).await, 401);

    // Expired well beyond the five-minute skew: exp = now - 10 min.
    let now = webpubsub_protocol::jwt::unix_now();
    let claims = webpubsub_protocol::client_access::ClientClaims {
        aud: &aud,
        iat: now,
        exp: now - 600,
        sub: Some("u"),
        role: &[],
        groups: &[],
    };
    let expired = webpubsub_protocol::jwt::sign(&claims, &webpubsub_protocol::AccessKey::new(KEY).unwrap());
    assert_eq!(refused_status(&emulator.url("chat", &expired), None).await, 401);

    assert_eq!(
        refused_status(&format!("ws://{}/client/hubs/chat", emulator.addr), None).await,
        401
    );
    assert_eq!(refused_status(&emulator.url("chat", "not.a.jwt"), None).await, 401);

    // Invalid hub names are a client mistake: 400.
    assert_eq!(
        refused_status(&emulator.url("1chat", &emulator.token("1chat", None, &[], &[])), None).await,
        400
    );

    // A valid token works on both URL forms, with the hub in any case; the audience is
    // compared ignoring case.
    let token = emulator.token("Chat", Some("u"), &[], &[]);
    open(&emulator.url("CHAT", &token), None).await.expect("path form");
    open(
        &format!("ws://{}/client?hub=chat&access_token={token}", emulator.addr),
        None,
    )
    .await
    .expect("query form");
}

#[tokio::test]
async fn bearer_header_and_secondary_key_are_accepted() {
    let emulator = start(webpubsub_emulator::EmulatorConfig {
        secondary_key: Some(SECONDARY_KEY.into()),
        ..config()
    })
    .await;
    let token = token_with_key(SECONDARY_KEY, &emulator.audience("chat"), Some("u"), &[], &[], 3600);
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}/client/hubs/chat",
        emulator.addr
    ))
    .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (_socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("bearer token accepted");
    eventually("the connection to register", || {
        emulator.service.exists("chat", Target::User("u"))
    })
    .await;
}

#[tokio::test]
async fn raw_clients_receive_payloads_as_raw_frames() {
    let emulator = start(config()).await;
    let mut raw = emulator.connect("chat", Some("alice"), &[], None).await;
    eventually("alice to connect", || {
        emulator.service.exists("chat", Target::User("alice"))
    })
    .await;

    let service = &emulator.service;
    service.send(
        "chat",
        Target::User("alice"),
        &Payload::new(DataType::Text, "plain"),
        &[],
        None,
    );
    assert_eq!(next_message(&mut raw).await, Message::text("plain"));
    service.send(
        "chat",
        Target::Hub,
        &Payload::new(DataType::Json, "\"quoted\""),
        &[],
        None,
    );
    assert_eq!(next_message(&mut raw).await, Message::text("\"quoted\""));
    service.send(
        "chat",
        Target::User("alice"),
        &Payload::new(DataType::Binary, vec![0u8, 1, 255]),
        &[],
        None,
    );
    assert_eq!(next_message(&mut raw).await, Message::binary(vec![0u8, 1, 255]));
}

#[tokio::test]
async fn unrecognised_subprotocols_are_raw() {
    let emulator = start(config()).await;
    let mut raw = emulator.connect("chat", Some("alice"), &[], Some("custom.v1")).await;
    eventually("alice to connect", || {
        emulator.service.exists("chat", Target::User("alice"))
    })
    .await;
    emulator.service.send(
        "chat",
        Target::User("alice"),
        &Payload::new(DataType::Text, "x"),
        &[],
        None,
    );
    assert_eq!(next_message(&mut raw).await, Message::text("x"));
}

#[tokio::test]
async fn json_clients_get_connected_and_server_messages() {
    let emulator = start(config()).await;
    let (mut socket, connected) = emulator.connect_json("chat", Some("alice"), &[]).await;
    assert_eq!(connected["userId"], "alice");
    let connection_id = connected["connectionId"].as_str().unwrap().to_owned();
    assert_eq!(connection_id.len(), 32);
    assert!(connected.get("reconnectionToken").is_none());

    assert!(emulator.service.send(
        "chat",
        Target::Connection(&connection_id),
        &Payload::new(DataType::Json, r#"{"n":1}"#),
        &[],
        None
    ));
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"message","from":"server","dataType":"json","data":{"n":1}})
    );
    emulator.service.send(
        "chat",
        Target::Hub,
        &Payload::new(DataType::Binary, vec![1u8, 2, 3]),
        &[],
        None,
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"message","from":"server","dataType":"binary","data":"AQID"})
    );

    send_json(&mut socket, json!({"type":"ping"})).await;
    assert_eq!(next_json(&mut socket).await, json!({"type":"pong"}));
}

#[tokio::test]
async fn a_token_without_sub_connects_without_a_user() {
    let emulator = start(config()).await;
    let (_socket, connected) = emulator.connect_json("chat", None, &[]).await;
    assert!(connected.get("userId").is_none());
    assert_eq!(emulator.service.connection_count("chat"), 1);
}

#[tokio::test]
async fn roles_gate_join_and_send() {
    let emulator = start(config()).await;
    let (mut nobody, _) = emulator.connect_json("chat", Some("nobody"), &[]).await;
    send_json(&mut nobody, json!({"type":"joinGroup","group":"g","ackId":1})).await;
    let ack = next_json(&mut nobody).await;
    assert_eq!(ack["ackId"], 1);
    assert_eq!(ack["success"], false);
    assert_eq!(ack["error"]["name"], "Forbidden");
    send_json(
        &mut nobody,
        json!({"type":"sendToGroup","group":"g","ackId":2,"data":"x"}),
    )
    .await;
    assert_eq!(next_json(&mut nobody).await["error"]["name"], "Forbidden");

    let (mut member, _) = emulator
        .connect_json(
            "chat",
            Some("member"),
            &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"],
        )
        .await;
    send_json(&mut member, json!({"type":"joinGroup","group":"g","ackId":1})).await;
    assert_eq!(
        next_json(&mut member).await,
        json!({"type":"ack","ackId":1,"success":true})
    );
    assert!(emulator.service.exists("chat", Target::Group("g")));

    let (mut sender, _) = emulator
        .connect_json("chat", Some("sender"), &["webpubsub.sendToGroup.g"])
        .await;
    send_json(
        &mut sender,
        json!({"type":"sendToGroup","group":"g","ackId":7,"dataType":"text","data":"hello"}),
    )
    .await;
    assert_eq!(next_json(&mut sender).await["success"], true);
    assert_eq!(
        next_json(&mut member).await,
        json!({"type":"message","from":"group","group":"g","dataType":"text","data":"hello","fromUserId":"sender"})
    );
    send_json(
        &mut sender,
        json!({"type":"sendToGroup","group":"other","ackId":8,"data":1}),
    )
    .await;
    assert_eq!(next_json(&mut sender).await["error"]["name"], "Forbidden");
    // Scoped send role does not allow joining.
    send_json(&mut sender, json!({"type":"joinGroup","group":"g","ackId":9})).await;
    assert_eq!(next_json(&mut sender).await["error"]["name"], "Forbidden");

    // Event messages need no role (no handler configured: accepted and dropped).
    send_json(&mut nobody, json!({"type":"event","event":"hello","ackId":3,"data":{}})).await;
    assert_eq!(
        next_json(&mut nobody).await,
        json!({"type":"ack","ackId":3,"success":true})
    );
}

#[tokio::test]
async fn wildcard_roles() {
    let emulator = start(config()).await;
    let roles = ["webpubsub.joinLeaveGroups.room.*", "webpubsub.sendToGroups.team.**"];
    let (mut socket, _) = emulator.connect_json("chat", Some("u"), &roles).await;
    let cases = [
        ("joinGroup", "room.a", true),
        ("joinGroup", "room.a.b", false),
        ("joinGroup", "lobby", false),
        ("sendToGroup", "team.x.y", true),
        ("sendToGroup", "team", false),
        ("sendToGroup", "room.a", false),
    ];
    for (i, (kind, group, allowed)) in cases.into_iter().enumerate() {
        send_json(
            &mut socket,
            json!({"type": kind, "group": group, "ackId": i, "data": "x"}),
        )
        .await;
        let ack = next_json_where(&mut socket, |v| v["type"] == "ack").await;
        assert_eq!(ack["ackId"], i);
        assert_eq!(ack["success"], allowed, "{kind} {group}");
        if !allowed {
            assert_eq!(ack["error"]["name"], "Forbidden");
        }
    }
}

#[tokio::test]
async fn permissions_granted_through_the_service_apply() {
    let emulator = start(config()).await;
    let (mut socket, connected) = emulator.connect_json("chat", Some("u"), &[]).await;
    let id = connected["connectionId"].as_str().unwrap();
    let join = webpubsub_protocol::Permission::JoinLeaveGroup;
    assert!(emulator.service.grant_permission("chat", id, join, Some("vip")));
    send_json(&mut socket, json!({"type":"joinGroup","group":"vip","ackId":1})).await;
    assert_eq!(next_json(&mut socket).await["success"], true);
    send_json(&mut socket, json!({"type":"joinGroup","group":"other","ackId":2})).await;
    assert_eq!(next_json(&mut socket).await["success"], false);
    assert!(emulator.service.revoke_permission("chat", id, join, Some("vip")));
    send_json(&mut socket, json!({"type":"leaveGroup","group":"vip","ackId":3})).await;
    assert_eq!(next_json(&mut socket).await["error"]["name"], "Forbidden");
}

#[tokio::test]
async fn duplicate_ack_ids_and_bad_requests() {
    let emulator = start(config()).await;
    let (mut socket, _) = emulator
        .connect_json("chat", Some("u"), &["webpubsub.joinLeaveGroup"])
        .await;
    send_json(&mut socket, json!({"type":"joinGroup","group":"g","ackId":5})).await;
    assert_eq!(next_json(&mut socket).await["success"], true);
    send_json(&mut socket, json!({"type":"leaveGroup","group":"g","ackId":5})).await;
    let duplicate = next_json(&mut socket).await;
    assert_eq!(duplicate["success"], false);
    assert_eq!(duplicate["error"]["name"], "Duplicate");
    // The duplicate was not processed: still a member.
    assert!(emulator.service.exists("chat", Target::Group("g")));

    send_json(
        &mut socket,
        json!({"type":"sendToGroup","group":"g","ackId":6,"dataType":"binary","data":"%%"}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["error"]["name"], "BadRequest");
    send_json(&mut socket, json!({"type":"event","event":"1bad","ackId":7,"data":1})).await;
    assert_eq!(next_json(&mut socket).await["error"]["name"], "BadRequest");
    send_json(&mut socket, json!({"type":"joinGroup","group":"  ","ackId":8})).await;
    assert_eq!(next_json(&mut socket).await["error"]["name"], "BadRequest");
}

#[tokio::test]
async fn no_echo_skips_the_sender() {
    let emulator = start(config()).await;
    let roles = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
    let (mut a, _) = emulator.connect_json("chat", Some("a"), &roles).await;
    let (mut b, _) = emulator.connect_json("chat", Some("b"), &roles).await;
    for socket in [&mut a, &mut b] {
        send_json(socket, json!({"type":"joinGroup","group":"g","ackId":1})).await;
        assert_eq!(next_json(socket).await["success"], true);
    }
    send_json(
        &mut a,
        json!({"type":"sendToGroup","group":"g","noEcho":true,"data":{"k":1}}),
    )
    .await;
    assert_eq!(next_json(&mut b).await["data"], json!({"k":1}));
    send_json(&mut a, json!({"type":"sendToGroup","group":"g","data":2})).await;
    // The echo of the second message is the first thing `a` receives.
    assert_eq!(next_json(&mut a).await["data"], 2);
}

#[tokio::test]
async fn token_groups_are_joined_on_connect() {
    let emulator = start(config()).await;
    let token = emulator.token("chat", Some("u"), &[], &["news", "sports"]);
    let mut socket = open(&emulator.url("chat", &token), Some("json.webpubsub.azure.v1"))
        .await
        .unwrap();
    next_json(&mut socket).await;
    assert!(emulator.service.exists("chat", Target::Group("news")));
    emulator.service.send(
        "chat",
        Target::Group("sports"),
        &Payload::new(DataType::Text, "goal"),
        &[],
        None,
    );
    assert_eq!(next_json(&mut socket).await["data"], "goal");
}

#[tokio::test]
async fn closing_from_the_service_sends_disconnected_first() {
    let emulator = start(config()).await;
    let (mut socket, connected) = emulator.connect_json("chat", Some("u"), &[]).await;
    let id = connected["connectionId"].as_str().unwrap();
    assert!(
        emulator
            .service
            .close("chat", Target::Connection(id), &[], Some("maintenance"))
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"system","event":"disconnected","message":"maintenance"})
    );
    assert_eq!(close_frame(&mut socket).await, (1000, "maintenance".to_owned()));
    assert!(!emulator.service.exists("chat", Target::Connection(id)));
}

#[tokio::test]
async fn client_close_removes_the_connection() {
    let emulator = start(config()).await;
    let (mut socket, connected) = emulator.connect_json("chat", Some("u"), &[]).await;
    let id = connected["connectionId"].as_str().unwrap().to_owned();
    socket.close(None).await.unwrap();
    eventually("the connection to go", || {
        !emulator.service.exists("chat", Target::Connection(&id))
    })
    .await;
    assert!(!emulator.service.exists("chat", Target::User("u")));
}

#[tokio::test]
async fn frames_over_one_megabyte_close_with_1009() {
    let emulator = start(config()).await;
    let (mut socket, _) = emulator.connect_json("chat", Some("u"), &[]).await;
    // Exactly 1 MiB is accepted (raw JSON parse fails; no ackId, so nothing comes back).
    socket.send(Message::text("x".repeat(1024 * 1024))).await.unwrap();
    send_json(&mut socket, json!({"type":"ping"})).await;
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    socket.send(Message::text("x".repeat(1024 * 1024 + 1))).await.unwrap();
    assert_eq!(close_frame(&mut socket).await.0, 1009);
    eventually("the connection to go", || {
        emulator.service.connection_count("chat") == 0
    })
    .await;
}

#[tokio::test]
async fn huge_frames_drop_the_connection() {
    let emulator = start(config()).await;
    let (mut socket, _) = emulator.connect_json("chat", Some("u"), &[]).await;
    // 8 MiB: the emulator stops reading mid-frame, so the client's write may fail too.
    let sending = tokio::spawn(async move {
        let _ = socket.send(Message::binary(vec![0u8; 8 * 1024 * 1024])).await;
        socket
    });
    eventually("the connection to go", || {
        emulator.service.connection_count("chat") == 0
    })
    .await;
    drop(tokio::time::timeout(WAIT, sending).await);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped() {
    let emulator = start(config()).await;
    let _silent = emulator.connect("chat", Some("slow"), &[], None).await;
    eventually("slow to connect", || {
        emulator.service.exists("chat", Target::User("slow"))
    })
    .await;
    // 2000 × 64 KiB = 125 MiB: more than socket buffers plus the 16 MiB queue bound.
    let chunk = Payload::new(DataType::Binary, vec![7u8; 64 * 1024]);
    for _ in 0..2000 {
        emulator.service.send("chat", Target::User("slow"), &chunk, &[], None);
        if !emulator.service.exists("chat", Target::User("slow")) {
            break;
        }
    }
    assert!(
        !emulator.service.exists("chat", Target::User("slow")),
        "the slow client must be dropped"
    );
}

#[tokio::test]
async fn non_websocket_requests_get_a_json_400_and_health_answers() {
    let emulator = start(config()).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{}/client/hubs/chat", emulator.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "WebSocketRequired");
    let health = client
        .head(format!("http://{}/api/health", emulator.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// Writes `request` on a fresh TCP connection and returns the response head and body.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test]
async fn a_bad_websocket_key_is_refused_with_400() {
    let emulator = start(config()).await;
    let token = emulator.token("chat", Some("u"), &[], &[]);
    let upgrade = |key: &str| {
        format!(
            "GET /client/hubs/chat?access_token={token} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
            emulator.addr
        )
    };
    for bad in ["x", "not base64 !!", "dGhlIHNhbXBsZSBub25jZSE=", "AAAA"] {
        let answer = raw_http(emulator.addr, &upgrade(bad)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad:?}: {answer}");
        assert!(answer.contains("\"InvalidWebSocketKey\""), "{answer}");
    }
    let answer = raw_http(emulator.addr, &upgrade("dGhlIHNhbXBsZSBub25jZQ==")).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
}

/// Opens a raw (no subprotocol) WebSocket by hand, writes `frame` as is, and returns the
/// close code and reason of the first frame the emulator sends back.
async fn close_after_raw_frame(emulator: &Emulator, frame: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let token = emulator.token("chat", Some("u"), &[], &[]);
    let mut stream = tokio::net::TcpStream::connect(emulator.addr).await.unwrap();
    let request = format!(
        "GET /client/hubs/chat?access_token={token} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        emulator.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let head_end = loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "EOF during the handshake");
        received.extend_from_slice(&buffer[..n]);
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(received.starts_with(b"HTTP/1.1 101"));
    let mut frames = received.split_off(head_end);
    stream.write_all(frame).await.unwrap();
    loop {
        if frames.len() >= 2 {
            let length = usize::from(frames[1] & 0x7f);
            assert!(length < 126, "small control frame expected");
            if frames.len() >= 2 + length {
                assert_eq!(frames[0], 0x88, "the first frame back is a close frame");
                assert!(length >= 2, "the close frame carries a code");
                let code = u16::from_be_bytes([frames[2], frames[3]]);
                return (code, String::from_utf8_lossy(&frames[4..2 + length]).into_owned());
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("a close frame in time")
            .unwrap_or(0);
        assert!(n > 0, "the socket ended without a close frame");
        frames.extend_from_slice(&buffer[..n]);
    }
}

#[tokio::test]
async fn protocol_errors_close_with_a_code_and_reason() {
    let emulator = start(config()).await;
    // Unmasked client frame.
    let (code, reason) = close_after_raw_frame(&emulator, &[0x81, 0x02, b'h', b'i']).await;
    assert_eq!(code, 1002, "{reason}");
    assert!(reason.contains("masked"), "{reason}");
    // RSV1 set with no extension negotiated.
    let (code, reason) = close_after_raw_frame(&emulator, &[0xC1, 0x82, 0, 0, 0, 0, b'h', b'i']).await;
    assert_eq!(code, 1002, "{reason}");
    // Unknown data opcode 3.
    let (code, _) = close_after_raw_frame(&emulator, &[0x83, 0x80, 0, 0, 0, 0]).await;
    assert_eq!(code, 1002);
    // A text frame that is not UTF-8.
    let (code, reason) = close_after_raw_frame(&emulator, &[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe]).await;
    assert_eq!(code, 1007, "{reason}");
    // A frame header announcing 3 MiB, over the reader's 2 MiB hard limit.
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&(3u64 * 1024 * 1024).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    let (code, reason) = close_after_raw_frame(&emulator, &header).await;
    assert_eq!(code, 1009);
    assert_eq!(reason, "The client message is too large.");
    eventually("the connections to go", || {
        emulator.service.connection_count("chat") == 0
    })
    .await;
}

#[tokio::test]
async fn mqtt_and_socketio_urls_fail_at_once_with_a_reason() {
    let emulator = start(config()).await;
    let mut mqtt = open(&format!("ws://{}/clients/mqtt/hubs/chat", emulator.addr), Some("mqtt"))
        .await
        .expect("the upgrade is accepted so the reason can be read");
    let (code, reason) = close_frame(&mut mqtt).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("MQTT") && reason.contains("/client/hubs/"), "{reason}");

    let url = format!(
        "ws://{}/clients/socketio/hubs/chat/?EIO=4&transport=websocket",
        emulator.addr
    );
    let mut socketio = open(&url, None).await.expect("the upgrade is accepted");
    let (code, reason) = close_frame(&mut socketio).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("Socket.IO"), "{reason}");

    // Socket.IO starts with HTTP long polling: a JSON 400 that says why.
    let response = reqwest::get(format!(
        "http://{}/clients/socketio/hubs/chat/?EIO=4&transport=polling",
        emulator.addr
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "UnsupportedClientProtocol");
    assert!(body["message"].as_str().unwrap().contains("Socket.IO"), "{body}");
}
