//! Upstream event handlers: abuse protection, CloudEvents headers and signatures, the
//! blocking connect event, user events and their replies, and lifecycle events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::SinkExt as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message;
use webpubsub_emulator::{EmulatorConfig, EventHandlerConfig, HubConfig};

use crate::support::*;
use webpubsub_emulator::service::Target;

fn hub_config(upstream: &Upstream, system_events: &[&str], user: Option<&str>) -> Vec<HubConfig> {
    vec![HubConfig {
        hub: "Chat".into(),
        event_handlers: vec![EventHandlerConfig {
            url_template: upstream.url("/upstream/{hub}/{event}"),
            system_events: system_events.iter().map(|e| e.to_string()).collect(),
            user_event_pattern: user.map(str::to_owned),
        }],
    }]
}

/// An emulator (the test [`config`]) whose `Chat` hub calls `upstream`: see [`hub_config`].
async fn wired(upstream: &Upstream, system_events: &[&str], user: Option<&str>) -> Emulator {
    start(EmulatorConfig {
        hubs: hub_config(upstream, system_events, user),
        ..config()
    })
    .await
}

/// An upstream that passes the abuse-protection handshake and answers every event with `status`.
async fn answering(status: u16) -> Upstream {
    Upstream::start(move |request| match request.method.as_str() {
        "OPTIONS" => allow_origin(),
        _ => reply(status),
    })
    .await
}

