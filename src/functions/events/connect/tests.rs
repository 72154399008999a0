//! Unit tests of `connect`: body parsing (known shapes, lenient values, a property test that parsing never
//! panics), the draft, the final checks, the replies and MQTT reason codes.

use super::body::*;
use std::borrow::Cow;

use super::reply::*;
use proptest::prelude::*;
use warp::http::StatusCode;

#[test]
fn parses_a_full_body_borrowing_plain_strings() {
    let json = br#"{
        "claims": {"sub": ["alice"], "role": ["webpubsub.sendToGroup"], "iat": [1700000000], "nested": [{"a": 1}], "name": "Alice"},
        "query": {"access_token": ["secret"], "room": ["lobby", "other"]},
        "headers": {"User-Agent": ["test"]},
        "subprotocols": ["json.webpubsub.azure.v1", "protobuf.webpubsub.azure.v1"],
        "clientCertificates": [{"thumbprint": "ABC", "content": "PEM"}]
    }"#;
    let body = ConnectBody::parse(json).unwrap();
    assert_eq!(body.claims.first("sub"), Some("alice"));
    assert!(matches!(body.claims.0[0].1.first, Some(Cow::Borrowed(_))));
    assert_eq!(body.claims.first("iat"), Some("1700000000"));
    assert_eq!(body.claims.first("nested"), None);
    assert_eq!(body.claims.first("name"), Some("Alice"));
    assert_eq!(body.query.values("room").collect::<Vec<_>>(), ["lobby", "other"]);
    assert_eq!(
        body.headers.values_ignore_case("user-agent").collect::<Vec<_>>(),
        ["test"]
    );
    assert_eq!(body.subprotocols.len(), 2);
    assert_eq!(
        body.subprotocols.iter().collect::<Vec<_>>(),
        ["json.webpubsub.azure.v1", "protobuf.webpubsub.azure.v1"]
    );
    assert_eq!(
        body.client_certificates.as_ref().unwrap()[0].thumbprint.as_deref(),
        Some("ABC")
    );
    assert!(!body.is_mqtt());
}

#[test]
fn nulls_and_missing_parts_are_empty() {
    let body = ConnectBody::parse(br#"{"claims": null, "subprotocols": null}"#).unwrap();
    assert!(body.subprotocols.is_empty());
    assert_eq!(body.claims.names().count(), 0);
    let body = ConnectBody::parse(b"{}").unwrap();
    assert!(body.query.first("x").is_none());
}

#[test]
fn escaped_strings_are_decoded() {
    let body = ConnectBody::parse(br#"{"claims": {"na\u006de": ["a\"b"]}}"#).unwrap();
    assert_eq!(body.claims.first("name"), Some("a\"b"));
}

#[test]
fn malformed_bodies_are_400() {
    for json in [
        &b""[..],
        b"  ",
        b"{",
        b"[]",
        b"\"x\"",
        b"{\"claims\": 5}",
        b"{\"mqtt\": 5}",
    ] {
        let error = ConnectBody::parse(json).unwrap_err();
        assert_eq!(
            error.status(),
            StatusCode::BAD_REQUEST,
            "{:?}",
            String::from_utf8_lossy(json)
        );
        assert_eq!(error.code(), "InvalidJson");
    }
}

#[test]
fn debug_hides_values_and_mqtt_passwords() {
    let body = ConnectBody::parse(
        br#"{"query": {"access_token": ["tok-secret"]}, "mqtt": {"protocolVersion": 5, "username": "u", "password": "cHctc2VjcmV0"}}"#,
    )
    .unwrap();
    let shown = format!("{body:?}");
    assert!(shown.contains("access_token"), "{shown}");
    assert!(
        !shown.contains("tok-secret") && !shown.contains("cHctc2VjcmV0"),
        "{shown}"
    );
    assert!(body.is_mqtt());
}

#[test]
fn mqtt_codes_follow_the_protocol_version() {
    // As the official handlers map them: 401 → not authorized, 400 → bad user name or password,
    // 5xx → server unavailable.
    assert_eq!(mqtt_code(4, StatusCode::UNAUTHORIZED), 5);
    assert_eq!(mqtt_code(4, StatusCode::FORBIDDEN), 5);
    assert_eq!(mqtt_code(4, StatusCode::BAD_REQUEST), 4);
    assert_eq!(mqtt_code(4, StatusCode::INTERNAL_SERVER_ERROR), 3);
    assert_eq!(mqtt_code(4, StatusCode::SERVICE_UNAVAILABLE), 3);
    assert_eq!(mqtt_code(5, StatusCode::UNAUTHORIZED), 135);
    assert_eq!(mqtt_code(5, StatusCode::FORBIDDEN), 135);
    assert_eq!(mqtt_code(5, StatusCode::BAD_REQUEST), 134);
    assert_eq!(mqtt_code(5, StatusCode::INTERNAL_SERVER_ERROR), 136);
    assert_eq!(mqtt_code(5, StatusCode::BAD_GATEWAY), 136);
    assert_eq!(mqtt_code(5, StatusCode::PAYLOAD_TOO_LARGE), 131);
}

#[test]
fn same_set_ignores_order_and_duplicates() {
    let list = vec!["a".to_owned(), "b".to_owned()];
    assert!(same_set(&list, ["b", "a"].into_iter()));
    assert!(same_set(&list, ["b", "a", "a"].into_iter()));
    assert!(!same_set(&list, ["a"].into_iter()));
    assert!(!same_set(&list, ["a", "b", "c"].into_iter()));
    assert!(same_set(&[], std::iter::empty()));
}

proptest! {
    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = ConnectBody::parse(&bytes);
    }

    #[test]
    fn parsing_json_shaped_input_never_panics(json in r#"\{"(claims|query|headers|subprotocols|mqtt)": ?(null|\[\]|\{\}|"x"|\[1, ?"a", ?null\]|\{"k": ?\["v"\]\}|\{"protocolVersion": ?5\})\}"#) {
        let _ = ConnectBody::parse(json.as_bytes());
    }
}
