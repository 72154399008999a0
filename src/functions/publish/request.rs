//! Request bodies of `publish`: parsed and validated into a plan of REST calls before any call is made, so
//! a bad field anywhere in a batch is a 400 naming that field and nothing reaches the service.
//!
//! Field names and `actionName`/`dataType` values match ignoring ASCII case, as the Functions extension
//! does. A field that is null is absent. A field that no action uses is `UnknownField`; a known field
//! that the given action does not use is `FieldNotApplicable` (a silently ignored `excluded` could send a
//! message to someone it was meant to skip) unless it is null, `""` or `[]`, which generic builders emit.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::functions::refused_hub;
use crate::webpubsub::Hubs;
use crate::webpubsub::validate::MAX_MESSAGE_BYTES;
use crate::webpubsub::{ApiRequest, CloseOptions, ContentType, Message, Permission, SendOptions, ValidationError};

/// Most actions one request may carry.
pub const MAX_ACTIONS: usize = 100;

/// Standard base64, padding optional (callers differ on it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Every field name some action (or the simple form) uses.
const KNOWN_FIELDS: [&str; 15] = [
    "actionName",
    "hub",
    "group",
    "room",
    "userId",
    "connectionId",
    "data",
    "message",
    "dataType",
    "excluded",
    "filter",
    "messageTtlSeconds",
    "reason",
    "permission",
    "targetName",
];

/// The actions of the Functions Web PubSub output binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    SendToAll,
    SendToGroup,
    SendToUser,
    SendToConnection,
    AddUserToGroup,
    RemoveUserFromGroup,
    RemoveUserFromAllGroups,
    AddConnectionToGroup,
    RemoveConnectionFromGroup,
    CloseAllConnections,
    CloseClientConnection,
    CloseGroupConnections,
    GrantPermission,
    RevokePermission,
}

impl ActionKind {
    pub const ALL: [Self; 14] = [
        Self::SendToAll,
        Self::SendToGroup,
        Self::SendToUser,
        Self::SendToConnection,
        Self::AddUserToGroup,
        Self::RemoveUserFromGroup,
        Self::RemoveUserFromAllGroups,
        Self::AddConnectionToGroup,
        Self::RemoveConnectionFromGroup,
        Self::CloseAllConnections,
        Self::CloseClientConnection,
        Self::CloseGroupConnections,
        Self::GrantPermission,
        Self::RevokePermission,
    ];

    /// The `actionName`, as the binding spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::SendToAll => "sendToAll",
            Self::SendToGroup => "sendToGroup",
            Self::SendToUser => "sendToUser",
            Self::SendToConnection => "sendToConnection",
            Self::AddUserToGroup => "addUserToGroup",
            Self::RemoveUserFromGroup => "removeUserFromGroup",
            Self::RemoveUserFromAllGroups => "removeUserFromAllGroups",
            Self::AddConnectionToGroup => "addConnectionToGroup",
            Self::RemoveConnectionFromGroup => "removeConnectionFromGroup",
            Self::CloseAllConnections => "closeAllConnections",
            Self::CloseClientConnection => "closeClientConnection",
            Self::CloseGroupConnections => "closeGroupConnections",
            Self::GrantPermission => "grantPermission",
            Self::RevokePermission => "revokePermission",
        }
    }

    /// The action named `name`, ignoring ASCII case.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The hub an action names (or the default), as configured.
fn resolve_hub(hubs: &Hubs, requested: Option<&str>) -> Result<String, ApiError> {
    hubs.resolve(requested)
        .map(str::to_owned)
        .map_err(|refusal| refused_hub(refusal, requested.unwrap_or_default(), "publish"))
}

/// One validated action, ready to send.
#[derive(Debug, Clone)]
pub struct PlannedAction {
    pub kind: ActionKind,
    /// The hub, as configured.
    pub hub: String,
    pub request: ApiRequest,
    /// Where it goes, for the log line.
    pub target: Target,
    /// For sends: the payload type and size, for the log line.
    pub message: Option<(ContentType, usize)>,
}

/// The group, user and connection an action addresses (each when it has one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub group: Option<String>,
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
}

/// Parses a request body: a simple-form object, one action object, or an array of 1 to [`MAX_ACTIONS`]
/// action objects.
pub fn parse(body: &[u8], hubs: &Hubs) -> Result<Vec<PlannedAction>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "EmptyBody",
            "the request body is empty: send a JSON object or an array of actions",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("InvalidJson", format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("NoActions", "the array of actions is empty"));
            }
            if items.len() > MAX_ACTIONS {
                return Err(ApiError::bad_request(
                    "TooManyActions",
                    format!("a request may carry at most {MAX_ACTIONS} actions, got {}", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Object(map) => parse_action(map, Some(index), hubs),
                    _ => Err(At {
                        index: Some(index),
                        action: None,
                    }
                    .error("InvalidAction", "actionName", "each action must be a JSON object")),
                })
                .collect()
        }
        Value::Object(map) => {
            let action = if map.keys().any(|key| key.eq_ignore_ascii_case("actionName")) {
                parse_action(&map, None, hubs)?
            } else {
                parse_simple(&map, hubs)?
            };
            Ok(vec![action])
        }
        _ => Err(ApiError::bad_request(
            "InvalidBody",
            "the request body must be a JSON object or an array of action objects",
        )),
    }
}

