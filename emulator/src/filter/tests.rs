//! Filter tests: the documented examples, each error, the bounds, and that parsing never panics.

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

/// Each rejected filter with a fragment of the reason it must give.
const REJECTED: &[(&str, &str)] = &[
    // unknown names
    ("user eq 'a'", "unknown identifier 'user'"),
    ("frobnicate(userId)", "unknown function"),
    // wrong argument types
    ("tolower(groups) eq 'a'", "tolower expects (string)"),
    ("substring(userId, 'a') eq 'a'", "substring expects"),
    ("startswith(userId)", "startswith expects"),
    // type mismatches in comparisons
    ("userId eq 1", "cannot compare a string with an integer"),
    ("groups eq 'a'", "'name' in groups"),
    ("true gt false", "cannot compare"),
    ("userId in (1, 2)", "cannot compare"),
    ("userId in ('a', 1)", "list mixes"),
    // not a boolean where one is needed
    ("userId", "must be a boolean"),
    ("length(groups)", "must be a boolean"),
    ("userId and true", "'and' needs boolean operands"),
    ("true or 'x'", "'or' needs boolean operands"),
    // bad `in` operands, chained comparisons
    ("'a' in userId", "right side of 'in'"),
    ("groups in groups", "left side of 'in'"),
    ("('a', 'b') eq 'a'", "only allowed after 'in'"),
    ("1 eq 1 eq true", "cannot be chained"),
    // lexical errors
    ("userId eq 'abc", "unterminated string"),
    ("userId eq \"a\"", "single quotes"),
    ("length(userId) eq 1.5", "only integers"),
    ("length(userId) eq 99999999999999999999", "64-bit"),
    ("userId eq 'a' ; drop", "unexpected character"),
    ("- eq 1", "unexpected character '-'"),
    // incomplete expressions
    ("", "expected a value"),
    ("userId eq", "expected a value"),
    ("(userId eq 'a'", "expected ')'"),
    ("userId eq 'a')", "unexpected ')'"),
    ("and true", "expected a value before 'and'"),
    ("true true", "unexpected 'true'"),
];

#[test]
fn rejects_with_the_reason() {
    for (filter, reason) in REJECTED {
        let message = error(filter).message().to_owned();
        assert!(message.contains(reason), "{filter:?}: {message:?} lacks {reason:?}");
    }
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
