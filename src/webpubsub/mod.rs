//! Web PubSub core: connection strings, access keys, client access tokens, upstream `ce-signature`
//! checks, input validation and the REST data-plane client.
//!
//! Build the pieces once at startup from a parsed [`ConnectionString`]; all of them are cheap to share:
//! - [`ClientAccessIssuer`] issues client URLs and tokens (`negotiate`).
//! - [`RestClient`] drives every data-plane operation (`publish`).
//! - [`ServiceKeys`] with [`signature::verify`] authenticates upstream events (`events`).
//!
//! Inputs are checked by [`validate`] before anything is signed or sent. [`ServiceSettings`] holds the
//! configured service (connection strings and the [`Hubs`] served, the one hub resolver).
//!
//! The protocol itself (keys, tokens, signatures, names, roles, client types, the REST operation table)
//! lives in the `webpubsub-protocol` crate, shared with the emulator; the modules here re-export it
//! under the paths the handler has always used, and add the REST client (reqwest) on top.

pub mod connection_string;
pub mod keys;
pub mod rest;
mod service;
pub mod signature;
pub mod token;
pub mod validate;

pub use connection_string::{ConnectionString, ConnectionStringError, ConnectionStringKey, Endpoint};
pub use keys::{AccessKey, EmptyAccessKey, ServiceKeys};
pub use rest::{
    ApiRequest, CloseOptions, ContentType, Delivery, GenerateTokenOptions, GroupConnectionsPage, GroupMember,
    ListConnectionsOptions, Message, Operation, RestClient, RestClientInitError, RestError, RestOptions, RetryPolicy,
    SendOptions, ServiceError,
};
pub use service::{HubRefusal, Hubs, ServiceSettings};
pub use signature::SignatureError;
pub use token::{ClientAccess, ClientAccessIssuer, ClientAccessRequest, ClientType};
pub use validate::{Permission, ValidationError};
