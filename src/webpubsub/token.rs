//! Client access URLs and tokens: re-exported from the protocol crate
//! ([`webpubsub_protocol::client_access`], [`webpubsub_protocol::clients`]), where the known-answer
//! vectors from the official SDKs check them.

pub use webpubsub_protocol::client_access::*;
pub use webpubsub_protocol::clients::ClientType;
