//! The identity tests' scripted token endpoint and clock, from the shared `test-support` crate.

pub use ::test_support::token_endpoint::*;
pub use ::test_support::tokens::now;
