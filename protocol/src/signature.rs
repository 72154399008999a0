//! The upstream `ce-signature` header (protocol reference §4): `sha256=<hex>[,sha256=<hex>]`, one value
//! per access key, each `hex(HMAC-SHA256(key = UTF-8 access key, message = UTF-8 connection id))`.
//!
//! [`verify`] accepts the header when any listed value was made with any configured key (primary or
//! secondary), comparing tags in constant time with `Mac::verify_slice`. [`sign`] and
//! [`signature_header`] produce the header, for tests, benchmarks and the local emulator.

use hmac::Mac;

use crate::keys::{AccessKey, PreparedKey, ServiceKeys};

/// The prefix of every signature value.
const PREFIX: &str = "sha256=";
/// Hex length of a 32-byte HMAC-SHA256 tag.
const TAG_HEX_LEN: usize = 64;
/// More values than any service sends (it sends one per key, at most two); bounds the work per request.
pub const MAX_SIGNATURE_VALUES: usize = 8;

/// Why a `ce-signature` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header, or an empty one.
    #[error("ce-signature header is missing or empty")]
    Missing,
    /// More values than [`MAX_SIGNATURE_VALUES`].
    #[error("ce-signature header lists more than {MAX_SIGNATURE_VALUES} values")]
    TooManyValues,
    /// No value has the `sha256=<64 hex digits>` form.
    #[error("ce-signature header has no well-formed sha256=<64 hex digits> value")]
    Malformed,
    /// Well-formed, but signed with none of the configured keys.
    #[error("ce-signature does not match any configured access key")]
    Mismatch,
}

/// `sha256=<lowercase hex>` for one key and connection id.
pub fn sign(key: &AccessKey, connection_id: &str) -> String {
    sign_prepared(&PreparedKey::new(key.clone()), connection_id)
}

/// The header a service with these keys would send: one value per key, primary first, `,`-separated.
pub fn signature_header(keys: &ServiceKeys, connection_id: &str) -> String {
    keys.prepared()
        .map(|key| sign_prepared(key, connection_id))
        .collect::<Vec<_>>()
        .join(",")
}

fn sign_prepared(key: &PreparedKey, connection_id: &str) -> String {
    let mut mac = key.mac();
    mac.update(connection_id.as_bytes());
    let mut value = String::with_capacity(PREFIX.len() + TAG_HEX_LEN);
    value.push_str(PREFIX);
    value.push_str(&hex::encode(mac.finalize().into_bytes()));
    value
}

/// Checks a `ce-signature` header for `connection_id` against every configured key.
///
/// Values are separated by `,` and/or spaces; the `sha256=` prefix and the hex digits are
/// case-insensitive. Every well-formed value is checked against every key, without stopping early, so
/// the time taken does not depend on which key or value matched.
pub fn verify(keys: &ServiceKeys, connection_id: &str, header_value: &str) -> Result<(), SignatureError> {
    let mut values = header_value.split([',', ' ']).filter(|v| !v.is_empty()).peekable();
    if values.peek().is_none() {
        return Err(SignatureError::Missing);
    }
    let mut well_formed = false;
    let mut matched = false;
    for (index, value) in values.enumerate() {
        if index == MAX_SIGNATURE_VALUES {
            return Err(SignatureError::TooManyValues);
        }
        let Some(tag) = decode_value(value) else {
            continue;
        };
        well_formed = true;
        for key in keys.prepared() {
            let mut mac = key.mac();
            mac.update(connection_id.as_bytes());
            matched |= mac.verify_slice(&tag).is_ok();
        }
    }
    match (matched, well_formed) {
        (true, _) => Ok(()),
        (false, true) => Err(SignatureError::Mismatch),
        (false, false) => Err(SignatureError::Malformed),
    }
}

