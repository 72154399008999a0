//! Unit tests of rights templates: pattern matching (`{userId}`, `*`), literal rendering and escaping,
//! refusal of bad and ambiguous templates, and property tests that matching never panics.

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
fn user_id_is_a_whole_segment_in_every_template_form() {
    // Issue #14 item 3: `john` must not reach the groups of `john.smith` (or `smith` those of `x.smith`).
    assert!(allows("inbox.{userId}.*", "inbox.john.private", "john"));
    assert!(!allows("inbox.{userId}.*", "inbox.john.smith.private", "john.smith"));
    assert!(allows("inbox.{userId}.*", "inbox.john.smith.private", "john"));
    // ...so `john.smith` never owns that name: no prefix collision.
    for (template, name, owner, other) in [
        ("inbox.{userId}", "inbox.john", "john", "john.smith"),
        ("inbox.{userId}.*", "inbox.john.smith.x", "john", "john.smith"),
        ("inbox.{userId}:*", "inbox.john:x:mail", "john", "john:x"),
        ("*.{userId}", "x.john.smith", "smith", "john.smith"),
        ("*:{userId}.inbox", "a:b:c.inbox", "c", "b:c"),
        ("{userId}.*", "john.smith.x", "john", "john.smith"),
        ("a.{userId}.b.*", "a.j.b.k.b.x", "j", "j.b.k"),
    ] {
        let template = Template::pattern(template).unwrap();
        assert!(template.matches(name, owner), "{template} {name} {owner}");
        assert!(!template.matches(name, other), "{template} {name} {other}");
        assert_eq!(template.try_render(other), None, "{template} {other}");
    }
    // Literal templates (events' default groups and roles) render only for ids that fit.
    let literal = Template::literal("inbox.{userId}").unwrap();
    assert_eq!(literal.try_render("john").as_deref(), Some("inbox.john"));
    assert_eq!(literal.try_render("john.smith"), None);
    assert!(!literal.matches("inbox.john.smith", "john.smith"));
    let role = Template::literal("webpubsub.sendToGroup.user:{userId}").unwrap();
    assert_eq!(role.try_render("a:b"), None);
    assert_eq!(
        role.try_render("a.b").as_deref(),
        Some("webpubsub.sendToGroup.user:a.b")
    );
    // A template without a separator next to the id has nothing to refuse.
    assert_eq!(
        Template::literal("{userId}").unwrap().try_render("a.b:c").as_deref(),
        Some("a.b:c")
    );
}

#[test]
fn ambiguous_user_id_placements_are_refused() {
    for text in [
        "inbox.*{userId}",
        "inbox.{userId}*",
        "inbox{userId}.x",
        "inbox.{userId}x",
        "inbox.{userId}{userId}",
        "*.{userId}.*",
        "*.{userId}.x.*",
        "a*b.{userId}.c*",
    ] {
        assert!(
            matches!(Template::pattern(text), Err(TemplateError::AmbiguousUserId(_))),
            "{text}"
        );
    }
    assert!(matches!(
        Template::literal("x*{userId}"),
        Err(TemplateError::AmbiguousUserId(_))
    ));
    for text in [
        "{userId}",
        "inbox.{userId}",
        "{userId}.*",
        "*.{userId}",
        "team:*:member:{userId}",
        "a.{userId}.b:{userId}",
    ] {
        assert!(Template::pattern(text).is_ok(), "{text}");
    }
    // Service wildcard roles are literal: their `*` after a separator is the service's own.
    assert!(Template::pattern("webpubsub.joinLeaveGroups.user.{userId}.*").is_ok());
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
        if let Ok(template) = Template::pattern(&text) {
            prop_assert!(template.matches(&template.render(&user), &user));
        }
    }

    #[test]
    fn no_two_user_ids_match_one_name(
        template in "(inbox[.:]|[*][.:])?\\{userId\\}([.:]inbox|[.:][*])?",
        candidate in "(inbox|x)[.:][a-c.:]{1,8}([.:]inbox)?",
        first in "[a-c.:]{1,4}",
        second in "[a-c.:]{1,4}",
    ) {
        if let (Ok(template), true) = (Template::pattern(&template), first != second) {
            prop_assert!(!(template.matches(&candidate, &first) && template.matches(&candidate, &second)));
        }
    }

    #[test]
    fn star_pattern_agrees_with_a_reference(prefix in "[ab]{0,3}", suffix in "[ab]{0,3}", candidate in "[ab]{0,8}") {
        let template = Template::pattern(&format!("{prefix}*{suffix}")).unwrap();
        let expected = candidate.len() > prefix.len() + suffix.len()
            && candidate.starts_with(&prefix) && candidate.ends_with(&suffix);
        prop_assert_eq!(template.matches(&candidate, "u"), expected);
    }
}
