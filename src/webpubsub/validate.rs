//! Input rules for Web PubSub names, ids, messages and options, and the group permissions: re-exported
//! from the protocol crate ([`webpubsub_protocol::names`], [`webpubsub_protocol::roles`]), where the
//! emulator judges its input by the same rules.

pub use webpubsub_protocol::names::*;
pub use webpubsub_protocol::roles::Permission;
