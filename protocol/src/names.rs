//! Input rules for Web PubSub names, ids, messages and options (protocol reference §3 and §6): hubs,
//! groups, user event names, ids, message size and TTL, paging.
//!
//! Everything the REST client or the token issuer sends is checked here first, so bad input becomes a
//! [`ValidationError`] naming the field and never reaches the network; the emulator judges what it
//! receives by the same rules. Hub names compare case-insensitively ([`normalize_hub`]).

/// Longest hub name the service accepts (`^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$`).
pub const MAX_HUB_LEN: usize = 128;
/// Longest group name, in characters.
pub const MAX_GROUP_LEN: usize = 1024;
/// Largest message the service delivers: one WebSocket frame of 1 MB.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest `messageTtlSeconds`; 0 means "never expires".
pub const MAX_MESSAGE_TTL_SECONDS: u32 = 300;
/// Longest user event name.
pub const MAX_EVENT_NAME_LEN: usize = 128;
/// Largest `maxpagesize` for listing a group's connections.
pub const MAX_PAGE_SIZE: u32 = 200;

/// Why an input was refused before any call. [`ValidationError::field`] names the offending field and
/// [`ValidationError::code`] gives a stable code for API replies; messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A hub name outside the service's rule.
    #[error("hub must start with an ASCII letter followed by at most 127 ASCII letters, digits or _`,.[] characters")]
    InvalidHub,
    /// A group name outside the service's rule.
    #[error("group must be 1 to 1024 characters, not only whitespace, without control characters or `,`")]
    InvalidGroup,
    /// An empty list of groups.
    #[error("groups must name at least one group")]
    NoGroups,
    /// An empty connection id.
    #[error("connectionId must not be empty")]
    EmptyConnectionId,
    /// An empty user id.
    #[error("userId must not be empty")]
    EmptyUserId,
    /// An empty role.
    #[error("role must not be empty")]
    EmptyRole,
    /// A role with a control character or `,`.
    #[error("role must not contain control characters or `,`")]
    InvalidRole,
    /// A message body over the size limit.
    #[error("message is {size} bytes, more than the {limit}-byte limit")]
    MessageTooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A body sent as JSON that does not parse.
    #[error("message declared as application/json is not valid JSON")]
    InvalidJson,
    /// A message time-to-live outside 0–300 seconds.
    #[error("messageTtlSeconds must be from 0 to 300, got {0}")]
    TtlOutOfRange(u32),
    /// A permission name the service does not define.
    #[error("permission must be sendToGroup or joinLeaveGroup")]
    UnknownPermission,
    /// A client type the service does not define.
    #[error("clientType must be Default, MQTT or SocketIO")]
    UnknownClientType,
    /// An empty or blank OData filter.
    #[error("filter must not be empty or only whitespace")]
    EmptyFilter,
    /// A token lifetime in minutes below 1.
    #[error("minutesToExpire must be at least 1")]
    MinutesToExpireOutOfRange,
    /// A token lifetime outside 1 second to 24 hours.
    #[error("token lifetime must be from 1 second to 24 hours")]
    TokenLifetimeOutOfRange,
    /// A page size outside 1–200.
    #[error("maxpagesize must be from 1 to 200, got {0}")]
    PageSizeOutOfRange(u32),
    /// A `top` below 1.
    #[error("top must be at least 1")]
    TopOutOfRange,
    /// A send option the chosen target does not take.
    #[error("{option} is not supported when sending to a {target}")]
    UnsupportedOption {
        /// The option's field name.
        option: &'static str,
        /// The kind of target (e.g. connection, group).
        target: &'static str,
    },
    /// `.` or `..` where a URL path segment is built from the value.
    #[error("{field} cannot be \".\" or \"..\" because it is sent as a URL path segment")]
    DotPathSegment {
        /// The field that held the value.
        field: &'static str,
    },
}

