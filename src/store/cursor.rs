//! The sync cursor (#16): a [`SyncPosition`] bound to its user, serialised as
//! `base64url(JSON) "." base64url(HMAC-SHA256(secret, JSON))`. The signature is checked (constant time)
//! before the JSON is parsed; a tampered, made-up or other user's cursor is a [`CursorError`] (→ 400).
//! The secret is created once in the store ([`Store::sync_secret`]) so every instance shares it.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Store, StoreError, StoreResult, now_ms};

/// Longest cursor accepted, before any decoding.
pub const MAX_CURSOR_LEN: usize = 64 * 1024;

/// Where a user's sync stands: per-conversation last seq, feed seq, membership-log seq.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPosition {
    #[serde(rename = "u")]
    /// The user the position belongs to (a cursor is refused for anyone else).
    pub user_id: String,
    #[serde(rename = "n")]
    /// Last notification feed `seq` seen.
    pub notifications: i64,
    #[serde(rename = "m")]
    /// Last membership-log `seq` seen.
    pub memberships: i64,
    #[serde(rename = "c")]
    /// Last message `seq` seen, per conversation id.
    pub conversations: BTreeMap<String, i64>,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is malformed")]
    /// Not base64, not JSON, or missing its signature.
    Malformed,
    #[error("cursor signature does not match")]
    /// Signed with another key or altered.
    BadSignature,
    #[error("cursor belongs to another user")]
    /// Issued to another user.
    OtherUser,
}

/// The shared key that signs cursors (redacted in Debug).
#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(***)")
    }
}

impl CursorKey {
    /// A key from raw bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// Serialises and signs a position.
    pub fn encode(&self, position: &SyncPosition) -> String {
        let json = serde_json::to_vec(position).expect("a position always serialises");
        let mut mac = self.mac();
        mac.update(&json);
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&json), URL_SAFE_NO_PAD.encode(tag))
    }

    /// Verifies and parses a cursor for `user_id`.
    pub fn decode(&self, cursor: &str, user_id: &str) -> Result<SyncPosition, CursorError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let (body, tag) = cursor.split_once('.').ok_or(CursorError::Malformed)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| CursorError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CursorError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&json);
        mac.verify_slice(&tag).map_err(|_| CursorError::BadSignature)?;
        let position: SyncPosition = serde_json::from_slice(&json).map_err(|_| CursorError::Malformed)?;
        if position.user_id != user_id {
            return Err(CursorError::OtherUser);
        }
        Ok(position)
    }
}

impl Store {
    /// The cursor-signing key: made once (random 32 bytes) and stored, the same for every instance.
    pub async fn sync_secret(&self) -> StoreResult<CursorKey> {
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        sqlx::query(
            "INSERT INTO store_secrets (name, value, created_at) VALUES ('sync_cursor', $1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(hex::encode(fresh))
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        let stored: String = sqlx::query_scalar("SELECT value FROM store_secrets WHERE name = 'sync_cursor'")
            .fetch_one(self.pool())
            .await?;
        hex::decode(stored)
            .map(CursorKey)
            .map_err(|e| StoreError::Corrupt(format!("sync secret: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> CursorKey {
        CursorKey::new(b"test key".to_vec())
    }

    fn position() -> SyncPosition {
        SyncPosition {
            user_id: "alice".into(),
            notifications: 3,
            memberships: 2,
            conversations: [("c".to_owned(), 7)].into(),
        }
    }

    #[test]
    fn round_trip() {
        let cursor = key().encode(&position());
        assert_eq!(key().decode(&cursor, "alice"), Ok(position()));
    }

    #[test]
    fn other_user_is_refused() {
        let cursor = key().encode(&position());
        assert_eq!(key().decode(&cursor, "bob"), Err(CursorError::OtherUser));
    }

    #[test]
    fn tampered_or_foreign_key_is_refused() {
        let cursor = key().encode(&position());
        let (body, tag) = cursor.split_once('.').unwrap();
        let mut forged = position();
        forged.conversations.insert("c".into(), 1);
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            key().decode(&format!("{forged_body}.{tag}"), "alice"),
            Err(CursorError::BadSignature)
        );
        assert_eq!(
            CursorKey::new(b"other".to_vec()).decode(&cursor, "alice"),
            Err(CursorError::BadSignature)
        );
        assert_eq!(key().decode(body, "alice"), Err(CursorError::Malformed));
        assert_eq!(key().decode("!!.!!", "alice"), Err(CursorError::Malformed));
        assert_eq!(
            key().decode(&"a".repeat(MAX_CURSOR_LEN + 1), "alice"),
            Err(CursorError::Malformed)
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        assert_eq!(format!("{:?}", key()), "CursorKey(***)");
    }

    proptest! {
        #[test]
        fn decode_never_panics(raw in ".{0,200}") {
            let _ = key().decode(&raw, "alice");
        }

        #[test]
        fn decode_of_signed_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut mac = key().mac();
            mac.update(&bytes);
            let tag = mac.finalize().into_bytes();
            let cursor = format!("{}.{}", URL_SAFE_NO_PAD.encode(&bytes), URL_SAFE_NO_PAD.encode(tag));
            prop_assert!(key().decode(&cursor, "alice").is_err() || serde_json::from_slice::<SyncPosition>(&bytes).is_ok());
        }
    }
}
