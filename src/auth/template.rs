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
//!
//! `{userId}` is always a whole segment: each side of it is the template's edge or a separator (ASCII
//! punctuation other than `*`, `?`, `\`, `{`, `}`), wildcards may stand on one side of it only, and a user id
//! containing a separator next to its placeholder neither matches nor renders that template. Otherwise
//! `inbox.{userId}.*` would let `john` request `inbox.john.smith.private`, the group of `john.smith`.

use std::borrow::Cow;
use std::fmt;

/// The placeholder replaced by the caller's user id.
pub(crate) const USER_ID_PLACEHOLDER: &str = "{userId}";

/// Most wildcards one pattern may hold: matching cost grows with them.
pub(crate) const MAX_WILDCARDS: usize = 8;

/// Role-name prefixes whose group part is itself a Web PubSub wildcard pattern.
const WILDCARD_ROLE_PREFIXES: [&str; 2] = [
    webpubsub_protocol::roles::JOIN_LEAVE_GROUPS_PREFIX,
    webpubsub_protocol::roles::SEND_TO_GROUPS_PREFIX,
];

/// Why a template was refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("a template must not be empty")]
    Empty,
    #[error("template {0:?} has two wildcards in a row; one `*` already matches any run of characters")]
    AdjacentWildcards(String),
    #[error("template {0:?} has more than {MAX_WILDCARDS} wildcards")]
    TooManyWildcards(String),
    #[error(
        "template {0:?} places {{userId}} ambiguously: each side must be the template's edge or a separator such as `.` or `:` \
         (not `*`, a letter or another {{userId}}), and wildcards may stand on one side of it only"
    )]
    AmbiguousUserId(String),
}

/// A parsed template. `Display` shows the text as written in settings.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Template {
    source: String,
    /// Runs of literal text separated by wildcards: `a*b` is two runs, `*b` starts with an empty run.
    runs: Vec<Vec<Piece>>,
    /// Whether the user id is escaped for the Web PubSub wildcard syntax when placed into this template.
    escape_user_id: bool,
    /// The separators next to `{userId}`: a user id containing one of them does not fit this template.
    user_id_separators: Vec<char>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    UserId,
}

impl Template {
    /// A pattern: `*` matches one or more characters, `{userId}` the caller's id. Templates of the Web
    /// PubSub wildcard roles are parsed as literals (see the module docs).
    pub(crate) fn pattern(text: &str) -> Result<Self, TemplateError> {
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
    pub(crate) fn literal(text: &str) -> Result<Self, TemplateError> {
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
        let user_id_separators = user_id_separators(text, wildcards)?;
        Ok(Self {
            source: text.to_owned(),
            runs,
            escape_user_id: is_wildcard_role(text),
            user_id_separators,
        })
    }

    /// Whether `user_id` may be placed into this template: it must not contain a separator next to
    /// `{userId}`, or its segment could be read as someone else's.
    pub(crate) fn fits(&self, user_id: &str) -> bool {
        !user_id.contains(self.user_id_separators.as_slice())
    }

    /// The name this template grants to `user_id`, or `None` when the id does not [`fit`](Self::fits).
    pub(crate) fn try_render(&self, user_id: &str) -> Option<String> {
        self.fits(user_id).then(|| self.render(user_id))
    }

    /// Whether the template mentions `{userId}`.
    pub(crate) fn uses_user_id(&self) -> bool {
        self.runs.iter().flatten().any(|piece| *piece == Piece::UserId)
    }

    /// The name this template grants to `user_id` (literals; for a pattern, its text with `*` kept). It does not
    /// check that the id [`fits`](Self::fits); prefer [`try_render`](Self::try_render).
    pub(crate) fn render(&self, user_id: &str) -> String {
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
    pub(crate) fn matches(&self, candidate: &str, user_id: &str) -> bool {
        if !self.fits(user_id) {
            return false;
        }
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
pub(crate) fn is_wildcard_role(name: &str) -> bool {
    WILDCARD_ROLE_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// `text` with the Web PubSub wildcard characters `*`, `?` and `\` escaped by a `\`.
pub(crate) fn escape_wildcards(text: &str) -> Cow<'_, str> {
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

/// A character that may border `{userId}`: ASCII punctuation without a meaning in templates or wildcard roles.
fn is_separator(c: char) -> bool {
    c.is_ascii_punctuation() && !matches!(c, '*' | '?' | '\\' | '{' | '}')
}

/// The separators bordering each `{userId}` in `text`, or why its placement is ambiguous. `wildcards`: whether
/// `*` is a wildcard in this template (for literals it is an ordinary, but still refused, neighbour).
fn user_id_separators(text: &str, wildcards: bool) -> Result<Vec<char>, TemplateError> {
    let ambiguous = || TemplateError::AmbiguousUserId(text.to_owned());
    let mut separators = Vec::new();
    for (start, _) in text.match_indices(USER_ID_PLACEHOLDER) {
        let end = start + USER_ID_PLACEHOLDER.len();
        let (before, after) = (&text[..start], &text[end..]);
        for neighbour in [before.chars().next_back(), after.chars().next()].into_iter().flatten() {
            if !is_separator(neighbour) {
                return Err(ambiguous());
            }
            if !separators.contains(&neighbour) {
                separators.push(neighbour);
            }
        }
        if wildcards && before.contains('*') && after.contains('*') {
            return Err(ambiguous());
        }
    }
    Ok(separators)
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
mod tests;