impl ValidationError {
    /// The request field at fault, spelled as in the REST API (`hub`, `group`, `connectionId`, ...).
    pub fn field(&self) -> &'static str {
        match self {
            Self::InvalidHub => "hub",
            Self::InvalidGroup => "group",
            Self::NoGroups => "groups",
            Self::EmptyConnectionId => "connectionId",
            Self::EmptyUserId => "userId",
            Self::EmptyRole | Self::InvalidRole => "role",
            Self::MessageTooLarge { .. } | Self::InvalidJson => "message",
            Self::TtlOutOfRange(_) => "messageTtlSeconds",
            Self::UnknownPermission => "permission",
            Self::UnknownClientType => "clientType",
            Self::EmptyFilter => "filter",
            Self::MinutesToExpireOutOfRange => "minutesToExpire",
            Self::TokenLifetimeOutOfRange => "ttl",
            Self::PageSizeOutOfRange(_) => "maxpagesize",
            Self::TopOutOfRange => "top",
            Self::UnsupportedOption { option, .. } => option,
            Self::DotPathSegment { field } => field,
        }
    }

    /// A stable PascalCase code for the `{"code","message"}` error replies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidHub => "InvalidHub",
            Self::InvalidGroup | Self::NoGroups => "InvalidGroup",
            Self::EmptyConnectionId => "InvalidConnectionId",
            Self::EmptyUserId => "InvalidUserId",
            Self::EmptyRole | Self::InvalidRole => "InvalidRole",
            Self::MessageTooLarge { .. } => "MessageTooLarge",
            Self::InvalidJson => "InvalidJson",
            Self::TtlOutOfRange(_) => "InvalidMessageTtl",
            Self::UnknownPermission => "InvalidPermission",
            Self::UnknownClientType => "InvalidClientType",
            Self::EmptyFilter => "InvalidFilter",
            Self::MinutesToExpireOutOfRange | Self::TokenLifetimeOutOfRange => "InvalidTokenLifetime",
            Self::PageSizeOutOfRange(_) | Self::TopOutOfRange => "InvalidPaging",
            Self::UnsupportedOption { .. } => "UnsupportedOption",
            Self::DotPathSegment { field: "group" } => "InvalidGroup",
            Self::DotPathSegment { field: "userId" } => "InvalidUserId",
            Self::DotPathSegment { .. } => "InvalidConnectionId",
        }
    }
}

/// Checks a hub name against `^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$`.
pub fn hub(name: &str) -> Result<(), ValidationError> {
    let bytes = name.as_bytes();
    let valid_rest = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'`' | b',' | b'.' | b'[' | b']');
    match bytes.split_first() {
        Some((first, rest))
            if first.is_ascii_alphabetic() && bytes.len() <= MAX_HUB_LEN && rest.iter().all(valid_rest) =>
        {
            Ok(())
        }
        _ => Err(ValidationError::InvalidHub),
    }
}

/// Whether `name` holds a character no group or role name may: a control character (NUL, newlines...) or a
/// `,`, which joins lists in queries and settings, so `a,webpubsub.sendToGroup` could read as two names.
fn has_forbidden_character(name: &str) -> bool {
    name.chars().any(|c| c.is_control() || c == ',')
}

/// Checks a group name: 1 to 1024 characters, not only whitespace, no control character or `,`.
pub fn group(name: &str) -> Result<(), ValidationError> {
    // Byte length bounds the character count from above, so most names skip the count.
    let too_long = name.len() > MAX_GROUP_LEN && name.chars().count() > MAX_GROUP_LEN;
    if name.trim().is_empty() || too_long || has_forbidden_character(name) {
        return Err(ValidationError::InvalidGroup);
    }
    Ok(())
}

/// Checks a non-empty list of group names.
pub fn groups<S: AsRef<str>>(names: &[S]) -> Result<(), ValidationError> {
    if names.is_empty() {
        return Err(ValidationError::NoGroups);
    }
    names.iter().try_for_each(|name| group(name.as_ref()))
}

