//! The names `events` forwards to the service (token groups and roles in a `connect` answer, rooms it
//! joins, leaves and sends to): the protocol crate's rules ([`validate::group`]) plus what a name must never
//! hold once it travels in headers, JSON answers, logs and comma-joined lists: control characters (NUL,
//! newlines) and `,` (`webpubsub.sendToGroup.a,webpubsub.sendToGroup` would read as two roles).
//!
//! The protocol crate's name rules do not refuse these yet; when they do, this becomes a plain call to them.

use crate::webpubsub::validate;

/// Whether `name` holds a character no forwarded name may hold.
fn has_forbidden_character(name: &str) -> bool {
    name.chars().any(|c| c.is_control() || c == ',')
}

/// A group or room name: 1 to 1024 characters, not blank, no control characters, no `,`.
pub(super) fn is_group(name: &str) -> bool {
    validate::group(name).is_ok() && !has_forbidden_character(name)
}

/// A role: not blank, at most 1024 characters, no control characters, no `,`.
pub(super) fn is_role(role: &str) -> bool {
    let too_long = role.len() > validate::MAX_GROUP_LEN && role.chars().count() > validate::MAX_GROUP_LEN;
    !role.trim().is_empty() && !too_long && !has_forbidden_character(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_roles_refuse_controls_commas_blanks_and_overlong_names() {
        for good in ["lobby", "room-1", "zoë", "inbox.alice"] {
            assert!(is_group(good), "{good}");
            assert!(is_role(&format!("webpubsub.sendToGroup.{good}")), "{good}");
        }
        let long = "g".repeat(2000);
        for bad in ["", "  ", "room-1\u{0}", "a\nb", "a\rb", "a,b", "\u{7f}", long.as_str()] {
            assert!(!is_group(bad), "{bad:?}");
            assert!(!is_role(bad), "{bad:?}");
        }
        assert!(!is_role("webpubsub.sendToGroup.a,webpubsub.sendToGroup"));
    }
}
