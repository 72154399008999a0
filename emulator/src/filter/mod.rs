//! The OData `filter` expressions of the REST data plane (`:send`, `:addToGroups`, …): parsed and
//! type-checked once into a [`Filter`], then evaluated per connection with [`Filter::matches`].
//!
//! The language is the subset Azure Web PubSub documents: identifiers `userId`, `connectionId`
//! (strings; `userId` may be null) and `groups` (a collection), all case-insensitive; `and`, `or`,
//! `not`, `eq`, `ne`, `gt`, `ge`, `lt`, `le`, `in`, parentheses; string (`''` escapes a quote),
//! integer, boolean and `null` literals; and the functions `tolower`, `toupper`, `trim`,
//! `substring`, `concat`, `startswith`, `endswith`, `contains`, `indexof`, `length`.
//! Precedence, tightest first: `not`, comparisons, `and`, `or` — so `not userId eq 'a'` is a type
//! error, as on the service; write `not (userId eq 'a')`. Untrusted input is bounded in length,
//! nesting depth and clause count, so a hostile filter costs an error, never a stack overflow.
//!
//! Layout: `lexer` (characters → tokens), `syntax` (tree and static types), `parser` (recursive
//! descent with type checking), `eval` (per-connection evaluation).

mod eval;
mod lexer;
mod parser;
mod syntax;
#[cfg(test)]
mod tests;

use std::fmt;

use eval::{Connection, Value};
use lexer::{TokenKind, lex};
use parser::Parser;
use syntax::{Expr, Ty};

/// Longest accepted filter, in characters.
pub const MAX_FILTER_CHARS: usize = 4096;
/// Deepest accepted nesting of parentheses, function calls and `not`.
pub const MAX_DEPTH: usize = 32;
/// Most accepted clauses (comparisons, `in` tests and boolean function calls).
pub const MAX_CLAUSES: usize = 100;

/// Why a filter was rejected: where (a 0-based character offset into the filter) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at position {position}: {message}")]
pub struct FilterError {
    position: usize,
    message: String,
}

impl FilterError {
    pub(super) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }

    /// 0-based character offset of the offending token.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Human-readable reason, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A parsed, type-checked filter; cheap to evaluate against many connections.
#[derive(Debug, Clone)]
pub struct Filter {
    source: String,
    root: Expr,
}

impl Filter {
    /// Parses and type-checks `source`; the whole expression must be boolean.
    pub fn parse(source: &str) -> Result<Filter, FilterError> {
        // Cheap byte check first so a huge input is never scanned char by char.
        if source.len() > 4 * MAX_FILTER_CHARS || source.chars().count() > MAX_FILTER_CHARS {
            return Err(FilterError::new(
                MAX_FILTER_CHARS,
                format!("filter is longer than {MAX_FILTER_CHARS} characters"),
            ));
        }
        let tokens = lex(source)?;
        let mut parser = Parser::new(tokens);
        let (root, ty) = parser.or_expr(0)?;
        let end = parser.peek();
        if end.kind != TokenKind::End {
            return Err(FilterError::new(end.position, format!("unexpected {}", end.kind)));
        }
        if ty != Ty::Bool {
            return Err(FilterError::new(
                0,
                format!("the filter must be a boolean expression, not {ty}"),
            ));
        }
        Ok(Filter {
            source: source.to_owned(),
            root,
        })
    }

    /// Whether a connection with these properties passes the filter.
    pub fn matches(&self, connection_id: &str, user_id: Option<&str>, groups: &[&str]) -> bool {
        let connection = Connection {
            connection_id,
            user_id,
            groups,
        };
        matches!(self.root.eval(&connection), Value::Bool(true))
    }

    /// The filter text as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
