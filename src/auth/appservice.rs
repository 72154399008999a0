//! App Service Authentication ("Easy Auth"): the caller identity the platform puts into request headers
//! after it has signed the user in.
//!
//! The platform sets `X-MS-CLIENT-PRINCIPAL-ID` (the user id), `-NAME`, `-IDP` and `X-MS-CLIENT-PRINCIPAL`
//! (base64 JSON `{auth_typ, claims: [{typ, val}], name_typ, role_typ}`), and strips copies a client sent.
//! These headers are only trustworthy behind the platform: choose this mode only when App Service
//! Authentication is enabled on the app (a direct caller could forge them otherwise).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;
use warp::http::HeaderMap;

use super::AuthError;
use super::user_id::validate_user_id;

pub(crate) const PRINCIPAL_HEADER: &str = "x-ms-client-principal";
pub(crate) const PRINCIPAL_ID_HEADER: &str = "x-ms-client-principal-id";
pub(crate) const PRINCIPAL_NAME_HEADER: &str = "x-ms-client-principal-name";
pub(crate) const PRINCIPAL_IDP_HEADER: &str = "x-ms-client-principal-idp";

/// Role claim types used when the principal names none.
const DEFAULT_ROLE_CLAIM_TYPES: [&str; 2] = ["roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"];

/// A signed-in user as App Service Authentication describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppServicePrincipal {
    /// `X-MS-CLIENT-PRINCIPAL-ID`: the provider's stable user id.
    pub user_id: String,
    /// `X-MS-CLIENT-PRINCIPAL-NAME`, when sent.
    pub name: Option<String>,
    /// `X-MS-CLIENT-PRINCIPAL-IDP` (e.g. `aad`, `github`), when sent.
    pub identity_provider: Option<String>,
    /// `auth_typ` of the principal, when sent.
    pub auth_type: Option<String>,
    /// Values of the claims whose type is the principal's `role_typ` (app roles).
    pub roles: Vec<String>,
    /// Every claim of the principal, `(typ, val)`.
    pub claims: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct PrincipalJson {
    #[serde(default)]
    auth_typ: Option<String>,
    #[serde(default)]
    claims: Vec<ClaimJson>,
    #[serde(default)]
    role_typ: Option<String>,
}

#[derive(Deserialize)]
struct ClaimJson {
    typ: String,
    val: String,
}

impl AppServicePrincipal {
    /// Reads the principal from request headers. No `X-MS-CLIENT-PRINCIPAL-ID` → `MissingCredentials`; a
    /// malformed principal or an invalid id → `InvalidCredentials`.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, AuthError> {
        let user_id = header_text(headers, PRINCIPAL_ID_HEADER)?.ok_or(AuthError::MissingCredentials(
            "App Service Authentication headers (X-MS-CLIENT-PRINCIPAL-ID)",
        ))?;
        validate_user_id(user_id).map_err(|e| {
            AuthError::InvalidCredentials(format!("X-MS-CLIENT-PRINCIPAL-ID is not a usable user id: {e}"))
        })?;
        let mut principal = Self {
            user_id: user_id.to_owned(),
            name: header_text(headers, PRINCIPAL_NAME_HEADER)?.map(str::to_owned),
            identity_provider: header_text(headers, PRINCIPAL_IDP_HEADER)?.map(str::to_owned),
            auth_type: None,
            roles: Vec::new(),
            claims: Vec::new(),
        };
        if let Some(encoded) = header_text(headers, PRINCIPAL_HEADER)? {
            let parsed = decode_principal(encoded)?;
            principal.roles = match parsed.role_typ.as_deref() {
                Some(role_type) => claim_values(&parsed.claims, |typ| typ == role_type),
                None => claim_values(&parsed.claims, |typ| DEFAULT_ROLE_CLAIM_TYPES.contains(&typ)),
            };
            principal.auth_type = parsed.auth_typ;
            principal.claims = parsed.claims.into_iter().map(|c| (c.typ, c.val)).collect();
        }
        Ok(principal)
    }

    /// Whether the principal carries app role `role`.
    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, AuthError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| AuthError::InvalidCredentials(format!("header {name} is not visible ASCII")))?
                .trim();
            Ok(Some(text).filter(|t| !t.is_empty()))
        }
    }
}

