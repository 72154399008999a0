//! The filter lexer: characters to tokens (words, string and integer literals, punctuation), each
//! with its 0-based character position for error messages.

use std::fmt;

use super::FilterError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind {
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
pub(super) struct Token {
    pub(super) kind: TokenKind,
    pub(super) position: usize,
}

pub(super) fn lex(source: &str) -> Result<Vec<Token>, FilterError> {
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
pub(super) fn lex_string(chars: &[char], open: usize) -> Result<(String, usize), FilterError> {
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
pub(super) fn lex_integer(chars: &[char], start: usize) -> Result<(i64, usize), FilterError> {
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
