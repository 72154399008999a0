//! What `handler dev` prints at start: [`RunningDev::banner`], the development-only warning first, then
//! where the chat page, the handler's routes, the contract and the emulator are, who may do what (the
//! effective security modes, in plain words for the risky ones) and where the store is. Scripts read the
//! `chat page` and `emulator` lines.

use super::RunningDev;
use super::store::DEV_DRAIN_INTERVAL;

/// The effective security-relevant modes, as validated, for the banner.
#[derive(Debug, Clone)]
pub(super) struct Modes {
    pub(super) negotiate: &'static str,
    pub(super) publish: &'static str,
    pub(super) user_events: &'static str,
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

impl RunningDev {
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
}
