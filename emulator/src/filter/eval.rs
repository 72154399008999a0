//! Filter evaluation against one connection's properties (`connectionId`, `userId`, `groups`),
//! with OData's null semantics: null equals only null and never orders.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::syntax::{CompareOp, Expr, Function, Identifier, Literal};

pub(super) struct Connection<'a> {
    pub(super) connection_id: &'a str,
    pub(super) user_id: Option<&'a str>,
    pub(super) groups: &'a [&'a str],
}

#[derive(Debug, PartialEq)]
pub(super) enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Null,
    Collection,
}

impl Value<'_> {
    /// OData equality: null equals only null; types already agree after checking.
    pub(super) fn equals(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }

    /// Ordinal ordering; `None` when either side is null (every ordering test is then false).
    pub(super) fn order(&self, other: &Value<'_>) -> Option<Ordering> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl Expr {
    pub(super) fn eval<'a>(&'a self, connection: &Connection<'a>) -> Value<'a> {
        match self {
            Expr::Literal(Literal::Str(s)) => Value::Str(Cow::Borrowed(s)),
            Expr::Literal(Literal::Int(i)) => Value::Int(*i),
            Expr::Literal(Literal::Bool(b)) => Value::Bool(*b),
            Expr::Literal(Literal::Null) => Value::Null,
            Expr::Identifier(Identifier::UserId) => {
                connection.user_id.map_or(Value::Null, |u| Value::Str(Cow::Borrowed(u)))
            }
            Expr::Identifier(Identifier::ConnectionId) => Value::Str(Cow::Borrowed(connection.connection_id)),
            Expr::Identifier(Identifier::Groups) => Value::Collection,
            Expr::Not(operand) => Value::Bool(!operand.eval(connection).is_true()),
            Expr::And(operands) => Value::Bool(operands.iter().all(|o| o.eval(connection).is_true())),
            Expr::Or(operands) => Value::Bool(operands.iter().any(|o| o.eval(connection).is_true())),
            Expr::Compare(op, left, right) => {
                let (left, right) = (left.eval(connection), right.eval(connection));
                Value::Bool(match op {
                    CompareOp::Eq => left.equals(&right),
                    CompareOp::Ne => !left.equals(&right),
                    CompareOp::Gt => left.order(&right) == Some(Ordering::Greater),
                    CompareOp::Ge => matches!(left.order(&right), Some(Ordering::Greater | Ordering::Equal)),
                    CompareOp::Lt => left.order(&right) == Some(Ordering::Less),
                    CompareOp::Le => {
                        matches!(left.order(&right), Some(Ordering::Less | Ordering::Equal))
                    }
                })
            }
            Expr::InCollection(item) => Value::Bool(match item.eval(connection) {
                Value::Str(s) => connection.groups.iter().any(|g| *g == s.as_ref()),
                _ => false,
            }),
            Expr::InList(item, list) => {
                let item = item.eval(connection);
                Value::Bool(list.iter().any(|candidate| item.equals(&candidate.eval(connection))))
            }
            // The parser never leaves a bare list in an evaluated position.
            Expr::List(..) => Value::Null,
            Expr::Call(function, args) => call(*function, args, connection),
        }
    }
}

impl Value<'_> {
    pub(super) fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }
}

pub(super) fn call<'a>(function: Function, args: &'a [Expr], connection: &Connection<'a>) -> Value<'a> {
    let values: Vec<Value<'a>> = args.iter().map(|a| a.eval(connection)).collect();
    let text = |i: usize| match values.get(i) {
        Some(Value::Str(s)) => Some(s.as_ref()),
        _ => None,
    };
    let int = |i: usize| match values.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let owned = |s: String| Value::Str(Cow::Owned(s));
    match function {
        Function::ToLower => text(0).map_or(Value::Null, |s| owned(s.to_lowercase())),
        Function::ToUpper => text(0).map_or(Value::Null, |s| owned(s.to_uppercase())),
        Function::Trim => text(0).map_or(Value::Null, |s| owned(s.trim().to_owned())),
        Function::Concat => match (text(0), text(1)) {
            (Some(a), Some(b)) => owned(format!("{a}{b}")),
            _ => Value::Null,
        },
        // A null argument makes the predicate false rather than an error.
        Function::StartsWith => Value::Bool(matches!((text(0), text(1)), (Some(a), Some(b)) if a.starts_with(b))),
        Function::EndsWith => Value::Bool(matches!((text(0), text(1)), (Some(a), Some(b)) if a.ends_with(b))),
        Function::Contains => Value::Bool(matches!((text(0), text(1)), (Some(a), Some(b)) if a.contains(b))),
        Function::IndexOf => match (text(0), text(1)) {
            (Some(a), Some(b)) => Value::Int(a.find(b).map_or(-1, |byte| a[..byte].chars().count() as i64)),
            _ => Value::Null,
        },
        Function::Length => match values.first() {
            Some(Value::Str(s)) => Value::Int(s.chars().count() as i64),
            Some(Value::Collection) => Value::Int(connection.groups.len() as i64),
            _ => Value::Null,
        },
        Function::Substring => match (text(0), int(1)) {
            (Some(s), Some(start)) => {
                // Out-of-range bounds clamp to the string instead of failing the whole send.
                let start = usize::try_from(start.max(0)).unwrap_or(usize::MAX);
                let length = int(2).map_or(usize::MAX, |n| usize::try_from(n.max(0)).unwrap_or(usize::MAX));
                owned(s.chars().skip(start).take(length).collect())
            }
            _ => Value::Null,
        },
    }
}
