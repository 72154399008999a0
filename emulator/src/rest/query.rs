//! Query-string access: parameters in order, names compared ignoring ASCII case (as the service
//! does), single-valued parameters refusing repeats, bounded integers.

use super::error::ApiError;

/// Query parameters in order; names compare ignoring ASCII case, as the service's do.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: &str) -> Query {
        Query(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    /// Every value of a repeatable parameter (`excluded=a&excluded=b`).
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a single-valued parameter; repeating it is an error.
    pub(super) fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "InvalidQueryParameter",
                format!("'{name}' must be given at most once"),
            ));
        }
        Ok(first)
    }

    /// An optional integer parameter within `range`.
    pub(super) fn integer<T>(&self, name: &str, range: std::ops::RangeInclusive<T>) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        let Some(text) = self.one(name)? else {
            return Ok(None);
        };
        let invalid = || {
            ApiError::bad_request(
                "InvalidQueryParameter",
                format!("'{name}' must be an integer from {} to {}", range.start(), range.end()),
            )
        };
        let value: T = text.trim().parse().map_err(|_| invalid())?;
        if range.contains(&value) {
            Ok(Some(value))
        } else {
            Err(invalid())
        }
    }
}
