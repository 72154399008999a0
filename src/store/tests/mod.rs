//! The store test-suite, run against BOTH backends: every test body is an `async fn(TestDb)` and
//! [`both_backends!`] makes a `sqlite::<name>` (temp file) and a `postgres::<name>` (a fresh database in the
//! cluster named by `WPS_TEST_POSTGRES_URL`) test of it. Without that variable the PostgreSQL tests fail with
//! a message saying how to start the cluster (`scripts/postgres.sh`); they never skip.

mod conversations;
mod messages;
mod notifications;
mod outbox;
mod read_state;
mod sync;

use std::path::PathBuf;

use serde_json::Value;

use super::messages::{Sender, Sent};
use super::notifications::Audience;
use super::{PoolOptions, Store, StoreConnectionString};

/// One empty database for one test; [`TestDb::open`] can be called again for a second "instance".
pub(crate) struct TestDb {
    pub conn: StoreConnectionString,
    file: Option<PathBuf>,
}

impl TestDb {
    /// A new SQLite file in the temp directory (removed on drop).
    pub(crate) async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("wps-store-{}.db", super::new_id()));
        let conn = StoreConnectionString::parse(&format!("sqlite:{}", path.display())).unwrap();
        Self { conn, file: Some(path) }
    }

    /// A new database in the test cluster.
    pub(super) async fn postgres() -> Self {
        let url = ::test_support::postgres::fresh_database(&::test_support::postgres::base_url(), "t").await;
        Self {
            conn: StoreConnectionString::parse(&url).unwrap(),
            file: None,
        }
    }

    /// Opens (and migrates) a store on this database: a new pool, as another instance would.
    pub(super) async fn open(&self) -> Store {
        Store::open(&self.conn, PoolOptions { max_connections: 4 })
            .await
            .expect("open store")
    }

    /// Opens a store with conversation `id` (no title) of `members`: the set-up most tests start from.
    pub(crate) async fn with_conversation(&self, id: &str, members: &[&str]) -> Store {
        let store = self.open().await;
        conversation(&store, id, members).await;
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// Owned member lists for `create_conversation`.
pub(super) fn users(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Creates conversation `id` (no title) of `members`.
pub(super) async fn conversation(store: &Store, id: &str, members: &[&str]) {
    store
        .create_conversation(Some(id), None, &users(members))
        .await
        .unwrap();
}

/// Member `sender` sends `body` into `conversation_id` (server-chosen message id).
pub(crate) async fn send(store: &Store, conversation_id: &str, sender: &str, body: Value) -> Sent {
    send_as(store, conversation_id, Sender::Member(sender), body).await
}

/// `sender` (a member or the trusted door) sends `body` into `conversation_id` (server-chosen message id).
pub(crate) async fn send_as(store: &Store, conversation_id: &str, sender: Sender<'_>, body: Value) -> Sent {
    store.send_message(conversation_id, sender, None, &body).await.unwrap()
}

/// Notifies `recipients` with `data` (server-chosen id, no offline webhook).
pub(super) async fn notify(store: &Store, recipients: &[&str], data: Value) {
    store
        .create_notification(None, &Audience::Users(users(recipients)), &data, false)
        .await
        .unwrap();
}

/// `both_backends!(a, b)` → `sqlite::a`, `postgres::a`, `sqlite::b`, … each calling `a(TestDb)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::store::tests::TestDb::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::store::tests::TestDb::postgres().await).await
                }
            )*
        }
    };
}
pub(crate) use both_backends;
