//! # webpubsub-control
//!
//! An Azure Functions custom handler: one executable (`handler`) serving the HTTP functions `negotiate`,
//! `publish` and `events` in front of Azure Web PubSub. The Functions host forwards each request unchanged
//! (`enableForwardingHttpRequest`) to this server on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! Public surface (what an embedder uses, re-exported here): [`Settings`] read from an [`Env`] snapshot
//! (failing with [`ConfigError`]), the [`App`] builder, [`run`] / [`run_with_limits`] (within [`Limits`])
//! and [`shutdown_signal`]; the [`EventHandler`] family for an application's own event logic
//! ([`App::with_event_handler`]); [`ApiError`], the JSON error every route answers with; the [`FUNCTIONS`]
//! table and the served OpenAPI document ([`OPENAPI_DOCUMENT`]); [`JwtSettings`] / [`JwtValidator`]. Public
//! modules: [`telemetry`], [`webpubsub`] (REST client, client tokens, signatures), [`store`] (the durable
//! store) and `dev` (feature `dev`). Everything else is private to the crate.
//!
//! Layout:
//! - `config`: the leaf every module reads its settings from: the environment snapshot ([`Env`]) and
//!   [`ConfigError`]. It imports nothing from the crate.
//! - `error`: [`ApiError`], the JSON error every route answers with, and rejection recovery.
//! - `request`: shared request plumbing (bounded bodies, the host's invocation id).
//! - [`telemetry`]: `tracing` to stdout, text or JSON.
//! - `auth`: caller identity (App Service headers, bearer JWT, anonymous) behind one `SharedAuth`
//!   (the `Auth*` settings read once, one JWT validator and JWKS cache), rights templates, rate limit.
//! - [`webpubsub`]: the Web PubSub core — the service settings (`ServiceSettings`, with the one
//!   hub resolver `Hubs`), connection strings, client tokens, upstream signatures, REST client.
//! - `functions`: one folder per function (`negotiate`, `publish`, `events`, `openapi` serving the
//!   contract; the durable `manage`, `conversations`, `notifications`, `sync` and `outbox`, with what they
//!   share in `durable`), one shape: `mod.rs` (its
//!   `Settings`, its `State` built from them and the service settings, the route, a few-line handler), then
//!   private `request`, `policy`, `reply` and `tests` modules; public names are re-exported once. Handlers
//!   verify the caller, then read the body, and answer every domain error as a reply.
//!   Applications plug their own event handling into `events` with [`EventHandler`] and
//!   `App::new(settings)?.with_event_handler(handler)` ([`App::with_event_handler`]).
//! - `server`: the app's [`Settings`] (every module's, from one snapshot), the [`App`]
//!   builder, route assembly, readiness probe, `run(listener, app, shutdown)`.
//! - `http_client`: outbound HTTP clients built in the background, off the start-up path.
//! - `connections`: the HTTP/1 connection loop under the routes, every client-held resource bounded
//!   ([`Limits`]).
//! - [`store`]: the durable store (SQLite or PostgreSQL through one sqlx pool, embedded migrations).
//! - `identity`: keyless operation (#18): identity-mode settings, the managed-identity token source, the
//!   Entra check of upstream requests.
//! - `dev` (feature `dev`): `handler dev`, the handler wired to the embedded local emulator (`src/dev/`:
//!   start and stop, then the flags, the handler's environment, the store, the banner, the chat page).
//!
//! Test helpers shared by the unit and e2e tests (loopback server, log capture) are the dev-only
//! `test-support` crate; benchmark programs live under `bench/` and `benches/`, not in the library.
//!
//! Imports point one way: `config` ← `webpubsub`, `auth`, `telemetry` ← `functions` ← `server` ← `dev`, `main`.
//!
//! The binary (`src/main.rs`) only reads the environment, builds [`App`] and calls [`run`].

mod auth;
mod config;
mod connections;
#[cfg(feature = "dev")]
pub mod dev;
mod error;
mod functions;
mod http_client;
mod identity;
mod request;
mod server;
pub mod store;
pub mod telemetry;
pub mod webpubsub;

pub use auth::{JwtSettings, JwtValidator};
pub use config::{ConfigError, Env};
pub use connections::Limits;
pub use error::ApiError;
pub use functions::events::{
    CloudEvent, ConnectBody, ConnectRequest, ConnectResponse, ConnectionState, DataType, EventHandler, EventKind,
    HookFuture, UserEventReply, UserMessage, VerifiedEvent,
};
pub use functions::openapi::DOCUMENT as OPENAPI_DOCUMENT;
pub use functions::{FUNCTIONS, FunctionRoute};
pub use server::{App, Settings, run, run_with_limits, shutdown_signal};
