//! The three data types of Web PubSub messages: the `dataType` a client message or a publish
//! names (`text`, `json`, `binary`), and the `Content-Type` a REST send, an upstream user event
//! or its reply carries for it.

/// What a message's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `text/plain`, `dataType: "text"`: UTF-8 text.
    Text,
    /// `application/json`, `dataType: "json"`: a JSON value.
    Json,
    /// `application/octet-stream`, `dataType: "binary"`: bytes.
    Binary,
}

impl DataType {
    /// Every data type.
    pub const ALL: [DataType; 3] = [Self::Text, Self::Json, Self::Binary];

    /// The `dataType` spelling: `text`, `json` or `binary`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::Binary => "binary",
        }
    }

    /// A `dataType` name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }

    /// The media type without parameters: `text/plain`, `application/json` or
    /// `application/octet-stream`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Json => "application/json",
            Self::Binary => "application/octet-stream",
        }
    }

    /// The data type a `Content-Type` value names by its media type (ASCII case and parameters
    /// such as `charset` ignored); any other media type is `None`.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let media_type = value.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.media_type().eq_ignore_ascii_case(media_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_ignoring_case() {
        for kind in DataType::ALL {
            assert_eq!(DataType::from_name(kind.as_str()), Some(kind));
            assert_eq!(DataType::from_name(&kind.as_str().to_uppercase()), Some(kind));
        }
        assert_eq!(DataType::from_name("protobuf"), None);
        assert_eq!(DataType::from_name(""), None);
    }

    #[test]
    fn content_types_by_media_type() {
        let cases = [
            ("text/plain", Some(DataType::Text)),
            ("text/plain; charset=utf-8", Some(DataType::Text)),
            ("Application/JSON", Some(DataType::Json)),
            (" application/json ;charset=utf-8", Some(DataType::Json)),
            ("application/octet-stream", Some(DataType::Binary)),
            ("image/png", None),
            ("text/html", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(DataType::from_content_type(value), expected, "{value:?}");
        }
        for kind in DataType::ALL {
            assert_eq!(DataType::from_content_type(kind.media_type()), Some(kind));
        }
    }
}
