//! #15 item 7 end to end on SQLite and PostgreSQL: negotiate puts a member's conversations in the token
//! (membership is the permission), refuses a non-member naming the group, and a removed member's live
//! WebSocket — connected with that token through the real emulator — stops receiving the conversation.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{JSON_SUBPROTOCOL, Socket, backends, http, open_socket, start_with_store};

async fn negotiate(base: &str, query: &str) -> (u16, Value) {
    let reply = http()
        .get(format!("{base}/api/negotiate?{query}"))
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap())
}

/// Connects with the JSON subprotocol and waits for the `connected` frame.
async fn connect(url: &str) -> Socket {
    let (mut socket, _) = open_socket(url, &[JSON_SUBPROTOCOL]).await.expect("connects");
    match next_frame(&mut socket, Instant::now() + Duration::from_secs(10)).await {
        Frame::Json(frame) => assert_eq!(frame["event"], "connected", "{frame}"),
        other => panic!("expected the connected frame, got {other:?}"),
    }
    socket
}

#[derive(Debug)]
enum Frame {
    Json(Value),
    Closed,
    Nothing,
}

async fn next_frame(socket: &mut Socket, deadline: Instant) -> Frame {
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), socket.next()).await {
            Err(_) => continue,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Frame::Closed,
            Ok(Some(Ok(Message::Text(text)))) => return Frame::Json(serde_json::from_str(text.as_str()).unwrap()),
            Ok(Some(Ok(_))) => continue,
        }
    }
    Frame::Nothing
}

/// The conversation message carried by a group frame (`data` of the JSON subprotocol's message).
fn message_id(frame: &Value) -> Option<&str> {
    (frame["type"] == "message")
        .then(|| frame["data"]["id"].as_str())
        .flatten()
}

async fn send(base: &str, id: &str, user: &str, message: &str) {
    let reply = http()
        .post(format!("{base}/api/conversations/{id}/messages?userId={user}"))
        .json(&json!({"id": message, "body": message}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_is_the_permission_and_a_removed_members_socket_stops_receiving() {
    for store in backends("members") {
        let (_emulator, handler) = start_with_store(&store).await;
        let base = handler.url("");
        let id = format!("m-{}", uuid::Uuid::now_v7());
        let group = format!("conversation:{id}");
        let created = http()
            .post(format!("{base}/api/manage/conversations"))
            .json(&json!({"id": id, "members": ["alice", "bob"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);

        // bob's token holds the conversation and his notification group without asking.
        let (status, access) = negotiate(&base, "userId=bob").await;
        assert_eq!(status, 200, "{store}: {access}");
        // mallory may not ask for it, nor for bob's notifications.
        for (query, named) in [
            (format!("userId=mallory&groups={group}"), group.clone()),
            (
                "userId=mallory&groups=notifications:user:bob".to_owned(),
                "notifications:user:bob".to_owned(),
            ),
        ] {
            let (status, error) = negotiate(&base, &query).await;
            assert_eq!(
                (status, error["code"].as_str()),
                (403, Some("GroupNotAllowed")),
                "{store}: {error}"
            );
            assert_eq!(error["group"], named.as_str());
        }

        let mut bob = connect(access["url"].as_str().unwrap()).await;
        send(&base, &id, "alice", "before").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        match next_frame(&mut bob, deadline).await {
            Frame::Json(frame) => assert_eq!(message_id(&frame), Some("before"), "{store}: {frame}"),
            other => panic!("{store}: bob receives the conversation while a member: {other:?}"),
        }

        let removed = http()
            .delete(format!("{base}/api/manage/conversations/{id}/members/bob"))
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), 204);
        // The removal reaches the live connection through the outbox (the immediate try; a drain otherwise).
        let outbox = http()
            .post(handler.url("/outbox"))
            .json(&json!({"Data": {}, "Metadata": {}}));
        assert_eq!(outbox.send().await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        send(&base, &id, "alice", "after").await;
        // The emulator keeps token roles past a REST revoke, so the revocation closes the socket; until it
        // closes, nothing of the conversation arrives.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut frame = next_frame(&mut bob, deadline).await;
        while let Frame::Json(message) = &frame {
            assert_ne!(message_id(message), Some("after"), "{store}: {message}");
            frame = next_frame(&mut bob, deadline).await;
        }
        assert!(
            matches!(frame, Frame::Closed),
            "{store}: the revoked connection is closed: {frame:?}"
        );
        // A fresh token no longer holds the conversation, and asking for it is refused.
        let (_, access) = negotiate(&base, "userId=bob").await;
        assert!(access["url"].as_str().is_some(), "{access}");
        let (status, error) = negotiate(&base, &format!("userId=bob&groups={group}")).await;
        assert_eq!(
            (status, error["group"].as_str()),
            (403, Some(group.as_str())),
            "{store}: {error}"
        );
    }
}
