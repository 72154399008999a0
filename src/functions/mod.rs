//! The three HTTP functions, one module each, mirroring the `*/function.json` folders at the app root.
//!
//! Each module owns its `Settings` (read from the environment snapshot at start-up), its state (built once)
//! and `routes`, the warp filter serving exactly the methods its `function.json` declares under `/api/`.

pub mod events;
pub mod negotiate;
pub mod publish;

use warp::http::StatusCode;

use crate::error::ApiError;

/// Placeholder answer of a function whose behaviour has not landed yet.
pub(crate) fn not_implemented(function: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, "NotImplemented", format!("{function} is not implemented yet"))
}
