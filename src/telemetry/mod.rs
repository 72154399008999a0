//! Logging: `tracing` to **stdout**, one line per event with structured fields.
//!
//! The Functions host records every stderr line as an error, so nothing but fatal start-up errors goes there.
//! Text lines escape control characters in every value ([`TextFields`]), so one event is always one line.
//! The filter follows `RUST_LOG` syntax (default `info`); `LOG_FORMAT=json` emits one JSON object per line for
//! Application Insights. No ANSI colours: the host captures the stream as plain text. Lines are batched
//! in memory and written by a flusher thread (`batch`) so logging stays off the request path.

mod batch;
mod fields;

use tracing_subscriber::EnvFilter;

use self::batch::{BatchGuard, BatchWriter};
pub use self::fields::TextFields;

use crate::config::{ConfigError, Env};

/// Our events at `info`; warp's per-request trace lines only when something fails hard.
pub const DEFAULT_FILTER: &str = "info,warp=error,hyper=warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` text, for humans and the local `func start` console.
    Text,
    /// One JSON object per line, for Application Insights queries.
    Json,
}

/// Logging settings: `RUST_LOG` (filter) and `LOG_FORMAT` (`text` | `json`).
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A `RUST_LOG`-syntax filter.
    pub filter: String,
    /// Text or JSON lines.
    pub format: LogFormat,
}

impl LogSettings {
    /// Reads `RUST_LOG` and `LOG_FORMAT`; defaults to [`DEFAULT_FILTER`] and text.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let filter = env.get("RUST_LOG").unwrap_or(DEFAULT_FILTER).to_owned();
        EnvFilter::try_new(&filter).map_err(|e| ConfigError::new("RUST_LOG", format!("invalid filter: {e}")))?;
        let format = match env.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => {
                return Err(ConfigError::new("LOG_FORMAT", "expected text or json"));
            }
        };
        Ok(Self { filter, format })
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: DEFAULT_FILTER.into(),
            format: LogFormat::Text,
        }
    }
}

/// Keeps the log writer thread running; dropping it flushes what is still buffered. Hold it until exit.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<BatchGuard>,
}

/// Installs the global subscriber. Safe to call more than once (later calls are ignored).
///
/// Lines go through `BatchWriter`: appended to an in-memory batch that a flusher thread writes to stdout
/// at most `batch::LINGER` (50 ms) later. It never drops a line: past `batch::MAX_PENDING_BYTES` (1 MiB)
/// the logging thread writes the batch itself.
pub fn init(settings: &LogSettings) -> LogGuard {
    init_with_sink(settings, std::io::stdout())
}

/// [`init`] writing to `sink` instead of stdout (benchmarks measure logging's cost with `io::sink()`).
pub fn init_with_sink(settings: &LogSettings, sink: impl std::io::Write + Send + 'static) -> LogGuard {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (writer, guard) = BatchWriter::spawn(sink);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false);
    let installed = match settings.format {
        LogFormat::Text => builder.fmt_fields(TextFields).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    LogGuard {
        _writer: installed.ok().map(|()| guard),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_info_text() {
        let settings = LogSettings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.filter, DEFAULT_FILTER);
        assert_eq!(settings.format, LogFormat::Text);
    }

    #[test]
    fn json_format_and_bad_values() {
        let env = Env::from_pairs([("LOG_FORMAT", "JSON")]);
        assert_eq!(LogSettings::from_env(&env).unwrap().format, LogFormat::Json);
        let env = Env::from_pairs([("LOG_FORMAT", "xml-secretvalue")]);
        let error = LogSettings::from_env(&env).unwrap_err();
        assert_eq!(error.setting, "LOG_FORMAT");
        assert!(!error.to_string().contains("secretvalue"), "{error}");
        let env = Env::from_pairs([("RUST_LOG", "info,[[[secretvalue")]);
        let error = LogSettings::from_env(&env).unwrap_err();
        assert_eq!(error.setting, "RUST_LOG");
        assert!(!error.to_string().contains("secretvalue"), "{error}");
    }
}
