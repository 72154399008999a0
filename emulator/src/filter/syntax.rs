//! The filter syntax tree and its static types: identifiers, comparison operators, functions with
//! their signatures, literals and expressions.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Str,
    Int,
    Bool,
    Null,
    Collection,
    /// A parenthesized list of two or more values; only valid after `in`.
    List,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Str => "a string",
            Ty::Int => "an integer",
            Ty::Bool => "a boolean",
            Ty::Null => "null",
            Ty::Collection => "a collection",
            Ty::List => "a list",
        })
    }
}

impl Ty {
    pub(super) fn is_scalar(self) -> bool {
        matches!(self, Ty::Str | Ty::Int | Ty::Bool | Ty::Null)
    }

    /// Whether `eq`/`ne` (and `in` lists) may compare values of these types.
    pub(super) fn equatable_with(self, other: Ty) -> bool {
        self.is_scalar() && other.is_scalar() && (self == other || self == Ty::Null || other == Ty::Null)
    }

    /// Whether `gt`/`ge`/`lt`/`le` may order values of these types.
    pub(super) fn orderable_with(self, other: Ty) -> bool {
        let orderable = |t: Ty| matches!(t, Ty::Str | Ty::Int | Ty::Null);
        orderable(self) && orderable(other) && self.equatable_with(other)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Identifier {
    UserId,
    ConnectionId,
    Groups,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Function {
    ToLower,
    ToUpper,
    Trim,
    Substring,
    Concat,
    StartsWith,
    EndsWith,
    Contains,
    IndexOf,
    Length,
}

impl Function {
    pub(super) fn from_name(name: &str) -> Option<Function> {
        Some(match name.to_ascii_lowercase().as_str() {
            "tolower" => Function::ToLower,
            "toupper" => Function::ToUpper,
            "trim" => Function::Trim,
            "substring" => Function::Substring,
            "concat" => Function::Concat,
            "startswith" => Function::StartsWith,
            "endswith" => Function::EndsWith,
            "contains" => Function::Contains,
            "indexof" => Function::IndexOf,
            "length" => Function::Length,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Function::ToLower => "tolower",
            Function::ToUpper => "toupper",
            Function::Trim => "trim",
            Function::Substring => "substring",
            Function::Concat => "concat",
            Function::StartsWith => "startswith",
            Function::EndsWith => "endswith",
            Function::Contains => "contains",
            Function::IndexOf => "indexof",
            Function::Length => "length",
        }
    }

    /// Checks argument types; returns the result type or a message.
    pub(super) fn check(self, args: &[Ty]) -> Result<Ty, String> {
        let string_like = |t: &Ty| matches!(t, Ty::Str | Ty::Null);
        let signature = match self {
            Function::ToLower | Function::ToUpper | Function::Trim => {
                (args.len() == 1 && string_like(&args[0])).then_some(Ty::Str)
            }
            Function::Concat => (args.len() == 2 && args.iter().all(string_like)).then_some(Ty::Str),
            Function::StartsWith | Function::EndsWith | Function::Contains => {
                (args.len() == 2 && args.iter().all(string_like)).then_some(Ty::Bool)
            }
            Function::IndexOf => (args.len() == 2 && args.iter().all(string_like)).then_some(Ty::Int),
            Function::Substring => ((args.len() == 2 || args.len() == 3)
                && string_like(&args[0])
                && args[1..].iter().all(|t| *t == Ty::Int))
            .then_some(Ty::Str),
            Function::Length => {
                (args.len() == 1 && (string_like(&args[0]) || args[0] == Ty::Collection)).then_some(Ty::Int)
            }
        };
        signature.ok_or_else(|| {
            let expected = match self {
                Function::ToLower | Function::ToUpper | Function::Trim => "(string)",
                Function::Concat | Function::StartsWith | Function::EndsWith | Function::Contains => "(string, string)",
                Function::IndexOf => "(string, string)",
                Function::Substring => "(string, integer[, integer])",
                Function::Length => "(string) or (collection)",
            };
            format!("{} expects {expected}", self.name())
        })
    }
}

#[derive(Debug, Clone)]
pub(super) enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone)]
pub(super) enum Expr {
    Literal(Literal),
    Identifier(Identifier),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    InCollection(Box<Expr>),
    InList(Box<Expr>, Vec<Expr>),
    /// A parenthesized list and its item type; the parser accepts it solely after `in`.
    List(Vec<Expr>, Ty),
    Call(Function, Vec<Expr>),
}