/// `{"group"|"room": "...", "message": ..., "dataType"?, "hub"?, "excluded"?, "filter"?, "messageTtlSeconds"?}`:
/// a `sendToGroup`.
fn parse_simple(map: &Map<String, Value>, hubs: &Hubs) -> Result<PlannedAction, ApiError> {
    let mut fields = Fields::new(
        map,
        At {
            index: None,
            action: None,
        },
    )?;
    let group = fields.string("group")?;
    let room = fields.string("room")?;
    let group = match (group, room) {
        (Some(group), Some(room)) if group != room => {
            return Err(fields.at.error(
                "ConflictingFields",
                "room",
                "group and room name the same thing; give one of them",
            ));
        }
        (Some(group), _) | (None, Some(group)) => group,
        (None, None) => return Err(fields.at.error("MissingField", "group", "group (or room) is required")),
    };
    let hub = resolve_hub(hubs, fields.string("hub")?)?;
    let message = fields.message("message")?;
    let options = fields.send_options(true, true)?;
    fields.finish()?;
    let request = ApiRequest::send_to_group(&hub, group, &message, &options)
        .map_err(|e| fields.at.invalid(&e, field_of(&e, ActionKind::SendToGroup, "message")))?;
    Ok(PlannedAction {
        kind: ActionKind::SendToGroup,
        hub,
        request,
        target: Target {
            group: Some(group.to_owned()),
            ..Target::default()
        },
        message: Some((message.content_type(), message.len())),
    })
}

/// An action object of the Functions output binding.
fn parse_action(map: &Map<String, Value>, index: Option<usize>, hubs: &Hubs) -> Result<PlannedAction, ApiError> {
    use ActionKind::*;
    let mut fields = Fields::new(map, At { index, action: None })?;
    let name = fields.required_string("actionName")?;
    let kind = ActionKind::parse(name).ok_or_else(|| {
        let names: Vec<&str> = ActionKind::ALL.iter().map(|kind| kind.name()).collect();
        fields.at.error(
            "UnknownAction",
            "actionName",
            format!("actionName {name:?} is not supported; use one of {}", names.join(", ")),
        )
    })?;
    fields.at.action = Some(kind);
    let hub = resolve_hub(hubs, fields.string("hub")?)?;
    let mut target = Target::default();
    let mut message = None;
    let request = match kind {
        SendToAll | SendToGroup | SendToUser | SendToConnection => {
            let payload = fields.message("data")?;
            message = Some((payload.content_type(), payload.len()));
            match kind {
                SendToAll => {
                    let options = fields.send_options(true, true)?;
                    ApiRequest::send_to_all(&hub, &payload, &options)
                }
                SendToGroup => {
                    let group = target.group.insert(fields.required_string("group")?.to_owned());
                    let options = fields.send_options(true, true)?;
                    ApiRequest::send_to_group(&hub, group, &payload, &options)
                }
                SendToUser => {
                    let user_id = target.user_id.insert(fields.required_string("userId")?.to_owned());
                    let options = fields.send_options(false, true)?;
                    ApiRequest::send_to_user(&hub, user_id, &payload, &options)
                }
                _ => {
                    let connection_id = target
                        .connection_id
                        .insert(fields.required_string("connectionId")?.to_owned());
                    let options = fields.send_options(false, false)?;
                    ApiRequest::send_to_connection(&hub, connection_id, &payload, &options)
                }
            }
        }
        AddUserToGroup | RemoveUserFromGroup => {
            let user_id = target.user_id.insert(fields.required_string("userId")?.to_owned());
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            if kind == AddUserToGroup {
                ApiRequest::add_user_to_group(&hub, group, user_id)
            } else {
                ApiRequest::remove_user_from_group(&hub, group, user_id)
            }
        }
        RemoveUserFromAllGroups => {
            let user_id = target.user_id.insert(fields.required_string("userId")?.to_owned());
            ApiRequest::remove_user_from_all_groups(&hub, user_id)
        }
        AddConnectionToGroup | RemoveConnectionFromGroup => {
            let connection_id = target
                .connection_id
                .insert(fields.required_string("connectionId")?.to_owned());
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            if kind == AddConnectionToGroup {
                ApiRequest::add_connection_to_group(&hub, group, connection_id)
            } else {
                ApiRequest::remove_connection_from_group(&hub, group, connection_id)
            }
        }
        CloseAllConnections => {
            let options = fields.close_options()?;
            ApiRequest::close_all_connections(&hub, &options)
        }
        CloseClientConnection => {
            let connection_id = target
                .connection_id
                .insert(fields.required_string("connectionId")?.to_owned());
            let reason = fields.reason()?;
            ApiRequest::close_connection(&hub, connection_id, reason)
        }
        CloseGroupConnections => {
            let group = target.group.insert(fields.required_string("group")?.to_owned());
            let options = fields.close_options()?;
            ApiRequest::close_group_connections(&hub, group, &options)
        }
        GrantPermission | RevokePermission => {
            let connection_id = target
                .connection_id
                .insert(fields.required_string("connectionId")?.to_owned());
            let permission: Permission = fields
                .required_string("permission")?
                .parse()
                .map_err(|e: ValidationError| fields.at.invalid(&e, "permission"))?;
            // No targetName: the permission covers every group.
            let target_name = fields.string("targetName")?;
            target.group = target_name.map(str::to_owned);
            if kind == GrantPermission {
                ApiRequest::grant_permission(&hub, permission, connection_id, target_name)
            } else {
                ApiRequest::revoke_permission(&hub, permission, connection_id, target_name)
            }
        }
    };
    let request = request.map_err(|e| fields.at.invalid(&e, field_of(&e, kind, "data")))?;
    fields.finish()?;
    Ok(PlannedAction {
        kind,
        hub,
        request,
        target,
        message,
    })
}

