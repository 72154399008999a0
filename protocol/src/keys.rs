//! Access keys: the [`AccessKey`] secret newtype and [`ServiceKeys`], the primary key plus an optional
//! secondary key for rotation.
//!
//! Keys are turned into prepared HMAC-SHA256 states once, when configured; every token signature and
//! upstream signature check then clones a prepared state instead of re-deriving it from the key.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256, the MAC of tokens and `ce-signature`.
pub type HmacSha256 = Hmac<Sha256>;

const REDACTED: &str = "<redacted>";

/// A Web PubSub access key. `Debug` and `Display` print `<redacted>`; only [`AccessKey::expose_secret`]
/// reveals it. The HMAC key is the UTF-8 bytes of this string (never base64-decoded), as in every SDK.
#[derive(Clone)]
pub struct AccessKey(String);

/// The reason an access key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access key must not be empty or only whitespace")]
pub struct EmptyAccessKey;

impl AccessKey {
    /// Wraps a key, refusing an empty or whitespace-only one. Surrounding whitespace is kept: the key
    /// is used byte for byte.
    pub fn new(key: impl Into<String>) -> Result<Self, EmptyAccessKey> {
        let key = key.into();
        if key.trim().is_empty() {
            return Err(EmptyAccessKey);
        }
        Ok(Self(key))
    }

    /// The key itself, for signing. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// A fresh HMAC-SHA256 state keyed with this key, ready to clone per message.
    pub fn hmac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(self.0.as_bytes()).expect("HMAC-SHA256 accepts any key length")
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccessKey").field(&format_args!("{REDACTED}")).finish()
    }
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PreparedKey").field(&self.key).finish()
    }
}

impl fmt::Display for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// An access key with its prepared HMAC state.
#[derive(Clone)]
pub struct PreparedKey {
    key: AccessKey,
    mac: HmacSha256,
}

impl PreparedKey {
    /// Prepares `key`'s HMAC state once.
    pub fn new(key: AccessKey) -> Self {
        let mac = key.hmac();
        Self { key, mac }
    }

    /// The key itself.
    pub fn key(&self) -> &AccessKey {
        &self.key
    }

    /// A copy of the keyed state; feed it the message and finalize.
    pub fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

/// The keys a service accepts: the primary key (which signs everything this crate issues) and, during a
/// rotation, the secondary key. Upstream signature checks accept a signature made with either.
#[derive(Clone)]
pub struct ServiceKeys {
    primary: PreparedKey,
    secondary: Option<PreparedKey>,
}

impl ServiceKeys {
    /// Keys with only a primary key.
    pub fn new(primary: AccessKey) -> Self {
        Self {
            primary: PreparedKey::new(primary),
            secondary: None,
        }
    }

    /// Adds (or replaces) the secondary key.
    pub fn with_secondary(mut self, secondary: AccessKey) -> Self {
        self.secondary = Some(PreparedKey::new(secondary));
        self
    }

    /// The primary key.
    pub fn primary(&self) -> &AccessKey {
        self.primary.key()
    }

    /// The secondary key, if one is configured.
    pub fn secondary(&self) -> Option<&AccessKey> {
        self.secondary.as_ref().map(PreparedKey::key)
    }

    /// The primary key's prepared state, then the secondary's.
    pub fn prepared(&self) -> impl Iterator<Item = &PreparedKey> {
        std::iter::once(&self.primary).chain(self.secondary.as_ref())
    }
}

impl fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("primary", self.primary())
            .field("secondary", &self.secondary())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

    #[test]
    fn debug_and_display_never_show_the_key() {
        let key = AccessKey::new(KEY).unwrap();
        let keys = ServiceKeys::new(key.clone()).with_secondary(AccessKey::new("second-key-value").unwrap());
        for text in [
            format!("{key:?}"),
            format!("{key}"),
            format!("{keys:?}"),
            format!("{keys:#?}"),
        ] {
            assert!(!text.contains(KEY) && !text.contains("second-key-value"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        assert_eq!(format!("{key:?}"), "AccessKey(<redacted>)");
    }

    #[test]
    fn empty_or_blank_keys_are_refused() {
        assert_eq!(AccessKey::new("").unwrap_err(), EmptyAccessKey);
        assert_eq!(AccessKey::new(" \t").unwrap_err(), EmptyAccessKey);
    }

    #[test]
    fn the_key_is_kept_byte_for_byte() {
        assert_eq!(AccessKey::new(" k= ").unwrap().expose_secret(), " k= ");
    }

    #[test]
    fn prepared_states_are_primary_then_secondary() {
        let keys = ServiceKeys::new(AccessKey::new("one").unwrap());
        assert_eq!(keys.prepared().count(), 1);
        assert!(keys.secondary().is_none());
        let keys = keys.with_secondary(AccessKey::new("two").unwrap());
        let names: Vec<_> = keys.prepared().map(|k| k.key().expose_secret().to_owned()).collect();
        assert_eq!(names, ["one", "two"]);
    }

    #[test]
    fn prepared_mac_equals_a_freshly_keyed_mac() {
        let prepared = PreparedKey::new(AccessKey::new(KEY).unwrap());
        let mut reused = prepared.mac();
        reused.update(b"message");
        let mut fresh = HmacSha256::new_from_slice(KEY.as_bytes()).unwrap();
        fresh.update(b"message");
        assert_eq!(reused.finalize().into_bytes(), fresh.finalize().into_bytes());
    }
}
