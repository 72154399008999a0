//! HS256 JSON Web Tokens signed with an access key: the one signing path under both client access
//! tokens and REST bearer tokens.
//!
//! The header is the constant `{"alg":"HS256","typ":"JWT"}` that the JavaScript and Python SDKs emit
//! (no `kid`), pre-encoded once; the key's HMAC state is prepared once and cloned per token. That keeps
//! a signature to two small allocations (claims JSON, token string) and makes our tokens byte-for-byte
//! comparable with the SDKs' in known-answer tests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::Serialize;

use super::keys::{AccessKey, PreparedKey};

/// base64url of `{"alg":"HS256","typ":"JWT"}`.
const HEADER_SEGMENT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// Length of a base64url-encoded 32-byte HMAC-SHA256 tag.
const SIGNATURE_SEGMENT_LEN: usize = 43;

/// Signs claims into compact HS256 JWTs with one access key.
#[derive(Clone)]
pub(crate) struct Hs256Signer {
    key: PreparedKey,
}

impl Hs256Signer {
    pub(crate) fn new(key: &AccessKey) -> Self {
        Self {
            key: PreparedKey::new(key.clone()),
        }
    }

    /// `base64url(header) . base64url(claims JSON) . base64url(HMAC-SHA256)`.
    pub(crate) fn sign<C: Serialize>(&self, claims: &C) -> String {
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
