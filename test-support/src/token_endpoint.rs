//! A token endpoint for tests (managed identity, client credentials): [`TokenServer`] on `127.0.0.1:0`
//! records what it was asked and answers from a queue of [`Answer`]s (the last answer repeats); a token
//! answer is [`Answer::token`], throttling [`Answer::retry_after`].

use crate::Loopback;
use crate::recorder::{AfterScript, Recorder};
pub use crate::recorder::{Answer, Recorded};

/// A scripted token endpoint on `127.0.0.1:0`; stops when dropped.
pub struct TokenServer {
    recorder: Recorder,
    server: Loopback,
}

impl TokenServer {
    /// Serves `answers` in order (the last one repeats; none at all: `500`).
    pub async fn start(answers: Vec<Answer>) -> Self {
        let recorder = Recorder::new(AfterScript::RepeatLast);
        recorder.script(answers);
        let server = recorder.start().await;
        Self { recorder, server }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.recorder.hits()
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Recorded> {
        self.recorder.requests()
    }

    /// Replaces the queue of answers.
    pub fn set_answers(&self, answers: Vec<Answer>) {
        self.recorder.script(answers);
    }
}
