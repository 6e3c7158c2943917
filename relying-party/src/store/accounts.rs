//! Users and their credentials.

use super::rows::{CREDENTIAL_COLUMNS, credential_from_row, int_of, user_from_row};
use super::{CredentialRow, Store, StoreError, UserRow, is_unique_violation};

impl Store {
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
}
