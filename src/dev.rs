//! `handler dev`: the whole system on one machine in one command, for development only. It starts the
//! embedded Web PubSub emulator and the handler on 127.0.0.1, wired both ways, and serves a chat page.
//!
//! - The handler gets the emulator's connection string (a fresh random access key per run) and hub.
//! - The emulator's hub sends `connect`, `connected`, `disconnected` and every user event to the handler's
//!   `/api/events`.
//! - The handler's settings come from the process environment through the same `Settings::from_env` as
//!   production. Dev mode forces only the wiring (connection string, hub, port) and fills in what the chat
//!   needs when it is unset ([`CHAT_DEFAULTS`]): anonymous negotiate that grants any requested
//!   `webpubsub.joinLeaveGroup.<g>` / `webpubsub.sendToGroup.<g>` role, `broadcast` user events with every
//!   group joinable as a room, and `PublishTrust=functionkey` — with no Functions host in front, nothing
//!   checks a key, so anyone who can reach the loopback port may publish. The banner says so.
//! - The chat page (`page`) is served at `GET /` of the handler port (instead of the host's readiness
//!   `ok`). Its rooms are durable conversations (#16 item 5): joining one adds the member through the manage
//!   door (trusted here, as publish is), negotiate grants the member's `conversation:{id}` groups, and
//!   sends, history, sync and read markers go through the durable API; the socket only receives.
//!
//! - Durable conversations (#15) keep their data in a SQLite file under `--data-dir` (default
//!   [`DEFAULT_DATA_DIR`] under the working directory) unless `StoreConnectionString` is set, so history
//!   survives a restart; the `outbox` drain runs in-process every [`DEV_DRAIN_INTERVAL`] (no Functions host
//!   fires the timer here). The banner prints the store.
//!
//! [`start`] binds both ports first (a busy port is a [`DevError::PortInUse`] naming the flag), then serves
//! both; [`RunningDev`] stops them. `main` prints [`RunningDev::banner`] and waits for ctrl-c.

mod page;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

use crate::config::{ConfigError, Env};
use crate::functions::events as events_settings;
use crate::functions::{durable, negotiate, outbox, publish};
use crate::server::{App, Settings};
use crate::webpubsub::validate;

/// The handler's port, as `func start` uses.
pub const DEFAULT_HANDLER_PORT: u16 = 7071;
/// The emulator's port, as Microsoft's emulator uses.
pub const DEFAULT_EMULATOR_PORT: u16 = 8080;
/// The hub the chat runs in.
pub const DEFAULT_HUB: &str = "chat";

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

/// Where `handler dev` keeps its SQLite store when `--data-dir` is not given (under the working directory).
pub const DEFAULT_DATA_DIR: &str = ".webpubsub-dev";
/// The store's file name inside the data directory.
pub const DEV_STORE_FILE: &str = "store.db";
/// How often dev mode drains the outbox (the Functions timer ticks every 10 s; dev wants quick retries).
pub const DEV_DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long each server may take to stop before its task is abandoned.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The `handler dev --help` text.
pub const USAGE: &str = "\
handler dev — the handler and the local Web PubSub emulator together, with a chat page (DEVELOPMENT ONLY)

USAGE:
    handler dev [--port P] [--emulator-port P] [--hub NAME] [--data-dir PATH] [--identity]

