//! What the API returns about users, credentials, finished ceremonies and receipts.

use serde::Serialize;

use crate::aaguid::authenticator_name;
use crate::receipts::Receipt;
use crate::store::{CredentialRow, UserRow};
use crate::verify::AssertionVerdict;

/// A signed-in user, as the API returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// User handle (base64url).
    pub id: String,
    /// Username.
    pub name: String,
    /// Display name.
    pub display_name: String,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        Self {
            id: u.id.clone(),
            name: u.name.clone(),
            display_name: u.display_name.clone(),
        }
    }
}

/// A credential as the account page shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    /// Credential ID (base64url).
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// COSE algorithm.
    pub algorithm: i64,
    /// Created, unix ms.
    pub created_at: i64,
    /// Last used, unix ms.
    pub last_used_at: Option<i64>,
    /// Backup eligible (a synced passkey) — "multi-device" vs "single-device".
    pub backup_eligible: bool,
    /// Currently backed up.
    pub backup_state: bool,
    /// `multiDevice` or `singleDevice`.
    pub device_type: &'static str,
    /// Transports the authenticator reported.
    pub transports: Vec<String>,
    /// The AAGUID.
    pub aaguid: String,
    /// A name for the authenticator model, from its AAGUID.
    pub authenticator: String,
    /// The signature counter.
    pub sign_count: i64,
    /// Assertions seen whose counter did not increase.
    pub counter_regressions: i64,
}

impl From<&CredentialRow> for CredentialView {
    fn from(c: &CredentialRow) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            algorithm: c.algorithm,
            created_at: c.created_at,
            last_used_at: c.last_used_at,
            backup_eligible: c.backup_eligible,
            backup_state: c.backup_state,
            device_type: if c.backup_eligible {
                "multiDevice"
            } else {
                "singleDevice"
            },
            transports: serde_json::from_str(&c.transports).unwrap_or_default(),
            aaguid: c.aaguid.clone(),
            authenticator: authenticator_name(&c.aaguid).to_owned(),
            sign_count: c.sign_count,
            counter_regressions: c.counter_regressions,
        }
    }
}

/// The result of a finished authentication ceremony.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who.
    pub user: UserRow,
    /// With what.
    pub credential: CredentialRow,
    /// The verifier's verdict.
    pub verdict: AssertionVerdict,
    /// For a sign-in: the new session's cookie token.
    pub session_token: Option<String>,
    /// For an action: the signed receipt.
    pub receipt: Option<SignedReceipt>,
}

/// A receipt with the exact JSON it signs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The exact string the signature covers.
    pub receipt_json: String,
    /// ECDSA P-256 SHA-256 signature, DER, base64url.
    pub signature: String,
    /// The signing key's ID.
    pub key_id: String,
}
