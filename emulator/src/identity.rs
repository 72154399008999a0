//! Identity (keyless) mode of the emulator: a local stand-in for Entra ID and the App Service identity
//! endpoint, so the handler's keyless path runs end to end without Azure.
//!
//! [`IdentityAuthority`] holds an RSA key generated at start (never a fixed key) and:
//! - serves `GET /identity/token?resource=…&api-version=2019-08-01` with `X-IDENTITY-HEADER` in the App
//!   Service shape (`client_id` / `mi_res_id` / `principal_id` accepted), minting RS256 tokens;
//! - serves its key set at `GET /identity/keys` (point the handler's `EventsEntraJwksUrl` here);
//! - verifies those tokens as REST bearer ([`IdentityAuthority::verify_bearer`]; [`authorize_rest`] combines
//!   that with the access-key check and "local auth disabled"), with no clock skew allowed: the emulator
//!   both mints and checks them on one clock, so a token is refused the second after its `exp` (a test
//!   that shortens the lifetime sees a reused expired token fail at once, not 5 minutes later);
//! - counts the tokens its endpoint served ([`IdentityAuthority::tokens_served`]), so tests can tell a
//!   cached token from a refreshed one;
//! - signs the `Authorization: Bearer` of upstream calls ([`IdentityAuthority::sign_upstream_bearer`]) as
//!   the service's managed identity ([`SERVICE_CLIENT_ID`]), in the v1 shape Entra uses.
//!
//! `:generateToken` itself needs nothing new: [`crate::Service::generate_client_token`] signs client tokens
//! with the hub key whichever way the REST call was authorised.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use warp::Filter as _;
use warp::http::StatusCode;
use warp::reply::Response;

use webpubsub_protocol::WEBPUBSUB_RESOURCE;
use webpubsub_protocol::jwt::{self as token, TokenError};

/// The emulated tenant.
pub const TENANT_ID: &str = "e0e0e0e0-0000-4000-8000-00000000e1e1";
/// The client id of the app's system-assigned identity (when the request names none).
pub const APP_CLIENT_ID: &str = "a0a0a0a0-0000-4000-8000-0000000a0001";
/// The client id of the service's own identity: `appid` of upstream bearer tokens.
pub const SERVICE_CLIENT_ID: &str = "5e5e5e5e-0000-4000-8000-00000005e001";
const API_VERSION: &str = "2019-08-01";

/// Claims of a verified token.
pub type Claims = Map<String, Value>;

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token was presented")]
    Missing,
    /// Not three base64url parts with JSON header and claims.
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    /// Signed with an algorithm other than RS256.
    #[error("the bearer token must be signed with RS256")]
    UnsupportedAlgorithm,
    /// A `kid` this emulator did not issue.
    #[error("the bearer token names a key this authority does not have")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the bearer token signature is invalid")]
    BadSignature,
    /// Past its `exp`.
    #[error("the bearer token has expired")]
    Expired,
    /// Before its `nbf`.
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    /// An `aud` other than the Web PubSub resource.
    #[error("the bearer token audience is not {WEBPUBSUB_RESOURCE}")]
    WrongAudience,
    /// An `iss` other than the emulator's tenant.
    #[error("the bearer token was not issued by the emulator's tenant")]
    WrongIssuer,
    /// Access-key tokens while local auth is disabled.
    #[error("local (access key) authentication is disabled; use an identity token")]
    LocalAuthDisabled,
    /// An access-key token that failed its own checks.
    #[error("{0}")]
    AccessKey(TokenError),
}

/// The emulator's identity authority. Build once; share (`Arc`).
pub struct IdentityAuthority {
    key: RsaKeyPair,
    kid: String,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    identity_header: String,
    token_ttl: Duration,
    tokens_served: AtomicU64,
}

