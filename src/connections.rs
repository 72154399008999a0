//! The connection loop under the routes: HTTP/1.1 on an already bound listener, with every resource a
//! client can hold bounded (#14 item 2): how many connections are open, how large a request head may grow,
//! how long a head, an idle keep-alive connection and a body may take.
//!
//! The Functions host is the only legitimate client: it forwards requests over pooled keep-alive HTTP/1.1
//! connections from `127.0.0.1`, sends whole heads at once and bodies with a length. The [`Limits`] leave it
//! ample room while a trickling, idle or stalled client is cut off. Connection errors are the peer's doing
//! (malformed HTTP, a timeout, a reset), so they are logged at debug: no client can write error lines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use warp::Filter;
use warp::reply::Reply;

/// What one client may hold. [`Limits::default`] is what `handler` serves with; tests shorten the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head (request line and headers) must arrive whole within this time, counted from its first
    /// byte, or from the end of the previous answer on a keep-alive connection: so it is also how long an
    /// idle keep-alive connection stays open. The connection is closed without an answer.
    pub header_read_timeout: Duration,
    /// A request body must arrive whole within this time after its head; a handler still reading it then
    /// answers 408 `RequestTimeout` and the connection is closed.
    pub body_read_timeout: Duration,
    /// The largest request head, in bytes (hyper's read buffer; at least 8 192). A larger head is answered
    /// 431 and the connection closed, so a slow or hostile head holds at most this much memory.
    pub max_header_bytes: usize,
    /// Connections served at once. The next one waits in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
            max_connections: 1024,
        }
    }
}

/// Serves `filter` on `listener` within `limits` until `shutdown` resolves; then stops accepting and waits
/// for the open connections to finish their requests.
pub(crate) async fn serve<F, R>(
    listener: TcpListener,
    filter: F,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter<Extract = (R,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let service = hyper_util::service::TowerToHyperService::new(warp::service(filter));
    let body_read_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let request = request.map(|body| DeadlineBody::new(body, body_read_timeout));
        hyper::service::Service::call(&service, request)
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                if error.is_user() {
                    tracing::warn!(error = %error, "connection failed");
                } else {
                    tracing::debug!(error = %error, "connection closed");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A failed accept: per-connection failures (the peer already left) are skipped; running out of file
/// descriptors or memory is logged and retried after a pause instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %error, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Why a request body could not be read: it stalled past the deadline, or the connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyReadError {
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error(transparent)]
    Connection(#[from] hyper::Error),
}

impl BodyReadError {
    /// Whether `error` or one of its sources is a body that stalled past its deadline.
    pub(crate) fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(error) = next {
            if matches!(error.downcast_ref::<Self>(), Some(Self::TimedOut(_))) {
                return true;
            }
            next = error.source();
        }
        false
    }
}

/// A request body that fails with [`BodyReadError::TimedOut`] once its deadline passes. The timer is only
/// made when the body is not already there (the host's bodies usually arrive with the head).
struct DeadlineBody {
    body: Incoming,
    timeout: Duration,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl DeadlineBody {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body,
            timeout,
            deadline: Instant::now() + timeout,
            sleep: None,
            timed_out: false,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyReadError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(BodyReadError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timed_out = true;
                Poll::Ready(Some(Err(BodyReadError::TimedOut(this.timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
