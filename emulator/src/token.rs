//! HS256 JSON Web Tokens: signing client tokens and verifying client and REST tokens.
//!
//! Web PubSub signs with the UTF-8 bytes of the access key string (never base64-decoded)
//! and puts no `kid` in the header. Verification accepts the primary or the secondary key,
//! compares signatures in constant time and allows five minutes of clock skew on `exp`
//! and `nbf`. Audience checks live with the callers, which know what URL was requested.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew tolerated on `exp` and `nbf`, as the service does.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// An access key. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey(String);

impl AccessKey {
    /// Wraps a key string.
    pub fn new(key: impl Into<String>) -> AccessKey {
        AccessKey(key.into())
    }

    /// The key's UTF-8 bytes, the HMAC key of tokens and signatures.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The key string (only for building connection strings).
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.as_bytes()).expect("HMAC accepts keys of any length")
    }

    /// Lowercase hex HMAC-SHA256 of `message`: the `ce-signature` value for a connection id.
    pub fn sign_hex(&self, message: &str) -> String {
        let mut mac = self.mac();
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
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

/// Signs `claims` with `key` as an HS256 JWT (header without `kid`).
pub fn sign(claims: &Map<String, Value>, key: &AccessKey) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies signature (any of `keys`), `exp` (required) and `nbf` (if present) at time
/// `now`; returns the claims. The audience is left to the caller.
pub fn verify(token: &str, keys: &[&AccessKey], now: u64) -> Result<Map<String, Value>, TokenError> {
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
    let signing_input = &token[..header_len(token)];
    let signed = keys.iter().any(|key| {
        let mut mac = key.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).is_ok()
    });
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

/// Length of `header.payload`, the signed part of a token with three parts.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
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
    use serde_json::json;

    fn key() -> AccessKey {
        AccessKey::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH")
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn signature_known_answer() {
        // RFC 4231 test case 2: HMAC-SHA256(key="Jefe", "what do ya want for nothing?").
        assert_eq!(
            AccessKey::new("Jefe").sign_hex("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn jwt_known_answer() {
        // The jwt.io HS256 sample (key "your-256-bit-secret"), with an `exp` claim added is
        // not available as a fixed vector, so check the well-known sample's signature part.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        // Signature is valid but the sample has no `exp`: the next check must be the expiry.
        assert_eq!(
            verify(token, &[&AccessKey::new("your-256-bit-secret")], 0),
            Err(TokenError::MissingExpiry)
        );
        assert_eq!(verify(token, &[&key()], 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn round_trip() {
        let token = sign(&claims(json!({"sub": "alice", "exp": 2_000, "role": ["a"]})), &key());
        assert!(!token.contains("kid"));
        let got = verify(&token, &[&key()], 1_000).unwrap();
        assert_eq!(got["sub"], "alice");
        assert_eq!(string_values(&got, "role"), vec!["a".to_string()]);
    }

    #[test]
    fn secondary_key_is_accepted() {
        let secondary = AccessKey::new("secondary-key-secondary-key-secondary");
        let token = sign(&claims(json!({"exp": 2_000})), &secondary);
        assert!(verify(&token, &[&key(), &secondary], 1_000).is_ok());
        assert_eq!(verify(&token, &[&key()], 1_000), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_with_skew() {
        let token = sign(&claims(json!({"exp": 1_000})), &key());
        assert!(verify(&token, &[&key()], 1_000 + 299).is_ok());
        assert_eq!(verify(&token, &[&key()], 1_000 + 301), Err(TokenError::Expired));
        let no_exp = sign(&claims(json!({"sub": "a"})), &key());
        assert_eq!(verify(&no_exp, &[&key()], 0), Err(TokenError::MissingExpiry));
    }

    #[test]
    fn not_before_with_skew() {
        let token = sign(&claims(json!({"exp": 10_000, "nbf": 5_000})), &key());
        assert!(verify(&token, &[&key()], 4_800).is_ok());
        assert_eq!(verify(&token, &[&key()], 4_000), Err(TokenError::NotYetValid));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":99999999999}"#);
        assert_eq!(
            verify(&format!("{header}.{payload}."), &[&key()], 0),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn malformed_tokens() {
        for bad in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30"] {
            assert!(verify(bad, &[&key()], 0).is_err(), "{bad}");
        }
        // A signed payload that is JSON but not an object.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(b"[1]");
        let input = format!("{header}.{payload}");
        let mut mac = key().mac();
        mac.update(input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            verify(&format!("{input}.{sig}"), &[&key()], 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn debug_redacts_key() {
        assert_eq!(format!("{:?}", key()), "AccessKey(<redacted>)");
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(token in ".{0,200}") {
            let _ = verify(&token, &[&key()], 0);
        }
    }
}
