//! Unit tests of the client endpoint's helpers.

use super::session::truncate_reason;
use super::upgrade::{hub_of, is_valid_websocket_key, parse_query};

#[test]
fn hub_from_path_or_query() {
    let q = parse_query("hub=Chat&access_token=x");
    assert_eq!(hub_of("hubs/chat", &[]), Some("chat".into()));
    assert_eq!(hub_of("hubs/a%5Bb%5D/", &[]), Some("a[b]".into()));
    assert_eq!(hub_of("", &q), Some("Chat".into()));
    assert_eq!(hub_of("/", &q), Some("Chat".into()));
    assert_eq!(hub_of("", &[]), Some(String::new()));
    assert_eq!(hub_of("hubs/a/b", &[]), None);
    assert_eq!(hub_of("other", &[]), None);
}

proptest::proptest! {
    #[test]
    fn request_parsing_never_panics(tail in ".{0,60}", query in ".{0,80}") {
        let parsed = parse_query(&query);
        let _ = hub_of(&tail, &parsed);
        let _ = truncate_reason(&tail);
    }
}

#[test]
fn close_reasons_fit_a_control_frame() {
    assert_eq!(truncate_reason("short"), "short");
    let long = "é".repeat(100);
    let cut = truncate_reason(&long);
    assert!(cut.len() <= 123 && long.starts_with(&cut));
}

#[test]
fn websocket_keys_are_base64_of_16_bytes() {
    // The RFC 6455 example key.
    assert!(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
    for bad in [
        "",
        "x",
        "not-base64-at-all-but-24",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZSE=",
        "dGhlIHNhbXBsZSBub25jZQ==dGhl",
    ] {
        assert!(!is_valid_websocket_key(bad), "{bad:?}");
    }
}
