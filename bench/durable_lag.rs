//! Outbox lag probe for `scripts/bench.sh durable` (#15): a real WebSocket client of the emulator, connected
//! with the URL the handler's `negotiate` gives a member (whose token carries the `conversation:{id}`
//! group), receives the live frames of one conversation while this program sends to it through the
//! handler (`POST /api/conversations/{id}/messages`, `X-User-Id`, a unique client id per message).
//!
//! - lag mode (default): sends `--count` messages at `--rate` per second (each POST on its own task, so a
//!   slow answer does not delay the schedule) and measures every message two ways: **stamp → frame**, the
//!   frame's arrival (wall clock) minus the message's `createdAt` (stamped by the handler just before its
//!   transaction begins, so it slightly overstates commit → emulator accepted → client got it), and
//!   **POST start → frame** (monotonic clock; a conservative upper bound that adds the HTTP request).
//!   Prints `RESULT lag ...` with p50/p99/max of both.
//! - `--listen-secs N`: only listens (the subscriber the wrk load broadcasts to), counting frames until
//!   `--idle-secs` pass without one or N seconds are up; prints `RESULT listen frames=<n>`.
//!
//! Both modes first send one warm-up message and wait for its frame, then print `READY` (the subscription
//! is live). Every loop is bounded in count and time; loopback only.
//!
//! ```text
//! cargo run --release --example durable_lag -- --handler http://127.0.0.1:7071 --conversation c1 \
//!     --user alice --rate 50 --count 1000
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const MAX_COUNT: usize = 100_000;
/// Longest the whole program runs, whatever the flags say.
const HARD_LIMIT: Duration = Duration::from_secs(600);
/// How long, after the last send, the probe waits for frames still in flight.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

struct Options {
    handler: String,
    conversation: String,
    user: String,
    rate: f64,
    count: usize,
    listen_secs: Option<u64>,
    idle_secs: u64,
}

fn parse_options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        handler: String::new(),
        conversation: String::new(),
        user: "alice".into(),
        rate: 50.0,
        count: 1000,
        listen_secs: None,
        idle_secs: 2,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| text.parse::<f64>().map_err(|_| format!("{flag} needs a number"));
        match flag.as_str() {
            "--handler" => options.handler = value()?,
            "--conversation" => options.conversation = value()?,
            "--user" => options.user = value()?,
            "--rate" => options.rate = number(value()?)?.clamp(0.1, 10_000.0),
            "--count" => options.count = (number(value()?)? as usize).clamp(1, MAX_COUNT),
            "--listen-secs" => options.listen_secs = Some((number(value()?)? as u64).clamp(1, 600)),
            "--idle-secs" => options.idle_secs = (number(value()?)? as u64).clamp(1, 60),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.handler.is_empty() || options.conversation.is_empty() {
        return Err("--handler and --conversation are required".into());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("durable_lag: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(async { tokio::time::timeout(HARD_LIMIT, run(options)).await }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(message)) => {
            eprintln!("durable_lag: {message}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("durable_lag: gave up after {HARD_LIMIT:?}");
            ExitCode::FAILURE
        }
    }
}

/// When each message's frame arrived: (monotonic instant, wall-clock Unix ms, `createdAt` as Unix ms).
type Arrivals = Arc<Mutex<HashMap<String, (Instant, i64, i64)>>>;

async fn run(options: Options) -> Result<(), String> {
    let http = reqwest::Client::new();
    let socket = subscribe(&http, &options).await?;
    let arrivals: Arrivals = Arc::default();
    let reader = tokio::spawn(read_frames(socket, arrivals.clone()));

    let warm_up = format!("warm-up-{}", unique());
    send(&http, &messages_url(&options), &options.user, &warm_up).await?;
    wait_for(&arrivals, std::slice::from_ref(&warm_up), Duration::from_secs(10)).await;
    if !arrivals.lock().unwrap().contains_key(&warm_up) {
        return Err("the warm-up message's frame never arrived: is the client in the group?".into());
    }
    println!("READY");
    std::io::stdout().flush().ok();

    match options.listen_secs {
        Some(seconds) => listen(&arrivals, seconds, options.idle_secs).await,
        None => lag(&http, &options, &arrivals).await?,
    }
    reader.abort();
    Ok(())
}

/// Negotiates as the member and connects the plain WebSocket client (no subprotocol: a `json` group
/// message arrives as one text frame holding the JSON).
async fn subscribe(
    http: &reqwest::Client,
    options: &Options,
) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, String> {
    let negotiated: Value = http
        .get(format!("{}/api/negotiate?userId={}", options.handler, options.user))
        .send()
        .await
        .map_err(|e| format!("negotiate: {e}"))?
        .json()
        .await
        .map_err(|e| format!("negotiate answer: {e}"))?;
    let url = negotiated["url"].as_str().ok_or("negotiate answered no url")?;
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "WebSocket connect timed out")?
        .map_err(|e| format!("WebSocket connect: {e}"))?;
    Ok(socket)
}

