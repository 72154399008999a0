//! The `StoreConnectionString` setting: `sqlite:<path>` or `postgres://…`, parsed once into a validated
//! [`StoreConnectionString`]. TLS is required to any PostgreSQL host that is not loopback, and the password
//! never appears in `Debug`, `Display` or an error: the URL is held privately and shown redacted.

use std::fmt;

use url::Url;

/// Which database a connection string names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (one writer at a time).
    Sqlite,
    /// A PostgreSQL server shared by every instance.
    Postgres,
}

/// Why a `StoreConnectionString` was refused. Never carries the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionStringError {
    #[error("StoreConnectionString must start with sqlite: or postgres://")]
    /// Neither `sqlite:` nor `postgres://`.
    UnknownScheme,
    #[error("StoreConnectionString: sqlite: needs a file path without '?' or '#'")]
    /// A `sqlite:` path that is empty or carries `?`, `#` or a control character.
    BadSqlitePath,
    #[error("StoreConnectionString: not a valid postgres:// URL")]
    /// A `postgres://` URL that does not parse.
    BadPostgresUrl,
    #[error("StoreConnectionString: TLS is required to the non-loopback host {host} (sslmode=require or verify-full)")]
    /// A PostgreSQL host off the loopback without `sslmode=require` or `verify-full`.
    TlsRequired {
        /// The host named in the URL.
        host: String,
    },
}

/// A validated store connection string; `Debug`/`Display` show it with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConnectionString {
    backend: Backend,
    /// What sqlx connects with (for SQLite with `mode=rwc` so the file is created).
    url: String,
}

impl StoreConnectionString {
    /// Parses and validates the raw setting.
    pub fn parse(raw: &str) -> Result<Self, ConnectionStringError> {
        let raw = raw.trim();
        if let Some(path) = raw.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() || path.contains(['?', '#']) || path.chars().any(char::is_control) {
                return Err(ConnectionStringError::BadSqlitePath);
            }
            return Ok(Self {
                backend: Backend::Sqlite,
                url: format!("sqlite:{path}?mode=rwc"),
            });
        }
        if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
            return Err(ConnectionStringError::UnknownScheme);
        }
        let mut url = Url::parse(raw).map_err(|_| ConnectionStringError::BadPostgresUrl)?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(ConnectionStringError::BadPostgresUrl)?;
        let loopback = is_loopback(host);
        let host = host.to_owned();
        let sslmode = url
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned());
        match sslmode.as_deref() {
            Some("require" | "verify-ca" | "verify-full") => {}
            None if !loopback => {
                // No mode given: verify the server's certificate and name, the safe default off-box.
                url.query_pairs_mut().append_pair("sslmode", "verify-full");
            }
            Some(_) if !loopback => return Err(ConnectionStringError::TlsRequired { host }),
            _ => {}
        }
        Ok(Self {
            backend: Backend::Postgres,
            url: url.into(),
        })
    }

    /// The database this string names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL sqlx connects with. Holds the password: never log it.
    pub(crate) fn expose_url(&self) -> &str {
        &self.url
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || host.starts_with('/') // a Unix socket directory
}

impl fmt::Display for StoreConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Url::parse(&self.url) {
            Ok(mut url) if self.backend == Backend::Postgres => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                f.write_str(url.as_str())
            }
            _ => f.write_str(self.url.strip_suffix("?mode=rwc").unwrap_or(&self.url)),
        }
    }
}

impl fmt::Debug for StoreConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreConnectionString({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sqlite_path_gets_create_mode() {
        let s = StoreConnectionString::parse("sqlite:/tmp/x.db").unwrap();
        assert_eq!(s.backend(), Backend::Sqlite);
        assert_eq!(s.expose_url(), "sqlite:/tmp/x.db?mode=rwc");
        assert_eq!(s.to_string(), "sqlite:/tmp/x.db");
    }

    #[test]
    fn sqlite_rejects_query_and_empty() {
        assert_eq!(
            StoreConnectionString::parse("sqlite:"),
            Err(ConnectionStringError::BadSqlitePath)
        );
        assert_eq!(
            StoreConnectionString::parse("sqlite:a.db?mode=ro"),
            Err(ConnectionStringError::BadSqlitePath)
        );
    }

    #[test]
    fn unknown_scheme_is_refused() {
        assert_eq!(
            StoreConnectionString::parse("mysql://x/y"),
            Err(ConnectionStringError::UnknownScheme)
        );
    }

    #[test]
    fn remote_postgres_without_sslmode_gets_verify_full() {
        let s = StoreConnectionString::parse("postgres://u:pw@db.example.com/app").unwrap();
        assert!(s.expose_url().ends_with("sslmode=verify-full"));
    }

    #[test]
    fn remote_postgres_with_weak_sslmode_is_refused() {
        for mode in ["disable", "prefer", "allow"] {
            let err = StoreConnectionString::parse(&format!("postgres://u:s3cret@db.example.com/app?sslmode={mode}"))
                .unwrap_err();
            assert!(matches!(err, ConnectionStringError::TlsRequired { .. }));
            assert!(!err.to_string().contains("s3cret"));
        }
    }

    #[test]
    fn loopback_postgres_may_go_without_tls() {
        for host in ["127.0.0.1", "localhost", "[::1]"] {
            let s = StoreConnectionString::parse(&format!("postgres://u:pw@{host}:5432/app?sslmode=disable")).unwrap();
            assert_eq!(s.backend(), Backend::Postgres);
        }
    }

    #[test]
    fn password_never_in_debug_or_display() {
        let s = StoreConnectionString::parse("postgres://user:hunter2@db.example.com/app?sslmode=require").unwrap();
        let shown = format!("{s:?} {s}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user:***@db.example.com"), "{shown}");
    }

    proptest! {
        #[test]
        fn parser_never_panics(raw in ".{0,80}") {
            let _ = StoreConnectionString::parse(&raw);
            let _ = StoreConnectionString::parse(&format!("postgres://{raw}"));
            let _ = StoreConnectionString::parse(&format!("sqlite:{raw}"));
        }
    }
}