fn expected_signature(key: &str, connection_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(connection_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn respond_json(status: u16, body: serde_json::Value, state: Option<&str>) -> warp::http::Response<Bytes> {
    let mut builder = warp::http::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(state) = state {
        builder = builder.header("ce-connectionState", state);
    }
    builder.body(Bytes::from(body.to_string())).unwrap()
}

fn respond_body(content_type: &str, body: Vec<u8>, state: Option<&str>) -> warp::http::Response<Bytes> {
    let mut builder = warp::http::Response::builder()
        .status(200)
        .header("content-type", content_type);
    if let Some(state) = state {
        builder = builder.header("ce-connectionState", state);
    }
    builder.body(Bytes::from(body)).unwrap()
}

#[tokio::test]
async fn connect_event_is_validated_signed_and_applied() {
    let upstream = Upstream::start(|request| match (request.method.as_str(), request.header("ce-eventname")) {
        ("OPTIONS", _) => allow_origin(),
        ("POST", Some("connect")) => respond_json(
            200,
            json!({"userId": "from-handler", "groups": ["g1"], "roles": ["webpubsub.sendToGroup"], "subprotocol": "json.webpubsub.azure.v1"}),
            Some("c3RhdGU="),
        ),
        _ => reply(204),
    })
    .await;
    let config = EmulatorConfig {
        secondary_key: Some(SECONDARY_KEY.into()),
        hubs: hub_config(&upstream, &["connect", "connected", "disconnected"], Some("*")),
        ..config()
    };
    let emulator = start(config).await;
    let token = emulator.token("chat", Some("token-user"), &[], &[]);
    let url = format!("{}&custom=1", emulator.url("chat", &token));
    let mut socket = open(&url, Some("json.reliable.webpubsub.azure.v1, json.webpubsub.azure.v1"))
        .await
        .expect("connect accepted");
    let connected = next_json(&mut socket).await;
    assert_eq!(connected["event"], "connected");
    assert_eq!(connected["userId"], "from-handler");
    // The handler chose the plain JSON protocol: no reconnection token.
    assert!(connected.get("reconnectionToken").is_none());
    let id = connected["connectionId"].as_str().unwrap().to_owned();

    let validate = upstream.next_event("validate").await;
    assert_eq!(validate.path, "/upstream/chat/validate");
    assert_eq!(validate.header("webhook-request-origin"), Some("127.0.0.1"));
    assert_eq!(validate.header("ce-awpsversion"), Some("1.0"));

    let connect = upstream.next_event("connect").await;
    assert_eq!(connect.path, "/upstream/chat/connect");
    assert_eq!(connect.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(connect.header("ce-specversion"), Some("1.0"));
    assert_eq!(connect.header("ce-awpsversion"), Some("1.0"));
    assert_eq!(connect.header("ce-type"), Some("azure.webpubsub.sys.connect"));
    assert_eq!(
        connect.header("ce-source"),
        Some(format!("/hubs/chat/client/{id}").as_str())
    );
    assert_eq!(connect.header("ce-connectionid"), Some(id.as_str()));
    assert_eq!(connect.header("ce-hub"), Some("chat"));
    assert_eq!(connect.header("ce-userid"), Some("token-user"));
    assert_eq!(connect.header("webhook-request-origin"), Some("127.0.0.1"));
    assert!(connect.header("ce-id").is_some_and(|v| !v.is_empty()));
    let time = connect.header("ce-time").unwrap();
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    let signature = format!(
        "sha256={},sha256={}",
        expected_signature(KEY, &id),
        expected_signature(SECONDARY_KEY, &id)
    );
    assert_eq!(connect.header("ce-signature"), Some(signature.as_str()));
    assert!(connect.header("ce-subprotocol").is_none());

    let body = connect.json();
    assert_eq!(body["claims"]["sub"], json!(["token-user"]));
    assert_eq!(body["query"]["custom"], json!(["1"]));
    assert!(body["query"].get("access_token").is_none());
    assert!(body["headers"].get("authorization").is_none());
    assert_eq!(
        body["subprotocols"],
        json!(["json.reliable.webpubsub.azure.v1", "json.webpubsub.azure.v1"])
    );
    assert_eq!(body["clientCertificates"], json!([]));

    // Response applied: user, groups and roles.
    assert!(emulator.service.exists("chat", Target::User("from-handler")));
    assert!(!emulator.service.exists("chat", Target::User("token-user")));
    assert!(emulator.service.exists("chat", Target::Group("g1")));
    send_json(
        &mut socket,
        json!({"type":"sendToGroup","group":"any","ackId":1,"data":1}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["success"], true);

    let connected_event = upstream.next_event("connected").await;
    assert_eq!(connected_event.header("ce-type"), Some("azure.webpubsub.sys.connected"));
    assert_eq!(connected_event.header("ce-userid"), Some("from-handler"));
    assert_eq!(
        connected_event.header("ce-subprotocol"),
        Some("json.webpubsub.azure.v1")
    );
    assert_eq!(connected_event.header("ce-connectionstate"), Some("c3RhdGU="));
    assert_eq!(connected_event.json(), json!({}));

    socket.close(None).await.unwrap();
    let disconnected = upstream.next_event("disconnected").await;
    assert_eq!(disconnected.header("ce-type"), Some("azure.webpubsub.sys.disconnected"));
    assert_eq!(disconnected.header("ce-connectionid"), Some(id.as_str()));
    assert!(disconnected.json()["reason"].is_string());
}

#[tokio::test]
async fn connect_rejections_reach_the_upgrade() {
    let status = Arc::new(std::sync::atomic::AtomicU16::new(401));
    let answer = status.clone();
    let upstream = Upstream::start(move |request| match request.method.as_str() {
        "OPTIONS" => allow_origin(),
        _ => reply(answer.load(Ordering::SeqCst)),
    })
    .await;
    let emulator = wired(&upstream, &["connect"], None).await;
    let token = emulator.token("chat", Some("u"), &[], &[]);
    assert_eq!(refused_status(&emulator.url("chat", &token), None).await, 401);
    assert_eq!(upstream.count(|r| r.method == "POST"), 1, "4xx is not retried");

    status.store(503, Ordering::SeqCst);
    assert_eq!(refused_status(&emulator.url("chat", &token), None).await, 500);
    // One try plus three retries.
    assert_eq!(upstream.count(|r| r.method == "POST"), 1 + 4);
    assert_eq!(emulator.service.connection_count("chat"), 0);
}

#[tokio::test]
async fn a_handler_that_fails_validation_is_not_called() {
    let allowed = Arc::new(AtomicBool::new(false));
    let allow = allowed.clone();
    let upstream = Upstream::start(move |request| match request.method.as_str() {
        "OPTIONS" if allow.load(Ordering::SeqCst) => allow_origin(),
        "OPTIONS" => reply(200),
        _ => reply(204),
    })
    .await;
    let emulator = wired(&upstream, &["connect"], None).await;
    let token = emulator.token("chat", Some("u"), &[], &[]);
    assert_eq!(refused_status(&emulator.url("chat", &token), None).await, 500);
    assert_eq!(upstream.count(|r| r.method == "OPTIONS"), 1);
    assert_eq!(upstream.count(|r| r.method == "POST"), 0);

    // Validation is retried (the retry interval is zero in tests) and then succeeds.
    allowed.store(true, Ordering::SeqCst);
    open(&emulator.url("chat", &token), None)
        .await
        .expect("accepted once validated");
    assert_eq!(upstream.count(|r| r.method == "OPTIONS"), 2);
    assert_eq!(upstream.count(|r| r.method == "POST"), 1);
}

#[tokio::test]
async fn user_event_replies_reach_the_sender_and_state_round_trips() {
    let upstream = Upstream::start(
        |request| match (request.method.as_str(), request.header("ce-eventname")) {
            ("OPTIONS", _) => allow_origin(),
            ("POST", Some("connect")) => respond_json(200, json!({}), Some("s1")),
            ("POST", Some("echo")) => {
                let mut body = b"echo:".to_vec();
                body.extend_from_slice(&request.body);
                respond_body("text/plain; charset=utf-8", body, Some("s2"))
            }
            ("POST", Some("bytes")) => respond_body("application/octet-stream", vec![9, 8, 7], None),
            ("POST", Some("json")) => respond_json(200, json!({"ok": true}), None),
            _ => reply(204),
        },
    )
    .await;
    let emulator = wired(&upstream, &["connect"], Some("*")).await;
    let (mut socket, _) = emulator.connect_json("chat", Some("u"), &[]).await;

    send_json(
        &mut socket,
        json!({"type":"event","event":"echo","dataType":"text","data":"hi","ackId":1}),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"message","from":"server","dataType":"text","data":"echo:hi"})
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"ack","ackId":1,"success":true})
    );
    let echo = upstream.next_event("echo").await;
    assert_eq!(echo.header("content-type"), Some("text/plain"));
    assert_eq!(echo.header("ce-type"), Some("azure.webpubsub.user.echo"));
    assert_eq!(echo.header("ce-subprotocol"), Some("json.webpubsub.azure.v1"));
    assert_eq!(echo.header("ce-connectionstate"), Some("s1"));
    assert_eq!(&echo.body[..], b"hi");

    send_json(
        &mut socket,
        json!({"type":"event","event":"bytes","dataType":"binary","data":"AQI=","ackId":2}),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"message","from":"server","dataType":"binary","data":"CQgH"})
    );
    assert_eq!(next_json(&mut socket).await["ackId"], 2);
    let bytes = upstream.next_event("bytes").await;
    assert_eq!(bytes.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        bytes.header("ce-connectionstate"),
        Some("s2"),
        "the echo reply replaced the state"
    );
    assert_eq!(&bytes.body[..], &[1, 2]);

    send_json(
        &mut socket,
        json!({"type":"event","event":"json","data":{"q":1},"ackId":3}),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"message","from":"server","dataType":"json","data":{"ok":true}})
    );
    assert_eq!(next_json(&mut socket).await["ackId"], 3);
    let json_event = upstream.next_event("json").await;
    assert_eq!(json_event.header("content-type"), Some("application/json"));
    assert_eq!(json_event.json(), json!({"q":1}));

    // 204: nothing but the ack.
    send_json(&mut socket, json!({"type":"event","event":"quiet","data":1,"ackId":4})).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type":"ack","ackId":4,"success":true})
    );
}