async fn read_frames(
    mut socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    arrivals: Arrivals,
) {
    while let Some(Ok(frame)) = socket.next().await {
        let (at, wall) = (Instant::now(), unix_ms());
        let Message::Text(text) = frame else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let (Some(id), Some(created)) = (
            frame["id"].as_str(),
            frame["createdAt"].as_str().and_then(parse_rfc3339_ms),
        ) else {
            continue;
        };
        arrivals.lock().unwrap().insert(id.to_owned(), (at, wall, created));
    }
}

fn messages_url(options: &Options) -> String {
    format!(
        "{}/api/conversations/{}/messages",
        options.handler, options.conversation
    )
}

async fn send(http: &reqwest::Client, url: &str, user: &str, id: &str) -> Result<(), String> {
    let response = http
        .post(url)
        .header("X-User-Id", user)
        .json(&json!({"id": id, "body": {"text": "lag probe"}}))
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    match response.status().as_u16() {
        201 => Ok(()),
        status => Err(format!(
            "send answered {status}: {}",
            response.text().await.unwrap_or_default()
        )),
    }
}

async fn wait_for(arrivals: &Arrivals, ids: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ids.iter().all(|id| arrivals.lock().unwrap().contains_key(id)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn listen(arrivals: &Arrivals, seconds: u64, idle_secs: u64) {
    let (start, limit, idle) = (
        Instant::now(),
        Duration::from_secs(seconds),
        Duration::from_secs(idle_secs),
    );
    let (mut seen, mut last_change) = (arrivals.lock().unwrap().len(), Instant::now());
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = arrivals.lock().unwrap().len();
        if now != seen {
            (seen, last_change) = (now, Instant::now());
        } else if seen > 1 && last_change.elapsed() >= idle {
            break;
        }
    }
    // The warm-up message is not counted.
    println!("RESULT listen frames={}", seen.saturating_sub(1));
}

async fn lag(http: &reqwest::Client, options: &Options, arrivals: &Arrivals) -> Result<(), String> {
    let prefix = format!("lag-{}", unique());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut started, mut tasks) = (Vec::with_capacity(options.count), Vec::with_capacity(options.count));
    for n in 0..options.count {
        ticker.tick().await;
        let id = format!("{prefix}-{n}");
        started.push((id.clone(), Instant::now()));
        let (http, url, user) = (http.clone(), messages_url(options), options.user.clone());
        tasks.push(tokio::spawn(async move { send(&http, &url, &user, &id).await }));
    }
    for task in tasks {
        task.await.map_err(|e| format!("send task: {e}"))??;
    }
    let ids: Vec<String> = started.iter().map(|(id, _)| id.clone()).collect();
    wait_for(arrivals, &ids, DRAIN_WAIT).await;

    let arrivals = arrivals.lock().unwrap();
    let (mut stamp, mut post) = (Vec::new(), Vec::new());
    for (id, sent) in &started {
        if let Some((at, wall, created)) = arrivals.get(id) {
            stamp.push((wall - created) as f64);
            post.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    let missing = options.count - stamp.len();
    stamp.sort_by(f64::total_cmp);
    post.sort_by(f64::total_cmp);
    let (p, q) = (percentiles(&stamp), percentiles(&post));
    println!(
        "RESULT lag count={} rate={} received={} missing={missing} stamp_p50_ms={:.1} stamp_p99_ms={:.1} \
         stamp_max_ms={:.1} post_p50_ms={:.2} post_p99_ms={:.2} post_max_ms={:.2}",
        options.count,
        options.rate,
        stamp.len(),
        p.0,
        p.1,
        p.2,
        q.0,
        q.1,
        q.2
    );
    if missing > 0 {
        return Err(format!("{missing} frames never arrived within {DRAIN_WAIT:?}"));
    }
    Ok(())
}

/// (p50, p99, max) of sorted values.
fn percentiles(sorted: &[f64]) -> (f64, f64, f64) {
    if sorted.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let at = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.99), sorted[sorted.len() - 1])
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn unique() -> String {
    format!("{}-{}", std::process::id(), unix_ms())
}

/// `2026-11-29T17:40:43.123Z` → Unix ms (the handler's `createdAt` format; checked by formatting it back).
fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[23] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, m, s, milli) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = (days * 86_400 + h * 3600 + m * 60 + s) * 1000 + milli;
    (webpubsub_control::store::rfc3339_ms(ms) == text).then_some(ms)
}
