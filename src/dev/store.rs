//! Where `handler dev` keeps durable conversations: a SQLite file under the data directory (`--data-dir`,
//! default [`DEFAULT_DATA_DIR`]) unless `StoreConnectionString` is set, so history survives a restart, and
//! how often the in-process `outbox` drain runs ([`DEV_DRAIN_INTERVAL`]; no Functions host fires the timer
//! here).

use std::path::PathBuf;
use std::time::Duration;

use super::DevError;
use crate::config::Env;
use crate::functions::durable;

/// Where `handler dev` keeps its SQLite store when `--data-dir` is not given (under the working directory).
pub const DEFAULT_DATA_DIR: &str = ".webpubsub-dev";
/// The store's file name inside the data directory.
pub const DEV_STORE_FILE: &str = "store.db";
/// How often dev mode drains the outbox (the Functions timer ticks every 10 s; dev wants quick retries).
pub const DEV_DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Points `StoreConnectionString` at `<data_dir>/store.db` (creating the directory) unless the environment
/// sets it.
pub(super) fn with_dev_store(env: Env, data_dir: Option<PathBuf>) -> Result<Env, DevError> {
    if env
        .get(durable::STORE_SETTING)
        .is_some_and(|value| !value.trim().is_empty())
    {
        return Ok(env);
    }
    let dir = data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let failed = |source| DevError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let file = std::path::absolute(dir.join(DEV_STORE_FILE)).map_err(failed)?;
    Ok(env.with(durable::STORE_SETTING, format!("sqlite:{}", file.display())))
}