#[tokio::test]
async fn raw_frames_are_message_events() {
    let upstream = Upstream::start(
        |request| match (request.method.as_str(), request.header("content-type")) {
            ("OPTIONS", _) => allow_origin(),
            ("POST", Some("text/plain")) => respond_body("text/plain", b"got text".to_vec(), None),
            ("POST", Some("application/octet-stream")) => respond_body("application/octet-stream", vec![1, 2], None),
            _ => reply(204),
        },
    )
    .await;
    let emulator = wired(&upstream, &[], Some("message")).await;
    let mut socket = emulator.connect("chat", Some("u"), &[], None).await;

    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_message(&mut socket).await, Message::text("got text"));
    let event = upstream.next_event("message").await;
    assert_eq!(event.header("ce-type"), Some("azure.webpubsub.user.message"));
    assert!(event.header("ce-subprotocol").is_none());
    assert_eq!(&event.body[..], b"hello");

    socket.send(Message::binary(vec![5u8, 6])).await.unwrap();
    assert_eq!(next_message(&mut socket).await, Message::binary(vec![1u8, 2]));
    assert_eq!(&upstream.next_event("message").await.body[..], &[5, 6]);
}

#[tokio::test]
async fn failing_user_events() {
    let upstream = answering(500).await;
    let emulator = wired(&upstream, &[], Some("*")).await;

    let (mut json_client, _) = emulator.connect_json("chat", Some("j"), &[]).await;
    send_json(
        &mut json_client,
        json!({"type":"event","event":"boom","data":1,"ackId":1}),
    )
    .await;
    let ack = next_json(&mut json_client).await;
    assert_eq!(ack["success"], false);
    assert_eq!(ack["error"]["name"], "InternalServerError");
    assert_eq!(upstream.count(|r| r.method == "POST"), 4, "500 is retried three times");

    let mut raw = emulator.connect("chat", Some("r"), &[], None).await;
    raw.send(Message::text("x")).await.unwrap();
    assert_eq!(close_frame(&mut raw).await.0, 1011);
}

