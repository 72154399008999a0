//! The rules every user id must pass before it is put into a Web PubSub token, whatever its source (App
//! Service principal, bearer-token claim or an anonymous caller's choice).
//!
//! The service only requires a non-empty id; the bounds here keep tokens and logs small and keep control
//! characters (log forging, odd header values downstream) out.

/// Longest user id accepted, in characters.
pub(crate) const MAX_USER_ID_CHARS: usize = 256;

/// Why a user id was refused. Messages never echo the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("the user id is empty or only whitespace")]
    Empty,
    #[error("the user id is longer than {MAX_USER_ID_CHARS} characters")]
    TooLong,
    #[error("the user id contains control characters")]
    ControlCharacter,
}

/// Checks a user id: 1 to [`MAX_USER_ID_CHARS`] characters, not only whitespace, no control characters.
pub(crate) fn validate_user_id(id: &str) -> Result<(), UserIdError> {
    if id.trim().is_empty() {
        return Err(UserIdError::Empty);
    }
    // Byte length bounds the character count from above, so most ids skip the count.
    if id.len() > MAX_USER_ID_CHARS && id.chars().count() > MAX_USER_ID_CHARS {
        return Err(UserIdError::TooLong);
    }
    if id.chars().any(char::is_control) {
        return Err(UserIdError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in [
            "ada",
            "ada@example.com",
            "00000000-0000-0000-0000-000000000001",
            "Zoë Ünal",
            "a b",
        ] {
            assert_eq!(validate_user_id(id), Ok(()), "{id}");
        }
        assert_eq!(validate_user_id(&"é".repeat(MAX_USER_ID_CHARS)), Ok(()));
    }

    #[test]
    fn refuses_empty_and_blank_ids() {
        assert_eq!(validate_user_id(""), Err(UserIdError::Empty));
        assert_eq!(validate_user_id(" \t "), Err(UserIdError::Empty));
    }

    #[test]
    fn refuses_long_ids() {
        assert_eq!(
            validate_user_id(&"a".repeat(MAX_USER_ID_CHARS + 1)),
            Err(UserIdError::TooLong)
        );
    }

    #[test]
    fn refuses_control_characters() {
        assert_eq!(
            validate_user_id("ada\nuser_id=root"),
            Err(UserIdError::ControlCharacter)
        );
        assert_eq!(validate_user_id("a\u{7f}"), Err(UserIdError::ControlCharacter));
    }

    proptest! {
        #[test]
        fn never_panics(id in "\\PC*|[\\x00-\\x1f]*") {
            let _ = validate_user_id(&id);
        }
    }
}
