//! Unit tests of the client without a server: the signed request it prepares, error-body parsing,
//! message clipping, what a failure implies about delivery, and `nextLink` paging tokens.

use super::operations::continuation_token;
use super::response::{MAX_ERROR_MESSAGE_CHARS, clip, parse_error_body};
use super::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use std::time::UNIX_EPOCH;

const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

fn client() -> RestClient {
    let connection =
        ConnectionString::parse(&format!("Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY}")).unwrap();
    RestClient::new(&connection, RestOptions::default()).unwrap()
}

#[test]
fn prepared_request_carries_a_bearer_for_the_full_url() {
    let request = ApiRequest::send_to_group(
        "chat",
        "room 1",
        &Message::text("hi"),
        &SendOptions {
            filter: Some("userId eq 'a'".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let prepared = client().prepare(&request, now).unwrap();
    let expected_url = "https://contoso.webpubsub.azure.com/api/hubs/chat/groups/room%201/:send\
                        ?api-version=2024-12-01&filter=userId%20eq%20%27a%27";
    assert_eq!(prepared.method(), Method::POST);
    assert_eq!(prepared.url().as_str(), expected_url);
    assert_eq!(prepared.headers()[CONTENT_TYPE], "text/plain");
    let bearer = prepared.headers()[AUTHORIZATION]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    assert!(prepared.headers()[AUTHORIZATION].is_sensitive());

    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.set_audience(&[expected_url]);
    let claims = decode::<serde_json::Value>(&bearer, &DecodingKey::from_secret(KEY.as_bytes()), &validation)
        .unwrap()
        .claims;
    assert_eq!(
        claims,
        serde_json::json!({"aud": expected_url, "iat": 1_700_000_000u64, "exp": 1_700_000_300u64})
    );
}

#[test]
fn bodiless_posts_get_an_empty_body_and_heads_none() {
    let client = client();
    let now = SystemTime::now();
    let close = client
        .prepare(
            &ApiRequest::close_all_connections("chat", &CloseOptions::default()).unwrap(),
            now,
        )
        .unwrap();
    assert_eq!(close.body().and_then(|b| b.as_bytes()), Some(&b""[..]));
    assert_eq!(close.headers()[CONTENT_LENGTH], "0");
    assert!(close.headers().get(CONTENT_TYPE).is_none());
    let exists = client
        .prepare(&ApiRequest::user_exists("chat", "u").unwrap(), now)
        .unwrap();
    assert!(exists.body().is_none());
}

#[test]
fn debug_hides_the_key() {
    let shown = format!("{:?}", client());
    assert!(!shown.contains(KEY) && shown.contains("contoso"), "{shown}");
}

#[test]
fn error_bodies_of_both_shapes_are_understood() {
    assert_eq!(
        parse_error_body(br#"{"error":{"code":"InvalidHub","message":"bad hub"}}"#),
        (Some("InvalidHub".into()), Some("bad hub".into()))
    );
    assert_eq!(
        parse_error_body(br#"{"code":"Forbidden","message":"no","target":"x"}"#),
        (Some("Forbidden".into()), Some("no".into()))
    );
    assert_eq!(parse_error_body(b"plain text"), (None, None));
    assert_eq!(parse_error_body(br#"{"error":"oops"}"#), (None, None));
}

#[test]
fn messages_are_clipped_and_stripped_of_control_characters() {
    assert_eq!(clip("a\nb\u{7}"), "a b ");
    assert_eq!(clip(&"x".repeat(2000)).chars().count(), MAX_ERROR_MESSAGE_CHARS);
}

#[test]
fn delivery_follows_the_status() {
    assert_eq!(delivery_of(AttemptFailure::NotConnected), Delivery::NotSent);
    assert_eq!(delivery_of(AttemptFailure::NoAnswer), Delivery::Unknown);
    for status in [400, 401, 403, 404, 408, 409, 429, 501] {
        assert_eq!(
            delivery_of(AttemptFailure::Status {
                status,
                has_retry_after: false
            }),
            Delivery::Refused,
            "{status}"
        );
    }
    for status in [500, 502, 503, 504] {
        assert_eq!(
            delivery_of(AttemptFailure::Status {
                status,
                has_retry_after: false
            }),
            Delivery::Unknown,
            "{status}"
        );
    }
    assert_eq!(
        delivery_of(AttemptFailure::Status {
            status: 503,
            has_retry_after: true
        }),
        Delivery::Refused
    );
}

#[test]
fn continuation_tokens_come_from_relative_or_absolute_next_links() {
    let endpoint = Endpoint::parse("https://contoso.webpubsub.azure.com").unwrap();
    assert_eq!(
        continuation_token(
            &endpoint,
            "/api/hubs/h/groups/g/connections?continuationToken=abc%3D&api-version=2024-12-01"
        ),
        Some("abc=".into())
    );
    assert_eq!(
        continuation_token(&endpoint, "https://other.example/x?api-version=1&continuationToken=t"),
        Some("t".into())
    );
    assert_eq!(continuation_token(&endpoint, "/x?api-version=1"), None);
}

#[test]
fn default_options_are_bounded() {
    let options = RestOptions::default();
    assert_eq!(options.api_version, "2024-12-01");
    assert_eq!(options.token_ttl, Duration::from_secs(300));
    assert!(options.retry.max_retries > 0 && options.retry.max_elapsed > options.retry.max_backoff);
}
