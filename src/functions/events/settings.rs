//! Settings of the `events` function, read once from the environment snapshot and validated; every list is
//! parsed into its final form here (templates, lowercase hosts) so no request re-parses configuration.
//!
//! | Setting | Default | Meaning |
//! |---|---|---|
//! | `EventsAllowedOrigins` | *(none)* | Extra hosts allowed in abuse protection, besides the connection strings' hosts. |
//! | `EventsSubprotocols` | `json.reliable.webpubsub.azure.v1,json.webpubsub.azure.v1` | Subprotocols accepted on connect, most preferred first. |
//! | `EventsUserIdSource` | `token` | `token`, `claim:<name>` (overrides the token's subject) or `query:<name>` (only when the token has no user). |
//! | `EventsRequireUserId` | `false` | Refuse (401) a connect that ends without a user id. |
//! | `EventsDefaultGroups` | *(none)* | Groups every connection joins; `{userId}` is replaced. |
//! | `EventsDefaultRoles` | *(none)* | Roles every connection gets; `{userId}` is replaced (escaped inside wildcard roles). |
//! | `EventsUserEventBehavior` | `none` | Built-in answer to user events: `none`, `echo` or `broadcast`. |
//! | `EventsJoinableRooms` | *(none)* | With `broadcast`: rooms a `join` event may enter (`*` wildcards, `{userId}`). |
//! | `EventsMaxBodyBytes` | `1179648` | Largest request body read (1 MiB frame plus 128 KiB for the connect envelope). |

use std::fmt;
use std::str::FromStr;

use crate::auth::template::Template;
use crate::config::{ConfigError, Env};
use crate::request::MAX_BODY_BYTES_RANGE;

pub(super) const ALLOWED_ORIGINS: &str = "EventsAllowedOrigins";
pub(super) const SUBPROTOCOLS: &str = "EventsSubprotocols";
pub(super) const USER_ID_SOURCE: &str = "EventsUserIdSource";
pub(super) const REQUIRE_USER_ID: &str = "EventsRequireUserId";
pub(super) const DEFAULT_GROUPS: &str = "EventsDefaultGroups";
pub(super) const DEFAULT_ROLES: &str = "EventsDefaultRoles";
pub(crate) const USER_EVENT_BEHAVIOR: &str = "EventsUserEventBehavior";
pub(crate) const JOINABLE_ROOMS: &str = "EventsJoinableRooms";
pub(super) const MAX_BODY_BYTES: &str = "EventsMaxBodyBytes";

/// The JSON subprotocols, reliable first: the default preference list.
pub(super) const DEFAULT_SUBPROTOCOLS: [&str; 2] = ["json.reliable.webpubsub.azure.v1", "json.webpubsub.azure.v1"];
/// One 1 MB WebSocket frame (the service's limit) plus room for the connect envelope (claims, headers).
pub(super) const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024 + 128 * 1024;

/// Settings of `events`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Extra abuse-protection hosts (`EventsAllowedOrigins`), lowercase.
    pub allowed_origins: Vec<String>,
    /// How `connect` is answered.
    pub connect: ConnectPolicy,
    /// Built-in handling of user events (`EventsUserEventBehavior`).
    pub user_event_behavior: UserEventBehavior,
    /// Rooms a `join` event may enter under `broadcast` (`EventsJoinableRooms`).
    pub joinable_rooms: Vec<Template>,
    /// Largest body read (`EventsMaxBodyBytes`).
    pub max_body_bytes: u64,
    /// The Entra bearer check and `EventsAllowUnauthenticated` (issue 18).
    pub upstream_auth: super::upstream_auth::UpstreamAuthSettings,
}

/// The configured answer to `connect`, applied before any application hook.
#[derive(Debug, Clone)]
pub(crate) struct ConnectPolicy {
    /// Accepted subprotocols, most preferred first (`EventsSubprotocols`).
    pub subprotocols: Vec<String>,
    /// Where the user id comes from (`EventsUserIdSource`).
    pub user_id_source: UserIdSource,
    /// Refuse connections without a user id (`EventsRequireUserId`).
    pub require_user_id: bool,
    /// Groups every connection joins (`EventsDefaultGroups`).
    pub default_groups: Vec<Template>,
    /// Roles every connection gets (`EventsDefaultRoles`).
    pub default_roles: Vec<Template>,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        Self {
            subprotocols: DEFAULT_SUBPROTOCOLS.map(String::from).to_vec(),
            user_id_source: UserIdSource::Token,
            require_user_id: false,
            default_groups: Vec::new(),
            default_roles: Vec::new(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            connect: ConnectPolicy::default(),
            user_event_behavior: UserEventBehavior::None,
            joinable_rooms: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            upstream_auth: Default::default(),
        }
    }
}

