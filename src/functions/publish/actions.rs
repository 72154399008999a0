//! The actions table of `publish`: every `actionName` of the Functions Web PubSub output binding, the
//! read-only questions of the service's REST API (`connectionExists`, `groupExists`, `userExists`,
//! `listConnectionsInGroup`, `checkPermission`), and every field name some action uses.

use std::fmt;

/// Every field name some action (or the simple form) uses.
pub(super) const KNOWN_FIELDS: [&str; 18] = [
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
    "maxPageSize",
    "continuationToken",
    "user_id",
];

/// The actions of the Functions Web PubSub output binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ActionKind {
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
    ConnectionExists,
    GroupExists,
    UserExists,
    ListConnectionsInGroup,
    CheckPermission,
}

impl ActionKind {
    pub(crate) const ALL: [Self; 19] = [
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
        Self::ConnectionExists,
        Self::GroupExists,
        Self::UserExists,
        Self::ListConnectionsInGroup,
        Self::CheckPermission,
    ];

    /// The `actionName`, as the binding spells it.
    pub(crate) fn name(self) -> &'static str {
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
            Self::ConnectionExists => "connectionExists",
            Self::GroupExists => "groupExists",
            Self::UserExists => "userExists",
            Self::ListConnectionsInGroup => "listConnectionsInGroup",
            Self::CheckPermission => "checkPermission",
        }
    }

    /// Whether the action only asks the service a question (the REST client's read-only operations).
    pub(crate) fn is_read_only(self) -> bool {
        matches!(
            self,
            Self::ConnectionExists
                | Self::GroupExists
                | Self::UserExists
                | Self::ListConnectionsInGroup
                | Self::CheckPermission
        )
    }

    /// The action named `name`, ignoring ASCII case.
    pub(crate) fn parse(name: &str) -> Option<Self> {
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
