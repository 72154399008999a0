//! The durable store (#15, #16): conversations, members, messages with a per-conversation gap-free `seq`,
//! the transactional outbox, read markers, per-user notifications, live connections and sync positions.
//!
//! One [`Store`] wraps a sqlx `Any` pool on SQLite (bundled, the embedded default) or PostgreSQL (shared by
//! every instance). The SQL is written once with `$n` parameters and portable types (BIGINT Unix
//! milliseconds, JSON as TEXT); the few places the backends differ (claim locking) branch on [`Backend`].
//! Migrations (`migrations/<backend>/`) are compiled in and applied by [`Store::open`] under a lock: a
//! PostgreSQL advisory lock, or on SQLite a write transaction held around the whole run.
//!
//! Layout: [`settings`] (the connection string), [`error`] ([`StoreError`]), [`conversations`],
//! [`messages`] (send + history), [`outbox`]; for #16 [`read_state`], [`notifications`], [`presence`] (live
//! connections), [`sync`] and [`cursor`] (the signed sync cursor and its shared key).

pub mod conversations;
pub mod cursor;
pub mod error;
pub mod messages;
pub mod notifications;
pub mod outbox;
pub mod presence;
pub mod read_state;
pub mod settings;
pub mod sync;

#[cfg(test)]
pub(crate) mod tests;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use error::StoreError;
pub use settings::{Backend, ConnectionStringError, StoreConnectionString};

/// Result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Longest a caller waits for a pooled connection before the store counts as unavailable (→ 503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SQLite waits on another writer before giving up with BUSY.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// The durable store: cheap to clone (shared pools).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where every write runs ([`Store::writer`]). SQLite has one write lock per database: a one-connection
    /// pool queues this process's writers in order, where separate connections would each poll the lock in
    /// SQLite's busy handler, sleeping 1–100 ms per miss (measured under `scripts/bench.sh durable`: most of
    /// a send's wall time). PostgreSQL locks rows, not the database: the same pool as reads.
    writer: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    /// Only the backend and pool size: nothing that could lead to the connection string.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("connections", &self.pool.size())
            .finish()
    }
}

/// Pool size knobs; the defaults suit one Functions instance.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most connections this instance opens.
    pub max_connections: u32,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_connections: 8 }
    }
}

impl Store {
    /// Connects, and applies the embedded migrations under a lock so instances starting together don't race.
    pub async fn open(conn: &StoreConnectionString, options: PoolOptions) -> StoreResult<Self> {
        install_default_drivers();
        let backend = conn.backend();
        let connect = |max_connections: u32| {
            AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL: readers never block the writer; NORMAL sync is durable across crashes in WAL.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            // Still needed: another process (a second handler, a migration) may hold the lock.
                            conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
                                .await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                        }
                        Ok(())
                    })
                })
                .connect(conn.expose_url())
        };
        let pool = connect(options.max_connections.max(1)).await?;
        let writer = match backend {
            Backend::Sqlite => connect(1).await?,
            Backend::Postgres => pool.clone(),
        };
        let store = Self { pool, writer, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pools (waits for checked-out connections).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Where reads run.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where a write outside [`Store::write_tx`] runs (one statement, autocommit): on SQLite the single
    /// writer connection, so it queues behind transactions instead of polling the lock.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// A write transaction. SQLite: `BEGIN IMMEDIATE`, so the single write lock is taken up front and a read
    /// inside never has to upgrade (which could fail with BUSY_SNAPSHOT under WAL). PostgreSQL: READ COMMITTED,
    /// with row locks taken explicitly where an order matters.
    pub(crate) async fn write_tx(&self) -> StoreResult<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    async fn migrate(&self) -> StoreResult<()> {
        let migrator = migrator(self.backend);
        match self.backend {
            Backend::Postgres => {
                // sqlx's PostgreSQL migrator holds pg_advisory_lock(<id of the database>) for the whole run.
                let mut conn = self.pool.acquire().await?;
                migrator.run_direct(&mut *conn).await?;
            }
            Backend::Sqlite => {
                // SQLite has no advisory lock: take the write lock first (the dummy write) and keep the
                // transaction open across the run, so a second process waits and then finds everything applied.
                sqlx::query("CREATE TABLE IF NOT EXISTS store_migration_lock (id INTEGER PRIMARY KEY)")
                    .execute(&self.pool)
                    .await?;
                let mut tx = self.pool.begin().await?;
                sqlx::query("INSERT OR REPLACE INTO store_migration_lock (id) VALUES (1)")
                    .execute(&mut *tx)
                    .await?;
                migrator.run_direct(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

/// An idempotent INSERT inserted nothing because a concurrent writer stored the same id first: rolls `tx`
/// back, then answers what the winner stored (`load` runs only after the rollback; gone → `NotFound(what)`).
pub(crate) async fn lost_race<T>(
    tx: Transaction<'static, Any>,
    what: &'static str,
    load: impl Future<Output = StoreResult<Option<T>>>,
) -> StoreResult<T> {
    tx.rollback().await?;
    load.await?.ok_or(StoreError::NotFound(what))
}

/// The migrations compiled into the binary for one backend.
fn migrator(backend: Backend) -> Migrator {
    let sql = match backend {
        Backend::Sqlite => include_str!("../../migrations/sqlite/0001_durable.sql"),
        Backend::Postgres => include_str!("../../migrations/postgres/0001_durable.sql"),
    };
    let migrations = vec![Migration::new(
        1,
        Cow::Borrowed("durable"),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        false,
    )];
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A new server-chosen id: a time-ordered UUIDv7 in its hyphenated form.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Conversation ids (caller-chosen) must be 1..=128 of `A-Z a-z 0-9 - _ . ~`: safe in the group name
/// `conversation:{id}` and in a URL path segment without escaping.
pub fn is_valid_conversation_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

/// User ids: the one rule negotiate applies too (1..=256 characters, no control characters, not only
/// whitespace).
pub fn is_valid_user_id(id: &str) -> bool {
    crate::auth::validate_user_id(id).is_ok()
}

/// Message and notification ids chosen by a caller: same rules as conversation ids.
pub fn is_valid_item_id(id: &str) -> bool {
    is_valid_conversation_id(id)
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-11-29T17:40:43.123Z`), the
/// `createdAt` of replies and frames.
pub fn rfc3339_ms(ms: i64) -> String {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn rfc3339_known_answers() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn id_rules() {
        assert!(is_valid_conversation_id("room-1_a.b~c"));
        assert!(!is_valid_conversation_id("a b") && !is_valid_conversation_id("") && !is_valid_conversation_id("a:b"));
        assert!(is_valid_user_id("Ünïcode user") && !is_valid_user_id("  ") && !is_valid_user_id("a\nb"));
    }
}