/// `sha256=<64 hex>` → the 32-byte tag.
fn decode_value(value: &str) -> Option<[u8; 32]> {
    let (prefix, digits) = value.split_at_checked(PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(PREFIX) || digits.len() != TAG_HEX_LEN {
        return None;
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(digits, &mut tag).ok()?;
    Some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
    const SECOND: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvu";
    /// `hmac.new(KEY.encode(), b"conn-1", hashlib.sha256).hexdigest()` (Python standard library).
    const KNOWN: &str = "sha256=261f7f58ff9fb9bb8be7e4951a807fe6091e5c074885bf63b865eccd28728881";

    fn key(k: &str) -> AccessKey {
        AccessKey::new(k).unwrap()
    }

    fn primary_only() -> ServiceKeys {
        ServiceKeys::new(key(KEY))
    }

    fn both() -> ServiceKeys {
        ServiceKeys::new(key(KEY)).with_secondary(key(SECOND))
    }

    #[test]
    fn sign_matches_a_known_answer() {
        assert_eq!(sign(&key(KEY), "conn-1"), KNOWN);
    }

    #[test]
    fn header_lists_primary_then_secondary() {
        let header = signature_header(&both(), "conn-1");
        assert_eq!(header, format!("{KNOWN},{}", sign(&key(SECOND), "conn-1")));
        assert_eq!(signature_header(&primary_only(), "conn-1"), KNOWN);
    }

    #[test]
    fn accepts_the_primary_signature() {
        assert_eq!(verify(&primary_only(), "conn-1", KNOWN), Ok(()));
    }

    #[test]
    fn accepts_a_secondary_key_signature_alone() {
        let from_secondary = sign(&key(SECOND), "conn-1");
        assert_eq!(verify(&both(), "conn-1", &from_secondary), Ok(()));
        assert_eq!(
            verify(&primary_only(), "conn-1", &from_secondary),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn accepts_any_listed_value_with_comma_or_space_separators() {
        let other = sign(&key("some-other-key"), "conn-1");
        for header in [
            format!("{other},{KNOWN}"),
            format!("{other}, {KNOWN}"),
            format!("{other} {KNOWN}"),
            format!(" ,{KNOWN}, "),
        ] {
            assert_eq!(verify(&primary_only(), "conn-1", &header), Ok(()), "{header}");
        }
    }

    #[test]
    fn accepts_uppercase_hex_and_prefix() {
        assert_eq!(verify(&primary_only(), "conn-1", &KNOWN.to_uppercase()), Ok(()));
    }

    #[test]
    fn rejects_a_missing_header() {
        assert_eq!(verify(&primary_only(), "conn-1", ""), Err(SignatureError::Missing));
        assert_eq!(verify(&primary_only(), "conn-1", " , "), Err(SignatureError::Missing));
    }

    #[test]
    fn rejects_malformed_values() {
        let digits = &KNOWN[PREFIX.len()..];
        for header in [
            digits.to_owned(),                   // no prefix
            format!("sha1={digits}"),            // wrong algorithm
            format!("sha256={}", &digits[1..]),  // too short
            format!("sha256={digits}0"),         // too long
            format!("sha256={}g", &digits[1..]), // not hex
            "sha256=".to_owned(),
        ] {
            assert_eq!(
                verify(&primary_only(), "conn-1", &header),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn rejects_a_signature_for_another_connection() {
        assert_eq!(verify(&primary_only(), "conn-2", KNOWN), Err(SignatureError::Mismatch));
    }

    #[test]
    fn rejects_a_malformed_value_next_to_a_wrong_one_as_mismatch() {
        let wrong = sign(&key("other"), "conn-1");
        assert_eq!(
            verify(&both(), "conn-1", &format!("junk,{wrong}")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_too_many_values() {
        let header = [KNOWN; MAX_SIGNATURE_VALUES + 1].join(",");
        assert_eq!(
            verify(&primary_only(), "conn-1", &header),
            Err(SignatureError::TooManyValues)
        );
        let header = [KNOWN; MAX_SIGNATURE_VALUES].join(",");
        assert_eq!(verify(&primary_only(), "conn-1", &header), Ok(()));
    }

    proptest! {
        #[test]
        fn verify_never_panics(header in any::<String>(), connection_id in any::<String>()) {
            let _ = verify(&both(), &connection_id, &header);
        }

        #[test]
        fn sign_then_verify_round_trips(connection_id in any::<String>()) {
            let header = signature_header(&both(), &connection_id);
            prop_assert_eq!(verify(&both(), &connection_id, &header), Ok(()));
        }
    }
}
