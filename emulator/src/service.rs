//! The emulator's shared state and the operations on it: connections, groups, users,
//! permissions, sends, closes and tokens, per hub.
//!
//! This is the API the REST layer (`rest.rs`) calls. Conventions for callers:
//! - Every `hub` argument is lowercased here, so callers pass hub names as received.
//! - Operations are synchronous and never block on the network: sends only queue frames.
//!   A client whose queue is full is dropped (close 1008) rather than buffered without end.
//! - `excluded` holds connection ids to skip; `filter` is an OData filter
//!   (`crate::filter::Filter`, via [`ConnectionFilter`]) evaluated per connection with its
//!   id, user id and groups.
//! - Sends and closes aimed at nothing succeed silently (the service's fire-and-forget);
//!   functions returning `bool` say whether the target connection existed.
//! - `HEAD /api/health` is answered by `lib.rs`, not the REST layer.
//!
//! Lock order: a hub's lock may be held while taking a connection's locks, never the reverse.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::config::EmulatorConfig;
use crate::connection::{Connection, Overflow, lock};
use crate::protocol::{DataMessage, Payload};
use crate::upstream::Upstream;
/// What kind of client a generated token is for (the protocol crate's, re-exported).
pub use webpubsub_protocol::ClientType;
use webpubsub_protocol::clients;
use webpubsub_protocol::jwt::{self as token, TokenError};
use webpubsub_protocol::keys::{AccessKey, ServiceKeys};
use webpubsub_protocol::names;
use webpubsub_protocol::roles::Permission;

/// An OData filter as the service evaluates it: one connection at a time.
/// `crate::filter::Filter` implements it; pass `Some(&filter)`.
pub trait ConnectionFilter: Sync {
    /// True when the connection matches.
    fn matches(&self, connection_id: &str, user_id: Option<&str>, groups: &[&str]) -> bool;
}

impl ConnectionFilter for crate::filter::Filter {
    fn matches(&self, connection_id: &str, user_id: Option<&str>, groups: &[&str]) -> bool {
        crate::filter::Filter::matches(self, connection_id, user_id, groups)
    }
}

/// A member of a group as `GET .../groups/{group}/connections` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    /// The connection.
    pub connection_id: String,
    /// Its user, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Parameters of REST `:generateToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTokenRequest {
    /// `sub` claim.
    pub user_id: Option<String>,
    /// `role` claim.
    pub roles: Vec<String>,
    /// `webpubsub.group` claim.
    pub groups: Vec<String>,
    /// Lifetime in minutes (at least 1).
    pub minutes_to_expire: u32,
    /// Which endpoint the token is for.
    pub client_type: ClientType,
}

impl Default for ClientTokenRequest {
    fn default() -> Self {
        ClientTokenRequest {
            user_id: None,
            roles: Vec::new(),
            groups: Vec::new(),
            minutes_to_expire: 60,
            client_type: ClientType::Default,
        }
    }
}

struct Member {
    connection: Arc<Connection>,
    groups: HashSet<String>,
}

#[derive(Default)]
struct HubState {
    members: HashMap<String, Member>,
    /// group → connection ids.
    groups: HashMap<String, HashSet<String>>,
    /// user → connection ids.
    users: HashMap<String, HashSet<String>>,
    /// user → groups the user (all its connections, present and future) belongs to.
    user_groups: HashMap<String, HashSet<String>>,
}

impl HubState {
    fn add_to_group(&mut self, connection_id: &str, group: &str) -> bool {
        let Some(member) = self.members.get_mut(connection_id) else {
            return false;
        };
        member.groups.insert(group.to_owned());
        self.groups
            .entry(group.to_owned())
            .or_default()
            .insert(connection_id.to_owned());
        true
    }

