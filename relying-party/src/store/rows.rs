//! The rows the store reads and writes, and their column mapping.

use sqlx::Row;

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

pub(super) fn bool_of(v: i64) -> bool {
    v != 0
}

pub(super) fn int_of(b: bool) -> i64 {
    i64::from(b)
}

pub(super) fn credential_from_row(row: &sqlx::any::AnyRow) -> Result<CredentialRow, sqlx::Error> {
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

pub(super) const CREDENTIAL_COLUMNS: &str = "id, user_id, public_key, algorithm, sign_count, transports, \
     backup_eligible, backup_state, aaguid, attestation_format, name, created_at, last_used_at, \
     counter_regressions, verify_key";

pub(super) fn user_from_row(r: &sqlx::any::AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        display_name: r.try_get("display_name")?,
        created_at: r.try_get("created_at")?,
    })
}
