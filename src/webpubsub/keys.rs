//! Access keys: re-exported from the protocol crate ([`webpubsub_protocol::keys`]), where they are
//! defined once for the handler and the emulator.

pub use webpubsub_protocol::keys::*;