impl Settings {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let allowed_origins = env
            .list(ALLOWED_ORIGINS)
            .into_iter()
            .enumerate()
            .map(|(index, host)| check_host(index, &host).map(|()| host.to_ascii_lowercase()))
            .collect::<Result<_, _>>()?;

        let subprotocols = match env.list(SUBPROTOCOLS) {
            list if list.is_empty() => DEFAULT_SUBPROTOCOLS.map(String::from).to_vec(),
            list => {
                if let Some(bad) = list.iter().position(|name| !is_token(name)) {
                    return Err(ConfigError::new(
                        SUBPROTOCOLS,
                        format!(
                            "entry {} is not a valid subprotocol name (an HTTP token: letters, digits, !#$%&'*+-.^_`|~)",
                            bad + 1
                        ),
                    ));
                }
                list
            }
        };

        let max_body_bytes = env.parse_in(MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, MAX_BODY_BYTES_RANGE, "bytes")?;

        let user_event_behavior: UserEventBehavior = env.parse_or(USER_EVENT_BEHAVIOR, UserEventBehavior::None)?;
        let joinable_rooms = templates(env, JOINABLE_ROOMS, Template::pattern)?;
        if !joinable_rooms.is_empty() && user_event_behavior != UserEventBehavior::Broadcast {
            return Err(ConfigError::new(
                JOINABLE_ROOMS,
                format!("needs {USER_EVENT_BEHAVIOR}=broadcast"),
            ));
        }

        Ok(Self {
            allowed_origins,
            connect: ConnectPolicy {
                subprotocols,
                user_id_source: env.parse_or(USER_ID_SOURCE, UserIdSource::Token)?,
                require_user_id: env.flag(REQUIRE_USER_ID, false)?,
                default_groups: templates(env, DEFAULT_GROUPS, Template::literal)?,
                default_roles: templates(env, DEFAULT_ROLES, Template::literal)?,
            },
            user_event_behavior,
            joinable_rooms,
            max_body_bytes,
            upstream_auth: super::upstream_auth::UpstreamAuthSettings::from_env(env)?,
        })
    }
}

fn templates<E: fmt::Display>(
    env: &Env,
    name: &str,
    parse: impl Fn(&str) -> Result<Template, E>,
) -> Result<Vec<Template>, ConfigError> {
    env.list(name)
        .iter()
        .map(|text| parse(text).map_err(|e| ConfigError::new(name, e.to_string())))
        .collect()
}

/// A bare host or `host:port`: no scheme, path, spaces or wildcards. The error names the entry by position,
/// never by value: a pasted secret must not reach stderr (#14 item 7).
fn check_host(index: usize, host: &str) -> Result<(), ConfigError> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            ALLOWED_ORIGINS,
            format!(
                "entry {} is not a host name (write hosts without scheme or path)",
                index + 1
            ),
        ))
    }
}

/// An HTTP token (RFC 7230 `tchar`s), as subprotocol names must be.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Where a connection's user id comes from (`EventsUserIdSource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserIdSource {
    /// `token`: the client token's subject (`ce-userId`), as is.
    Token,
    /// `claim:<name>`: the first value of that token claim; the subject when the claim is absent.
    Claim(String),
    /// `query:<name>`: that connect-URL query parameter, only when the token has no subject (it is
    /// client-supplied, so it never overrides a signed identity).
    Query(String),
}

impl FromStr for UserIdSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "expected token, claim:<name> or query:<name>";
        if text.eq_ignore_ascii_case("token") {
            return Ok(Self::Token);
        }
        let (kind, name) = text.split_once(':').ok_or(EXPECTED)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("{EXPECTED}; the name is missing"));
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "claim" => Ok(Self::Claim(name.to_owned())),
            "query" => Ok(Self::Query(name.to_owned())),
            _ => Err(EXPECTED.to_owned()),
        }
    }
}

/// The built-in answer to user events (`EventsUserEventBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserEventBehavior {
    /// `none`: 204, nothing is sent.
    None,
    /// `echo`: the payload goes back to the sender, same data type.
    Echo,
    /// `broadcast`: the payload goes to the sender's rooms, tagged with the sender's user id; `join` and
    /// `leave` events move the connection between joinable rooms (see `builtin`).
    Broadcast,
}

impl UserEventBehavior {
    /// The setting's value for this behaviour (`none`, `echo`, `broadcast`), as `handler dev`'s banner shows it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Echo => "echo",
            Self::Broadcast => "broadcast",
        }
    }
}

