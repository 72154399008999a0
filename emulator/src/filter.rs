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

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

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
    fn new(position: usize, message: impl Into<String>) -> Self {
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
        let mut parser = Parser {
            tokens,
            next: 0,
            clauses: 0,
        };
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

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    Word(String),
    Str(String),
    Int(i64),
    LParen,
    RParen,
    Comma,
    End,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Word(w) => write!(f, "'{w}'"),
            TokenKind::Str(_) => f.write_str("string literal"),
            TokenKind::Int(i) => write!(f, "integer {i}"),
            TokenKind::LParen => f.write_str("'('"),
            TokenKind::RParen => f.write_str("')'"),
            TokenKind::Comma => f.write_str("','"),
            TokenKind::End => f.write_str("end of filter"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    position: usize,
}

fn lex(source: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                TokenKind::LParen
            }
            ')' => {
                i += 1;
                TokenKind::RParen
            }
            ',' => {
                i += 1;
                TokenKind::Comma
            }
            '\'' => {
                let (text, after) = lex_string(&chars, i)?;
                i = after;
                TokenKind::Str(text)
            }
            '+' | '-' | '0'..='9' => {
                let (value, after) = lex_integer(&chars, i)?;
                i = after;
                TokenKind::Int(value)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                TokenKind::Word(chars[start..i].iter().collect())
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                return Err(FilterError::new(
                    start,
                    format!("unexpected character '{c}'; OData uses eq, ne, gt, ge, lt, le, and, or, not"),
                ));
            }
            '"' => {
                return Err(FilterError::new(start, "string literals use single quotes: 'text'"));
            }
            _ => {
                return Err(FilterError::new(start, format!("unexpected character {c:?}")));
            }
        };
        tokens.push(Token { kind, position: start });
    }
    tokens.push(Token {
        kind: TokenKind::End,
        position: chars.len(),
    });
    Ok(tokens)
}

