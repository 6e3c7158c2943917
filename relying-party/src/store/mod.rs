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

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

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

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The WebAuthn user handle, base64url.
    pub id: String,
    /// The unique username.
    pub name: String,
    /// The display name.
    pub display_name: String,
    /// Creation time, unix milliseconds.
    pub created_at: i64,
}

/// A registered credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// The credential ID, base64url.
    pub id: String,
    /// The owner's user handle, base64url.
    pub user_id: String,
    /// The COSE public key, base64url, exactly as the authenticator sent it.
    pub public_key: String,
    /// The same key decoded at registration (`passgate_proto::cose::PublicKey` as JSON), so a
    /// sign-in parses no CBOR. `None` for rows registered before schema version 3, which are
    /// decoded from `public_key`.
    pub verify_key: Option<String>,
    /// The COSE algorithm.
    pub algorithm: i64,
    /// The last signature counter seen.
    pub sign_count: i64,
    /// Transports reported at registration, as a JSON array.
    pub transports: String,
    /// BE flag at registration.
    pub backup_eligible: bool,
    /// BS flag as last seen.
    pub backup_state: bool,
    /// The authenticator's AAGUID (hyphenated), all zeros when not given.
    pub aaguid: String,
    /// The attestation statement format.
    pub attestation_format: String,
    /// A name the user chose.
    pub name: String,
    /// Registration time, unix milliseconds.
    pub created_at: i64,
    /// Last successful assertion, unix milliseconds.
    pub last_used_at: Option<i64>,
    /// How many assertions came with a counter that did not increase.
    pub counter_regressions: i64,
}

/// Server-side ceremony state, keyed by its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyRow {
    /// The challenge, base64url.
    pub challenge: String,
    /// What the ceremony is (`registration`, `authentication`, `action`, …).
    pub kind: String,
    /// The user it is for, when known.
    pub user_id: Option<String>,
    /// Kind-specific state as JSON.
    pub state: String,
    /// Expiry, unix milliseconds.
    pub expires_at: i64,
}

/// A sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie token, base64url (the token itself is never stored).
    pub token_hash: String,
    /// The signed-in user.
    pub user_id: String,
    /// The credential that signed in.
    pub credential_id: String,
    /// Creation, unix milliseconds.
    pub created_at: i64,
    /// Expiry, unix milliseconds.
    pub expires_at: i64,
    /// When the user was last verified (sign-in, re-authentication, step-up).
    pub verified_at: i64,
}

/// A signed-action receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRow {
    /// Receipt ID.
    pub id: String,
    /// Who approved.
    pub user_id: String,
    /// With which credential.
    pub credential_id: String,
    /// The receipt JSON exactly as signed.
    pub receipt: String,
    /// The server's signature, base64url.
    pub signature: String,
    /// Creation, unix milliseconds.
    pub created_at: i64,
}

/// Schema versions, applied in order, each once, each in a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        public_key TEXT NOT NULL,
        algorithm BIGINT NOT NULL,
        sign_count BIGINT NOT NULL,
        transports TEXT NOT NULL,
        backup_eligible BIGINT NOT NULL,
        backup_state BIGINT NOT NULL,
        aaguid TEXT NOT NULL,
        attestation_format TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT,
        counter_regressions BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX credentials_by_user ON credentials(user_id);
    CREATE TABLE ceremonies (
        challenge TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        user_id TEXT,
        state TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX ceremonies_by_expiry ON ceremonies(expires_at);
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        credential_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        verified_at BIGINT NOT NULL
    );
    CREATE TABLE receipts (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        receipt TEXT NOT NULL,
        signature TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );",
    ),
    (
        2,
        // SOTER devices: the registered key of one app (uid) on one device (cpu_id) and the
        // highest counter seen; see `crate::soter`.
        "CREATE TABLE soter_devices (
        cpu_id TEXT NOT NULL,
        uid TEXT NOT NULL,
        public_key TEXT NOT NULL,
        counter BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT,
        PRIMARY KEY (cpu_id, uid)
    )",
    ),
    (
        3,
        // The public key decoded at registration; older rows keep NULL and still verify.
        "ALTER TABLE credentials ADD COLUMN verify_key TEXT",
    ),
];

/// The store: one pool on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

fn bool_of(v: i64) -> bool {
    v != 0
}

fn int_of(b: bool) -> i64 {
    i64::from(b)
}

fn credential_from_row(row: &sqlx::any::AnyRow) -> Result<CredentialRow, sqlx::Error> {
    Ok(CredentialRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        public_key: row.try_get("public_key")?,
        verify_key: row.try_get("verify_key")?,
        algorithm: row.try_get("algorithm")?,
        sign_count: row.try_get("sign_count")?,
        transports: row.try_get("transports")?,
        backup_eligible: bool_of(row.try_get("backup_eligible")?),
        backup_state: bool_of(row.try_get("backup_state")?),
        aaguid: row.try_get("aaguid")?,
        attestation_format: row.try_get("attestation_format")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        counter_regressions: row.try_get("counter_regressions")?,
    })
}