/// The request field a core validation error is about (the core names REST parameters).
fn field_of(error: &ValidationError, kind: ActionKind, data_field: &'static str) -> &'static str {
    match error.field() {
        "message" => data_field,
        "group" if matches!(kind, ActionKind::GrantPermission | ActionKind::RevokePermission) => "targetName",
        other => other,
    }
}

/// Where in the request an error is: which action (by index in an array) of which kind.
#[derive(Debug, Clone, Copy)]
struct At {
    index: Option<usize>,
    action: Option<ActionKind>,
}

impl At {
    /// A 400 naming `field` (and the action's index in an array).
    fn error(self, code: &'static str, field: &str, problem: impl fmt::Display) -> ApiError {
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

    fn invalid(self, error: &ValidationError, field: &str) -> ApiError {
        self.error(error.code(), field, error)
    }
}

/// The fields of one JSON object, looked up ignoring ASCII case; remembers which were used.
struct Fields<'a> {
    entries: Vec<(&'a str, &'a Value, bool)>,
    at: At,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>, at: At) -> Result<Self, ApiError> {
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
    fn take(&mut self, name: &str) -> Option<&'a Value> {
        let entry = self
            .entries
            .iter_mut()
            .find(|(key, ..)| key.eq_ignore_ascii_case(name))?;
        entry.2 = true;
        Some(entry.1).filter(|value| !value.is_null())
    }

    fn string(&mut self, name: &'static str) -> Result<Option<&'a str>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.at.error("InvalidField", name, format!("{name} must be a string"))),
        }
    }

    fn required_string(&mut self, name: &'static str) -> Result<&'a str, ApiError> {
        self.string(name)?
            .ok_or_else(|| self.at.error("MissingField", name, format!("{name} is required")))
    }

    /// A list of connection ids (`excluded`), each non-empty.
    fn connection_ids(&mut self, name: &'static str) -> Result<Vec<String>, ApiError> {
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

    /// `excluded` and `filter` when the action takes them, and `messageTtlSeconds`.
    fn send_options(&mut self, excluded: bool, filter: bool) -> Result<SendOptions, ApiError> {
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

    fn close_options(&mut self) -> Result<CloseOptions, ApiError> {
        Ok(CloseOptions {
            excluded: self.connection_ids("excluded")?,
            reason: self.reason()?.map(str::to_owned),
        })
    }

    /// The close reason; an empty one is none.
    fn reason(&mut self) -> Result<Option<&'a str>, ApiError> {
        Ok(self.string("reason")?.filter(|reason| !reason.is_empty()))
    }

    /// The payload in `data_field` with `dataType` (see [`message_of`]).
    fn message(&mut self, data_field: &'static str) -> Result<Message, ApiError> {
        let data = self.take(data_field).ok_or_else(|| {
            self.at
                .error("MissingField", data_field, format!("{data_field} is required"))
        })?;
        let declared = match self.string("dataType")? {
            None => None,
            Some(name) => Some(DataType::parse(name).ok_or_else(|| {
                self.at
                    .error("InvalidDataType", "dataType", "dataType must be text, json or binary")
            })?),
        };
        message_of(data, declared)
            .map_err(|problem| self.at.error(problem.code(), data_field, problem.describe(data_field)))
    }

    /// Fails on a field left unused, unless it is null, `""` or `[]`.
    fn finish(&self) -> Result<(), ApiError> {
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

/// How a payload is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    Text,
    Json,
    Binary,
}

impl DataType {
    fn parse(name: &str) -> Option<Self> {
        [("text", Self::Text), ("json", Self::Json), ("binary", Self::Binary)]
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, data_type)| data_type)
    }
}

