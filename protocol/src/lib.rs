//! The Azure Web PubSub protocol, written once and shared by the handler and the local emulator:
//! plain values and pure functions, no I/O, no HTTP client or server.
//!
//! - [`keys`]: access keys (redacted `Debug`) with prepared HMAC states; [`connection_string`] parsing.
//! - [`jwt`]: HS256 signing and verification of client and REST tokens.
//! - [`signature`]: the upstream `ce-signature` header, computed and checked in constant time.
//! - [`names`]: hub, group, event name and id rules; [`roles`]: permissions and the one role parser.
//! - [`clients`]: client types (default, MQTT, Socket.IO) and their paths and token audiences;
//!   [`client_access`]: client URLs and access tokens, byte-identical to the official SDKs'.
//! - [`data_type`]: the `text` / `json` / `binary` data types and their content types.
//! - [`cloudevents`]: upstream event header names; [`operations`]: the REST operation table.
//! - [`time`]: RFC 3339 formatting; [`WEBPUBSUB_RESOURCE`]: the Entra audience of the data plane.

pub mod client_access;
pub mod clients;
pub mod cloudevents;
pub mod connection_string;
pub mod data_type;
pub mod jwt;
pub mod keys;
pub mod names;
pub mod operations;
pub mod roles;
pub mod signature;
pub mod time;

pub use client_access::{ClientAccess, ClientAccessIssuer, ClientAccessRequest};
pub use clients::ClientType;
pub use connection_string::{ConnectionString, ConnectionStringError, ConnectionStringKey, Endpoint};
pub use data_type::DataType;
pub use keys::{AccessKey, EmptyAccessKey, ServiceKeys};
pub use names::ValidationError;
pub use operations::{Operation, RouteError};
pub use roles::{Permission, RoleSet};
pub use signature::SignatureError;

/// The Web PubSub data-plane audience in Entra ID (a v1 resource; scope = this + `/.default`): what a
/// keyless handler asks its identity for, and what the service (the emulator) accepts as a bearer's `aud`.
pub const WEBPUBSUB_RESOURCE: &str = "https://webpubsub.azure.com";
