//! The bodies `manage` reads: a conversation to create and a system message.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::functions::durable::reply::{not_null, parse_json};

/// `{"id"?, "title"?, "members": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    #[serde(default, deserialize_with = "not_null")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub title: Option<String>,
    pub members: Vec<String>,
}

/// Most members one create may list.
const MAX_MEMBERS: usize = 1000;
/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 256;

/// The member in a `members/{userId}` path: a user id as negotiate takes one (1-256 characters, not blank,
/// no control characters), a 400 naming `userId` otherwise (fuzz finding ST201, #17).
pub(super) fn member_user_id(user: &str) -> Result<(), ApiError> {
    crate::auth::validate_user_id(user).map_err(|e| {
        ApiError::bad_request("InvalidField", format!("the member's userId is not usable: {e}"))
            .with_detail("field", "userId")
    })
}

pub(super) fn create(body: &Bytes) -> Result<Create, ApiError> {
    let create: Create = parse_json(body)?;
    if create.members.is_empty() || create.members.len() > MAX_MEMBERS {
        return Err(
            ApiError::bad_request("InvalidField", format!("members must list 1 to {MAX_MEMBERS} user ids"))
                .with_detail("field", "members"),
        );
    }
    if create
        .title
        .as_deref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS || t.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "InvalidField",
            format!("title must be at most {MAX_TITLE_CHARS} characters without control characters"),
        )
        .with_detail("field", "title"));
    }
    Ok(create)
}

/// `{"sender", "id"?, "body"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SystemMessage {
    pub sender: String,
    #[serde(default, deserialize_with = "not_null")]
    pub id: Option<String>,
    pub body: Value,
}

pub(super) fn system_message(body: &Bytes) -> Result<SystemMessage, ApiError> {
    let message: SystemMessage = parse_json(body)?;
    if message.body.is_null() {
        return Err(ApiError::bad_request("InvalidField", "body is required").with_detail("field", "body"));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_is_not_an_absent_id_or_title() {
        for body in [
            &br#"{"id":null,"members":["a"]}"#[..],
            br#"{"title":null,"members":["a"]}"#,
        ] {
            assert_eq!(create(&Bytes::from_static(body)).unwrap_err().code(), "InvalidJson");
        }
        let message = br#"{"sender":"bot","id":null,"body":{}}"#;
        assert_eq!(
            system_message(&Bytes::from_static(message)).unwrap_err().code(),
            "InvalidJson"
        );
        assert!(system_message(&Bytes::from_static(br#"{"sender":"bot","body":{}}"#)).is_ok());
    }

    #[test]
    fn create_needs_members_and_a_sane_title() {
        assert!(create(&Bytes::from_static(br#"{"members":["a"]}"#)).is_ok());
        assert_eq!(
            create(&Bytes::from_static(br#"{"members":[]}"#)).unwrap_err().code(),
            "InvalidField"
        );
        assert_eq!(
            create(&Bytes::from_static(br#"{"members":["a"],"title":"a\nb"}"#))
                .unwrap_err()
                .code(),
            "InvalidField"
        );
        assert_eq!(
            create(&Bytes::from_static(br#"{"members":["a"],"x":1}"#))
                .unwrap_err()
                .code(),
            "InvalidJson"
        );
        assert_eq!(create(&Bytes::from_static(b"nope")).unwrap_err().code(), "InvalidJson");
    }

    #[test]
    fn a_system_message_needs_sender_and_body() {
        assert!(system_message(&Bytes::from_static(br#"{"sender":"bot","body":"hi"}"#)).is_ok());
        assert_eq!(
            system_message(&Bytes::from_static(br#"{"body":"hi"}"#))
                .unwrap_err()
                .code(),
            "InvalidJson"
        );
        assert_eq!(
            system_message(&Bytes::from_static(br#"{"sender":"bot","body":null}"#))
                .unwrap_err()
                .code(),
            "InvalidField"
        );
    }
}
