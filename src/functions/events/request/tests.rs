//! Unit tests of CloudEvent header parsing: every event kind the service sends, one test per refusal
//! (missing, repeated or non-UTF-8 attributes), media types, and property tests that parsing never panics.
//! [`service_headers`] is shared with the verification tests.

use super::*;
use proptest::prelude::*;

/// Headers of a well-formed event of `event_type`, as the service sends them (minus the signature): the
/// shared builder's defaults (hub `chat`, connection `conn-1`, user `alice`, id `1`).
pub(crate) fn service_headers(event_type: &str, event_name: &str) -> HeaderMap {
    test_support::CloudEvent::new(event_type)
        .event_name(event_name)
        .header_map()
}

#[test]
fn parses_every_event_kind() {
    let cases = [
        ("azure.webpubsub.sys.connect", "connect", EventKind::Connect),
        ("azure.webpubsub.sys.connected", "connected", EventKind::Connected),
        (
            "azure.webpubsub.sys.disconnected",
            "disconnected",
            EventKind::Disconnected,
        ),
        (
            "azure.webpubsub.user.message",
            "message",
            EventKind::User("message".into()),
        ),
        (
            "Azure.WebPubSub.User.Chat.Send",
            "chat.send",
            EventKind::User("Chat.Send".into()),
        ),
    ];
    for (event_type, name, kind) in cases {
        let event = CloudEvent::from_headers(&service_headers(event_type, name)).unwrap();
        assert_eq!(event.kind(), &kind, "{event_type}");
        assert_eq!(event.event_type(), event_type);
    }
}

#[test]
fn reads_attributes_case_insensitively() {
    let event = CloudEvent::from_headers(&service_headers("azure.webpubsub.sys.connected", "connected")).unwrap();
    assert_eq!(event.hub(), "chat");
    assert_eq!(event.connection_id(), "conn-1");
    assert_eq!(event.user_id(), Some("alice"));
    assert_eq!(event.id(), "1");
    assert_eq!(event.source(), "/hubs/chat/client/conn-1");
    assert_eq!(event.time(), Some("2024-01-01T00:00:00Z"));
    assert_eq!(event.subprotocol(), None);
    assert_eq!(event.data_type(), None);
}

#[test]
fn each_required_header_missing_is_named() {
    for name in [
        headers::SPEC_VERSION,
        headers::TYPE,
        headers::EVENT_NAME,
        headers::ID,
        headers::SOURCE,
        headers::HUB,
        headers::CONNECTION_ID,
    ] {
        let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
        map.remove(name);
        assert_eq!(
            CloudEvent::from_headers(&map).unwrap_err(),
            HeaderError::Missing(name),
            "{name}"
        );
        let mut blank = service_headers("azure.webpubsub.sys.connect", "connect");
        blank.insert(name, HeaderValue::from_static(" "));
        assert_eq!(
            CloudEvent::from_headers(&blank).unwrap_err(),
            HeaderError::Missing(name),
            "blank {name}"
        );
    }
}

#[test]
fn optional_headers_may_be_missing() {
    let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
    for name in [
        headers::USER_ID,
        headers::TIME,
        headers::SIGNATURE,
        "ce-awpsversion",
        headers::WEBHOOK_REQUEST_ORIGIN,
    ] {
        map.remove(name);
    }
    let event = CloudEvent::from_headers(&map).unwrap();
    assert_eq!(event.user_id(), None);
    assert_eq!(event.signature().as_deref(), None);
}

#[test]
fn unknown_event_types_are_refused() {
    for event_type in [
        "azure.webpubsub.sys.joined",
        "azure.webpubsub.user.",
        "com.example.thing",
        "azure.webpubsub.sys",
    ] {
        let map = service_headers(event_type, "joined");
        assert!(
            matches!(CloudEvent::from_headers(&map), Err(HeaderError::UnknownEventType(_))),
            "{event_type}"
        );
    }
}

#[test]
fn event_name_must_match_the_type() {
    let map = service_headers("azure.webpubsub.user.message", "other");
    assert_eq!(
        CloudEvent::from_headers(&map).unwrap_err(),
        HeaderError::EventNameMismatch
    );
}

#[test]
fn spec_version_must_be_one() {
    let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
    map.insert(headers::SPEC_VERSION, HeaderValue::from_static("0.3"));
    assert_eq!(
        CloudEvent::from_headers(&map).unwrap_err(),
        HeaderError::Invalid(headers::SPEC_VERSION)
    );
}