/// Checks a connection id: opaque, but never empty.
pub fn connection_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() {
        Err(ValidationError::EmptyConnectionId)
    } else {
        Ok(())
    }
}

/// Checks a user id: never empty.
pub fn user_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() {
        Err(ValidationError::EmptyUserId)
    } else {
        Ok(())
    }
}

/// Checks a role name: never empty, no control character or `,`.
pub fn role(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        Err(ValidationError::EmptyRole)
    } else if has_forbidden_character(name) {
        Err(ValidationError::InvalidRole)
    } else {
        Ok(())
    }
}

/// Checks that a message fits in one 1 MB frame.
pub fn message_size(size: usize) -> Result<(), ValidationError> {
    if size > MAX_MESSAGE_BYTES {
        return Err(ValidationError::MessageTooLarge {
            size,
            limit: MAX_MESSAGE_BYTES,
        });
    }
    Ok(())
}

/// Checks `messageTtlSeconds` (0 to 300).
pub fn message_ttl(seconds: u32) -> Result<(), ValidationError> {
    if seconds > MAX_MESSAGE_TTL_SECONDS {
        Err(ValidationError::TtlOutOfRange(seconds))
    } else {
        Ok(())
    }
}

/// Checks an OData filter is not blank (its grammar is the service's to judge).
pub fn filter(expression: &str) -> Result<(), ValidationError> {
    if expression.trim().is_empty() {
        Err(ValidationError::EmptyFilter)
    } else {
        Ok(())
    }
}

/// True when `name` is a valid user event name (`event` messages): `^[A-Za-z][A-Za-z0-9_.-]{0,127}$`.
pub fn is_valid_event_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && bytes.len() <= MAX_EVENT_NAME_LEN
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    }
}

