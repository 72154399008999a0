//! `webpubsub-emulator`: runs the local Web PubSub emulator on 127.0.0.1 (development and
//! tests only). Flags are parsed by hand; see `USAGE` or `--help`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use webpubsub_emulator::{EmulatorConfig, EventHandlerConfig, HubConfig};

const USAGE: &str = "\
webpubsub-emulator: local Azure Web PubSub emulator (development and tests only, NOT for production)

USAGE:
    webpubsub-emulator [--port P] [--access-key K] [--secondary-key K2] [--event-handler SPEC]...

OPTIONS:
    --port P              Port on 127.0.0.1 (default 8080; 0 picks a free port)
    --access-key K        Primary access key, at least 32 bytes, no ';'
                          (default: env WEBPUBSUB_EMULATOR_ACCESS_KEY, else the public dev key)
    --secondary-key K2    Optional secondary access key
    --event-handler SPEC  Adds an event handler (repeatable; handlers of a hub are tried in order)
    --identity-header H   Identity (keyless) mode: serves /identity/token (App Service shape; callers send
                          X-IDENTITY-HEADER: H) and /identity/keys, and accepts its tokens as REST bearer
    --disable-local-auth  With --identity-header: refuse access-key REST tokens (disableLocalAuth)
    --upstream-audience A With --identity-header: send Authorization: Bearer (aud A) on upstream events
    --identity-token-lifetime-secs N
                          With --identity-header: lifetime of minted identity tokens, 1 to 86400 (default
                          3600). Checked without clock skew; under 300 the handler refreshes before every use
    -h, --help            Shows this help

SPEC:
    <hub>=<url template>[;events=<system events>][;user=<user event pattern>]
    url template    absolute http(s) URL; may use {hub} and {event} (not in the host)
    events          comma-separated subset of connect,connected,disconnected
                    (default: all three; 'events=' for none)
    user            '*' (default), a name, or 'a,b'; 'user=' for no user events

EXAMPLE:
    webpubsub-emulator --port 8080 \\
      --event-handler 'chat=http://127.0.0.1:7071/runtime/webhooks/webpubsub;events=connect,connected,disconnected;user=*'
";

