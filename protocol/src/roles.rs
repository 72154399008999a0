//! Client roles and the group permissions they grant, including wildcard group patterns: the one role
//! parser ([`parse_role`], [`RoleSet`]) behind the handler's role policy and the emulator's checks.
//!
//! `webpubsub.joinLeaveGroup` / `webpubsub.sendToGroup` cover every group; a `.<group>`
//! suffix covers exactly that group; `webpubsub.joinLeaveGroups.<pattern>` /
//! `webpubsub.sendToGroups.<pattern>` cover the groups the pattern matches. In a pattern `?`
//! is one character other than `.`, `*` is a run without `.`, `**` is any run, `\` escapes
//! `\`, `*` or `?`, and at most five `*` characters may appear (those of `**` included).
//! Matching is case-sensitive. A malformed pattern grants nothing.

use std::fmt;
use std::str::FromStr;

use crate::names::ValidationError;

/// Grants joining and leaving every group; `webpubsub.joinLeaveGroup.<group>` grants one group.
pub const JOIN_LEAVE_GROUP_ROLE: &str = "webpubsub.joinLeaveGroup";
/// Grants publishing to every group; `webpubsub.sendToGroup.<group>` grants one group.
pub const SEND_TO_GROUP_ROLE: &str = "webpubsub.sendToGroup";
/// `webpubsub.joinLeaveGroups.<pattern>`: joining and leaving the groups a wildcard pattern matches.
pub const JOIN_LEAVE_GROUPS_PREFIX: &str = "webpubsub.joinLeaveGroups.";
/// `webpubsub.sendToGroups.<pattern>`: publishing to the groups a wildcard pattern matches.
pub const SEND_TO_GROUPS_PREFIX: &str = "webpubsub.sendToGroups.";

/// A permission a connection can be granted on a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `sendToGroup`: may publish to the group.
    SendToGroup,
    /// `joinLeaveGroup`: may join and leave the group.
    JoinLeaveGroup,
}

impl Permission {
    /// The roles granting it: the literal (every group; with `.<group>`, that group) and the wildcard
    /// prefix (`<prefix><pattern>`).
    fn role_prefixes(self) -> (&'static str, &'static str) {
        match self {
            Self::JoinLeaveGroup => (JOIN_LEAVE_GROUP_ROLE, JOIN_LEAVE_GROUPS_PREFIX),
            Self::SendToGroup => (SEND_TO_GROUP_ROLE, SEND_TO_GROUPS_PREFIX),
        }
    }

    /// The name used in REST paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendToGroup => "sendToGroup",
            Self::JoinLeaveGroup => "joinLeaveGroup",
        }
    }
}

impl FromStr for Permission {
    type Err = ValidationError;

    /// Parses `sendToGroup` or `joinLeaveGroup`, ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name.eq_ignore_ascii_case("sendToGroup") {
            Ok(Self::SendToGroup)
        } else if name.eq_ignore_ascii_case("joinLeaveGroup") {
            Ok(Self::JoinLeaveGroup)
        } else {
            Err(ValidationError::UnknownPermission)
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one role string grants for one permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every group (`webpubsub.joinLeaveGroup`, `webpubsub.sendToGroup`).
    AnyGroup,
    /// Exactly this group (`webpubsub.sendToGroup.<group>`).
    Group(String),
    /// The groups a wildcard pattern matches (`webpubsub.sendToGroups.<pattern>`).
    Pattern(GroupPattern),
}

impl Grant {
    /// True when this grant covers `group`.
    pub fn covers(&self, group: &str) -> bool {
        match self {
            Self::AnyGroup => true,
            Self::Group(g) => g == group,
            Self::Pattern(p) => p.matches(group),
        }
    }
}

/// The one role parser: what `role` grants, and for which permission. `None` for roles that grant no
/// group permission (unknown roles, `webpubsub.sendToGroupX`, malformed patterns, an empty `.<group>`, a
/// control character or `,` anywhere).
pub fn parse_role(role: &str) -> Option<(Permission, Grant)> {
    [Permission::JoinLeaveGroup, Permission::SendToGroup]
        .into_iter()
        .find_map(|permission| parse_grant(role, permission).map(|grant| (permission, grant)))
}

/// The roles of a connection, pre-parsed so checks on the hot path do no string parsing.
#[derive(Debug, Clone, Default)]
pub struct RoleSet {
    roles: Vec<String>,
    join_leave: Vec<Grant>,
    send: Vec<Grant>,
}

