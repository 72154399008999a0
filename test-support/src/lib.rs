//! Test helpers shared by the handler's unit tests, its e2e tests and the emulator's tests, in one place
//! instead of copies:
//!
//! - [`serve`]: a warp route on a loopback server (`127.0.0.1:0`) that stops when its [`Loopback`] drops;
//! - [`capture_logs`]: this thread's log lines, with [`Captured::line`] to find the line of an event and
//!   [`assert_fields`] to check what it says;
//! - [`reply_json`]: a whole request through a warp filter (no sockets), read back as a [`JsonReply`];
//! - [`CloudEvent`]: an upstream event's headers as the service sends them, signed with the protocol crate;
//! - [`recorder`]: a scripted stand-in HTTP server that records every request;
//! - [`tokens`]: the RSA test keys, RS256/HS256 tokens, JWKS documents and a [`tokens::JwksServer`];
//! - [`token_endpoint`]: a scripted managed-identity token endpoint ([`token_endpoint::TokenServer`]);
//! - [`postgres`]: a fresh database in the test PostgreSQL ([`postgres::fresh_database`]).
//!
//! A dev-dependency only (`publish = false`). It depends on third-party crates and the protocol crate alone,
//! never on the handler or the emulator, so their own unit tests can use it too; the handler passes in what is
//! its own (the log field formatter).

mod cloud_event;
mod logs;
pub mod postgres;
pub mod recorder;
mod routes;
mod server;
pub mod token_endpoint;
pub mod tokens;

pub use cloud_event::{CloudEvent, ORIGIN};
pub use logs::{Captured, assert_fields, capture_logs};
pub use routes::{JsonReply, reply_json};
pub use server::{Loopback, serve};
