//! A scripted HTTP server for tests that stand in for a service (Web PubSub's REST API, a token endpoint): a
//! [`Recorder`] records every request and answers from a script of [`Answer`]s; serve it on `127.0.0.1:0`
//! with [`Recorder::start`] or on a listener of the test's own with [`Recorder::serve_on`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use warp::Filter;
use warp::http::{HeaderMap, Method, Response};

use crate::Loopback;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method (`GET`, `POST`, …).
    pub method: String,
    /// The path, still percent-encoded.
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Recorded {
    /// `path?query`.
    pub fn path_and_query(&self) -> String {
        format!("{}?{}", self.path, self.query)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name`, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// One scripted answer: a status, headers, a body, and how long to wait before answering.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// How long to wait before answering (a stall: longer than the client's timeout).
    pub delay: Duration,
}

impl Answer {
    /// `status` with no body, at once.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }

    /// `status` with a JSON `body` (`content-type: application/json`).
    pub fn json(status: u16, body: &str) -> Self {
        Self::status(status)
            .with_header("content-type", "application/json")
            .with_body(body.to_owned())
    }

    /// `200` with an access token expiring at `expires_on` (Unix seconds), as App Service's token endpoint
    /// answers.
    pub fn token(token: &str, expires_on: u64) -> Self {
        Self::json(
            200,
            &format!(r#"{{"access_token":"{token}","expires_on":"{expires_on}","token_type":"Bearer"}}"#),
        )
    }

    /// With `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> Self {
        self.with_header("retry-after", &secs.to_string())
    }

    /// With `body`.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// With header `name: value` (after the ones already set).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// What the server answers once the script is used up.
#[derive(Clone, Copy, Debug)]
pub enum AfterScript {
    /// `200 OK` with no body.
    Ok,
    /// The script's last answer again (each answer before it is used once); with no script at all, `500`
    /// with body `{}`.
    RepeatLast,
}

#[derive(Debug)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Answer>>,
    after: AfterScript,
}

/// The recording and the script of a stand-in server; clones share them.
#[derive(Clone, Debug)]
pub struct Recorder(Arc<State>);

impl Recorder {
    /// A recorder with an empty script, answering as `after` says once the script is used up.
    pub fn new(after: AfterScript) -> Self {
        Self(Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            after,
        }))
    }

    /// Replaces the script with `answers` (the recording is kept).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        *self.0.script.lock().unwrap() = answers.into_iter().collect();
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        self.0.requests.lock().unwrap().clear();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.0.requests.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.0.requests.lock().unwrap().len()
    }

    /// Serves on `127.0.0.1:0` until the returned [`Loopback`] drops.
    pub async fn start(&self) -> Loopback {
        crate::serve(self.route()).await
    }

    /// Serves on `listener` (bound by the test, e.g. late on a known port) until the returned [`Loopback`]
    /// drops.
    pub fn serve_on(&self, listener: tokio::net::TcpListener) -> Loopback {
        crate::server::serve_on(listener, self.route())
    }

    fn next_answer(&self) -> Answer {
        let mut script = self.0.script.lock().unwrap();
        let next = match self.0.after {
            AfterScript::RepeatLast if script.len() <= 1 => script.front().cloned(),
            _ => script.pop_front(),
        };
        next.unwrap_or_else(|| match self.0.after {
            AfterScript::Ok => Answer::status(200),
            AfterScript::RepeatLast => Answer::status(500).with_body("{}"),
        })
    }

    fn route(
        &self,
    ) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
        let recorder = self.clone();
        request().then(move |request: Recorded| {
            recorder.0.requests.lock().unwrap().push(request);
            let answer = recorder.next_answer();
            async move {
                tokio::time::sleep(answer.delay).await;
                let mut response = Response::builder().status(answer.status);
                for (name, value) in &answer.headers {
                    response = response.header(name.as_str(), value.as_str());
                }
                response.body(answer.body).expect("a valid scripted answer")
            }
        })
    }
}

/// A filter extracting the whole request (method, path, raw query, headers, body), for stand-in servers
/// that record or forward what they receive.
pub fn request() -> impl Filter<Extract = (Recorded,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            |method: Method, path: warp::path::FullPath, query: String, headers: HeaderMap, body: Bytes| Recorded {
                method: method.to_string(),
                path: path.as_str().to_owned(),
                query,
                headers,
                body,
            },
        )
}