    fn remove_from_group(&mut self, connection_id: &str, group: &str) {
        if let Some(member) = self.members.get_mut(connection_id) {
            member.groups.remove(group);
        }
        if let Some(ids) = self.groups.get_mut(group) {
            ids.remove(connection_id);
            if ids.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    fn remove_from_all_groups(&mut self, connection_id: &str) {
        let groups: Vec<String> = match self.members.get(connection_id) {
            Some(member) => member.groups.iter().cloned().collect(),
            None => return,
        };
        for group in groups {
            self.remove_from_group(connection_id, &group);
        }
    }

    fn remove_member(&mut self, connection_id: &str) -> Option<Arc<Connection>> {
        self.remove_from_all_groups(connection_id);
        let member = self.members.remove(connection_id)?;
        if let Some(user) = &member.connection.user_id
            && let Some(ids) = self.users.get_mut(user)
        {
            ids.remove(connection_id);
            if ids.is_empty() {
                self.users.remove(user);
            }
        }
        Some(member.connection)
    }

    fn user_connection_ids(&self, user_id: &str) -> Vec<String> {
        self.users
            .get(user_id)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Members passing `excluded` and `filter`, restricted to `ids` when given.
    fn select<'a>(
        &'a self,
        ids: Option<&'a HashSet<String>>,
        excluded: &[String],
        filter: Option<&dyn ConnectionFilter>,
    ) -> Vec<Arc<Connection>> {
        let pass = |member: &Member| {
            let connection = &member.connection;
            if excluded.iter().any(|e| *e == connection.id) {
                return false;
            }
            filter.is_none_or(|f| {
                let groups: Vec<&str> = member.groups.iter().map(String::as_str).collect();
                f.matches(&connection.id, connection.user_id.as_deref(), &groups)
            })
        };
        match ids {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.members.get(id))
                .filter(|m| pass(m))
                .map(|m| m.connection.clone())
                .collect(),
            None => self
                .members
                .values()
                .filter(|m| pass(m))
                .map(|m| m.connection.clone())
                .collect(),
        }
    }
}

struct Hub {
    state: Mutex<HubState>,
}

/// Default reason for connections closed through the REST API without one.
const DEFAULT_CLOSE_REASON: &str = "The connection was closed by the server.";

/// The emulator: all hubs, the access keys and the upstream dispatcher.
pub struct Service {
    keys: ServiceKeys,
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) config: EmulatorConfig,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// A service with no connections. The configuration should have passed
    /// [`EmulatorConfig::validate`].
    pub fn new(config: EmulatorConfig) -> Arc<Service> {
        // `validate` refuses keys shorter than 32 bytes, so these cannot be empty.
        let key = |k: &str| AccessKey::new(k).expect("EmulatorConfig::validate refuses empty access keys");
        let mut keys = ServiceKeys::new(key(&config.access_key));
        if let Some(secondary) = &config.secondary_key {
            keys = keys.with_secondary(key(secondary));
        }
        let upstream = Arc::new(Upstream::new(&config, keys.clone()));
        Arc::new(Service {
            keys,
            hubs: Mutex::new(HashMap::new()),
            upstream,
            config,
        })
    }

    /// The keys tokens may be signed with (primary first).
    pub(crate) fn keys(&self) -> &ServiceKeys {
        &self.keys
    }

    fn hub(&self, hub: &str) -> Option<Arc<Hub>> {
        lock(&self.hubs).get(&names::normalize_hub(hub)).cloned()
    }

    fn hub_or_create(&self, hub: &str) -> Arc<Hub> {
        lock(&self.hubs)
            .entry(names::normalize_hub(hub))
            .or_insert_with(|| {
                Arc::new(Hub {
                    state: Mutex::new(HubState::default()),
                })
            })
            .clone()
    }

    fn with_state<T>(&self, hub: &str, default: T, f: impl FnOnce(&mut HubState) -> T) -> T {
        match self.hub(hub) {
            Some(hub) => f(&mut lock(&hub.state)),
            None => default,
        }
    }

    // ----- sends -----

