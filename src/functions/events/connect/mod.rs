//! The `connect` event (protocol reference §4): its request body, the configured policy that drafts an
//! answer (subprotocol, user id, default groups and roles), the final checks after the application's hook,
//! and the reply: 204, 200 JSON, or a rejection (plain JSON error, or MQTT reason codes for MQTT clients).
//!
//! The body is borrowed from the request bytes where JSON allows it, and parsed leniently where the service's
//! shapes are loose (a claim may be a string or a list; odd values are skipped, never a 500).
//!
//! Layout: `body` (the zero-copy request body types), `policy` (the settings' draft and the final checks),
//! `reply` (204 / 200 JSON, and rejections with MQTT reason codes), `tests`.

mod body;
mod policy;
mod reply;

pub use body::ConnectBody;
pub use policy::ConnectResponse;
pub(crate) use policy::{draft, finish};
pub(super) use reply::rejection;

use super::policy::VerifiedEvent;

/// A verified `connect` request: the event metadata and its parsed body. Handed to
/// [`super::EventHandler::on_connect`].
#[derive(Debug)]
pub struct ConnectRequest<'a> {
    /// The verified CloudEvents metadata (hub, connection id, user).
    pub event: &'a VerifiedEvent,
    /// The parsed `connect` body (claims, query, subprotocols, certificates).
    pub body: ConnectBody<'a>,
}

#[cfg(test)]
mod tests;
