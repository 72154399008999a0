//! `handler dev --identity`: the whole loop keyless. The handler gets identity-mode settings pointing at the
//! emulator's App Service-shaped identity endpoint (no access key), the Entra bearer check of events
//! against the emulator's key set and service identity; the emulator refuses access keys on REST and signs
//! upstream calls with a bearer token.

use std::net::SocketAddr;

use webpubsub_emulator::IdentityModeConfig;
use webpubsub_emulator::identity::{SERVICE_CLIENT_ID, TENANT_ID};

use crate::config::Env;

/// The audience the emulator's upstream bearer tokens carry in dev mode.
pub(crate) const DEV_EVENTS_AUDIENCE: &str = "api://webpubsub-control-dev";

/// The banner's extra line in identity mode.
pub(crate) const BANNER_LINE: &str = "\n  identity    KEYLESS: REST with managed-identity tokens from the emulator's /identity/token \
(access keys refused); negotiate via :generateToken; events need the service's Entra bearer";

/// The handler's environment for identity mode: the connection string replaced by `__serviceUri` with a
/// system-assigned managed identity, the identity endpoint and header, and the Entra check of events.
pub(crate) fn keyless_env(env: Env, emulator: SocketAddr, identity_header: &str) -> Env {
    let base = format!("http://{emulator}");
    env.with("WebPubSubConnectionString", "")
        .with("WebPubSubConnectionString__serviceUri", base.clone())
        .with("WebPubSubConnectionString__credential", "managedidentity")
        .with("IDENTITY_ENDPOINT", format!("{base}/identity/token"))
        .with("IDENTITY_HEADER", identity_header)
        .with("EventsEntraAudience", DEV_EVENTS_AUDIENCE)
        .with("EventsEntraTenantId", TENANT_ID)
        .with("EventsEntraAllowedClientIds", SERVICE_CLIENT_ID)
        .with("EventsEntraJwksUrl", format!("{base}/identity/keys"))
}

/// The emulator's identity mode for dev: local auth disabled, upstream bearer for [`DEV_EVENTS_AUDIENCE`].
pub(crate) fn emulator_identity(identity_header: &str) -> IdentityModeConfig {
    IdentityModeConfig {
        disable_local_auth: true,
        upstream_audience: Some(DEV_EVENTS_AUDIENCE.to_owned()),
        ..IdentityModeConfig::new(identity_header)
    }
}
