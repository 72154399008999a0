//! Configuration's leaf: the environment snapshot ([`Env`]) every module reads its settings from, and
//! [`ConfigError`], the one failure they report. It imports nothing from the rest of the crate.
//!
//! The flow is `Env` (a snapshot of raw strings, taken once) → each module's `Settings::from_env` (typed,
//! checked; the Web PubSub service's in [`crate::webpubsub::ServiceSettings`], the whole app's in
//! [`crate::server::Settings`]) → shared immutably by the app. Every failure names the setting and the
//! problem and never echoes a secret value.

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// A snapshot of the raw environment: names to values. Taken once, in `main` (or built by tests).
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Snapshot of the current process environment. Call once, at start-up.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// An environment made of explicit pairs (tests, `handler dev`).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// Adds or replaces one value, builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The trimmed value of `name`, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The value of a setting that must be present.
    pub fn require(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// Parses `name` with `FromStr`, or returns `default` when unset. Parse errors name the setting and
    /// the parser's rule, never the value: a value pasted into the wrong setting may be a secret.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError::new(name, format!("is not valid: {e}"))),
        }
    }

    /// As [`Env::parse_or`], and the value must lie in `range`: otherwise the error names the bounds in
    /// `unit` (`"bytes"`, `"seconds"`).
    pub(crate) fn parse_in<T>(
        &self,
        name: &str,
        default: T,
        range: RangeInclusive<T>,
        unit: &str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display,
        T::Err: Display,
    {
        let value = self.parse_or(name, default)?;
        if range.contains(&value) {
            return Ok(value);
        }
        Err(ConfigError::new(
            name,
            format!("must be from {} to {} {unit}", range.start(), range.end()),
        ))
    }

    /// A boolean setting: `true/false`, `1/0`, `yes/no`, `on/off` (any case).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError::new(
                name,
                "expected true or false (or 1/0, yes/no, on/off)",
            )),
        }
    }

    /// A list setting: items separated by commas, trimmed, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Env {
    // The environment holds secrets: show names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

/// A setting that is missing or malformed. `Display` is the one line printed before a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting}: {problem}")]
pub struct ConfigError {
    /// The setting's name, as in the environment.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// The error for `setting`, described by `problem`.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_count_as_unset() {
        let env = Env::from_pairs([("A", "  "), ("B", " x ")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), Some("x"));
        assert_eq!(env.require("A").unwrap_err().setting, "A");
    }

    #[test]
    fn parse_or_names_the_setting_never_the_value() {
        let env = Env::from_pairs([("PORT", "AccessKey=topsecret")]);
        let err = env.parse_or::<u16>("PORT", 1).unwrap_err();
        assert_eq!(err.setting, "PORT");
        assert!(
            err.to_string().contains("PORT") && err.to_string().contains("not valid"),
            "{err}"
        );
        assert!(!err.to_string().contains("topsecret"), "{err}");
        assert_eq!(Env::default().parse_or::<u16>("PORT", 7).unwrap(), 7);
    }

    #[test]
    fn flags_accept_common_spellings_and_reject_others() {
        let env = Env::from_pairs([("A", "Yes"), ("B", "0"), ("C", "maybe")]);
        assert!(env.flag("A", false).unwrap());
        assert!(!env.flag("B", true).unwrap());
        let err = env.flag("C", true).unwrap_err();
        assert!(!err.to_string().contains("maybe"), "{err}");
        assert!(env.flag("D", true).unwrap());
    }

    #[test]
    fn lists_split_on_commas_and_drop_blanks() {
        let env = Env::from_pairs([("L", " a, b ,,c ")]);
        assert_eq!(env.list("L"), ["a", "b", "c"]);
        assert!(env.list("missing").is_empty());
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Env::from_pairs([("WebPubSubConnectionString", "AccessKey=topsecret")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("WebPubSubConnectionString"));
        assert!(!shown.contains("topsecret"));
    }
}