/// Why a payload is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataProblem {
    TextNotString,
    JsonTextInvalid,
    BinaryInvalid,
    TooLarge,
}

impl DataProblem {
    fn code(self) -> &'static str {
        match self {
            Self::TextNotString | Self::BinaryInvalid => "InvalidData",
            Self::JsonTextInvalid => "InvalidJson",
            Self::TooLarge => "MessageTooLarge",
        }
    }

    fn describe(self, field: &str) -> String {
        match self {
            Self::TextNotString => format!("{field} must be a string when dataType is text"),
            Self::JsonTextInvalid => format!(
                "{field} is a string, which with dataType json must hold JSON text (as the Functions binding sends it); \
                 to send a JSON string, quote it, or send the value itself"
            ),
            Self::BinaryInvalid => {
                format!(
                    "{field} must be base64 text or a Node.js Buffer object ({{\"type\":\"Buffer\",\"data\":[bytes]}}) when dataType is binary"
                )
            }
            Self::TooLarge => format!("{field} is larger than the service's {MAX_MESSAGE_BYTES}-byte message limit"),
        }
    }
}

/// Builds the payload from `data`:
/// - `text`: `data` is a string, sent as `text/plain`.
/// - `json`: a string holds JSON text, sent as is (the Functions binding's behaviour); any other value is
///   serialised. Sent as `application/json`.
/// - `binary`: base64 text (padding optional) or a Node.js Buffer object; the bytes go as
///   `application/octet-stream`.
///
/// Without `dataType`: a string is text, a Buffer object binary, anything else json.
fn message_of(data: &Value, declared: Option<DataType>) -> Result<Message, DataProblem> {
    let data_type = declared.unwrap_or(match data {
        Value::String(_) => DataType::Text,
        value if buffer_bytes(value).is_some() => DataType::Binary,
        _ => DataType::Json,
    });
    let message = match (data_type, data) {
        (DataType::Text, Value::String(text)) => {
            check_size(text.len())?;
            Message::text(text.as_str())
        }
        (DataType::Text, _) => return Err(DataProblem::TextNotString),
        (DataType::Json, Value::String(text)) => {
            check_size(text.len())?;
            Message::json_raw(Bytes::copy_from_slice(text.as_bytes())).map_err(|_| DataProblem::JsonTextInvalid)?
        }
        (DataType::Json, value) => Message::json(value).map_err(|_| DataProblem::JsonTextInvalid)?,
        (DataType::Binary, Value::String(encoded)) => {
            // Decoded size is at most 3/4 of the text: refuse oversized text before decoding it.
            check_size(encoded.len() / 4 * 3)?;
            Message::binary(BASE64.decode(encoded.trim()).map_err(|_| DataProblem::BinaryInvalid)?)
        }
        (DataType::Binary, value) => Message::binary(buffer_bytes(value).ok_or(DataProblem::BinaryInvalid)??),
    };
    check_size(message.len())?;
    Ok(message)
}

fn check_size(size: usize) -> Result<(), DataProblem> {
    if size > MAX_MESSAGE_BYTES {
        Err(DataProblem::TooLarge)
    } else {
        Ok(())
    }
}

/// The bytes of a Node.js Buffer's JSON form `{"type":"Buffer","data":[0..255, ...]}`; `None` when `value`
/// is not of that shape, `Some(Err)` when it is but its bytes are not.
fn buffer_bytes(value: &Value) -> Option<Result<Vec<u8>, DataProblem>> {
    let object = value.as_object()?;
    let mut kind = None;
    let mut data = None;
    for (name, value) in object {
        if name.eq_ignore_ascii_case("type") {
            kind = value.as_str();
        } else if name.eq_ignore_ascii_case("data") {
            data = value.as_array();
        } else {
            return None;
        }
    }
    if !kind?.eq_ignore_ascii_case("Buffer") {
        return None;
    }
    let items = data?;
    if items.len() > MAX_MESSAGE_BYTES {
        return Some(Err(DataProblem::TooLarge));
    }
    Some(
        items
            .iter()
            .map(|item| {
                item.as_u64()
                    .and_then(|byte| u8::try_from(byte).ok())
                    .ok_or(DataProblem::BinaryInvalid)
            })
            .collect(),
    )
}
