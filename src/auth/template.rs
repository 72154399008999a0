//! Rights templates: the group and role names a policy allows, written once in settings with a `{userId}`
//! placeholder and (for patterns) `*` wildcards, parsed at start-up and matched per request without
//! allocating.
//!
//! Two kinds exist:
//! - a **pattern** ([`Template::pattern`]) decides whether a caller-requested name is allowed: `*` stands for
//!   one or more characters and `{userId}` for the caller's user id (e.g. `notifications:user:{userId}`,
//!   `conversation:*`);
//! - a **literal** ([`Template::literal`]) is rendered into a name to grant (default roles): only `{userId}`
//!   is replaced and `*` is an ordinary character.
//!
//! The Web PubSub wildcard roles (`webpubsub.joinLeaveGroups.<pattern>`, `webpubsub.sendToGroups.<pattern>`)
//! give `*`, `?` and `\` a meaning of their own, so a policy `*` must never widen one (a caller asking for
//! `webpubsub.joinLeaveGroups.**` must not match `webpubsub.joinLeaveGroups.room.*`). Templates of those roles
//! are therefore always literal, and the user id placed into them is escaped with `\`.

use std::borrow::Cow;
use std::fmt;

/// The placeholder replaced by the caller's user id.
pub const USER_ID_PLACEHOLDER: &str = "{userId}";

/// Most wildcards one pattern may hold: matching cost grows with them.
pub const MAX_WILDCARDS: usize = 8;

/// Role-name prefixes whose group part is itself a Web PubSub wildcard pattern.
const WILDCARD_ROLE_PREFIXES: [&str; 2] = ["webpubsub.joinLeaveGroups.", "webpubsub.sendToGroups."];

/// Why a template was refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("a template must not be empty")]
    Empty,
    #[error("template {0:?} has two wildcards in a row; one `*` already matches any run of characters")]
    AdjacentWildcards(String),
    #[error("template {0:?} has more than {MAX_WILDCARDS} wildcards")]
    TooManyWildcards(String),
}

/// A parsed template. `Display` shows the text as written in settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    /// Runs of literal text separated by wildcards: `a*b` is two runs, `*b` starts with an empty run.
    runs: Vec<Vec<Piece>>,
    /// Whether the user id is escaped for the Web PubSub wildcard syntax when placed into this template.
    escape_user_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    UserId,
}

impl Template {
    /// A pattern: `*` matches one or more characters, `{userId}` the caller's id. Templates of the Web
    /// PubSub wildcard roles are parsed as literals (see the module docs).
    pub fn pattern(text: &str) -> Result<Self, TemplateError> {
        if is_wildcard_role(text) {
            return Self::literal(text);
        }
        let template = Self::parse(text, true)?;
        let wildcards = template.runs.len() - 1;
        if wildcards > MAX_WILDCARDS {
            return Err(TemplateError::TooManyWildcards(text.to_owned()));
        }
        // An empty run between two wildcards means `**`.
        if template.runs.len() > 2 && template.runs[1..template.runs.len() - 1].iter().any(Vec::is_empty) {
            return Err(TemplateError::AdjacentWildcards(text.to_owned()));
        }
        Ok(template)
    }

    /// A literal: only `{userId}` is replaced when rendering or matching.
    pub fn literal(text: &str) -> Result<Self, TemplateError> {
        Self::parse(text, false)
    }

