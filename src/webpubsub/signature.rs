//! The upstream `ce-signature` header: re-exported from the protocol crate
//! ([`webpubsub_protocol::signature`]), which the local emulator signs with too.

pub use webpubsub_protocol::signature::*;
