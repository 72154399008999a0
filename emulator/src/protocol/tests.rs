//! Unit tests of the JSON subprotocol frames: parsing every message kind and its errors, writing frames.

use super::*;
use serde_json::{Value, json};

#[test]
fn protocols() {
    assert_eq!(Protocol::of(None), Protocol::Raw);
    assert_eq!(Protocol::of(Some("json.webpubsub.azure.v1")), Protocol::Json);
    assert_eq!(
        Protocol::of(Some("json.reliable.webpubsub.azure.v1")),
        Protocol::ReliableJson
    );
    assert_eq!(Protocol::of(Some("protobuf.webpubsub.azure.v1")), Protocol::Raw);
    assert!(!Protocol::is_supported("mqtt"));
}

#[test]
fn payload_validation() {
    assert!(Payload::new(DataType::Json, "{\"a\":1}").validate().is_ok());
    assert_eq!(Payload::new(DataType::Json, "{").validate(), Err(PayloadError::NotJson));
    assert_eq!(
        Payload::new(DataType::Text, vec![0xff]).validate(),
        Err(PayloadError::NotUtf8)
    );
    assert!(Payload::new(DataType::Binary, vec![0xff]).validate().is_ok());
}

#[test]
fn server_messages_per_kind() {
    let json = DataMessage::from_server(&Payload::new(DataType::Json, "\"hi\""));
    assert_eq!(json.raw, Frame::Text("\"hi\"".into()));
    let v: Value = serde_json::from_str(&json.json).unwrap();
    assert_eq!(
        v,
        json!({"type":"message","from":"server","dataType":"json","data":"hi"})
    );

    let bin = DataMessage::from_server(&Payload::new(DataType::Binary, vec![1u8, 2, 3]));
    assert_eq!(bin.raw, Frame::Binary(Bytes::from_static(&[1, 2, 3])));
    let v: Value = serde_json::from_str(&bin.json).unwrap();
    assert_eq!(v["data"], "AQID");
    assert_eq!(v["dataType"], "binary");
}

#[test]
fn group_message_shape() {
    let m = DataMessage::from_group("g", Some("alice"), &Payload::new(DataType::Text, "x"));
    let v: Value = serde_json::from_str(&m.json).unwrap();
    assert_eq!(
        v,
        json!({"type":"message","from":"group","group":"g","dataType":"text","data":"x","fromUserId":"alice"})
    );
    let anon = DataMessage::from_group("g", None, &Payload::new(DataType::Text, "x"));
    assert!(!anon.json.contains("fromUserId"));
}

