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

mod args;
mod banner;
mod env;
mod page;
mod store;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

pub use args::{DEFAULT_EMULATOR_PORT, DEFAULT_HANDLER_PORT, DEFAULT_HUB, DevCommand, DevOptions, USAGE, parse_args};
pub use env::{CHAT_DEFAULTS, CHAT_JOINABLE_ROOMS, DEV_ALLOWED_ROLES};
pub use store::{DEFAULT_DATA_DIR, DEV_DRAIN_INTERVAL, DEV_STORE_FILE};

use crate::config::ConfigError;
use crate::functions::outbox;
use crate::server::{App, Settings};
use banner::Modes;

/// How long each server may take to stop before its task is abandoned.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Why dev mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(
        "port {port} is already in use, so the {role} cannot listen on 127.0.0.1:{port}: stop what listens there, \
         or choose another port with {flag} (0 picks a free one)"
    )]
    /// Something else listens on a port dev mode was told to use.
    PortInUse {
        /// The port asked for.
        port: u16,
        /// Which server wanted it ("handler" or "emulator").
        role: &'static str,
        /// The flag that chooses it.
        flag: &'static str,
    },
    #[error("the {role} cannot listen on 127.0.0.1:{port} ({flag}): {source}")]
    /// Listening failed for another reason.
    Listen {
        /// The port asked for.
        port: u16,
        /// Which server wanted it ("handler" or "emulator").
        role: &'static str,
        /// The flag that chooses it.
        flag: &'static str,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    #[error("--port and --emulator-port are both {0}: the handler and the emulator need a port each")]
    /// `--port` and `--emulator-port` name the same port.
    SamePort(u16),
    #[error("configuration error: {0}")]
    /// The handler's settings are invalid.
    Config(#[from] ConfigError),
    #[error("--data-dir {path}: {source}")]
    /// The data directory could not be created.
    DataDir {
        /// The directory.
        path: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    #[error("cannot start: {0:#}")]
    /// Anything else that stopped start-up (the store, the emulator's settings).
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
    let env = env::handler_env(options.env, &options.hub, handler_addr, emulator_addr, &access_key);
    let env = store::with_dev_store(env, options.data_dir)?;
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
        user_events: settings.events.user_event_behavior.as_str(),
    };

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
    // Every check is above: nothing fails after the drain task is spawned, so a failed start leaves none.
    let app = App::new(settings).map_err(DevError::Start)?;
    app.open_store().await;
    let drain_task = tokio::spawn(outbox::run_every(app.durable(), DEV_DRAIN_INTERVAL));

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

/// Listens on 127.0.0.1:`port`; a busy port is a [`DevError::PortInUse`] naming `flag`.
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

/// The address `listener` got (its real port when 0 was asked for).
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
