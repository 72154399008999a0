//! Unit tests of `publish` (placeholder while the module lands).
