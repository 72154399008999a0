//! Test helpers shared by the handler's unit tests and its e2e tests, in one place instead of copies:
//!
//! - [`serve`]: a warp route on a loopback server (`127.0.0.1:0`) that stops when its [`Loopback`] drops;
//! - [`capture_logs`]: this thread's log lines, with [`Captured::line`] to find the line of an event and
//!   [`assert_fields`] to check what it says.
//!
//! A dev-dependency only (`publish = false`). It depends on third-party crates alone, never on the handler
//! crate, so the handler's unit tests can use it too; the handler passes in what is its own (the log
//! field formatter).

mod logs;
mod server;

pub use logs::{Captured, assert_fields, capture_logs};
pub use server::{Loopback, serve};
