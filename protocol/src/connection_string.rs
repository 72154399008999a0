//! Web PubSub connection strings (`Endpoint=…;AccessKey=…;Version=1.0;`, protocol reference §1) and the
//! normalised service [`Endpoint`] they carry.
//!
//! Parsing rules: segments split on `;`, each at its first `=` (keys are base64 and contain `=`); keys
//! case-insensitive; keys and values trimmed; empty segments skipped; `Version` and unknown keys
//! ignored; `Port` (1–65535) overrides the endpoint's port; a scheme-less endpoint means `https://`.
//! Every failure is a [`ConnectionStringError`] that names the problem and never quotes the input, so
//! it cannot leak the key.

use std::fmt;
use std::str::FromStr;

use url::Url;

use crate::keys::AccessKey;

/// A parsed connection string: the service endpoint and its access key.
#[derive(Clone, Debug)]
pub struct ConnectionString {
    endpoint: Endpoint,
    access_key: AccessKey,
}

/// The keys this parser understands, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStringKey {
    Endpoint,
    AccessKey,
    Port,
}

impl fmt::Display for ConnectionStringKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Endpoint => "Endpoint",
            Self::AccessKey => "AccessKey",
            Self::Port => "Port",
        })
    }
}

/// Why a connection string was refused. Messages never contain any part of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringError {
    #[error("connection string is empty")]
    Empty,
    #[error("connection string segment {position} is not of the form Key=Value")]
    MalformedSegment {
        /// 1-based position among the `;`-separated segments.
        position: usize,
    },
    #[error("connection string sets {0} more than once")]
    DuplicateKey(ConnectionStringKey),
    #[error("connection string has no {0}")]
    MissingKey(ConnectionStringKey),
    #[error("connection string {0} is empty")]
    EmptyValue(ConnectionStringKey),
    #[error("connection string Endpoint is not a valid URL")]
    InvalidEndpoint,
    #[error("connection string Endpoint must use http or https")]
    UnsupportedScheme,
    #[error("connection string Endpoint must not contain credentials, a query or a fragment")]
    EndpointHasExtras,
    #[error("connection string Port must be a whole number from 1 to 65535")]
    InvalidPort,
}

impl ConnectionString {
    /// Parses a connection string.
    pub fn parse(input: &str) -> Result<Self, ConnectionStringError> {
        let mut endpoint = None;
        let mut access_key = None;
        let mut port = None;
        let mut saw_segment = false;

        for (index, segment) in input.split(';').enumerate() {
            if segment.trim().is_empty() {
                continue;
            }
            saw_segment = true;
            let position = index + 1;
            let (key, value) = segment
                .split_once('=')
                .ok_or(ConnectionStringError::MalformedSegment { position })?;
            let (key, value) = (key.trim(), value.trim());
            let (slot, which) = if key.eq_ignore_ascii_case("endpoint") {
                (&mut endpoint, ConnectionStringKey::Endpoint)
            } else if key.eq_ignore_ascii_case("accesskey") {
                (&mut access_key, ConnectionStringKey::AccessKey)
            } else if key.eq_ignore_ascii_case("port") {
                (&mut port, ConnectionStringKey::Port)
            } else if key.is_empty() {
                return Err(ConnectionStringError::MalformedSegment { position });
            } else {
                // `Version` and keys of other products (e.g. SignalR's `AuthType`) carry nothing for us.
                continue;
            };
            if slot.replace(value).is_some() {
                return Err(ConnectionStringError::DuplicateKey(which));
            }
        }

        if !saw_segment {
            return Err(ConnectionStringError::Empty);
        }
        let endpoint = required(endpoint, ConnectionStringKey::Endpoint)?;
        let access_key = required(access_key, ConnectionStringKey::AccessKey)?;
        let port = port.map(parse_port).transpose()?;
        let endpoint = Endpoint::build(endpoint, port)?;
        let access_key = AccessKey::new(access_key)
            .map_err(|_| ConnectionStringError::EmptyValue(ConnectionStringKey::AccessKey))?;
        Ok(Self { endpoint, access_key })
    }

    /// The service endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The access key.
    pub fn access_key(&self) -> &AccessKey {
        &self.access_key
    }

    /// Splits into endpoint and key.
    pub fn into_parts(self) -> (Endpoint, AccessKey) {
        (self.endpoint, self.access_key)
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

fn required(value: Option<&str>, key: ConnectionStringKey) -> Result<&str, ConnectionStringError> {
    match value {
        None => Err(ConnectionStringError::MissingKey(key)),
        Some("") => Err(ConnectionStringError::EmptyValue(key)),
        Some(value) => Ok(value),
    }
}

fn parse_port(value: &str) -> Result<u16, ConnectionStringError> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(ConnectionStringError::InvalidPort),
    }
}

