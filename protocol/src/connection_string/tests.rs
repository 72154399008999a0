//! Unit tests of connection-string parsing: the portal and emulator forms, normalisation of keys and
//! endpoints, one test per refusal, the key never in errors or Debug output, and property tests that
//! parsing never panics.

use super::*;
use proptest::prelude::*;

const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

fn parse(input: &str) -> Result<ConnectionString, ConnectionStringError> {
    ConnectionString::parse(input)
}

#[test]
fn parses_the_portal_form() {
    let cs = parse(&format!(
        "Endpoint=https://contoso.webpubsub.azure.com;AccessKey={KEY};Version=1.0;"
    ))
    .unwrap();
    assert_eq!(cs.endpoint().as_str(), "https://contoso.webpubsub.azure.com");
    assert_eq!(cs.endpoint().websocket_base(), "wss://contoso.webpubsub.azure.com");
    assert_eq!(cs.endpoint().host(), "contoso.webpubsub.azure.com");
    assert_eq!(cs.endpoint().port(), 443);
    assert!(cs.endpoint().is_https());
    assert_eq!(cs.access_key().expose_secret(), KEY);
}

#[test]
fn parses_the_emulator_default() {
    let cs = parse(&format!("Endpoint=http://localhost:8080;AccessKey={KEY};Version=1.0;")).unwrap();
    assert_eq!(cs.endpoint().as_str(), "http://localhost:8080");
    assert_eq!(cs.endpoint().websocket_base(), "ws://localhost:8080");
    assert_eq!(cs.endpoint().port(), 8080);
    assert!(!cs.endpoint().is_https());
}

#[test]
fn keys_are_case_insensitive_and_trimmed() {
    let cs = parse(&format!(
        " endpoint = https://a.example ;ACCESSKEY= {KEY} ; vErSiOn=1.0"
    ))
    .unwrap();
    assert_eq!(cs.endpoint().as_str(), "https://a.example");
    assert_eq!(cs.access_key().expose_secret(), KEY);
}

#[test]
fn access_key_is_split_at_the_first_equals_only() {
    let cs = parse("Endpoint=https://a.example;AccessKey=abc==;").unwrap();
    assert_eq!(cs.access_key().expose_secret(), "abc==");
}

#[test]
fn empty_segments_unknown_keys_and_version_are_ignored() {
    let cs = parse(";;Endpoint=https://a.example;; ;AuthType=aad;Version=1.0;ClientEndpoint=x;AccessKey=k;").unwrap();
    assert_eq!(cs.endpoint().as_str(), "https://a.example");
}

#[test]
fn trailing_slashes_are_stripped_and_base_paths_kept() {
    assert_eq!(
        parse("Endpoint=https://a.example/;AccessKey=k")
            .unwrap()
            .endpoint()
            .as_str(),
        "https://a.example"
    );
    assert_eq!(
        parse("Endpoint=https://a.example/proxy/ws//;AccessKey=k")
            .unwrap()
            .endpoint()
            .as_str(),
        "https://a.example/proxy/ws"
    );
}

#[test]
fn scheme_and_host_are_lowercased() {
    let cs = parse("Endpoint=HTTPS://Contoso.WebPubSub.Azure.com;AccessKey=k").unwrap();
    assert_eq!(cs.endpoint().as_str(), "https://contoso.webpubsub.azure.com");
}

#[test]
fn port_overrides_the_endpoint_port() {
    let cs = parse("Endpoint=http://localhost;Port=8080;AccessKey=k").unwrap();
    assert_eq!(cs.endpoint().as_str(), "http://localhost:8080");
    let cs = parse("Endpoint=https://a.example:9000/;Port=8443;AccessKey=k").unwrap();
    assert_eq!(cs.endpoint().as_str(), "https://a.example:8443");
    assert_eq!(cs.endpoint().port(), 8443);
    let cs = parse("Endpoint=https://a.example;Port=443;AccessKey=k").unwrap();
    assert_eq!(
        cs.endpoint().as_str(),
        "https://a.example",
        "a default port is not spelled out"
    );
    let cs = parse("Endpoint=https://a.example;Port=65535;AccessKey=k").unwrap();
    assert_eq!(cs.endpoint().port(), 65535);
}

#[test]
fn scheme_less_endpoint_means_https() {
    let cs = parse("Endpoint=contoso.webpubsub.azure.com;AccessKey=k").unwrap();
    assert_eq!(cs.endpoint().as_str(), "https://contoso.webpubsub.azure.com");
    let cs = parse("Endpoint=localhost:8080;AccessKey=k").unwrap();
    assert_eq!(cs.endpoint().as_str(), "https://localhost:8080");
}

#[test]
fn ipv6_hosts_work() {
    let cs = parse("Endpoint=http://[::1]:8080;AccessKey=k").unwrap();
    assert_eq!(cs.endpoint().websocket_base(), "ws://[::1]:8080");
    assert_eq!(cs.endpoint().host(), "[::1]");
}

#[test]
fn refuses_empty_input() {
    assert_eq!(parse("").unwrap_err(), ConnectionStringError::Empty);
    assert_eq!(parse(" ; ;").unwrap_err(), ConnectionStringError::Empty);
}