const CREDENTIAL_COLUMNS: &str = "id, user_id, public_key, algorithm, sign_count, transports, \
     backup_eligible, backup_state, aaguid, attestation_format, name, created_at, last_used_at, \
     counter_regressions, verify_key";

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
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = FULL",
                                "PRAGMA busy_timeout = 5000",
                                "PRAGMA foreign_keys = ON",
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

    // ---- users ----

    /// The user with this username.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        let row =
            sqlx::query("SELECT id, name, display_name, created_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| user_from_row(&r))
            .transpose()
            .map_err(Into::into)
    }

    /// The user with this handle.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query("SELECT id, name, display_name, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_from_row(&r))
            .transpose()
            .map_err(Into::into)
    }

    /// Registers a credential, creating its user first when `new_user` is given; one
    /// transaction, so a failure leaves neither.
    pub async fn register(
        &self,
        new_user: Option<&UserRow>,
        credential: &CredentialRow,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(user) = new_user {
            sqlx::query(
                "INSERT INTO users (id, name, display_name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&user.id)
            .bind(&user.name)
            .bind(&user.display_name)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("username")
                } else {
                    e.into()
                }
            })?;
        }
        sqlx::query(&format!(
            "INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&credential.id)
        .bind(&credential.user_id)
        .bind(&credential.public_key)
        .bind(credential.algorithm)
        .bind(credential.sign_count)
        .bind(&credential.transports)
        .bind(int_of(credential.backup_eligible))
        .bind(int_of(credential.backup_state))
        .bind(&credential.aaguid)
        .bind(&credential.attestation_format)
        .bind(&credential.name)
        .bind(credential.created_at)
        .bind(credential.last_used_at)
        .bind(credential.counter_regressions)
        .bind(&credential.verify_key)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("credential")
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(())
    }

    // ---- credentials ----

    /// A credential by ID.
    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| credential_from_row(&r))
            .transpose()
            .map_err(Into::into)
    }

    /// A user's credentials, oldest first.
    pub async fn credentials_of(&self, user_id: &str) -> Result<Vec<CredentialRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(credential_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// Renames a user's credential; false when the user has no such credential.
    pub async fn rename_credential(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE credentials SET name = $1 WHERE id = $2 AND user_id = $3")
            .bind(name)
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a user's credential; false when the user has no such credential.
    pub async fn delete_credential(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        // One transaction: the sessions signed in with the passkey end with it, so a session
        // stolen along with a passkey the user then removes does not outlive it.
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM credentials WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE credential_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends every session of a user ("sign out everywhere"); returns how many there were.
    pub async fn delete_sessions_of(&self, user_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records a verified use: the new counter, backup state and time, only if the counter is
    /// still the one verified against (so two concurrent uses cannot both move it). False when
    /// another use won the race.
    pub async fn record_use(
        &self,
        id: &str,
        verified_against: i64,
        new_count: i64,
        backup_state: bool,
        regressed: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE credentials SET sign_count = $1, backup_state = $2, last_used_at = $3, \
             counter_regressions = counter_regressions + $4 WHERE id = $5 AND sign_count = $6",
        )
        .bind(if regressed {
            verified_against
        } else {
            new_count
        })
        .bind(int_of(backup_state))
        .bind(now)
        .bind(int_of(regressed))
        .bind(id)
        .bind(verified_against)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- ceremonies ----

    /// Stores ceremony state under its challenge.
    pub async fn put_ceremony(&self, ceremony: &CeremonyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ceremonies (challenge, kind, user_id, state, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&ceremony.challenge)
        .bind(&ceremony.kind)
        .bind(&ceremony.user_id)
        .bind(&ceremony.state)
        .bind(ceremony.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes (reads and deletes, atomically) the ceremony with this challenge: a challenge is
    /// good for one attempt, on whichever instance gets it first.
    pub async fn take_ceremony(&self, challenge: &str) -> Result<Option<CeremonyRow>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM ceremonies WHERE challenge = $1 RETURNING challenge, kind, user_id, state, expires_at",
        )
        .bind(challenge)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok::<_, sqlx::Error>(CeremonyRow {
                challenge: r.try_get("challenge")?,
                kind: r.try_get("kind")?,
                user_id: r.try_get("user_id")?,
                state: r.try_get("state")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
        .map_err(Into::into)
    }

    /// Deletes expired ceremonies and sessions; returns how many rows went.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let a = sqlx::query("DELETE FROM ceremonies WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let b = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(a.rows_affected() + b.rows_affected())
    }

    // ---- sessions ----

    /// Stores a session.
    pub async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, credential_id, created_at, expires_at, verified_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.token_hash)
        .bind(&session.user_id)
        .bind(&session.credential_id)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.verified_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this token hash, if it has not expired.
    pub async fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, credential_id, created_at, expires_at, verified_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok::<_, sqlx::Error>(SessionRow {
                token_hash: r.try_get("token_hash")?,
                user_id: r.try_get("user_id")?,
                credential_id: r.try_get("credential_id")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                verified_at: r.try_get("verified_at")?,
            })
        })
        .transpose()
        .map_err(Into::into)
    }

    /// Marks a session as freshly verified (re-authentication, step-up).
    pub async fn mark_session_verified(
        &self,
        token_hash: &str,
        credential_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET verified_at = $1, credential_id = $2 WHERE token_hash = $3",
        )
        .bind(now)
        .bind(credential_id)
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- receipts ----

    /// Stores a receipt.
    pub async fn insert_receipt(&self, receipt: &ReceiptRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO receipts (id, user_id, credential_id, receipt, signature, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&receipt.id)
        .bind(&receipt.user_id)
        .bind(&receipt.credential_id)
        .bind(&receipt.receipt)
        .bind(&receipt.signature)
        .bind(receipt.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A receipt by ID.
    pub async fn receipt(&self, id: &str) -> Result<Option<ReceiptRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, credential_id, receipt, signature, created_at FROM receipts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok::<_, sqlx::Error>(ReceiptRow {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                credential_id: r.try_get("credential_id")?,
                receipt: r.try_get("receipt")?,
                signature: r.try_get("signature")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
        .map_err(Into::into)
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

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        display_name: r.try_get("display_name")?,
        created_at: r.try_get("created_at")?,
    })
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
}
