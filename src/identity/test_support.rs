//! Test helpers for the identity module: a scriptable token endpoint on `127.0.0.1:0` that records what it
//! was asked (path, query, headers, body) and answers from a queue (the last answer repeats).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

/// One scripted answer.
#[derive(Clone, Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
    pub delay: Duration,
}

impl Answer {
    pub(super) fn token(token: &str, expires_on: u64) -> Self {
        Self::status(
            200,
            &format!(r#"{{"access_token":"{token}","expires_on":"{expires_on}","token_type":"Bearer"}}"#),
        )
    }

    pub(super) fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    pub(super) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(super) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// What the endpoint was asked.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

pub(super) struct TokenServer {
    addr: std::net::SocketAddr,
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
    _server: ::test_support::Loopback,
}

impl TokenServer {
    pub(super) async fn start(answers: Vec<Answer>) -> Self {
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let route = {
            let (answers, seen, hits) = (answers.clone(), seen.clone(), hits.clone());
            warp::path::full()
                .and(warp::query::raw().or(warp::any().map(String::new)).unify())
                .and(warp::header::headers_cloned())
                .and(warp::body::bytes())
                .then(
                    move |path: warp::path::FullPath, query: String, headers: HeaderMap, body: Bytes| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        seen.lock().unwrap().push(Seen {
                            path: path.as_str().to_owned(),
                            query,
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        let answer = {
                            let mut queue = answers.lock().unwrap();
                            if queue.len() > 1 {
                                queue.pop_front()
                            } else {
                                queue.front().cloned()
                            }
                        }
                        .unwrap_or_else(|| Answer::status(500, "{}"));
                        async move {
                            tokio::time::sleep(answer.delay).await;
                            let mut reply = warp::http::Response::builder()
                                .status(StatusCode::from_u16(answer.status).unwrap())
                                .header("content-type", "application/json");
                            if let Some(secs) = answer.retry_after {
                                reply = reply.header("retry-after", secs.to_string());
                            }
                            reply.body(answer.body).unwrap()
                        }
                    },
                )
        };
        let server = ::test_support::serve(route).await;
        let addr = server.addr;
        Self {
            addr,
            answers,
            seen,
            hits,
            _server: server,
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(super) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(super) fn set_answers(&self, answers: Vec<Answer>) {
        *self.answers.lock().unwrap() = VecDeque::from(answers);
    }
}

/// Seconds since the Unix epoch.
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
