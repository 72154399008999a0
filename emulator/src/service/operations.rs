//! The REST operations on the shared state: sends, closes, existence checks, group membership and
//! permissions. Synchronous; sends only queue frames.

use super::*;

/// The connections a send, close or existence check addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every connection of the hub.
    Hub,
    /// The members of a group.
    Group(&'a str),
    /// The connections of a user.
    User(&'a str),
    /// One connection, by id.
    Connection(&'a str),
}

impl Service {
    /// The open connections `target` names, less the `excluded` ids and those `filter` rejects
    /// (one connection named by id is taken as it is).
    fn select(
        &self,
        hub: &str,
        target: Target<'_>,
        excluded: &[String],
        filter: Option<&dyn ConnectionFilter>,
    ) -> Vec<Arc<Connection>> {
        self.with_state(hub, Vec::new(), |s| {
            let ids = match target {
                Target::Hub => return s.select(None, excluded, filter),
                Target::Connection(id) => return s.members.get(id).map(|m| m.connection.clone()).into_iter().collect(),
                Target::Group(group) => s.groups.get(group),
                Target::User(user_id) => s.users.get(user_id),
            };
            ids.map_or_else(Vec::new, |ids| s.select(Some(ids), excluded, filter))
        })
    }

    /// `POST …/:send` of every target; false when nothing was addressed.
    pub fn send(
        &self,
        hub: &str,
        target: Target<'_>,
        payload: &Payload,
        excluded: &[String],
        filter: Option<&dyn ConnectionFilter>,
    ) -> bool {
        let targets = self.select(hub, target, excluded, filter);
        self.deliver(&targets, &DataMessage::from_server(payload));
        !targets.is_empty()
    }

    /// Queues `message` to each target; drops the ones that cannot keep up.
    pub(crate) fn deliver(&self, targets: &[Arc<Connection>], message: &DataMessage) {
        for connection in targets {
            if let Err(overflow) = connection.send_data(message) {
                self.drop_slow(connection, overflow);
            }
        }
    }

    /// Closes a client that overflowed its queue or reliable buffer (close 1008).
    pub(crate) fn drop_slow(&self, connection: &Arc<Connection>, overflow: Overflow) {
        tracing::warn!(
            hub = %connection.hub,
            connection_id = %connection.id,
            user_id = connection.user_id.as_deref().unwrap_or(""),
            event_type = "slow_client_dropped",
            reason = overflow.reason(),
            "dropping a client that cannot keep up"
        );
        if connection.close(1008, overflow.reason(), false) {
            self.forget(connection, overflow.reason());
        }
    }

    // ----- closes -----

    /// `POST …/:closeConnections` (and `DELETE` of one connection); false when nothing was
    /// addressed.
    pub fn close(&self, hub: &str, target: Target<'_>, excluded: &[String], reason: Option<&str>) -> bool {
        let targets = self.select(hub, target, excluded, None);
        self.close_each(&targets, reason);
        !targets.is_empty()
    }

    pub(super) fn close_each(&self, targets: &[Arc<Connection>], reason: Option<&str>) {
        let reason = reason.filter(|r| !r.is_empty()).unwrap_or(DEFAULT_CLOSE_REASON);
        for connection in targets {
            self.close_connection_now(connection, 1000, reason);
        }
    }

    /// Closes `connection` for good (a `disconnected` message first for JSON clients) and
    /// reports it upstream.
    pub(crate) fn close_connection_now(&self, connection: &Arc<Connection>, code: u16, reason: &str) {
        if connection.close(code, reason, true) {
            self.forget(connection, reason);
        }
    }

    /// Closes every connection of every hub (emulator shutdown).
    pub fn close_everything(&self, reason: &str) {
        let hubs: Vec<Arc<Hub>> = lock(&self.hubs).values().cloned().collect();
        for hub in hubs {
            let targets = lock(&hub.state).select(None, &[], None);
            for connection in &targets {
                self.close_connection_now(connection, 1001, reason);
            }
        }
    }

    // ----- existence -----

    /// `HEAD` of a connection, group or user: whether it is there (a group or user while it has
    /// connections); the hub itself always exists.
    pub fn exists(&self, hub: &str, target: Target<'_>) -> bool {
        self.with_state(hub, false, |s| match target {
            Target::Hub => true,
            Target::Group(group) => s.groups.contains_key(group),
            Target::User(user_id) => s.users.contains_key(user_id),
            Target::Connection(id) => s.members.contains_key(id),
        })
    }

    /// `GET /api/hubs/{hub}/groups/{group}/connections`, ordered by connection id so
    /// paging is stable.
    pub fn group_connections(&self, hub: &str, group: &str) -> Vec<GroupMember> {
        let mut members = self.with_state(hub, Vec::new(), |s| {
            s.groups
                .get(group)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| s.members.get(id))
                        .map(|m| GroupMember {
                            connection_id: m.connection.id.clone(),
                            user_id: m.connection.user_id.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        });
        members.sort_by(|a: &GroupMember, b| a.connection_id.cmp(&b.connection_id));
        members
    }

    /// Number of live connections in `hub` (for tests and the load program).
    pub fn connection_count(&self, hub: &str) -> usize {
        self.with_state(hub, 0, |s| s.members.len())
    }

    // ----- groups -----

    /// `PUT /api/hubs/{hub}/groups/{group}/connections/{id}`; false when the connection is
    /// unknown.
    pub fn add_connection_to_group(&self, hub: &str, group: &str, connection_id: &str) -> bool {
        self.with_state(hub, false, |s| s.add_to_group(connection_id, group))
    }

    /// `DELETE /api/hubs/{hub}/groups/{group}/connections/{id}`; false when the connection
    /// is unknown.
    pub fn remove_connection_from_group(&self, hub: &str, group: &str, connection_id: &str) -> bool {
        self.with_state(hub, false, |s| {
            let known = s.members.contains_key(connection_id);
            s.remove_from_group(connection_id, group);
            known
        })
    }

    /// `DELETE /api/hubs/{hub}/connections/{id}/groups`; false when the connection is
    /// unknown.
    pub fn remove_connection_from_all_groups(&self, hub: &str, connection_id: &str) -> bool {
        self.with_state(hub, false, |s| {
            let known = s.members.contains_key(connection_id);
            s.remove_from_all_groups(connection_id);
            known
        })
    }

    /// `PUT /api/hubs/{hub}/users/{user}/groups/{group}`: the user's connections join now,
    /// and its future connections join when they connect.
    pub fn add_user_to_group(&self, hub: &str, group: &str, user_id: &str) {
        let hub = self.hub_or_create(hub);
        let mut state = lock(&hub.state);
        state
            .user_groups
            .entry(user_id.to_owned())
            .or_default()
            .insert(group.to_owned());
        for id in state.user_connection_ids(user_id) {
            state.add_to_group(&id, group);
        }
    }

    /// `DELETE /api/hubs/{hub}/users/{user}/groups/{group}`.
    pub fn remove_user_from_group(&self, hub: &str, group: &str, user_id: &str) {
        self.with_state(hub, (), |s| {
            if let Some(groups) = s.user_groups.get_mut(user_id) {
                groups.remove(group);
                if groups.is_empty() {
                    s.user_groups.remove(user_id);
                }
            }
            for id in s.user_connection_ids(user_id) {
                s.remove_from_group(&id, group);
            }
        });
    }

    /// `DELETE /api/hubs/{hub}/users/{user}/groups`.
    pub fn remove_user_from_all_groups(&self, hub: &str, user_id: &str) {
        self.with_state(hub, (), |s| {
            s.user_groups.remove(user_id);
            for id in s.user_connection_ids(user_id) {
                s.remove_from_all_groups(&id);
            }
        });
    }

    /// `POST /api/hubs/{hub}/:addToGroups`: every connection matching `filter` (all when
    /// `None`) joins every group.
    pub fn add_to_groups(&self, hub: &str, groups: &[String], filter: Option<&dyn ConnectionFilter>) {
        self.change_groups(hub, groups, filter, |s, id, group| {
            s.add_to_group(id, group);
        });
    }

    /// `POST /api/hubs/{hub}/:removeFromGroups`: every connection matching `filter` (all
    /// when `None`) leaves every group.
    pub fn remove_from_groups(&self, hub: &str, groups: &[String], filter: Option<&dyn ConnectionFilter>) {
        self.change_groups(hub, groups, filter, HubState::remove_from_group);
    }

    /// Applies `change(state, connection id, group)` to every connection matching `filter` and
    /// every group, under one hub lock.
    fn change_groups(
        &self,
        hub: &str,
        groups: &[String],
        filter: Option<&dyn ConnectionFilter>,
        change: impl Fn(&mut HubState, &str, &str),
    ) {
        self.with_state(hub, (), |s| {
            let ids: Vec<String> = s.select(None, &[], filter).iter().map(|c| c.id.clone()).collect();
            for id in &ids {
                for group in groups {
                    change(s, id, group);
                }
            }
        });
    }

    // ----- permissions -----

    /// `PUT /api/hubs/{hub}/permissions/{permission}/connections/{id}`; false when the
    /// connection is unknown. `target` `None` grants the permission on every group.
    pub fn grant_permission(&self, hub: &str, id: &str, permission: Permission, target: Option<&str>) -> bool {
        self.find_connection(hub, id)
            .map(|c| c.grant(permission, target))
            .is_some()
    }

    /// `DELETE` of the same path; false when the connection is unknown. `target` `None`
    /// revokes every grant of that permission. Roles from the token are not affected.
    pub fn revoke_permission(&self, hub: &str, id: &str, permission: Permission, target: Option<&str>) -> bool {
        self.find_connection(hub, id)
            .map(|c| c.revoke(permission, target))
            .is_some()
    }

    /// `HEAD` of the same path: whether the connection holds the permission (from roles or
    /// grants) on `target`, or on every group when `target` is `None`.
    pub fn check_permission(&self, hub: &str, id: &str, permission: Permission, target: Option<&str>) -> bool {
        self.find_connection(hub, id)
            .is_some_and(|c| c.check(permission, target))
    }
}
