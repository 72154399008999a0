//! End-to-end tests: one test binary, real sockets on 127.0.0.1. Shared helpers live in `support`.

mod auth;
mod connections;
mod contract;
mod dev;
mod durable;
mod durable_faults;
mod durable_members;
mod events;
mod host;
mod identity;
mod identity_publish;
mod negotiate;
mod notify;
mod publish;
mod rest_client;
mod routes;
mod standin;
mod support;
