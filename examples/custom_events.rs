//! An application plugging its own user-event logic into `events` through the [`EventHandler`] trait: every
//! text message is answered, to its sender only, in upper case. Signature, origin and hub checks, body
//! limits and `connect` handling stay with the library. Run with the usual settings in the environment:
//! `cargo run --example custom_events`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use webpubsub_control::{
    ApiError, App, Env, EventHandler, HookFuture, Settings, UserEventReply, UserMessage, VerifiedEvent, run,
    shutdown_signal, telemetry,
};

/// Replies to each text message with the same text in upper case.
struct Shout;

impl EventHandler for Shout {
    fn on_user_event<'a>(
        &'a self,
        _event: &'a VerifiedEvent,
        message: UserMessage,
    ) -> HookFuture<'a, Result<UserEventReply, ApiError>> {
        Box::pin(async move {
            Ok(match message.text() {
                Some(text) => UserEventReply::text(text.to_uppercase()),
                None => UserEventReply::none(),
            })
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(&Env::from_process())?;
    let _log_guard = telemetry::init(&settings.log);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port));
    let app = App::new(settings)?.with_event_handler(Arc::new(Shout));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    run(listener, app, shutdown_signal()).await;
    Ok(())
}
