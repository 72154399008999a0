//! Who may call `events`, beyond the origin check: `ce-signature` whenever an access key is configured
//! (see `verify`), and in identity mode the optional Entra bearer check of the upstream request (the
//! service's managed identity, see [`crate::identity::entra`]). Without a key and without that check
//! anyone who can reach the route could forge events, so the handler starts only when
//! `EventsAllowUnauthenticated=true` says so, and then warns.
//!
//! | Setting | Default | Meaning |
//! |---|---|---|
//! | `EventsEntraAudience`, `EventsEntraTenantId`, `EventsEntraAllowedClientIds`, `EventsEntraJwksUrl` | *(none)* | The Entra bearer check (all but the key set URL required together). |
//! | `EventsAllowUnauthenticated` | `false` | Start without a key and without the Entra check (local experiments only). |

use std::sync::Arc;

use warp::http::HeaderMap;

use crate::config::{ConfigError, Env};
use crate::error::ApiError;
use crate::identity::{EntraError, EntraSettings, EntraValidator};
use crate::webpubsub::ServiceSettings;

use super::policy::AllowedOrigins;

pub(crate) const ALLOW_UNAUTHENTICATED: &str = "EventsAllowUnauthenticated";

/// The upstream authentication settings of `events`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamAuthSettings {
    /// The Entra bearer check (`EventsEntra*`), when configured.
    pub entra: Option<EntraSettings>,
    /// `EventsAllowUnauthenticated`.
    pub allow_unauthenticated: bool,
}

impl UpstreamAuthSettings {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            entra: EntraSettings::from_env(env)?,
            allow_unauthenticated: env.flag(ALLOW_UNAUTHENTICATED, false)?,
        })
    }

    /// The start-up rule: events must be authenticated somehow (a key for `ce-signature`, or the Entra
    /// check) unless `EventsAllowUnauthenticated=true`, which is then logged as a warning.
    pub(crate) fn check(&self, service: &ServiceSettings) -> Result<(), ConfigError> {
        if service.keys().is_some() || self.entra.is_some() {
            return Ok(());
        }
        if !self.allow_unauthenticated {
            return Err(ConfigError::new(
                ALLOW_UNAUTHENTICATED,
                "must be true to accept upstream events without an access key and without the Entra check \
                 (set EventsEntraAudience, EventsEntraTenantId and EventsEntraAllowedClientIds instead)",
            ));
        }
        tracing::warn!(
            "{ALLOW_UNAUTHENTICATED}=true: upstream events are accepted without a signature or bearer check; \
             anyone who can reach /api/events can forge them"
        );
        Ok(())
    }
}

/// The bearer check of upstream requests, built once at start-up.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpstreamAuth {
    entra: Option<Arc<EntraValidator>>,
}

impl UpstreamAuth {
    pub(crate) fn new(settings: &UpstreamAuthSettings) -> anyhow::Result<Self> {
        Ok(Self {
            entra: settings
                .entra
                .clone()
                .map(EntraValidator::new)
                .transpose()?
                .map(Arc::new),
        })
    }

    /// Checks the request's `Authorization` when the Entra check is on. Every refusal is a 401 (logged
    /// with its reason, never the token); a key set that cannot be fetched is a 503 with `Retry-After`.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(entra) = &self.entra else {
            return Ok(());
        };
        match entra.validate_request(headers).await {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(
                    reason = %error,
                    status = error.status().as_u16(),
                    "Refused Web PubSub upstream callback: Entra bearer check"
                );
                Err(match error {
                    EntraError::KeysUnavailable { .. } => ApiError::from(error),
                    _ => ApiError::unauthorized(error.to_string()),
                })
            }
        }
    }
}

