//! Unit tests of upstream helpers: user event patterns, signatures, handler URLs.

use super::*;
use webpubsub_protocol::keys::AccessKey;

#[test]
fn user_event_patterns() {
    assert!(!UserEvents::parse(None).takes("message"));
    assert!(!UserEvents::parse(Some(" ")).takes("message"));
    assert!(UserEvents::parse(Some("*")).takes("anything"));
    let list = UserEvents::parse(Some("chat, Notify"));
    assert!(list.takes("chat"));
    assert!(list.takes("notify"));
    assert!(!list.takes("message"));
    assert!(UserEvents::parse(Some("message")).takes("MESSAGE"));
}

#[test]
fn signatures_for_both_keys() {
    let config = EmulatorConfig::default();
    let primary = ServiceKeys::new(AccessKey::new("Jefe").unwrap());
    let upstream = Upstream::new(
        &config,
        primary.clone().with_secondary(AccessKey::new("other").unwrap()),
    );
    let signature = upstream.signature("what do ya want for nothing?");
    let (first, second) = signature.split_once(',').unwrap();
    assert_eq!(
        first,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert!(second.starts_with("sha256=") && second.len() == 7 + 64);
    let single = Upstream::new(&config, primary).signature("x");
    assert!(!single.contains(','));
}

#[test]
fn handler_urls_and_events() {
    let handler = Handler::new(&EventHandlerConfig {
        url_template: "http://h/api/{hub}/{event}".into(),
        system_events: vec!["Connect".into()],
        user_event_pattern: Some("*".into()),
    });
    assert_eq!(handler.url("chat", "validate"), "http://h/api/chat/validate");
    assert!(handler.system_events.contains(&"connect".to_owned()));
}