OPTIONS:
    --port P            handler port on 127.0.0.1 (default 7071; 0 picks a free port)
    --emulator-port P   emulator port on 127.0.0.1 (default 8080; 0 picks a free port)
    --hub NAME          the hub the chat uses (default chat)
    --data-dir PATH     where durable conversations keep their SQLite file (default .webpubsub-dev;
                        ignored when StoreConnectionString is set)
    --identity          keyless (#18): managed identity from the emulator's identity endpoint, access keys
                        refused by the emulator, events checked by the Entra bearer check
    -h, --help          this text

Other settings come from the environment as in production (see README.md); dev mode sets the connection
string and hub, and defaults NegotiateIdentity=anonymous, NegotiateAllowedRoles=
webpubsub.joinLeaveGroup.*,webpubsub.sendToGroup.*, PublishTrust=functionkey,
EventsUserEventBehavior=broadcast (with EventsJoinableRooms=*) when they are unset. Stop with ctrl-c.";

/// What to start. `env` is the environment snapshot the handler's settings are read from.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// `--port`: the handler's loopback port (0 picks a free one).
    pub handler_port: u16,
    /// `--emulator-port`: the emulator's loopback port (0 picks a free one).
    pub emulator_port: u16,
    /// `--hub`: the hub the chat page and the defaults use.
    pub hub: String,
    /// `None`: [`DEFAULT_DATA_DIR`] under the working directory.
    pub data_dir: Option<PathBuf>,
    /// The environment snapshot the handler's settings are read from, before the dev defaults fill the gaps.
    pub env: Env,
    /// `--identity`: run the whole loop keyless.
    pub identity: bool,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            handler_port: DEFAULT_HANDLER_PORT,
            emulator_port: DEFAULT_EMULATOR_PORT,
            hub: DEFAULT_HUB.to_owned(),
            data_dir: None,
            env: Env::default(),
            identity: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum DevCommand {
    /// Start with these options.
    Run(DevOptions),
    /// Print [`USAGE`].
    Help,
}

/// Parses the arguments after `dev` (`--flag value` or `--flag=value`). The error is one line for the user.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<DevCommand, String> {
    let mut options = DevOptions::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(DevCommand::Help),
            "--port" => options.handler_port = port(&flag, &value()?)?,
            "--emulator-port" => options.emulator_port = port(&flag, &value()?)?,
            "--identity" => options.identity = true,
            "--hub" => {
                let hub = value()?;
                validate::hub(&hub).map_err(|e| format!("--hub {hub:?}: {e}"))?;
                options.hub = hub;
            }
            "--data-dir" => options.data_dir = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "unknown argument {other:?} for `handler dev`; see `handler dev --help`"
                ));
            }
        }
    }
    Ok(DevCommand::Run(options))
}

fn port(flag: &str, text: &str) -> Result<u16, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{flag} must be a port number from 0 to 65535, got {text:?}"))
}

/// Why dev mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(
        "port {port} is already in use, so the {role} cannot listen on 127.0.0.1:{port}: stop what listens there, \
         or choose another port with {flag} (0 picks a free one)"
    )]
    /// A port is taken.
    PortInUse {
        /// The port asked for.
        port: u16,
        /// `handler` or `emulator`.
        role: &'static str,
        /// The flag that chooses the port.
        flag: &'static str,
    },
    #[error("the {role} cannot listen on 127.0.0.1:{port} ({flag}): {source}")]
    /// Listening failed for another reason.
    Listen {
        /// The port asked for.
        port: u16,
        /// `handler` or `emulator`.
        role: &'static str,
        /// The flag that chooses the port.
        flag: &'static str,
        #[source]
        /// The listener error.
        source: io::Error,
    },
    #[error("--port and --emulator-port are both {0}: the handler and the emulator need a port each")]
    /// The handler and the emulator were given the same port.
    SamePort(u16),
    #[error("configuration error: {0}")]
    /// A setting in the environment is missing or malformed.
    Config(#[from] ConfigError),
    #[error("--data-dir {path}: {source}")]
    /// The data directory cannot be created or resolved.
    DataDir {
        /// The directory.
        path: String,
        #[source]
        /// The I/O error.
        source: io::Error,
    },
    #[error("cannot start: {0:#}")]
    /// The handler or the emulator failed to start.
    Start(anyhow::Error),
}

/// The handler and the emulator, serving. Dropping it stops both; [`RunningDev::shutdown`] also waits.
pub struct RunningDev {
    handler_addr: SocketAddr,
    emulator_addr: SocketAddr,
    hub: String,
    modes: Modes,
    identity: bool,
    stop_handler: Option<oneshot::Sender<()>>,
    stop_emulator: Option<oneshot::Sender<()>>,
    handler_task: Option<JoinHandle<()>>,
    emulator_task: Option<JoinHandle<anyhow::Result<()>>>,
    /// What the store is (the redacted connection string), for the banner.
    store: String,
    drain_task: Option<JoinHandle<()>>,
}

/// The effective security-relevant modes, as validated, for the banner.
#[derive(Debug, Clone)]
struct Modes {
    negotiate: &'static str,
    publish: &'static str,
    user_events: String,
}

impl Modes {
    /// One line saying who may do what, in plain words for the risky modes.
    fn describe(&self) -> String {
        let negotiate = match self.negotiate {
            "anonymous" => "negotiate=anonymous (callers pick their own user id)".to_owned(),
            other => format!("negotiate={other}"),
        };
        let publish = match self.publish {
            "functionkey" => {
                "publish=functionkey (no Functions host here checks a key: anyone on this machine may publish)"
                    .to_owned()
            }
            other => format!("publish={other}"),
        };
        format!("{negotiate}; {publish}; user events={}", self.user_events)
    }
}