    fn parse(text: &str, wildcards: bool) -> Result<Self, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut runs = vec![Vec::new()];
        let mut rest = text;
        while !rest.is_empty() {
            let run = runs.last_mut().expect("there is always a current run");
            if let Some(after) = rest.strip_prefix(USER_ID_PLACEHOLDER) {
                run.push(Piece::UserId);
                rest = after;
            } else if wildcards && rest.starts_with('*') {
                runs.push(Vec::new());
                rest = &rest[1..];
            } else {
                // Take text up to the next placeholder or wildcard.
                let end = rest
                    .char_indices()
                    .skip(1)
                    .find(|&(i, c)| (wildcards && c == '*') || rest[i..].starts_with(USER_ID_PLACEHOLDER))
                    .map_or(rest.len(), |(i, _)| i);
                match run.last_mut() {
                    Some(Piece::Text(text)) => text.push_str(&rest[..end]),
                    _ => run.push(Piece::Text(rest[..end].to_owned())),
                }
                rest = &rest[end..];
            }
        }
        Ok(Self {
            source: text.to_owned(),
            runs,
            escape_user_id: is_wildcard_role(text),
        })
    }

    /// The text as written in settings.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template mentions `{userId}`.
    pub fn uses_user_id(&self) -> bool {
        self.runs.iter().flatten().any(|piece| *piece == Piece::UserId)
    }

    /// The name this template grants to `user_id` (literals; for a pattern, its text with `*` kept).
    pub fn render(&self, user_id: &str) -> String {
        let user_id = self.user_id_text(user_id);
        let mut out = String::with_capacity(self.source.len() + user_id.len());
        for (index, run) in self.runs.iter().enumerate() {
            if index > 0 {
                out.push('*');
            }
            for piece in run {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::UserId => out.push_str(&user_id),
                }
            }
        }
        out
    }

    /// Whether `candidate` is allowed by this template for `user_id`.
    pub fn matches(&self, candidate: &str, user_id: &str) -> bool {
        let user_id = self.user_id_text(user_id);
        let user_id: &str = &user_id;
        let (first, rest) = self.runs.split_first().expect("a template has at least one run");
        let Some(mut position) = run_match_at(first, candidate, 0, user_id) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return position == candidate.len();
        };
        // Leftmost placement of each middle run is optimal: it leaves the most room for what follows.
        for run in middle {
            match find_run(run, candidate, position + 1, user_id) {
                Some(end) => position = end,
                None => return false,
            }
        }
        // The last run is a suffix, after at least one character for the wildcard before it.
        let last_len = run_len(last, user_id);
        candidate.len() >= position + 1 + last_len
            && candidate.is_char_boundary(candidate.len() - last_len)
            && run_match_at(last, candidate, candidate.len() - last_len, user_id).is_some()
    }

    fn user_id_text<'a>(&self, user_id: &'a str) -> Cow<'a, str> {
        if self.escape_user_id {
            escape_wildcards(user_id)
        } else {
            Cow::Borrowed(user_id)
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

/// Whether `name` is a Web PubSub wildcard role (its group part is a pattern in the service's syntax).
pub fn is_wildcard_role(name: &str) -> bool {
    WILDCARD_ROLE_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// `text` with the Web PubSub wildcard characters `*`, `?` and `\` escaped by a `\`.
pub fn escape_wildcards(text: &str) -> Cow<'_, str> {
    if !text.contains(['*', '?', '\\']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

fn run_len(run: &[Piece], user_id: &str) -> usize {
    run.iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.len(),
            Piece::UserId => user_id.len(),
        })
        .sum()
}

/// If `run` occurs in `candidate` at byte `start`, the byte just past it.
fn run_match_at(run: &[Piece], candidate: &str, start: usize, user_id: &str) -> Option<usize> {
    let mut position = start;
    for piece in run {
        let text = match piece {
            Piece::Text(text) => text.as_str(),
            Piece::UserId => user_id,
        };
        if !candidate.get(position..)?.starts_with(text) {
            return None;
        }
        position += text.len();
    }
    Some(position)
}

/// The end of the leftmost occurrence of `run` in `candidate` at or after byte `from`.
fn find_run(run: &[Piece], candidate: &str, from: usize, user_id: &str) -> Option<usize> {
    (from..=candidate.len())
        .filter(|&start| candidate.is_char_boundary(start))
        .find_map(|start| run_match_at(run, candidate, start, user_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn allows(template: &str, candidate: &str, user_id: &str) -> bool {
        Template::pattern(template).unwrap().matches(candidate, user_id)
    }

    #[test]
    fn user_id_placeholder_matches_only_the_callers_id() {
        assert!(allows("notifications:user:{userId}", "notifications:user:ada", "ada"));
        assert!(!allows("notifications:user:{userId}", "notifications:user:bob", "ada"));
        assert!(!allows("notifications:user:{userId}", "notifications:user:ada2", "ada"));
        assert!(!allows("notifications:user:{userId}", "notifications:user:", "ada"));
    }

    #[test]
    fn wildcard_matches_one_or_more_characters() {
        assert!(allows("conversation:*", "conversation:42", "ada"));
        assert!(allows("conversation:*", "conversation:a:b.c", "ada"));
        assert!(!allows("conversation:*", "conversation:", "ada"));
        assert!(!allows("conversation:*", "conversations", "ada"));
        assert!(!allows("conversation:*", "x-conversation:1", "ada"));
    }

    #[test]
    fn wildcards_anywhere_and_several() {
        assert!(allows("*:chat", "room1:chat", "u"));
        assert!(!allows("*:chat", ":chat", "u"));
        assert!(allows("team:*:member:{userId}", "team:red:member:u", "u"));
        assert!(!allows("team:*:member:{userId}", "team:red:member:v", "u"));
        assert!(allows("a*b*c", "axbyc", "u"));
        assert!(allows("a*b*c", "abbbc", "u"));
        assert!(!allows("a*b*c", "abc", "u"));
        assert!(allows("*", "anything", "u"));
        assert!(!allows("*", "", "u"));
    }

    #[test]
    fn a_lone_literal_must_match_exactly() {
        assert!(allows("lobby", "lobby", "u"));
        assert!(!allows("lobby", "lobby2", "u"));
        assert!(!allows("lobby", "lobb", "u"));
    }

    #[test]
    fn non_ascii_text_is_matched_on_character_boundaries() {
        assert!(allows("raum:*:ü", "raum:é:ü", "u"));
        assert!(allows("ü*", "üé", "u"));
        assert!(!allows("*ü", "ü", "u"));
    }

    #[test]
    fn literal_templates_render_with_the_user_id() {
        let template = Template::literal("webpubsub.sendToGroup.notifications:user:{userId}").unwrap();
        assert_eq!(template.render("ada"), "webpubsub.sendToGroup.notifications:user:ada");
        assert!(template.uses_user_id());
        assert_eq!(Template::literal("a*b").unwrap().render("u"), "a*b");
        assert!(!Template::literal("a*b").unwrap().uses_user_id());
    }

    #[test]
    fn wildcard_roles_are_literal_and_escape_the_user_id() {
        let template = Template::pattern("webpubsub.joinLeaveGroups.user.{userId}.*").unwrap();
        assert!(template.matches("webpubsub.joinLeaveGroups.user.ada.*", "ada"));
        // A policy `*` never widens a service wildcard.
        assert!(!template.matches("webpubsub.joinLeaveGroups.user.ada.x", "ada"));
        assert!(!template.matches("webpubsub.joinLeaveGroups.user.**", "**"));
        assert_eq!(template.render("a*b"), r"webpubsub.joinLeaveGroups.user.a\*b.*");
        assert!(template.matches(r"webpubsub.joinLeaveGroups.user.a\*b.*", "a*b"));
        assert!(!template.matches("webpubsub.joinLeaveGroups.user.a*b.*", "a*b"));
    }

    #[test]
    fn escaping_covers_every_service_wildcard_character() {
        assert_eq!(escape_wildcards("plain"), "plain");
        assert_eq!(escape_wildcards(r"a*b?c\d"), r"a\*b\?c\\d");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(Template::pattern(""), Err(TemplateError::Empty));
        assert!(matches!(
            Template::pattern("a**b"),
            Err(TemplateError::AdjacentWildcards(_))
        ));
        assert!(matches!(
            Template::pattern("*a*b*c*d*e*f*g*h*"),
            Err(TemplateError::TooManyWildcards(_))
        ));
        assert!(Template::pattern("*a*b*c*d*e*f*g*").is_ok());
    }

    #[test]
    fn display_shows_the_source_text() {
        assert_eq!(
            Template::pattern("conversation:*").unwrap().to_string(),
            "conversation:*"
        );
    }

    proptest! {
        #[test]
        fn matching_never_panics(template in "[a-c*{}Iduse:é]{1,16}", candidate in "\\PC{0,24}", user in "\\PC{0,6}") {
            if let Ok(template) = Template::pattern(&template) {
                let _ = template.matches(&candidate, &user);
                let _ = template.render(&user);
            }
        }

        #[test]
        fn a_rendered_literal_pattern_matches_itself(text in "[a-z:.{}Id]{1,20}", user in "[a-z0-9]{1,8}") {
            let template = Template::pattern(&text).unwrap();
            prop_assert!(template.matches(&template.render(&user), &user));
        }

        #[test]
        fn star_pattern_agrees_with_a_reference(prefix in "[ab]{0,3}", suffix in "[ab]{0,3}", candidate in "[ab]{0,8}") {
            let template = Template::pattern(&format!("{prefix}*{suffix}")).unwrap();
            let expected = candidate.len() > prefix.len() + suffix.len()
                && candidate.starts_with(&prefix) && candidate.ends_with(&suffix);
            prop_assert_eq!(template.matches(&candidate, "u"), expected);
        }
    }
}