    /// `POST /api/hubs/{hub}/:send`.
    pub fn send_to_all(
        &self,
        hub: &str,
        payload: &Payload,
        excluded: &[String],
        filter: Option<&dyn ConnectionFilter>,
    ) {
        let targets = self.with_state(hub, Vec::new(), |s| s.select(None, excluded, filter));
        self.deliver(&targets, &DataMessage::from_server(payload));
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:send`.
    pub fn send_to_group(
        &self,
        hub: &str,
        group: &str,
        payload: &Payload,
        excluded: &[String],
        filter: Option<&dyn ConnectionFilter>,
    ) {
        let targets = self.with_state(hub, Vec::new(), |s| match s.groups.get(group) {
            Some(ids) => s.select(Some(ids), excluded, filter),
            None => Vec::new(),
        });
        self.deliver(&targets, &DataMessage::from_server(payload));
    }

    /// `POST /api/hubs/{hub}/users/{user}/:send`.
    pub fn send_to_user(&self, hub: &str, user_id: &str, payload: &Payload, filter: Option<&dyn ConnectionFilter>) {
        let targets = self.with_state(hub, Vec::new(), |s| match s.users.get(user_id) {
            Some(ids) => s.select(Some(ids), &[], filter),
            None => Vec::new(),
        });
        self.deliver(&targets, &DataMessage::from_server(payload));
    }

    /// `POST /api/hubs/{hub}/connections/{id}/:send`; false when the connection is unknown.
    pub fn send_to_connection(&self, hub: &str, connection_id: &str, payload: &Payload) -> bool {
        match self.find_connection(hub, connection_id) {
            Some(connection) => {
                self.deliver(&[connection], &DataMessage::from_server(payload));
                true
            }
            None => false,
        }
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

    /// `POST /api/hubs/{hub}/:closeConnections`.
    pub fn close_all(&self, hub: &str, excluded: &[String], reason: Option<&str>) {
        let targets = self.with_state(hub, Vec::new(), |s| s.select(None, excluded, None));
        self.close_each(&targets, reason);
    }

    /// `POST /api/hubs/{hub}/groups/{group}/:closeConnections`.
    pub fn close_group(&self, hub: &str, group: &str, excluded: &[String], reason: Option<&str>) {
        let targets = self.with_state(hub, Vec::new(), |s| match s.groups.get(group) {
            Some(ids) => s.select(Some(ids), excluded, None),
            None => Vec::new(),
        });
        self.close_each(&targets, reason);
    }

    /// `POST /api/hubs/{hub}/users/{user}/:closeConnections`.
    pub fn close_user(&self, hub: &str, user_id: &str, excluded: &[String], reason: Option<&str>) {
        let targets = self.with_state(hub, Vec::new(), |s| match s.users.get(user_id) {
            Some(ids) => s.select(Some(ids), excluded, None),
            None => Vec::new(),
        });
        self.close_each(&targets, reason);
    }

    /// `DELETE /api/hubs/{hub}/connections/{id}`; false when the connection is unknown.
    pub fn close_connection(&self, hub: &str, connection_id: &str, reason: Option<&str>) -> bool {
        match self.find_connection(hub, connection_id) {
            Some(connection) => {
                self.close_each(&[connection], reason);
                true
            }
            None => false,
        }
    }

    fn close_each(&self, targets: &[Arc<Connection>], reason: Option<&str>) {
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

    /// `HEAD /api/hubs/{hub}/connections/{id}`.
    pub fn connection_exists(&self, hub: &str, connection_id: &str) -> bool {
        self.find_connection(hub, connection_id).is_some()
    }

    /// `HEAD /api/hubs/{hub}/groups/{group}`: true when the group has members.
    pub fn group_exists(&self, hub: &str, group: &str) -> bool {
        self.with_state(hub, false, |s| s.groups.contains_key(group))
    }

    /// `HEAD /api/hubs/{hub}/users/{user}`: true when the user has connections.
    pub fn user_exists(&self, hub: &str, user_id: &str) -> bool {
        self.with_state(hub, false, |s| s.users.contains_key(user_id))
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
        self.with_state(hub, (), |s| {
            let ids: Vec<String> = s.select(None, &[], filter).iter().map(|c| c.id.clone()).collect();
            for id in &ids {
                for group in groups {
                    s.add_to_group(id, group);
                }
            }
        });
    }

    /// `POST /api/hubs/{hub}/:removeFromGroups`: every connection matching `filter` (all
    /// when `None`) leaves every group.
    pub fn remove_from_groups(&self, hub: &str, groups: &[String], filter: Option<&dyn ConnectionFilter>) {
        self.with_state(hub, (), |s| {
            let ids: Vec<String> = s.select(None, &[], filter).iter().map(|c| c.id.clone()).collect();
            for id in &ids {
                for group in groups {
                    s.remove_from_group(id, group);
                }
            }
        });
    }

    // ----- permissions -----

    /// `PUT /api/hubs/{hub}/permissions/{permission}/connections/{id}`; false when the
    /// connection is unknown. `target` `None` grants the permission on every group.
    pub fn grant_permission(
        &self,
        hub: &str,
        connection_id: &str,
        permission: Permission,
        target: Option<&str>,
    ) -> bool {
        self.find_connection(hub, connection_id)
            .map(|c| c.grant(permission, target))
            .is_some()
    }

    /// `DELETE` of the same path; false when the connection is unknown. `target` `None`
    /// revokes every grant of that permission. Roles from the token are not affected.
    pub fn revoke_permission(
        &self,
        hub: &str,
        connection_id: &str,
        permission: Permission,
        target: Option<&str>,
    ) -> bool {
        self.find_connection(hub, connection_id)
            .map(|c| c.revoke(permission, target))
            .is_some()
    }

    /// `HEAD` of the same path: whether the connection holds the permission (from roles or
    /// grants) on `target`, or on every group when `target` is `None`.
    pub fn check_permission(
        &self,
        hub: &str,
        connection_id: &str,
        permission: Permission,
        target: Option<&str>,
    ) -> bool {
        self.find_connection(hub, connection_id)
            .is_some_and(|c| c.check(permission, target))
    }

    // ----- tokens -----

    /// `POST /api/hubs/{hub}/:generateToken`. `endpoint` is the emulator's base URL as the
    /// caller reached it, e.g. `http://127.0.0.1:8080`.
    pub fn generate_client_token(&self, hub: &str, endpoint: &str, request: &ClientTokenRequest) -> String {
        let now = token::unix_now();
        let audience = clients::audience(endpoint, request.client_type, &names::normalize_hub(hub));
        let minutes = u64::from(request.minutes_to_expire.max(1));
        let mut claims = Map::new();
        claims.insert("aud".into(), json!(audience));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + minutes * 60));
        if let Some(user) = &request.user_id {
            claims.insert("sub".into(), json!(user));
        }
        if !request.roles.is_empty() {
            claims.insert("role".into(), json!(request.roles));
        }
        if !request.groups.is_empty() {
            claims.insert("webpubsub.group".into(), json!(request.groups));
        }
        token::sign(&claims, self.keys.primary())
    }

    /// Checks a REST call's `Authorization` header: a Bearer HS256 token signed with either
    /// key, not expired, whose `aud` is the request URL with or without its query (compared
    /// ignoring case, scheme and host, also after percent-decoding). `request_url` is the
    /// URL as received, e.g. `http://127.0.0.1:8080/api/hubs/chat/:send?api-version=2024-12-01`.
    pub fn verify_rest_token(&self, authorization: Option<&str>, request_url: &str) -> Result<(), TokenError> {
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        let claims = token::verify(token, &self.keys, token::unix_now())?;
        let audiences = token::string_values(&claims, "aud");
        if audiences.iter().any(|aud| rest_audience_matches(aud, request_url)) {
            Ok(())
        } else {
            Err(TokenError::AudienceMismatch)
        }
    }

    // ----- used by the WebSocket endpoint -----

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

