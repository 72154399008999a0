//! The emulator's shared state and the operations on it: connections, groups, users,
//! permissions, sends, closes and tokens, per hub.
//!
//! This is the API the REST layer (`rest/`) calls. Conventions for callers:
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
//!
//! Layout: this file holds the state (hubs, members, groups) and its lookups; `operations` the
//! REST operations (sends, closes and existence by [`Target`], groups, permissions); `tokens` client and REST
//! tokens; `sockets` what the WebSocket endpoint needs (register, resume, client-side sends).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

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

mod operations;
mod sockets;
#[cfg(test)]
pub(crate) mod tests;
mod tokens;

pub use operations::Target;
pub use tokens::client_token;
pub(crate) use tokens::normalize_url_tail;

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
    /// Identity mode: the local identity authority.
    identity: Option<Arc<crate::identity::IdentityAuthority>>,
}

impl Service {
    /// Identity mode: the local identity authority (mints and verifies tokens, serves the key set).
    pub fn identity(&self) -> Option<&Arc<crate::identity::IdentityAuthority>> {
        self.identity.as_ref()
    }

    /// Whether access-key REST tokens are refused (identity mode with local auth disabled).
    pub fn local_auth_disabled(&self) -> bool {
        self.config
            .identity
            .as_ref()
            .is_some_and(|mode| mode.disable_local_auth)
    }
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
        let identity = config.identity.as_ref().map(|mode| {
            let authority = crate::identity::IdentityAuthority::new(mode.identity_header.clone())
                .expect("generating an RSA key does not fail")
                .with_token_ttl(mode.token_ttl);
            Arc::new(authority)
        });
        let upstream_bearer = identity
            .clone()
            .zip(config.identity.as_ref().and_then(|mode| mode.upstream_audience.clone()));
        let upstream = Arc::new(Upstream::new(&config, keys.clone()).with_bearer(upstream_bearer));
        Arc::new(Service {
            keys,
            hubs: Mutex::new(HashMap::new()),
            upstream,
            identity,
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
}
