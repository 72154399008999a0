//! Log capture for tests: [`capture_logs`] records this thread's log lines (formatted by the caller's field
//! formatter), so a test can assert what a request logged, and that no secret was.

use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::FormatFields;

/// Log output captured by [`capture_logs`]; also an `io::Write` a test can hand to a formatter itself.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first captured line containing `needle`; panics showing every line when there is none.
    pub fn line(&self, needle: &str) -> String {
        let text = self.text();
        match text.lines().find(|line| line.contains(needle)) {
            Some(line) => line.to_owned(),
            None => panic!("no log line contains {needle:?}; captured:\n{text}"),
        }
    }
}

/// Asserts that `line` contains every one of `fields` (e.g. `"user_id=ada"`), naming the first missing one.
pub fn assert_fields(line: &str, fields: &[&str]) {
    for field in fields {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

/// A subscriber that records nothing but keeps every callsite "sometimes" interesting.
///
/// `tracing` caches each callsite's interest process-wide, computed by whichever thread reaches it first;
/// with a single registered dispatcher a sibling test thread without a subscriber would cache "never" and
/// blind this thread's capture. While this second dispatcher lives, interest is the union over dispatchers,
/// so each event is checked against the emitting thread's own subscriber.
struct InterestAnchor;

impl tracing::Subscriber for InterestAnchor {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Captures this thread's log lines, formatted with `fields` (the caller's field formatter, so lines read as
/// in production), until the guard drops.
pub fn capture_logs<F>(fields: F) -> (Captured, tracing::subscriber::DefaultGuard)
where
    F: for<'w> FormatFields<'w> + Send + Sync + 'static,
{
    static ANCHOR: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    ANCHOR.get_or_init(|| tracing::Dispatch::new(InterestAnchor));
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(fields)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Repairs callsites a sibling cached as "never" before the anchor existed.
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}
