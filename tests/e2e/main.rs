//! End-to-end tests: one test binary, real sockets on 127.0.0.1. Shared helpers live in `support`.

mod auth;
mod contract;
mod dev;
mod durable;
mod events;
mod host;
mod negotiate;
mod publish;
mod rest_client;
mod routes;
mod standin;
mod support;
