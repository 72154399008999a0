//! How text log lines write their fields: `message key=value key="quoted value"`, for spans and events.
//!
//! It replaces `tracing-subscriber`'s default field formatter for two reasons:
//! - **No forged lines.** The default writes `%`-formatted values as they are, newlines included, so a value
//!   a client chose (a user id from a custom handler, a group, an error message quoting input) could end a
//!   line and start a fake one. Here every control character in every value and message is escaped (`\n`,
//!   `\r`, `\t`, `\u{1b}`), so one event is always exactly one line.
//! - **Speed.** The default escapes terminal sequences one `char` at a time through `core::fmt`; this one
//!   scans bytes and writes clean runs whole. Field formatting was the largest part of a log line's cost.
//!
//! String values (`key = value`) are written bare when they are one plain token and quoted with Rust's
//! string escapes otherwise, so `key=value` pairs stay unambiguous for log queries.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The field formatter of text logs (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    /// Writes the separator and `name=` (nothing for the message), then the value through `write_value`.
    fn field(&mut self, field: &Field, write_value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.writer.write_char(' ')?;
            }
            let name = field.name();
            if name != "message" {
                self.writer.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.writer.write_char('=')?;
            }
            write_value(&mut self.writer)
        })();
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, |writer| Escaped(writer).write_str(value));
        } else if is_bare_token(value) {
            self.field(field, |writer| writer.write_str(value));
        } else {
            self.field(field, |writer| write!(writer, "{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |writer| write!(Escaped(writer), "{value:?}"));
    }
}

/// Whether a string value can be written without quotes: non-empty, no whitespace, quotes, backslashes,
/// `=`, control or invisible characters (non-ASCII text is fine, except what may start with 0xC2 — the C1
/// controls — 0xE2 or 0xEF, the lead bytes of the bidi, zero-width and line-separator characters; quoted
/// values are written with `Debug`, which escapes those).
fn is_bare_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b > b' ' && b != b'"' && b != b'\\' && b != b'=' && b != 0x7f && !matches!(b, 0xc2 | 0xe2 | 0xef))
}

/// Characters that change how a line reads without being seen: bidi embeddings, overrides and isolates,
/// left-to-right / right-to-left marks, zero-width spaces and joiners, the byte-order mark, and the line
/// and paragraph separators.
fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Writes through to the inner writer, escaping control characters (C0, DEL and C1) and [invisible
/// ones](is_invisible).
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, mut text: &str) -> fmt::Result {
        // Every control or invisible character's UTF-8 encoding starts with a byte below 0x20, 0x7f, 0xc2,
        // 0xe2 or 0xef.
        while let Some(at) = text
            .bytes()
            .position(|b| b < 0x20 || matches!(b, 0x7f | 0xc2 | 0xe2 | 0xef))
        {
            let (clean, rest) = text.split_at(at);
            self.0.write_str(clean)?;
            let Some(ch) = rest.chars().next() else { break };
            match ch {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                ch if ch.is_control() || is_invisible(ch) => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                // 0xc2, 0xe2 and 0xef also start printable characters (e.g. '£', '✓', '€').
                ch => self.0.write_char(ch)?,
            }
            text = &rest[ch.len_utf8()..];
        }
        self.0.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::Captured;

    use proptest::prelude::*;

    /// What `log` writes through a text subscriber with [`TextFields`] (no time, level or target).
    fn line(log: impl FnOnce()) -> String {
        let lines = Captured::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(TextFields)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        lines.text()
    }

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        Escaped(&mut out).write_str(text).unwrap();
        out
    }

    #[test]
    fn writes_message_then_fields_bare_when_plain() {
        let text = line(|| tracing::info!(hub = "chat", status = 204u16, user_id = %"alice", "Received"));
        assert_eq!(text, "Received hub=chat status=204 user_id=alice\n");
    }

    #[test]
    fn quotes_string_values_that_are_not_one_plain_token() {
        let text = line(|| tracing::info!(a = "two words", b = "", c = "k=v", d = "say \"hi\"", "m"));
        assert_eq!(text, r#"m a="two words" b="" c="k=v" d="say \"hi\"""#.to_owned() + "\n");
    }

    #[test]
    fn a_value_cannot_start_a_forged_line() {
        let forged = "alice\n2026-01-01T00:00:00Z  INFO admin logged in";
        let text = line(|| {
            tracing::info!(user_id = %forged, group = forged, "Received {}", "a\r\nb");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(r"user_id=alice\n2026"), "{text}");
        assert!(text.contains(r#"group="alice\n2026"#), "{text}");
        assert!(text.starts_with(r"Received a\r\nb "), "{text}");
    }

    #[test]
    fn span_fields_use_the_same_rules() {
        let text = line(|| {
            let span = tracing::info_span!("request", path = "/api/events", invocation_id = "a b");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(text, "request{path=/api/events invocation_id=\"a b\"}: inside\n");
    }

    #[test]
    fn escapes_every_control_character_and_nothing_else() {
        assert_eq!(escaped("tab\there"), r"tab\there");
        assert_eq!(escaped("\u{1b}[31mred"), r"\u{1b}[31mred");
        assert_eq!(escaped("del\u{7f} c1\u{85}"), r"del\u{7f} c1\u{85}");
        assert_eq!(escaped("£5 ünïcödé ✓ \u{a0}"), "£5 ünïcödé ✓ \u{a0}");
        assert_eq!(escaped(""), "");
    }

    #[test]
    fn escapes_bidi_and_zero_width_characters() {
        // #14 item 11: a user id that reorders or hides text in a log line.
        assert_eq!(escaped("ada\u{202e}nimda"), r"ada\u{202e}nimda");
        for ch in [
            '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{2066}',
            '\u{2069}', '\u{feff}',
        ] {
            assert_eq!(escaped(&format!("a{ch}b")), format!("a\\u{{{:x}}}b", ch as u32));
            assert!(!is_bare_token(&format!("a{ch}b")), "{ch:?}");
        }
        let text = line(|| tracing::info!(user_id = "ada\u{202e}nimda", "Issued"));
        assert!(text.contains(r#"user_id="ada\u{202e}nimda""#), "{text}");
        let shown = "\u{202e}x";
        let text = line(|| tracing::info!(user_id = %shown, "Issued"));
        assert!(text.contains(r"user_id=\u{202e}x"), "{text}");
    }

    #[test]
    fn bare_tokens() {
        for bare in ["chat", "/api/events", "6f9619ff-8b86", "ünï", "a.b:c"] {
            assert!(is_bare_token(bare), "{bare}");
        }
        for quoted in ["", "a b", "a=b", "a\"b", "a\\b", "a\nb", "\u{85}", "a\u{a0}b"] {
            assert!(!is_bare_token(quoted), "{quoted:?}");
        }
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_control_characters_and_round_trips_clean_text(text in any::<String>()) {
            let out = escaped(&text);
            prop_assert!(!out.chars().any(|c| c.is_control() || is_invisible(c)));
            if !text.chars().any(|c| c.is_control() || is_invisible(c)) {
                prop_assert_eq!(out, text);
            }
        }
    }
}
