//! The schema, as versioned migrations.

/// Schema versions, applied in order, each once, each in a transaction.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
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
