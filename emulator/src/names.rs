//! Validation of the names clients and REST callers send: hubs, groups and user event names.
//!
//! The rules are the service's: a hub matches `^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$`, a group
//! has 1 to 1024 characters and is not only whitespace, and an event name matches
//! `^[a-z][a-z0-9_.-]{0,127}$` ignoring case. Hub names are compared lowercased everywhere
//! in the emulator, as Microsoft's emulator does.

/// Longest group name the service accepts, in characters.
pub const MAX_GROUP_CHARS: usize = 1024;

/// True when `hub` is a valid hub name (before lowercasing).
pub fn is_valid_hub(hub: &str) -> bool {
    let mut chars = hub.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && hub.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '`' | ',' | '.' | '[' | ']'))
}

/// The form hubs are stored and compared in.
pub fn normalize_hub(hub: &str) -> String {
    hub.to_ascii_lowercase()
}

/// True when `group` is a valid group name.
pub fn is_valid_group(group: &str) -> bool {
    let count = group.chars().count();
    (1..=MAX_GROUP_CHARS).contains(&count) && !group.chars().all(char::is_whitespace)
}

/// True when `name` is a valid user event name (`event` messages).
pub fn is_valid_event_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names() {
        assert!(is_valid_hub("chat"));
        assert!(is_valid_hub("Chat_1.a`b,c[d]"));
        assert!(is_valid_hub(&format!("a{}", "b".repeat(127))));
        assert!(!is_valid_hub(&format!("a{}", "b".repeat(128))));
        assert!(!is_valid_hub(""));
        assert!(!is_valid_hub("1chat"));
        assert!(!is_valid_hub("chat room"));
        assert!(!is_valid_hub("chat/room"));
        assert!(!is_valid_hub("chät"));
    }

    #[test]
    fn group_names() {
        assert!(is_valid_group("g"));
        assert!(is_valid_group(" g "));
        assert!(is_valid_group(&"é".repeat(1024)));
        assert!(!is_valid_group(&"g".repeat(1025)));
        assert!(!is_valid_group(""));
        assert!(!is_valid_group(" \t "));
    }

    #[test]
    fn event_names() {
        assert!(is_valid_event_name("message"));
        assert!(is_valid_event_name("Chat.Send-1_x"));
        assert!(!is_valid_event_name(""));
        assert!(!is_valid_event_name("1abc"));
        assert!(!is_valid_event_name("a b"));
        assert!(!is_valid_event_name(&format!("a{}", "b".repeat(128))));
    }

    proptest::proptest! {
        #[test]
        fn validators_never_panic(s in ".*") {
            let _ = is_valid_hub(&s);
            let _ = is_valid_group(&s);
            let _ = is_valid_event_name(&s);
        }
    }
}
