//! `handler`: the executable the Functions host starts. `handler` serves the functions; `handler dev` runs
//! the whole system locally with the embedded emulator. All logic lives in the library.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use webpubsub_control::{App, Env, Settings, run, shutdown_signal, telemetry};

const USAGE: &str = "\
handler — Azure Functions custom handler in front of Azure Web PubSub

USAGE:
    handler            serve negotiate, publish and events (started by the Functions host)
    handler dev        run the handler with the embedded local Web PubSub emulator and a chat page
                       (development only; `handler dev --help` for its flags)
    handler --help     this text;  handler --version   the version

Settings come from the environment (app settings; local.settings.json under `func start`); see README.md.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => serve(),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        #[cfg(feature = "dev")]
        Some("dev") => dev(args.into_iter().skip(1)),
        #[cfg(not(feature = "dev"))]
        Some("dev") => {
            eprintln!("handler: this build has no dev mode (built without the `dev` feature)");
            ExitCode::from(2)
        }
        Some("-V" | "--version") => {
            println!("handler {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("handler: unknown command {other:?}; see `handler --help`");
            ExitCode::from(2)
        }
    }
}

/// Production mode: settings from the environment, listen on 127.0.0.1 at the host's port.
fn serve() -> ExitCode {
    let settings = match Settings::from_env(&Env::from_process()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("handler: configuration error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let _log_guard = telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("handler: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("handler: cannot listen on {addr}: {error}");
                return ExitCode::FAILURE;
            }
        };
        let app = match App::new(settings) {
            Ok(app) => app,
            Err(error) => {
                eprintln!("handler: configuration error: {error:#}");
                return ExitCode::FAILURE;
            }
        };
        app.open_store().await;
        tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "handler listening");
        run(listener, app, shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// `handler dev`: the handler and the embedded emulator together until ctrl-c (see `webpubsub_control::dev`).
#[cfg(feature = "dev")]
fn dev(args: impl Iterator<Item = String>) -> ExitCode {
    use webpubsub_control::dev::{self, DevCommand};

    let mut options = match dev::parse_args(args) {
        Ok(DevCommand::Run(options)) => options,
        Ok(DevCommand::Help) => {
            println!("{}", dev::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("handler dev: {error}");
            return ExitCode::from(2);
        }
    };
    options.env = Env::from_process();
    let _log_guard = match telemetry::LogSettings::from_env(&options.env) {
        Ok(log) => telemetry::init(&log),
        Err(error) => {
            eprintln!("handler dev: configuration error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("handler dev: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let running = match dev::start(options).await {
            Ok(running) => running,
            Err(error) => {
                eprintln!("handler dev: {error}");
                return ExitCode::FAILURE;
            }
        };
        println!("{}", running.banner());
        shutdown_signal().await;
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}
