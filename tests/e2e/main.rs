//! End-to-end tests: one test binary, real sockets on 127.0.0.1. Shared helpers live in `support`.

mod host;
mod routes;
mod standin;
mod support;
