//! Unit tests of connections: queues, overflow, reliable buffers, permissions.

use super::*;
use crate::protocol::{DataType, Payload};

fn identity(subprotocol: Option<&str>) -> Identity {
    Identity {
        connection_id: new_connection_id(),
        hub: "hub".into(),
        user_id: Some("u".into()),
        subprotocol: subprotocol.map(str::to_owned),
        roles: vec![],
    }
}

fn message(text: &str) -> DataMessage {
    DataMessage::from_server(&Payload::new(DataType::Text, text.to_owned()))
}

fn drain(queue: &mut SocketQueue) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Ok(frame) = queue.frames.try_recv() {
        queue.written(&frame);
        frames.push(frame);
    }
    frames
}

#[test]
fn connection_ids_are_32_hex() {
    let id = new_connection_id();
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(id, new_connection_id());
}

#[test]
fn raw_connections_get_raw_frames() {
    let (conn, mut queue) = Connection::new(identity(None), None);
    conn.send_data(&message("hello")).unwrap();
    assert_eq!(drain(&mut queue), vec![Frame::Text("hello".into())]);
}

#[test]
fn reliable_sequence_ids_start_at_one_and_replay_after_attach() {
    let (conn, mut first) = Connection::new(identity(Some(protocol::RELIABLE_JSON_SUBPROTOCOL)), None);
    for i in 0..3 {
        conn.send_data(&message(&format!("m{i}"))).unwrap();
    }
    let frames = drain(&mut first);
    assert!(matches!(&frames[0], Frame::Text(t) if t.contains("\"sequenceId\":1")));
    assert!(matches!(&frames[2], Frame::Text(t) if t.contains("\"sequenceId\":3")));
    conn.ack_sequence(1);
    assert_eq!(conn.unacked_len(), 2);
    // Unclean end: the connection waits for a resume.
    assert!(!conn.socket_ended(1, false));
    assert!(conn.is_waiting_for_resume(1));
    conn.send_data(&message("while away")).unwrap();
    let (generation, mut second) = conn.attach().unwrap();
    assert_eq!(generation, 2);
    let replayed = drain(&mut second);
    assert_eq!(replayed.len(), 3);
    assert!(matches!(&replayed[0], Frame::Text(t) if t.contains("\"sequenceId\":2")));
    assert!(matches!(&replayed[2], Frame::Text(t) if t.contains("while away") && t.contains("\"sequenceId\":4")));
    // The old socket's end no longer matters.
    assert!(!conn.socket_ended(1, true));
}

#[test]
fn reliable_buffer_is_bounded() {
    let (conn, _queue) = Connection::new(identity(Some(protocol::RELIABLE_JSON_SUBPROTOCOL)), None);
    assert!(!conn.socket_ended(1, false));
    for _ in 0..MAX_UNACKED_MESSAGES {
        conn.send_data(&message("x")).unwrap();
    }
    assert_eq!(conn.send_data(&message("x")), Err(Overflow::ReliableBuffer));
}

#[test]
fn slow_consumers_overflow() {
    let (conn, _queue) = Connection::new(identity(Some(protocol::JSON_SUBPROTOCOL)), None);
    let mut result = Ok(());
    for _ in 0..=QUEUE_FRAMES {
        result = conn.send_data(&message("x"));
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Overflow::Queue));
}

#[test]
fn close_notifies_json_clients_once() {
    let (conn, mut queue) = Connection::new(identity(Some(protocol::JSON_SUBPROTOCOL)), None);
    assert!(conn.close(1000, "bye", true));
    assert!(!conn.close(1000, "bye", true));
    let frames = drain(&mut queue);
    assert!(matches!(&frames[0], Frame::Text(t) if t.contains("disconnected") && t.contains("bye")));
    let request = queue.close.try_recv().unwrap();
    assert_eq!(request.code, 1000);
    assert!(request.flush_queued);
    assert!(conn.attach().is_none());
}

#[test]
fn ack_ids_are_deduplicated() {
    let (conn, _queue) = Connection::new(identity(None), None);
    assert!(conn.first_use_of_ack_id(1));
    assert!(!conn.first_use_of_ack_id(1));
    assert!(conn.first_use_of_ack_id(2));
}

#[test]
fn grants_and_checks() {
    let (conn, _queue) = Connection::new(identity(None), None);
    assert!(!conn.is_allowed(Permission::SendToGroup, "g"));
    conn.grant(Permission::SendToGroup, Some("g"));
    assert!(conn.is_allowed(Permission::SendToGroup, "g"));
    assert!(conn.check(Permission::SendToGroup, Some("g")));
    assert!(!conn.check(Permission::SendToGroup, None));
    assert!(!conn.is_allowed(Permission::JoinLeaveGroup, "g"));
    conn.grant(Permission::JoinLeaveGroup, None);
    assert!(conn.is_allowed(Permission::JoinLeaveGroup, "any"));
    assert!(conn.check(Permission::JoinLeaveGroup, None));
    conn.revoke(Permission::JoinLeaveGroup, None);
    assert!(!conn.is_allowed(Permission::JoinLeaveGroup, "any"));
    conn.revoke(Permission::SendToGroup, Some("g"));
    assert!(!conn.is_allowed(Permission::SendToGroup, "g"));
}
