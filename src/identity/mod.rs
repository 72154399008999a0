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
pub mod dev;
pub mod entra;
pub mod provider;
pub mod settings;
pub mod source;
pub mod token;

#[cfg(all(test, feature = "dev"))]
mod emulator_tests;
#[cfg(test)]
mod test_support;

pub use entra::{EntraError, EntraSettings, EntraValidator};
pub use provider::{Provider, SecretSource, WEBPUBSUB_RESOURCE, process_env_secret};
pub use settings::{IdentityCredential, ManagedIdentity, ServiceCredential};
pub use source::{TokenOptions, TokenSource};
pub use token::{AccessToken, IdentityError};