impl fmt::Debug for IdentityAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityAuthority")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IdentityAuthority {
    /// A new authority with a fresh RSA-2048 key. Callers of the token endpoint must send
    /// `identity_header` as `X-IDENTITY-HEADER` (the handler's `IDENTITY_HEADER`).
    pub fn new(identity_header: impl Into<String>) -> anyhow::Result<Self> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("cannot generate an RSA key"))?;
        let public = key.public_key();
        let modulus = public.modulus().big_endian_without_leading_zero().to_vec();
        let exponent = public.exponent().big_endian_without_leading_zero().to_vec();
        let kid = format!("emulator-{}", hex::encode(rand::random::<[u8; 6]>()));
        Ok(Self {
            key,
            kid,
            modulus,
            exponent,
            identity_header: identity_header.into(),
            token_ttl: Duration::from_secs(60 * 60),
            tokens_served: AtomicU64::new(0),
        })
    }

    /// Lifetime of minted tokens (tests shorten it to exercise refresh).
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// How many tokens `GET /identity/token` has handed out (refused requests are not counted).
    pub fn tokens_served(&self) -> u64 {
        self.tokens_served.load(Ordering::Relaxed)
    }

    /// The v1 issuer of every token this authority signs.
    pub fn issuer(&self) -> String {
        format!("https://sts.windows.net/{TENANT_ID}/")
    }

    /// The `kid` of the signing key, random per emulator run.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The JWKS document with this authority's one public key.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.modulus), "e": URL_SAFE_NO_PAD.encode(&self.exponent),
        }]})
    }

    /// An access token for `resource` as the identity `client_id`, valid for the configured lifetime;
    /// returns the token and its `expires_on`.
    pub fn mint_access_token(&self, resource: &str, client_id: &str) -> (String, u64) {
        let now = token::unix_now();
        let expires_on = now + self.token_ttl.as_secs();
        let claims = json!({
            "aud": resource, "iss": self.issuer(), "ver": "1.0", "tid": TENANT_ID,
            "appid": client_id, "oid": client_id, "sub": client_id, "idtyp": "app",
            "iat": now, "nbf": now, "exp": expires_on,
        });
        (self.sign(&claims), expires_on)
    }

    /// The `Authorization: Bearer` token of an upstream call to a handler whose event handler settings
    /// name `audience`, as the service's identity would send it.
    pub fn sign_upstream_bearer(&self, audience: &str) -> String {
        let now = token::unix_now();
        self.sign(&json!({
            "aud": audience, "iss": self.issuer(), "ver": "1.0", "tid": TENANT_ID,
            "appid": SERVICE_CLIENT_ID, "oid": SERVICE_CLIENT_ID, "sub": SERVICE_CLIENT_ID, "idtyp": "app",
            "iat": now, "nbf": now, "exp": now + self.token_ttl.as_secs(),
        }))
    }

    /// Verifies a REST bearer token minted here: RS256 with this key, not expired (no skew: see the module
    /// documentation), `aud` the Web PubSub resource, this tenant's issuer.
    pub fn verify_bearer(&self, token: &str) -> Result<Claims, BearerError> {
        self.verify_at(token, token::unix_now())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, BearerError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BearerError::Malformed);
        };
        let header = decode_json(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(BearerError::UnsupportedAlgorithm);
        }
        if header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str()) {
            return Err(BearerError::UnknownKey);
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| BearerError::Malformed)?;
        let public = RsaPublicKeyComponents {
            n: &self.modulus,
            e: &self.exponent,
        };
        public
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &token.as_bytes()[..token.len() - parts_len(token)],
                &sig,
            )
            .map_err(|_| BearerError::BadSignature)?;
        let Value::Object(claims) = decode_json(payload)? else {
            return Err(BearerError::Malformed);
        };
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(BearerError::Malformed)?;
        if now > exp {
            return Err(BearerError::Expired);
        }
        if claims.get("nbf").and_then(Value::as_u64).is_some_and(|nbf| now < nbf) {
            return Err(BearerError::NotYetValid);
        }
        if !token::string_values(&claims, "aud")
            .iter()
            .any(|aud| aud.trim_end_matches('/') == WEBPUBSUB_RESOURCE)
        {
            return Err(BearerError::WrongAudience);
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer().as_str()) {
            return Err(BearerError::WrongIssuer);
        }
        Ok(claims)
    }

    /// Signs any claims with this authority's key (tests craft expired, foreign-tenant or other-client
    /// tokens with it: they pass the signature check and must fail the later ones).
    pub fn sign_claims(&self, claims: &Value) -> String {
        self.sign(claims)
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing with a generated key cannot fail");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// `GET /identity/token` (App Service shape) and `GET /identity/keys` (JWKS).
    pub fn routes(self: Arc<Self>) -> warp::filters::BoxedFilter<(Response,)> {
        let keys = {
            let authority = self.clone();
            warp::path!("identity" / "keys")
                .and(warp::get())
                .map(move || warp::reply::Reply::into_response(warp::reply::json(&authority.jwks())))
        };
        let token = warp::path!("identity" / "token")
            .and(warp::get())
            .and(warp::query::<Vec<(String, String)>>())
            .and(warp::header::optional::<String>("x-identity-header"))
            .map(move |query: Vec<(String, String)>, header: Option<String>| {
                let (status, body) = self.token_answer(&query, header.as_deref());
                warp::reply::Reply::into_response(warp::reply::with_status(warp::reply::json(&body), status))
            });
        keys.or(token).unify().boxed()
    }

    /// The identity endpoint's answer (status, JSON body) to one request: the query pairs and the
    /// `X-IDENTITY-HEADER` value.
    pub fn token_answer(&self, query: &[(String, String)], identity_header: Option<&str>) -> (StatusCode, Value) {
        use subtle::ConstantTimeEq as _;
        let presented = identity_header.unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(self.identity_header.as_bytes())) || presented.is_empty() {
            return error_reply(StatusCode::UNAUTHORIZED, "The X-IDENTITY-HEADER is missing or wrong.");
        }
        let one = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if one("api-version") != Some(API_VERSION) {
            return error_reply(StatusCode::BAD_REQUEST, "api-version must be 2019-08-01.");
        }
        let Some(resource) = one("resource").filter(|r| !r.is_empty() && !r.ends_with("/.default")) else {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "resource (a v1 resource URI, not a scope) is required.",
            );
        };
        let named: Vec<&str> = ["client_id", "principal_id", "object_id", "mi_res_id"]
            .into_iter()
            .filter_map(one)
            .collect();
        let client_id = match named.as_slice() {
            [] => APP_CLIENT_ID.to_owned(),
            // A user-assigned identity: the emulator gives each name a stable client id of its own.
            [name] => format!("uai-{}", &hex::encode(sha2_digest(name))[..24]),
            _ => return error_reply(StatusCode::BAD_REQUEST, "Name the identity one way only."),
        };
        let (access_token, expires_on) = self.mint_access_token(resource, &client_id);
        self.tokens_served.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "access_token": access_token, "expires_on": expires_on.to_string(), "resource": resource,
            "token_type": "Bearer", "client_id": client_id,
        });
        (StatusCode::OK, body)
    }
}

