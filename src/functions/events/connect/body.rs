//! The `connect` request body, borrowed from the request bytes where JSON allows it and parsed leniently
//! where the service's shapes are loose (a claim may be a string or a list; odd values are skipped, never
//! a 500).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Claim names that carry roles: the JWT short name and the .NET claim-type URI.
const ROLE_CLAIMS: [&str; 2] = ["role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"];
/// The claim that lists the groups a client token joins on connect.
const GROUP_CLAIM: &str = "webpubsub.group";

/// The `connect` request body: `{"claims","query","headers","subprotocols","clientCertificates","mqtt"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectBody<'a> {
    /// The client token's claims (name → values).
    #[serde(borrow, default)]
    pub claims: Multimap<'a>,
    /// The query of the client's connect URL (client-supplied: trust it only by configuration).
    #[serde(borrow, default)]
    pub query: Multimap<'a>,
    /// The client's handshake headers (client-supplied); names compare case-insensitively.
    #[serde(borrow, default)]
    pub headers: Multimap<'a>,
    /// The subprotocols the client offered, in its order.
    #[serde(borrow, default)]
    pub subprotocols: Values<'a>,
    /// Client certificates, when the service asks for them.
    #[serde(borrow, default)]
    pub client_certificates: Option<Vec<ClientCertificate<'a>>>,
    /// Present for MQTT clients only.
    #[serde(borrow, default)]
    pub mqtt: Option<MqttConnect<'a>>,
}

impl<'a> ConnectBody<'a> {
    /// Parses the body; any JSON that is not an object of the documented shape is a 400.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
        // serde would also accept a JSON array for a struct; the protocol sends an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "InvalidJson",
                "the connect event needs a JSON object body",
            ));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request("InvalidJson", format!("the connect body is not valid: {e}")))
    }

    /// Whether this is an MQTT client's connect.
    pub fn is_mqtt(&self) -> bool {
        self.mqtt.is_some()
    }

    pub(super) fn token_roles(&self) -> impl Iterator<Item = &str> + Clone {
        ROLE_CLAIMS.into_iter().flat_map(|claim| self.claims.values(claim))
    }

    pub(super) fn token_groups(&self) -> impl Iterator<Item = &str> + Clone {
        self.claims.values(GROUP_CLAIM)
    }
}

/// A client certificate presented on connect.
#[derive(Debug, Deserialize)]
pub struct ClientCertificate<'a> {
    #[serde(borrow, default)]
    pub thumbprint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
}

/// The MQTT part of a connect body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MqttConnect<'a> {
    /// 4 (MQTT 3.1.1) or 5 (MQTT 5.0).
    #[serde(default)]
    pub protocol_version: u8,
    #[serde(borrow, default)]
    pub username: Option<Cow<'a, str>>,
    /// Base64 of the CONNECT password. Secret: `Debug` hides it.
    #[serde(borrow, default)]
    pub password: Option<Cow<'a, str>>,
    #[serde(default)]
    pub user_properties: Option<Vec<MqttUserProperty>>,
}

impl fmt::Debug for MqttConnect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConnect")
            .field("protocol_version", &self.protocol_version)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// An MQTT 5 user property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttUserProperty {
    pub name: String,
    pub value: String,
}

/// Names to string values (`claims`, `query`, `headers`), in body order. Values may arrive as one string or
/// a list; numbers and booleans are kept as text; nested objects and nulls are skipped.
#[derive(Default, Clone)]
pub struct Multimap<'a>(pub(super) Vec<(Cow<'a, str>, Values<'a>)>);

impl<'a> Multimap<'a> {
    /// The values under exactly `name`.
    pub fn values(&self, name: &str) -> impl Iterator<Item = &str> + Clone {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .flat_map(|(_, values)| values.iter())
    }

    /// The values under `name`, ignoring ASCII case (for header names).
    pub fn values_ignore_case(&self, name: &str) -> impl Iterator<Item = &str> + Clone {
        self.0
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, values)| values.iter())
    }

    /// The first value under exactly `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).next()
    }

    /// The names present, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(key, _)| &**key)
    }
}

impl fmt::Debug for Multimap<'_> {
    // Values may hold tokens or cookies: show names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Multimap")
            .field(&self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Multimap<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MultimapVisitor;
        impl<'de> Visitor<'de> for MultimapVisitor {
            type Value = Multimap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of names to values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Multimap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(Text(key)) = map.next_key()? {
                    let values: Values<'de> = map.next_value()?;
                    entries.push((key, values));
                }
                Ok(Multimap(entries))
            }
        }
        deserializer.deserialize_any(MultimapVisitor)
    }
}

/// A lenient list of strings: one string, a list of scalars, or null. The first value is stored inline:
/// nearly every claim, query parameter and header has exactly one, so most lists never allocate.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Values<'a> {
    pub(super) first: Option<Cow<'a, str>>,
    pub(super) rest: Vec<Cow<'a, str>>,
}

impl<'a> Values<'a> {
    pub(super) fn one(value: Cow<'a, str>) -> Self {
        Self {
            first: Some(value),
            rest: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, value: Cow<'a, str>) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.rest.push(value);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.first.iter().chain(&self.rest).map(|value| &**value)
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Values<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;
        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = Values<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Values::default();
                while let Some(Scalar(value)) = seq.next_element()? {
                    if let Some(value) = value {
                        values.push(value);
                    }
                }
                Ok(values)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Values::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Values::default())
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Values::one(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_any(ValuesVisitor)
    }
}

/// A string borrowed from the input when it has no escapes.
pub(super) struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// One list element: a scalar as text, or `None` for null and nested values.
pub(super) struct Scalar<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq)?;
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Scalar(None))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}
