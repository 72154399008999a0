//! The `handler dev` command line: the flags ([`USAGE`]), their defaults (the ports `func start` and
//! Microsoft's emulator use, the `chat` hub) and [`parse_args`], which turns the arguments after `dev` into
//! a [`DevCommand`] (run with [`DevOptions`], or print the help) or a one-line error naming the flag.

use std::path::PathBuf;

use crate::config::Env;
use crate::webpubsub::validate;

/// The handler's port, as `func start` uses.
pub const DEFAULT_HANDLER_PORT: u16 = 7071;
/// The emulator's port, as Microsoft's emulator uses.
pub const DEFAULT_EMULATOR_PORT: u16 = 8080;
/// The hub the chat runs in.
pub const DEFAULT_HUB: &str = "chat";

/// `handler dev --help`.
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
    /// `--port`: the handler's port on 127.0.0.1 (0 picks a free one).
    pub handler_port: u16,
    /// `--emulator-port`: the emulator's port on 127.0.0.1 (0 picks a free one).
    pub emulator_port: u16,
    /// `--hub`: the hub the chat uses.
    pub hub: String,
    /// `None`: [`super::DEFAULT_DATA_DIR`] under the working directory.
    pub data_dir: Option<PathBuf>,
    /// The environment snapshot the handler's other settings come from.
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
    /// `-h` / `--help`: print [`USAGE`].
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

/// `text` as a port number, or an error naming `flag`.
fn port(flag: &str, text: &str) -> Result<u16, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{flag} must be a port number from 0 to 65535, got {text:?}"))
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
}
