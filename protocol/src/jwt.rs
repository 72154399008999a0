//! HS256 JSON Web Tokens signed with an access key: the one signing path under client access tokens
//! and REST bearer tokens, and the one verifier (the emulator checks both kinds with it).
//!
//! The header is the constant `{"alg":"HS256","typ":"JWT"}` that the JavaScript and Python SDKs emit
//! (no `kid`), pre-encoded once; the key's HMAC state is prepared once and cloned per token. That keeps
//! a signature to two small allocations (claims JSON, token string) and makes our tokens byte-for-byte
//! comparable with the SDKs' in known-answer tests.
//!
//! [`verify`] accepts the primary or the secondary key, compares tags in constant time and allows
//! [`CLOCK_SKEW`] on `exp` and `nbf`, as the service does. Audience checks are the caller's, which knows
//! what URL was requested.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::keys::{AccessKey, PreparedKey, ServiceKeys};

/// base64url of `{"alg":"HS256","typ":"JWT"}`.
const HEADER_SEGMENT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// Length of a base64url-encoded 32-byte HMAC-SHA256 tag.
const SIGNATURE_SEGMENT_LEN: usize = 43;
/// Clock skew tolerated on `exp` and `nbf`, as the service does.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Signs claims into compact HS256 JWTs with one access key.
#[derive(Clone)]
pub struct Hs256Signer {
    key: PreparedKey,
}

impl Hs256Signer {
    /// A signer holding `key`'s prepared HMAC state.
    pub fn new(key: &AccessKey) -> Self {
        Self {
            key: PreparedKey::new(key.clone()),
        }
    }

    /// `base64url(header) . base64url(claims JSON) . base64url(HMAC-SHA256)`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        // Our claim structs hold only strings, integers and string lists: serialising them cannot fail.
        let payload = serde_json::to_vec(claims).expect("JWT claims serialise to JSON");
        let mut token =
            String::with_capacity(HEADER_SEGMENT.len() + 2 + payload.len().div_ceil(3) * 4 + SIGNATURE_SEGMENT_LEN);
        token.push_str(HEADER_SEGMENT);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let mut mac = self.key.mac();
        mac.update(token.as_bytes());
        let tag = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }
}

impl std::fmt::Debug for Hs256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hs256Signer").field("key", &self.key).finish()
    }
}

/// Signs `claims` with `key` (a one-off [`Hs256Signer`]).
pub fn sign<C: Serialize>(claims: &C, key: &AccessKey) -> String {
    Hs256Signer::new(key).sign(claims)
}

/// Why a token was refused. Messages never include the token or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was presented.
    #[error("no access token was presented")]
    Missing,
    /// Not three base64url parts holding a JSON header and a JSON object payload.
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    /// The header names an algorithm other than HS256.
    #[error("the access token must be signed with HS256")]
    UnsupportedAlgorithm,
    /// No configured key produces the signature.
    #[error("the access token signature is invalid")]
    BadSignature,
    /// `exp` is missing or not a number.
    #[error("the access token has no valid exp claim")]
    MissingExpiry,
    /// `exp` is in the past (beyond the skew).
    #[error("the access token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the skew).
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// `aud` does not name the requested resource.
    #[error("the access token audience does not match the requested URL")]
    AudienceMismatch,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Verifies the signature (made with any of `keys`), `exp` (required) and `nbf` (if present) at time
/// `now`; returns the claims. The signature is checked before the payload is decoded.
pub fn verify(token: &str, keys: &ServiceKeys, now: u64) -> Result<Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Value = decode_json(header)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..token.rfind('.').unwrap_or(0)];
    // Every key is tried, without stopping early.
    let mut signed = false;
    for key in keys.prepared() {
        let mut mac = key.mac();
        mac.update(signing_input.as_bytes());
        signed |= mac.verify_slice(&signature).is_ok();
    }
    if !signed {
        return Err(TokenError::BadSignature);
    }
    let Value::Object(claims) = decode_json(payload)? else {
        return Err(TokenError::Malformed);
    };
    let skew = CLOCK_SKEW.as_secs();
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(TokenError::MissingExpiry)?;
    if (now as f64) > exp + skew as f64 {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64)
        && ((now + skew) as f64) < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

