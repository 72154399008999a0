//! The handler's environment in dev mode: the developer's own, with the wiring to the emulator forced
//! (connection string, hub, port) and what the chat needs filled in when unset ([`CHAT_DEFAULTS`]), so the
//! same `Settings::from_env` as production validates it.

use std::net::SocketAddr;

use crate::config::Env;
use crate::functions::events as events_settings;
use crate::functions::{negotiate, publish};

/// Settings the chat needs, applied only when the environment leaves them unset (so a developer can try
/// other values).
pub const CHAT_DEFAULTS: [(&str, &str); 4] = [
    (negotiate::IDENTITY_SETTING, "anonymous"),
    // Negotiate is anonymous anyway: let official clients ask for per-group roles and `joinGroup` /
    // `sendToGroup` directly (the lightweight-server pattern) with no extra settings.
    (negotiate::ALLOWED_ROLES_SETTING, DEV_ALLOWED_ROLES),
    (publish::TRUST_SETTING, "functionkey"),
    (events_settings::USER_EVENT_BEHAVIOR, "broadcast"),
];
/// `NegotiateAllowedRoles` in dev mode: any `webpubsub.joinLeaveGroup.<g>` and `webpubsub.sendToGroup.<g>`.
pub const DEV_ALLOWED_ROLES: &str = "webpubsub.joinLeaveGroup.*,webpubsub.sendToGroup.*";
/// The rooms the chat may join, when the behaviour is `broadcast` and the environment names none. Dev mode
/// gives connections no private groups, so every group may be a chat room.
pub const CHAT_JOINABLE_ROOMS: (&str, &str) = (events_settings::JOINABLE_ROOMS, "*");

/// The handler's environment: the caller's, with the wiring forced and the chat's defaults filled in.
pub(super) fn handler_env(env: Env, hub: &str, handler: SocketAddr, emulator: SocketAddr, access_key: &str) -> Env {
    let mut env = env
        .with(
            "WebPubSubConnectionString",
            webpubsub_emulator::connection_string(emulator, access_key),
        )
        // A blank value counts as unset: a secondary string from the shell would point at another service.
        .with("WebPubSubSecondaryConnectionString", "")
        .with("WebPubSubHub", hub)
        .with("FUNCTIONS_CUSTOMHANDLER_PORT", handler.port().to_string());
    for (name, value) in CHAT_DEFAULTS {
        if env.get(name).is_none() {
            env = env.with(name, value);
        }
    }
    // Only `broadcast` accepts joinable rooms; another behaviour chosen by the developer must still start.
    let (rooms, any_room) = CHAT_JOINABLE_ROOMS;
    let broadcast = env
        .get(events_settings::USER_EVENT_BEHAVIOR)
        .is_some_and(|behavior| behavior.eq_ignore_ascii_case("broadcast"));
    if broadcast && env.get(rooms).is_none() {
        env = env.with(rooms, any_room);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Settings;

    #[test]
    fn the_environment_keeps_overrides_but_never_the_wiring() {
        let handler: SocketAddr = "127.0.0.1:7071".parse().unwrap();
        let emulator: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let inherited = Env::from_pairs([
            (
                "WebPubSubConnectionString",
                "Endpoint=https://prod.example.com;AccessKey=real-key",
            ),
            (
                "WebPubSubSecondaryConnectionString",
                "Endpoint=https://prod.example.com;AccessKey=old-key",
            ),
            ("WebPubSubHub", "prod"),
            ("EventsUserEventBehavior", "echo"),
            ("RUST_LOG", "debug"),
        ]);
        let env = handler_env(inherited, "chat", handler, emulator, "k".repeat(40).as_str());
        let connection = env.get("WebPubSubConnectionString").unwrap();
        assert!(
            connection.starts_with("Endpoint=http://127.0.0.1;Port=8080;AccessKey=kkkk"),
            "{connection}"
        );
        assert_eq!(env.get("WebPubSubSecondaryConnectionString"), None);
        assert_eq!(env.get("WebPubSubHub"), Some("chat"));
        assert_eq!(env.get("FUNCTIONS_CUSTOMHANDLER_PORT"), Some("7071"));
        // Chosen by the developer: kept.
        assert_eq!(env.get("EventsUserEventBehavior"), Some("echo"));
        assert_eq!(env.get("RUST_LOG"), Some("debug"));
        // Unset: the chat's defaults.
        assert_eq!(env.get("NegotiateIdentity"), Some("anonymous"));
        assert_eq!(env.get("NegotiateAllowedRoles"), Some(DEV_ALLOWED_ROLES));
        assert_eq!(env.get("PublishTrust"), Some("functionkey"));
        // Not with a behaviour other than broadcast, which refuses joinable rooms.
        assert_eq!(env.get("EventsJoinableRooms"), None);
        let broadcast = handler_env(Env::default(), "chat", handler, emulator, "k".repeat(40).as_str());
        assert_eq!(broadcast.get("EventsJoinableRooms"), Some("*"));
    }

    #[test]
    fn the_dev_environment_passes_production_validation() {
        let handler: SocketAddr = "127.0.0.1:7071".parse().unwrap();
        let emulator: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let env = handler_env(Env::default(), "chat", handler, emulator, "k".repeat(40).as_str());
        let settings = Settings::from_env(&env).expect("valid");
        assert_eq!(settings.negotiate.identity.mode_name(), "anonymous");
        assert_eq!(settings.publish.trust.mode_name(), "functionkey");
        // #14 item 22: official clients may ask for per-group roles, never the all-groups ones.
        let allowed = |role: &str| settings.negotiate.allowed_roles.iter().any(|t| t.matches(role, "ada"));
        assert!(allowed("webpubsub.joinLeaveGroup.room1") && allowed("webpubsub.sendToGroup.room1"));
        assert!(!allowed("webpubsub.joinLeaveGroup") && !allowed("webpubsub.sendToGroups.**"));
        assert_eq!(settings.events.user_event_behavior.as_str(), "broadcast");
    }
}
