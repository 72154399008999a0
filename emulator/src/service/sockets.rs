//! What the WebSocket endpoint needs from the shared state: connection lookup, registration and
//! resume, joins and leaves, and sends from clients.

use super::*;

impl Service {
    /// A live (or resumable) connection.
    pub(crate) fn find_connection(&self, hub: &str, connection_id: &str) -> Option<Arc<Connection>> {
        self.with_state(hub, None, |s| {
            s.members.get(connection_id).map(|m| m.connection.clone())
        })
    }

    /// Adds an accepted connection and joins it to `groups` plus its user's groups.
    pub(crate) fn register(&self, connection: &Arc<Connection>, groups: &[String]) {
        let hub = self.hub_or_create(&connection.hub);
        let mut state = lock(&hub.state);
        state.members.insert(
            connection.id.clone(),
            Member {
                connection: connection.clone(),
                groups: HashSet::new(),
            },
        );
        if let Some(user) = &connection.user_id {
            state
                .users
                .entry(user.clone())
                .or_default()
                .insert(connection.id.clone());
        }
        let user_groups: Vec<String> = connection
            .user_id
            .as_ref()
            .and_then(|u| state.user_groups.get(u))
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default();
        for group in groups.iter().chain(&user_groups) {
            state.add_to_group(&connection.id, group);
        }
    }

    /// Removes a closed connection from its hub and sends the `disconnected` event.
    pub(crate) fn forget(&self, connection: &Arc<Connection>, reason: &str) {
        if let Some(hub) = self.hub(&connection.hub) {
            lock(&hub.state).remove_member(&connection.id);
        }
        tracing::info!(
            hub = %connection.hub,
            connection_id = %connection.id,
            user_id = connection.user_id.as_deref().unwrap_or(""),
            event_type = "disconnected",
            reason,
            "client disconnected"
        );
        self.upstream.disconnected(connection.clone(), reason.to_owned());
    }

    /// A client's `joinGroup`.
    pub(crate) fn join_group(&self, connection: &Connection, group: &str) {
        self.with_state(&connection.hub, false, |s| s.add_to_group(&connection.id, group));
    }

    /// A client's `leaveGroup`.
    pub(crate) fn leave_group(&self, connection: &Connection, group: &str) {
        self.with_state(&connection.hub, (), |s| s.remove_from_group(&connection.id, group));
    }

    /// A client's `sendToGroup`.
    pub(crate) fn publish_to_group(&self, sender: &Connection, group: &str, no_echo: bool, payload: &Payload) {
        let excluded = if no_echo { vec![sender.id.clone()] } else { Vec::new() };
        let targets = self.with_state(&sender.hub, Vec::new(), |s| match s.groups.get(group) {
            Some(ids) => s.select(Some(ids), &excluded, None),
            None => Vec::new(),
        });
        self.deliver(
            &targets,
            &DataMessage::from_group(group, sender.user_id.as_deref(), payload),
        );
    }
}