/// Binds both ports, builds both configurations, and serves both until stopped.
pub async fn start(options: DevOptions) -> Result<RunningDev, DevError> {
    if options.handler_port != 0 && options.handler_port == options.emulator_port {
        return Err(DevError::SamePort(options.handler_port));
    }
    let handler_listener = bind(options.handler_port, "handler", "--port").await?;
    let emulator_listener = bind(options.emulator_port, "emulator", "--emulator-port").await?;
    let handler_addr = local_addr(&handler_listener, options.handler_port, "handler", "--port")?;
    let emulator_addr = local_addr(&emulator_listener, options.emulator_port, "emulator", "--emulator-port")?;

    let access_key = format!("dev-{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    let env = handler_env(options.env, &options.hub, handler_addr, emulator_addr, &access_key);
    let env = with_dev_store(env, options.data_dir)?;
    let identity_header = format!("dev-identity-{:032x}", rand::random::<u128>());
    let env = match options.identity {
        true => crate::identity::dev::keyless_env(env, emulator_addr, &identity_header),
        false => env,
    };
    let settings = Settings::from_env(&env)?;
    let store = settings
        .durable
        .store
        .as_ref()
        .map_or_else(|| "none".to_owned(), ToString::to_string);
    let modes = Modes {
        negotiate: settings.negotiate.identity.mode_name(),
        publish: settings.publish.trust.mode_name(),
        user_events: format!("{:?}", settings.events.user_event_behavior).to_ascii_lowercase(),
    };
    let app = App::new(settings).map_err(DevError::Start)?;
    app.open_store().await;
    let drain_task = tokio::spawn(outbox::run_every(app.durable(), DEV_DRAIN_INTERVAL));

    let emulator_config = webpubsub_emulator::EmulatorConfig {
        access_key,
        hubs: vec![webpubsub_emulator::HubConfig {
            hub: options.hub.clone(),
            event_handlers: vec![webpubsub_emulator::EventHandlerConfig {
                url_template: format!("http://{handler_addr}/api/events"),
                system_events: ["connect", "connected", "disconnected"].map(String::from).to_vec(),
                user_event_pattern: Some("*".to_owned()),
            }],
        }],
        identity: options
            .identity
            .then(|| crate::identity::dev::emulator_identity(&identity_header)),
        ..webpubsub_emulator::EmulatorConfig::default()
    };
    emulator_config.validate().map_err(|e| DevError::Start(e.into()))?;

    let policy = page::content_security_policy(&format!("ws://{emulator_addr}"));
    let routes = page::routes(&policy).or(app.routes());
    let (stop_handler, handler_stopped) = oneshot::channel::<()>();
    let handler_task = tokio::spawn(
        warp::serve(routes)
            .incoming(handler_listener)
            .graceful(async {
                let _ = handler_stopped.await;
            })
            .run(),
    );
    let (stop_emulator, emulator_stopped) = oneshot::channel::<()>();
    let emulator_task = tokio::spawn(webpubsub_emulator::run(emulator_listener, emulator_config, async {
        let _ = emulator_stopped.await;
    }));
    tracing::warn!(
        handler = %handler_addr,
        emulator = %emulator_addr,
        hub = %options.hub,
        "handler dev is running: for local development only"
    );
    Ok(RunningDev {
        handler_addr,
        emulator_addr,
        hub: options.hub,
        modes,
        identity: options.identity,
        stop_handler: Some(stop_handler),
        stop_emulator: Some(stop_emulator),
        handler_task: Some(handler_task),
        emulator_task: Some(emulator_task),
        store,
        drain_task: Some(drain_task),
    })
}

/// Points `StoreConnectionString` at `<data_dir>/store.db` (creating the directory) unless the environment
/// sets it.
fn with_dev_store(env: Env, data_dir: Option<PathBuf>) -> Result<Env, DevError> {
    if env
        .get(durable::STORE_SETTING)
        .is_some_and(|value| !value.trim().is_empty())
    {
        return Ok(env);
    }
    let dir = data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let failed = |source| DevError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let file = std::path::absolute(dir.join(DEV_STORE_FILE)).map_err(failed)?;
    Ok(env.with(durable::STORE_SETTING, format!("sqlite:{}", file.display())))
}

/// The handler's environment: the caller's, with the wiring forced and the chat's defaults filled in.
fn handler_env(env: Env, hub: &str, handler: SocketAddr, emulator: SocketAddr, access_key: &str) -> Env {
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

async fn bind(port: u16, role: &'static str, flag: &'static str) -> Result<TcpListener, DevError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                DevError::PortInUse { port, role, flag }
            } else {
                DevError::Listen {
                    port,
                    role,
                    flag,
                    source,
                }
            }
        })
}