impl RoleSet {
    /// Parses role strings; unknown or malformed roles are kept for display but grant nothing.
    pub fn new(roles: Vec<String>) -> RoleSet {
        let join_leave = roles
            .iter()
            .filter_map(|r| parse_grant(r, Permission::JoinLeaveGroup))
            .collect();
        let send = roles
            .iter()
            .filter_map(|r| parse_grant(r, Permission::SendToGroup))
            .collect();
        RoleSet {
            roles,
            join_leave,
            send,
        }
    }

    /// The role strings as given.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// True when some role grants `permission` on `group`.
    pub fn allows(&self, permission: Permission, group: &str) -> bool {
        let grants = match permission {
            Permission::JoinLeaveGroup => &self.join_leave,
            Permission::SendToGroup => &self.send,
        };
        grants.iter().any(|grant| grant.covers(group))
    }
}

fn parse_grant(role: &str, permission: Permission) -> Option<Grant> {
    // A control character or `,` makes no role (`webpubsub.sendToGroup.a,webpubsub.sendToGroup`).
    crate::names::role(role).ok()?;
    let (literal, pattern_prefix) = permission.role_prefixes();
    if role == literal {
        return Some(Grant::AnyGroup);
    }
    if let Some(pattern) = role.strip_prefix(pattern_prefix) {
        return GroupPattern::parse(pattern).map(Grant::Pattern);
    }
    role.strip_prefix(literal)
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|group| !group.is_empty())
        .map(|group| Grant::Group(group.to_owned()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `.`.
    One,
    /// `*`: zero or more characters other than `.`.
    Segment,
    /// `**`: zero or more characters of any kind.
    Any,
}

/// A parsed wildcard group pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPattern {
    tokens: Vec<Token>,
}

/// Most `*` characters a pattern may contain.
const MAX_STARS: usize = 5;

impl GroupPattern {
    /// Parses a pattern; `None` when it is empty, has more than five `*`, three `*` in a
    /// row, a dangling `\` or an escape of anything but `\`, `*`, `?`.
    pub fn parse(pattern: &str) -> Option<GroupPattern> {
        if pattern.is_empty() || pattern.chars().filter(|&c| c == '*').count() > MAX_STARS {
            return None;
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('\\' | '*' | '?')) => tokens.push(Token::Literal(escaped)),
                    _ => return None,
                },
                '?' => tokens.push(Token::One),
                '*' => {
                    if chars.peek() == Some(&'*') {
                        chars.next();
                        if chars.peek() == Some(&'*') {
                            return None;
                        }
                        tokens.push(Token::Any);
                    } else {
                        tokens.push(Token::Segment);
                    }
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Some(GroupPattern { tokens })
    }

    /// True when the whole of `group` matches. Dynamic programming over (token, char)
    /// positions, so the cost is bounded by pattern length × group length.
    pub fn matches(&self, group: &str) -> bool {
        let text: Vec<char> = group.chars().collect();
        // reachable[j]: the tokens consumed so far can match exactly text[..j].
        let mut reachable = vec![false; text.len() + 1];
        reachable[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; text.len() + 1];
            match token {
                Token::Literal(c) => {
                    for j in 0..text.len() {
                        next[j + 1] = reachable[j] && text[j] == *c;
                    }
                }
                Token::One => {
                    for j in 0..text.len() {
                        next[j + 1] = reachable[j] && text[j] != '.';
                    }
                }
                Token::Segment => {
                    next[0] = reachable[0];
                    for j in 0..text.len() {
                        next[j + 1] = reachable[j + 1] || (next[j] && text[j] != '.');
                    }
                }
                Token::Any => {
                    next[0] = reachable[0];
                    for j in 0..text.len() {
                        next[j + 1] = reachable[j + 1] || next[j];
                    }
                }
            }
            reachable = next;
            if !reachable.iter().any(|&r| r) {
                return false;
            }
        }
        reachable[text.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, group: &str) -> bool {
        GroupPattern::parse(pattern).expect("valid pattern").matches(group)
    }

    #[test]
    fn documented_examples() {
        assert!(matches("chat-*", "chat-1"));
        assert!(matches("chat-*", "chat-room"));
        assert!(!matches("chat-*", "chat.1"));
        assert!(!matches("chat-*", "xchat-1"));
        assert!(matches("clientA.*", "clientA.alpha"));
        assert!(!matches("clientA.*", "clientA.alpha.room1"));
        assert!(!matches("clientA.*", "clientB.alpha"));
        assert!(matches("clientA.**", "clientA.alpha"));
        assert!(matches("clientA.**", "clientA.alpha.room1"));
        assert!(!matches("clientA.**", "clientB.anything"));
        assert!(matches("clientA.rooms.?1", "clientA.rooms.a1"));
        assert!(!matches("clientA.rooms.?1", "clientA.rooms.1"));
        assert!(!matches("clientA.rooms.?1", "clientA.rooms.a.1"));
        assert!(matches(r"literal\*star", "literal*star"));
        assert!(!matches(r"literal\*star", "literalXstar"));
    }

