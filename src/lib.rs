//! # webpubsub-control
//!
//! An Azure Functions custom handler: one executable (`handler`) serving the HTTP functions `negotiate`,
//! `publish` and `events` in front of Azure Web PubSub. The Functions host forwards each request unchanged
//! (`enableForwardingHttpRequest`) to this server on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! Layout:
//! - [`config`]: the environment snapshot and the validated, immutable [`config::Settings`].
//! - [`error`]: [`error::ApiError`], the JSON error every route answers with, and rejection recovery.
//! - [`request`]: shared request plumbing (bounded bodies, the host's invocation id).
//! - [`telemetry`]: `tracing` to stdout, text or JSON.
//! - [`auth`]: caller identity (App Service headers, bearer JWT, anonymous), rights templates, rate limit.
//! - [`webpubsub`]: the Web PubSub core — connection strings, client tokens, upstream signatures, REST client.
//! - [`functions`]: one module per function (`negotiate`, `publish`, `events`).
//!   Applications plug their own event handling into `events` with [`functions::events::EventHandler`] and [`server::App::with_event_handler`].
//! - [`server`]: route assembly, readiness probe, `run(listener, app, shutdown)`.
//! - `dev` (feature `dev`): `handler dev`, the handler wired to the embedded local emulator.
//!
//! The binary (`src/main.rs`) only reads the environment, builds [`server::App`] and calls [`server::run`].

// Lets `src/testing.rs` name this crate `webpubsub_control::…` both here and where the e2e tests include it.
extern crate self as webpubsub_control;

pub mod auth;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod error;
pub mod functions;
pub mod identity;
pub mod request;
pub mod server;
pub mod telemetry;
pub mod webpubsub;

#[cfg(test)]
mod testing;