fn local_addr(
    listener: &TcpListener,
    port: u16,
    role: &'static str,
    flag: &'static str,
) -> Result<SocketAddr, DevError> {
    listener.local_addr().map_err(|source| DevError::Listen {
        port,
        role,
        flag,
        source,
    })
}

impl RunningDev {
    /// The handler's address (its real port when 0 was asked for).
    pub fn handler_addr(&self) -> SocketAddr {
        self.handler_addr
    }

    /// The emulator's address.
    pub fn emulator_addr(&self) -> SocketAddr {
        self.emulator_addr
    }

    /// The hub the chat uses.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// `http://<handler>` + `path`, e.g. `url("/api/negotiate")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.handler_addr)
    }

    /// The chat page.
    pub fn chat_url(&self) -> String {
        self.url("/")
    }

    /// What runs where, in a few lines for the console; the development-only warning first. Scripts read
    /// the `chat page` and `emulator` lines.
    pub fn banner(&self) -> String {
        let handler = self.url("");
        format!(
            "\
==================== DEVELOPMENT ONLY: never expose or deploy this ====================
  chat page   {handler}/
  handler     {handler}/api/negotiate  {handler}/api/publish  {handler}/api/events
  contract    {handler}/api/openapi.json
  emulator    http://{emulator}  hub {hub:?}, events -> {handler}/api/events
  security    {security}{identity}
  store       {store}  (outbox drained in-process every {drain}s)
  publish     curl -X POST {handler}/api/manage/conversations/lobby/messages -H 'Content-Type: application/json' -d '{{\"sender\":\"server\",\"body\":{{\"kind\":\"system\",\"text\":\"hello\"}}}}'
Stop with ctrl-c.",
            emulator = self.emulator_addr,
            hub = self.hub,
            security = self.modes.describe(),
            store = self.store,
            drain = DEV_DRAIN_INTERVAL.as_secs(),
            identity = if self.identity { crate::identity::dev::BANNER_LINE } else { "" },
        )
    }

    /// Stops the emulator (it closes its clients while the handler still answers their `disconnected`
    /// events), then the handler, each within a grace period.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.drain_task.take() {
            task.abort();
        }
        if let Some(stop) = self.stop_emulator.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.emulator_task.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
                Ok(Ok(Err(error))) => tracing::error!(error = %error, "the emulator stopped with an error"),
                Ok(_) => {}
                Err(_) => tracing::warn!("the emulator did not stop in time"),
            }
        }
        if let Some(stop) = self.stop_handler.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.handler_task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err()
        {
            tracing::warn!("the handler did not stop in time");
        }
        tracing::info!("handler dev stopped");
    }
}

impl Drop for RunningDev {
    fn drop(&mut self) {
        if let Some(task) = self.drain_task.take() {
            task.abort();
        }
        for stop in [self.stop_emulator.take(), self.stop_handler.take()]
            .into_iter()
            .flatten()
        {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    fn run_options(text: &str) -> DevOptions {
        match parse_args(args(text)) {
            Ok(DevCommand::Run(options)) => options,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_func_and_emulator_ports() {
        let options = run_options("");
        assert_eq!(
            (options.handler_port, options.emulator_port, options.hub.as_str()),
            (7071, 8080, "chat")
        );
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let options = run_options("--port 0 --emulator-port=9000 --hub=lobby");
        assert_eq!(
            (options.handler_port, options.emulator_port, options.hub.as_str()),
            (0, 9000, "lobby")
        );
        assert!(matches!(parse_args(args("--port 1 --help")), Ok(DevCommand::Help)));
        assert_eq!(run_options("--data-dir=/tmp/d").data_dir, Some(PathBuf::from("/tmp/d")));
        assert_eq!(run_options("").data_dir, None);
    }

    #[test]
    fn each_bad_argument_is_named() {
        for (text, named) in [
            ("--port", "--port needs a value"),
            ("--port 70000", "--port must be a port number"),
            ("--emulator-port x", "--emulator-port must be"),
            ("--hub 1bad", "--hub \"1bad\""),
            ("--verbose", "unknown argument \"--verbose\""),
            ("extra", "unknown argument \"extra\""),
        ] {
            let error = parse_args(args(text)).unwrap_err();
            assert!(error.contains(named), "{text:?}: {error}");
        }
    }

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
        assert_eq!(
            settings.events.user_event_behavior,
            crate::functions::events::UserEventBehavior::Broadcast
        );
    }

    #[tokio::test]
    async fn same_ports_are_refused_before_binding() {
        let options = DevOptions {
            handler_port: 7,
            emulator_port: 7,
            ..DevOptions::default()
        };
        let error = start(options).await.err().expect("refused");
        assert!(matches!(error, DevError::SamePort(7)), "{error}");
    }
}