    #[test]
    fn stars_match_empty_runs() {
        assert!(matches("a*", "a"));
        assert!(matches("a.**", "a."));
        assert!(matches("**", ""));
        assert!(matches("*.*", "."));
        assert!(!matches("?", ""));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!matches("Chat-*", "chat-1"));
    }

    #[test]
    fn escapes() {
        assert!(matches(r"a\\b", r"a\b"));
        assert!(matches(r"a\?", "a?"));
        assert!(!matches(r"a\?", "ab"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert_eq!(GroupPattern::parse(""), None);
        assert_eq!(GroupPattern::parse("a\\"), None);
        assert_eq!(GroupPattern::parse(r"a\b"), None);
        assert_eq!(GroupPattern::parse("***"), None);
        assert_eq!(GroupPattern::parse("*.*.*.*.**"), None);
        assert!(GroupPattern::parse("*.*.*.*.*").is_some());
        assert!(GroupPattern::parse("**.*.*.*").is_some());
    }

    #[test]
    fn role_set_grants() {
        let roles = RoleSet::new(vec![
            "webpubsub.joinLeaveGroup.room1".into(),
            "webpubsub.sendToGroups.public.*".into(),
            "webpubsub.joinLeaveGroups.".into(),
            "something.else".into(),
        ]);
        assert!(roles.allows(Permission::JoinLeaveGroup, "room1"));
        assert!(!roles.allows(Permission::JoinLeaveGroup, "room2"));
        assert!(!roles.allows(Permission::SendToGroup, "room1"));
        assert!(roles.allows(Permission::SendToGroup, "public.a"));
        assert!(!roles.allows(Permission::SendToGroup, "public.a.b"));
        assert!(!roles.allows(Permission::JoinLeaveGroup, "public.a"));

        let all = RoleSet::new(vec!["webpubsub.joinLeaveGroup".into(), "webpubsub.sendToGroup".into()]);
        assert!(all.allows(Permission::JoinLeaveGroup, "x.y"));
        assert!(all.allows(Permission::SendToGroup, "anything"));
        assert!(!RoleSet::new(vec![]).allows(Permission::SendToGroup, "g"));
        // "webpubsub.sendToGroupX" is neither the literal role nor a scoped one.
        assert!(!RoleSet::new(vec!["webpubsub.sendToGroupX".into()]).allows(Permission::SendToGroup, "X"));
    }

    #[test]
    fn permission_parses_case_insensitively_and_prints_canonically() {
        assert_eq!("sendtogroup".parse::<Permission>(), Ok(Permission::SendToGroup));
        assert_eq!("JoinLeaveGroup".parse::<Permission>(), Ok(Permission::JoinLeaveGroup));
        assert_eq!(
            "joinGroup".parse::<Permission>(),
            Err(ValidationError::UnknownPermission)
        );
        assert_eq!(Permission::JoinLeaveGroup.to_string(), "joinLeaveGroup");
    }

    #[test]
    fn parse_role_names_the_permission_and_the_grant() {
        assert_eq!(
            parse_role("webpubsub.joinLeaveGroup"),
            Some((Permission::JoinLeaveGroup, Grant::AnyGroup))
        );
        assert_eq!(
            parse_role("webpubsub.sendToGroup.room:1"),
            Some((Permission::SendToGroup, Grant::Group("room:1".into())))
        );
        let (permission, grant) = parse_role("webpubsub.joinLeaveGroups.user.ada.*").unwrap();
        assert_eq!(permission, Permission::JoinLeaveGroup);
        assert!(grant.covers("user.ada.x") && !grant.covers("user.ada.x.y"));
        for none in [
            "webpubsub.sendToGroupX",
            "webpubsub.sendToGroup.",
            "webpubsub.sendToGroups.***",
            "admin",
            "webpubsub.sendToGroup.a,webpubsub.sendToGroup",
            "webpubsub.joinLeaveGroup.room-1\u{0}",
            "webpubsub.joinLeaveGroups.a\n*",
        ] {
            assert_eq!(parse_role(none), None, "{none}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parser_and_matcher_never_panic(pattern in ".{0,40}", group in ".{0,60}") {
            if let Some(p) = GroupPattern::parse(&pattern) {
                let _ = p.matches(&group);
            }
        }

        #[test]
        fn literal_patterns_match_only_themselves(group in "[a-z0-9.-]{1,20}", other in "[a-z0-9.-]{1,20}") {
            let p = GroupPattern::parse(&group).unwrap();
            proptest::prop_assert!(p.matches(&group));
            proptest::prop_assert_eq!(p.matches(&other), group == other);
        }
    }
}
