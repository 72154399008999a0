//! A fresh PostgreSQL database for a test or a benchmark, in the throwaway cluster `scripts/postgres.sh`
//! starts (`WPS_TEST_POSTGRES_URL`): a new empty database per caller, so no other test's work (a drain, a
//! migration) touches its rows.

use sqlx::{Connection, Executor};

/// The variable that names the test cluster (`eval "$(bash scripts/postgres.sh env)"` sets it).
pub const URL_ENV: &str = "WPS_TEST_POSTGRES_URL";

/// The test cluster's URL; unset is a failure that says how to start the cluster, never a skip.
pub fn base_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{URL_ENV} is not set: the PostgreSQL tests need a server. Start the throwaway cluster with \
             `eval \"$(bash scripts/postgres.sh env)\"` (or run .ci/run), then run cargo again."
        )
    })
}

/// Creates a new, empty database `<prefix>_<unique>` in the cluster at `base` and returns its URL (`base`
/// with the database name as its path).
pub async fn fresh_database(base: &str, prefix: &str) -> String {
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL ({URL_ENV}): {e}"));
    let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("CREATE DATABASE");
    admin.close().await.ok();
    let mut url = url::Url::parse(base).unwrap_or_else(|e| panic!("{URL_ENV} is not a URL: {e}"));
    url.set_path(&name);
    url.into()
}