fn decode_json(part: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// The values of a claim that may be a string or an array of strings (`aud`, `role`,
/// `webpubsub.group`); non-string entries are ignored.
pub fn string_values(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Claims {
        aud: String,
        exp: u64,
    }

    #[test]
    fn header_segment_is_the_sdk_header() {
        let decoded = URL_SAFE_NO_PAD.decode(HEADER_SEGMENT).unwrap();
        assert_eq!(decoded, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn tokens_verify_with_an_independent_implementation() {
        let signer = Hs256Signer::new(&AccessKey::new(KEY).unwrap());
        let claims = Claims {
            aud: "https://a.example/x?y=1".into(),
            exp: 4_000_000_000,
        };
        let token = signer.sign(&claims);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["https://a.example/x?y=1"]);
        let decoded = decode::<Claims>(&token, &DecodingKey::from_secret(KEY.as_bytes()), &validation).unwrap();
        assert_eq!(decoded.claims, claims);
        assert_eq!(decoded.header.typ.as_deref(), Some("JWT"));
        assert!(decoded.header.kid.is_none());
    }

    #[test]
    fn a_different_key_does_not_verify() {
        let token = Hs256Signer::new(&AccessKey::new("other-key").unwrap()).sign(&Claims {
            aud: "a".into(),
            exp: 4_000_000_000,
        });
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        assert!(decode::<Claims>(&token, &DecodingKey::from_secret(KEY.as_bytes()), &validation).is_err());
    }

    #[test]
    fn known_answer_matches_pyjwt() {
        // Expected value from PyJWT: `jwt.encode({"sub": "1"}, "secret", algorithm="HS256")`.
        let token = Hs256Signer::new(&AccessKey::new("secret").unwrap()).sign(&serde_json::json!({"sub":"1"}));
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.8qZF8vbN3UpcanXFc-mPXJkOPN01-bRch8XX3rToP1U"
        );
    }
}

#[cfg(test)]
mod verify_tests {
    use super::*;
    use serde_json::json;

    fn key() -> AccessKey {
        AccessKey::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH").unwrap()
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn only(key: AccessKey) -> ServiceKeys {
        ServiceKeys::new(key)
    }

    #[test]
    fn jwt_known_answer() {
        // The jwt.io HS256 sample (key "your-256-bit-secret"), with an `exp` claim added is
        // not available as a fixed vector, so check the well-known sample's signature part.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        // Signature is valid but the sample has no `exp`: the next check must be the expiry.
        assert_eq!(
            verify(token, &only(AccessKey::new("your-256-bit-secret").unwrap()), 0),
            Err(TokenError::MissingExpiry)
        );
        assert_eq!(verify(token, &only(key()), 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn round_trip() {
        let token = sign(&claims(json!({"sub": "alice", "exp": 2_000, "role": ["a"]})), &key());
        assert!(!token.contains("kid"));
        let got = verify(&token, &only(key()), 1_000).unwrap();
        assert_eq!(got["sub"], "alice");
        assert_eq!(string_values(&got, "role"), vec!["a".to_string()]);
    }

    #[test]
    fn secondary_key_is_accepted() {
        let secondary = AccessKey::new("secondary-key-secondary-key-secondary").unwrap();
        let token = sign(&claims(json!({"exp": 2_000})), &secondary);
        assert!(verify(&token, &only(key()).with_secondary(secondary.clone()), 1_000).is_ok());
        assert_eq!(verify(&token, &only(key()), 1_000), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_with_skew() {
        let token = sign(&claims(json!({"exp": 1_000})), &key());
        assert!(verify(&token, &only(key()), 1_000 + 299).is_ok());
        assert_eq!(verify(&token, &only(key()), 1_000 + 301), Err(TokenError::Expired));
        let no_exp = sign(&claims(json!({"sub": "a"})), &key());
        assert_eq!(verify(&no_exp, &only(key()), 0), Err(TokenError::MissingExpiry));
    }

    #[test]
    fn not_before_with_skew() {
        let token = sign(&claims(json!({"exp": 10_000, "nbf": 5_000})), &key());
        assert!(verify(&token, &only(key()), 4_800).is_ok());
        assert_eq!(verify(&token, &only(key()), 4_000), Err(TokenError::NotYetValid));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":99999999999}"#);
        assert_eq!(
            verify(&format!("{header}.{payload}."), &only(key()), 0),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn malformed_tokens() {
        for bad in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30"] {
            assert!(verify(bad, &only(key()), 0).is_err(), "{bad}");
        }
        // A signed payload that is JSON but not an object.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(b"[1]");
        let input = format!("{header}.{payload}");
        let mut mac = key().hmac();
        mac.update(input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            verify(&format!("{input}.{sig}"), &only(key()), 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn debug_redacts_key() {
        assert_eq!(format!("{:?}", key()), "AccessKey(<redacted>)");
        assert!(!format!("{:?}", Hs256Signer::new(&key())).contains("ABCDEFGH"));
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(token in ".{0,200}") {
            let _ = verify(&token, &only(key()), 0);
        }
    }
}
