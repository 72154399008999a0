//! Load program for the emulator: opens many WebSocket clients in one group, publishes to the
//! group from another client, and reports connection rate, emulator memory and fan-out
//! latency. Loopback only; every phase is bounded in count and time.
//!
//! ```text
//! cargo run --release -p webpubsub-emulator --example load -- --connections 10000 --broadcasts 20
//! ```
//!
//! The emulator runs in a child process (this same executable with `--serve`), so client and
//! server sockets are split across two processes' descriptor limits (each needs about one
//! descriptor per connection; raise `ulimit -n` if the limit is below that).

use std::io::{BufRead as _, Read as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use webpubsub_emulator::service;

const HUB: &str = "load";
const GROUP: &str = "everyone";
const KEY: &str = "load-test-access-key-0123456789-0123456789";
const MAX_CONNECTIONS: usize = 20_000;
const MAX_BROADCASTS: usize = 10_000;

struct Options {
    connections: usize,
    broadcasts: usize,
    payload_bytes: usize,
    time_limit: Duration,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        connections: 1000,
        broadcasts: 20,
        payload_bytes: 64,
        time_limit: Duration::from_secs(300),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match flag.as_str() {
            "--connections" => options.connections = number("--connections")?.clamp(1, MAX_CONNECTIONS),
            "--broadcasts" => options.broadcasts = number("--broadcasts")?.clamp(1, MAX_BROADCASTS),
            "--payload-bytes" => options.payload_bytes = number("--payload-bytes")?.clamp(1, 512 * 1024),
            "--time-limit-secs" => {
                options.time_limit = Duration::from_secs(number("--time-limit-secs")?.clamp(10, 3600) as u64)
            }
            other => {
                return Err(format!(
                    "unknown argument '{other}' (use --connections N --broadcasts M --payload-bytes B --time-limit-secs S)"
                ));
            }
        }
    }
    Ok(options)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        serve_child();
        return;
    }
    let options = match parse_options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let time_limit = options.time_limit;
    match runtime.block_on(async { tokio::time::timeout(time_limit, drive(options)).await }) {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("error: time limit reached");
            std::process::exit(1);
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
}

