//! Test helpers shared by the unit tests of several modules (compiled only for tests) and, through
//! `#[path]`, by the e2e tests, so both capture logs the same way.
//!
//! [`capture_logs`] records this thread's log lines, so a test can assert what a request logged (and that
//! no secret was).

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

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
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
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

/// Captures this thread's log lines until the guard drops.
pub(crate) fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    static ANCHOR: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    ANCHOR.get_or_init(|| tracing::Dispatch::new(InterestAnchor));
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(webpubsub_control::telemetry::fields::TextFields)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Repairs callsites a sibling cached as "never" before the anchor existed.
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}
