//! The token helpers of the auth and identity tests, from the shared `test-support` crate (RSA test keys,
//! RS256 tokens, JWKS documents and a loopback JWKS server).

pub(crate) use ::test_support::tokens::*;
