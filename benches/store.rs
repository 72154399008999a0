//! Store ceilings (#15/#16), a plain timing program (not criterion: each figure needs its own set-up):
//! the bare rate of the send transaction (message + outbox row) in a loop, history page latency with
//! 1 000 000 stored messages, sync latency for a user in 50 conversations with 1 000 missed messages, and
//! notification fan-out to 10 000 users — on SQLite (a temp file) and, when
//! `WPS_TEST_POSTGRES_URL` is set (`eval "$(PG_DURABLE=1 scripts/postgres.sh env)"`), on PostgreSQL.
//! Run: `cargo bench --bench store`. Tunables: STORE_BENCH_SECONDS (3), STORE_BENCH_HISTORY_ROWS
//! (1000000), STORE_BENCH_ONLY (a comma list of `send`, `fanout`, `sync`, `history`; default all).
//! `STORE_BENCH_ONLY=send` is the send transaction's rate alone: the ceiling `scripts/bench.sh durable` reads
//! the end-to-end sends against (SQLite's file goes in `TMPDIR`).
//! Every loop is bounded in count and time.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor};
use webpubsub_control::store::messages::{Page, Sender};
use webpubsub_control::store::notifications::Audience;
use webpubsub_control::store::sync::SyncResult;
use webpubsub_control::store::{Backend, PoolOptions, Store, StoreConnectionString};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn send_rate(store: &Store, seconds: u64) {
    store
        .create_conversation(Some("bench-send"), None, &["alice".to_owned()])
        .await
        .unwrap();
    let body = json!({"text": "hello, a typical short chat message"});
    let (start, deadline) = (Instant::now(), Duration::from_secs(seconds));
    let mut n = 0u64;
    while start.elapsed() < deadline && n < 10_000_000 {
        store
            .send_message("bench-send", Sender::Member("alice"), None, &body)
            .await
            .unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("  send transaction (message + outbox row), one task: {rate:.0}/s ({n} sends)");
}

/// Seeds `rows` messages in one conversation with one set-based INSERT, then times history pages.
async fn history_latency(store: &Store, conn: &StoreConnectionString, raw_url: &str, rows: i64) {
    store
        .create_conversation(Some("bench-history"), None, &["alice".to_owned()])
        .await
        .unwrap();
    let seed = match conn.backend() {
        Backend::Postgres => "INSERT INTO messages (conversation_id, seq, id, sender, system, body, created_at) \
             SELECT 'bench-history', n, 'm' || n, 'alice', 0, '\"x\"', n FROM generate_series(1, $1) AS n"
            .to_owned(),
        Backend::Sqlite => "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) \
             INSERT INTO messages (conversation_id, seq, id, sender, system, body, created_at) \
             SELECT 'bench-history', n, 'm' || n, 'alice', 0, '\"x\"', n FROM s"
            .to_owned(),
    };
    let started = Instant::now();
    let mut db = sqlx::AnyConnection::connect(raw_url).await.unwrap();
    sqlx::query(&seed).bind(rows).execute(&mut db).await.unwrap();
    sqlx::query("UPDATE conversations SET last_seq = $1 WHERE id = 'bench-history'")
        .bind(rows)
        .execute(&mut db)
        .await
        .unwrap();
    if conn.backend() == Backend::Postgres {
        db.execute("ANALYZE messages").await.unwrap();
    }
    println!("  seeded {rows} messages in {:.1} s", started.elapsed().as_secs_f64());
    let mut times = Vec::new();
    let mut x: i64 = 12345;
    for i in 0..2000 {
        x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
        let page = match i % 3 {
            0 => Page::Latest,
            1 => Page::Before(1 + x % rows),
            _ => Page::After(x % rows),
        };
        let t = Instant::now();
        store.history("bench-history", page, 50).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "  history page (limit 50) at {rows} messages: p50 {:?}, p99 {:?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
}

async fn fan_out(store: &Store, users: usize) {
    let audience = Audience::Users((0..users).map(|i| format!("user-{i}")).collect());
    let mut best = f64::MAX;
    for round in 0..3 {
        let t = Instant::now();
        store
            .create_notification(None, &audience, &json!({"round": round}), false)
            .await
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let rate = users as f64 / best;
    println!(
        "  notification fan-out to {users} users (feed + outbox rows): best of 3 {best:.3} s = {rate:.0} user-notifications/s"
    );
}

/// A reader in 50 conversations misses 1 000 messages (20 each); one `sync` from its last position, limit
/// 1 000, returns them all. Timed over at most 300 calls or 20 s.
async fn sync_latency(store: &Store) {
    let members = ["reader".to_owned(), "writer".to_owned()];
    for c in 0..50 {
        store
            .create_conversation(Some(&format!("bench-sync-{c}")), None, &members)
            .await
            .unwrap();
    }
    let since = store.sync("reader", None, 100).await.unwrap().next;
    let body = json!({"text": "missed while offline"});
    for i in 0..1000 {
        let conversation = format!("bench-sync-{}", i % 50);
        store
            .send_message(&conversation, Sender::Member("writer"), None, &body)
            .await
            .unwrap();
    }
    let (start, mut times, mut last) = (Instant::now(), Vec::new(), None);
    while times.len() < 300 && start.elapsed() < Duration::from_secs(20) {
        let t = Instant::now();
        let result = store.sync("reader", Some(&since), 1000).await.unwrap();
        times.push(t.elapsed());
        let messages: usize = result.conversations.iter().map(|c| c.messages.len()).sum();
        assert_eq!(messages, 1000, "one sync returns every missed message");
        last = Some(result);
    }
    times.sort();
    println!(
        "  sync, 50 conversations, 1 000 missed messages in one call: p50 {:?}, p99 {:?} ({} calls)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.len()
    );
    sync_json_costs(&last.expect("at least one call"));
}

/// The JSON work around one such answer, timed apart (p50 of 100): parsing the 1 000 stored bodies (inside
/// `sync`) and building + serialising the 1 000 message frames (what the route does after `sync`).
fn sync_json_costs(result: &SyncResult) {
    let messages: Vec<_> = result.conversations.iter().flat_map(|c| &c.messages).collect();
    let stored: Vec<String> = messages.iter().map(|m| m.body.to_string()).collect();
    let median = |mut times: Vec<Duration>| {
        times.sort();
        percentile(&times, 0.5)
    };
    let parse = median(
        (0..100)
            .map(|_| {
                let t = Instant::now();
                for text in &stored {
                    std::hint::black_box(serde_json::from_str::<serde_json::Value>(text).unwrap());
                }
                t.elapsed()
            })
            .collect(),
    );
    let serialise = median(
        (0..100)
            .map(|_| {
                let t = Instant::now();
                let frames: Vec<_> = messages.iter().map(|m| m.frame()).collect();
                std::hint::black_box(serde_json::to_vec(&frames).unwrap());
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "    of which parsing the 1 000 stored bodies: {parse:?}; after it, 1 000 frames built + serialised: {serialise:?}"
    );
}

async fn run(conn: StoreConnectionString, raw_url: &str, label: &str) {
    println!("{label}:");
    let store = Store::open(&conn, PoolOptions::default()).await.expect("open store");
    let only = std::env::var("STORE_BENCH_ONLY").unwrap_or_default();
    let wanted = |figure: &str| only.is_empty() || only.split(',').any(|f| f.trim() == figure);
    if wanted("send") {
        send_rate(&store, env_or("STORE_BENCH_SECONDS", 3)).await;
    }
    if wanted("fanout") {
        fan_out(&store, 10_000).await;
    }
    if wanted("sync") {
        sync_latency(&store).await;
    }
    if wanted("history") {
        history_latency(&store, &conn, raw_url, env_or("STORE_BENCH_HISTORY_ROWS", 1_000_000)).await;
    }
    store.close().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let path = std::env::temp_dir().join(format!("wps-store-bench-{}.db", std::process::id()));
        let raw = format!("sqlite:{}", path.display());
        let sqlite = StoreConnectionString::parse(&raw).unwrap();
        run(sqlite, &format!("{raw}?mode=rwc"), "SQLite (WAL, synchronous=NORMAL)").await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        match std::env::var(test_support::postgres::URL_ENV) {
            Ok(base) => {
                let raw = test_support::postgres::fresh_database(&base, "bench").await;
                let conn = StoreConnectionString::parse(&raw).expect("connection string");
                run(conn, &raw, "PostgreSQL").await;
            }
            Err(_) => println!("PostgreSQL: skipped (WPS_TEST_POSTGRES_URL unset; see scripts/postgres.sh)"),
        }
    });
}