/// Child mode: run the emulator on 127.0.0.1:0, print the port, stop when stdin closes.
fn serve_child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("PORT {}", listener.local_addr().expect("addr").port());
        let config = webpubsub_emulator::EmulatorConfig {
            access_key: KEY.into(),
            ..Default::default()
        };
        let shutdown = async {
            // The parent holds our stdin; its exit (or drop) ends the emulator.
            let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
        };
        if let Err(error) = webpubsub_emulator::run(listener, config, shutdown).await {
            eprintln!("emulator error: {error}");
        }
    });
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn client_url(port: u16, user: &str, roles: &[&str], groups: &[&str]) -> String {
    let audience = format!("http://127.0.0.1:{port}/client/hubs/{HUB}");
    let key = webpubsub_protocol::AccessKey::new(KEY).expect("the load key is not empty");
    let token = service::client_token(&key, &audience, Some(user), roles, groups, 3600);
    format!("ws://127.0.0.1:{port}/client/hubs/{HUB}?access_token={token}")
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_json(url: &str) -> Result<Socket, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "json.webpubsub.azure.v1".parse().unwrap());
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    // The `connected` system message.
    match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(socket),
        _ => Err("no connected message".to_owned()),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn drive(options: Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--serve")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the emulator child: {e}"))?;
    let child_pid = child.id();
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let port: u16 = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        lines.find_map(|l| l.ok()?.strip_prefix("PORT ")?.trim().parse().ok())
    })
    .await
    .map_err(|e| e.to_string())?
    .ok_or("the emulator child did not report its port")?;
    let result = measure(&options, port, child_pid).await;
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn measure(options: &Options, port: u16, child_pid: u32) -> Result<(), String> {
    println!(
        "emulator on 127.0.0.1:{port} (pid {child_pid}); {} connections, {} broadcasts of {} bytes",
        options.connections, options.broadcasts, options.payload_bytes
    );
    let idle_rss = rss_kib(child_pid);

    // Phase 1: connect everyone (joined to the group through the token), 256 at a time.
    let (arrivals_tx, mut arrivals_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let url = client_url(port, &format!("user{i}"), &[], &[GROUP]);
        let (gate, opened, failed, arrivals) = (gate.clone(), opened.clone(), failed.clone(), arrivals_tx.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let socket = match open_json(&url).await {
                Ok(socket) => socket,
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            drop(permit);
            opened.fetch_add(1, Ordering::Relaxed);
            let (_sink, mut stream) = socket.split();
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    let received = Instant::now();
                    if let Some(seq) = serde_json::from_str::<serde_json::Value>(text.as_str())
                        .ok()
                        .and_then(|v| v["data"]["seq"].as_u64())
                    {
                        let _ = arrivals.send((seq as usize, received));
                    }
                }
            }
        }));
    }
    drop(arrivals_tx);
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < options.connections
        && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_time = started.elapsed();
    let connected = opened.load(Ordering::Relaxed);
    println!(
        "connections: {connected} open, {} failed, in {:.2} s ({:.0}/s)",
        failed.load(Ordering::Relaxed),
        connect_time.as_secs_f64(),
        connected as f64 / connect_time.as_secs_f64().max(1e-9)
    );
    if let (Some(idle), Some(busy)) = (idle_rss, rss_kib(child_pid)) {
        println!(
            "emulator RSS: {:.1} MiB idle, {:.1} MiB with connections ({:.1} KiB per connection)",
            idle as f64 / 1024.0,
            busy as f64 / 1024.0,
            busy.saturating_sub(idle) as f64 / connected.max(1) as f64
        );
    }

    // Phase 2: a publisher client sends to the group; every member should get every message.
    let publisher_url = client_url(port, "publisher", &["webpubsub.sendToGroup"], &[]);
    let mut publisher = open_json(&publisher_url).await?;
    let padding = "x".repeat(options.payload_bytes);
    let mut sent_at = Vec::with_capacity(options.broadcasts);
    let mut latencies = Vec::with_capacity(options.broadcasts * connected);
    let mut fan_out = Vec::with_capacity(options.broadcasts);
    let mut delivered = 0usize;
    for seq in 0..options.broadcasts {
        let frame =
            serde_json::json!({"type":"sendToGroup","group":GROUP,"ackId":seq + 1,"data":{"seq":seq,"pad":padding}});
        sent_at.push(Instant::now());
        publisher
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        // Wait for this broadcast to reach everyone (bounded), so runs do not overlap.
        let mut received = 0usize;
        let mut last = sent_at[seq];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while received < connected {
            match tokio::time::timeout_at(deadline, arrivals_rx.recv()).await {
                Ok(Some((arrival_seq, at))) if arrival_seq == seq => {
                    received += 1;
                    latencies.push(at - sent_at[seq]);
                    last = last.max(at);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        delivered += received;
        fan_out.push(last - sent_at[seq]);
        // Consume the publisher's ack so its socket does not back up.
        let _ = tokio::time::timeout(Duration::from_secs(5), publisher.next()).await;
    }
    latencies.sort();
    fan_out.sort();
    println!(
        "broadcasts: delivered {delivered}/{} ({} lost)",
        options.broadcasts * connected,
        options.broadcasts * connected - delivered
    );
    println!(
        "per-message latency: p50 {} p90 {} p99 {} max {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0))
    );
    println!(
        "full fan-out (last member): p50 {} max {}",
        ms(percentile(&fan_out, 0.5)),
        ms(percentile(&fan_out, 1.0))
    );
    if let Some(busy) = rss_kib(child_pid) {
        println!("emulator RSS after broadcasts: {:.1} MiB", busy as f64 / 1024.0);
    }
    for task in tasks {
        task.abort();
    }
    Ok(())
}
