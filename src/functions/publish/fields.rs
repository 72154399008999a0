//! Field lookup for `publish` request objects: names match ignoring ASCII case, every field used is
//! remembered so that a leftover one is refused, and every error names its field (and the action's index).

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

use super::actions::{ActionKind, KNOWN_FIELDS};
use webpubsub_protocol::DataType;

use super::payload::message_of;
use crate::error::ApiError;
use crate::webpubsub::validate::MAX_PAGE_SIZE;
use crate::webpubsub::{CloseOptions, ListConnectionsOptions, Message, SendOptions, ValidationError};

/// Connections listed per `listConnectionsInGroup` when the caller gives no `maxPageSize`.
pub(super) const DEFAULT_PAGE_SIZE: u32 = 100;
/// Longest `continuationToken` passed on (the service's tokens are far shorter).
const MAX_CONTINUATION_TOKEN_BYTES: usize = 4096;

/// Where in the request an error is: which action (by index in an array) of which kind.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub index: Option<usize>,
    pub action: Option<ActionKind>,
}

impl At {
    /// A 400 naming `field` (and the action's index in an array).
    pub(super) fn error(self, code: &'static str, field: &str, problem: impl fmt::Display) -> ApiError {
        let message = match (self.index, self.action) {
            (Some(index), Some(kind)) => format!("action {index} ({kind}): {problem}"),
            (Some(index), None) => format!("action {index}: {problem}"),
            (None, _) => problem.to_string(),
        };
        let error = ApiError::bad_request(code, message).with_detail("field", field);
        match self.index {
            Some(index) => error.with_detail("index", index),
            None => error,
        }
    }

    pub(super) fn invalid(self, error: &ValidationError, field: &str) -> ApiError {
        self.error(error.code(), field, error)
    }
}

/// The fields of one JSON object, looked up ignoring ASCII case; remembers which were used.
pub(super) struct Fields<'a> {
    entries: Vec<(&'a str, &'a Value, bool)>,
    pub at: At,
}

impl<'a> Fields<'a> {
    pub(super) fn new(map: &'a Map<String, Value>, at: At) -> Result<Self, ApiError> {
        let mut seen = HashSet::with_capacity(map.len());
        for name in map.keys() {
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(at.error(
                    "DuplicateField",
                    name,
                    format!("field {name} is given twice (names ignore case)"),
                ));
            }
        }
        Ok(Self {
            entries: map.iter().map(|(name, value)| (name.as_str(), value, false)).collect(),
            at,
        })
    }

    /// The value of `name`, marked used; `None` when absent or null.
    pub(super) fn take(&mut self, name: &str) -> Option<&'a Value> {
        let entry = self
            .entries
            .iter_mut()
            .find(|(key, ..)| key.eq_ignore_ascii_case(name))?;
        entry.2 = true;
        Some(entry.1).filter(|value| !value.is_null())
    }

    pub(super) fn string(&mut self, name: &'static str) -> Result<Option<&'a str>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.at.error("InvalidField", name, format!("{name} must be a string"))),
        }
    }

    pub(super) fn required_string(&mut self, name: &'static str) -> Result<&'a str, ApiError> {
        self.string(name)?
            .ok_or_else(|| self.at.error("MissingField", name, format!("{name} is required")))
    }

    /// A list of connection ids (`excluded`), each non-empty.
    pub(super) fn connection_ids(&mut self, name: &'static str) -> Result<Vec<String>, ApiError> {
        let invalid = |at: At| {
            at.error(
                "InvalidField",
                name,
                format!("{name} must be an array of non-empty connection id strings"),
            )
        };
        match self.take(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(id) if !id.is_empty() => Ok(id.clone()),
                    _ => Err(invalid(self.at)),
                })
                .collect(),
            Some(_) => Err(invalid(self.at)),
        }
    }

    /// `maxPageSize` (1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`]) and `continuationToken` of a
    /// listing: one bounded page per action.
    pub(super) fn page_options(&mut self) -> Result<ListConnectionsOptions, ApiError> {
        let max_page_size = match self.take("maxPageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(value) => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    self.at.error(
                        "InvalidPageSize",
                        "maxPageSize",
                        format!("maxPageSize must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    )
                })?,
        };
        let continuation_token = self.string("continuationToken")?.filter(|token| !token.is_empty());
        if continuation_token.is_some_and(|token| token.len() > MAX_CONTINUATION_TOKEN_BYTES) {
            return Err(self.at.error(
                "InvalidField",
                "continuationToken",
                format!("continuationToken must be at most {MAX_CONTINUATION_TOKEN_BYTES} bytes"),
            ));
        }
        Ok(ListConnectionsOptions {
            max_page_size: Some(max_page_size),
            top: None,
            continuation_token: continuation_token.map(str::to_owned),
        })
    }

    /// `excluded` and `filter` when the action takes them, and `messageTtlSeconds`.
    pub(super) fn send_options(&mut self, excluded: bool, filter: bool) -> Result<SendOptions, ApiError> {
        let mut options = SendOptions::default();
        if excluded {
            options.excluded = self.connection_ids("excluded")?;
        }
        if filter {
            options.filter = self.string("filter")?.map(str::to_owned);
        }
        options.ttl_seconds = match self.take("messageTtlSeconds") {
            None => None,
            Some(value) => Some(value.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                self.at.error(
                    "InvalidMessageTtl",
                    "messageTtlSeconds",
                    "messageTtlSeconds must be a whole number from 0 to 300",
                )
            })?),
        };
        Ok(options)
    }

    pub(super) fn close_options(&mut self) -> Result<CloseOptions, ApiError> {
        Ok(CloseOptions {
            excluded: self.connection_ids("excluded")?,
            reason: self.reason()?.map(str::to_owned),
        })
    }

    /// The close reason; an empty one is none.
    pub(super) fn reason(&mut self) -> Result<Option<&'a str>, ApiError> {
        Ok(self.string("reason")?.filter(|reason| !reason.is_empty()))
    }

    /// The payload in `data_field` with `dataType` (see [`message_of`]).
    pub(super) fn message(&mut self, data_field: &'static str) -> Result<Message, ApiError> {
        let data = self.take(data_field).ok_or_else(|| {
            self.at
                .error("MissingField", data_field, format!("{data_field} is required"))
        })?;
        let declared = match self.string("dataType")? {
            None => None,
            Some(name) => Some(DataType::from_name(name).ok_or_else(|| {
                self.at
                    .error("InvalidDataType", "dataType", "dataType must be text, json or binary")
            })?),
        };
        message_of(data, declared)
            .map_err(|problem| self.at.error(problem.code(), data_field, problem.describe(data_field)))
    }

    /// Fails on a field left unused, unless it is null, `""` or `[]`.
    pub(super) fn finish(&self) -> Result<(), ApiError> {
        let leftover = self.entries.iter().find(|(_, value, used)| {
            !used
                && !matches!(value, Value::Null)
                && value.as_str() != Some("")
                && value.as_array().is_none_or(|items| !items.is_empty())
        });
        let Some((name, ..)) = leftover else { return Ok(()) };
        let known = KNOWN_FIELDS.iter().any(|known| known.eq_ignore_ascii_case(name));
        Err(match (known, self.at.action) {
            (true, Some(kind)) => self.at.error(
                "FieldNotApplicable",
                name,
                format!("field {name} does not apply to {kind}"),
            ),
            (true, None) => self.at.error(
                "FieldNotApplicable",
                name,
                format!("field {name} does not apply to the simple form"),
            ),
            (false, _) => self.at.error("UnknownField", name, format!("unknown field {name}")),
        })
    }
}
