//! The CloudEvents HTTP binding of upstream events (protocol reference §4): header names, the
//! `ce-type` prefixes and the `ce-specversion` / `ce-awpsversion` values the service sends.
//!
//! Header names are lowercase (HTTP/2 form, and what `http::HeaderName::from_static` needs); the
//! service's own spelling (`ce-connectionId`) matches case-insensitively.

/// `ce-specversion`: always [`SPEC_VERSION_VALUE`].
pub const SPEC_VERSION: &str = "ce-specversion";
/// `ce-awpsversion`: always [`AWPS_VERSION_VALUE`].
pub const AWPS_VERSION: &str = "ce-awpsversion";
/// `ce-id`: unique per event.
pub const ID: &str = "ce-id";
/// `ce-source`: `/hubs/{hub}/client/{connectionId}`.
pub const SOURCE: &str = "ce-source";
/// `ce-type`: [`SYSTEM_EVENT_PREFIX`] or [`USER_EVENT_PREFIX`] then the event name.
pub const TYPE: &str = "ce-type";
/// `ce-time`: RFC 3339 UTC.
pub const TIME: &str = "ce-time";
/// `ce-hub`.
pub const HUB: &str = "ce-hub";
/// `ce-connectionId`.
pub const CONNECTION_ID: &str = "ce-connectionid";
/// `ce-eventName`.
pub const EVENT_NAME: &str = "ce-eventname";
/// `ce-userId`, when the connection has a user.
pub const USER_ID: &str = "ce-userid";
/// `ce-subprotocol`, when the connection chose one.
pub const SUBPROTOCOL: &str = "ce-subprotocol";
/// `ce-connectionState`: opaque state set by the upstream, echoed back on later events.
pub const CONNECTION_STATE: &str = "ce-connectionstate";
/// `ce-signature`: see [`crate::signature`].
pub const SIGNATURE: &str = "ce-signature";
/// `ce-physicalConnectionId` (Socket.IO).
pub const PHYSICAL_CONNECTION_ID: &str = "ce-physicalconnectionid";
/// `ce-sessionId` (Socket.IO).
pub const SESSION_ID: &str = "ce-sessionid";
/// `WebHook-Request-Origin`: the abuse-protection handshake (`OPTIONS`) and every event.
pub const WEBHOOK_REQUEST_ORIGIN: &str = "webhook-request-origin";

/// The value of `ce-specversion`.
pub const SPEC_VERSION_VALUE: &str = "1.0";
/// The value of `ce-awpsversion`.
pub const AWPS_VERSION_VALUE: &str = "1.0";
/// `ce-type` of system events (`connect`, `connected`, `disconnected`).
pub const SYSTEM_EVENT_PREFIX: &str = "azure.webpubsub.sys.";
/// `ce-type` of user events.
pub const USER_EVENT_PREFIX: &str = "azure.webpubsub.user.";

/// `ce-source` for a connection.
pub fn source(hub: &str, connection_id: &str) -> String {
    format!("/hubs/{hub}/client/{connection_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_lowercase_ce_headers() {
        for name in [
            SPEC_VERSION,
            AWPS_VERSION,
            ID,
            SOURCE,
            TYPE,
            TIME,
            HUB,
            CONNECTION_ID,
            EVENT_NAME,
            USER_ID,
            SUBPROTOCOL,
            CONNECTION_STATE,
            SIGNATURE,
            PHYSICAL_CONNECTION_ID,
            SESSION_ID,
        ] {
            assert!(name.starts_with("ce-") && name == name.to_ascii_lowercase(), "{name}");
        }
    }

    #[test]
    fn source_names_hub_and_connection() {
        assert_eq!(source("chat", "c1"), "/hubs/chat/client/c1");
    }
}