#[tokio::test]
async fn user_event_patterns_select_events() {
    let upstream = answering(204).await;
    let emulator = wired(&upstream, &[], Some("a, b")).await;
    let (mut socket, _) = emulator.connect_json("chat", Some("u"), &[]).await;
    for (ack_id, event) in ["c", "B", "a"].into_iter().enumerate() {
        send_json(
            &mut socket,
            json!({"type":"event","event":event,"data":1,"ackId":ack_id}),
        )
        .await;
        assert_eq!(next_json(&mut socket).await["success"], true);
    }
    let names: Vec<String> = upstream
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.method == "POST")
        .filter_map(|r| r.header("ce-eventname").map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["B".to_owned(), "a".to_owned()]);
}

/// The next text frame, as sent (byte for byte).
async fn next_text(socket: &mut Socket) -> String {
    match next_message(socket).await {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test]
async fn invoke_reaches_the_handler_and_its_reply_is_the_invoke_response() {
    let upstream = Upstream::start(
        |request| match (request.method.as_str(), request.header("ce-eventname")) {
            ("OPTIONS", _) => allow_origin(),
            (_, Some("echo")) => respond_body("application/json", br#"{"z":1,"a":"b"}"#.to_vec(), None),
            (_, Some("quiet")) => reply(204),
            _ => reply(500),
        },
    )
    .await;
    let emulator = wired(&upstream, &[], Some("echo,quiet,boom")).await;
    let (mut socket, _) = emulator.connect_json("chat", Some("u"), &[]).await;

    // The JS client's invokeEvent frame.
    send_json(
        &mut socket,
        json!({"type":"invoke","invocationId":"inv-1","target":"event","event":"echo","dataType":"text","data":"hello"}),
    )
    .await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"type":"invokeResponse","invocationId":"inv-1","success":true,"dataType":"json","data":{"z":1,"a":"b"}}"#
    );
    let event = upstream.next_event("echo").await;
    assert_eq!(event.header("ce-type"), Some("azure.webpubsub.user.echo"));
    assert_eq!(event.header("content-type"), Some("text/plain"));
    assert_eq!(&event.body[..], b"hello");

    send_json(
        &mut socket,
        json!({"type":"invoke","invocationId":"inv-2","target":"event","event":"quiet"}),
    )
    .await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"type":"invokeResponse","invocationId":"inv-2","success":true}"#
    );

    send_json(
        &mut socket,
        json!({"type":"invoke","invocationId":"inv-3","target":"event","event":"boom","data":1}),
    )
    .await;
    let failed = next_json(&mut socket).await;
    assert_eq!(failed["invocationId"], "inv-3");
    assert_eq!(failed["success"], false);
    assert_eq!(failed["error"]["name"], "InternalServerError");

    send_json(
        &mut socket,
        json!({"type":"invoke","invocationId":"inv-4","target":"event","event":"nobody"}),
    )
    .await;
    let unhandled = next_json(&mut socket).await;
    assert_eq!(unhandled["success"], false);
    assert_eq!(unhandled["error"]["name"], "NotFound");

    send_json(
        &mut socket,
        json!({"type":"invoke","invocationId":"inv-5","target":"method","event":"echo"}),
    )
    .await;
    let bad = next_json(&mut socket).await;
    assert_eq!(bad["invocationId"], "inv-5");
    assert_eq!(bad["error"]["name"], "BadRequest");

    send_json(
        &mut socket,
        json!({"type":"invoke","invocationId":"inv-6","target":"event"}),
    )
    .await;
    let no_event = next_json(&mut socket).await;
    assert_eq!(no_event["invocationId"], "inv-6");
    assert_eq!(no_event["error"]["name"], "BadRequest");

    // cancelInvocation is accepted silently; the connection keeps working.
    send_json(&mut socket, json!({"type":"cancelInvocation","invocationId":"inv-1"})).await;
    send_json(&mut socket, json!({"type":"ping"})).await;
    assert_eq!(next_json(&mut socket).await["type"], "pong");
}
