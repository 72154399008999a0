//! The filter parser: recursive descent over the tokens, type-checking as it builds the tree.
//! `depth` counts nesting and `clauses` counts comparisons, so hostile input stops at
//! [`MAX_DEPTH`] / [`MAX_CLAUSES`] with an error instead of exhausting the stack.

use super::lexer::{Token, TokenKind};
use super::syntax::{CompareOp, Expr, Function, Identifier, Literal, Ty};
use super::{FilterError, MAX_CLAUSES, MAX_DEPTH};

/// A parsed sub-expression and its static type.
pub(super) type Parsed = Result<(Expr, Ty), FilterError>;

pub(super) struct Parser {
    pub(super) tokens: Vec<Token>,
    pub(super) next: usize,
    pub(super) clauses: usize,
}

pub(super) fn keyword(token: &Token) -> Option<String> {
    match &token.kind {
        TokenKind::Word(w) => Some(w.to_ascii_lowercase()),
        _ => None,
    }
}

impl Parser {
    pub(super) fn new(tokens: Vec<Token>) -> Self {
        Self {
            tokens,
            next: 0,
            clauses: 0,
        }
    }

    pub(super) fn peek(&self) -> &Token {
        // The lexer always ends the list with `End`, and `bump` never moves past it.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    pub(super) fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.next < self.tokens.len() - 1 {
            self.next += 1;
        }
        token
    }

    pub(super) fn peek_keyword(&self) -> Option<String> {
        keyword(self.peek())
    }

    pub(super) fn expect(&mut self, kind: TokenKind, what: &str) -> Result<Token, FilterError> {
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

    pub(super) fn count_clause(&mut self, position: usize) -> Result<(), FilterError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(FilterError::new(
                position,
                format!("filter has more than {MAX_CLAUSES} clauses"),
            ));
        }
        Ok(())
    }

    pub(super) fn enter(&self, depth: usize, position: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(FilterError::new(
                position,
                format!("filter is nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(depth + 1)
    }

    /// `and_expr ('or' and_expr)*`
    pub(super) fn or_expr(&mut self, depth: usize) -> Parsed {
        self.logical(depth, "or", Parser::and_expr, Expr::Or)
    }

    /// `comparison ('and' comparison)*`
    pub(super) fn and_expr(&mut self, depth: usize) -> Parsed {
        self.logical(depth, "and", Parser::comparison, Expr::And)
    }

    pub(super) fn logical(
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
    pub(super) fn comparison(&mut self, depth: usize) -> Parsed {
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
    pub(super) fn in_target(&mut self, depth: usize, left: Expr, left_ty: Ty, start: usize) -> Parsed {
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
    pub(super) fn unary(&mut self, depth: usize) -> Parsed {
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
    pub(super) fn primary(&mut self, depth: usize) -> Parsed {
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
    pub(super) fn paren(&mut self, depth: usize, open: usize) -> Parsed {
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
    pub(super) fn call(&mut self, depth: usize, name: &str, position: usize) -> Parsed {
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

pub(super) fn require_bool(ty: Ty, position: usize, operator: &str) -> Result<(), FilterError> {
    if ty == Ty::Bool {
        Ok(())
    } else {
        Err(FilterError::new(
            position,
            format!("'{operator}' needs boolean operands, found {ty}"),
        ))
    }
}