fn decode_principal(encoded: &str) -> Result<PrincipalJson, AuthError> {
    let invalid =
        || AuthError::InvalidCredentials("header X-MS-CLIENT-PRINCIPAL is not base64-encoded principal JSON".into());
    let bytes = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

fn claim_values(claims: &[ClaimJson], wanted: impl Fn(&str) -> bool) -> Vec<String> {
    claims
        .iter()
        .filter(|c| wanted(&c.typ))
        .map(|c| c.val.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn encode(json: &str) -> String {
        STANDARD.encode(json)
    }

    #[test]
    fn reads_id_name_provider_and_roles() {
        let principal = encode(
            r#"{"auth_typ":"aad","claims":[{"typ":"roles","val":"Publisher"},{"typ":"name","val":"Ada"},{"typ":"roles","val":"Reader"}],"name_typ":"name","role_typ":"roles"}"#,
        );
        let parsed = AppServicePrincipal::from_headers(&headers(&[
            ("x-ms-client-principal-id", "ada-id"),
            ("x-ms-client-principal-name", "ada@example.com"),
            ("x-ms-client-principal-idp", "aad"),
            ("x-ms-client-principal", &principal),
        ]))
        .unwrap();
        assert_eq!(parsed.user_id, "ada-id");
        assert_eq!(parsed.name.as_deref(), Some("ada@example.com"));
        assert_eq!(parsed.identity_provider.as_deref(), Some("aad"));
        assert_eq!(parsed.auth_type.as_deref(), Some("aad"));
        assert_eq!(parsed.roles, ["Publisher", "Reader"]);
        assert!(parsed.has_role("Publisher"));
        assert!(!parsed.has_role("Admin"));
        assert_eq!(parsed.claims.len(), 3);
    }

    #[test]
    fn role_claim_type_follows_role_typ() {
        let principal = encode(r#"{"claims":[{"typ":"roles","val":"A"},{"typ":"grp","val":"B"}],"role_typ":"grp"}"#);
        let parsed = AppServicePrincipal::from_headers(&headers(&[
            ("x-ms-client-principal-id", "u"),
            ("x-ms-client-principal", &principal),
        ]))
        .unwrap();
        assert_eq!(parsed.roles, ["B"]);
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let principal = STANDARD_NO_PAD.encode(r#"{"claims":[{"typ":"roles","val":"R"}]}"#);
        let parsed = AppServicePrincipal::from_headers(&headers(&[
            ("x-ms-client-principal-id", "u"),
            ("x-ms-client-principal", &principal),
        ]))
        .unwrap();
        assert_eq!(parsed.roles, ["R"]);
    }

    #[test]
    fn the_id_header_alone_is_enough() {
        let parsed = AppServicePrincipal::from_headers(&headers(&[("x-ms-client-principal-id", "u")])).unwrap();
        assert_eq!(parsed.user_id, "u");
        assert!(parsed.roles.is_empty());
    }

    #[test]
    fn missing_id_is_missing_credentials() {
        let principal = encode(r#"{"claims":[]}"#);
        let error = AppServicePrincipal::from_headers(&headers(&[("x-ms-client-principal", &principal)])).unwrap_err();
        assert!(matches!(error, AuthError::MissingCredentials(_)), "{error:?}");
        let blank = AppServicePrincipal::from_headers(&headers(&[("x-ms-client-principal-id", "  ")])).unwrap_err();
        assert!(matches!(blank, AuthError::MissingCredentials(_)), "{blank:?}");
    }

    #[test]
    fn malformed_principal_is_invalid_credentials() {
        for bad in ["not base64!", &encode("not json"), &encode(r#"{"claims":"nope"}"#)] {
            let error = AppServicePrincipal::from_headers(&headers(&[
                ("x-ms-client-principal-id", "u"),
                ("x-ms-client-principal", bad),
            ]))
            .unwrap_err();
            assert!(matches!(error, AuthError::InvalidCredentials(_)), "{bad}: {error:?}");
        }
    }

    #[test]
    fn non_ascii_header_is_invalid_credentials() {
        let mut map = HeaderMap::new();
        map.insert(
            PRINCIPAL_ID_HEADER,
            warp::http::HeaderValue::from_bytes(b"\xffbad").unwrap(),
        );
        assert!(matches!(
            AppServicePrincipal::from_headers(&map),
            Err(AuthError::InvalidCredentials(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(id in "[ -~]{0,40}", principal in "[ -~]{0,200}") {
            let mut map = HeaderMap::new();
            if let Ok(value) = id.parse() { map.insert(PRINCIPAL_ID_HEADER, value); }
            if let Ok(value) = STANDARD.encode(&principal).parse() { map.insert(PRINCIPAL_HEADER, value); }
            let _ = AppServicePrincipal::from_headers(&map);
        }
    }
}
