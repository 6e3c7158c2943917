//! Ceremony state, sign-in sessions and signed-action receipts.

use sqlx::Row;

use super::{CeremonyRow, ReceiptRow, SessionRow, Store, StoreError};

impl Store {
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
}