#[test]
fn sequence_ids_are_spliced() {
    let v: Value = serde_json::from_str(&with_sequence_id(r#"{"a":1}"#, 7)).unwrap();
    assert_eq!(v, json!({"a":1,"sequenceId":7}));
    let v: Value = serde_json::from_str(&with_sequence_id("{}", 1)).unwrap();
    assert_eq!(v, json!({"sequenceId":1}));
}

#[test]
fn acks() {
    let v: Value = serde_json::from_str(&ack_error(3, AckError::Duplicate, "again")).unwrap();
    assert_eq!(
        v,
        json!({"type":"ack","ackId":3,"success":false,"error":{"name":"Duplicate","message":"again"}})
    );
    let v: Value = serde_json::from_str(&ack_ok(4)).unwrap();
    assert_eq!(v, json!({"type":"ack","ackId":4,"success":true}));
}

#[test]
fn parses_client_messages() {
    assert_eq!(
        parse_client_message(r#"{"type":"joinGroup","group":"g","ackId":1}"#).unwrap(),
        ClientMessage::JoinGroup {
            group: "g".into(),
            ack_id: Some(1)
        }
    );
    assert_eq!(
        parse_client_message(r#"{"type":"sendToGroup","group":"g","data":{"a":1}}"#).unwrap(),
        ClientMessage::SendToGroup {
            group: "g".into(),
            ack_id: None,
            no_echo: false,
            payload: Payload::new(DataType::Json, r#"{"a":1}"#)
        }
    );
    assert_eq!(
        parse_client_message(r#"{"type":"event","event":"e","dataType":"binary","data":"AQID","ackId":2}"#).unwrap(),
        ClientMessage::Event {
            event: "e".into(),
            ack_id: Some(2),
            payload: Payload::new(DataType::Binary, vec![1u8, 2, 3])
        }
    );
    assert_eq!(parse_client_message(r#"{"type":"ping"}"#).unwrap(), ClientMessage::Ping);
    assert_eq!(
        parse_client_message(r#"{"type":"sequenceAck","sequenceId":9}"#).unwrap(),
        ClientMessage::SequenceAck { sequence_id: 9 }
    );
}

#[test]
fn client_message_errors_keep_the_ack_id() {
    let e =
        parse_client_message(r#"{"type":"sendToGroup","group":"g","dataType":"text","data":1,"ackId":5}"#).unwrap_err();
    assert_eq!(e.ack_id, Some(5));
    let e = parse_client_message(r#"{"type":"bogus","ackId":6}"#).unwrap_err();
    assert_eq!(e.ack_id, Some(6));
    let e = parse_client_message(r#"{"type":"joinGroup","ackId":"x"}"#).unwrap_err();
    assert_eq!(e.ack_id, None);
    assert!(parse_client_message("not json").is_err());
    assert!(parse_client_message(r#"{"type":"event","dataType":"binary","data":"%%"}"#).is_err());
}

proptest::proptest! {
    #[test]
    fn parser_never_panics(s in ".{0,200}") {
        let _ = parse_client_message(&s);
    }
}

#[test]
fn frames_keep_the_service_field_order_byte_for_byte() {
    let server = DataMessage::from_server(&Payload::new(DataType::Json, r#" {"z":1,"a":[2.50,"x"]} "#));
    assert_eq!(
        server.json,
        r#"{"type":"message","from":"server","dataType":"json","data":{"z":1,"a":[2.50,"x"]}}"#
    );
    let text = DataMessage::from_server(&Payload::new(DataType::Text, "a\"b"));
    assert_eq!(
        text.json,
        r#"{"type":"message","from":"server","dataType":"text","data":"a\"b"}"#
    );
    let binary = DataMessage::from_server(&Payload::new(DataType::Binary, vec![1u8, 2, 3]));
    assert_eq!(
        binary.json,
        r#"{"type":"message","from":"server","dataType":"binary","data":"AQID"}"#
    );
    let not_json = DataMessage::from_server(&Payload::new(DataType::Json, "{"));
    assert_eq!(
        not_json.json,
        r#"{"type":"message","from":"server","dataType":"text","data":"{"}"#
    );
    let group = DataMessage::from_group("g", Some("alice"), &Payload::new(DataType::Json, r#"{"b":1,"a":2}"#));
    assert_eq!(
        group.json,
        r#"{"type":"message","from":"group","group":"g","dataType":"json","data":{"b":1,"a":2},"fromUserId":"alice"}"#
    );
    assert_eq!(ack_ok(3), r#"{"type":"ack","ackId":3,"success":true}"#);
    assert_eq!(
        ack_error(4, AckError::Forbidden, "no"),
        r#"{"type":"ack","ackId":4,"success":false,"error":{"name":"Forbidden","message":"no"}}"#
    );
    assert_eq!(
        connected(Some("u"), "c1", Some("t")),
        r#"{"type":"system","event":"connected","userId":"u","connectionId":"c1","reconnectionToken":"t"}"#
    );
    assert_eq!(
        disconnected("bye"),
        r#"{"type":"system","event":"disconnected","message":"bye"}"#
    );
    assert_eq!(
        with_sequence_id(&server.json, 9),
        r#"{"type":"message","from":"server","dataType":"json","data":{"z":1,"a":[2.50,"x"]},"sequenceId":9}"#
    );
}

#[test]
fn invoke_frames_parse_and_answer() {
    let message = parse_client_message(
        r#"{"type":"invoke","invocationId":"7","target":"event","event":"e","dataType":"text","data":"x"}"#,
    )
    .unwrap();
    assert_eq!(
        message,
        ClientMessage::Invoke {
            invocation_id: "7".into(),
            target: "event".into(),
            event: "e".into(),
            payload: Payload::new(DataType::Text, "x"),
        }
    );
    let missing = parse_client_message(r#"{"type":"invoke","invocationId":"8","target":"event"}"#).unwrap_err();
    assert_eq!(missing.invocation_id.as_deref(), Some("8"));
    let no_id = parse_client_message(r#"{"type":"invoke","target":"event","event":"e"}"#).unwrap_err();
    assert_eq!(no_id.invocation_id, None);
    assert_eq!(
        parse_client_message(r#"{"type":"cancelInvocation","invocationId":"7"}"#).unwrap(),
        ClientMessage::CancelInvocation
    );
    assert_eq!(
        invoke_ok("7", Some(&Payload::new(DataType::Binary, vec![1u8]))),
        r#"{"type":"invokeResponse","invocationId":"7","success":true,"dataType":"binary","data":"AQ=="}"#
    );
    assert_eq!(
        invoke_error("7", AckError::NotFound, "none"),
        r#"{"type":"invokeResponse","invocationId":"7","success":false,"error":{"name":"NotFound","message":"none"}}"#
    );
}
