//! Connection strings: re-exported from the protocol crate ([`webpubsub_protocol::connection_string`]).

pub use webpubsub_protocol::connection_string::*;