/// A Web PubSub service endpoint, normalised: lowercase `http`/`https` scheme and host, the port only
/// when it is not the scheme's default, any base path kept, no trailing `/`.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host[:port][/base]`
    http: String,
    /// `wss://host[:port][/base]` (or `ws://` for plain http)
    websocket: String,
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses a bare endpoint URL (as found in a connection string's `Endpoint`).
    pub fn parse(endpoint: &str) -> Result<Self, ConnectionStringError> {
        match endpoint.trim() {
            "" => Err(ConnectionStringError::EmptyValue(ConnectionStringKey::Endpoint)),
            trimmed => Self::build(trimmed, None),
        }
    }

    fn build(endpoint: &str, port: Option<u16>) -> Result<Self, ConnectionStringError> {
        let parsed = if endpoint.contains("://") {
            Url::parse(endpoint)
        } else {
            Url::parse(&format!("https://{endpoint}"))
        };
        let mut url = parsed.map_err(|_| ConnectionStringError::InvalidEndpoint)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConnectionStringError::UnsupportedScheme);
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(ConnectionStringError::EndpointHasExtras);
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(ConnectionStringError::InvalidEndpoint),
        };
        if let Some(port) = port {
            url.set_port(Some(port))
                .map_err(|()| ConnectionStringError::InvalidEndpoint)?;
        }
        let port = url
            .port_or_known_default()
            .ok_or(ConnectionStringError::InvalidEndpoint)?;
        let http = url.as_str().trim_end_matches('/').to_owned();
        let websocket = format!("ws{}", &http[4..]);
        Ok(Self {
            http,
            websocket,
            host,
            port,
        })
    }

    /// The http(s) form, e.g. `https://contoso.webpubsub.azure.com` (no trailing slash). REST paths and
    /// client token audiences start with this.
    pub fn as_str(&self) -> &str {
        &self.http
    }

    /// The WebSocket form, e.g. `wss://contoso.webpubsub.azure.com`; client URLs start with this.
    pub fn websocket_base(&self) -> &str {
        &self.websocket
    }

    /// The lowercase host name without port, e.g. for matching `WebHook-Request-Origin`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the endpoint uses TLS.
    pub fn is_https(&self) -> bool {
        self.http.starts_with("https:")
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.http).finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http)
    }
}

impl FromStr for Endpoint {
    type Err = ConnectionStringError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

#[cfg(test)]
mod tests {
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
        let cs =
            parse(";;Endpoint=https://a.example;; ;AuthType=aad;Version=1.0;ClientEndpoint=x;AccessKey=k;").unwrap();
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
    fn refuses_a_segment_without_equals() {
        assert_eq!(
            parse("Endpoint=https://a.example;oops;AccessKey=k").unwrap_err(),
            ConnectionStringError::MalformedSegment { position: 2 }
        );
    }

    #[test]
    fn refuses_a_segment_without_a_key_name() {
        assert_eq!(
            parse("Endpoint=https://a.example; =x;AccessKey=k").unwrap_err(),
            ConnectionStringError::MalformedSegment { position: 2 }
        );
    }

    #[test]
    fn refuses_duplicate_keys() {
        assert_eq!(
            parse("Endpoint=https://a.example;endpoint=https://b.example;AccessKey=k").unwrap_err(),
            ConnectionStringError::DuplicateKey(ConnectionStringKey::Endpoint)
        );
        assert_eq!(
            parse("Endpoint=https://a.example;AccessKey=k;accesskey=k2").unwrap_err(),
            ConnectionStringError::DuplicateKey(ConnectionStringKey::AccessKey)
        );
        assert_eq!(
            parse("Endpoint=https://a.example;AccessKey=k;Port=1;Port=2").unwrap_err(),
            ConnectionStringError::DuplicateKey(ConnectionStringKey::Port)
        );
    }

    #[test]
    fn refuses_missing_endpoint_or_key() {
        assert_eq!(
            parse("AccessKey=k").unwrap_err(),
            ConnectionStringError::MissingKey(ConnectionStringKey::Endpoint)
        );
        assert_eq!(
            parse("Endpoint=https://a.example;Version=1.0").unwrap_err(),
            ConnectionStringError::MissingKey(ConnectionStringKey::AccessKey)
        );
    }

    #[test]
    fn refuses_empty_values() {
        assert_eq!(
            parse("Endpoint= ;AccessKey=k").unwrap_err(),
            ConnectionStringError::EmptyValue(ConnectionStringKey::Endpoint)
        );
        assert_eq!(
            parse("Endpoint=https://a.example;AccessKey=").unwrap_err(),
            ConnectionStringError::EmptyValue(ConnectionStringKey::AccessKey)
        );
    }

    #[test]
    fn refuses_an_unparseable_endpoint() {
        for endpoint in ["https://", "http://exa mple.com", "https://[::1"] {
            assert_eq!(
                parse(&format!("Endpoint={endpoint};AccessKey=k")).unwrap_err(),
                ConnectionStringError::InvalidEndpoint,
                "{endpoint}"
            );
        }
    }

    #[test]
    fn refuses_other_schemes() {
        for endpoint in ["wss://a.example", "ftp://a.example", "file:///etc"] {
            assert_eq!(
                parse(&format!("Endpoint={endpoint};AccessKey=k")).unwrap_err(),
                ConnectionStringError::UnsupportedScheme,
                "{endpoint}"
            );
        }
    }

    #[test]
    fn refuses_credentials_query_or_fragment_in_the_endpoint() {
        for endpoint in ["https://u:p@a.example", "https://a.example?x=1", "https://a.example/#f"] {
            assert_eq!(
                parse(&format!("Endpoint={endpoint};AccessKey=k")).unwrap_err(),
                ConnectionStringError::EndpointHasExtras,
                "{endpoint}"
            );
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
}
