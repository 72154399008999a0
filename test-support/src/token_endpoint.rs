//! A token endpoint for tests (managed identity, client credentials): [`TokenServer`] on `127.0.0.1:0`
//! records what it was asked (path, query, headers, body) and answers from a queue (the last answer repeats),
//! a [`Recorder`] with answers shaped as token endpoints answer.

use std::time::Duration;

use warp::http::HeaderMap;

use crate::Loopback;
use crate::recorder::{self, AfterScript, Recorder};

/// One scripted answer (always `content-type: application/json`).
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Answer {
    /// `200` with an access token expiring at `expires_on` (Unix seconds), as App Service answers.
    pub fn token(token: &str, expires_on: u64) -> Self {
        Self::status(
            200,
            &format!(r#"{{"access_token":"{token}","expires_on":"{expires_on}","token_type":"Bearer"}}"#),
        )
    }

    /// `status` with `body`, at once.
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    /// Adds `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Answers after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn scripted(self) -> recorder::Answer {
        let answer = recorder::Answer::json(self.status, &self.body).delayed(self.delay);
        match self.retry_after {
            Some(secs) => answer.with_header("retry-after", &secs.to_string()),
            None => answer,
        }
    }
}

/// What the endpoint was asked.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

/// A scripted token endpoint on `127.0.0.1:0`; stops when dropped.
pub struct TokenServer {
    recorder: Recorder,
    server: Loopback,
}

impl TokenServer {
    /// Serves `answers` in order (the last one repeats; none at all: `500`).
    pub async fn start(answers: Vec<Answer>) -> Self {
        let recorder = Recorder::new(AfterScript::RepeatLast);
        recorder.script(answers.into_iter().map(Answer::scripted));
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
    pub fn seen(&self) -> Vec<Seen> {
        self.recorder
            .requests()
            .into_iter()
            .map(|request| Seen {
                body: request.body_text(),
                path: request.path,
                query: request.query,
                headers: request.headers,
            })
            .collect()
    }

    /// Replaces the queue of answers.
    pub fn set_answers(&self, answers: Vec<Answer>) {
        self.recorder.script(answers.into_iter().map(Answer::scripted));
    }
}