struct Cli {
    port: u16,
    access_key: Option<String>,
    secondary_key: Option<String>,
    handlers: Vec<(String, EventHandlerConfig)>,
    identity_header: Option<String>,
    disable_local_auth: bool,
    upstream_audience: Option<String>,
    identity_token_lifetime: Option<Duration>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Cli>, String> {
    let mut cli = Cli {
        port: 8080,
        access_key: None,
        secondary_key: None,
        handlers: Vec::new(),
        identity_header: None,
        disable_local_auth: false,
        upstream_audience: None,
        identity_token_lifetime: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                cli.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port must be a number from 0 to 65535".to_owned())?
            }
            "--access-key" => cli.access_key = Some(value("--access-key")?),
            "--secondary-key" => cli.secondary_key = Some(value("--secondary-key")?),
            "--event-handler" => cli.handlers.push(parse_handler(&value("--event-handler")?)?),
            "--identity-header" => cli.identity_header = Some(value("--identity-header")?),
            "--disable-local-auth" => cli.disable_local_auth = true,
            "--upstream-audience" => cli.upstream_audience = Some(value("--upstream-audience")?),
            "--identity-token-lifetime-secs" => {
                let secs = value("--identity-token-lifetime-secs")?
                    .parse::<u64>()
                    .ok()
                    .filter(|secs| (1..=86_400).contains(secs))
                    .ok_or_else(|| "--identity-token-lifetime-secs must be a number from 1 to 86400".to_owned())?;
                cli.identity_token_lifetime = Some(Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let identity_options =
        cli.disable_local_auth || cli.upstream_audience.is_some() || cli.identity_token_lifetime.is_some();
    if identity_options && cli.identity_header.is_none() {
        return Err(
            "--disable-local-auth, --upstream-audience and --identity-token-lifetime-secs need --identity-header"
                .to_owned(),
        );
    }
    Ok(Some(cli))
}

/// Parses `<hub>=<url>[;events=..][;user=..]`.
fn parse_handler(spec: &str) -> Result<(String, EventHandlerConfig), String> {
    let mut parts = spec.split(';');
    let head = parts.next().unwrap_or_default();
    let (hub, url) = head
        .split_once('=')
        .filter(|(hub, url)| !hub.trim().is_empty() && !url.trim().is_empty())
        .ok_or_else(|| format!("event handler '{spec}' must start with <hub>=<url template>"))?;
    let mut handler = EventHandlerConfig {
        url_template: url.trim().to_owned(),
        system_events: vec!["connect".into(), "connected".into(), "disconnected".into()],
        user_event_pattern: Some("*".into()),
    };
    for part in parts.filter(|p| !p.trim().is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' in event handler '{spec}' is not key=value"))?;
        match key.trim() {
            "events" => {
                handler.system_events = value
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect();
            }
            "user" => handler.user_event_pattern = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            other => {
                return Err(format!(
                    "unknown key '{other}' in event handler '{spec}' (use events= or user=)"
                ));
            }
        }
    }
    Ok((hub.trim().to_owned(), handler))
}

fn build_config(cli: Cli, env_key: Option<String>) -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    if let Some(key) = cli.access_key.or(env_key) {
        config.access_key = key;
    }
    config.secondary_key = cli.secondary_key;
    config.identity = cli.identity_header.map(|header| {
        let defaults = webpubsub_emulator::IdentityModeConfig::new(header);
        webpubsub_emulator::IdentityModeConfig {
            disable_local_auth: cli.disable_local_auth,
            upstream_audience: cli.upstream_audience,
            token_ttl: cli.identity_token_lifetime.unwrap_or(defaults.token_ttl),
            ..defaults
        }
    });
    for (hub, handler) in cli.handlers {
        match config.hubs.iter_mut().find(|h| h.hub.eq_ignore_ascii_case(&hub)) {
            Some(existing) => existing.event_handlers.push(handler),
            None => config.hubs.push(HubConfig {
                hub,
                event_handlers: vec![handler],
            }),
        }
    }
    config
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = match parse_args(std::env::args().skip(1)) {
        Ok(Some(cli)) => cli,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let port = cli.port;
    let config = build_config(cli, std::env::var("WEBPUBSUB_EMULATOR_ACCESS_KEY").ok());
    if let Err(error) = config.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    // `run` logs the development-only warning; the connection string is for the user.
    println!(
        "Connection string: {}",
        webpubsub_emulator::connection_string(addr, &config.access_key)
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("ctrl-c received; shutting down");
    };
    match webpubsub_emulator::run(listener, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags() {
        let cli = parse_args(args(&[
            "--port",
            "0",
            "--access-key=k",
            "--event-handler",
            "chat=http://h/{event};events=connect;user=",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(cli.port, 0);
        assert_eq!(cli.access_key.as_deref(), Some("k"));
        let (hub, handler) = &cli.handlers[0];
        assert_eq!(hub, "chat");
        assert_eq!(handler.url_template, "http://h/{event}");
        assert_eq!(handler.system_events, vec!["connect".to_owned()]);
        assert_eq!(handler.user_event_pattern, None);
        assert!(parse_args(args(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn handler_defaults_and_urls_with_queries() {
        let (hub, handler) = parse_handler("Chat=http://h/x?code=a=b").unwrap();
        assert_eq!(hub, "Chat");
        assert_eq!(handler.url_template, "http://h/x?code=a=b");
        assert_eq!(handler.system_events.len(), 3);
        assert_eq!(handler.user_event_pattern.as_deref(), Some("*"));
        let (_, handler) = parse_handler("c=http://h;user=a,b;events=").unwrap();
        assert_eq!(handler.user_event_pattern.as_deref(), Some("a,b"));
        assert!(handler.system_events.is_empty());
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_args(args(&["--port"])).is_err());
        assert!(parse_args(args(&["--port", "70000"])).is_err());
        assert!(parse_args(args(&["--bogus"])).is_err());
        assert!(parse_handler("http://no-hub").is_err());
        assert!(parse_handler("=http://x").is_err());
        assert!(parse_handler("c=http://x;colour=red").is_err());
        assert!(parse_handler("c=http://x;events").is_err());
    }

    #[test]
    fn identity_flags_build_identity_mode() {
        let flags = [
            "--identity-header",
            "h",
            "--disable-local-auth",
            "--upstream-audience=api://x",
            "--identity-token-lifetime-secs",
            "2",
        ];
        let cli = parse_args(flags.map(String::from)).unwrap().unwrap();
        let identity = build_config(cli, None).identity.unwrap();
        assert!(identity.disable_local_auth);
        assert_eq!(identity.upstream_audience.as_deref(), Some("api://x"));
        assert_eq!(identity.token_ttl, Duration::from_secs(2));
        assert!(parse_args(["--disable-local-auth".to_owned()]).is_err());
        assert!(parse_args(args(&["--identity-token-lifetime-secs", "60"])).is_err());
        let default = parse_args(args(&["--identity-header", "h"])).unwrap().unwrap();
        assert_eq!(
            build_config(default, None).identity.unwrap().token_ttl,
            Duration::from_secs(3600)
        );
        for bad in ["0", "86401", "-1", "soon"] {
            let flags = args(&["--identity-header", "h", "--identity-token-lifetime-secs", bad]);
            assert!(parse_args(flags).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_from_cli() {
        let cli = Cli {
            port: 1,
            access_key: None,
            secondary_key: None,
            handlers: vec![
                parse_handler("chat=http://a").unwrap(),
                parse_handler("CHAT=http://b").unwrap(),
            ],
            identity_header: None,
            disable_local_auth: false,
            upstream_audience: None,
            identity_token_lifetime: None,
        };
        let config = build_config(cli, Some("env-key".into()));
        assert_eq!(config.access_key, "env-key");
        assert_eq!(config.hubs.len(), 1);
        assert_eq!(config.hubs[0].event_handlers.len(), 2);
    }
}
