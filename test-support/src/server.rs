//! Loopback servers for tests: a warp route served on `127.0.0.1:0` (never another interface) until the
//! returned [`Loopback`] is dropped, which stops it gracefully.

use std::net::SocketAddr;

use tokio::sync::oneshot;
use warp::{Filter, Rejection, Reply};

/// A running loopback server; dropping it stops the server.
#[derive(Debug)]
pub struct Loopback {
    /// The bound address (`127.0.0.1` and the port the system chose).
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Loopback {
    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Serves `route` on `127.0.0.1:0` in a spawned task (call from within a tokio runtime).
pub async fn serve<F, R>(route: F) -> Loopback
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    serve_on(listener, route)
}

/// Serves `route` on `listener` (bound by the caller, on loopback) in a spawned task.
pub(crate) fn serve_on<F, R>(listener: tokio::net::TcpListener, route: F) -> Loopback
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let addr = listener.local_addr().expect("a bound listener has an address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(route)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    Loopback { addr, _stop: stop }
}
