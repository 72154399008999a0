//! The identity tests' scripted token endpoint and clock, from the shared `test-support` crate.

pub(super) use ::test_support::token_endpoint::*;
pub(super) use ::test_support::tokens::now;