/// Checks a REST call's `Authorization`: an RS256 identity token from `authority` (when identity mode is
/// on), else the access-key token check of [`crate::Service::verify_rest_token`] unless local auth is
/// disabled.
pub fn authorize_rest(
    service: &crate::Service,
    authority: Option<&IdentityAuthority>,
    local_auth_disabled: bool,
    authorization: Option<&str>,
    request_url: &str,
) -> Result<(), BearerError> {
    let token = authorization
        .and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(BearerError::Missing)?;
    let alg = token
        .split('.')
        .next()
        .and_then(|header| decode_json(header).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    match (alg.as_deref(), authority) {
        (Some("RS256"), Some(authority)) => authority.verify_bearer(token).map(drop),
        _ if local_auth_disabled => Err(BearerError::LocalAuthDisabled),
        _ => service
            .verify_rest_token(authorization, request_url)
            .map_err(BearerError::AccessKey),
    }
}

fn error_reply(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"statusCode": status.as_u16(), "message": message, "correlationId": "emulator"}),
    )
}

fn decode_json(part: &str) -> Result<Value, BearerError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| BearerError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| BearerError::Malformed)
}

/// Length of `.signature` at the end of a token.
fn parts_len(token: &str) -> usize {
    token.len() - token.rfind('.').unwrap_or(token.len())
}

fn sha2_digest(text: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