/// The origin check of an event `POST`: a `WebHook-Request-Origin` the service sends must be one of the
/// allowed hosts (as in abuse protection); without a key to sign events the header is required, as the
/// Functions extension requires it. Refusals are 401.
pub(super) fn check_origin(origins: &AllowedOrigins, requested: Option<&str>, keyed: bool) -> Result<(), ApiError> {
    let requested = requested.map(str::trim).filter(|origin| !origin.is_empty());
    let refusal = match requested {
        Some(origin) if origins.pick(origin).is_none() => "the event's WebHook-Request-Origin is not an allowed host",
        None if !keyed => "WebHook-Request-Origin is required when no access key signs events",
        _ => return Ok(()),
    };
    tracing::warn!(
        origin = requested.unwrap_or(""),
        reason = "OriginNotAllowed",
        "Refused Web PubSub upstream callback"
    );
    Err(ApiError::new(
        warp::http::StatusCode::UNAUTHORIZED,
        "OriginNotAllowed",
        refusal,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_on_events_and_required_without_a_key() {
        let origins = AllowedOrigins::new([("contoso.webpubsub.azure.com", 443, true)], std::iter::empty());
        assert!(check_origin(&origins, Some("contoso.webpubsub.azure.com"), false).is_ok());
        assert!(check_origin(&origins, None, true).is_ok());
        for (requested, keyed) in [(Some("evil.example.com"), true), (None, false), (Some(" "), false)] {
            let error = check_origin(&origins, requested, keyed).unwrap_err();
            assert_eq!(error.status(), warp::http::StatusCode::UNAUTHORIZED, "{requested:?}");
        }
    }

    const KEYED: &str = "Endpoint=https://contoso.webpubsub.azure.com;AccessKey=primary-key-0123456789;";

    fn service(pairs: &[(&str, &str)]) -> ServiceSettings {
        let env = Env::from_pairs(pairs.iter().copied().chain([("WebPubSubHub", "chat")]));
        ServiceSettings::from_env(&env).unwrap()
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<UpstreamAuthSettings, ConfigError> {
        UpstreamAuthSettings::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn a_key_or_the_entra_check_or_an_explicit_opt_out_is_required() {
        let keyless = service(&[(
            "WebPubSubConnectionString__serviceUri",
            "https://contoso.webpubsub.azure.com",
        )]);
        let keyed = service(&[("WebPubSubConnectionString", KEYED)]);
        assert!(settings(&[]).unwrap().check(&keyed).is_ok());
        let error = settings(&[]).unwrap().check(&keyless).unwrap_err();
        assert_eq!(error.setting, ALLOW_UNAUTHENTICATED);
        let allowed = settings(&[(ALLOW_UNAUTHENTICATED, "true")]).unwrap();
        assert!(allowed.check(&keyless).is_ok());
        let entra = settings(&[
            ("EventsEntraAudience", "api://handler"),
            ("EventsEntraTenantId", "tenant-1"),
            ("EventsEntraAllowedClientIds", "client-1"),
        ])
        .unwrap();
        assert!(entra.check(&keyless).is_ok());
        assert_eq!(
            settings(&[(ALLOW_UNAUTHENTICATED, "maybe")]).unwrap_err().setting,
            ALLOW_UNAUTHENTICATED
        );
        assert_eq!(
            settings(&[("EventsEntraAudience", "api://handler")])
                .unwrap_err()
                .setting,
            "EventsEntraTenantId"
        );
    }

    #[tokio::test]
    async fn without_the_check_every_request_passes_and_with_it_a_missing_bearer_is_401() {
        assert!(UpstreamAuth::default().check(&HeaderMap::new()).await.is_ok());
        let on = UpstreamAuth::new(&UpstreamAuthSettings {
            entra: Some(EntraSettings {
                audiences: vec!["api://handler".into()],
                tenant_id: "tenant-1".into(),
                allowed_client_ids: vec!["client-1".into()],
                jwks_url: "http://127.0.0.1:9/keys".parse().unwrap(),
            }),
            allow_unauthenticated: false,
        })
        .unwrap();
        let error = on.check(&HeaderMap::new()).await.unwrap_err();
        assert_eq!(error.status(), warp::http::StatusCode::UNAUTHORIZED);
    }
}
