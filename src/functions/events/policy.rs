//! Who may call `events`. Verification is the step that turns an unverified [`CloudEvent`] into a [`VerifiedEvent`], the only type
//! the event handlers receive. It runs on headers alone, before the body is read.
//!
//! Two checks, in this order: `ce-signature` against every configured access key (primary and secondary,
//! constant-time, via [`crate::webpubsub::signature::verify`]), then `ce-hub` against the served hubs
//! (case-insensitively). The hub is checked second so an unauthenticated caller learns nothing about the
//! configuration. Abuse protection (`OPTIONS`, the allowed origins) is in [`origin`].

mod origin;

use std::ops::Deref;

use crate::error::ApiError;
use crate::webpubsub::{Hubs, ServiceKeys, SignatureError, signature};

use super::request::CloudEvent;

pub(crate) use origin::AllowedOrigins;

/// A [`CloudEvent`] whose signature matched a configured key and whose hub is served. Only
/// `Verifier::verify` makes one; it derefs to the event's metadata.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    event: CloudEvent,
}

impl Deref for VerifiedEvent {
    type Target = CloudEvent;

    fn deref(&self) -> &CloudEvent {
        &self.event
    }
}

/// Checks upstream requests against the service keys and hubs, built once at start-up.
#[derive(Debug, Clone)]
pub(crate) struct Verifier {
    /// `None` in identity mode without any access key: no `ce-signature` to check (the Entra check or
    /// `EventsAllowUnauthenticated` stands in, see `upstream_auth`).
    keys: Option<ServiceKeys>,
    hubs: Hubs,
}

impl Verifier {
    pub(crate) fn new(keys: Option<ServiceKeys>, hubs: Hubs) -> Self {
        Self { keys, hubs }
    }

    /// Whether an access key signs events (`ce-signature` is checked).
    pub(crate) fn is_keyed(&self) -> bool {
        self.keys.is_some()
    }

    /// Signature, then hub. A missing or wrong signature is a 401; a hub this handler does not serve a 400.
    /// A refusal is logged here, with the unverified metadata (never the signature).
    pub(crate) fn verify(&self, event: CloudEvent) -> Result<VerifiedEvent, ApiError> {
        match self.check(&event) {
            Ok(()) => Ok(VerifiedEvent { event }),
            Err(error) => {
                tracing::warn!(
                    event_type = %event.event_type(),
                    hub = %event.hub(),
                    connection_id = %event.connection_id(),
                    reason = error.code(),
                    status = error.status().as_u16(),
                    "Refused Web PubSub upstream callback"
                );
                Err(error)
            }
        }
    }

    fn check(&self, event: &CloudEvent) -> Result<(), ApiError> {
        if let Some(keys) = &self.keys {
            let header = event.signature().as_deref().unwrap_or("");
            signature::verify(keys, event.connection_id(), header).map_err(signature_error)?;
        }
        if self.hubs.served(event.hub()).is_none() {
            return Err(
                ApiError::bad_request("HubNotServed", "this handler does not serve the event's hub")
                    .with_detail("header", super::request::headers::HUB),
            );
        }
        Ok(())
    }
}

fn signature_error(error: SignatureError) -> ApiError {
    let code = match error {
        SignatureError::Missing => "MissingSignature",
        _ => "InvalidSignature",
    };
    ApiError::new(warp::http::StatusCode::UNAUTHORIZED, code, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::events::request::headers;
    use crate::functions::events::request::tests::service_headers;
    use crate::webpubsub::AccessKey;
    use warp::http::{HeaderValue, StatusCode};

    const PRIMARY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
    const SECONDARY: &str = "secondary-key-ZYXWVUTSRQPONMLKJIHGFEDCBA987654";
    // Known answers, computed with Python's hmac/hashlib for connection id 0f9c97a2f0bf4706afe87a14e0797b11.
    const PRIMARY_SIGNATURE: &str = "sha256=8805d739a12d46f22bcb15382a8c1c2bf38ae8f04566017bd613d5ef47cafe2c";
    const SECONDARY_SIGNATURE: &str = "sha256=6b1abdc7c29b31556296c96e070519dead1d7fffb439ad673711b1de5fcbb243";
    const CONNECTION_ID: &str = "0f9c97a2f0bf4706afe87a14e0797b11";

    fn verifier(secondary: bool) -> Verifier {
        let mut keys = ServiceKeys::new(AccessKey::new(PRIMARY).unwrap());
        if secondary {
            keys = keys.with_secondary(AccessKey::new(SECONDARY).unwrap());
        }
        Verifier::new(Some(keys), Hubs::new(vec!["chat".into(), "Other".into()]))
    }

    fn event(signature: Option<&str>, hub: &str) -> CloudEvent {
        let mut map = service_headers("azure.webpubsub.sys.connect", "connect");
        map.insert(headers::CONNECTION_ID, HeaderValue::from_static(CONNECTION_ID));
        map.insert(headers::HUB, HeaderValue::from_str(hub).unwrap());
        if let Some(signature) = signature {
            map.insert(headers::SIGNATURE, HeaderValue::from_str(signature).unwrap());
        }
        CloudEvent::from_headers(&map).unwrap()
    }

    #[test]
    fn known_answer_signatures_verify() {
        assert!(verifier(false).verify(event(Some(PRIMARY_SIGNATURE), "chat")).is_ok());
        let both = format!("{PRIMARY_SIGNATURE},{SECONDARY_SIGNATURE}");
        assert!(verifier(true).verify(event(Some(&both), "chat")).is_ok());
    }

    #[test]
    fn key_rotation_accepts_a_secondary_only_signature() {
        assert!(verifier(true).verify(event(Some(SECONDARY_SIGNATURE), "chat")).is_ok());
        let error = verifier(false)
            .verify(event(Some(SECONDARY_SIGNATURE), "chat"))
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn missing_or_wrong_signatures_are_401() {
        let missing = verifier(true).verify(event(None, "chat")).unwrap_err();
        assert_eq!(
            (missing.status(), missing.code()),
            (StatusCode::UNAUTHORIZED, "MissingSignature")
        );
        let wrong = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
        let error = verifier(true).verify(event(Some(wrong), "chat")).unwrap_err();
        assert_eq!(
            (error.status(), error.code()),
            (StatusCode::UNAUTHORIZED, "InvalidSignature")
        );
        let malformed = verifier(true).verify(event(Some("md5=abc"), "chat")).unwrap_err();
        assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn hubs_compare_case_insensitively() {
        assert!(verifier(false).verify(event(Some(PRIMARY_SIGNATURE), "CHAT")).is_ok());
        assert!(verifier(false).verify(event(Some(PRIMARY_SIGNATURE), "other")).is_ok());
        let error = verifier(false)
            .verify(event(Some(PRIMARY_SIGNATURE), "elsewhere"))
            .unwrap_err();
        assert_eq!(
            (error.status(), error.code()),
            (StatusCode::BAD_REQUEST, "HubNotServed")
        );
    }

    #[test]
    fn without_keys_no_signature_is_asked_but_the_hub_still_is() {
        let keyless = Verifier::new(None, Hubs::new(vec!["chat".into()]));
        assert!(keyless.verify(event(None, "chat")).is_ok());
        let error = keyless.verify(event(None, "elsewhere")).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_signature_is_checked_before_the_hub() {
        let error = verifier(false).verify(event(None, "elsewhere")).unwrap_err();
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    }
}
