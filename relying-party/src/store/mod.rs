//! Storage: users, credentials, ceremony state, sessions and receipts, in SQLite (a file, no
//! setup) or PostgreSQL (by URL), through one interface.
//!
//! Both backends run the same SQL through sqlx's `Any` driver: only `TEXT` and `BIGINT` columns
//! and `$n` placeholders, which both dialects accept. Binary values are stored base64url so that
//! no column type differs between them. Every multi-row change is one transaction; ceremony state
//! is taken with `DELETE … RETURNING`, so a challenge can be used once, by one instance, even
//! with several instances on one PostgreSQL database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

mod accounts;
mod ceremonies;
mod migrations;
mod rows;

use migrations::MIGRATIONS;
use rows::{CREDENTIAL_COLUMNS, credential_from_row};
pub use rows::{CeremonyRow, CredentialRow, ReceiptRow, SessionRow, UserRow};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not `sqlite://…` or `postgres://…`.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A uniqueness constraint refused the write (e.g. a credential ID registered twice).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Which SQL database backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The store: one pool on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                // SQLite through `Any` does not always carry the extended code.
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Whether `err` says the database cannot be reached (down, restarting, refusing connections,
/// the pool exhausted waiting for it) rather than that the request was wrong: answered 503
/// so that clients retry. A transaction cut off this way was never committed.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P (operator intervention: the
        // server shutting down or restarting).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Creates a missing SQLite database file as 0600 in a 0700 directory before SQLite opens it:
/// it holds usernames and receipts. SQLite gives its `-wal` and `-shm` files the database
/// file's mode. An existing file keeps its mode; `:memory:` has none.
fn create_private_database(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let io = |e: std::io::Error| StoreError::Database(sqlx::Error::Io(e));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_file::create_private_dir(dir).map_err(io)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        // Another instance created it meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

impl Store {
    /// Connects (creating a SQLite file if needed, 0600 in a 0700 directory) and applies
    /// pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            create_private_database(std::path::Path::new(path))?;
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("sqlite:") {
            (Backend::Sqlite, url.to_owned())
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; FULL makes each commit
                            // durable; the busy timeout queues writers instead of failing them.
                            // The page cache is bounded explicitly (a negative size is KiB):
                            // 2 MiB a connection, 8 MiB for the pool of four, whatever the
                            // library's compiled-in default; it fills up to that and stays.
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = FULL",
                                "PRAGMA busy_timeout = 5000",
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA cache_size = -2048",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    // While the server is down a request waits this long for a connection,
                    // then gets 503 database_unavailable.
                    .acquire_timeout(Duration::from_secs(3))
                    .connect_with(options)
                    .await?
            }
        };
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for modules that keep their own tables (`crate::soter`).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the migrations not yet recorded in `schema_migrations`.
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .or_else(|e| if is_unique_violation(&e) { Ok(Default::default()) } else { Err(e) })?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            if self.backend == Backend::Postgres {
                // Instances starting together take turns; the second sees the version applied.
                sqlx::query("SELECT pg_advisory_xact_lock(727368)")
                    .execute(&mut *tx)
                    .await?;
            }
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if applied.is_some() {
                continue;
            }
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The newest schema version applied.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// A round trip to the database (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Row counts per table, for tests that prove a bad request changed nothing.
    pub async fn fingerprint(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for table in ["users", "credentials", "sessions", "receipts"] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await?;
            out.push_str(&format!("{table}={n};"));
        }
        let rows = sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let c = credential_from_row(row)?;
            out.push_str(&format!(
                "{}:{}:{:?}:{}:{};",
                c.id, c.sign_count, c.last_used_at, c.name, c.counter_regressions
            ));
        }
        Ok(out)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The database holds usernames and receipts: another local user must not read it.
    #[tokio::test]
    async fn a_new_sqlite_database_is_private() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("state/rp.sqlite3");
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(store.schema_version().await.unwrap(), 3);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("state")), 0o700);
        let wal = root.path().join("state/rp.sqlite3-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
        store.close().await;
    }

    /// Every pooled connection has the documented page-cache bound.
    #[tokio::test]
    async fn every_sqlite_connection_caps_its_page_cache() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("rp.sqlite3");
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        // Hold four at once, so each is a separate connection of the pool.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(cache, -2048, "2 MiB, in KiB");
        }
        drop(held);
        store.close().await;
    }

    async fn count(store: &Store, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    /// Challenges and sessions do not pile up: once expired, the purge (run every minute by
    /// the server) deletes them, and only them.
    #[tokio::test]
    async fn expired_ceremonies_and_sessions_are_deleted() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("rp.sqlite3");
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users (id, name, display_name, created_at) VALUES ('u', 'ann', 'Ann', 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let now = 1_000_000;
        for i in 0..200 {
            // 150 expired (one millisecond ago or more), 50 live.
            let expires_at = if i < 150 { now - 1 - i } else { now + i };
            store
                .put_ceremony(&CeremonyRow {
                    challenge: format!("challenge-{i}"),
                    kind: "authentication".into(),
                    user_id: Some("u".into()),
                    state: "{}".into(),
                    expires_at,
                })
                .await
                .unwrap();
            store
                .create_session(&SessionRow {
                    token_hash: format!("token-{i}"),
                    user_id: "u".into(),
                    credential_id: "c".into(),
                    created_at: 0,
                    expires_at,
                    verified_at: 0,
                })
                .await
                .unwrap();
        }
        assert_eq!(count(&store, "ceremonies").await, 200);
        assert_eq!(count(&store, "sessions").await, 200);
        assert_eq!(store.purge_expired(now).await.unwrap(), 300);
        assert_eq!(count(&store, "ceremonies").await, 50);
        assert_eq!(count(&store, "sessions").await, 50);
        // What is left is what is live, and a second purge finds nothing.
        assert!(
            store
                .take_ceremony("challenge-150")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .take_ceremony("challenge-149")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.purge_expired(now).await.unwrap(), 0);
        assert_eq!(count(&store, "sessions").await, 50);
        store.close().await;
    }
}
