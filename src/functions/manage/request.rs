//! The bodies `manage` reads: a conversation to create and a system message.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::functions::durable::reply::{not_null, parse_json};
use crate::store::notifications::Audience;

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

/// Most recipients one notification may list (`userIds`).
pub(super) const MAX_RECIPIENTS: usize = 10_000;

/// `{"id"?, "userIds": [...] | "conversationId", "data"}` (#16).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NotifyBody {
    #[serde(default, deserialize_with = "not_null")]
    id: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    user_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "not_null")]
    conversation_id: Option<String>,
    data: Value,
}

/// A notification to create.
#[derive(Debug)]
pub(super) struct Notify {
    pub id: Option<String>,
    pub audience: Audience,
    pub data: Value,
}

pub(super) fn notify(body: &Bytes) -> Result<Notify, ApiError> {
    let body: NotifyBody = parse_json(body)?;
    if body.data.is_null() {
        return Err(ApiError::bad_request("InvalidField", "data is required").with_detail("field", "data"));
    }
    let audience = match (body.user_ids, body.conversation_id) {
        (Some(users), None) => {
            if users.is_empty() || users.len() > MAX_RECIPIENTS {
                return Err(ApiError::bad_request(
                    "InvalidField",
                    format!("userIds must list 1 to {MAX_RECIPIENTS} user ids"),
                )
                .with_detail("field", "userIds"));
            }
            if let Some(reason) = users.iter().find_map(|user| crate::auth::validate_user_id(user).err()) {
                return Err(ApiError::bad_request(
                    "InvalidField",
                    format!("every entry of userIds must be a usable user id: {reason}"),
                )
                .with_detail("field", "userIds"));
            }
            Audience::Users(users)
        }
        (None, Some(conversation)) => Audience::Conversation(conversation),
        _ => {
            return Err(
                ApiError::bad_request("InvalidField", "give userIds or conversationId, exactly one of them")
                    .with_detail("field", "userIds"),
            );
        }
    };
    Ok(Notify {
        id: body.id,
        audience,
        data: body.data,
    })
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

    #[test]
    fn a_notification_names_users_or_a_conversation() {
        let parse = |b: &'static [u8]| notify(&Bytes::from_static(b));
        let users = parse(br#"{"userIds":["a","b"],"data":{"x":1}}"#).unwrap();
        assert_eq!(users.audience, Audience::Users(vec!["a".into(), "b".into()]));
        let conv = parse(br#"{"id":"n-1","conversationId":"c","data":1}"#).unwrap();
        assert_eq!(conv.audience, Audience::Conversation("c".into()));
        assert_eq!(conv.id.as_deref(), Some("n-1"));
        for bad in [
            &br#"{"userIds":["a"],"conversationId":"c","data":1}"#[..],
            br#"{"data":1}"#,
            br#"{"userIds":[],"data":1}"#,
            br#"{"userIds":["a"],"data":null}"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().code(), "InvalidField", "{bad:?}");
        }
        assert_eq!(parse(br#"{"userIds":["a"]}"#).unwrap_err().code(), "InvalidJson");
        let long = format!(r#"{{"userIds":["{}"],"data":1}}"#, "0".repeat(257));
        assert_eq!(notify(&Bytes::from(long)).unwrap_err().code(), "InvalidField");
        assert_eq!(
            parse(br#"{"userIds":[""],"data":1}"#).unwrap_err().code(),
            "InvalidField"
        );
        // Absent is fine, an explicit null is not: the contract types these as non-nullable (fuzz, ST201).
        for body in [
            &br#"{"userIds":["a"],"conversationId":null,"data":1}"#[..],
            br#"{"id":null,"userIds":["a"],"data":1}"#,
            br#"{"userIds":null,"conversationId":"c","data":1}"#,
        ] {
            assert_eq!(
                parse(body).unwrap_err().code(),
                "InvalidJson",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            parse(br#"{"userIds":["a"],"data":1,"x":1}"#).unwrap_err().code(),
            "InvalidJson"
        );
    }
}
