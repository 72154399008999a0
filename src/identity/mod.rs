//! Keyless operation (issue 18): the handler's own identity towards Web PubSub and the check of the
//! service's identity on upstream events.
//!
//! - [`settings`]: which credential a connection setting prefix configures ([`ServiceCredential`]), named
//!   as the Functions extension names it.
//! - [`provider`]: where tokens come from (App Service identity endpoint, IMDS, service principal,
//!   workload identity) and how each is asked.
//! - [`token`]: the redacted [`AccessToken`], token responses, [`IdentityError`].
//! - [`source`]: [`TokenSource`], the cache with one refresh in flight, backoff and a deadline.
//! - [`entra`]: [`EntraValidator`], the Entra bearer check of upstream event requests.
//! - `dev` (feature `dev`): the settings `handler dev --identity` runs keyless with.
//!
//! Own code over `reqwest` rather than the `azure_identity` crate: see the commit that added this module.

#[cfg(feature = "dev")]
pub(crate) mod dev;
pub(crate) mod entra;
pub(crate) mod provider;
pub(crate) mod settings;
pub(crate) mod source;
pub(crate) mod token;

#[cfg(all(test, feature = "dev"))]
mod emulator_tests;

pub(crate) use entra::{EntraError, EntraSettings, EntraValidator};
pub(crate) use provider::{SecretSource, process_env_secret};
pub(crate) use settings::ServiceCredential;
pub(crate) use source::{TokenOptions, TokenSource};
pub(crate) use token::{AccessToken, IdentityError};