/// Compares a REST token audience with the request URL (see [`Service::verify_rest_token`]).
fn rest_audience_matches(audience: &str, request_url: &str) -> bool {
    let audience = normalize_url_tail(audience);
    let full = normalize_url_tail(request_url);
    let without_query = normalize_url_tail(request_url.split('?').next().unwrap_or(request_url));
    audience == full || audience == without_query
}

/// The part after scheme and host, percent-decoded, lowercased, without trailing `/`.
pub(crate) fn normalize_url_tail(url: &str) -> String {
    let tail = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => url,
    };
    let decoded = percent_encoding::percent_decode_str(tail)
        .decode_utf8_lossy()
        .to_lowercase();
    match decoded.split_once('?') {
        Some((path, query)) => format!("{}?{query}", path.trim_end_matches('/')),
        None => decoded.trim_end_matches('/').to_owned(),
    }
}

/// Claims of a client token, for tests and tools that need one without the REST API.
pub fn client_token_claims(
    audience: &str,
    user_id: Option<&str>,
    roles: &[&str],
    groups: &[&str],
    ttl_secs: u64,
) -> Map<String, Value> {
    let now = token::unix_now();
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(audience));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + ttl_secs));
    if let Some(user) = user_id {
        claims.insert("sub".into(), json!(user));
    }
    if !roles.is_empty() {
        claims.insert("role".into(), json!(roles));
    }
    if !groups.is_empty() {
        claims.insert("webpubsub.group".into(), json!(groups));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Identity;
    use crate::protocol::ContentKind;

    fn service() -> Arc<Service> {
        Service::new(EmulatorConfig::default())
    }

    fn connect(
        service: &Service,
        hub: &str,
        user: Option<&str>,
        groups: &[&str],
    ) -> (Arc<Connection>, crate::connection::SocketQueue) {
        let identity = Identity {
            connection_id: crate::connection::new_connection_id(),
            hub: names::normalize_hub(hub),
            user_id: user.map(str::to_owned),
            subprotocol: None,
            roles: vec![],
        };
        let (connection, queue) = Connection::new(identity, None);
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        service.register(&connection, &groups);
        (connection, queue)
    }

    fn received(queue: &mut crate::connection::SocketQueue) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(frame) = queue.frames.try_recv() {
            if let crate::protocol::Frame::Text(t) = frame {
                out.push(t);
            }
        }
        out
    }

    struct UserIs(&'static str);
    impl ConnectionFilter for UserIs {
        fn matches(&self, _: &str, user_id: Option<&str>, _: &[&str]) -> bool {
            user_id == Some(self.0)
        }
    }

    #[tokio::test]
    async fn sends_reach_the_right_connections() {
        let service = service();
        let (a, mut qa) = connect(&service, "Chat", Some("alice"), &["g"]);
        let (_b, mut qb) = connect(&service, "chat", Some("bob"), &[]);
        let text = Payload::new(ContentKind::Text, "hi");

        service.send_to_group("CHAT", "g", &text, &[], None);
        assert_eq!(received(&mut qa), vec!["hi"]);
        assert!(received(&mut qb).is_empty());

        service.send_to_all("chat", &text, std::slice::from_ref(&a.id), None);
        assert!(received(&mut qa).is_empty());
        assert_eq!(received(&mut qb), vec!["hi"]);

        service.send_to_all("chat", &text, &[], Some(&UserIs("bob")));
        assert!(received(&mut qa).is_empty());
        assert_eq!(received(&mut qb).len(), 1);

        service.send_to_user("chat", "alice", &text, None);
        assert_eq!(received(&mut qa).len(), 1);
        assert!(service.send_to_connection("chat", &a.id, &text));
        assert!(!service.send_to_connection("chat", "nope", &text));
        assert!(!service.send_to_connection("other", &a.id, &text));
    }

    #[tokio::test]
    async fn group_and_user_membership() {
        let service = service();
        let (a, _qa) = connect(&service, "hub", Some("alice"), &[]);
        assert!(!service.group_exists("hub", "g"));
        assert!(service.add_connection_to_group("hub", "g", &a.id));
        assert!(!service.add_connection_to_group("hub", "g", "missing"));
        assert!(service.group_exists("HUB", "g"));
        assert_eq!(
            service.group_connections("hub", "g"),
            vec![GroupMember {
                connection_id: a.id.clone(),
                user_id: Some("alice".into())
            }]
        );
        assert!(service.remove_connection_from_group("hub", "g", &a.id));
        assert!(!service.group_exists("hub", "g"));

        service.add_user_to_group("hub", "team", "alice");
        assert!(service.group_exists("hub", "team"));
        // A later connection of the same user joins the user's groups.
        let (a2, _qa2) = connect(&service, "hub", Some("alice"), &[]);
        assert_eq!(service.group_connections("hub", "team").len(), 2);
        service.remove_user_from_group("hub", "team", "alice");
        assert!(!service.group_exists("hub", "team"));

        service.add_to_groups("hub", &["x".into(), "y".into()], None);
        assert_eq!(service.group_connections("hub", "y").len(), 2);
        service.remove_from_groups("hub", &["x".into()], Some(&UserIs("alice")));
        assert!(!service.group_exists("hub", "x"));
        assert!(service.remove_connection_from_all_groups("hub", &a2.id));
        assert_eq!(service.group_connections("hub", "y").len(), 1);
        service.remove_user_from_all_groups("hub", "alice");
        assert!(!service.group_exists("hub", "y"));
        assert!(service.user_exists("hub", "alice"));
        assert!(!service.user_exists("hub", "bob"));
    }

    #[tokio::test]
    async fn closing_forgets_connections() {
        let service = service();
        let (a, mut qa) = connect(&service, "hub", Some("alice"), &["g"]);
        let (b, _qb) = connect(&service, "hub", Some("bob"), &["g"]);
        service.close_group("hub", "g", std::slice::from_ref(&b.id), Some("bye"));
        assert!(!service.connection_exists("hub", &a.id));
        assert!(service.connection_exists("hub", &b.id));
        assert_eq!(qa.close.try_recv().unwrap().reason, "bye");
        assert!(service.close_connection("hub", &b.id, None));
        assert!(!service.close_connection("hub", &b.id, None));
        assert!(!service.group_exists("hub", "g"));
        assert!(!service.user_exists("hub", "bob"));
    }

    #[tokio::test]
    async fn permissions_through_the_service() {
        let service = service();
        let (a, _qa) = connect(&service, "hub", None, &[]);
        assert!(!service.check_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
        assert!(service.grant_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
        assert!(service.check_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
        assert!(!service.grant_permission("hub", "missing", Permission::SendToGroup, None));
        assert!(service.revoke_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
        assert!(!service.check_permission("hub", &a.id, Permission::SendToGroup, Some("g")));
    }

    #[test]
    fn generated_tokens_verify_as_client_tokens() {
        let service = service();
        let request = ClientTokenRequest {
            user_id: Some("u".into()),
            roles: vec!["r".into()],
            ..Default::default()
        };
        let token = service.generate_client_token("Chat", "http://127.0.0.1:9/", &request);
        let claims = token::verify(&token, service.keys(), token::unix_now()).unwrap();
        assert_eq!(claims["aud"], "http://127.0.0.1:9/client/hubs/chat");
        assert_eq!(claims["sub"], "u");
        assert_eq!(claims["role"], json!(["r"]));
        assert!(claims.get("webpubsub.group").is_none());
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp >= token::unix_now() + 59 * 60);
    }

    #[test]
    fn rest_tokens() {
        let service = service();
        let url = "http://127.0.0.1:8080/api/hubs/chat/:send?api-version=2024-12-01";
        let sign = |aud: &str, exp_offset: i64| {
            let mut claims = Map::new();
            claims.insert("aud".into(), json!(aud));
            claims.insert("exp".into(), json!(token::unix_now() as i64 + exp_offset));
            format!("Bearer {}", token::sign(&claims, service.keys.primary()))
        };
        assert_eq!(service.verify_rest_token(Some(&sign(url, 60)), url), Ok(()));
        let without_query = "http://127.0.0.1:8080/api/hubs/chat/:send";
        assert_eq!(service.verify_rest_token(Some(&sign(without_query, 60)), url), Ok(()));
        let encoded = "HTTP://localhost:8080/api/hubs/Chat/%3Asend?api-version=2024-12-01";
        assert_eq!(service.verify_rest_token(Some(&sign(encoded, 60)), url), Ok(()));
        assert_eq!(
            service.verify_rest_token(Some(&sign("http://127.0.0.1:8080/api/hubs/other/:send", 60)), url),
            Err(TokenError::AudienceMismatch)
        );
        assert_eq!(
            service.verify_rest_token(Some(&sign(url, -3600)), url),
            Err(TokenError::Expired)
        );
        assert_eq!(service.verify_rest_token(None, url), Err(TokenError::Missing));
        assert_eq!(
            service.verify_rest_token(Some("Basic abc"), url),
            Err(TokenError::Missing)
        );
    }
}