#[test]
fn refuses_malformed_duplicate_missing_and_empty_segments() {
    use ConnectionStringError::{DuplicateKey, EmptyValue, MalformedSegment, MissingKey};
    use ConnectionStringKey::{AccessKey, Endpoint, Port};
    let cases = [
        (
            "Endpoint=https://a.example;oops;AccessKey=k",
            MalformedSegment { position: 2 },
        ),
        (
            "Endpoint=https://a.example; =x;AccessKey=k",
            MalformedSegment { position: 2 },
        ),
        (
            "Endpoint=https://a.example;endpoint=https://b.example;AccessKey=k",
            DuplicateKey(Endpoint),
        ),
        (
            "Endpoint=https://a.example;AccessKey=k;accesskey=k2",
            DuplicateKey(AccessKey),
        ),
        (
            "Endpoint=https://a.example;AccessKey=k;Port=1;Port=2",
            DuplicateKey(Port),
        ),
        ("AccessKey=k", MissingKey(Endpoint)),
        ("Endpoint=https://a.example;Version=1.0", MissingKey(AccessKey)),
        ("Endpoint= ;AccessKey=k", EmptyValue(Endpoint)),
        ("Endpoint=https://a.example;AccessKey=", EmptyValue(AccessKey)),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(input).unwrap_err(), expected, "{input}");
    }
}

#[test]
fn refuses_unusable_endpoints() {
    use ConnectionStringError::{EndpointHasExtras, InvalidEndpoint, UnsupportedScheme};
    let cases = [
        (["https://", "http://exa mple.com", "https://[::1"], InvalidEndpoint),
        (["wss://a.example", "ftp://a.example", "file:///etc"], UnsupportedScheme),
        (
            ["https://u:p@a.example", "https://a.example?x=1", "https://a.example/#f"],
            EndpointHasExtras,
        ),
    ];
    for (endpoints, expected) in cases {
        for endpoint in endpoints {
            let input = format!("Endpoint={endpoint};AccessKey=k");
            assert_eq!(parse(&input).unwrap_err(), expected, "{endpoint}");
        }
    }
}

#[test]
fn refuses_bad_ports() {
    for port in ["0", "65536", "-1", "+80", "80a", "", "1.5"] {
        assert_eq!(
            parse(&format!("Endpoint=https://a.example;AccessKey=k;Port={port}")).unwrap_err(),
            ConnectionStringError::InvalidPort,
            "{port:?}"
        );
    }
}

#[test]
fn errors_never_contain_the_key() {
    let secret = "S3cr3tK3yValue==";
    let inputs = [
        format!("Endpoint=https://a.example;AccessKey={secret};AccessKey={secret}"),
        format!("AccessKey={secret}"),
        // A bare key without its `=` padding is a segment without `=`.
        format!(
            "{};Endpoint=https://a.example;AccessKey={secret}",
            secret.trim_end_matches('=')
        ),
        format!("Endpoint=https://{secret}:x@a.example;AccessKey={secret}"),
        format!("Endpoint=ftp://{secret};AccessKey={secret}"),
        format!("Endpoint=https://a.example;AccessKey={secret};Port={secret}"),
    ];
    for input in inputs {
        let error = parse(&input).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(secret.trim_end_matches('=')), "{shown}");
    }
}

#[test]
fn debug_of_a_parsed_string_hides_the_key() {
    let cs = parse(&format!("Endpoint=https://a.example;AccessKey={KEY}")).unwrap();
    let shown = format!("{cs:?}");
    assert!(!shown.contains(KEY) && shown.contains("https://a.example"), "{shown}");
}

#[test]
fn endpoint_parses_on_its_own() {
    assert_eq!(
        "https://A.example/".parse::<Endpoint>().unwrap().as_str(),
        "https://a.example"
    );
    assert_eq!(
        Endpoint::parse("  ").unwrap_err(),
        ConnectionStringError::EmptyValue(ConnectionStringKey::Endpoint)
    );
}

proptest! {
    #[test]
    fn never_panics_on_any_input(input in any::<String>()) {
        let _ = ConnectionString::parse(&input);
    }

    #[test]
    fn never_panics_on_near_valid_input(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("Endpoint=".to_owned()), Just("AccessKey=".to_owned()), Just("Port=".to_owned()),
                Just(";".to_owned()), Just("=".to_owned()), Just("https://".to_owned()),
                Just("http://[::1]".to_owned()), Just(":".to_owned()), Just("/".to_owned()),
                "[a-zA-Z0-9.:/@?#%\\[\\] ]{0,12}",
            ],
            0..12,
        )
    ) {
        let input = parts.concat();
        if let Ok(cs) = ConnectionString::parse(&input) {
            let endpoint = cs.endpoint();
            prop_assert!(endpoint.as_str().starts_with("http://") || endpoint.as_str().starts_with("https://"));
            prop_assert!(!endpoint.as_str().ends_with('/'));
            prop_assert!(endpoint.websocket_base().starts_with("ws"));
        }
    }
}