impl FromStr for UserEventBehavior {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::None, Self::Echo, Self::Broadcast]
            .into_iter()
            .find(|behavior| text.eq_ignore_ascii_case(behavior.as_str()))
            .ok_or("expected none, echo or broadcast")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.connect.subprotocols, DEFAULT_SUBPROTOCOLS);
        assert_eq!(settings.connect.user_id_source, UserIdSource::Token);
        assert!(!settings.connect.require_user_id);
        assert!(settings.connect.default_groups.is_empty() && settings.connect.default_roles.is_empty());
        assert_eq!(settings.user_event_behavior, UserEventBehavior::None);
        assert_eq!(settings.max_body_bytes, 1_179_648);
        assert!(settings.allowed_origins.is_empty());
    }

    #[test]
    fn reads_every_setting() {
        let env = Env::from_pairs([
            (ALLOWED_ORIGINS, "Tunnel.Example.com, 127.0.0.1:8080"),
            (SUBPROTOCOLS, "json.webpubsub.azure.v1"),
            (USER_ID_SOURCE, "claim:email"),
            (REQUIRE_USER_ID, "true"),
            (DEFAULT_GROUPS, "lobby,user-{userId}"),
            (DEFAULT_ROLES, "webpubsub.sendToGroup.user-{userId}"),
            (USER_EVENT_BEHAVIOR, "Broadcast"),
            (JOINABLE_ROOMS, "room-*"),
            (MAX_BODY_BYTES, "65536"),
        ]);
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(settings.allowed_origins, ["tunnel.example.com", "127.0.0.1:8080"]);
        assert_eq!(settings.connect.subprotocols, ["json.webpubsub.azure.v1"]);
        assert_eq!(settings.connect.user_id_source, UserIdSource::Claim("email".into()));
        assert!(settings.connect.require_user_id);
        assert_eq!(settings.connect.default_groups.len(), 2);
        assert_eq!(settings.connect.default_groups[1].render("bob"), "user-bob");
        assert_eq!(settings.user_event_behavior, UserEventBehavior::Broadcast);
        assert!(settings.joinable_rooms[0].matches("room-1", "bob"));
        assert_eq!(settings.max_body_bytes, 65536);
    }

    #[test]
    fn the_body_limit_is_bounded_in_bytes() {
        let error = Settings::from_env(&Env::from_pairs([(MAX_BODY_BYTES, "100")])).unwrap_err();
        assert!(
            error.to_string().ends_with("must be from 4096 to 104857600 bytes"),
            "{error}"
        );
    }

    #[test]
    fn user_id_sources() {
        assert_eq!("TOKEN".parse::<UserIdSource>().unwrap(), UserIdSource::Token);
        assert_eq!(
            "query: name ".parse::<UserIdSource>().unwrap(),
            UserIdSource::Query("name".into())
        );
        assert_eq!(
            "Claim:http://x/y".parse::<UserIdSource>().unwrap(),
            UserIdSource::Claim("http://x/y".into())
        );
        for bad in ["", "claim", "claim:", "header:x", "sub"] {
            assert!(bad.parse::<UserIdSource>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_error_shows_the_value_it_refused() {
        // A connection string pasted into the wrong setting must not reach stderr (#14 item 7).
        let pasted = "Endpoint=https://x.webpubsub.azure.com;AccessKey=PASTED/SECRET+KEY**;Version=1.0;";
        for name in [
            ALLOWED_ORIGINS,
            SUBPROTOCOLS,
            USER_ID_SOURCE,
            REQUIRE_USER_ID,
            USER_EVENT_BEHAVIOR,
            MAX_BODY_BYTES,
        ] {
            let error = Settings::from_env(&Env::default().with(name, pasted)).unwrap_err();
            assert_eq!(error.setting, name);
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("SECRET") && !shown.contains("x.webpubsub"), "{shown}");
        }
        let error =
            Settings::from_env(&Env::default().with(ALLOWED_ORIGINS, format!("ok.example, {pasted}"))).unwrap_err();
        assert!(error.to_string().contains("entry 2"), "{error}");
    }

    #[test]
    fn each_invalid_setting_is_named() {
        for (name, value) in [
            (ALLOWED_ORIGINS, "https://x.example.com"),
            (ALLOWED_ORIGINS, "*"),
            (SUBPROTOCOLS, "json webpubsub"),
            (USER_ID_SOURCE, "header:x"),
            (REQUIRE_USER_ID, "perhaps"),
            (USER_EVENT_BEHAVIOR, "shout"),
            (MAX_BODY_BYTES, "12"),
            (MAX_BODY_BYTES, "lots"),
            (JOINABLE_ROOMS, "room-*"),
        ] {
            let error = Settings::from_env(&Env::default().with(name, value)).unwrap_err();
            assert_eq!(error.setting, name, "{value:?}");
        }
        let env = Env::default()
            .with(USER_EVENT_BEHAVIOR, "broadcast")
            .with(JOINABLE_ROOMS, "room-**");
        assert_eq!(Settings::from_env(&env).unwrap_err().setting, JOINABLE_ROOMS);
    }
}
