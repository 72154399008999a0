//! Client types and their endpoints: the default WebSocket client, MQTT and Socket.IO, each with
//! its own path (`/client/hubs/{hub}`, `/clients/mqtt/hubs/{hub}`, `/clients/socketio/hubs/{hub}`),
//! which is also the `aud` of the client's access token (on the http(s) form of the endpoint).

use std::fmt;
use std::str::FromStr;

use crate::names::ValidationError;

/// Which client endpoint the token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClientType {
    /// WebSocket clients: `/client/hubs/{hub}`.
    #[default]
    Default,
    /// MQTT clients: `/clients/mqtt/hubs/{hub}`.
    Mqtt,
    /// Web PubSub for Socket.IO: `/clients/socketio/hubs/{hub}`.
    SocketIo,
}

impl ClientType {
    /// The path before the hub name, e.g. `/client/hubs/`.
    pub fn path_prefix(self) -> &'static str {
        match self {
            Self::Default => "/client/hubs/",
            Self::Mqtt => "/clients/mqtt/hubs/",
            Self::SocketIo => "/clients/socketio/hubs/",
        }
    }

    /// The REST `clientType` value: `Default`, `MQTT` or `SocketIO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "Default",
            Self::Mqtt => "MQTT",
            Self::SocketIo => "SocketIO",
        }
    }
}

impl FromStr for ClientType {
    type Err = ValidationError;

    /// Parses `Default`, `MQTT` or `SocketIO`, ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Default, Self::Mqtt, Self::SocketIo]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
            .ok_or(ValidationError::UnknownClientType)
    }
}

impl fmt::Display for ClientType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `aud` claim of a client token: `endpoint` (http(s), no trailing `/`) + path prefix + hub.
pub fn audience(endpoint: &str, client_type: ClientType, hub: &str) -> String {
    [endpoint.trim_end_matches('/'), client_type.path_prefix(), hub].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_type_has_its_own_path() {
        assert_eq!(
            audience("https://a.example/", ClientType::Default, "h"),
            "https://a.example/client/hubs/h"
        );
        assert_eq!(
            audience("http://x", ClientType::Mqtt, "h"),
            "http://x/clients/mqtt/hubs/h"
        );
        assert_eq!(
            audience("http://x", ClientType::SocketIo, "h"),
            "http://x/clients/socketio/hubs/h"
        );
    }

    #[test]
    fn client_type_parses_case_insensitively_and_prints_the_rest_spelling() {
        assert_eq!("mqtt".parse::<ClientType>(), Ok(ClientType::Mqtt));
        assert_eq!("socketio".parse::<ClientType>(), Ok(ClientType::SocketIo));
        assert_eq!("DEFAULT".parse::<ClientType>(), Ok(ClientType::Default));
        assert_eq!("ws".parse::<ClientType>(), Err(ValidationError::UnknownClientType));
        assert_eq!(ClientType::SocketIo.to_string(), "SocketIO");
    }
}