/// Reads a `'…'` literal starting at `open`; `''` inside is one quote. Returns text and next index.
fn lex_string(chars: &[char], open: usize) -> Result<(String, usize), FilterError> {
    let mut text = String::new();
    let mut i = open + 1;
    loop {
        match chars.get(i) {
            None => return Err(FilterError::new(open, "unterminated string literal")),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                text.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((text, i + 1)),
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

/// Reads `[+-]digits` starting at `start`. Returns the value and next index.
fn lex_integer(chars: &[char], start: usize) -> Result<(i64, usize), FilterError> {
    let mut i = start;
    let negative = chars[i] == '-';
    if matches!(chars[i], '+' | '-') {
        i += 1;
    }
    let digits_start = i;
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits_start {
        return Err(FilterError::new(
            start,
            format!("unexpected character '{}'", chars[start]),
        ));
    }
    if i < chars.len() && (chars[i].is_ascii_alphabetic() || chars[i] == '_' || chars[i] == '.') {
        return Err(FilterError::new(start, "malformed number: only integers are supported"));
    }
    let digits: String = chars[digits_start..i].iter().collect();
    let magnitude: i128 = digits.parse().unwrap_or(i128::MAX);
    let value = if negative { -magnitude } else { magnitude };
    let value =
        i64::try_from(value).map_err(|_| FilterError::new(start, "integer literal is out of the 64-bit range"))?;
    Ok((value, i))
}

// ---------------------------------------------------------------------------------------------
// Syntax tree and static types

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
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
    fn is_scalar(self) -> bool {
        matches!(self, Ty::Str | Ty::Int | Ty::Bool | Ty::Null)
    }

    /// Whether `eq`/`ne` (and `in` lists) may compare values of these types.
    fn equatable_with(self, other: Ty) -> bool {
        self.is_scalar() && other.is_scalar() && (self == other || self == Ty::Null || other == Ty::Null)
    }

    /// Whether `gt`/`ge`/`lt`/`le` may order values of these types.
    fn orderable_with(self, other: Ty) -> bool {
        let orderable = |t: Ty| matches!(t, Ty::Str | Ty::Int | Ty::Null);
        orderable(self) && orderable(other) && self.equatable_with(other)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identifier {
    UserId,
    ConnectionId,
    Groups,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
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
    fn from_name(name: &str) -> Option<Function> {
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

    fn name(self) -> &'static str {
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
    fn check(self, args: &[Ty]) -> Result<Ty, String> {
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
enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone)]
enum Expr {
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

// ---------------------------------------------------------------------------------------------
// Parser (recursive descent; `depth` counts nesting so hostile input stops at MAX_DEPTH)

/// A parsed sub-expression and its static type.
type Parsed = Result<(Expr, Ty), FilterError>;

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    clauses: usize,
}

fn keyword(token: &Token) -> Option<String> {
    match &token.kind {
        TokenKind::Word(w) => Some(w.to_ascii_lowercase()),
        _ => None,
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        // The lexer always ends the list with `End`, and `bump` never moves past it.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.next < self.tokens.len() - 1 {
            self.next += 1;
        }
        token
    }

    fn peek_keyword(&self) -> Option<String> {
        keyword(self.peek())
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> Result<Token, FilterError> {
        let token = self.bump();
        if token.kind == kind {
            Ok(token)
        } else {
            Err(FilterError::new(
                token.position,
                format!("expected {what}, found {}", token.kind),
            ))
        }
    }

    fn count_clause(&mut self, position: usize) -> Result<(), FilterError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(FilterError::new(
                position,
                format!("filter has more than {MAX_CLAUSES} clauses"),
            ));
        }
        Ok(())
    }

    fn enter(&self, depth: usize, position: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(FilterError::new(
                position,
                format!("filter is nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(depth + 1)
    }

    /// `and_expr ('or' and_expr)*`
    fn or_expr(&mut self, depth: usize) -> Parsed {
        self.logical(depth, "or", Parser::and_expr, Expr::Or)
    }

    /// `comparison ('and' comparison)*`
    fn and_expr(&mut self, depth: usize) -> Parsed {
        self.logical(depth, "and", Parser::comparison, Expr::And)
    }

    fn logical(
        &mut self,
        depth: usize,
        operator: &str,
        operand: fn(&mut Parser, usize) -> Parsed,
        build: fn(Vec<Expr>) -> Expr,
    ) -> Parsed {
        let start = self.peek().position;
        let (first, first_ty) = operand(self, depth)?;
        if self.peek_keyword().as_deref() != Some(operator) {
            return Ok((first, first_ty));
        }
        require_bool(first_ty, start, operator)?;
        let mut operands = vec![first];
        while self.peek_keyword().as_deref() == Some(operator) {
            self.bump();
            let position = self.peek().position;
            let (next, ty) = operand(self, depth)?;
            require_bool(ty, position, operator)?;
            operands.push(next);
        }
        Ok((build(operands), Ty::Bool))
    }

    /// `unary [(eq|ne|gt|ge|lt|le) unary | in in_target]`
    fn comparison(&mut self, depth: usize) -> Parsed {
        let start = self.peek().position;
        let (left, left_ty) = self.unary(depth)?;
        if left_ty == Ty::List {
            return Err(FilterError::new(
                start,
                "a parenthesized list is only allowed after 'in'",
            ));
        }
        let operator_token = self.peek().clone();
        let op = match keyword(&operator_token).as_deref() {
            Some("eq") => CompareOp::Eq,
            Some("ne") => CompareOp::Ne,
            Some("gt") => CompareOp::Gt,
            Some("ge") => CompareOp::Ge,
            Some("lt") => CompareOp::Lt,
            Some("le") => CompareOp::Le,
            Some("in") => {
                self.bump();
                self.count_clause(operator_token.position)?;
                return self.in_target(depth, left, left_ty, start);
            }
            _ => return Ok((left, left_ty)),
        };
        self.bump();
        self.count_clause(operator_token.position)?;
        let right_position = self.peek().position;
        let (right, right_ty) = self.unary(depth)?;
        if right_ty == Ty::List {
            return Err(FilterError::new(
                right_position,
                "a parenthesized list is only allowed after 'in'",
            ));
        }
        let allowed = match op {
            CompareOp::Eq | CompareOp::Ne => left_ty.equatable_with(right_ty),
            _ => left_ty.orderable_with(right_ty),
        };
        if !allowed {
            let hint = if left_ty == Ty::Collection || right_ty == Ty::Collection {
                "; to test membership write 'name' in groups"
            } else {
                ""
            };
            return Err(FilterError::new(
                right_position,
                format!(
                    "cannot compare {left_ty} with {right_ty} using '{}'{hint}",
                    keyword(&operator_token).unwrap_or_default()
                ),
            ));
        }
        let next = self.peek_keyword();
        if matches!(next.as_deref(), Some("eq" | "ne" | "gt" | "ge" | "lt" | "le" | "in")) {
            return Err(FilterError::new(
                self.peek().position,
                "comparisons cannot be chained; combine them with 'and' or 'or'",
            ));
        }
        Ok((Expr::Compare(op, Box::new(left), Box::new(right)), Ty::Bool))
    }

    /// Right side of `in`: `groups`, `(groups)`, `('a', 'b', …)` or `('a')`.
    fn in_target(&mut self, depth: usize, left: Expr, left_ty: Ty, start: usize) -> Parsed {
        if !left_ty.is_scalar() {
            return Err(FilterError::new(
                start,
                format!("the left side of 'in' must be a single value, not {left_ty}"),
            ));
        }
        let target_position = self.peek().position;
        let parenthesized = self.peek().kind == TokenKind::LParen;
        let (target, target_ty) = self.unary(depth)?;
        match (target, target_ty) {
            (Expr::Identifier(Identifier::Groups), Ty::Collection) => {
                if !left_ty.equatable_with(Ty::Str) {
                    return Err(FilterError::new(
                        start,
                        format!("groups holds strings; cannot look up {left_ty}"),
                    ));
                }
                Ok((Expr::InCollection(Box::new(left)), Ty::Bool))
            }
            (Expr::List(items, item_ty), Ty::List) => {
                if !left_ty.equatable_with(item_ty) {
                    return Err(FilterError::new(
                        target_position,
                        format!("cannot compare {left_ty} with a list of {item_ty}"),
                    ));
                }
                Ok((Expr::InList(Box::new(left), items), Ty::Bool))
            }
            (item, ty) if parenthesized && ty.is_scalar() => {
                if !left_ty.equatable_with(ty) {
                    return Err(FilterError::new(
                        target_position,
                        format!("cannot compare {left_ty} with {ty} using 'in'"),
                    ));
                }
                Ok((Expr::InList(Box::new(left), vec![item]), Ty::Bool))
            }
            (_, ty) => Err(FilterError::new(
                target_position,
                format!("the right side of 'in' must be groups or a parenthesized list like ('a', 'b'), not {ty}"),
            )),
        }
    }

    /// `'not' unary | primary`
    fn unary(&mut self, depth: usize) -> Parsed {
        if self.peek_keyword().as_deref() == Some("not") {
            let not_token = self.bump();
            let depth = self.enter(depth, not_token.position)?;
            let operand_position = self.peek().position;
            let (operand, ty) = self.unary(depth)?;
            if ty != Ty::Bool {
                return Err(FilterError::new(
                    operand_position,
                    format!(
                        "'not' needs a boolean operand, found {ty}; 'not' binds tighter than comparisons, so write not (… eq …)"
                    ),
                ));
            }
            return Ok((Expr::Not(Box::new(operand)), Ty::Bool));
        }
        self.primary(depth)
    }

    /// Literal, identifier, function call, or parenthesized expression / list.
    fn primary(&mut self, depth: usize) -> Parsed {
        let token = self.bump();
        match token.kind {
            TokenKind::Str(text) => Ok((Expr::Literal(Literal::Str(text)), Ty::Str)),
            TokenKind::Int(value) => Ok((Expr::Literal(Literal::Int(value)), Ty::Int)),
            TokenKind::LParen => self.paren(depth, token.position),
            TokenKind::Word(word) => {
                if self.peek().kind == TokenKind::LParen {
                    return self.call(depth, &word, token.position);
                }
                match word.to_ascii_lowercase().as_str() {
                    "true" => Ok((Expr::Literal(Literal::Bool(true)), Ty::Bool)),
                    "false" => Ok((Expr::Literal(Literal::Bool(false)), Ty::Bool)),
                    "null" => Ok((Expr::Literal(Literal::Null), Ty::Null)),
                    "userid" => Ok((Expr::Identifier(Identifier::UserId), Ty::Str)),
                    "connectionid" => Ok((Expr::Identifier(Identifier::ConnectionId), Ty::Str)),
                    "groups" => Ok((Expr::Identifier(Identifier::Groups), Ty::Collection)),
                    "and" | "or" | "not" | "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "in" => Err(FilterError::new(
                        token.position,
                        format!("expected a value before '{word}'"),
                    )),
                    _ => Err(FilterError::new(
                        token.position,
                        format!("unknown identifier '{word}'; supported: userId, connectionId, groups"),
                    )),
                }
            }
            other => Err(FilterError::new(
                token.position,
                format!("expected a value, found {other}"),
            )),
        }
    }

    /// After `(`: a grouped expression `(e)` or a list `(e, e, …)`.
    fn paren(&mut self, depth: usize, open: usize) -> Parsed {
        let depth = self.enter(depth, open)?;
        let (first, first_ty) = self.or_expr(depth)?;
        if self.peek().kind != TokenKind::Comma {
            self.expect(TokenKind::RParen, "')'")?;
            return Ok((first, first_ty));
        }
        let mut items = vec![first];
        let mut item_ty = first_ty;
        if !first_ty.is_scalar() {
            return Err(FilterError::new(
                open + 1,
                format!("list items must be single values, not {first_ty}"),
            ));
        }
        while self.peek().kind == TokenKind::Comma {
            self.bump();
            let position = self.peek().position;
            let (item, ty) = self.or_expr(depth)?;
            if !ty.equatable_with(item_ty) {
                return Err(FilterError::new(position, format!("list mixes {item_ty} and {ty}")));
            }
            if item_ty == Ty::Null {
                item_ty = ty;
            }
            items.push(item);
        }
        self.expect(TokenKind::RParen, "')' or ','")?;
        Ok((Expr::List(items, item_ty), Ty::List))
    }

    /// `name '(' args ')'`; the `(` is next.
    fn call(&mut self, depth: usize, name: &str, position: usize) -> Parsed {
        let function = Function::from_name(name).ok_or_else(|| {
            FilterError::new(
                position,
                format!(
                    "unknown function '{name}'; supported: tolower, toupper, trim, substring, concat, startswith, endswith, contains, indexof, length"
                ),
            )
        })?;
        let depth = self.enter(depth, position)?;
        self.expect(TokenKind::LParen, "'('")?;
        let mut args = Vec::new();
        let mut types = Vec::new();
        if self.peek().kind != TokenKind::RParen {
            loop {
                let (arg, ty) = self.or_expr(depth)?;
                args.push(arg);
                types.push(ty);
                if self.peek().kind != TokenKind::Comma {
                    break;
                }
                self.bump();
            }
        }
        self.expect(TokenKind::RParen, "')' or ','")?;
        let result = function
            .check(&types)
            .map_err(|message| FilterError::new(position, message))?;
        if result == Ty::Bool {
            self.count_clause(position)?;
        }
        Ok((Expr::Call(function, args), result))
    }
}

fn require_bool(ty: Ty, position: usize, operator: &str) -> Result<(), FilterError> {
    if ty == Ty::Bool {
        Ok(())
    } else {
        Err(FilterError::new(
            position,
            format!("'{operator}' needs boolean operands, found {ty}"),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

struct Connection<'a> {
    connection_id: &'a str,
    user_id: Option<&'a str>,
    groups: &'a [&'a str],
}

#[derive(Debug, PartialEq)]
enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Null,
    Collection,
}

impl Value<'_> {
    /// OData equality: null equals only null; types already agree after checking.
    fn equals(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }

    /// Ordinal ordering; `None` when either side is null (every ordering test is then false).
    fn order(&self, other: &Value<'_>) -> Option<Ordering> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl Expr {
    fn eval<'a>(&'a self, connection: &Connection<'a>) -> Value<'a> {
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
    fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }
}

fn call<'a>(function: Function, args: &'a [Expr], connection: &Connection<'a>) -> Value<'a> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Evaluates `filter` for connection "conn-1" of `user` in `groups`.
    fn eval(filter: &str, user: Option<&str>, groups: &[&str]) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches("conn-1", user, groups)
    }

    fn error(filter: &str) -> FilterError {
        Filter::parse(filter).expect_err(filter)
    }

    #[test]
    fn string_equality_and_inequality() {
        assert!(eval("userId eq 'user1'", Some("user1"), &[]));
        assert!(!eval("userId eq 'user1'", Some("USER1"), &[]));
        assert!(eval("userId ne 'user1'", Some("user2"), &[]));
        assert!(eval("connectionId eq 'conn-1'", None, &[]));
        assert!(!eval("connectionId ne 'conn-1'", None, &[]));
    }

    #[test]
    fn null_user_id() {
        assert!(eval("userId eq null", None, &[]));
        assert!(!eval("userId eq null", Some("u"), &[]));
        assert!(eval("userId ne null", Some("u"), &[]));
        assert!(!eval("userId eq 'u'", None, &[]));
        assert!(eval("userId ne 'u'", None, &[]));
        assert!(!eval("length(userId) gt 0", None, &[]));
        assert!(!eval("length(userId) le 0", None, &[]));
        assert!(!eval("startswith(userId, 'a')", None, &[]));
        assert!(eval("not startswith(userId, 'a')", None, &[]));
        assert!(eval("null eq null", None, &[]));
    }

    #[test]
    fn identifiers_and_keywords_are_case_insensitive() {
        assert!(eval("USERID eq 'u' AND 'g' IN Groups", Some("u"), &["g"]));
        assert!(eval("ConnectionId EQ 'conn-1'", None, &[]));
        assert!(eval("StartsWith(userid, 'a')", Some("ab"), &[]));
    }

    #[test]
    fn string_literal_escapes_quote() {
        assert!(eval("userId eq 'user''1'", Some("user'1"), &[]));
        assert!(eval("userId eq ''''", Some("'"), &[]));
        assert!(eval("userId eq ''", Some(""), &[]));
    }

    #[test]
    fn in_groups() {
        assert!(eval("'g1' in groups", None, &["g0", "g1"]));
        assert!(!eval("'g2' in groups", None, &["g0", "g1"]));
        assert!(eval("'g1' in (groups)", None, &["g1"]));
        assert!(eval("userId in groups", Some("g1"), &["g1"]));
        assert!(!eval("userId in groups", None, &["g1"]));
        assert!(eval("not ('g1' in groups)", None, &[]));
    }

    #[test]
    fn in_list() {
        assert!(eval("userId in ('a', 'b', 'c')", Some("b"), &[]));
        assert!(!eval("userId in ('a', 'b', 'c')", Some("d"), &[]));
        assert!(eval("userId in ('a')", Some("a"), &[]));
        assert!(eval("userId in ('a', null)", None, &[]));
        assert!(eval("length(userId) in (1, 2)", Some("ab"), &[]));
    }

    #[test]
    fn integer_comparisons() {
        assert!(eval("length(userId) gt 3", Some("abcd"), &[]));
        assert!(!eval("length(userId) gt 4", Some("abcd"), &[]));
        assert!(eval("length(userId) ge 4", Some("abcd"), &[]));
        assert!(eval("length(userId) lt 5", Some("abcd"), &[]));
        assert!(eval("length(userId) le 4", Some("abcd"), &[]));
        assert!(eval("length(userId) eq +4", Some("abcd"), &[]));
        assert!(eval("-1 lt 0", None, &[]));
        assert!(eval("length(groups) eq 2", None, &["a", "b"]));
    }

    #[test]
    fn string_ordering_is_ordinal() {
        assert!(eval("userId gt 'a'", Some("b"), &[]));
        assert!(eval("userId lt 'a'", Some("B"), &[]));
        assert!(eval("userId ge 'b'", Some("b"), &[]));
        assert!(!eval("userId gt 'a'", None, &[]));
    }

    #[test]
    fn boolean_literals_and_equality() {
        assert!(eval("true", None, &[]));
        assert!(!eval("false", None, &[]));
        assert!(eval("true eq true", None, &[]));
        assert!(eval("startswith(userId, 'a') eq false", Some("b"), &[]));
    }

    #[test]
    fn precedence_and_over_or() {
        // a and b or c and d == (a and b) or (c and d)
        let f = "userId eq 'x' and false or userId eq 'x' and true";
        assert!(eval(f, Some("x"), &[]));
        let f = "userId eq 'x' or userId eq 'y' and false";
        assert!(eval(f, Some("x"), &[]));
        assert!(!eval("(userId eq 'x' or userId eq 'y') and false", Some("x"), &[]));
    }

    #[test]
    fn not_binds_tighter_than_comparison() {
        let e = error("not length(userId) gt 5");
        assert!(e.message().contains("'not' needs a boolean"), "{e}");
        assert!(eval("not (length(userId) gt 5)", Some("ab"), &[]));
        assert!(eval("not not true", None, &[]));
        assert!(eval("not false and true", None, &[]));
    }

    #[test]
    fn string_functions() {
        assert!(eval("tolower(userId) eq 'user1'", Some("USER1"), &[]));
        assert!(eval("toupper(userId) eq 'USER1'", Some("user1"), &[]));
        assert!(eval("trim(userId) eq 'user1'", Some("  user1 "), &[]));
        assert!(eval("substring(userId, 5, 2) eq 'ab'", Some("user-ab-de"), &[]));
        assert!(eval("substring(userId, 8) eq 'de'", Some("user-ab-de"), &[]));
        assert!(eval("substring(userId, 99) eq ''", Some("abc"), &[]));
        assert!(eval("substring(userId, -3, 2) eq 'ab'", Some("abc"), &[]));
        assert!(eval("endswith(userId, 'de')", Some("user-ab-de"), &[]));
        assert!(eval("startswith(userId, 'user')", Some("user-ab-de"), &[]));
        assert!(eval("contains(userId, '-ab-')", Some("user-ab-de"), &[]));
        assert!(eval("indexof(userId, '-ab-') eq 4", Some("user-ab-de"), &[]));
        assert!(eval("indexof(userId, 'zz') eq -1", Some("user-ab-de"), &[]));
        assert!(eval("indexof(userId, 'b') eq 2", Some("äab"), &[]));
        assert!(eval("length(userId) eq 3", Some("äab"), &[]));
        assert!(eval("concat(userId, '-x') eq 'u-x'", Some("u"), &[]));
        assert!(eval("concat(userId, '-x') eq null", None, &[]));
    }

    #[test]
    fn documented_examples() {
        let groups = ["group1"];
        assert!(eval(
            "'group1' in groups or 'group2' in groups or 'group3' in groups",
            None,
            &groups
        ));
        assert!(eval(
            "userId in ('user1', 'user2', 'user3') and 'group1' in groups",
            Some("user2"),
            &groups
        ));
        assert!(eval("userId eq 'user1' and connectionId ne '123'", Some("user1"), &[]));
        assert!(!eval(
            "userId eq 'user1' and (not ('group1' in groups))",
            Some("user1"),
            &groups
        ));
        assert!(eval(
            "userId eq 'user1' or (not (startswith(userId,'user2')))",
            Some("x"),
            &[]
        ));
        let f = "length(userId) gt 0 and length(userId) lt 3 or length(userId) gt 7 and length(userId) lt 10";
        assert!(eval(f, Some("ab"), &[]));
        assert!(eval(f, Some("abcdefgh"), &[]));
        assert!(!eval(f, Some("abcde"), &[]));
    }

    #[test]
    fn error_carries_position() {
        let e = error("userId eq 'a' and userId = 'b'");
        assert_eq!(e.position(), 25);
        assert!(e.to_string().starts_with("invalid filter at position 25:"), "{e}");
        assert!(e.message().contains("eq"), "{e}");
    }

    #[test]
    fn rejects_unknown_identifier() {
        assert!(error("user eq 'a'").message().contains("unknown identifier 'user'"));
    }

    #[test]
    fn rejects_unknown_function() {
        assert!(error("frobnicate(userId)").message().contains("unknown function"));
    }

    #[test]
    fn rejects_wrong_argument_types() {
        assert!(
            error("tolower(groups) eq 'a'")
                .message()
                .contains("tolower expects (string)")
        );
        assert!(
            error("substring(userId, 'a') eq 'a'")
                .message()
                .contains("substring expects")
        );
        assert!(error("startswith(userId)").message().contains("startswith expects"));
    }

    #[test]
    fn rejects_type_mismatch_in_comparison() {
        assert!(
            error("userId eq 1")
                .message()
                .contains("cannot compare a string with an integer")
        );
        assert!(error("groups eq 'a'").message().contains("'name' in groups"));
        assert!(error("true gt false").message().contains("cannot compare"));
        assert!(error("userId in (1, 2)").message().contains("cannot compare"));
        assert!(error("userId in ('a', 1)").message().contains("list mixes"));
    }

    #[test]
    fn rejects_non_boolean_filter() {
        assert!(error("userId").message().contains("must be a boolean"));
        assert!(error("length(groups)").message().contains("must be a boolean"));
    }

    #[test]
    fn rejects_non_boolean_logical_operands() {
        assert!(
            error("userId and true")
                .message()
                .contains("'and' needs boolean operands")
        );
        assert!(error("true or 'x'").message().contains("'or' needs boolean operands"));
    }

    #[test]
    fn rejects_bad_in_target() {
        assert!(error("'a' in userId").message().contains("right side of 'in'"));
        assert!(error("groups in groups").message().contains("left side of 'in'"));
        assert!(error("('a', 'b') eq 'a'").message().contains("only allowed after 'in'"));
    }

    #[test]
    fn rejects_chained_comparisons() {
        assert!(error("1 eq 1 eq true").message().contains("cannot be chained"));
    }

    #[test]
    fn rejects_lexical_errors() {
        assert!(error("userId eq 'abc").message().contains("unterminated string"));
        assert!(error("userId eq \"a\"").message().contains("single quotes"));
        assert!(error("length(userId) eq 1.5").message().contains("only integers"));
        assert!(
            error("length(userId) eq 99999999999999999999")
                .message()
                .contains("64-bit")
        );
        assert!(error("userId eq 'a' ; drop").message().contains("unexpected character"));
        assert!(error("- eq 1").message().contains("unexpected character '-'"));
    }

    #[test]
    fn rejects_incomplete_expressions() {
        assert!(error("").message().contains("expected a value"));
        assert!(error("userId eq").message().contains("expected a value"));
        assert!(error("(userId eq 'a'").message().contains("expected ')'"));
        assert!(error("userId eq 'a')").message().contains("unexpected ')'"));
        assert!(error("and true").message().contains("expected a value before 'and'"));
        assert!(error("true true").message().contains("unexpected 'true'"));
    }

    #[test]
    fn rejects_too_long() {
        let long = format!("userId eq '{}'", "a".repeat(MAX_FILTER_CHARS));
        assert!(error(&long).message().contains("longer than"));
        let fits = format!("userId eq '{}'", "a".repeat(MAX_FILTER_CHARS - 12));
        assert!(Filter::parse(&fits).is_ok());
    }

    #[test]
    fn rejects_too_deep() {
        let deep = format!("{}true{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(error(&deep).message().contains("nested more than"));
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
        assert!(Filter::parse(&ok).is_ok());
        let nots = format!("{}true", "not ".repeat(1000));
        assert!(error(&nots).message().contains("nested more than"));
        let calls = format!("{}userId{} eq 'a'", "tolower(".repeat(100), ")".repeat(100));
        assert!(error(&calls).message().contains("nested more than"));
    }

    #[test]
    fn rejects_too_many_clauses() {
        let clause = |i: usize| format!("'g{i}' in groups");
        let at_limit: Vec<String> = (0..MAX_CLAUSES).map(clause).collect();
        assert!(Filter::parse(&at_limit.join(" or ")).is_ok());
        let over: Vec<String> = (0..=MAX_CLAUSES).map(clause).collect();
        assert!(error(&over.join(" or ")).message().contains("more than 100 clauses"));
    }

    #[test]
    fn filter_keeps_source_text() {
        let filter = Filter::parse("userId eq 'a'").unwrap();
        assert_eq!(filter.as_str(), "userId eq 'a'");
        assert_eq!(filter.to_string(), "userId eq 'a'");
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(input in "\\PC{0,200}") {
            let _ = Filter::parse(&input);
        }

        #[test]
        fn parse_and_eval_never_panic_on_filter_like_text(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("userId"), Just("connectionId"), Just("groups"), Just("eq"), Just("ne"), Just("gt"),
                    Just("in"), Just("and"), Just("or"), Just("not"), Just("("), Just(")"), Just(","),
                    Just("'a'"), Just("''''"), Just("1"), Just("-2"), Just("null"), Just("true"),
                    Just("length("), Just("substring("), Just("tolower("), Just("startswith("), Just("indexof("),
                ],
                0..40,
            ),
            user in proptest::option::of("[a-c]{0,3}"),
        ) {
            let input = parts.join(" ");
            if let Ok(filter) = Filter::parse(&input) {
                let _ = filter.matches("c", user.as_deref(), &["a", "b"]);
            }
        }
    }
}