#[test]
fn repeated_attribute_headers_are_refused() {
    let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
    map.append(headers::CONNECTION_ID, HeaderValue::from_static("conn-2"));
    assert_eq!(
        CloudEvent::from_headers(&map).unwrap_err(),
        HeaderError::Invalid(headers::CONNECTION_ID)
    );
}

#[test]
fn utf8_user_ids_are_kept_and_other_bytes_refused() {
    let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
    map.insert(headers::USER_ID, HeaderValue::from_bytes("zoë".as_bytes()).unwrap());
    assert_eq!(CloudEvent::from_headers(&map).unwrap().user_id(), Some("zoë"));
    map.insert(headers::USER_ID, HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap());
    assert_eq!(
        CloudEvent::from_headers(&map).unwrap_err(),
        HeaderError::Invalid(headers::USER_ID)
    );
}

#[test]
fn user_event_content_types() {
    let cases = [
        (Some("text/plain; charset=utf-8"), Some(DataType::Text)),
        (Some("Application/JSON"), Some(DataType::Json)),
        (Some("application/octet-stream"), Some(DataType::Binary)),
        (None, Some(DataType::Binary)),
        (Some("image/png"), None),
    ];
    for (content_type, expected) in cases {
        let mut map = service_headers("azure.webpubsub.user.message", "message");
        if let Some(value) = content_type {
            map.insert(CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        match expected {
            Some(data_type) => assert_eq!(CloudEvent::from_headers(&map).unwrap().data_type(), Some(data_type)),
            None => assert_eq!(
                CloudEvent::from_headers(&map).unwrap_err(),
                HeaderError::UnsupportedContentType
            ),
        }
    }
}

#[test]
fn mqtt_user_events_accept_any_bounded_media_type() {
    let mut map = service_headers("azure.webpubsub.user.message", "message");
    map.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
    map.insert(headers::PHYSICAL_CONNECTION_ID, HeaderValue::from_static("phys-1"));
    let event = CloudEvent::from_headers(&map).unwrap();
    assert_eq!(event.data_type(), Some(DataType::Binary));
    assert_eq!(event.other_content_type(), Some("image/png"));
    for bad in ["image", "/png", "a b/c", &format!("image/{}", "x".repeat(300))] {
        map.insert(CONTENT_TYPE, HeaderValue::from_str(bad).unwrap());
        assert_eq!(
            CloudEvent::from_headers(&map).unwrap_err(),
            HeaderError::UnsupportedContentType,
            "{bad}"
        );
    }
    map.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    assert_eq!(CloudEvent::from_headers(&map).unwrap().other_content_type(), None);
}

#[test]
fn group_events_parse_with_either_event_name() {
    for (event_type, name, kind) in [
        ("azure.webpubsub.sys.gp.joined", "gp.joined", EventKind::GroupJoined),
        ("azure.webpubsub.sys.gp.left", "left", EventKind::GroupLeft),
    ] {
        let event = CloudEvent::from_headers(&service_headers(event_type, name)).unwrap();
        assert_eq!(event.kind(), &kind);
    }
    let mismatch = service_headers("azure.webpubsub.sys.gp.joined", "left");
    assert_eq!(
        CloudEvent::from_headers(&mismatch).unwrap_err(),
        HeaderError::EventNameMismatch
    );
}

#[test]
fn debug_never_shows_the_signature() {
    let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
    map.insert(headers::SIGNATURE, HeaderValue::from_static("sha256=deadbeef"));
    let event = CloudEvent::from_headers(&map).unwrap();
    assert!(!format!("{event:?}").contains("deadbeef"));
}

#[test]
fn header_errors_become_400_with_the_header_named() {
    let api: ApiError = HeaderError::Missing(headers::HUB).into();
    assert_eq!(api.status(), warp::http::StatusCode::BAD_REQUEST);
    assert_eq!(api.code(), "MissingHeader");
    assert!(api.message().contains("ce-hub"));
}

proptest! {
    #[test]
    fn parsing_never_panics(event_type in ".{0,40}", name in ".{0,20}", content_type in ".{0,30}", hub in "\\PC{0,10}") {
        let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
        for (header, value) in [(headers::TYPE, &event_type), (headers::EVENT_NAME, &name), ("content-type", &content_type), (headers::HUB, &hub)] {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.insert(header, value);
            }
        }
        let _ = CloudEvent::from_headers(&map);
    }

    #[test]
    fn content_type_parsing_never_panics(value in ".{0,60}") {
        let _ = DataType::from_content_type(&value);
    }
}