/// The form hubs are stored and compared in: the service treats hub names case-insensitively.
pub fn normalize_hub(hub: &str) -> String {
    hub.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hub_accepts_the_documented_alphabet() {
        for name in ["a", "Chat", "hub_1", "a`,.[]", &format!("h{}", "x".repeat(127))] {
            assert_eq!(hub(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn hub_rejects_everything_else() {
        let too_long = format!("h{}", "x".repeat(128));
        for name in ["", "1hub", "_hub", "hub-1", "hub 1", "hüb", "hub/x", too_long.as_str()] {
            assert_eq!(hub(name), Err(ValidationError::InvalidHub), "{name:?}");
        }
    }

    #[test]
    fn group_length_counts_characters_not_bytes() {
        assert_eq!(group(&"é".repeat(1024)), Ok(()));
        assert_eq!(group(&"é".repeat(1025)), Err(ValidationError::InvalidGroup));
        assert_eq!(group(&"g".repeat(1024)), Ok(()));
        assert_eq!(group(&"g".repeat(1025)), Err(ValidationError::InvalidGroup));
    }

    #[test]
    fn group_rejects_empty_and_blank() {
        for name in ["", " ", "\t\n", "\u{3000}"] {
            assert_eq!(group(name), Err(ValidationError::InvalidGroup), "{name:?}");
        }
        assert_eq!(group(" a "), Ok(()));
    }

    #[test]
    fn group_and_role_names_refuse_control_characters_and_commas() {
        // #14 item 11.
        for bad in ["room-1\u{0}", "a\nb", "a\rb", "tab\there", "a\u{7f}", "a\u{85}", "a,b"] {
            assert_eq!(group(bad), Err(ValidationError::InvalidGroup), "{bad:?}");
            assert_eq!(role(bad), Err(ValidationError::InvalidRole), "{bad:?}");
        }
        assert_eq!(
            role("webpubsub.sendToGroup.a,webpubsub.sendToGroup"),
            Err(ValidationError::InvalidRole)
        );
        assert_eq!(ValidationError::InvalidRole.code(), "InvalidRole");
        assert_eq!(ValidationError::InvalidRole.field(), "role");
        for good in ["room 1", "ünï:cödé", "a.b;c"] {
            assert_eq!(group(good), Ok(()));
            assert_eq!(role(good), Ok(()));
        }
    }

    #[test]
    fn groups_needs_at_least_one_valid_group() {
        assert_eq!(groups::<&str>(&[]), Err(ValidationError::NoGroups));
        assert_eq!(groups(&["a", " "]), Err(ValidationError::InvalidGroup));
        assert_eq!(groups(&["a", "b"]), Ok(()));
    }

    #[test]
    fn ids_and_roles_must_not_be_empty() {
        assert_eq!(connection_id(""), Err(ValidationError::EmptyConnectionId));
        assert_eq!(user_id(""), Err(ValidationError::EmptyUserId));
        assert_eq!(role(""), Err(ValidationError::EmptyRole));
        assert_eq!(connection_id("c"), Ok(()));
        assert_eq!(user_id(" "), Ok(()), "user ids are opaque; only emptiness is refused");
        assert_eq!(role("webpubsub.sendToGroup"), Ok(()));
    }

    #[test]
    fn message_size_limit_is_one_mebibyte() {
        assert_eq!(message_size(MAX_MESSAGE_BYTES), Ok(()));
        assert_eq!(
            message_size(MAX_MESSAGE_BYTES + 1),
            Err(ValidationError::MessageTooLarge {
                size: MAX_MESSAGE_BYTES + 1,
                limit: MAX_MESSAGE_BYTES
            })
        );
    }

    #[test]
    fn ttl_is_zero_to_three_hundred() {
        assert_eq!(message_ttl(0), Ok(()));
        assert_eq!(message_ttl(300), Ok(()));
        assert_eq!(message_ttl(301), Err(ValidationError::TtlOutOfRange(301)));
    }

    #[test]
    fn filter_must_not_be_blank() {
        assert_eq!(filter("  "), Err(ValidationError::EmptyFilter));
        assert_eq!(filter("'g1' in groups"), Ok(()));
    }

    #[test]
    fn event_names() {
        assert!(is_valid_event_name("message"));
        assert!(is_valid_event_name("Chat.Send-1_x"));
        assert!(is_valid_event_name(&format!("a{}", "b".repeat(127))));
        assert!(!is_valid_event_name(""));
        assert!(!is_valid_event_name("1abc"));
        assert!(!is_valid_event_name("a b"));
        assert!(!is_valid_event_name("é"));
        assert!(!is_valid_event_name(&format!("a{}", "b".repeat(128))));
    }

    #[test]
    fn hubs_normalize_to_lowercase() {
        assert_eq!(normalize_hub("Chat_A"), "chat_a");
    }

    #[test]
    fn every_error_names_its_field_and_code() {
        let unsupported = ValidationError::UnsupportedOption {
            option: "excluded",
            target: "user",
        };
        assert_eq!(unsupported.field(), "excluded");
        assert_eq!(
            unsupported.to_string(),
            "excluded is not supported when sending to a user"
        );
        assert_eq!(ValidationError::TtlOutOfRange(999).field(), "messageTtlSeconds");
        assert_eq!(ValidationError::InvalidHub.code(), "InvalidHub");
    }

    proptest! {
        #[test]
        fn validators_never_panic(input in any::<String>()) {
            let _ = hub(&input);
            let _ = group(&input);
            let _ = filter(&input);
            let _ = is_valid_event_name(&input);
        }

        #[test]
        fn hub_matches_the_reference_pattern(input in "[A-Za-z0-9_`,.\\[\\] é-]{0,130}") {
            let bytes = input.as_bytes();
            let expected = !bytes.is_empty()
                && bytes[0].is_ascii_alphabetic()
                && bytes.len() <= 128
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_`,.[]".contains(b));
            prop_assert_eq!(hub(&input).is_ok(), expected);
        }
    }
}
