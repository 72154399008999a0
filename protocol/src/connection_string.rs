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
    /// `Endpoint=`: the service URL.
    Endpoint,
    /// `AccessKey=`: the key that signs tokens and requests.
    AccessKey,
    /// `Port=`: overrides the endpoint's port.
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
    /// Nothing but whitespace or `;`.
    #[error("connection string is empty")]
    Empty,
    /// A segment without `=`, or with an empty key.
    #[error("connection string segment {position} is not of the form Key=Value")]
    MalformedSegment {
        /// 1-based position among the `;`-separated segments.
        position: usize,
    },
    /// A key appears twice.
    #[error("connection string sets {0} more than once")]
    DuplicateKey(ConnectionStringKey),
    /// A required key is absent.
    #[error("connection string has no {0}")]
    MissingKey(ConnectionStringKey),
    /// A key has an empty value.
    #[error("connection string {0} is empty")]
    EmptyValue(ConnectionStringKey),
    /// The endpoint does not parse as a URL.
    #[error("connection string Endpoint is not a valid URL")]
    InvalidEndpoint,
    /// The endpoint's scheme is neither `http` nor `https`.
    #[error("connection string Endpoint must use http or https")]
    UnsupportedScheme,
    /// The endpoint carries user info, a query or a fragment.
    #[error("connection string Endpoint must not contain credentials, a query or a fragment")]
    EndpointHasExtras,
    /// The port is not a number from 1 to 65535.
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
mod tests;
