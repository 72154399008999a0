//! The emulator's keep-alive sockets to event handlers: a burst of concurrent events may open
//! many, but idle ones are closed promptly (bounded idle pool, short idle timeout) instead of
//! lingering for minutes after the clients left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use webpubsub_emulator::{EmulatorConfig, EventHandlerConfig, HubConfig};

use crate::support::*;

/// A local event handler that counts its open TCP connections. User events are answered
/// 204 after `delay`, so concurrent events need concurrent sockets.
struct CountingUpstream {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingUpstream {
    async fn start(delay: Duration) -> CountingUpstream {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (counter, highest) = (open.clone(), peak.clone());
        let task = tokio::spawn(async move {
            // Bounded: the test opens at most a few dozen sockets.
            for _ in 0..1000 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
                highest.fetch_max(now, Ordering::SeqCst);
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| async move {
                        let mut response = hyper::Response::new(String::new());
                        if request.method() == hyper::Method::OPTIONS {
                            response
                                .headers_mut()
                                .insert("WebHook-Allowed-Origin", hyper::header::HeaderValue::from_static("*"));
                        } else {
                            tokio::time::sleep(delay).await;
                            *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingUpstream { addr, open, peak, task }
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn idle_upstream_sockets_are_closed_promptly() {
    const CLIENTS: usize = 24;
    const MAX_IDLE: usize = 4;
    let upstream = CountingUpstream::start(Duration::from_millis(300)).await;
    let emulator = start(EmulatorConfig {
        hubs: vec![HubConfig {
            hub: "chat".into(),
            event_handlers: vec![EventHandlerConfig {
                url_template: format!("http://{}/upstream/{{event}}", upstream.addr),
                system_events: Vec::new(),
                user_event_pattern: Some("*".into()),
            }],
        }],
        upstream_pool_max_idle: MAX_IDLE,
        upstream_pool_idle_timeout: Duration::from_millis(500),
        ..config()
    })
    .await;

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (socket, _) = emulator.connect_json("chat", Some(&format!("u{i}")), &[]).await;
        clients.push(socket);
    }
    // Every client sends one event at once, so the emulator needs many sockets together.
    for socket in &mut clients {
        send_json(socket, json!({"type":"event","event":"burst","data":1,"ackId":1})).await;
    }
    for socket in &mut clients {
        let ack = next_json(socket).await;
        assert_eq!(ack["success"], true, "{ack}");
    }
    assert!(
        upstream.peak.load(Ordering::SeqCst) > MAX_IDLE,
        "the burst should need more than {MAX_IDLE} sockets (peak {})",
        upstream.peak.load(Ordering::SeqCst)
    );
    drop(clients);
    // At most MAX_IDLE stay pooled once the burst is over, and those go after the idle timeout.
    eventually("the idle pool to shrink to its bound", || upstream.open() <= MAX_IDLE).await;
    eventually("idle upstream sockets to close", || upstream.open() == 0).await;
}
