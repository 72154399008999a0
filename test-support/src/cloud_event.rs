//! Upstream CloudEvent requests as Web PubSub sends them (the CloudEvents HTTP binding): one builder for the
//! handler's unit tests, the e2e tests and the emulator's tests. Header names and the `ce-signature` value come
//! from the protocol crate, so a test signs exactly as the service does.

use warp::http::{HeaderMap, HeaderName, HeaderValue};
use webpubsub_protocol::cloudevents as ce;
use webpubsub_protocol::{AccessKey, ServiceKeys, signature};

/// The `WebHook-Request-Origin` a default event carries.
pub const ORIGIN: &str = "contoso.webpubsub.azure.com";

/// The headers of one upstream event, in the order the service sends them; build with [`CloudEvent::new`],
/// adjust, then sign with [`CloudEvent::signed`] (or set a known-answer `ce-signature` with [`CloudEvent::set`]).
#[derive(Clone, Debug)]
pub struct CloudEvent {
    headers: Vec<(&'static str, String)>,
}

impl CloudEvent {
    /// A well-formed, unsigned event of `event_type` (e.g. `azure.webpubsub.sys.connect`; its name is the last
    /// segment): id `1`, hub `chat`, connection `conn-1`, user `alice`, time `2024-01-01T00:00:00Z`, origin
    /// [`ORIGIN`].
    pub fn new(event_type: &str) -> Self {
        let name = event_type.rsplit('.').next().unwrap_or(event_type);
        let (hub, connection_id) = ("chat", "conn-1");
        Self {
            headers: vec![
                (ce::SPEC_VERSION, ce::SPEC_VERSION_VALUE.into()),
                (ce::AWPS_VERSION, ce::AWPS_VERSION_VALUE.into()),
                (ce::TYPE, event_type.into()),
                (ce::EVENT_NAME, name.into()),
                (ce::ID, "1".into()),
                (ce::SOURCE, ce::source(hub, connection_id)),
                (ce::TIME, "2024-01-01T00:00:00Z".into()),
                (ce::HUB, hub.into()),
                (ce::CONNECTION_ID, connection_id.into()),
                (ce::USER_ID, "alice".into()),
                (ce::WEBHOOK_REQUEST_ORIGIN, ORIGIN.into()),
            ],
        }
    }

    /// Sets header `name` (lowercase, a [`ce`] constant) to `value`, replacing it or adding it last.
    pub fn set(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.headers.iter_mut().find(|(header, _)| *header == name) {
            Some((_, old)) => *old = value,
            None => self.headers.push((name, value)),
        }
        self
    }

    /// Removes the headers named in `names` (in any case, as HTTP reads them).
    pub fn without(mut self, names: &[&str]) -> Self {
        self.headers
            .retain(|(name, _)| !names.iter().any(|skip| skip.eq_ignore_ascii_case(name)));
        self
    }

    /// The event from connection `connection_id` on `hub` (`ce-hub`, `ce-connectionId` and `ce-source`).
    pub fn connection(self, hub: &str, connection_id: &str) -> Self {
        self.set(ce::HUB, hub)
            .set(ce::CONNECTION_ID, connection_id)
            .set(ce::SOURCE, ce::source(hub, connection_id))
    }

    /// `ce-userId`.
    pub fn user(self, user_id: &str) -> Self {
        self.set(ce::USER_ID, user_id)
    }

    /// `ce-eventName` (by default the last segment of the type).
    pub fn event_name(self, name: &str) -> Self {
        self.set(ce::EVENT_NAME, name)
    }

    /// The value of header `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }

    /// Signed with `key`, as the service signs: `ce-signature: sha256=<HMAC of the connection id>`.
    pub fn signed(self, key: &AccessKey) -> Self {
        let value = signature::sign(key, self.get(ce::CONNECTION_ID).unwrap_or_default());
        self.set(ce::SIGNATURE, value)
    }

    /// Signed with every key of `keys` (one `sha256=` value each, comma-separated), as during key rotation.
    pub fn signed_with_keys(self, keys: &ServiceKeys) -> Self {
        let value = signature::signature_header(keys, self.get(ce::CONNECTION_ID).unwrap_or_default());
        self.set(ce::SIGNATURE, value)
    }

    /// The headers as `(name, value)` pairs, in order.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The headers as a [`HeaderMap`].
    pub fn header_map(&self) -> HeaderMap {
        self.headers
            .iter()
            .map(|(name, value)| {
                let value = HeaderValue::from_str(value).expect("a test header value is visible ASCII");
                (HeaderName::from_static(name), value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_event_is_named_after_its_type_and_comes_from_its_connection() {
        let event = CloudEvent::new("azure.webpubsub.sys.connect");
        assert_eq!(event.get(ce::EVENT_NAME), Some("connect"));
        assert_eq!(event.get(ce::SOURCE), Some("/hubs/chat/client/conn-1"));
        assert_eq!(event.get(ce::SIGNATURE), None);
        let moved = event.connection("room", "c9");
        assert_eq!(moved.get(ce::SOURCE), Some("/hubs/room/client/c9"));
        assert_eq!(moved.get(ce::HUB), Some("room"));
    }

    #[test]
    fn signing_matches_the_protocol_and_set_replaces_in_place() {
        let key = AccessKey::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH").unwrap();
        let event = CloudEvent::new("azure.webpubsub.user.message").signed(&key);
        assert_eq!(event.get(ce::SIGNATURE), Some(signature::sign(&key, "conn-1").as_str()));
        let count = event.headers().len();
        let event = event.set(ce::ID, "7").without(&["ce-Time"]);
        assert_eq!((event.get(ce::ID), event.headers().len()), (Some("7"), count - 1));
        assert_eq!(event.header_map().get("ce-id").unwrap(), "7");
    }
}
